// Training of the upper-level weighting model: loss, analytic gradient, Adam.
//
// Prediction of a tree (model.hpp): leaves from the leaf regressors, fixed; every parent
// own(parent) + sum alpha(child) pred(child), alpha from (w, b) (and (w_root, b_root) for the
// root's children with root weights), own from the own weights v >= 0.
// Loss of a tree = sum over its non-leaf nodes with ground truth g > 0 of
//   weight(level) * ((pred - g) / g)^2      (normalize_loss_scale, the paper's)
//   weight(level) * (pred - g)^2            (otherwise)
// Adam (beta1 0.9, beta2 0.999, eps 1e-8, PyTorch's bias correction) takes one step per
// training tree, trees in input order (or a seeded shuffle per epoch), for `epochs` passes.
#pragma once

#include <Eigen/Core>
#include <vector>

#include "irene/predict/model.hpp"

namespace irene::predict {

// The training data of the upper model: per-node feature vectors (standardized, polynomial)
// computed once, laid out tree after tree. Scalar float is what training uses (half the memory
// traffic); double serves the finite-difference test.
template <typename Scalar>
class UpperProblem {
 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  // `leaf_pred[row]`: the ML-level prediction of every leaf row of the `train` trees.
  // `storage`: where the feature matrix lives (reused across folds to spare page faults);
  // null: owned. Feature terms that are 0 on every training row (monomials of a feature that
  // is constant in the training data, such as gpu_mem_clk on one device) are not stored:
  // their gradient is 0, so Adam never moves their weights.
  UpperProblem(const FlatTrees& data, const std::vector<int>& train, const std::vector<double>& leaf_pred,
               const UpperModel& shape, const Config& config, std::vector<Scalar>* storage = nullptr);

  int trees() const { return static_cast<int>(begin_.size()) - 1; }
  // Stored feature terms: kept()[k] is the index, in the full expansion, of stored column k.
  int features() const { return static_cast<int>(kept_.size()); }
  const std::vector<int>& kept() const { return kept_; }
  int full_features() const { return full_features_; }
  // Row length of the stored feature matrix: features() rounded up to 16, zero-padded.
  int stride() const { return stride_; }
  int supervised_nodes() const { return supervised_; }
  // Stored terms the root's children have own weights for (the first root_features() stored
  // columns; 0: the root's children use w like every node).
  int root_features() const { return root_kept_; }
  // Own-operation weights (0: no own term).
  int own_features() const { return own_k_; }

  // Weights of one evaluation: w of size stride() (zero beyond features()); w_root of
  // root_features() values (may be null when there are none); v of own_features() values.
  struct Params {
    const Vector* w = nullptr;
    double b = 0;
    const double* w_root = nullptr;
    double b_root = 0;
    const double* v = nullptr;
  };
  // Gradients, added into (w and w_root as Params; v of own_features()).
  struct Grads {
    Vector* w = nullptr;
    double* b = nullptr;
    double* w_root = nullptr;
    double* b_root = nullptr;
    double* v = nullptr;
  };
  // Loss of training tree k; adds its gradient into *g when g is not null. With
  // root_features() > 0, the root's children score with (w_root, b_root) instead of (w, b).
  // Allocates nothing.
  double tree_loss(int k, const Params& p, Grads* g);

  // Sum over all trees; theta = [w (all full_features() terms); b], followed, with root weights,
  // by [w_root (all root terms of the full expansion); b_root], then by the own weights v.
  // For tests and diagnostics.
  double loss(const Eigen::VectorXd& theta, Eigen::VectorXd* grad);

 private:
  std::vector<Scalar> own_;
  const Scalar* x_ = nullptr;
  int stride_ = 0;
  int full_features_ = 0;
  std::vector<int> kept_;
  std::vector<int> begin_;
  std::vector<int> parent_;  // local to its tree, -1 for the root
  std::vector<unsigned char> leaf_;
  std::vector<double> leafval_, gold_, weight_;
  Weighting weighting_;
  Strategy strategy_;
  double tau_;
  bool normalize_;
  bool root_children_exact_;
  double root_tau_;  // tau of the root's children (= tau_ unless root_tanh_scalar is set)
  int root_terms_ = 0;  // terms of the full expansion with root weights
  int root_kept_ = 0;   // of those, stored
  int own_k_ = 0;       // own-operation features
  std::vector<double> ownx_;  // per row: o_k / s_k (rows x own_k_)
  int supervised_ = 0;
  // scratch, sized to the largest tree
  Vector s_, g_;
  std::vector<double> a_, da_, pred_, bar_, direct_;
};

// Allows (default) or forbids the AVX2/FMA training kernels (benchmarks compare the two; the
// environment variable IRENE_PREDICT_SIMD=0 forbids them from the start); returns whether they
// are in use now. The two round differently, and the model level of a trained predictor is
// sensitive to rounding.
bool set_training_simd(bool enabled);

// Seeded initial weights w and b, uniform in +-1/sqrt(features): the values torch.nn.Linear
// draws after torch.manual_seed(seed), having skipped `skip` draws of the generator (the
// reference's cross-validation creates one Linear per fold from one generator: fold k skips
// k x (features + 1)).
void init_weights(UpperModel& model, std::uint64_t seed, std::uint64_t skip = 0);

// Trains model.w/b with Adam on the problem. Returns the mean loss per supervised node in the
// last epoch.
double train_upper(UpperModel& model, UpperProblem<float>& problem, const Config& config);

}  // namespace irene::predict
