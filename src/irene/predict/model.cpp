#include "irene/predict/model.hpp"

#include <fmt/format.h>

#include <Eigen/SVD>
#include <algorithm>
#include <unordered_map>

#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/predict/upper.hpp"

namespace irene::predict {

std::vector<std::string> available_features(const std::vector<const Tree*>& trees,
                                            const std::vector<std::string>& wanted,
                                            std::vector<std::string>* dropped) {
  std::vector<std::string> kept;
  for (const auto& name : wanted) {
    bool everywhere = true;
    for (const Tree* t : trees) {
      for (const Node& n : t->nodes)
        if (!node_feature(*t, n, name)) {
          everywhere = false;
          break;
        }
      if (!everywhere) break;
    }
    if (everywhere) kept.push_back(name);
    else if (dropped) dropped->push_back(name);
  }
  return kept;
}

std::vector<std::size_t> measured_trees(const std::vector<Tree>& trees, std::vector<std::string>* skipped) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < trees.size(); ++i) {
    const auto& t = trees[i];
    if (!t.nodes.empty() && t.root().ground_truth_energy_j && *t.root().ground_truth_energy_j > 0)
      out.push_back(i);
    else if (skipped)
      skipped->push_back(t.key());
  }
  return out;
}

FlatTrees flatten(const std::vector<const Tree*>& trees, const std::vector<std::string>& feature_names) {
  FlatTrees f;
  f.feature_names = feature_names;
  long rows = 0;
  for (const Tree* t : trees) rows += static_cast<long>(t->nodes.size());
  const int d = static_cast<int>(feature_names.size());
  f.raw.resize(rows, d);
  f.parent.reserve(rows);
  f.leaf.reserve(rows);
  f.type.reserve(rows);
  f.gold.reserve(rows);
  f.flops.reserve(rows);
  f.gpu_energy.reserve(rows);
  f.leaf_class.reserve(rows);
  std::unordered_map<std::string, int> class_index, model_index;
  long r = 0;
  for (const Tree* tp : trees) {
    const Tree& t = *tp;
    if (t.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", t.key()));
    const int base = static_cast<int>(r);
    f.tree_begin.push_back(base);
    auto [mit, fresh] = model_index.emplace(t.model_name, static_cast<int>(f.models.size()));
    if (fresh) f.models.push_back(t.model_name);
    f.tree_model.push_back(mit->second);
    f.tree_keys.push_back(t.key());
    for (std::size_t i = 0; i < t.nodes.size(); ++i, ++r) {
      const Node& n = t.nodes[i];
      if (n.parent >= static_cast<int>(i) || (i > 0 && n.parent < 0))
        throw Error(fmt::format("tree {}: node '{}' is not in pre-order", t.key(), n.id));
      for (int j = 0; j < d; ++j) {
        auto v = node_feature(t, n, feature_names[j]);
        if (!v)
          throw Error(fmt::format("tree {}: node '{}' lacks feature '{}' that the predictor uses", t.key(),
                                  n.id, feature_names[j]));
        if (!std::isfinite(*v))
          throw Error(fmt::format("tree {}: node '{}' has a non-finite '{}'", t.key(), n.id, feature_names[j]));
        f.raw(r, j) = *v;
      }
      f.parent.push_back(n.parent < 0 ? -1 : base + n.parent);
      const bool leaf = n.children.empty();
      f.leaf.push_back(leaf ? 1 : 0);
      f.type.push_back(n.type);
      f.gold.push_back(n.ground_truth_energy_j ? *n.ground_truth_energy_j : kNaN);
      f.flops.push_back(n.flops_mflop);
      auto g = n.resources.find("gpu_energy_mean");
      f.gpu_energy.push_back(g == n.resources.end() ? kNaN : g->second);
      if (leaf) {
        // A leaf is predicted by the regressor of its class. The published trees' leaves are
        // ML primitives; CTRL's ReLU is a module without children, predicted the same way.
        // Hugging Face's per-family classes of one primitive share it (LlamaRMSNorm, Qwen2RMSNorm: RMSNorm).
        const std::string cls = regressor_class(n.class_name);
        auto [cit, cfresh] = class_index.emplace(cls, static_cast<int>(f.classes.size()));
        if (cfresh) f.classes.push_back(cls);
        f.leaf_class.push_back(cit->second);
      } else {
        f.leaf_class.push_back(-1);
      }
    }
  }
  f.tree_begin.push_back(static_cast<int>(r));
  return f;
}

// ---- Stand-ins ---------------------------------------------------------------------------------
std::string regressor_class(std::string_view class_name) {
  const Primitive* p = find_primitive(class_name);
  return p ? p->class_name : std::string(class_name);
}

const LeafRegressor* find_leaf_regressor(const FittedModel& model, std::string_view class_name,
                                         std::string* stand_in) {
  if (stand_in) stand_in->clear();
  const std::string cls = regressor_class(class_name);
  if (auto it = model.leaves.find(cls); it != model.leaves.end()) return &it->second;
  if (auto it = model.leaves.find(std::string(class_name)); it != model.leaves.end()) return &it->second;
  const Primitive* p = find_primitive(class_name);
  if (!p || p->stand_in.empty()) return nullptr;
  auto it = model.leaves.find(p->stand_in);
  if (it == model.leaves.end()) return nullptr;
  if (stand_in) *stand_in = p->stand_in;
  return &it->second;
}
// -------------------------------------------------------------------------------------------------

LeafRegressor LeafRegressor::fit(LeafModel kind, const RowMatrix& x, const Eigen::VectorXd& y) {
  LeafRegressor m;
  m.kind = kind;
  m.samples = x.rows();
  m.scaler = Standardizer::fit(x);
  const long n = x.rows();
  const int d = static_cast<int>(x.cols());
  Eigen::MatrixXd z(n, d);
  for (long i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) z(i, j) = (x(i, j) - m.scaler.mean[j]) / m.scaler.scale[j];
  Eigen::VectorXd target = y;
  if (kind == LeafModel::log_linear) target = y.array().log().matrix();
  // Intercept by centering (as scikit-learn's LinearRegression), then the minimum-norm least
  // squares solution of the centered system. `relative`: weights 1/E^2 (weighted means, rows
  // scaled by 1/E), so that the squared relative error is what is minimized.
  Eigen::VectorXd weight = Eigen::VectorXd::Ones(n);
  if (kind == LeafModel::relative) weight = y.array().square().inverse().matrix();
  const double wsum = weight.sum();
  const Eigen::RowVectorXd zmean = (weight.transpose() * z) / wsum;
  const double ymean = weight.dot(target) / wsum;
  z.rowwise() -= zmean;
  target.array() -= ymean;
  if (kind == LeafModel::relative) {
    const Eigen::ArrayXd root = weight.array().sqrt();
    z.array().colwise() *= root;
    target.array() *= root;
  }
  Eigen::JacobiSVD<Eigen::MatrixXd, Eigen::ColPivHouseholderQRPreconditioner> svd(
      z, Eigen::ComputeThinU | Eigen::ComputeThinV);
  // Singular values below max(rows, columns) x epsilon x the largest are zero (numpy's lstsq
  // default): columns that are exactly proportional in the data (LayerNorm's input_size, flops
  // and mem_bytes; Softmax's flops and mem_bytes) then share their weight instead of fitting
  // their rounding noise with weights of 1e9.
  svd.setThreshold(static_cast<double>(std::max<long>(n, d)) * std::numeric_limits<double>::epsilon());
  m.coef = svd.solve(target);
  m.intercept = ymean - zmean.dot(m.coef);
  return m;
}

double LeafRegressor::predict(const double* raw) const {
  double s = intercept;
  for (int j = 0; j < coef.size(); ++j) s += coef[j] * (raw[j] - scaler.mean[j]) / scaler.scale[j];
  return kind == LeafModel::log_linear ? std::exp(s) : s;
}

double UpperModel::score(const double* raw) const {
  if (weighting == Weighting::exact_one) return 0.0;
  thread_local std::vector<double> z, x;
  z.resize(scaler.size());
  x.resize(poly.outputs());
  scaler.apply(raw, z.data());
  poly.expand(z.data(), x.data());
  return Eigen::Map<const Eigen::VectorXd>(x.data(), x.size()).dot(w) + b;
}

double UpperModel::root_child_score(const double* raw) const {
  if (w_root.size() == 0) return score(raw);
  thread_local std::vector<double> z, x;
  z.resize(scaler.size());
  x.resize(poly.outputs());
  scaler.apply(raw, z.data());
  poly.expand(z.data(), x.data());
  return Eigen::Map<const Eigen::VectorXd>(x.data(), w_root.size()).dot(w_root) + b_root;
}

int root_weight_terms(const Config& config, int inputs) {
  if (config.root_polynomial_degree <= 0 || config.weighting_setting == Weighting::exact_one ||
      config.training_strategy == Strategy::unstructured)
    return 0;
  if (config.root_polynomial_degree > config.polynomial_degree)
    throw Error(fmt::format("configuration: root_polynomial_degree {} exceeds polynomial_degree {}",
                            config.root_polynomial_degree, config.polynomial_degree));
  // Terms come in graded order, so those up to a degree are a prefix of the full expansion.
  return Polynomial(inputs, config.root_polynomial_degree, config.polynomial_features).outputs();
}

FittedModel fit_model(const FlatTrees& data, const std::vector<int>& train, const Config& config,
                      std::uint64_t init_skip, std::vector<float>* workspace) {
  FittedModel model;
  model.config = config;
  model.feature_names = data.feature_names;
  const int d = static_cast<int>(data.raw.cols());

  // ML level: one regressor per primitive class, on the leaves with ground truth.
  std::vector<std::vector<int>> by_class(data.classes.size());
  std::vector<char> class_seen(data.classes.size(), 0);
  bool any_gold = false;
  for (int t : train) {
    bool tree_gold = false;
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      if (data.has_gold(i)) tree_gold = true;
      if (!data.leaf[i]) continue;
      class_seen[data.leaf_class[i]] = 1;
      if (data.has_gold(i)) by_class[data.leaf_class[i]].push_back(i);
    }
    if (!tree_gold)
      throw Error(fmt::format("tree {} has no ground-truth energy on any node: training needs measured trees",
                              data.tree_keys[t]));
    any_gold = any_gold || tree_gold;
  }
  for (std::size_t c = 0; c < data.classes.size(); ++c) {
    if (!class_seen[c]) continue;
    const auto& rows = by_class[c];
    if (rows.empty())
      throw Error(fmt::format("no '{}' leaf of the training trees has a ground-truth energy", data.classes[c]));
    RowMatrix x(rows.size(), d);
    Eigen::VectorXd y(rows.size());
    for (std::size_t k = 0; k < rows.size(); ++k) {
      x.row(k) = data.raw.row(rows[k]);
      y[k] = data.gold[rows[k]];
    }
    model.leaves.emplace(data.classes[c], LeafRegressor::fit(config.leaf_model, x, y));
  }

  // Upper levels.
  UpperModel& up = model.upper;
  up.weighting = config.weighting_setting;
  up.strategy = config.training_strategy;
  up.tau = config.tanh_scalar;
  up.root_children_exact = config.root_children_exact;
  up.root_tau = config.root_tanh_scalar;
  std::vector<int> rows;
  for (int t : train)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) rows.push_back(i);
  up.scaler = config.standardize_features ? Standardizer::fit(data.raw, rows) : Standardizer::identity(d);
  up.poly = Polynomial(d, config.polynomial_degree, config.polynomial_features);
  init_weights(up, config.seed, init_skip);
  up.w_root = Eigen::VectorXd::Zero(root_weight_terms(config, d));
  up.b_root = 0;
  const bool trains = up.weighting != Weighting::exact_one && config.training_strategy != Strategy::none &&
                      config.epochs > 0;
  if (trains) {
    std::vector<double> leaf_pred(data.rows(), 0.0);
    for (int i : rows)
      if (data.leaf[i]) leaf_pred[i] = model.leaves.at(data.classes[data.leaf_class[i]]).predict(data.raw.row(i).data());
    UpperProblem<float> problem(data, train, leaf_pred, up, config, workspace);
    model.final_train_loss = train_upper(up, problem, config);
  }
  return model;
}

void predict_flat(const FittedModel& model, const FlatTrees& data, const std::vector<int>& which,
                  std::vector<double>& pred, bool lenient) {
  if (static_cast<int>(pred.size()) < data.rows()) pred.resize(data.rows(), kNaN);
  std::vector<const LeafRegressor*> regressor(data.classes.size(), nullptr);
  for (std::size_t c = 0; c < data.classes.size(); ++c) {
    regressor[c] = find_leaf_regressor(model, data.classes[c]);  // its own, else its stand-in's
  }
  const UpperModel& up = model.upper;
  const bool unstructured = up.strategy == Strategy::unstructured;
  for (int t : which) {
    const int b = data.tree_begin[t], e = data.tree_begin[t + 1];
    for (int i = b; i < e; ++i) {
      if (data.leaf[i]) {
        const LeafRegressor* reg = regressor[data.leaf_class[i]];
        if (!reg && lenient) {
          pred[i] = kNaN;
          continue;
        }
        if (!reg) {
          std::string known;
          for (const auto& [name, r] : model.leaves) known += (known.empty() ? "" : ", ") + name;
          throw Error(fmt::format("tree {}: primitive type '{}' was never seen in training (the predictor knows: {})",
                                  data.tree_keys[t], data.classes[data.leaf_class[i]], known));
        }
        pred[i] = reg->predict(data.raw.row(i).data());
      } else {
        pred[i] = unstructured ? up.alpha(up.score(data.raw.row(i).data())) : 0.0;
      }
    }
    if (unstructured) continue;
    for (int i = e - 1; i > b; --i) {
      const bool exact = up.weighting == Weighting::exact_one || (up.root_children_exact && data.parent[i] == b);
      const bool root_child = data.parent[i] == b;
      const double s = exact ? 0.0 : root_child ? up.root_child_score(data.raw.row(i).data()) : up.score(data.raw.row(i).data());
      const double a = exact ? 1.0 : root_child ? up.root_child_alpha(s) : up.alpha(s);
      pred[data.parent[i]] += a * pred[i];
    }
  }
}

}  // namespace irene::predict
