// The serving predictor: energy and time of one step of an LLM served with continuous batching
// (vLLM-like) on a named accelerator, node by node, learned from model-level measurements only
// (serving/runs.hpp: energy per token, inter-token latency).
//
// The step. With B sequences in flight, every step generates one token per sequence: the decode
// step tree (arch/builder.hpp, phase decode, bfloat16, fused sdpa attention) at batch B and a mean
// cached length of prompt + output / 2 tokens, plus the prefills it carries: B / output requests
// finish per step, so B x prompt / output prompt tokens are prefilled per step (chunked prefill
// mixes them into the decode steps), counted from the prefill tree of one prompt scaled by
// B / output, without its weight traffic (the step reads each weight once for both). Every ML
// leaf and the own operations of each kind of each module are one *unit* of work with its
// FLOPs, its physical traffic (arch/registry.hpp's traffic_bytes, with the weights at the
// precision's bytes: bfloat16 2, fp8 1, mxfp4 4.25 bits) and its kernel launches. Where a serving
// engine does not do what Hugging Face's eager code does, the unit follows the engine: the key/value
// cache is read once per key/value head by the fused attention (paged attention; no repeat_kv
// copies), a step writes only the new position into the cache (no torch.cat of the cache), and the
// launches are the engine's fused kernels (one per normalization, the residual add inside it; none
// for the gate's product or the rotary table: predictor.cpp's engine_op_kernels).
// With tensor parallelism over G GPUs every unit is split across them and each layer adds two
// all-reduces of [tokens, hidden] (ring: 2 (G - 1) / G of it per GPU over the interconnect).
//
// The model, per unit u of regressor k (the primitive class: Linear, RMSNorm, SiLU,
// ScaledDotProductAttention, Embedding; or "op:KIND" for a module's own operations) on hardware h:
//   m_u = traffic_u / bandwidth_h, c_u = flops_u / peak_h(precision), r_u = max(m_u, c_u) (its
//   roofline), n_u = kernels_u x G x 1 us (GPU-seconds of memory streaming, of arithmetic at the
//   dense peak, of the roofline, and of launches);
//   time of the step   t = tau0 + (tau_seq + [D > 1] tau_dp_seq) B
//                          + sum_u (alpha_k r_u + beta_k c_u + gamma n_u) / G + delta A + tau_ar R
//   energy of a step   E = TDP_h x [ s_step G + (s_seq + [D > 1] s_dp_seq) G B
//                                    + sum_u (b c_u + rho_k r_u + g n_u) + d G A + e_ar G R ]
//                        + e0 sum_u a_k traffic_u,   at most G x TDP_h x w (1 + q)
// (A: all-reduce transfer seconds per GPU, R: all-reduces per step; tau_seq: the host's work per
// sequence in flight, scheduling and sampling, while the GPUs wait; D: data-parallel attention
// ranks, whose waiting for each other has its own per-sequence terms, so that the table's only
// such runs do not bend the others; TDP_h: one GPU's power limit,
// so the energy coefficients are shares of it (b, rho, g: of a GPU-second of arithmetic,
// roofline, launches) or seconds of it (s_step per GPU and step, s_seq per GPU and sequence in
// flight, e_ar per GPU and all-reduce), and the same coefficients can serve several GPUs), except
// the memory one: a_k is an energy per byte streamed, the same on every GPU (an HBM access costs
// about the same per byte on HBM3 and HBM3e whatever the chip's power limit), in units of e0 =
// 700 W / 3.35 TB/s (an H100 SXM's TDP over its bandwidth, 2.09e-10 J/byte, so that on an H100
// a_k reads as a share of its TDP per GPU-second of streaming). Tried the other way, a_k as a
// share of each GPU's TDP (energy per byte scaling with TDP / bandwidth), a predictor fitted on
// one GPU missed the other by 26.7% (B200 -> H100) and 24.4% (H100 -> B200) instead of 16.0% and
// 22.5%; the energy per FLOP made the same on every GPU too (at the H100's TDP / bf16 peak) did
// worse than the TDP share (17.5% and 25.3%). No unit runs faster than its roofline: alpha_k >= 1.
// A GPU moving all-reduce bytes draws at most its power limit: d <= 1 (held at 1 and the rest
// refitted where the rows want more; freely fitted, d took the all-reduce bytes, which grow with
// tokens x hidden x layers, as a stand-in for other per-token work and reached 5-6). Two time
// models of the form of t are fitted: one on the measured median inter-token latencies (t, the
// ITL), one on the mean wall time of a step (w: sequences in flight / throughput, the prefills'
// longer steps and the engine's pauses included). The energy model is fitted on the measured step
// energies (energy per token x mean batch) directly, not through a power model over the time (that
// product of two fits missed dense chat models by 11.5% on H100 where the direct fit misses by
// under 5%); the mean power is E / w, the throughput B / w, and E is at most the GPUs' power limit
// over the step's slowest plausible wall time, G x TDP x w (1 + q), q the 95% quantile of the
// training runs' measured / predicted wall time - 1 (where the terms add up to more, every entry
// is scaled alike). All are non-negative least squares on relative errors (the ITL model on their
// absolute values, by reweighting: the ITL is a median, and a few runs far off the physics, a
// host-side floor under them, should not bend it for the rest), and each
// regressor's coefficient (alpha_k, beta_k; a_k, rho_k) is shrunk toward one shared by all
// regressors (penalty pull x rows x (alpha_k - alpha)^2). The time model's pull is 0.1, fixed;
// the energy model's is chosen by each fit among 0.001 ... 0.1 by cross-validation over its own
// training rows' models (five groups of models, each held out once; so a cross-validation's
// held-out model never takes part in the choice).
//
// The split among nodes. A node's energy is the sum of its units' (its subtree's leaves and own
// operations, decode and prefill), each unit's being its terms (e0 a_k traffic_u + TDP (b c_u + rho_k r_u + g n_u));
// the all-reduces (d, e_ar) and the step's fixed energy (s_step, s_seq: static power over the
// host's share of the step) are two more entries, so the entries add up to the step exactly. Only root labels were
// learned: the split rests on the roofline physics of the counted FLOPs and bytes (the
// per-regressor coefficients are pulled toward shared ones and can leave them only where the
// measured totals of whole models require), not on any measured node.
//
// Per-GPU and shared predictors are the same model: one fitted on the runs of one GPU model, the
// other on the runs of several, which differ only through their datasheet figures (bandwidth,
// peaks, TDP, interconnect).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/arch/config.hpp"
#include "irene/core/tree.hpp"
#include "irene/hardware/hardware.hpp"
#include "irene/serving/runs.hpp"

namespace irene::serving {

// What the engine serves.
struct Workload {
  int gpus = 1;                        // GPUs the model is split across (energy counts all of them):
                                       // tensor parallel, and a mixture's experts spread over them
                                       // (expert parallel) alike
  int data_parallel = 1;               // ranks among the GPUs that run attention data-parallel
                                       // (each reads the attention weights; no all-reduce after it)
  std::string precision = "bfloat16";  // weights: bfloat16 | float16 | fp8 | mxfp4
  std::string kv_cache_dtype = "bfloat16";  // key/value cache: fp8 | bfloat16 | float16 | float32
  double batch = 1;                    // sequences in flight, mean (B)
  double prompt_tokens = 0;            // prompt tokens per request, mean
  double output_tokens = 1;            // generated tokens per request, mean
  // Where the requests' lengths follow a distribution: (tokens, share of the requests) pairs,
  // shares summing to 1, their mean the field above; empty: every request at the mean. Prompt and
  // output lengths are taken as independent.
  std::vector<std::pair<double, double>> prompt_distribution, output_distribution;
};

// Cached positions of a sequence in flight, on average over the steps: E[P] + E[O^2] / (2 E[O]).
// A request stays in flight for its O steps, so the sequences in flight are the requests weighted
// by their output length (the longer ones are more often in the batch), each halfway through its
// output on average. With every request at the mean: P + O / 2.
double mean_context_in_flight(const Workload& w);
// The final length (prompt + output) of a sequence in flight, on average: E[P] + E[O^2] / E[O]
// (the key/value cache its request reaches). With every request at the mean: P + O.
double mean_final_length_in_flight(const Workload& w);
// A length distribution as JSON: [{"tokens", "share"}], or null where it is empty (every request
// at the mean).
nlohmann::json distribution_to_json(const std::vector<std::pair<double, double>>& d);

// The serving table's tasks, one row each (their names are the table's `task` column and the
// values of --task): the prompt tokens assumed for them and the published shape of their outputs
// (below).
struct ServingTask {
  std::string_view name;
  double prompt_tokens = 0;
  const std::vector<std::pair<double, double>>* output_shape = nullptr;
};
const std::vector<ServingTask>& serving_tasks();
// The row of a task by name, or nullptr.
const ServingTask* find_serving_task(std::string_view name);

// The mean prompt tokens assumed for the table's tasks where a run does not say (the table has no
// prompt lengths): lm-arena-chat 180, gpqa 260, sourcegraph-fim 1,200 (assumed from the kind of
// prompts; not measured); any other task 256.
double task_prompt_tokens(std::string_view task);

// The published shape of the table's tasks' output lengths: (length / mean, share of the requests)
// pairs, 24 of them (20 equal-share groups below the 90th percentile, then 2%, 1% groups out to
// the longest), their mean 1. Taken from the output_length_distribution histograms the ML.ENERGY
// Leaderboard publishes for every configuration of the table (github.com/ml-energy/leaderboard,
// public/data/models/*.json, data of 2026-02-16): each configuration's histogram divided by its
// own mean, pooled with equal weight per configuration, cut at those percentiles, each group at
// its mean. E[O^2] / E[O]^2 of the shape (1 for every request at the mean): lm-arena-chat 1.96
// (328 configurations, 18 models), gpqa 1.49 (187, 12), sourcegraph-fim 3.24 (50, 3); the
// configurations' own values lie within 1.74-2.30, 1.23-2.84 and 3.04-3.42. Chat and code
// answers are mostly short with a long tail, and a long answer stays in the batch for as many
// steps as it has tokens, so the sequences in flight hold longer contexts than prompt + mean
// output / 2 (mean_context_in_flight). Empty for any other task.
const std::vector<std::pair<double, double>>& task_output_shape(std::string_view task);
// task_output_shape scaled to a mean of `mean_tokens` (a Workload's output_distribution; its mean
// is exactly mean_tokens); empty for a task without a shape.
std::vector<std::pair<double, double>> task_output_distribution(std::string_view task, double mean_tokens);

// The model of a serving command or table row: load_model_config's name, path or Hugging Face
// cache entry, else the config of the same Hugging Face id under configs/serving-models/ (the
// published config.json of models measured in the serving table, kept out of models/ so that
// the tests that visit every built-in model do not build 405B-parameter trees). Errors:
// load_model_config's for the name.
ModelConfig load_serving_model(std::string_view name);

// Bytes of one weight for a precision (arch/weight_format.hpp's rule): bfloat16/float16 2,
// fp8 1 + 4 / (128 x 128) (its float32 block scales), mxfp4/fp4 4.25 / 8.
// Unknown: irene::Error.
double weight_bytes_per_parameter(std::string_view precision);

// One unit of work of a step (see the file comment).
struct Unit {
  int node = -1;        // index of the node in StepWork::tree it belongs to (leaf or module)
  std::string key;      // its regressor: "Linear", "op:rotary", ...
  double bytes = 0;     // physical traffic, all GPUs together, per step
  double flops = 0;     // per step
  double kernels = 0;   // launches on one GPU per step
  double peak = 0;      // FLOP/s of one GPU at the unit's precision
  bool prefill = false; // work of the prefills the step carries
  double cache_bytes = 0;  // of bytes: the key/value cache read (fused attention units)
};

struct StepWork {
  Tree tree;  // the decode step as built (batch = B rounded, past = prompt + output / 2)
  std::vector<Unit> units;
  hardware::Profile hw;
  Workload workload;
  int layers = 0;
  double allreduce_s = 0;  // seconds of all-reduce transfer per GPU per step (bytes / interconnect)
  double allreduces = 0;   // all-reduces per step (2 per layer with tensor parallelism, else 0)
  // Totals of the step (the four-total baseline's features): weight bytes, key/value cache bytes
  // read at the mean context, FLOPs (all GPUs).
  double weight_bytes = 0, kv_bytes = 0, flops = 0;
  hardware::MemoryNeed memory;  // per GPU, with the cache of B sequences at prompt + output
};

// Builds the step of `config` served as `w` on `hw`. The decode step is taken at the mean context
// of a sequence in flight (mean_context_in_flight); the prefills it carries are one prefill tree
// per distinct prompt length, each scaled by B x its share of the requests / E[O] (so a spread of
// prompt lengths costs what their attention's quadratic term costs, not that of their mean).
// Errors: build_tree's; gpus < 1, batch or output tokens not positive, prompt tokens negative; a
// distribution with a bad length or share, more than 64 lengths, shares not summing to 1 or a mean
// not the workload's; hidden, heads or key/value heads not divisible by the GPUs.
StepWork step_work(const ModelConfig& config, const Workload& w, const hardware::Profile& hw);

// What a predictor's training runs span, in the dimensions of a serving question.
struct ServingSpan {
  double parameters_lo = 0, parameters_hi = 0;  // the models' parameters
  double batch_lo = 0, batch_hi = 0;            // mean sequences in flight
  double context_lo = 0, context_hi = 0;        // mean cached positions (prompt + output / 2)
  double gpus_lo = 0, gpus_hi = 0;
  std::vector<std::string> precisions;          // weight precisions
  double data_parallel_lo = 1, data_parallel_hi = 1;  // ranks running attention data-parallel
};

// One time model of a step (see the file comment): t = tau0 + tau_seq B + sum_u (alpha_k r_u +
// beta_k c_u + gamma n_u) / G + delta A + tau_ar R.
struct TimeModel {
  double tau0 = 0, gamma = 0, delta = 0;
  double tau_seq = 0;        // seconds per sequence in flight (host-side scheduling and sampling)
  double tau_allreduce = 0;  // seconds per all-reduce (its latency, whatever its size)
  // seconds per sequence in flight where attention runs data-parallel (ranks waiting for each other)
  double tau_dp_seq = 0;
  std::map<std::string, double> alpha, beta;  // per regressor
  double alpha_shared = 0, beta_shared = 0;
};

// The fitted coefficients (see the file comment).
struct ServingPredictor {
  std::vector<std::string> keys;  // regressors, sorted
  // The median inter-token latency: the decode step as a user sees it.
  TimeModel itl;
  // The mean wall time of a step (sequences in flight / throughput: the prefills' longer steps
  // and the engine's pauses included): the window of the power limit and the throughput.
  TimeModel wall;
  // How much slower than `wall` a training run's step was at most (the 95% quantile of measured /
  // predicted - 1, >= 0): the power limit is taken over the step's slowest plausible wall time.
  double wall_slow_rel = 0;
  std::map<std::string, double> a;  // per regressor: energy per byte streamed, in units of e0 (see above)
  double a_shared = 0;
  double b = 0;       // TDP share per GPU-second of arithmetic at the peak
  std::map<std::string, double> rho;  // per regressor: TDP share per GPU-second of roofline
  double rho_shared = 0;
  double g = 0;       // TDP share per GPU-second of launches
  double d = 0;       // TDP share per GPU-second of all-reduce transfer
  double e_ar = 0;    // TDP-seconds per GPU per all-reduce
  double s_step = 0;  // TDP-seconds per GPU per step
  double s_seq = 0;   // TDP-seconds per GPU per sequence in flight
  double s_dp_seq = 0;  // more of them where attention runs data-parallel
  double energy_pull = 0;  // the pull of a_k, rho_k toward the shared ones, chosen at fit time
  std::vector<std::string> hardware;  // GPU models of the training runs
  std::vector<std::string> models;    // models of the training runs
  long runs = 0;
  ServingSpan span;                   // what the training runs span
  // Relative errors of the training runs' step energies (prediction / measurement - 1): the 5%
  // and 95% quantiles widen predictions into intervals.
  double low_rel = 0, high_rel = 0;
};

// A run with its step built (for fitting and evaluating).
struct PreparedRun {
  const MeasuredRun* run = nullptr;
  StepWork work;
};

// Fits both models on `runs` (at least one). Unknown regressors at prediction time are predicted
// with the shared coefficients. The energy model's pull is `energy_pull` when given, else chosen
// by cross-validation over the runs' models (ServingPredictor::energy_pull says which).
ServingPredictor fit_serving(const std::vector<const PreparedRun*>& runs,
                             std::optional<double> energy_pull = std::nullopt);

// The energy of one unit of a step as predict_step counts it, split by its terms (joules, all
// GPUs): memory_j = e0 a_k traffic_u + TDP rho_k r_u (the latter where the unit is memory-bound),
// compute_j = TDP (b c_u + rho_k r_u where it is compute-bound), launch_j = TDP g n_u, each times
// the step's power_scale. Their sum is the unit's energy; time_s its share of the ITL.
struct UnitEnergy {
  double memory_j = 0, compute_j = 0, launch_j = 0;
  double time_s = 0;
  double total_j() const { return memory_j + compute_j + launch_j; }
};

// One step predicted.
struct StepPrediction {
  double time_s = 0;    // the inter-token latency (median), seconds
  double wall_s = 0;    // mean wall time of a step, seconds (throughput = batch / wall_s)
  double energy_j = 0;  // all GPUs
  double power_w = 0;   // energy / wall time, all GPUs
  // Per node of work.tree: the energy of its subtree's units (a parent includes its children),
  // joules; the root's is energy_j - allreduce_j - overhead_j.
  std::vector<double> node_j;
  double allreduce_j = 0;  // the all-reduces of tensor parallelism
  double overhead_j = 0;   // the step's fixed energy (s_step, s_seq: static power over the host's share)
  double prefill_j = 0;    // of the units, the prefills' share
  // One per unit of work.units, in order; their total_j() add up to node_j of the root.
  std::vector<UnitEnergy> units;
  // 1, or less where the fitted terms added up to more than the GPUs' power limit over the
  // step's slowest plausible wall time (G x TDP x wall_s x (1 + wall_slow_rel)): every entry
  // above was scaled by it, so the step draws exactly the limit. A predictor without a wall-time
  // model (wall_s = 0) is not limited.
  double power_scale = 1;
};

// Predicts every node of the step (see the file comment for how the split is made).
StepPrediction predict_step(const ServingPredictor& p, const StepWork& work);

// The library entry for a decode step of a named hardware profile: builds the step of `config`
// for `w` on the profile `hardware_name` (built-in name or JSON file, hardware::load_profile) and
// predicts every node of its tree (StepPrediction::node_j, in the order of the returned tree's
// nodes). The tree is returned in `tree_out` when not null.
StepPrediction predict_decode_step_nodes(const ServingPredictor& p, const ModelConfig& config, const Workload& w,
                                         std::string_view hardware_name, Tree* tree_out = nullptr);

nlohmann::json predictor_to_json(const ServingPredictor& p);

// What a serving answer rests on (the serving form of explain/rests_on.hpp's object): the
// hardware and what its joules cover (GPU energy of all the step's GPUs, as the table measured
// it), the predictor (per-GPU or shared, its training span), the question in the same dimensions,
// and each dimension outside the span with its factor and in words:
//   size (parameters), batch (sequences in flight), context (mean cached positions), gpus, and
//   precision or hardware where no training run had them.
// "interval_widening" = 1 + d, d the largest log10 of a numeric dimension's factor, plus log10(2)
// for a GPU without training runs (its datasheet carries coefficients learned on other GPUs) and
// for a weight precision without them: the relative half-widths of the answer's intervals grow by
// it, as IrEne's intervals do outside their features' ranges (predict/intervals.hpp). Data-parallel
// attention ranks are a numeric dimension too (the table's only such runs are one model's).
// JSON: {"hardware": {"name", "energy_covers"}, "predictor": {"kind", "trained_on": span},
// "question": {...}, "outside": [{"dimension", "value", "trained", "factor", "words"}],
// "within_training_data", "interval_widening", "summary"}; "summary" is the text's one line.
nlohmann::json serving_rests_on(const ServingPredictor& p, bool per_gpu, const StepWork& work);

}  // namespace irene::serving
