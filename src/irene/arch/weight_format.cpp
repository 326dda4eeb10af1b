#include "irene/arch/weight_format.hpp"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "irene/core/error.hpp"

namespace irene {

namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// '*' matches any run of characters (including dots).
bool glob_match(std::string_view pat, std::string_view s) {
  if (pat.empty()) return s.empty();
  if (pat.front() == '*') {
    for (std::size_t i = 0; i <= s.size(); ++i)
      if (glob_match(pat.substr(1), s.substr(i))) return true;
    return false;
  }
  return !s.empty() && pat.front() == s.front() && glob_match(pat.substr(1), s.substr(1));
}

int positive_int_field(const nlohmann::json& j, const char* key, int fallback, std::string_view where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 1 << 20)
    throw Error(fmt::format("{}: quantization_config.{} must be a positive integer, got {}", where, key, v.dump()));
  return v.get<int>();
}

}  // namespace

WeightFormat parse_weight_format(std::string_view t, std::string_view what) {
  if (t == "same" || t == "same-as-dtype") return WeightFormat::Same;
  if (t == "fp8") return WeightFormat::Fp8;
  if (t == "mxfp4") return WeightFormat::Mxfp4;
  if (t == "int8") return WeightFormat::Int8;
  if (t == "int4") return WeightFormat::Int4;
  throw Error(fmt::format("{}: unknown weight format '{}': expected same-as-dtype, fp8, mxfp4, int8 or int4", what, t));
}

std::string_view weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::Same: return "same-as-dtype";
    case WeightFormat::Fp8: return "fp8";
    case WeightFormat::Mxfp4: return "mxfp4";
    case WeightFormat::Int8: return "int8";
    case WeightFormat::Int4: return "int4";
  }
  return "same-as-dtype";
}

WeightQuant parse_quantization_config(const nlohmann::json& config, std::string_view where) {
  WeightQuant q;
  if (!config.is_object() || !config.contains("quantization_config") || config["quantization_config"].is_null()) return q;
  const auto& qc = config["quantization_config"];
  if (!qc.is_object()) throw Error(fmt::format("{}: quantization_config must be an object", where));
  if (!qc.contains("quant_method") || !qc["quant_method"].is_string())
    throw Error(fmt::format("{}: quantization_config.quant_method must be a string", where));
  const std::string method = qc["quant_method"].get<std::string>();
  if (method == "fp8") {
    q.format = WeightFormat::Fp8;
    if (qc.contains("weight_block_size") && !qc["weight_block_size"].is_null()) {
      const auto& b = qc["weight_block_size"];
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || b[0] != b[1] || b[0].get<std::int64_t>() < 1 ||
          b[0].get<std::int64_t>() > 1 << 20)
        throw Error(fmt::format("{}: quantization_config.weight_block_size must be [n, n] with n a positive integer, got {}",
                                where, b.dump()));
      q.block = b[0].get<int>();
    }
  } else if (method == "fbgemm_fp8") {
    // FBGEMM's fp8 (Llama-3.1-405B-Instruct-FP8): e4m3 with one float32 scale per output row,
    // counted with fp8's 128 x 128 blocks (scales are 0.02% of the bytes either way).
    q.format = WeightFormat::Fp8;
  } else if (method == "mxfp4") {
    q.format = WeightFormat::Mxfp4;
  } else if (method == "gptq" || method == "awq") {
    const int bits = positive_int_field(qc, "bits", 4, where);
    if (bits == 4) q.format = WeightFormat::Int4;
    else if (bits == 8) q.format = WeightFormat::Int8;
    else throw Error(fmt::format("{}: quantization_config.bits {} of {} is not supported: expected 4 or 8", where, bits, method));
    int g = 128;
    if (qc.contains("group_size") && qc["group_size"].is_number_integer() && qc["group_size"].get<std::int64_t>() == -1)
      g = 1 << 20;  // GPTQ group_size -1: one group per row
    else
      g = positive_int_field(qc, "group_size", 128, where);
    q.group_size = g;
  } else {
    throw Error(fmt::format("{}: quantization_config.quant_method '{}' is not supported: expected fp8, fbgemm_fp8, mxfp4, gptq or awq",
                            where, method));
  }
  for (const char* key : {"modules_to_not_convert", "ignored_layers"}) {
    if (!qc.contains(key) || qc[key].is_null()) continue;
    const auto& m = qc[key];
    if (!m.is_array()) throw Error(fmt::format("{}: quantization_config.{} must be a list of module names", where, key));
    for (const auto& s : m) {
      if (!s.is_string()) throw Error(fmt::format("{}: quantization_config.{} must be a list of module names", where, key));
      q.not_converted.push_back(s.get<std::string>());
    }
  }
  return q;
}

bool kept_unquantized(const WeightQuant& q, std::string_view module) {
  for (const auto& pat : q.not_converted) {
    if (glob_match(pat, module)) return true;
    for (std::size_t i = 0; i < module.size(); ++i)
      if (module[i] == '.' && glob_match(pat, module.substr(0, i))) return true;
  }
  return false;
}

double linear_weight_bytes(std::int64_t out, std::int64_t in, const WeightQuant& q, double activation_bytes) {
  const double n = static_cast<double>(out) * static_cast<double>(in);
  switch (q.format) {
    case WeightFormat::Same: return n * activation_bytes;
    case WeightFormat::Fp8: return n + 4.0 * static_cast<double>(ceil_div(out, q.block) * ceil_div(in, q.block));
    case WeightFormat::Mxfp4: return n * 0.5 + 1.0 * static_cast<double>(out * ceil_div(in, 32));
    case WeightFormat::Int8: return n + 2.0 * static_cast<double>(out);
    case WeightFormat::Int4: return n * 0.5 + 2.5 * static_cast<double>(out * ceil_div(in, q.group_size));
  }
  return n * activation_bytes;
}

double weight_bytes_per_parameter(const WeightQuant& q, double activation_bytes) {
  switch (q.format) {
    case WeightFormat::Same: return activation_bytes;
    case WeightFormat::Fp8: return 1.0 + 4.0 / (static_cast<double>(q.block) * q.block);
    case WeightFormat::Mxfp4: return 4.25 / 8;
    case WeightFormat::Int8: return 1.0;  // one scale per output row of thousands of weights: negligible
    case WeightFormat::Int4: return 0.5 + 2.5 / q.group_size;
  }
  return activation_bytes;
}

double dequantize_ops(std::int64_t out, std::int64_t in, const WeightQuant& q) {
  return q.format == WeightFormat::Same ? 0.0 : static_cast<double>(out) * static_cast<double>(in);
}

double kv_cache_element_bytes(std::string_view t, std::string_view what) {
  if (t == "fp8") return 1;
  if (t == "bfloat16" || t == "float16") return 2;
  if (t == "float32") return 4;
  throw Error(fmt::format("{}: unknown key/value-cache dtype '{}': expected fp8, bfloat16, float16 or float32", what, t));
}

}  // namespace irene
