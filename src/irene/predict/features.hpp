// Node features and their transformations (standardization, polynomial expansion).
#pragma once

#include <algorithm>
#include <optional>
#include <type_traits>
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
// mem_bytes (MiB, the dataset's rule), and, counted from the node's attrs and ops by the
// registry (arch/registry.hpp, "Two byte counts"; Error when a leaf lacks an attr):
// weight_elements (the elements of the weights the node's leaves read, summed over its subtree:
// num_parameters, except that a tied weight counts at every leaf that holds it: an LM head tied
// to the token embeddings streams its vocab x hidden weights every call, where num_parameters,
// which counts a model's parameters once, gives it 0; it does not change with the batch or the
// context, so the decode-step evaluator need not move it),
// traffic_mib (physical memory traffic, MiB), flop_per_byte (arithmetic intensity: FLOPs /
// traffic bytes, 0 without traffic) and kernels (kernel launches of one call);
// traffic_beyond_<N>mib (N = 1..65536): the MiB by which each kernel call of the node's subtree
// (a leaf's call, each own operation) exceeds N MiB, summed: a call's bytes past a cache's size
// stream from main memory, at its lower bandwidth (feature set cpu_caches);
// flops_beyond_<N>fpb (N = 1..65536 FLOP per byte): the MFLOP by which each kernel call of the
// subtree exceeds N FLOP per byte of its traffic, max(0, FLOPs - N x bytes), summed: a call below
// a machine's ridge point waits on memory and its FLOPs add no time, above it they do (feature
// set cpu_roofline); openblas_blocked_mib: the MiB of the GEMM leaves of the subtree (Linear,
// Conv1D) that OpenBLAS on AVX-512 cores (its SkylakeX kernels) multiplies on its blocked path,
// which packs the operands into buffers first, rather than in its small-matrix kernel straight
// from them, each such leaf's whole traffic: PyTorch calls sgemm with the weight transposed (M =
// out_features, N = rows, K = in_features), and the small-matrix kernel takes that call only when
// M N K <= 100^3, M N <= 1200 and K >= 32 (feature set cpu_blas). Any other name is looked up in
// Node::resources.
std::optional<double> node_feature(const Tree& tree, const Node& node, std::string_view name);
// True for traffic_beyond_<N>mib and own_traffic_beyond_<N>mib names.
bool is_traffic_beyond_feature(std::string_view name);
// True for flops_beyond_<N>fpb names.
bool is_flops_beyond_feature(std::string_view name);
// True for openblas_blocked_mib.
bool is_blocked_traffic_feature(std::string_view name);
// True for a feature whose value on a parent is counted from its descendants' attrs and ops rather
// than from the parent's own counts: traffic_mib, kernels, flop_per_byte, products,
// traffic_beyond_<N>mib, flops_beyond_<N>fpb, openblas_blocked_mib and the own feature
// own_evicted_<N>mib.
bool reads_subtree(std::string_view name);

// Own operations of a node: what it runs beyond its children (residual adds, GELU, attention
// scaling and masking, embedding sums; Node::ops). Features, all >= 0 (a difference below 0,
// from rounding or measurement noise, counts as 0):
//   own_flops           MFLOP of the node minus its children's (imported trees: the measured
//                       rows' counts; built trees: the ops' counts)
//   own_mem_bytes       MiB read + written, likewise
//   own_ops             number of operations in Node::ops (each one a kernel launch)
//   own_ops:KIND        number of operations of one registry kind (arch/registry.hpp: add, ...)
//   own_elements        elements (millions) the node's ops produce, summed
//   own_elements:KIND   likewise for one registry kind
//   own_constant        1 for every node with children (a per-module overhead)
//   own_traffic_beyond_<N>mib  MiB by which each of the node's own operations exceeds N MiB, summed
//   own_traffic:KIND, own_traffic_beyond_<N>mib:KIND  the same of one registry kind only
//                       (own_traffic: every byte, N = 0): e.g. repeat_kv's copies of the cache
//   own_evicted_<N>mib  MiB of the node's children that a cache of N MiB held when each child was
//                       measured alone but not inside the node, whose one call moves more than N
//                       MiB (0 when it moves less): a leaf child's first N MiB (the bytes its
//                       traffic_beyond_<N>mib feature treats as cache-resident), a module child's
//                       whole traffic when that fits in N MiB. Measured alone, a child's repeated
//                       calls find its weights in the cache; inside a step every weight comes from
//                       memory. E.g. a decode MLP of three 44 MiB Linears (TinyLlama-1.1B,
//                       float32): own_evicted_128mib = its children's 132 MiB, own_evicted_32mib
//                       = 3 x 32 MiB and the activation's few KiB
//   own_times_mean      seconds of the node minus its children's (measured resource)
//   own_gpu_energy_mean joules the GPU driver reports for the node minus its children's
// Leaves have none (all 0). In a list, "own_ops_by_kind" and "own_elements_by_kind" stand for
// every own_ops:KIND / own_elements:KIND of the registry, in its order.
std::vector<std::string> own_feature_names(const std::vector<std::string>& wanted);
// True for the own features read from measured resources (own_times_mean, own_gpu_energy_mean);
// `base` gets the resource's name.
bool own_feature_from_resource(std::string_view name, std::string* base = nullptr);
// Error on a name that is not one of the above, or a resource the node (or a child) lacks.
double own_feature(const Tree& tree, const Node& node, std::string_view name);
// What a count of a node has beyond its children's: `remainder` (the node's count minus each
// child's, subtracted in child order) when it is more than rounding of `whole`, else 0. The
// rule own_flops and own_mem_bytes follow, for callers that hold the children's counts
// elsewhere (explain/generation.cpp).
double own_remainder(double whole, double remainder);

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
    // Computed in double, stored as T. The terms extending one prefix term are contiguous and
    // multiply it by a contiguous run of inputs: one vectorizable loop per run.
    thread_local std::vector<double> buf;
    buf.resize(outputs_);
    buf[0] = 1.0;
    for (const Run& r : runs_) {
      const double f = buf[r.prefix];
      double* o = buf.data() + r.out;
      const double* zi = z + r.first;
      for (int k = 0; k < r.length; ++k) o[k] = f * zi[k];
    }
    if constexpr (std::is_same_v<T, double>) {
      std::copy(buf.begin(), buf.end(), out);
    } else {
      for (int t = 0; t < outputs_; ++t) out[t] = static_cast<T>(buf[t]);
    }
  }
  // "1", "flops", "flops*seq_len", ... for the given input names.
  std::vector<std::string> term_names(const std::vector<std::string>& names) const;

 private:
  int inputs_ = 0, degree_ = 0, outputs_ = 0;
  bool enabled_ = false;
  std::vector<int> prefix_, var_;  // term t = term prefix_[t] * z[var_[t]]
  // Term runs: terms out .. out + length - 1 are term `prefix` times z[first .. first + length).
  struct Run {
    int prefix, first, out, length;
  };
  std::vector<Run> runs_;
};

}  // namespace irene::predict
