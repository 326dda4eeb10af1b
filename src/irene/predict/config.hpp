// Configuration of the IrEne predictor: which features, how upper levels weight their children,
// how they are trained.
//
// A configuration file is one JSON object with the reference implementation's keys
// (`feature_sets`, `polynomial_features`, `training_strategy`, `standardize_features`,
// `tanh_scalar`, `normalize_loss_scale`, `weighting_setting`) plus irene's own (below). Keys left
// out take irene's default; unknown keys and bad values are errors naming the file and key.
//
// Two configurations have names: "paper" (the IrEne paper's, exactly: both feature sets, degree-3
// polynomial features, end2end, standardized, tau 10, relative loss, close_to_one, 8 epochs,
// Adam lr 1e-3) and "default" (irene's best, chosen by leave-one-model-out cross-validation on
// device_1 and confirmed without tuning on device_2; see README "Predicting energy").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/predict/target.hpp"

namespace irene::predict {

// How a parent weights a child's energy: alpha(child) in  E(parent) = sum alpha(child) E(child).
enum class Weighting {
  close_to_one,  // alpha = 1 + tanh(w.x + b) / tau
  exact_one,     // alpha = 1 (no parameters; nothing is trained)
  free,          // alpha = w.x + b
};

enum class Strategy {
  end2end,       // children's predicted energies; gradients flow through whole trees
  stepwise,      // children's measured energies while training, predicted ones at test time
  unstructured,  // an upper node is f(its own features) alone (f = the weighting function)
  none,          // no training: the weights keep their seeded initial values
};

// How a leaf (ML primitive) regressor is fit, per primitive type.
enum class LeafModel {
  linear,      // the paper: least squares (minimum norm) on standardized features, with intercept
  log_linear,  // least squares of log(energy) on standardized features; prediction exp(.)
  relative,    // weighted least squares minimizing the squared relative error sum ((pred - E) / E)^2
  // the squared relative error weighted by the leaf's share of its tree's measured root,
  // sum (E / E_root) ((pred - E) / E)^2 = sum (pred - E)^2 / (E E_root): the leaves' errors as
  // they reach the whole pass, so one LM head of a decode step counts as much as the projections
  // that together take as long, not as one of them (a tree without a measured root: relative)
  share,
};

std::string_view to_string(Weighting w);
std::string_view to_string(Strategy s);
std::string_view to_string(LeafModel m);

// The cache sizes of feature set cpu_caches, MiB: 32 and 128 bracket server CPUs' last-level
// caches (32 MiB per CCD of an AMD EPYC, 96 MiB with 3D V-Cache), where a call's bytes past
// the cache stream from main memory at its lower bandwidth. Not fitted; Config::cache_knees_mib
// sets a machine's own (README "Decode steps of this machine": its per-core L2 on another host).
inline const std::vector<int> kDefaultCacheKneesMib{32, 128};

struct Config {
  // --- the reference implementation's keys -------------------------------------------------
  std::vector<std::string> feature_sets{"model_specs", "resource_utilization"};
  // Feature set cpu_caches: one feature per size, traffic_beyond_<K>mib (K a whole number of MiB,
  // 1..65536, increasing; at most 8): each kernel call's bytes past K MiB, summed.
  std::vector<int> cache_knees_mib = kDefaultCacheKneesMib;
  bool polynomial_features = true;
  Strategy training_strategy = Strategy::end2end;
  bool standardize_features = true;
  double tanh_scalar = 10;  // tau of close_to_one
  bool normalize_loss_scale = true;  // loss ((pred - gold) / gold)^2 instead of (pred - gold)^2
  Weighting weighting_setting = Weighting::close_to_one;

  // --- irene's own --------------------------------------------------------------------------
  int polynomial_degree = 3;  // monomials up to this degree (with the constant term)
  int epochs = 8;             // passes over the training trees ("num_epochs" is accepted too)
  double learning_rate = 1e-3;  // Adam
  std::uint64_t seed = 13370;   // initial weights (and tree order when shuffle is on)
  bool shuffle = false;         // visit training trees in a fresh seeded order every epoch
  double l2 = 0;                // ridge penalty l2 * |w|^2 per Adam step (bias excluded)
  std::string lr_schedule = "constant";  // constant | linear (to 0 at the last step) | cosine
  int average_epochs = 0;       // > 0: final weights = mean of the weights after every step of the last N epochs
  double module_loss_weight = 1;  // multiplies the loss of module nodes
  double model_loss_weight = 1;   // multiplies the loss of the root (model) node
  LeafModel leaf_model = LeafModel::linear;
  bool root_children_exact = false;  // alpha = 1 for the root's children (the model is the sum of its parts)
  // tau of close_to_one for the root's children only (alpha within 1 +- 1/root_tanh_scalar);
  // 0: tanh_scalar, as every other node.
  double root_tanh_scalar = 0;
  // > 0: the root's children get their own weight vector and bias, on the monomials up to this
  // degree only (<= polynomial_degree; initial weights 0, so alpha starts at 1); every other node
  // keeps the shared w. 0: one w for all nodes, as the paper.
  int root_polynomial_degree = 0;
  double interval_coverage = 0.9;  // central coverage of the stored prediction intervals

  // --- IrEne+ (irene's extensions of the model; all off in "paper") -------------------------
  // Own operations: E(parent) = sum alpha(c) E(c) + own(parent), own = sum_k v_k x_k / s_k >= 0
  // over the parent's own-operation features x (features.hpp: own_flops, own_mem_bytes,
  // own_ops, own_ops:KIND, own_constant), v_k >= 0, trained with the alphas (end2end);
  // s_k = sum of x_k over the training modules / sum of their measured energies (J), so that
  // v_k is a dimensionless share.
  bool own_ops = false;
  std::vector<std::string> own_op_features{"own_times_mean"};
  // Leaf regressors: coefficients of the features that grow with batch size and sequence
  // length (input_size, batch_size, seq_len, flops, mem_bytes) are >= 0 (non-negative least
  // squares), so a leaf's energy never falls as the input grows.
  bool monotone_leaves = false;
  // The features alpha reads are clamped to the range of the training data (per feature), so
  // its polynomial never extrapolates.
  bool clamp_alpha_inputs = false;
  // A node with more parameters than any node of the training data (num_parameters, or
  // weight_elements in the LLM feature set, above its training range) is weighted with alpha at
  // the training data's edge (every feature at its largest training value), whatever its batch,
  // sequence, FLOPs or bytes: a weight learned on nodes a fraction of its size does not move
  // with its input, so a parent's energy never falls as the input grows through a weight
  // (clamped features alone can: a 671B model's small prefills have FLOPs inside the training
  // range while everything else is beyond it). Training never sees such a node; predictions of
  // larger models and held-out folds do.
  bool hold_alpha_beyond_size = false;
  // Initial weights of w: "torch" (seeded, as torch.nn.Linear; the paper) or "zero" (alpha = 1
  // everywhere at the start: no seed involved).
  std::string init = "torch";
  // Training visits the trees in the order of their keys (model/batch/seq) instead of the
  // input order (then shuffled per epoch when shuffle is on): the input order does not matter.
  bool sort_trees = false;
  // What is predicted (target.hpp): energy (joules per forward pass) or time (seconds per
  // forward pass; features derived from time are then not inputs).
  Target target = Target::energy;

  // Name it was loaded by ("paper", "default", or the file path), informational.
  std::string name = "default";
};

// The named configurations; Error on an unknown name.
Config named_config(std::string_view name);
std::vector<std::string> config_names();

// Parses a JSON object into a configuration on top of `base`; `where` prefixes errors.
Config config_from_json(const nlohmann::json& j, const std::string& where, Config base = Config{});
nlohmann::json config_to_json(const Config& c);

// A name of named_config, or a path to a JSON file. Error on unknown names, missing files,
// malformed JSON, unknown keys and bad values.
Config load_config(std::string_view name_or_path);

// Applies one "key=value" override (value: JSON, or a bare string); Error on unknown keys.
void apply_config_override(Config& c, std::string_view assignment);

// Feature names of the sets, in the reference's order. model_specs: num_parameters,
// input_size (= batch x seq), batch_size, seq_len, flops (MFLOP), mem_bytes (MiB);
// resource_utilization: cpu, mem, gpu, gpu_mem, gpu_clk, gpu_mem_clk, times_mean (s),
// gpu_energy_mean (J); llm_specs (for LLM work, in place of model_specs: configs/llm-time.json):
// num_parameters, input_size, batch_size, seq_len, flops (MFLOP), traffic_mib (physical memory
// traffic, MiB), flop_per_byte (arithmetic intensity), kernels (launches per call); cpu_caches
// (for CPU timing): traffic_beyond_<K>mib for each K of cache_knees_mib (each call's bytes past
// a cache's size, MiB); cpu_products: products (the GEMMs of a node: a batched MatMul's batch x
// heads, a Linear's one); cpu_roofline (for CPU timing): flops_beyond_2fpb, flops_beyond_8fpb
// (each call's FLOPs beyond 2 and beyond 8 per byte of its traffic, MFLOP: the work past a
// CPU's ridge point). Error on an unknown set, or on model_specs with llm_specs.
std::vector<std::string> feature_names_of_sets(const std::vector<std::string>& sets,
                                               const std::vector<int>& cache_knees_mib = kDefaultCacheKneesMib);
bool is_resource_feature(std::string_view name);
// True for the features of model_specs, llm_specs, cpu_caches, cpu_products and cpu_roofline: counted from a
// tree's structure, so a tree built from a configuration has them (no measurement needed).
bool is_counted_feature(std::string_view name);

}  // namespace irene::predict
