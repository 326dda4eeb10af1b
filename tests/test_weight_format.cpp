// Quantized weight formats and the key/value-cache dtype (src/irene/arch/weight_format.hpp):
// bytes of a Linear under each format against an independent count, the quantization_config
// of published configs, and the one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/arch/weight_format.hpp"
#include "irene/core/error.hpp"
#include "irene/hardware/hardware.hpp"
#include "irene/serving/crossval.hpp"
#include "irene/serving/predictor.hpp"

using namespace irene;

namespace {

std::string error_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

nlohmann::json read_json(const std::string& rel) {
  std::ifstream in(std::string(IRENE_SOURCE_DIR) + "/" + rel);
  return nlohmann::json::parse(in);
}

WeightQuant quant(WeightFormat f) {
  WeightQuant q;
  q.format = f;
  return q;
}

}  // namespace

// A Linear of 300 outputs x 200 inputs (not multiples of the blocks: partial blocks count whole).
TEST(WeightFormat, LinearBytesOfEachFormatMatchAnIndependentCount) {
  const std::int64_t out = 300, in = 200;
  const double n = 300.0 * 200;
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Same), 2), n * 2);
  // fp8: one byte each, one float32 scale per 128x128 block: 3 x 2 blocks
  double scales = 0;
  for (int r = 0; r < out; r += 128)
    for (int c = 0; c < in; c += 128) scales += 4;
  EXPECT_DOUBLE_EQ(scales, 24);
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Fp8), 2), n + scales);
  // mxfp4: half a byte each, one 8-bit exponent per 32 inputs of a row (7 per row, the last partial)
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Mxfp4), 2), n / 2 + 300 * 7);
  // int8: one byte each, one float16 scale per output row
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Int8), 2), n + 300 * 2);
  // int4, group 64: half a byte each, per row 4 groups (64,64,64,8) of float16 scale + 4-bit zero
  WeightQuant g = quant(WeightFormat::Int4);
  g.group_size = 64;
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, g, 2), n / 2 + 300 * 4 * 2.5);
  g.group_size = 128;
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, g, 2), n / 2 + 300 * 2 * 2.5);
  // no dequantize work in the activation dtype; one op per weight element otherwise
  EXPECT_EQ(dequantize_ops(out, in, quant(WeightFormat::Same)), 0);
  EXPECT_EQ(dequantize_ops(out, in, quant(WeightFormat::Mxfp4)), n);
}

// What must hold: fp8 about half of bfloat16 (plus its scales), mxfp4 about a quarter.
TEST(WeightFormat, Fp8HalvesBfloat16PlusScalesAndMxfp4IsAboutAQuarter) {
  const std::int64_t out = 4096, in = 14336;
  const double bf16 = linear_weight_bytes(out, in, quant(WeightFormat::Same), 2);
  const double fp8 = linear_weight_bytes(out, in, quant(WeightFormat::Fp8), 2);
  const double mx = linear_weight_bytes(out, in, quant(WeightFormat::Mxfp4), 2);
  EXPECT_DOUBLE_EQ(fp8 - bf16 / 2, 4.0 * (4096 / 128) * (14336 / 128));
  EXPECT_NEAR(mx / bf16, 4.25 / 16, 1e-12);
  // the per-parameter rule for large matrices agrees with the exact count
  EXPECT_DOUBLE_EQ(fp8 / (4096.0 * 14336), weight_bytes_per_parameter(quant(WeightFormat::Fp8), 2));
  EXPECT_DOUBLE_EQ(mx / (4096.0 * 14336), weight_bytes_per_parameter(quant(WeightFormat::Mxfp4), 2));
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Int4), 2) / (4096.0 * 14336),
                   weight_bytes_per_parameter(quant(WeightFormat::Int4), 2));
  // the serving predictor's bytes per weight are the same rule
  EXPECT_DOUBLE_EQ(serving::weight_bytes_per_parameter("fp8"), weight_bytes_per_parameter(quant(WeightFormat::Fp8), 2));
  EXPECT_DOUBLE_EQ(serving::weight_bytes_per_parameter("mxfp4"),
                   weight_bytes_per_parameter(quant(WeightFormat::Mxfp4), 2));
  EXPECT_DOUBLE_EQ(serving::weight_bytes_per_parameter("bfloat16"), 2);
}

TEST(WeightFormat, KvCacheDtypeBytes) {
  EXPECT_EQ(kv_cache_element_bytes("fp8", "--kv-cache-dtype"), 1);
  EXPECT_EQ(kv_cache_element_bytes("bfloat16", "--kv-cache-dtype"), 2);
  EXPECT_EQ(kv_cache_element_bytes("float16", "--kv-cache-dtype"), 2);
  EXPECT_EQ(kv_cache_element_bytes("float32", "--kv-cache-dtype"), 4);
  EXPECT_EQ(error_text([] { kv_cache_element_bytes("int4", "--kv-cache-dtype"); }),
            "--kv-cache-dtype: unknown key/value-cache dtype 'int4': expected fp8, bfloat16, float16 or float32");
}

TEST(WeightFormat, QuantizationConfigOfPublishedConfigs) {
  const auto ds = parse_quantization_config(read_json("docs/families-2026/configs/deepseek-ai/DeepSeek-V3/config.json"),
                                            "DeepSeek-V3/config.json");
  EXPECT_EQ(ds.format, WeightFormat::Fp8);
  EXPECT_EQ(ds.block, 128);
  EXPECT_TRUE(ds.not_converted.empty());
  const auto oss = parse_quantization_config(read_json("docs/families-2026/configs/openai/gpt-oss-20b/config.json"),
                                             "gpt-oss-20b/config.json");
  EXPECT_EQ(oss.format, WeightFormat::Mxfp4);
  // attention, router, embeddings and lm_head stay in the activation dtype; the experts do not
  EXPECT_TRUE(kept_unquantized(oss, "model.layers.3.self_attn.q_proj"));
  EXPECT_TRUE(kept_unquantized(oss, "model.layers.0.mlp.router"));
  EXPECT_TRUE(kept_unquantized(oss, "lm_head"));
  EXPECT_TRUE(kept_unquantized(oss, "model.embed_tokens"));
  EXPECT_FALSE(kept_unquantized(oss, "model.layers.3.mlp.experts.gate_up_proj"));
  // no quantization_config: weights in the activation dtype
  EXPECT_EQ(parse_quantization_config(nlohmann::json{{"model_type", "llama"}}, "c.json").format, WeightFormat::Same);
  // GPTQ/AWQ int4 with its group size; ignored_layers honoured
  const auto gptq = parse_quantization_config(
      nlohmann::json::parse(R"({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32,
                                                         "ignored_layers": ["lm_head"]}})"),
      "c.json");
  EXPECT_EQ(gptq.format, WeightFormat::Int4);
  EXPECT_EQ(gptq.group_size, 32);
  EXPECT_TRUE(kept_unquantized(gptq, "lm_head"));
  EXPECT_EQ(parse_quantization_config(nlohmann::json::parse(R"({"quantization_config": {"quant_method": "awq"}})"),
                                      "c.json")
                .group_size,
            128);
}

TEST(WeightFormat, BadValuesAreRefusedInOneLineNamingTheOptionOrFile) {
  EXPECT_EQ(error_text([] { parse_weight_format("int3", "--weights"); }),
            "--weights: unknown weight format 'int3': expected same-as-dtype, fp8, mxfp4, int8 or int4");
  EXPECT_EQ(parse_weight_format("fp8", "--weights"), WeightFormat::Fp8);
  const auto bad = [](const char* qc) {
    return error_text([&] { parse_quantization_config(nlohmann::json::parse(qc), "m/config.json"); });
  };
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "hqq"}})"),
            "m/config.json: quantization_config.quant_method 'hqq' is not supported: expected fp8, mxfp4, gptq or awq");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 64]}})"),
            "m/config.json: quantization_config.weight_block_size must be [n, n] with n a positive integer, got [128,64]");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "gptq", "bits": 3}})"),
            "m/config.json: quantization_config.bits 3 of gptq is not supported: expected 4 or 8");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "awq", "group_size": 0}})"),
            "m/config.json: quantization_config.group_size must be a positive integer, got 0");
  EXPECT_EQ(bad(R"({"quantization_config": {"bits": 4}})"),
            "m/config.json: quantization_config.quant_method must be a string");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": "lm_head"}})"),
            "m/config.json: quantization_config.modules_to_not_convert must be a list of module names");
}

// Physical consistency with the shipped serving predictor (fitted on the ML.ENERGY table where it
// is present): for a memory-bound decode step (one sequence in flight) fewer weight bytes never
// cost more energy per generated token: mxfp4 <= fp8 <= bfloat16.
TEST(WeightFormat, QuantizedWeightsNeverCostMoreInAMemoryBoundDecodeStep) {
  const auto table = serving::default_table();
  std::error_code ec;
  if (table.empty() || !std::filesystem::is_regular_file(table, ec)) GTEST_SKIP() << "no serving table";
  for (const char* model : {"meta-llama/Llama-3.1-8B-Instruct"}) {
    for (const char* gpu : {"H100", "B200"}) {
      double last = 0;
      for (const char* precision : {"bfloat16", "fp8", "mxfp4"}) {
        serving::Workload w;
        w.batch = 1;
        w.prompt_tokens = 180;
        w.output_tokens = 400;
        w.precision = precision;
        const auto r = serving::serving_report(serving::load_serving_model(model), w,
                                               hardware::load_profile(gpu), table, false);
        const double j = r["energy_per_token_j"]["value"].get<double>();
        EXPECT_GT(j, 0) << model << " " << gpu << " " << precision;
        if (last > 0) EXPECT_LE(j, last) << model << " " << gpu << " " << precision;
        last = j;
      }
    }
  }
}

// --kv-cache-dtype changes the cache bytes of a decode step exactly by the ratio of its element
// bytes (the attention's cache reads and the cache held), and leaves the weights alone.
TEST(WeightFormat, KvCacheDtypeScalesTheDecodeStepCacheBytesExactly) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  const auto& hw = *hardware::find_builtin("H100");
  serving::Workload w;
  w.batch = 4;
  w.prompt_tokens = 180;
  w.output_tokens = 400;
  const auto cache_read = [&](const serving::StepWork& s) {
    double bytes = 0;
    for (const auto& u : s.units)
      if (!u.prefill && u.key == "ScaledDotProductAttention") {
        const Node& n = s.tree.nodes[u.node];
        bytes += u.bytes - attr(n, "batch") * attr(n, "heads") * 2.0 * attr(n, "m") * attr(n, "d") * 2;
      }
    return bytes;
  };
  const auto bf = serving::step_work(c, w, hw);
  for (const auto& [dtype, ratio] : std::vector<std::pair<std::string, double>>{{"fp8", 0.5}, {"float32", 2.0}}) {
    w.kv_cache_dtype = dtype;
    const auto q = serving::step_work(c, w, hw);
    EXPECT_DOUBLE_EQ(q.kv_bytes, bf.kv_bytes * ratio) << dtype;
    EXPECT_DOUBLE_EQ(q.memory.kv_cache_bytes, bf.memory.kv_cache_bytes * ratio) << dtype;
    EXPECT_NEAR(cache_read(q), cache_read(bf) * ratio, 1e-9 * cache_read(bf)) << dtype;
    EXPECT_DOUBLE_EQ(q.weight_bytes, bf.weight_bytes) << dtype;
  }
  w.kv_cache_dtype = "int4";
  EXPECT_NE(error_text([&] { serving::step_work(c, w, hw); }).find("--kv-cache-dtype: unknown key/value-cache dtype 'int4'"),
            std::string::npos);
}
