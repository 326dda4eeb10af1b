#include "irene/predict/features.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"

namespace irene::predict {

namespace {

// "<prefix>N<suffix>" -> N (a whole number 1..65536 without leading zeros), else 0.
double number_between(std::string_view name, std::string_view prefix, std::string_view suffix) {
  if (name.substr(0, prefix.size()) != prefix || name.size() < prefix.size() + suffix.size() + 1 ||
      name.substr(name.size() - suffix.size()) != suffix)
    return 0;
  const std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 5 || digits.front() == '0') return 0;
  double n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    n = 10 * n + (c - '0');
  }
  return n <= 65536 ? n : 0;
}

// "traffic_beyond_<N>mib" -> N MiB in bytes (N a whole number 1..65536), else 0.
double knee_bytes(std::string_view name, std::string_view prefix) {
  return number_between(name, prefix, "mib") * 1048576.0;
}

// The sum over each kernel call of the node (a leaf's call, each op of the node; with `kind`, only
// its ops of that kind) of amount(FLOPs, bytes) of the call; with `subtree`, over every call in
// its subtree.
template <class Amount>
double sum_over_calls(const Tree& tree, const Node& n, double e, bool subtree, std::string_view kind,
                      const Amount& amount) {
  double sum = 0;
  if (n.type == NodeType::ml && n.children.empty() && kind.empty())
    sum += amount(n.flops_mflop * 1e6, primitive_traffic(n, e));
  for (const auto& op : n.ops)
    if (kind.empty() || op.kind == kind) {
      const Counts c = count_op(op, e);
      sum += amount(c.flops, c.bytes);
    }
  if (subtree)
    for (int c : n.children) sum += sum_over_calls(tree, tree.nodes.at(c), e, true, kind, amount);
  return sum;
}

// Bytes beyond `knee` bytes of each kernel call (sum_over_calls).
double bytes_beyond(const Tree& tree, const Node& n, double knee, double e, bool subtree,
                    std::string_view kind = {}) {
  return sum_over_calls(tree, n, e, subtree, kind, [knee](double, double bytes) { return std::max(0.0, bytes - knee); });
}

// Bytes of the children of `n` that a cache of `knee` bytes held when each child was measured alone
// but not inside `n`, whose one call moves more than `knee` bytes: a leaf's first `knee` bytes (what
// its traffic_beyond_ features treat as cache-resident), a module's whole traffic when it fits. 0
// when n's own call fits.
double evicted_bytes(const Tree& tree, const Node& n, double knee) {
  if (n.children.empty() || node_traffic(tree, n).bytes <= knee) return 0;
  double sum = 0;
  for (int c : n.children) {
    const Node& child = tree.nodes.at(c);
    const double bytes = node_traffic(tree, child).bytes;
    if (child.type == NodeType::ml && child.children.empty())
      sum += std::min(bytes, knee);
    else if (bytes <= knee)
      sum += bytes;
  }
  return sum;
}

// Bytes of the GEMM leaves (Linear, Conv1D) of n's subtree that OpenBLAS's SkylakeX kernels run on
// their blocked path (features.hpp, openblas_blocked_mib), each leaf's whole traffic.
double blocked_bytes(const Tree& tree, const Node& n, double e) {
  double sum = 0;
  if (n.type == NodeType::ml && n.children.empty())
    if (const auto g = gemm_shape(n)) {
      // sgemm with the weight transposed: M = out_features, N = rows, K = in_features; the
      // small-matrix kernel takes it when M N K <= 100^3, M N <= 1200 and K >= 32
      // (kernel/x86_64/sgemm_small_kernel_permit_skylakex.c)
      const bool small = g->out * g->rows * g->in <= 1e6 && g->out * g->rows <= 1200 && g->in >= 32;
      if (!small) sum += primitive_traffic(n, e);
    }
  for (int c : n.children) sum += blocked_bytes(tree, tree.nodes.at(c), e);
  return sum;
}

// Floating-point operations beyond `ratio` per byte of each kernel call (sum_over_calls): a call
// whose arithmetic intensity is below the ratio adds 0.
double flops_beyond(const Tree& tree, const Node& n, double ratio, double e) {
  return sum_over_calls(tree, n, e, true, {},
                        [ratio](double flops, double bytes) { return std::max(0.0, flops - ratio * bytes); });
}

// "flops_beyond_<N>fpb" -> N (a whole number 1..65536, FLOP per byte), else 0.
double intensity_knee(std::string_view name) { return number_between(name, "flops_beyond_", "fpb"); }

// Matrix products of the node's subtree: a MatMul leaf's batch x heads (a batched product runs
// one GEMM per pair on a CPU), a Linear's one.
double products(const Tree& tree, const Node& n) {
  double p = 0;
  if (n.type == NodeType::ml && n.children.empty()) {
    if (n.class_name == "MatMul" && n.attrs.count("batch") && n.attrs.count("heads"))
      p = static_cast<double>(n.attrs.at("batch")) * static_cast<double>(n.attrs.at("heads"));
    else if (n.class_name == "Linear" || n.class_name == "Conv1D")
      p = 1;
  }
  for (int c : n.children) p += products(tree, tree.nodes.at(c));
  return p;
}

// weight_elements (features.hpp): the registry's parameters of each leaf of the subtree as if
// untied.
double weight_elements(const Tree& tree, const Node& n) {
  double w = 0;
  if (n.type == NodeType::ml && n.children.empty()) {
    if (n.attrs.count("tied")) {
      Node untied = n;
      untied.attrs.erase("tied");
      w = static_cast<double>(primitive_parameters(untied));
    } else {
      w = static_cast<double>(n.num_parameters);
    }
  }
  for (int c : n.children) w += weight_elements(tree, tree.nodes.at(c));
  return w;
}

// "WHAT:KIND" with KIND an operation kind of the registry -> (WHAT, KIND); else nothing.
std::optional<std::pair<std::string_view, std::string_view>> split_kind(std::string_view name) {
  const auto colon = name.find(':');
  if (colon == std::string_view::npos || !find_op_kind(name.substr(colon + 1))) return std::nullopt;
  return std::pair{name.substr(0, colon), name.substr(colon + 1)};
}

// "own_traffic:KIND" -> (0, KIND), "own_traffic_beyond_<N>mib:KIND" -> (N MiB in bytes, KIND); else
// nothing.
std::optional<std::pair<double, std::string_view>> own_traffic_of_kind(std::string_view name) {
  const auto sk = split_kind(name);
  if (!sk) return std::nullopt;
  if (sk->first == "own_traffic") return std::pair{0.0, sk->second};
  if (const double knee = knee_bytes(sk->first, "own_traffic_beyond_"); knee > 0) return std::pair{knee, sk->second};
  return std::nullopt;
}

// "own_ops:KIND" or "own_elements:KIND" -> (own_ops | own_elements, KIND); else nothing.
std::optional<std::pair<std::string_view, std::string_view>> count_of_kind(std::string_view name) {
  const auto sk = split_kind(name);
  if (sk && (sk->first == "own_ops" || sk->first == "own_elements")) return sk;
  return std::nullopt;
}

}  // namespace

bool is_flops_beyond_feature(std::string_view name) { return intensity_knee(name) > 0; }

bool is_traffic_beyond_feature(std::string_view name) {
  return knee_bytes(name, "traffic_beyond_") > 0 || knee_bytes(name, "own_traffic_beyond_") > 0;
}

bool is_blocked_traffic_feature(std::string_view name) { return name == "openblas_blocked_mib"; }

bool reads_subtree(std::string_view name) {
  return name == "traffic_mib" || name == "kernels" || name == "flop_per_byte" || name == "products" ||
         knee_bytes(name, "traffic_beyond_") > 0 || is_flops_beyond_feature(name) || is_blocked_traffic_feature(name) ||
         knee_bytes(name, "own_evicted_") > 0;
}

std::optional<double> node_feature(const Tree& tree, const Node& node, std::string_view name) {
  if (name == "num_parameters") return static_cast<double>(node.num_parameters);
  if (name == "weight_elements") return weight_elements(tree, node);
  if (name == "input_size") return static_cast<double>(tree.batch_size) * tree.seq_len;
  if (name == "batch_size") return static_cast<double>(tree.batch_size);
  if (name == "seq_len") return static_cast<double>(tree.seq_len);
  if (name == "flops") return node.flops_mflop;
  if (name == "mem_bytes") return node.mem_mib;
  if (name == "traffic_mib") return node_traffic(tree, node).mib();
  if (name == "kernels") return node_traffic(tree, node).kernels;
  if (name == "products") return products(tree, node);
  if (const double knee = knee_bytes(name, "traffic_beyond_"); knee > 0)
    return bytes_beyond(tree, node, knee, dtype_bytes(tree.dtype), true) / 1048576.0;
  if (is_blocked_traffic_feature(name)) return blocked_bytes(tree, node, dtype_bytes(tree.dtype)) / 1048576.0;
  if (const double ratio = intensity_knee(name); ratio > 0)
    return flops_beyond(tree, node, ratio, dtype_bytes(tree.dtype)) / 1e6;
  if (name == "flop_per_byte") {
    const double bytes = node_traffic(tree, node).bytes;
    return bytes > 0 ? node.flops_mflop * 1e6 / bytes : 0.0;
  }
  auto it = node.resources.find(std::string(name));
  if (it == node.resources.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> own_feature_names(const std::vector<std::string>& wanted) {
  std::vector<std::string> out;
  for (const auto& w : wanted) {
    if (w == "own_ops_by_kind" || w == "own_elements_by_kind") {
      const std::string prefix = w == "own_ops_by_kind" ? "own_ops:" : "own_elements:";
      for (const auto& k : op_kinds()) out.push_back(prefix + k.name);
      continue;
    }
    if (w != "own_flops" && w != "own_mem_bytes" && w != "own_ops" && w != "own_elements" && w != "own_constant" &&
        !own_feature_from_resource(w) && !count_of_kind(w) && knee_bytes(w, "own_traffic_beyond_") == 0 &&
        knee_bytes(w, "own_evicted_") == 0 && !own_traffic_of_kind(w))
      throw Error(fmt::format("unknown own-operation feature '{}' (expected own_flops, own_mem_bytes, own_ops, "
                              "own_ops:KIND, own_ops_by_kind, own_elements, own_elements:KIND, own_elements_by_kind, "
                              "own_constant, own_traffic_beyond_<N>mib, own_traffic:KIND, "
                              "own_traffic_beyond_<N>mib:KIND, own_evicted_<N>mib, own_times_mean or own_gpu_energy_mean)",
                              w));
    if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  }
  return out;
}

bool own_feature_from_resource(std::string_view name, std::string* base) {
  if (name != "own_times_mean" && name != "own_gpu_energy_mean") return false;
  if (base) *base = std::string(name.substr(4));
  return true;
}

double own_remainder(double whole, double remainder) {
  // Counts are sums of children and ops; a difference at rounding level is 0.
  return remainder > 1e-9 * std::abs(whole) ? remainder : 0.0;
}

double own_feature(const Tree& tree, const Node& node, std::string_view name) {
  if (node.children.empty()) return 0.0;
  auto positive_difference = [&](auto value) {
    double v = value(node);
    const double whole = v;
    for (int c : node.children) v -= value(tree.nodes[c]);
    return own_remainder(whole, v);
  };
  if (name == "own_flops") return positive_difference([](const Node& n) { return n.flops_mflop; });
  if (name == "own_mem_bytes") return positive_difference([](const Node& n) { return n.mem_mib; });
  std::string base;
  if (own_feature_from_resource(name, &base)) {
    auto value = [&](const Node& n) {
      auto it = n.resources.find(base);
      if (it == n.resources.end())
        throw Error(fmt::format("tree {}: node '{}' lacks resource '{}' that the predictor's own-operation feature "
                                "'{}' reads",
                                tree.key(), n.id, base, name));
      return it->second;
    };
    return positive_difference(value);
  }
  if (const double knee = knee_bytes(name, "own_traffic_beyond_"); knee > 0)
    return bytes_beyond(tree, node, knee, dtype_bytes(tree.dtype), false) / 1048576.0;
  if (const double knee = knee_bytes(name, "own_evicted_"); knee > 0) return evicted_bytes(tree, node, knee) / 1048576.0;
  if (const auto of_kind = own_traffic_of_kind(name))
    return bytes_beyond(tree, node, of_kind->first, dtype_bytes(tree.dtype), false, of_kind->second) / 1048576.0;
  if (name == "own_ops") return static_cast<double>(node.ops.size());
  if (name == "own_constant") return 1.0;
  if (name == "own_elements") {
    double e = 0;
    for (const auto& op : node.ops) e += static_cast<double>(elements(op.shape)) / 1e6;
    return e;
  }
  if (const auto of_kind = count_of_kind(name)) {
    double n = 0;
    for (const auto& op : node.ops)
      if (op.kind == of_kind->second)
        n += of_kind->first == "own_ops" ? 1.0 : static_cast<double>(elements(op.shape)) / 1e6;
    return n;
  }
  throw Error(fmt::format("unknown own-operation feature '{}'", name));
}

Standardizer Standardizer::fit(const RowMatrix& x, const std::vector<int>& rows) {
  const int d = static_cast<int>(x.cols());
  const long n = rows.empty() ? x.rows() : static_cast<long>(rows.size());
  Standardizer s;
  s.mean = Eigen::VectorXd::Zero(d);
  s.scale = Eigen::VectorXd::Ones(d);
  if (n == 0) return s;
  auto row = [&](long k) { return rows.empty() ? k : static_cast<long>(rows[k]); };
  for (long k = 0; k < n; ++k) s.mean += x.row(row(k)).transpose();
  s.mean /= static_cast<double>(n);
  Eigen::VectorXd var = Eigen::VectorXd::Zero(d);
  for (long k = 0; k < n; ++k) var += (x.row(row(k)).transpose() - s.mean).array().square().matrix();
  var /= static_cast<double>(n);
  for (int j = 0; j < d; ++j) {
    // A column whose variance is at rounding level is constant (scale 1); scikit-learn's bound.
    const double eps = std::numeric_limits<double>::epsilon();
    const double nd = static_cast<double>(n);
    const double bound = nd * eps * var[j] + (nd * s.mean[j] * eps) * (nd * s.mean[j] * eps);
    s.scale[j] = (var[j] <= bound || var[j] == 0) ? 1.0 : std::sqrt(var[j]);
  }
  return s;
}

Standardizer Standardizer::identity(int columns) {
  Standardizer s;
  s.mean = Eigen::VectorXd::Zero(columns);
  s.scale = Eigen::VectorXd::Ones(columns);
  return s;
}

Polynomial::Polynomial(int inputs, int degree, bool enabled)
    : inputs_(inputs), degree_(degree), enabled_(enabled) {
  if (inputs < 0 || degree < 1) throw Error(fmt::format("polynomial features: bad degree {}", degree));
  if (!enabled) {
    outputs_ = inputs;
    return;
  }
  // Terms of degree k are the degree k-1 terms (in order) each extended by every variable
  // >= its last one: lexicographic order of sorted index tuples, as scikit-learn.
  prefix_ = {-1};
  var_ = {-1};
  std::vector<int> last = {0};  // smallest variable a term may be extended by
  int begin = 0, end = 1;       // terms of the previous degree
  for (int k = 1; k <= degree; ++k) {
    for (int t = begin; t < end; ++t)
      for (int v = last[t]; v < inputs; ++v) {
        prefix_.push_back(t);
        var_.push_back(v);
        last.push_back(v);
      }
    begin = end;
    end = static_cast<int>(prefix_.size());
  }
  outputs_ = static_cast<int>(prefix_.size());
  for (int t = 1; t < outputs_;) {
    Run r{prefix_[t], var_[t], t, 1};
    while (t + r.length < outputs_ && prefix_[t + r.length] == r.prefix && var_[t + r.length] == r.first + r.length)
      ++r.length;
    runs_.push_back(r);
    t += r.length;
  }
}

std::vector<std::string> Polynomial::term_names(const std::vector<std::string>& names) const {
  std::vector<std::string> out;
  if (!enabled_) return names;
  out.reserve(outputs_);
  out.push_back("1");
  for (int t = 1; t < outputs_; ++t)
    out.push_back(prefix_[t] == 0 ? names.at(var_[t]) : out[prefix_[t]] + "*" + names.at(var_[t]));
  return out;
}

}  // namespace irene::predict
