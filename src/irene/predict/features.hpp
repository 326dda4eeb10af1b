// Node features and their transformations (standardization, polynomial expansion).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "irene/core/tree.hpp"

namespace irene::predict {

// Row-major double matrix: one row per sample (node), contiguous.
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The value of feature `name` of a node of `tree`, or nullopt when the node does not have it
// (a resource the measurement did not record). Model-spec features always exist:
// num_parameters, input_size (= batch x seq), batch_size, seq_len, flops (MFLOP),
// mem_bytes (MiB). Any other name is looked up in Node::resources.
std::optional<double> node_feature(const Tree& tree, const Node& node, std::string_view name);

// Per-column standardization z = (x - mean) / scale, scale = population standard deviation;
// a constant column keeps scale 1 (as scikit-learn's StandardScaler does), so it becomes 0.
struct Standardizer {
  Eigen::VectorXd mean;
  Eigen::VectorXd scale;

  // Fits on the rows of `x` selected by `rows` (all rows when empty).
  static Standardizer fit(const RowMatrix& x, const std::vector<int>& rows = {});
  static Standardizer identity(int columns);
  int size() const { return static_cast<int>(mean.size()); }
  void apply(const double* x, double* z) const {
    for (int i = 0; i < mean.size(); ++i) z[i] = (x[i] - mean[i]) / scale[i];
  }
};

// Every monomial of the inputs up to `degree`, the constant term first, in scikit-learn's
// PolynomialFeatures order (degree 0, then 1, then 2 ... each in lexicographic order of the
// sorted index tuples). Degree 3 over 14 inputs gives 680 terms. With `enabled` false the
// expansion is the identity (the inputs themselves, no constant term).
class Polynomial {
 public:
  Polynomial() = default;
  Polynomial(int inputs, int degree, bool enabled = true);
  int inputs() const { return inputs_; }
  int outputs() const { return outputs_; }
  int degree() const { return degree_; }
  bool enabled() const { return enabled_; }

  // out[0 .. outputs()) from z[0 .. inputs()); one multiplication per term.
  template <typename T>
  void expand(const double* z, T* out) const {
    if (!enabled_) {
      for (int i = 0; i < inputs_; ++i) out[i] = static_cast<T>(z[i]);
      return;
    }
    // Computed in double, stored as T.
    thread_local std::vector<double> buf;
    buf.resize(outputs_);
    buf[0] = 1.0;
    for (int t = 1; t < outputs_; ++t) buf[t] = buf[prefix_[t]] * z[var_[t]];
    for (int t = 0; t < outputs_; ++t) out[t] = static_cast<T>(buf[t]);
  }
  // "1", "flops", "flops*seq_len", ... for the given input names.
  std::vector<std::string> term_names(const std::vector<std::string>& names) const;

 private:
  int inputs_ = 0, degree_ = 0, outputs_ = 0;
  bool enabled_ = false;
  std::vector<int> prefix_, var_;  // term t = term prefix_[t] * z[var_[t]]
};

}  // namespace irene::predict
