// The IrEne model itself, independent of files: trees flattened into arrays, one leaf
// regressor per ML primitive type, and the shared weighting model of the upper levels.
//
//   E(leaf)   = max(0, regressor[class](standardized features))      (ML level)
//   E(parent) = sum over children c of alpha(c) * E(c) + own(parent)  (modules and the model)
//   alpha(c)  = 1 + tanh(s) / tau | 1 | s,   s = w . poly(standardize(x_c)) + b
//   own(p)    = sum_k v_k * o_k(p) / s_k, v_k >= 0    (Config::own_ops; else 0)
// with x_c the node's features (clamped to the training range with clamp_alpha_inputs) and
// o(p) its own-operation features (features.hpp).
//
// Units: energies in joules per forward pass; features in the units of Tree (MFLOP, MiB, s, J).
#pragma once

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "irene/core/error.hpp"
#include "irene/core/tree.hpp"
#include "irene/predict/config.hpp"
#include "irene/predict/features.hpp"

namespace irene::predict {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Trees as flat arrays: rows of all trees, each tree contiguous and in pre-order.
struct FlatTrees {
  std::vector<std::string> feature_names;  // columns of `raw`
  RowMatrix raw;                           // one row per node, the named features
  std::vector<int> parent;                 // global row of the parent, -1 for a root
  std::vector<unsigned char> leaf;         // 1 for nodes without children
  std::vector<NodeType> type;              // model / module / ml
  std::vector<double> gold;                // ground truth, joules; NaN when unknown
  std::vector<double> flops;               // MFLOP (for the FLOPs baseline)
  std::vector<double> traffic;             // physical memory traffic, MiB (for the traffic
                                           // baseline); NaN where the registry cannot count it
                                           // (a tree without its leaves' attrs, e.g. the published data)
  std::vector<double> gpu_energy;          // gpu_energy_mean, joules; NaN when absent
  std::vector<int> leaf_class;             // index into `classes` for leaves, else -1
  std::vector<std::string> classes;        // primitive class names of the leaves
  std::vector<int> tree_begin;             // rows of tree t: [tree_begin[t], tree_begin[t+1])
  std::vector<int> tree_model;             // index into `models` per tree
  std::vector<std::string> models;         // model names, in order of first appearance
  std::vector<std::string> tree_keys;      // Tree::key() per tree
  std::vector<std::string> own_names;      // columns of `own`
  RowMatrix own;                           // own-operation features per row (0 for leaves)

  int trees() const { return static_cast<int>(tree_model.size()); }
  int rows() const { return static_cast<int>(parent.size()); }
  bool has_gold(int row) const { return std::isfinite(gold[row]) && gold[row] > 0; }
};

// Indices of the trees whose root has a measured energy (> 0): the ones training and
// cross-validation use. The keys of the others go to `skipped` (e.g. device_1's
// openai-gpt/32/128, which has only its ml2 rows).
std::vector<std::size_t> measured_trees(const std::vector<Tree>& trees, std::vector<std::string>* skipped);

// Flattens trees, reading the named features of every node. Error naming the tree and node when
// a node lacks a feature or when a tree is empty. Leaves are predicted by the regressor of
// their class whatever their type.
// `own_names`: own-operation features (features.hpp) to compute as well.
FlatTrees flatten(const std::vector<const Tree*>& trees, const std::vector<std::string>& feature_names,
                  const std::vector<std::string>& own_names = {});

// Features (of `wanted`) that every node of every tree has, in `wanted`'s order; the others are
// returned in `dropped`.
std::vector<std::string> available_features(const std::vector<const Tree*>& trees,
                                            const std::vector<std::string>& wanted,
                                            std::vector<std::string>* dropped);

// One ML-level regressor: least squares on standardized features, minimum-norm solution
// (SVD; singular values below max(rows, columns) x machine epsilon x the largest count as zero,
// so exactly proportional columns share their weight), with an intercept (by centering, as
// scikit-learn's LinearRegression). log_linear fits log(energy) and predicts exp(.).
// Predictions are never below 0 (a negative linear value is clamped).
struct LeafRegressor {
  LeafModel kind = LeafModel::linear;
  Standardizer scaler;
  Eigen::VectorXd coef;
  double intercept = 0;
  long samples = 0;
  Eigen::VectorXd lo, hi;  // range of each raw feature in the training rows
  // Columns whose features grow with the work (grows_with_input): the floor of predict() reads
  // only these. Set by fit_model and Predictor::load; empty: no floor (max(0, value)).
  std::vector<char> work;

  // Rows of `x` (raw features) with targets `y` (joules, > 0 for log_linear). `nonnegative[j]`
  // (optional, one per column): coef[j] >= 0 (non-negative least squares, Lawson-Hanson).
  // `root` (share only; one per row): the measured root of the row's tree, joules (> 0); without
  // it, share weighs as relative.
  static LeafRegressor fit(LeafModel kind, const RowMatrix& x, const Eigen::VectorXd& y,
                           const std::vector<char>& nonnegative = {}, const Eigen::VectorXd* root = nullptr);
  // The prediction (joules) of the raw features `raw`. A linear regressor's value is
  // intercept + L(x), with L linear in the raw features; extrapolated below the training data (a
  // decode step's norm over one token) a negative intercept would make it 0 J or less, and a leaf
  // that does work costs something. So the value is at least kLeafFloor x intercept x w(x): the
  // intercept is the regression's value at the training rows' mean features (their typical leaf),
  // w(x) the mean over the `work` columns (FLOPs, bytes, sizes) of feature / its training mean.
  // The floor is 1% of a typical leaf's cost at a typical leaf's work, in proportion to the work
  // below it: positive whenever the leaf has work, 0 without any, continuous and non-decreasing
  // in every feature that grows with the work (no jump where the regression crosses 0), and free
  // of the regression's coefficients (collinear features with opposite signs do not inflate it).
  // Inside the training data it is far below the regression's value and changes nothing. No
  // floor when the intercept is not positive.
  double predict(const double* raw) const;
  static constexpr double kLeafFloor = 0.01;
};

// Minimum-norm least squares of a x = b with x[j] >= 0 where nonnegative[j] (Lawson-Hanson
// active set; the other coefficients are free). Singular values below max(rows, cols) x epsilon
// x the largest are zero, as in LeafRegressor::fit.
Eigen::VectorXd nonnegative_least_squares(const Eigen::MatrixXd& a, const Eigen::VectorXd& b,
                                          const std::vector<char>& nonnegative);

// Features that grow with batch size and sequence length in a built tree (monotone_leaves
// constrains their coefficients): input_size, batch_size, seq_len, flops, mem_bytes.
bool grows_with_input(std::string_view feature);

// The weighting model shared by all non-root nodes.
struct UpperModel {
  Weighting weighting = Weighting::close_to_one;
  Strategy strategy = Strategy::end2end;
  double tau = 10;
  bool root_children_exact = false;  // alpha = 1 for the children of the root
  double root_tau = 0;               // > 0: tau of the root's children (close_to_one)
  // Own weights of the root's children (Config::root_polynomial_degree > 0; empty otherwise):
  // their score is w_root . (the first w_root.size() terms of the expansion, i.e. the monomials
  // up to that degree) + b_root.
  Eigen::VectorXd w_root;
  double b_root = 0;
  Standardizer scaler;
  Polynomial poly;
  Eigen::VectorXd w;  // poly.outputs() weights
  double b = 0;       // bias
  // Range of every raw feature over the training rows; with clamp_inputs, score() reads the
  // features clamped to it.
  Eigen::VectorXd lo, hi;
  bool clamp_inputs = false;
  // Column of num_parameters when Config::hold_alpha_beyond_size is on (else -1): a node above
  // hi there is weighted as if every feature were at hi.
  int hold_column = -1;
  // Own operations (empty when off): own(p) = sum_k own_w[k] * o_k / own_scale[k], own_w >= 0;
  // own_lo/own_hi: range of the own features over the training parents.
  Eigen::VectorXd own_w, own_scale, own_lo, own_hi;

  // s = w . poly(standardize(raw)) + b
  double score(const double* raw) const;
  // Energy of a parent's own operations from its own-operation features, joules (>= 0).
  double own(const double* o) const {
    double e = 0;
    for (int k = 0; k < own_w.size(); ++k) e += own_w[k] * o[k] / own_scale[k];
    return e;
  }
  // The score of a child of the root: root weights when there are, else score().
  double root_child_score(const double* raw) const;
  double alpha(double s) const {
    switch (weighting) {
      case Weighting::exact_one: return 1.0;
      case Weighting::free: return s;
      case Weighting::close_to_one: return 1.0 + std::tanh(s) / tau;
    }
    return 1.0;
  }
  // alpha of a child of the root (root_tau in place of tau when set).
  double root_child_alpha(double s) const {
    if (weighting == Weighting::close_to_one && root_tau > 0) return 1.0 + std::tanh(s) / root_tau;
    return alpha(s);
  }

  // ---- The node-energy kernel: predict_flat and the decode-step evaluator (workload/steps.hpp)
  // both compute a node's prediction with these, so the two agree bit for bit.
  // E(parent) = parent_base(parent) + sum over its children c, last child first, of
  // weight(c) x E(c); E(leaf) = its regressor's prediction.
  // The value a parent's sum starts from (joules): its own operations' energy (`own_row`: its
  // own-operation features; 0 without an own term) or, for the unstructured strategy, its whole
  // prediction alpha(score(raw)), which its children do not add to.
  double own_energy(const double* own_row) const {
    return own_w.size() > 0 && strategy != Strategy::unstructured ? own(own_row) : 0.0;
  }
  bool children_add() const { return strategy != Strategy::unstructured; }
  double unstructured_energy(const double* raw) const { return alpha(score(raw)); }
  // The weight alpha of a non-root node in its parent's sum, from its features `raw`.
  double weight(const double* raw, bool root_child) const {
    const bool exact = weighting == Weighting::exact_one || (root_children_exact && root_child);
    if (exact) return 1.0;
    if (hold_column >= 0 && hi.size() > hold_column && raw[hold_column] > hi[hold_column]) raw = hi.data();
    return root_child ? root_child_alpha(root_child_score(raw)) : alpha(score(raw));
  }
};

// The column hold_alpha_beyond_size reads (num_parameters) in `features`, or -1 when the option is
// off or the features lack it.
int hold_column_for(const Config& config, const std::vector<std::string>& features);

// Number of expansion terms the root's children have own weights for (0: none) under `config`
// with `inputs` features; Error when root_polynomial_degree exceeds polynomial_degree.
int root_weight_terms(const Config& config, int inputs);

// The own-operation features `config` uses with the node features `features` (empty without
// own_ops; those read from a resource only when `features` has that resource); trees must be
// flattened with them for fit_model and predict_flat.
std::vector<std::string> own_names_for(const Config& config, const std::vector<std::string>& features);

struct FittedModel {
  Config config;
  std::vector<std::string> feature_names;
  std::vector<std::string> own_names;  // own-operation features (Config::own_ops; else empty)
  std::map<std::string, LeafRegressor> leaves;  // by primitive class name
  UpperModel upper;
  double final_train_loss = kNaN;  // mean loss per supervised node in the last epoch
};

// ---- Stand-ins (arch/registry.hpp, Primitive::stand_in) --------------------------------------
// The regressor that predicts leaves of primitive class `class_name` (a class or a Hugging Face
// alias: LlamaRMSNorm): its own class's, else the one of the class the registry names as its
// stand-in (RMSNorm -> LayerNorm ...; where the model lacks that one too, its stand-in, and so on:
// ReLU -> SiLU -> Softmax), whose name then goes to `stand_in`; nullptr when neither
// exists. `stand_in` is cleared when the class's own regressor is used.
const LeafRegressor* find_leaf_regressor(const FittedModel& model, std::string_view class_name,
                                         std::string* stand_in = nullptr);
// The regressor of every class of `classes` (find_leaf_regressor; nullptr where none): resolved
// once per flattened set of trees, by predict_flat and the decode-step evaluator alike.
std::vector<const LeafRegressor*> leaf_regressors(const FittedModel& model, const std::vector<std::string>& classes);
// The error of a leaf whose class has no regressor (and no stand-in the predictor knows).
Error unknown_primitive(const FittedModel& model, const std::string& tree_key, std::string_view class_name);
// The class a leaf's regressor is keyed by: the registry's name of its primitive (RMSNorm for
// LlamaRMSNorm), or the class name itself when it is not a registry primitive.
std::string regressor_class(std::string_view class_name);

// Fits leaf regressors and the upper model on the trees `train` (indices into data). Error when a
// primitive class has no leaf with ground truth or training trees have no ground truth at all.
// `init_skip`: generator draws to skip before the initial weights (see init_weights).
// `workspace`: memory for the training feature matrix, reused across calls (optional).
FittedModel fit_model(const FlatTrees& data, const std::vector<int>& train, const Config& config,
                      std::uint64_t init_skip = 0, std::vector<float>* workspace = nullptr);

// Predicts every node of the trees `which` into pred[row] (joules). Error naming a primitive
// type the model never saw; with `lenient`, such a leaf and its ancestors get NaN instead.
// Optional outputs per row (sized to data.rows() when given): `own`, the own-operation energy
// (0 for leaves and without own_ops); `alpha`, the weight of the row in its parent (1 for a
// root).
struct PredictExtras {
  std::vector<double>* own = nullptr;
  std::vector<double>* alpha = nullptr;
};
void predict_flat(const FittedModel& model, const FlatTrees& data, const std::vector<int>& which,
                  std::vector<double>& pred, bool lenient = false, const PredictExtras& extras = {});

}  // namespace irene::predict
