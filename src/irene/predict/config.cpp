#include "irene/predict/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/json_util.hpp"
#include "irene/predict/features.hpp"

namespace irene::predict {

using nlohmann::json;

std::string_view to_string(Weighting w) {
  switch (w) {
    case Weighting::close_to_one: return "close_to_one";
    case Weighting::exact_one: return "exact_one";
    case Weighting::free: return "free";
  }
  return "close_to_one";
}

std::string_view to_string(Strategy s) {
  switch (s) {
    case Strategy::end2end: return "end2end";
    case Strategy::stepwise: return "stepwise";
    case Strategy::unstructured: return "unstructured";
    case Strategy::none: return "none";
  }
  return "end2end";
}

std::string_view to_string(LeafModel m) {
  switch (m) {
    case LeafModel::linear: return "linear";
    case LeafModel::log_linear: return "log_linear";
    case LeafModel::relative: return "relative";
    case LeafModel::share: return "share";
  }
  return "linear";
}

namespace {

const std::vector<std::string> kModelSpecs = {"num_parameters", "input_size", "batch_size",
                                               "seq_len",        "flops",      "mem_bytes"};
// For LLM work (decode steps): the weights each call reads (weight_elements: a tied LM head's
// too) instead of num_parameters, the physical memory traffic instead of the dataset's
// mem_bytes, arithmetic intensity and kernel launches (features.hpp).
const std::vector<std::string> kLlmSpecs = {"weight_elements", "input_size",    "batch_size", "seq_len",
                                             "flops",           "traffic_mib",   "flop_per_byte", "kernels"};
const std::vector<std::string> kCpuProducts = {"products"};
// A CPU's roofline: each call's FLOPs beyond 2 and beyond 8 per byte of its traffic (features.hpp),
// so that a leaf's time may follow max(bytes / bandwidth, FLOPs / peak) rather than their sum: a
// decode step's Linear at 1-8 tokens per call streams its weights in the same time (OpenBLAS, one
// thread of the development VM: 0.07-0.09 ns per weight byte), and only past the ridge point do
// its FLOPs add time (0.13 at 16 tokens, 0.21 at 32). The two ratios bracket that ridge point,
// about 6 FLOP per byte (about 76 GFLOP/s of float32 GEMM over 13 GB/s); they are not fitted.
const std::vector<std::string> kCpuRoofline = {"flops_beyond_2fpb", "flops_beyond_8fpb"};
// A CPU BLAS's two GEMM paths: OpenBLAS on AVX-512 cores (its SkylakeX kernels) multiplies a small
// float32 GEMM in a small-matrix kernel straight from the operands and a larger one in its blocked
// path, which first copies (packs) them into buffers (kernel/x86_64/
// sgemm_small_kernel_permit_skylakex.c; for a Linear's call: M N K <= 100^3, out_features x rows
// <= 1200, in_features >= 32). On the development VM's Intel host a decode step's projection
// measured alone takes 0.012-0.046 ns per weight byte on the first path (up to 3.1 MiB of
// weights: they stay in the caches between calls) and 0.10-0.13 on the second.
// openblas_blocked_mib: the MiB of the GEMM calls on the second (features.hpp), so that the two
// paths get their own cost per byte.
const std::vector<std::string> kCpuBlas = {"openblas_blocked_mib"};
const std::vector<std::string> kResources = {"cpu",     "mem",         "gpu",        "gpu_mem",
                                              "gpu_clk", "gpu_mem_clk", "times_mean", "gpu_energy_mean"};

Config paper_config() {
  Config c;
  c.feature_sets = {"model_specs", "resource_utilization"};
  c.polynomial_features = true;
  c.polynomial_degree = 3;
  c.training_strategy = Strategy::end2end;
  c.standardize_features = true;
  c.tanh_scalar = 10;
  c.normalize_loss_scale = true;
  c.weighting_setting = Weighting::close_to_one;
  c.epochs = 8;
  c.learning_rate = 1e-3;
  c.seed = 13370;
  c.shuffle = false;
  c.l2 = 0;
  c.module_loss_weight = 1;
  c.model_loss_weight = 1;
  c.leaf_model = LeafModel::linear;
  c.name = "paper";
  return c;
}

// irene's best, chosen by leave-one-model-out cross-validation on device_1 only (README
// "Predicting energy"): leaf regressors that minimize the squared relative error, with
// non-negative coefficients on the features that grow with the input; every parent's own
// operations as a term of its own (from its own measured time: energy = power x time); alpha
// linear in the features (degree 1), clamped to the training range, starting at 1; 32 epochs
// over the trees in key order, shuffled per epoch by the seed, final weights averaged over the
// last 8 epochs; the root's loss weighted 10x; tau 7.
Config default_config() {
  Config c = paper_config();
  c.leaf_model = LeafModel::relative;
  c.monotone_leaves = true;
  c.own_ops = true;
  c.own_op_features = {"own_times_mean"};
  c.polynomial_degree = 1;
  c.clamp_alpha_inputs = true;
  c.hold_alpha_beyond_size = true;
  c.init = "zero";
  c.sort_trees = true;
  c.epochs = 32;
  c.shuffle = true;
  c.average_epochs = 8;
  c.tanh_scalar = 7;
  c.model_loss_weight = 10;
  c.name = "default";
  return c;
}

template <typename E>
E parse_enum(const json& v, const std::string& where, const char* key, std::initializer_list<E> options) {
  if (!v.is_string()) throw Error(fmt::format("{}: '{}' must be a string", where, key));
  const auto s = v.get<std::string>();
  std::string names;
  for (E e : options) {
    if (to_string(e) == s) return e;
    names += (names.empty() ? "" : ", ") + std::string(to_string(e));
  }
  throw Error(fmt::format("{}: '{}' has unknown value '{}' (expected one of: {})", where, key, s, names));
}

bool get_bool(const json& v, const std::string& where, const char* key) {
  if (!v.is_boolean()) throw Error(fmt::format("{}: '{}' must be true or false", where, key));
  return v.get<bool>();
}

double get_number(const json& v, const std::string& where, const char* key, double lo, double hi,
                  bool lo_open = false) {
  if (!v.is_number()) throw Error(fmt::format("{}: '{}' must be a number", where, key));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    throw Error(fmt::format("{}: '{}' = {} is out of range ({}{}, {}]", where, key, x, lo_open ? "(" : "[", lo, hi));
  return x;
}

int get_int(const json& v, const std::string& where, const char* key, int lo, int hi) {
  if (!v.is_number_integer()) throw Error(fmt::format("{}: '{}' must be an integer", where, key));
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
    throw Error(fmt::format("{}: '{}' = {} is out of range [{}, {}]", where, key, v.dump(), lo, hi));
  const auto x = v.get<long long>();
  if (x < lo || x > hi) throw Error(fmt::format("{}: '{}' = {} is out of range [{}, {}]", where, key, x, lo, hi));
  return static_cast<int>(x);
}

// cache_knees_mib: a non-empty array of whole numbers of MiB, 1..65536, increasing.
std::vector<int> parse_cache_knees(const json& v, const std::string& where) {
  if (!v.is_array() || v.empty() || v.size() > 8)
    throw Error(fmt::format("{}: 'cache_knees_mib' must be an array of 1 to 8 cache sizes in MiB, e.g. [2, 32]", where));
  std::vector<int> knees;
  for (const auto& x : v) {
    const int k = get_int(x, where, "cache_knees_mib", 1, 65536);
    if (!knees.empty() && k <= knees.back())
      throw Error(fmt::format("{}: 'cache_knees_mib' must increase ({} after {})", where, k, knees.back()));
    knees.push_back(k);
  }
  return knees;
}

}  // namespace

std::vector<std::string> config_names() { return {"paper", "default"}; }

Config named_config(std::string_view name) {
  if (name == "paper") return paper_config();
  if (name == "default") return default_config();
  throw Error(fmt::format("unknown configuration '{}' (named ones: paper, default; or a path to a JSON file)", name));
}

std::vector<std::string> feature_names_of_sets(const std::vector<std::string>& sets, const std::vector<int>& cache_knees_mib) {
  std::vector<std::string> out;
  bool specs = false, resources = false, llm = false, caches = false, products = false, roofline = false,
       blas = false;
  for (const auto& s : sets) {
    if (s == "model_specs") specs = true;
    else if (s == "resource_utilization") resources = true;
    else if (s == "llm_specs") llm = true;
    else if (s == "cpu_caches") caches = true;
    else if (s == "cpu_products") products = true;
    else if (s == "cpu_roofline") roofline = true;
    else if (s == "cpu_blas") blas = true;
    else
      throw Error(
          fmt::format("unknown feature set '{}' (expected model_specs, llm_specs, cpu_caches, cpu_products, cpu_roofline, cpu_blas or "
                      "resource_utilization)", s));
  }
  if (specs && llm) throw Error("feature sets 'model_specs' and 'llm_specs' exclude each other (pick one)");
  if (specs) out.insert(out.end(), kModelSpecs.begin(), kModelSpecs.end());
  if (llm) out.insert(out.end(), kLlmSpecs.begin(), kLlmSpecs.end());
  if (caches)
    for (int knee : cache_knees_mib) out.push_back(fmt::format("traffic_beyond_{}mib", knee));
  if (products) out.insert(out.end(), kCpuProducts.begin(), kCpuProducts.end());
  if (roofline) out.insert(out.end(), kCpuRoofline.begin(), kCpuRoofline.end());
  if (blas) out.insert(out.end(), kCpuBlas.begin(), kCpuBlas.end());
  if (resources) out.insert(out.end(), kResources.begin(), kResources.end());
  return out;
}

bool is_counted_feature(std::string_view name) {
  if (name.rfind("traffic_beyond_", 0) == 0 && is_traffic_beyond_feature(name)) return true;
  for (const auto* set : {&kModelSpecs, &kLlmSpecs, &kCpuProducts, &kCpuRoofline, &kCpuBlas})
    if (std::find(set->begin(), set->end(), name) != set->end()) return true;
  return false;
}

bool is_resource_feature(std::string_view name) {
  for (const auto& r : kResources)
    if (r == name) return true;
  return false;
}

Config config_from_json(const json& j, const std::string& where, Config c) {
  if (!j.is_object()) throw Error(fmt::format("{}: a configuration must be a JSON object", where));
  for (const auto& [key, v] : j.items()) {
    const char* k = key.c_str();
    if (key == "feature_sets") {
      if (!v.is_array() || v.empty()) throw Error(fmt::format("{}: 'feature_sets' must be a non-empty array", where));
      std::vector<std::string> sets;
      for (const auto& s : v) {
        if (!s.is_string()) throw Error(fmt::format("{}: 'feature_sets' must hold strings", where));
        sets.push_back(s.get<std::string>());
      }
      try {
        feature_names_of_sets(sets);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", where, e.what()));
      }
      c.feature_sets = sets;
    } else if (key == "cache_knees_mib") {
      c.cache_knees_mib = parse_cache_knees(v, where);
    } else if (key == "polynomial_features") {
      c.polynomial_features = get_bool(v, where, k);
    } else if (key == "training_strategy") {
      c.training_strategy = parse_enum(v, where, k, {Strategy::end2end, Strategy::stepwise, Strategy::unstructured, Strategy::none});
    } else if (key == "standardize_features") {
      c.standardize_features = get_bool(v, where, k);
    } else if (key == "tanh_scalar") {
      c.tanh_scalar = get_number(v, where, k, 0, 1e12, true);
    } else if (key == "normalize_loss_scale") {
      c.normalize_loss_scale = get_bool(v, where, k);
    } else if (key == "weighting_setting") {
      c.weighting_setting = parse_enum(v, where, k, {Weighting::close_to_one, Weighting::exact_one, Weighting::free});
    } else if (key == "polynomial_degree") {
      c.polynomial_degree = get_int(v, where, k, 1, 4);
    } else if (key == "epochs" || key == "num_epochs") {
      c.epochs = get_int(v, where, k, 0, 1000000);
    } else if (key == "learning_rate") {
      c.learning_rate = get_number(v, where, k, 0, 10, true);
    } else if (key == "seed") {
      if (!v.is_number_unsigned()) throw Error(fmt::format("{}: 'seed' must be a non-negative integer", where));
      c.seed = v.get<std::uint64_t>();
    } else if (key == "shuffle") {
      c.shuffle = get_bool(v, where, k);
    } else if (key == "l2") {
      c.l2 = get_number(v, where, k, 0, 1e6);
    } else if (key == "lr_schedule") {
      if (!v.is_string() || (v != "constant" && v != "linear" && v != "cosine"))
        throw Error(fmt::format("{}: 'lr_schedule' must be \"constant\", \"linear\" or \"cosine\"", where));
      c.lr_schedule = v.get<std::string>();
    } else if (key == "average_epochs") {
      c.average_epochs = get_int(v, where, k, 0, 1000000);
    } else if (key == "module_loss_weight") {
      c.module_loss_weight = get_number(v, where, k, 0, 1e6);
    } else if (key == "model_loss_weight") {
      c.model_loss_weight = get_number(v, where, k, 0, 1e6);
    } else if (key == "root_children_exact") {
      c.root_children_exact = get_bool(v, where, k);
    } else if (key == "root_tanh_scalar") {
      c.root_tanh_scalar = get_number(v, where, k, 0, 1e12);
    } else if (key == "root_polynomial_degree") {
      c.root_polynomial_degree = get_int(v, where, k, 0, 4);
    } else if (key == "leaf_model") {
      c.leaf_model = parse_enum(v, where, k, {LeafModel::linear, LeafModel::log_linear, LeafModel::relative, LeafModel::share});
    } else if (key == "interval_coverage") {
      c.interval_coverage = get_number(v, where, k, 0, 1, true);
      if (c.interval_coverage >= 1) throw Error(fmt::format("{}: 'interval_coverage' must be below 1", where));
    } else if (key == "own_ops") {
      c.own_ops = get_bool(v, where, k);
    } else if (key == "own_op_features") {
      if (!v.is_array() || v.empty())
        throw Error(fmt::format("{}: 'own_op_features' must be a non-empty array of names", where));
      std::vector<std::string> names;
      for (const auto& s : v) {
        if (!s.is_string()) throw Error(fmt::format("{}: 'own_op_features' must hold strings", where));
        names.push_back(s.get<std::string>());
      }
      try {
        own_feature_names(names);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", where, e.what()));
      }
      c.own_op_features = names;
    } else if (key == "monotone_leaves") {
      c.monotone_leaves = get_bool(v, where, k);
    } else if (key == "clamp_alpha_inputs") {
      c.clamp_alpha_inputs = get_bool(v, where, k);
    } else if (key == "hold_alpha_beyond_size") {
      c.hold_alpha_beyond_size = get_bool(v, where, k);
    } else if (key == "init") {
      if (!v.is_string() || (v != "torch" && v != "zero"))
        throw Error(fmt::format("{}: 'init' must be \"torch\" or \"zero\"", where));
      c.init = v.get<std::string>();
    } else if (key == "sort_trees") {
      c.sort_trees = get_bool(v, where, k);
    } else if (key == "target") {
      if (!v.is_string() || (v != "energy" && v != "time"))
        throw Error(fmt::format("{}: 'target' must be \"energy\" or \"time\"", where));
      c.target = target_from_string(v.get<std::string>());
    } else if (key == "name") {
      if (!v.is_string()) throw Error(fmt::format("{}: 'name' must be a string", where));
      c.name = v.get<std::string>();
    } else if (key == "base") {
      // handled by load_config; accepted here so that a saved configuration reads back
      if (!v.is_string()) throw Error(fmt::format("{}: 'base' must be a string", where));
    } else {
      throw Error(fmt::format("{}: unknown configuration key '{}'", where, key));
    }
  }
  return c;
}

json config_to_json(const Config& c) {
  json j;
  j["name"] = c.name;
  j["feature_sets"] = c.feature_sets;
  j["cache_knees_mib"] = c.cache_knees_mib;
  j["polynomial_features"] = c.polynomial_features;
  j["training_strategy"] = std::string(to_string(c.training_strategy));
  j["standardize_features"] = c.standardize_features;
  j["tanh_scalar"] = c.tanh_scalar;
  j["normalize_loss_scale"] = c.normalize_loss_scale;
  j["weighting_setting"] = std::string(to_string(c.weighting_setting));
  j["polynomial_degree"] = c.polynomial_degree;
  j["epochs"] = c.epochs;
  j["learning_rate"] = c.learning_rate;
  j["seed"] = c.seed;
  j["shuffle"] = c.shuffle;
  j["l2"] = c.l2;
  j["lr_schedule"] = c.lr_schedule;
  j["average_epochs"] = c.average_epochs;
  j["module_loss_weight"] = c.module_loss_weight;
  j["model_loss_weight"] = c.model_loss_weight;
  j["leaf_model"] = std::string(to_string(c.leaf_model));
  j["root_children_exact"] = c.root_children_exact;
  j["root_tanh_scalar"] = c.root_tanh_scalar;
  j["root_polynomial_degree"] = c.root_polynomial_degree;
  j["interval_coverage"] = c.interval_coverage;
  j["own_ops"] = c.own_ops;
  j["own_op_features"] = c.own_op_features;
  j["monotone_leaves"] = c.monotone_leaves;
  j["clamp_alpha_inputs"] = c.clamp_alpha_inputs;
  j["hold_alpha_beyond_size"] = c.hold_alpha_beyond_size;
  j["init"] = c.init;
  j["sort_trees"] = c.sort_trees;
  j["target"] = std::string(to_string(c.target));
  return j;
}

Config load_config(std::string_view name_or_path) {
  for (const auto& n : config_names())
    if (n == name_or_path) return named_config(n);
  const std::filesystem::path path{std::string(name_or_path)};
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error(fmt::format("unknown configuration '{}': not a named one (paper, default) and no such file",
                            name_or_path));
  const std::string text = read_file(path, std::uint64_t{16} << 20);
  const json j = parse_json_document(text, path.string(), "the configuration");
  // A file may start from a named configuration ("base": "paper"); otherwise from the default.
  Config base = named_config("default");
  if (j.is_object() && j.contains("base")) {
    if (!j["base"].is_string()) throw file_error(path, 0, "'base' must be a string");
    try {
      base = named_config(j["base"].get<std::string>());
    } catch (const Error& e) {
      throw file_error(path, 0, e.what());
    }
  }
  base.name = path.string();
  return config_from_json(j, path.string(), base);
}

void apply_config_override(Config& c, std::string_view assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw Error(fmt::format("--set '{}': expected key=value", assignment));
  const std::string key(assignment.substr(0, eq));
  const std::string text(assignment.substr(eq + 1));
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // a bare word: a string
  } catch (const json::exception& e) {
    throw Error(fmt::format("--set {}: {}", key, json_error_text(e)));  // e.g. a number too large (1e999)
  }
  if ((key == "feature_sets" || key == "own_op_features") && value.is_string()) {
    // "model_specs,resource_utilization"
    json arr = json::array();
    std::string s = value.get<std::string>();
    std::size_t start = 0;
    while (start <= s.size()) {
      auto comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      arr.push_back(s.substr(start, comma - start));
      start = comma + 1;
    }
    value = arr;
  }
  json j = json::object();
  j[key] = value;
  const std::string name = c.name;
  c = config_from_json(j, fmt::format("--set {}", key), c);
  c.name = name;
}

}  // namespace irene::predict
