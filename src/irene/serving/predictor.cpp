#include "irene/serving/predictor.hpp"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "irene/arch/builder.hpp"
#include "irene/arch/family_table.hpp"
#include "irene/arch/module_kind.hpp"
#include "irene/arch/registry.hpp"
#include "irene/arch/weight_format.hpp"
#include "irene/core/error.hpp"
#include "irene/predict/model.hpp"

namespace irene::serving {

namespace {

constexpr double kLaunchSeconds = 1e-6;  // nominal time of one kernel launch (units of n_u)
constexpr double kShrink = 0.1;          // pull of each time regressor's coefficient toward the shared one
// Pulls of the energy regressors tried by cross-validation over the training rows' models (the one
// with the least error wins; kEnergyPull where fewer than three models leave nothing to choose on).
constexpr double kEnergyPulls[] = {0.001, 0.003, 0.01, 0.03, 0.1};
constexpr double kEnergyPull = 0.01;
// Reweighting rounds of the ITL's least-absolute-relative-error fit (fit_time). Median ITL error of
// the table's leave-one-model-out, B200 / H100: 5 rounds 17.3 / 9.1%, 10 rounds 17.0 / 9.0%, 20
// rounds 17.0 / 8.9% (least squares: 20.3 / 10.1%).
constexpr int kLeastAbsoluteIterations = 10;
constexpr int kPullFolds = 5;  // groups of models of that cross-validation (each model alone when fewer)
constexpr std::size_t kMaxDistributionLengths = 64;  // lengths of one prompt or output distribution
// The memory coefficients a_k are energies per byte streamed, the same on every GPU (an HBM
// access costs about the same per byte on HBM3 and HBM3e, whatever the chip's power limit), in
// units of this many joules per byte: an H100 SXM's TDP over its bandwidth (700 W / 3.35 TB/s),
// so that on an H100 a_k still reads as a share of the TDP per GPU-second of streaming.
constexpr double kJoulesPerByteUnit = 700.0 / 3.35e12;
// TDP-seconds of the row's hardware per unit of a_k x (GPU-seconds of streaming)
double memory_scale(const hardware::Profile& hw) { return hw.memory_bandwidth * kJoulesPerByteUnit / hw.tdp_watts; }
constexpr double kElement = 2;           // bytes of activations and of the key/value cache (bfloat16)

// Key/value heads of the model (num_kv_heads, or every head when the config has none).
double kv_heads(const ModelConfig& config) {
  return static_cast<double>(config.num_kv_heads > 0 ? config.num_kv_heads : config.num_heads);
}

// The one rule of arch/weight_format.hpp: fp8 with 128x128 float32 block scales, mxfp4 4.25 bits.
double lower_case_precision_bytes(std::string_view p) {
  if (p == "bfloat16" || p == "float16" || p == "bf16" || p == "fp16") return 2;
  WeightQuant q;
  if (p == "fp8" || p == "float8") q.format = WeightFormat::Fp8;
  else if (p == "mxfp4" || p == "fp4" || p == "nvfp4") q.format = WeightFormat::Mxfp4;
  else if (p == "float32") return 4;
  else return 0;
  return irene::weight_bytes_per_parameter(q, 2);
}

// Where the serving engine fuses what Hugging Face's eager code launches one by one (vLLM's
// CUDA kernels), a unit's kernel launches follow the engine:
//   * a normalization (LayerNorm, RMSNorm, GemmaRMSNorm) is one kernel (the eager code's float32
//     upcast, power, mean, rsqrt and products are eight). Its bytes stay as the registry counts
//     them (36 per element, the eager float32 path): tried at the fused kernel's (input and output
//     once in bfloat16, 4 per element), the cross-validation on the serving table got worse (H100
//     all rows 8.9 -> 9.5%, leaving the chat task out 18.6 -> 22.8%): the larger count stands in
//     for per-token activation work the step counts nowhere else;
//   * a residual add outside attention is fused into the normalization after it
//     (fused_add_rms_norm): no kernel of its own (its bytes stay, the fused kernel moves them);
//   * the rotary embedding is one kernel per rotated tensor (queries, keys); its cos/sin are a
//     table computed at load (no kernel per step);
//   * no causal mask is built in a decode step (paged attention masks by sequence length);
//   * a feed-forward module's product (act(gate) x up: silu_and_mul; expert outputs x routing
//     weights: inside the fused MoE kernel) has no kernel of its own.
// Every other unit launches what the registry counts.
bool is_normalization(const std::string& class_name) {
  return class_name == "RMSNorm" || class_name == "GemmaRMSNorm" || class_name == "LayerNorm";
}

int engine_op_kernels(const Op& op, ModuleKind module, int eager) {
  if (op.kind == "add") return module == ModuleKind::attention ? eager : 0;
  if (op.kind == "rotary") return 1;
  if (op.kind == "rotary_cos_sin" || op.kind == "causal_mask") return 0;
  if (op.kind == "mul" && (module == ModuleKind::feed_forward || module == ModuleKind::experts)) return 0;
  return eager;
}

// The units of one pass of `tree` (see predictor.hpp). `scale` multiplies bytes and FLOPs;
// `prefill`: no weight traffic, no launches of its own, node indices mapped into `target`.
void add_units(const Tree& tree, const ModelConfig& config, const Workload& w, const hardware::Profile& hw,
               double scale, bool prefill, const Tree& target, const std::vector<bool>& replicated,
               std::vector<Unit>& out) {
  const double wb = weight_bytes_per_parameter(w.precision);
  const double linear_peak = hw.peak_flops(w.precision);
  const double kv_bytes = kv_cache_element_bytes(w.kv_cache_dtype, "--kv-cache-dtype");
  // Families whose attention has no sdpa form here (gpt_oss's sinks, deepseek_v3's latent
  // attention) are built eager; a serving engine runs each attention module's products and
  // softmax as one fused kernel (FlashAttention with sinks, FlashMLA), so they become one
  // ScaledDotProductAttention unit per module: their FLOPs, and the bytes of the fused kernel
  // (queries and outputs once, the cache read once).
  struct Fused {
    double flops = 0, b = 0, h = 0, m = 0, t = 0, qk = 0;
    bool sinks = false, seen_softmax = false;
  };
  std::map<int, Fused> fused;
  const bool eager = tree.attention == "eager";
  const auto fused_leaf = [&](const Node& n) {
    return eager && n.is_leaf() &&
           (n.class_name == "MatMul" || n.class_name == "Softmax" || n.class_name == "AttentionSinks");
  };
  for (const Node& n : tree.nodes) {
    if (!fused_leaf(n)) continue;
    Fused& f = fused[n.parent];
    f.flops += n.flops_mflop * 1e6;
    if (n.class_name == "AttentionSinks") f.sinks = true;
    if (n.class_name == "MatMul" && f.qk == 0) f.qk = attr(n, "k");  // query . key width of the first product
    if (n.class_name == "Softmax" && !f.seen_softmax) {
      f.seen_softmax = true;
      f.b = attr(n, "batch");
      f.h = attr(n, "heads");
      f.m = attr(n, "m");
      f.t = attr(n, "n");
    }
  }
  // The module's own operations on the scores [batch, heads, rows, keys] (the softmax's shape:
  // scaling, mask and score-part adds, the sinks' max subtraction) run inside the fused kernel
  // too, which never writes the scores to memory.
  const auto on_scores = [&](int module, const Op& op) {
    const auto it = fused.find(module);
    if (it == fused.end() || !it->second.seen_softmax || op.shape.size() != 4 || op.kind == "rotary" ||
        op.kind == "cache_cat")
      return false;
    const Fused& f = it->second;
    return op.shape[0] == f.b && op.shape[1] == f.h && op.shape[2] == f.m && std::abs(op.shape[3] - f.t) <= 1;
  };
  const std::vector<ModuleKind> kinds = module_kinds_of(tree);
  for (int i = 0; i < static_cast<int>(tree.nodes.size()); ++i) {
    const Node& n = tree.nodes[i];
    const int node = prefill ? std::max(0, target.find_id(n.id)) : i;
    const bool copies = !prefill && w.data_parallel > 1 && replicated[static_cast<std::size_t>(node)];
    if (fused_leaf(n)) continue;  // counted in the pass above
    if (n.is_leaf()) {
      const Primitive* prim = find_primitive(n.class_name);
      if (!prim) throw Error(fmt::format("{}: no primitive '{}' in the registry", n.id, n.class_name));
      Unit u;
      u.node = node;
      u.key = prim->class_name;
      u.flops = n.flops_mflop * 1e6;
      u.bytes = primitive_traffic(n, kElement);
      u.kernels = primitive_kernels(n, kElement);
      u.peak = hw.peak_bf16;
      if (u.key == "Linear") {
        // The parameters the call reads: a mixture's experts, those its tokens choose.
        const double experts = static_cast<double>(n.attrs.count("num_experts") ? std::max<std::int64_t>(1, attr(n, "num_experts")) : 1);
        const double params = static_cast<double>(n.num_parameters) * routed_active_experts(n.attrs) / experts;
        u.bytes += params * (prefill ? -kElement : wb - kElement);
        // Attention run data-parallel: every rank reads the weights for its own sequences.
        if (copies) u.bytes += params * wb * (w.data_parallel - 1);
        u.peak = linear_peak;
        // Distinct kernels, distinct regressors: a mixture's experts run as a fused (grouped)
        // MoE kernel, quantized weights as block-scaled GEMMs.
        if (experts > 1) u.key += ":experts";
        if (wb != kElement) u.key += ":" + std::string(w.precision);
      } else if (is_normalization(u.key)) {
        u.kernels = 1;  // one fused kernel; its bytes as counted (see is_normalization)
      } else if (u.key == "Embedding" && prefill) {
        // gathered rows only (no table traffic beyond them): as counted
      } else if (u.key == "ScaledDotProductAttention") {
        // paged attention reads each key/value head once (no repeated heads)
        const double b = attr(n, "batch"), h = attr(n, "heads"), m = attr(n, "m"), nn = attr(n, "n"),
                     d = attr(n, "d");
        const double kv = kv_heads(config);
        u.cache_bytes = b * kv * 2 * nn * d * kv_bytes;
        u.bytes = b * h * 2 * m * d * kElement + u.cache_bytes;
      }
      u.bytes = std::max(0.0, u.bytes) * scale;
      u.cache_bytes *= scale;
      u.flops *= scale;
      if (prefill) u.kernels = 0;
      u.prefill = prefill;
      out.push_back(u);
      continue;
    }
    std::map<std::string, Unit> by_kind;
    for (const Op& op : n.ops) {
      if (op.kind == "repeat_kv") continue;  // the engine's attention reads grouped heads in place
      if (on_scores(i, op)) continue;         // inside the fused attention
      const Counts c = count_op(op, kElement);
      const OpKind* k = find_op_kind(op.kind);
      Unit& u = by_kind[op.kind];
      u.node = node;
      u.key = "op:" + op.kind;
      u.peak = hw.peak_bf16;
      u.prefill = prefill;
      if (op.kind == "cache_cat") {
        // the new position written in place: [b, kv, past + 1, d] -> [b, kv, 1, d]
        const double len = op.shape.size() >= 3 && op.shape[2] > 0 ? static_cast<double>(op.shape[2]) : 1;
        u.bytes += static_cast<double>(elements(op.shape)) / len * kElement * scale;
      } else {
        u.bytes += c.bytes * scale;
        u.flops += c.flops * scale;
      }
      if (!prefill && k) u.kernels += engine_op_kernels(op, kinds[static_cast<std::size_t>(i)], k->kernels);
    }
    for (auto& [kind, u] : by_kind) out.push_back(u);
  }
  for (const auto& [module, f] : fused) {
    const Node& attn = tree.nodes[static_cast<std::size_t>(module)];
    const double t = f.t - (f.sinks ? 1 : 0);  // the sinks' column is not a cached position
    Unit u;
    u.node = prefill ? std::max(0, target.find_id(attn.id)) : module;
    u.key = "ScaledDotProductAttention";
    u.flops = f.flops * scale;
    u.peak = hw.peak_bf16;
    u.prefill = prefill;
    u.kernels = prefill ? 0 : 1;
    if (attn.attrs.count("kv_lora_rank")) {
      const double latent = attr(attn, "kv_lora_rank"), rope = attr(attn, "qk_rope_head_dim"),
                   v = attr(attn, "v_head_dim");
      // absorbed (decode): the latent cache once
      u.cache_bytes = tree.is_decode() ? f.b * t * (latent + rope) * kv_bytes : 0;
      u.bytes = tree.is_decode()
                    // absorbed: queries of latent + rope, outputs of the latent, the latent cache once
                    ? f.b * f.h * f.m * (2 * latent + rope) * kElement + u.cache_bytes
                    // expanded keys and values of every head (activations of the prefill)
                    : f.b * f.h * (f.m + t) * (f.qk + v) * kElement;
    } else {
      // head_dim and kv_heads where the family's attention module records them (gpt2's and
      // ctrl's do not: every head is a key/value head of hidden / heads)
      const double d = static_cast<double>(attn.attrs.count("head_dim") ? attr(attn, "head_dim") : config.head_size());
      const double kv = attn.attrs.count("kv_heads") ? static_cast<double>(attr(attn, "kv_heads")) : kv_heads(config);
      u.cache_bytes = f.b * kv * 2 * t * d * kv_bytes;
      u.bytes = f.b * f.h * 2 * f.m * d * kElement + u.cache_bytes;
    }
    u.bytes *= scale;
    u.cache_bytes *= scale;
    out.push_back(u);
  }
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

// Per-regressor GPU-seconds of a step: memory (m) and arithmetic (c).
struct Aggregate {
  std::map<std::string, double> m, c, r;  // r: roofline seconds, sum of max(m_u, c_u)
  double n = 0;  // launch GPU-seconds, all GPUs
};

Aggregate aggregate(const StepWork& w) {
  Aggregate a;
  const double g = w.workload.gpus;
  for (const Unit& u : w.units) {
    a.m[u.key] += u.bytes / w.hw.memory_bandwidth;
    a.c[u.key] += u.flops / u.peak;
    a.r[u.key] += std::max(u.bytes / w.hw.memory_bandwidth, u.flops / u.peak);
    a.n += u.kernels * g * kLaunchSeconds;
  }
  return a;
}

double coef(const std::map<std::string, double>& m, const std::string& k, double fallback) {
  const auto it = m.find(k);
  return it == m.end() ? fallback : it->second;
}

// Non-negative least squares of rows (already divided by their labels) with penalty rows
// sqrt(shrink x rows) (x_k - x_shared) for each pair in `pulls`.
Eigen::VectorXd fit_pulled(const Eigen::MatrixXd& x, const Eigen::VectorXd& y,
                           const std::vector<std::pair<int, int>>& pulls, double shrink = kShrink) {
  const long rows = x.rows();
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(rows + static_cast<long>(pulls.size()), x.cols());
  Eigen::VectorXd b = Eigen::VectorXd::Zero(a.rows());
  a.topRows(rows) = x;
  b.head(rows) = y;
  const double w = std::sqrt(shrink * static_cast<double>(rows));
  for (std::size_t i = 0; i < pulls.size(); ++i) {
    a(rows + static_cast<long>(i), pulls[i].first) = w;
    a(rows + static_cast<long>(i), pulls[i].second) = -w;
  }
  return predict::nonnegative_least_squares(a, b, std::vector<char>(x.cols(), 1));
}

// The energy pull with the least cross-validated error within the rows (already divided by their
// labels, so that a row's prediction / measurement is x.row(i) . c). The models are dealt into
// min(models, kPullFolds) groups in turn (model i to group i mod groups); each group is held out
// once; the error is the mean over held-out models of their rows' mean |x.row(i) . c - 1|.
double choose_energy_pull(const Eigen::MatrixXd& x, const std::vector<int>& model,
                          const std::vector<std::pair<int, int>>& pulls) {
  const int models = model.empty() ? 0 : *std::max_element(model.begin(), model.end()) + 1;
  if (models < 3) return kEnergyPull;
  const int groups = std::min(models, kPullFolds);
  double best = kEnergyPull, best_err = std::numeric_limits<double>::infinity();
  for (const double pull : kEnergyPulls) {
    double err = 0;
    for (int held = 0; held < groups; ++held) {
      std::vector<long> train;
      std::map<int, std::vector<long>> test;  // per held-out model
      for (long i = 0; i < x.rows(); ++i) {
        const int m = model[static_cast<std::size_t>(i)];
        if (m % groups == held)
          test[m].push_back(i);
        else
          train.push_back(i);
      }
      if (test.empty() || train.empty()) continue;
      const Eigen::MatrixXd xt = x(train, Eigen::all);
      const Eigen::VectorXd c = fit_pulled(xt, Eigen::VectorXd::Ones(xt.rows()), pulls, pull);
      for (const auto& [m, rows] : test) {
        double e = 0;
        for (long i : rows) e += std::abs(x.row(i).dot(c) - 1);
        err += e / static_cast<double>(rows.size());
      }
    }
    if (err < best_err) {
      best_err = err;
      best = pull;
    }
  }
  return best;
}

// Fits a time model (TimeModel) on `label_s`, seconds per step, one per run: least squares of
// the relative errors, or with `least_absolute` least absolute relative errors (the ITL: the
// table's median ITL, predicted for the median run).
TimeModel fit_time(const std::vector<const PreparedRun*>& runs, const std::vector<Aggregate>& agg,
                   const std::vector<std::string>& keys, const std::vector<double>& label_s, bool least_absolute) {
  const int nk = static_cast<int>(keys.size());
  const long n = static_cast<long>(runs.size());
  // tau0, gamma, delta, tau_seq, tau_allreduce, alpha_shared, beta_shared, tau_dp_seq, alpha_k...,
  // beta_k...
  constexpr int T = 8;
  Eigen::MatrixXd xt = Eigen::MatrixXd::Zero(n, T + 2 * nk);
  Eigen::VectorXd yt = Eigen::VectorXd::Ones(n);
  std::vector<std::pair<int, int>> pulls;
  for (int k = 0; k < nk; ++k) {
    pulls.emplace_back(T + k, 5);
    pulls.emplace_back(T + nk + k, 6);
  }
  for (long i = 0; i < n; ++i) {
    const StepWork& w = runs[i]->work;
    const double g = w.workload.gpus, label = label_s[static_cast<std::size_t>(i)];
    // no unit runs faster than its roofline (datasheet bandwidth and peak): alpha_k = 1 + (>= 0)
    double roofline = 0;
    for (const auto& [k, r] : agg[i].r) roofline += r / g;
    yt(i) = 1 - roofline / label;
    xt(i, 0) = 1;
    xt(i, 1) = agg[i].n / g;
    xt(i, 2) = w.allreduce_s;
    xt(i, 3) = w.workload.batch;
    xt(i, 4) = w.allreduces;
    xt(i, 7) = w.workload.data_parallel > 1 ? w.workload.batch : 0;
    for (int k = 0; k < nk; ++k) {
      xt(i, T + k) = coef(agg[i].r, keys[k], 0) / g;
      xt(i, T + nk + k) = coef(agg[i].c, keys[k], 0) / g;
    }
    xt.row(i) /= label;
  }
  Eigen::VectorXd ct = fit_pulled(xt, yt, pulls);
  if (least_absolute) {
    // Iteratively reweighted: each row weighted by 1 / |its relative error| (floored at 1%), so
    // that the squares become absolute errors and a few runs far off the physics (a host-side
    // floor under the ITL) do not bend the fit for the rest.
    for (int it = 0; it < kLeastAbsoluteIterations; ++it) {
      Eigen::MatrixXd xw = xt;
      Eigen::VectorXd yw = yt;
      for (long i = 0; i < n; ++i) {
        const double w = 1.0 / std::sqrt(std::max(std::abs(xt.row(i).dot(ct) - yt(i)), 0.01));
        xw.row(i) *= w;
        yw(i) *= w;
      }
      ct = fit_pulled(xw, yw, pulls);
    }
  }
  TimeModel m;
  m.tau0 = ct(0);
  m.gamma = ct(1);
  m.delta = ct(2);
  m.tau_seq = ct(3);
  m.tau_allreduce = ct(4);
  m.alpha_shared = 1 + ct(5);
  m.beta_shared = ct(6);
  m.tau_dp_seq = ct(7);
  for (int k = 0; k < nk; ++k) {
    m.alpha[keys[k]] = 1 + ct(T + k);
    m.beta[keys[k]] = ct(T + nk + k);
  }
  return m;
}

// The GPU-seconds of one unit by a time model: the roofline term (on the memory side where the
// unit is memory-bound, else on the compute side), the extra compute and the launches.
struct UnitTime {
  double memory_s = 0, compute_s = 0, launch_s = 0;  // GPU-seconds
};
UnitTime unit_time(const TimeModel& t, const Unit& u, const StepWork& w) {
  const double g = w.workload.gpus;
  const double m = u.bytes / w.hw.memory_bandwidth, c = u.flops / u.peak, nk = u.kernels * g * kLaunchSeconds;
  const double roofline = coef(t.alpha, u.key, t.alpha_shared) * std::max(m, c);
  UnitTime r;
  r.memory_s = m >= c ? roofline : 0;
  r.compute_s = (m >= c ? 0 : roofline) + coef(t.beta, u.key, t.beta_shared) * c;
  r.launch_s = t.gamma * nk;
  return r;
}

// The step's time by a time model, seconds.
double step_time(const TimeModel& t, const StepWork& w) {
  double s = t.tau0 + t.tau_seq * w.workload.batch + t.delta * w.allreduce_s + t.tau_allreduce * w.allreduces +
             (w.workload.data_parallel > 1 ? t.tau_dp_seq * w.workload.batch : 0);
  for (const Unit& u : w.units) {
    const UnitTime ut = unit_time(t, u, w);
    s += (ut.memory_s + ut.compute_s + ut.launch_s) / w.workload.gpus;
  }
  return s;
}

}  // namespace

namespace {

// task_output_shape's groups (see the header for how they were made from the published
// histograms); their shares add up to 1.
const std::vector<std::pair<double, double>> kChatOutputs = {
    {0.046, 0.05}, {0.061, 0.05}, {0.094, 0.05}, {0.114, 0.05}, {0.161, 0.05}, {0.268, 0.05},
    {0.337, 0.05}, {0.458, 0.05}, {0.562, 0.05}, {0.693, 0.05}, {0.819, 0.05}, {0.953, 0.05},
    {1.087, 0.05}, {1.232, 0.05}, {1.376, 0.05}, {1.546, 0.05}, {1.760, 0.05}, {2.049, 0.05},
    {2.335, 0.02}, {2.563, 0.02}, {2.872, 0.02}, {3.367, 0.02}, {4.147, 0.01}, {5.489, 0.01}};
const std::vector<std::pair<double, double>> kGpqaOutputs = {
    {0.174, 0.05}, {0.232, 0.05}, {0.290, 0.05}, {0.392, 0.05}, {0.482, 0.05}, {0.532, 0.05},
    {0.597, 0.05}, {0.633, 0.05}, {0.704, 0.05}, {0.800, 0.05}, {0.888, 0.05}, {0.976, 0.05},
    {1.048, 0.05}, {1.147, 0.05}, {1.289, 0.05}, {1.407, 0.05}, {1.565, 0.05}, {1.762, 0.05},
    {1.963, 0.02}, {2.111, 0.02}, {2.314, 0.02}, {2.632, 0.02}, {3.098, 0.01}, {4.275, 0.01}};
const std::vector<std::pair<double, double>> kFimOutputs = {
    {0.087, 0.05}, {0.089, 0.05}, {0.091, 0.05}, {0.165, 0.05}, {0.247, 0.05}, {0.251, 0.05},
    {0.255, 0.05}, {0.261, 0.05}, {0.374, 0.05}, {0.415, 0.05}, {0.448, 0.05}, {0.574, 0.05},
    {0.658, 0.05}, {0.794, 0.05}, {0.969, 0.05}, {1.203, 0.05}, {1.539, 0.05}, {2.056, 0.05},
    {2.616, 0.02}, {3.121, 0.02}, {4.005, 0.02}, {5.987, 0.02}, {7.929, 0.01}, {8.234, 0.01}};

const std::vector<ServingTask> kServingTasks = {
    {"lm-arena-chat", 180, &kChatOutputs},
    {"gpqa", 260, &kGpqaOutputs},
    {"sourcegraph-fim", 1200, &kFimOutputs},
};

}  // namespace

const std::vector<ServingTask>& serving_tasks() { return kServingTasks; }

const ServingTask* find_serving_task(std::string_view name) {
  for (const ServingTask& t : kServingTasks)
    if (t.name == name) return &t;
  return nullptr;
}

double task_prompt_tokens(std::string_view task) {
  const ServingTask* t = find_serving_task(task);
  return t ? t->prompt_tokens : 256;
}

const std::vector<std::pair<double, double>>& task_output_shape(std::string_view task) {
  static const std::vector<std::pair<double, double>> none;
  const ServingTask* t = find_serving_task(task);
  return t ? *t->output_shape : none;
}

std::vector<std::pair<double, double>> task_output_distribution(std::string_view task, double mean_tokens) {
  const auto& shape = task_output_shape(task);
  double total = 0, m1 = 0;
  for (const auto& [x, share] : shape) {
    total += share;
    m1 += share * x;
  }
  std::vector<std::pair<double, double>> d;
  d.reserve(shape.size());
  // The shares as printed add up to 1 and their lengths' mean to 1 within the rounding of the
  // table; both are made exact, so that the distribution's mean is the workload's.
  for (const auto& [x, share] : shape) d.emplace_back(x / m1 * total * mean_tokens, share / total);
  return d;
}

ModelConfig load_serving_model(std::string_view name) {
  try {
    return load_model_config(name);
  } catch (const Error&) {
    const std::filesystem::path p =
        std::filesystem::path(IRENE_SOURCE_DIR) / "configs" / "serving-models" / std::string(name) / "config.json";
    std::error_code ec;
    if (name.find("..") == std::string_view::npos && !name.empty() && name.front() != '/' &&
        std::filesystem::is_regular_file(p, ec))
      return load_model_config(p.string());
    throw;
  }
}

double weight_bytes_per_parameter(std::string_view precision) {
  const double b = lower_case_precision_bytes(precision);
  if (b == 0)
    throw Error(fmt::format("unknown weight precision '{}': expected bfloat16, float16, fp8 or mxfp4", precision));
  return b;
}

namespace {

// E[X^2] of a length distribution, or of the mean alone where it is empty (its E[X] is the mean:
// step_work checks it).
double mean_square(const std::vector<std::pair<double, double>>& dist, double mean) {
  if (dist.empty()) return mean * mean;
  double m2 = 0;
  for (const auto& [x, share] : dist) m2 += share * x * x;
  return m2;
}

// The checks of a workload's length distribution (step_work's errors).
void check_distribution(const std::vector<std::pair<double, double>>& dist, double mean, const char* what, bool zero_ok) {
  if (dist.empty()) return;
  if (dist.size() > kMaxDistributionLengths)
    throw Error(fmt::format("{} distribution: {} lengths, more than {}", what, dist.size(), kMaxDistributionLengths));
  double total = 0, m1 = 0;
  for (const auto& [x, share] : dist) {
    if (!std::isfinite(x) || x > 1e7 || (zero_ok ? x < 0 : x <= 0))
      throw Error(fmt::format("{} distribution: length {} is not a number of tokens in {}..1e7", what, x, zero_ok ? 0 : 1));
    if (!(share > 0) || !std::isfinite(share))
      throw Error(fmt::format("{} distribution: share {} of length {} is not positive", what, share, x));
    total += share;
    m1 += share * x;
  }
  if (std::abs(total - 1) > 1e-9)
    throw Error(fmt::format("{} distribution: shares sum to {}, not 1", what, total));
  if (std::abs(m1 - mean) > 1e-9 * std::max(1.0, mean))
    throw Error(fmt::format("{} distribution: its mean {} is not the workload's {}", what, m1, mean));
}

}  // namespace

double mean_context_in_flight(const Workload& w) {
  return w.prompt_tokens + mean_square(w.output_distribution, w.output_tokens) / (2 * w.output_tokens);
}

double mean_final_length_in_flight(const Workload& w) {
  return w.prompt_tokens + mean_square(w.output_distribution, w.output_tokens) / w.output_tokens;
}

nlohmann::json distribution_to_json(const std::vector<std::pair<double, double>>& d) {
  if (d.empty()) return nullptr;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [tokens, share] : d) out.push_back({{"tokens", tokens}, {"share", share}});
  return out;
}

StepWork step_work(const ModelConfig& config, const Workload& w, const hardware::Profile& hw) {
  if (w.gpus < 1) throw Error(fmt::format("--tensor-parallel must be at least 1, got {}", w.gpus));
  if (!(w.batch > 0) || !std::isfinite(w.batch) || w.batch > 1e6)
    throw Error(fmt::format("sequences in flight must be a positive number up to 1e6, got {}", w.batch));
  if (!(w.output_tokens > 0) || !std::isfinite(w.output_tokens) || w.output_tokens > 1e7)
    throw Error(fmt::format("output tokens must be a positive number up to 1e7, got {}", w.output_tokens));
  if (!(w.prompt_tokens >= 0) || !std::isfinite(w.prompt_tokens) || w.prompt_tokens > 1e7)
    throw Error(fmt::format("prompt tokens must be a number in 0..1e7, got {}", w.prompt_tokens));
  if (w.data_parallel < 1 || w.gpus % w.data_parallel != 0)
    throw Error(fmt::format("data-parallel ranks ({}) must divide the {} GPUs", w.data_parallel, w.gpus));
  if (config.num_heads % (w.gpus / w.data_parallel) != 0)
    throw Error(fmt::format("{}: {} attention heads cannot be split across {} GPUs", config.name, config.num_heads,
                            w.gpus));
  check_distribution(w.prompt_distribution, w.prompt_tokens, "prompt", true);
  check_distribution(w.output_distribution, w.output_tokens, "output", false);
  weight_bytes_per_parameter(w.precision);
  StepWork s;
  s.hw = hw;
  s.workload = w;
  s.layers = static_cast<int>(config.num_layers);
  BuildOptions step;
  step.phase = kDecode;
  step.past = std::max(1, static_cast<int>(std::lround(mean_context_in_flight(w))));
  step.dtype = "bfloat16";
  // sdpa where the family has it; otherwise eager, its attention fused by add_units.
  const std::string attention = family_of(config).sdpa ? "sdpa" : "eager";
  step.attention = attention;
  step.allow_long = true;
  step.weights = "same";  // the workload's precision sets the weight bytes (add_units), not the config
  const int batch = std::max(1, static_cast<int>(std::lround(w.batch)));
  s.tree = build_tree(config, batch, 1, step);
  s.tree.provenance["hardware"] = hw.name;
  // Nodes inside attention modules: replicated on every data-parallel rank.
  std::vector<bool> replicated(s.tree.nodes.size(), false);
  {
    const std::vector<ModuleKind> kinds = module_kinds_of(s.tree);
    for (std::size_t i = 1; i < s.tree.nodes.size(); ++i) {
      const int parent = s.tree.nodes[i].parent;
      replicated[i] = replicated[static_cast<std::size_t>(parent)] ||
                      (!s.tree.nodes[i].is_leaf() && kinds[i] == ModuleKind::attention);
    }
  }
  add_units(s.tree, config, w, hw, w.batch / batch, false, s.tree, replicated, s.units);
  // The prefills: requests per step of each prompt length (B / E[O] in all), rounded to whole tokens.
  std::map<int, double> prompts;
  if (w.prompt_distribution.empty())
    prompts[static_cast<int>(std::lround(w.prompt_tokens))] = 1;
  else
    for (const auto& [x, share] : w.prompt_distribution) prompts[static_cast<int>(std::lround(x))] += share;
  for (const auto& [prompt, share] : prompts) {
    if (prompt < 1) continue;
    BuildOptions pre;
    pre.dtype = "bfloat16";
    pre.attention = attention;
    pre.allow_long = true;
    pre.weights = "same";
    pre.last_token_logits = true;
    const Tree prefill = build_tree(config, 1, prompt, pre);
    add_units(prefill, config, w, hw, w.batch * share / w.output_tokens, true, s.tree, replicated, s.units);
  }
  const double g = w.gpus;
  if (w.gpus > 1) {
    const double tokens = w.batch * (1 + w.prompt_tokens / w.output_tokens);
    const double bytes = 2.0 * s.layers * 2 * (g - 1) / g * tokens * static_cast<double>(config.hidden_size) * kElement;
    s.allreduce_s = bytes / hw.interconnect_bandwidth;
    // Attention run data-parallel needs no all-reduce of its own; the experts' dispatch and
    // combine move the same [tokens, hidden] rows.
    s.allreduces = (w.data_parallel > 1 ? 1.0 : 2.0) * s.layers;
    s.allreduce_s *= s.allreduces / (2.0 * s.layers);
  }
  const double wb = weight_bytes_per_parameter(w.precision);
  const double kv = kv_heads(config);
  // Cache per token: keys and values of every layer; latent attention keeps its latent and rotary key.
  double cache_elements = 2.0 * kv * static_cast<double>(config.head_size());
  for (const Node& n : s.tree.nodes)
    if (n.attrs.count("kv_lora_rank")) {
      cache_elements = static_cast<double>(attr(n, "kv_lora_rank") + attr(n, "qk_rope_head_dim"));
      break;
    }
  const double kv_per_token =
      s.layers * cache_elements * kv_cache_element_bytes(w.kv_cache_dtype, "--kv-cache-dtype");
  s.weight_bytes = static_cast<double>(s.tree.root().num_parameters) * wb;
  s.kv_bytes = w.batch * step.past * kv_per_token;
  double largest_activation = 0;
  for (const Unit& u : s.units) {
    s.flops += u.flops;
    if (u.prefill) continue;
    const Node& n = s.tree.nodes[u.node];
    const double weights = u.key == "Linear" ? static_cast<double>(n.num_parameters) * wb : 0;
    largest_activation = std::max(largest_activation, u.bytes - weights);
  }
  // Attention run data-parallel: each of the D ranks holds the attention weights, split over
  // its G / D GPUs, so a GPU holds D / G of them; the other weights are split over all G.
  double attention_params = 0;
  for (std::size_t i = 1; i < s.tree.nodes.size(); ++i)
    if (replicated[i] && !replicated[static_cast<std::size_t>(s.tree.nodes[i].parent)])
      attention_params += static_cast<double>(s.tree.nodes[i].num_parameters);
  const double attention_weights = attention_params * wb;
  s.memory.weights_bytes = (s.weight_bytes - attention_weights) / g + attention_weights * w.data_parallel / g;
  s.memory.kv_cache_bytes = w.batch * mean_final_length_in_flight(w) * kv_per_token / g;
  s.memory.activations_bytes = largest_activation / g;
  return s;
}

ServingPredictor fit_serving(const std::vector<const PreparedRun*>& runs, std::optional<double> energy_pull) {
  if (runs.empty()) throw Error("no measured runs to fit the serving predictor on");
  ServingPredictor p;
  std::set<std::string> keys, hw, models;
  std::vector<Aggregate> agg;
  for (const PreparedRun* r : runs) {
    agg.push_back(aggregate(r->work));
    for (const auto& [k, v] : agg.back().m) keys.insert(k);
    hw.insert(r->work.hw.name);
    models.insert(r->run->model_id);
  }
  p.keys.assign(keys.begin(), keys.end());
  p.hardware.assign(hw.begin(), hw.end());
  p.models.assign(models.begin(), models.end());
  p.runs = static_cast<long>(runs.size());
  {
    ServingSpan& sp = p.span;
    constexpr double inf = std::numeric_limits<double>::infinity();
    sp.parameters_lo = sp.batch_lo = sp.context_lo = sp.gpus_lo = sp.data_parallel_lo = inf;
    sp.parameters_hi = sp.batch_hi = sp.context_hi = sp.gpus_hi = sp.data_parallel_hi = -inf;
    const auto widen = [](double& lo, double& hi, double v) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    };
    std::set<std::string> precisions;
    for (const PreparedRun* r : runs) {
      const StepWork& w = r->work;
      widen(sp.parameters_lo, sp.parameters_hi, static_cast<double>(w.tree.root().num_parameters));
      widen(sp.batch_lo, sp.batch_hi, w.workload.batch);
      widen(sp.context_lo, sp.context_hi, w.tree.past_len);
      widen(sp.gpus_lo, sp.gpus_hi, w.workload.gpus);
      widen(sp.data_parallel_lo, sp.data_parallel_hi, w.workload.data_parallel);
      precisions.insert(w.workload.precision);
    }
    sp.precisions.assign(precisions.begin(), precisions.end());
  }
  const int nk = static_cast<int>(p.keys.size());
  const long n = static_cast<long>(runs.size());
  std::vector<std::pair<int, int>> epulls;
  for (int k = 0; k < nk; ++k) {
    epulls.emplace_back(9 + k, 6);       // a_k toward a_shared (the energy fit's columns, below)
    epulls.emplace_back(9 + nk + k, 7);  // rho_k toward rho_shared
  }
  std::vector<double> itl, wall;
  for (const PreparedRun* r : runs) {
    itl.push_back(r->run->median_itl_s);
    wall.push_back(r->run->avg_batch / r->run->throughput_tokens_per_s);
  }
  p.itl = fit_time(runs, agg, p.keys, itl, true);
  p.wall = fit_time(runs, agg, p.keys, wall, false);
  Eigen::VectorXd yt = Eigen::VectorXd::Ones(n);
  // energy, fitted on the measured step energies (in TDP-seconds of one GPU of the row's
  // hardware): s_step, s_seq, b, g, d, e_ar, a_shared, rho_shared, a_k..., rho_k...
  constexpr int E = 9;
  Eigen::MatrixXd xe = Eigen::MatrixXd::Zero(n, E + 2 * nk);
  std::vector<int> model_of(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) {
    const StepWork& w = runs[i]->work;
    const double g = w.workload.gpus, label = runs[i]->run->step_energy_j() / w.hw.tdp_watts;
    double compute = 0;
    for (const auto& [k, c] : agg[i].c) compute += c;
    xe(i, 0) = g;
    xe(i, 1) = g * w.workload.batch;
    xe(i, 2) = compute;
    xe(i, 3) = agg[i].n;
    xe(i, 4) = g * w.allreduce_s;
    xe(i, 5) = g * w.allreduces;
    xe(i, 8) = w.workload.data_parallel > 1 ? g * w.workload.batch : 0;
    for (int k = 0; k < nk; ++k) {
      xe(i, E + k) = coef(agg[i].m, p.keys[k], 0) * memory_scale(w.hw);
      xe(i, E + nk + k) = coef(agg[i].r, p.keys[k], 0);
    }
    xe.row(i) /= label;
    model_of[static_cast<std::size_t>(i)] = static_cast<int>(
        std::distance(models.begin(), models.find(runs[i]->run->model_id)));
  }
  p.energy_pull = energy_pull ? *energy_pull : choose_energy_pull(xe, model_of, epulls);
  Eigen::VectorXd ce = fit_pulled(xe, yt, epulls, p.energy_pull);
  // A GPU draws at most its power limit while it moves all-reduce bytes: d <= 1. Where the fit
  // wants more (it would take the all-reduce bytes, which grow with tokens x hidden x layers, as a
  // stand-in for other per-token work), d is held at 1 and the rest refitted.
  if (ce(4) > 1) {
    const Eigen::VectorXd held = xe.col(4);
    xe.col(4).setZero();
    ce = fit_pulled(xe, yt - held, epulls, p.energy_pull);
    ce(4) = 1;
  }
  p.s_step = ce(0);
  p.s_seq = ce(1);
  p.b = ce(2);
  p.g = ce(3);
  p.d = ce(4);
  p.e_ar = ce(5);
  p.a_shared = ce(6);
  p.rho_shared = ce(7);
  p.s_dp_seq = ce(8);
  for (int k = 0; k < nk; ++k) {
    p.a[p.keys[k]] = ce(E + k);
    p.rho[p.keys[k]] = ce(E + nk + k);
  }
  {
    std::vector<double> slow;  // measured / predicted wall time - 1
    for (std::size_t i = 0; i < runs.size(); ++i) slow.push_back(wall[i] / step_time(p.wall, runs[i]->work) - 1);
    p.wall_slow_rel = std::max(0.0, quantile(slow, 0.95));
  }
  std::vector<double> rel;
  for (const PreparedRun* r : runs) rel.push_back(predict_step(p, r->work).energy_j / r->run->step_energy_j() - 1);
  p.low_rel = std::min(0.0, quantile(rel, 0.05));
  p.high_rel = std::max(0.0, quantile(rel, 0.95));
  return p;
}

namespace {

// The units' energies before the power limit (predict_step's power_scale).
std::vector<UnitEnergy> raw_unit_energies(const ServingPredictor& p, const StepWork& w) {
  const double g = w.workload.gpus, tdp = w.hw.tdp_watts;
  std::vector<UnitEnergy> out;
  out.reserve(w.units.size());
  for (const Unit& u : w.units) {
    const double m = u.bytes / w.hw.memory_bandwidth, c = u.flops / u.peak, nk = u.kernels * g * kLaunchSeconds;
    const UnitTime ut = unit_time(p.itl, u, w);
    UnitEnergy e;
    e.time_s = (ut.memory_s + ut.compute_s + ut.launch_s) / g;
    // the roofline term goes to the side that bounds the unit
    const double roof_j = tdp * coef(p.rho, u.key, p.rho_shared) * std::max(m, c);
    e.memory_j = coef(p.a, u.key, p.a_shared) * u.bytes * kJoulesPerByteUnit + (m >= c ? roof_j : 0);
    e.compute_j = tdp * p.b * c + (m >= c ? 0 : roof_j);
    e.launch_j = tdp * p.g * nk;
    out.push_back(e);
  }
  return out;
}

}  // namespace

StepPrediction predict_step(const ServingPredictor& p, const StepWork& w) {
  StepPrediction r;
  const double g = w.workload.gpus, tdp = w.hw.tdp_watts;
  r.node_j.assign(w.tree.nodes.size(), 0.0);
  double units_j = 0;
  r.units = raw_unit_energies(p, w);
  for (std::size_t k = 0; k < w.units.size(); ++k) {
    const Unit& u = w.units[k];
    const double e = r.units[k].total_j();
    units_j += e;
    if (u.prefill) r.prefill_j += e;
    for (int i = u.node; i >= 0; i = w.tree.nodes[i].parent) r.node_j[i] += e;
  }
  r.allreduce_j = tdp * g * (p.d * w.allreduce_s + p.e_ar * w.allreduces);
  r.overhead_j = tdp * g * (p.s_step + (p.s_seq + (w.workload.data_parallel > 1 ? p.s_dp_seq : 0)) * w.workload.batch);
  r.time_s = step_time(p.itl, w);
  r.wall_s = step_time(p.wall, w);
  r.energy_j = units_j + r.allreduce_j + r.overhead_j;
  // No GPU draws more than its power limit: a step's energy is at most G x TDP x its slowest
  // plausible wall time. Where the fitted terms add up to more, every entry is scaled down alike,
  // so they still add up.
  const double limit_j = g * tdp * r.wall_s * (1 + p.wall_slow_rel);
  if (r.energy_j > limit_j && limit_j > 0) {
    r.power_scale = limit_j / r.energy_j;
    for (double& e : r.node_j) e *= r.power_scale;
    for (UnitEnergy& e : r.units) {
      e.memory_j *= r.power_scale;
      e.compute_j *= r.power_scale;
      e.launch_j *= r.power_scale;
    }
    r.allreduce_j *= r.power_scale;
    r.overhead_j *= r.power_scale;
    r.prefill_j *= r.power_scale;
    r.energy_j = limit_j;
  }
  r.power_w = r.wall_s > 0 ? r.energy_j / r.wall_s : 0;
  return r;
}

StepPrediction predict_decode_step_nodes(const ServingPredictor& p, const ModelConfig& config, const Workload& w,
                                         std::string_view hardware_name, Tree* tree_out) {
  const hardware::Profile hw = hardware::load_profile(hardware_name);
  StepWork work = step_work(config, w, hw);
  StepPrediction r = predict_step(p, work);
  if (tree_out) *tree_out = std::move(work.tree);
  return r;
}

nlohmann::json serving_rests_on(const ServingPredictor& p, bool per_gpu, const StepWork& work) {
  using nlohmann::json;
  const ServingSpan& sp = p.span;
  const Workload& w = work.workload;
  const double params = static_cast<double>(work.tree.root().num_parameters), context = work.tree.past_len;
  json outside = json::array();
  double d = 0;
  std::vector<std::string> words;
  const auto dimension = [&](const char* name, const char* what, double value, double lo, double hi,
                             const std::string& unit) {
    if (value >= lo && value <= hi) return;
    const bool above = value > hi;
    const double factor = above ? value / hi : lo / value;
    d = std::max(d, std::log10(factor));
    const std::string text = fmt::format("{} {:.4g}{} is {:.3g}x {} the {} {:.4g}{}", what, value, unit, factor,
                                         above ? "above" : "below", above ? "largest" : "smallest",
                                         above ? hi : lo, unit);
    words.push_back(text);
    outside.push_back({{"dimension", name}, {"value", value}, {"trained", {lo, hi}}, {"factor", factor}, {"words", text}});
  };
  dimension("size", "parameters", params / 1e9, sp.parameters_lo / 1e9, sp.parameters_hi / 1e9, "B");
  dimension("batch", "sequences in flight", w.batch, sp.batch_lo, sp.batch_hi, "");
  dimension("context", "mean context", context, sp.context_lo, sp.context_hi, " tokens");
  dimension("gpus", "GPUs", w.gpus, sp.gpus_lo, sp.gpus_hi, "");
  dimension("data_parallel", "data-parallel attention ranks", w.data_parallel, sp.data_parallel_lo,
            sp.data_parallel_hi, "");
  const auto missing = [&](const char* name, const std::string& value, const std::vector<std::string>& trained,
                           const std::string& text) {
    if (std::find(trained.begin(), trained.end(), value) != trained.end()) return;
    d += std::log10(2.0);
    words.push_back(text);
    outside.push_back({{"dimension", name}, {"value", value}, {"trained", trained}, {"factor", nullptr}, {"words", text}});
  };
  missing("hardware", work.hw.name, p.hardware,
          fmt::format("no measured run on {}: its datasheet figures carry coefficients learned on {}", work.hw.name,
                      fmt::join(p.hardware, ", ")));
  missing("precision", w.precision, sp.precisions,
          fmt::format("no measured run in {} weights (trained: {})", w.precision, fmt::join(sp.precisions, ", ")));
  const std::string covers =
      (w.gpus > 1 ? fmt::format("GPU energy of all {} GPUs", w.gpus) : std::string("GPU energy of one GPU")) +
      " (NVML counters, as the table measured them: no CPU, host memory or cooling)";
  const std::string summary = fmt::format(
      "rests on: {}, {}; {} serving predictor fitted on {} runs of {} ({} models, {:.3g}-{:.4g}B parameters, "
      "batch {:.4g}-{:.4g}, context {:.4g}-{:.4g} tokens, {:g}-{:g} GPUs); {}",
      work.hw.name, covers, per_gpu ? "per-GPU" : "shared", p.runs, fmt::join(p.hardware, ", "), p.models.size(),
      sp.parameters_lo / 1e9, sp.parameters_hi / 1e9, sp.batch_lo, sp.batch_hi, sp.context_lo, sp.context_hi,
      sp.gpus_lo, sp.gpus_hi,
      words.empty() ? std::string("within its training data")
                    : fmt::format("outside it: {}; intervals widened {:.2f}x", fmt::join(words, "; "), 1 + d));
  return {{"hardware", {{"name", work.hw.name}, {"energy_covers", covers}}},
          {"predictor",
           {{"kind", per_gpu ? "per-GPU" : "shared"},
            {"trained_on",
             {{"hardware", p.hardware},
              {"models", p.models.size()},
              {"runs", p.runs},
              {"parameters", {sp.parameters_lo, sp.parameters_hi}},
              {"batch", {sp.batch_lo, sp.batch_hi}},
              {"context", {sp.context_lo, sp.context_hi}},
              {"gpus", {sp.gpus_lo, sp.gpus_hi}},
              {"data_parallel", {sp.data_parallel_lo, sp.data_parallel_hi}},
              {"precisions", sp.precisions}}}}},
          {"question",
           {{"model", work.tree.model_name},
            {"parameters", params},
            {"batch", w.batch},
            {"context", context},
            {"gpus", w.gpus},
            {"precision", w.precision}}},
          {"outside", outside},
          {"within_training_data", outside.empty()},
          {"interval_widening", 1 + d},
          {"summary", summary}};
}

nlohmann::json predictor_to_json(const ServingPredictor& p) {
  const auto time_json = [&](const TimeModel& t) {
    nlohmann::json per = nlohmann::json::object();
    for (const auto& k : p.keys)
      per[k] = {{"time_per_roofline_second", coef(t.alpha, k, 0)},
                {"extra_time_per_compute_second", coef(t.beta, k, 0)}};
    return nlohmann::json{{"step_fixed_time_s", t.tau0},
                          {"time_per_sequence_s", t.tau_seq},
                          {"time_per_allreduce_s", t.tau_allreduce},
                          {"time_per_launch_second", t.gamma},
                          {"time_per_allreduce_second", t.delta},
                          {"shared",
                           {{"time_per_roofline_second", t.alpha_shared},
                            {"extra_time_per_compute_second", t.beta_shared}}},
                          {"regressors", per}};
  };
  nlohmann::json regressors = nlohmann::json::object();
  for (const auto& k : p.keys)
    regressors[k] = {{"memory_joules_per_byte", coef(p.a, k, 0) * kJoulesPerByteUnit},
                     {"tdp_share_per_roofline_second", coef(p.rho, k, 0)}};
  return {{"kind", "serving (per-primitive roofline regressors, trained end to end on step energy, ITL and "
                   "step wall time)"},
          {"hardware", p.hardware},
          {"models", p.models},
          {"runs", p.runs},
          {"itl", time_json(p.itl)},
          {"step_wall_time", time_json(p.wall)},
          {"tdp_seconds_per_gpu_step", p.s_step},
          {"tdp_seconds_per_gpu_sequence", p.s_seq},
          {"tdp_seconds_per_gpu_allreduce", p.e_ar},
          {"tdp_share_per_compute_second", p.b},
          {"tdp_share_per_launch_second", p.g},
          {"tdp_share_per_allreduce_second", p.d},
          {"shared", {{"memory_joules_per_byte", p.a_shared * kJoulesPerByteUnit},
                      {"tdp_share_per_roofline_second", p.rho_shared}}},
          {"energy_pull", p.energy_pull},
          {"regressors", regressors},
          {"interval_relative", {p.low_rel, p.high_rel}}};
}

}  // namespace irene::serving
