#include "irene/predict/model.hpp"

#include <fmt/format.h>

#include <Eigen/QR>
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

FlatTrees flatten(const std::vector<const Tree*>& trees, const std::vector<std::string>& feature_names,
                  const std::vector<std::string>& own_names) {
  FlatTrees f;
  f.feature_names = feature_names;
  f.own_names = own_names;
  long rows = 0;
  for (const Tree* t : trees) rows += static_cast<long>(t->nodes.size());
  const int d = static_cast<int>(feature_names.size());
  const int k_own = static_cast<int>(own_names.size());
  f.raw.resize(rows, d);
  f.own.resize(rows, k_own);
  f.parent.reserve(rows);
  f.leaf.reserve(rows);
  f.type.reserve(rows);
  f.gold.reserve(rows);
  f.flops.reserve(rows);
  f.traffic.reserve(rows);
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
    bool countable = true;
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
      for (int k = 0; k < k_own; ++k) f.own(r, k) = own_feature(t, n, own_names[k]);
      f.parent.push_back(n.parent < 0 ? -1 : base + n.parent);
      const bool leaf = n.children.empty();
      f.leaf.push_back(leaf ? 1 : 0);
      f.type.push_back(n.type);
      f.gold.push_back(n.ground_truth_energy_j ? *n.ground_truth_energy_j : kNaN);
      f.flops.push_back(n.flops_mflop);
      // The root is counted first (pre-order): a tree the registry cannot count throws once.
      double traffic = kNaN;
      if (countable) try {
          traffic = node_traffic(t, n).mib();
        } catch (const Error&) {
          countable = false;
        }
      f.traffic.push_back(traffic);
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

std::vector<const LeafRegressor*> leaf_regressors(const FittedModel& model, const std::vector<std::string>& classes) {
  std::vector<const LeafRegressor*> out(classes.size(), nullptr);
  for (std::size_t c = 0; c < classes.size(); ++c) out[c] = find_leaf_regressor(model, classes[c]);  // own, else stand-in's
  return out;
}

Error unknown_primitive(const FittedModel& model, const std::string& tree_key, std::string_view class_name) {
  std::string known;
  for (const auto& [name, r] : model.leaves) known += (known.empty() ? "" : ", ") + name;
  return Error(fmt::format("tree {}: primitive type '{}' was never seen in training (the predictor knows: {})", tree_key,
                           class_name, known));
}

const LeafRegressor* find_leaf_regressor(const FittedModel& model, std::string_view class_name,
                                         std::string* stand_in) {
  if (stand_in) stand_in->clear();
  const std::string cls = regressor_class(class_name);
  if (auto it = model.leaves.find(cls); it != model.leaves.end()) return &it->second;
  if (auto it = model.leaves.find(std::string(class_name)); it != model.leaves.end()) return &it->second;
  // the stand-in, else its stand-in, ... (registry.hpp, Primitive::stand_in)
  const Primitive* p = find_primitive(class_name);
  for (int step = 0; p && !p->stand_in.empty() && step < 4; ++step) {
    if (auto it = model.leaves.find(p->stand_in); it != model.leaves.end()) {
      if (stand_in) *stand_in = p->stand_in;
      return &it->second;
    }
    p = find_primitive(p->stand_in);
  }
  return nullptr;
}
// -------------------------------------------------------------------------------------------------

bool grows_with_input(std::string_view f) {
  return f == "input_size" || f == "batch_size" || f == "seq_len" || f == "flops" || f == "mem_bytes" ||
         f == "traffic_mib" || f == "products" || is_traffic_beyond_feature(f) || is_flops_beyond_feature(f) ||
         is_blocked_traffic_feature(f);
}

namespace {

// Minimum-norm least squares of a x = b (SVD; see LeafRegressor). `rows`: the row count the
// rank threshold is computed with (a's own, unless a stands for a taller system).
Eigen::VectorXd min_norm_solve(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, long rows = -1) {
  Eigen::JacobiSVD<Eigen::MatrixXd, Eigen::ColPivHouseholderQRPreconditioner> svd(
      a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  // Singular values below max(rows, columns) x epsilon x the largest are zero (numpy's lstsq
  // default): columns that are exactly proportional in the data (LayerNorm's input_size, flops
  // and mem_bytes; Softmax's flops and mem_bytes) then share their weight instead of fitting
  // their rounding noise with weights of 1e9.
  svd.setThreshold(static_cast<double>(std::max<long>(rows < 0 ? a.rows() : rows, a.cols())) *
                   std::numeric_limits<double>::epsilon());
  return svd.solve(b);
}

// The same on the columns `cols` of a (the others 0).
Eigen::VectorXd solve_on(const Eigen::MatrixXd& a, const Eigen::VectorXd& b, const std::vector<int>& cols,
                         long rows = -1) {
  if (static_cast<long>(cols.size()) == a.cols()) return min_norm_solve(a, b, rows);  // cols = all, in order
  Eigen::VectorXd x = Eigen::VectorXd::Zero(a.cols());
  if (cols.empty()) return x;
  Eigen::MatrixXd sub(a.rows(), static_cast<long>(cols.size()));
  for (std::size_t k = 0; k < cols.size(); ++k) sub.col(static_cast<long>(k)) = a.col(cols[k]);
  const Eigen::VectorXd y = min_norm_solve(sub, b, rows < 0 ? a.rows() : rows);
  for (std::size_t k = 0; k < cols.size(); ++k) x[cols[k]] = y[static_cast<long>(k)];
  return x;
}

}  // namespace

Eigen::VectorXd nonnegative_least_squares(const Eigen::MatrixXd& a_in, const Eigen::VectorXd& b_in,
                                          const std::vector<char>& nonnegative) {
  const int d = static_cast<int>(a_in.cols());
  const long n = a_in.rows();
  // A tall system is solved through its QR factors: with a = Q R, every sub-problem on a set of
  // columns is the same least squares on R's columns against Q^T b (d rows instead of n), and
  // the singular values, hence the rank threshold (computed with n), are the same.
  Eigen::MatrixXd a;
  Eigen::VectorXd b;
  if (n > d) {
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(a_in);
    a = qr.matrixQR().topRows(d).triangularView<Eigen::Upper>();
    b = (qr.householderQ().transpose() * b_in).head(d);
  } else {
    a = a_in;
    b = b_in;
  }
  std::vector<char> passive(d, 0);
  for (int j = 0; j < d; ++j) passive[j] = !(j < static_cast<int>(nonnegative.size()) && nonnegative[j]);
  auto cols = [&] {
    std::vector<int> c;
    for (int j = 0; j < d; ++j)
      if (passive[j]) c.push_back(j);
    return c;
  };
  auto constrained = [&](int j) { return j < static_cast<int>(nonnegative.size()) && nonnegative[j]; };
  // Free columns only, then Lawson-Hanson: free a constrained column whose gradient says the
  // fit improves as it grows; step back to feasibility when a passive one would go negative.
  Eigen::VectorXd x = solve_on(a, b, cols(), n);
  const double scale = std::max(1.0, (a.transpose() * b).cwiseAbs().maxCoeff());
  const double tol = 1e-10 * scale;
  for (int outer = 0; outer < 3 * d + 3; ++outer) {
    const Eigen::VectorXd g = a.transpose() * (b - a * x);
    int best = -1;
    for (int j = 0; j < d; ++j)
      if (constrained(j) && !passive[j] && g[j] > tol && (best < 0 || g[j] > g[best])) best = j;
    if (best < 0) break;
    passive[best] = 1;
    for (int inner = 0; inner < 3 * d + 3; ++inner) {
      const Eigen::VectorXd z = solve_on(a, b, cols(), n);
      double step = 1.0;
      int blocking = -1;
      for (int j = 0; j < d; ++j)
        if (constrained(j) && passive[j] && z[j] <= 0) {
          const double t = x[j] / (x[j] - z[j]);
          if (blocking < 0 || t < step) {
            step = t;
            blocking = j;
          }
        }
      if (blocking < 0) {
        x = z;
        break;
      }
      x += step * (z - x);
      for (int j = 0; j < d; ++j)
        if (constrained(j) && passive[j] && (j == blocking || x[j] <= 0)) {
          passive[j] = 0;
          x[j] = 0;
        }
    }
  }
  for (int j = 0; j < d; ++j)
    if (constrained(j) && x[j] < 0) x[j] = 0;
  return x;
}

LeafRegressor LeafRegressor::fit(LeafModel kind, const RowMatrix& x, const Eigen::VectorXd& y,
                                 const std::vector<char>& nonnegative, const Eigen::VectorXd* root) {
  LeafRegressor m;
  m.kind = kind;
  m.samples = x.rows();
  m.scaler = Standardizer::fit(x);
  if (x.rows() > 0) {
    m.lo = x.colwise().minCoeff().transpose();
    m.hi = x.colwise().maxCoeff().transpose();
  }
  const long n = x.rows();
  const int d = static_cast<int>(x.cols());
  Eigen::MatrixXd z(n, d);
  for (long i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) z(i, j) = (x(i, j) - m.scaler.mean[j]) / m.scaler.scale[j];
  Eigen::VectorXd target = y;
  if (kind == LeafModel::log_linear) target = y.array().log().matrix();
  // Intercept by centering (as scikit-learn's LinearRegression), then the minimum-norm least
  // squares solution of the centered system. `relative`: weights 1/E^2 (weighted means, rows
  // scaled by 1/E), so that the squared relative error is what is minimized; `share`: 1/(E E_root).
  Eigen::VectorXd weight = Eigen::VectorXd::Ones(n);
  const bool weighted = kind == LeafModel::relative || kind == LeafModel::share;
  if (weighted) weight = y.array().square().inverse().matrix();
  if (kind == LeafModel::share && root) {
    if (root->size() != n) throw Error("internal: LeafRegressor::fit: one root per row expected");
    weight = (y.array() * root->array()).inverse().matrix();
  }
  const double wsum = weight.sum();
  const Eigen::RowVectorXd zmean = (weight.transpose() * z) / wsum;
  const double ymean = weight.dot(target) / wsum;
  z.rowwise() -= zmean;
  target.array() -= ymean;
  if (weighted) {
    const Eigen::ArrayXd scale = weight.array().sqrt();
    z.array().colwise() *= scale;
    target.array() *= scale;
  }
  bool constrained = false;
  for (char c : nonnegative) constrained = constrained || c;
  if (constrained) {
    m.coef = nonnegative_least_squares(z, target, nonnegative);
  } else {
    std::vector<int> all(d);
    for (int j = 0; j < d; ++j) all[j] = j;
    m.coef = solve_on(z, target, all);
  }
  m.intercept = ymean - zmean.dot(m.coef);
  return m;
}

double LeafRegressor::predict(const double* raw) const {
  double s = intercept, ratio = 0;
  int n = 0;
  for (int j = 0; j < coef.size(); ++j) {
    s += coef[j] * (raw[j] - scaler.mean[j]) / scaler.scale[j];
    if (static_cast<std::size_t>(j) < work.size() && work[j] && scaler.mean[j] > 0)
      ratio += std::max(0.0, raw[j]) / scaler.mean[j], ++n;
  }
  if (kind == LeafModel::log_linear) return std::exp(s);
  // The floor (model.hpp): a leaf that does work never costs 0 J.
  const double floor = intercept > 0 && n > 0 ? kLeafFloor * intercept * ratio / n : 0.0;
  return std::max(s, floor);
}

double UpperModel::score(const double* raw) const {
  if (weighting == Weighting::exact_one) return 0.0;
  thread_local std::vector<double> z, x, c;
  z.resize(scaler.size());
  x.resize(poly.outputs());
  if (clamp_inputs && lo.size() == scaler.size()) {
    c.assign(raw, raw + scaler.size());
    for (int j = 0; j < scaler.size(); ++j) c[j] = std::clamp(c[j], lo[j], hi[j]);
    raw = c.data();
  }
  scaler.apply(raw, z.data());
  poly.expand(z.data(), x.data());
  return Eigen::Map<const Eigen::VectorXd>(x.data(), x.size()).dot(w) + b;
}

double UpperModel::root_child_score(const double* raw) const {
  if (w_root.size() == 0) return score(raw);
  thread_local std::vector<double> z, x, c;
  z.resize(scaler.size());
  x.resize(poly.outputs());
  if (clamp_inputs && lo.size() == scaler.size()) {
    c.assign(raw, raw + scaler.size());
    for (int j = 0; j < scaler.size(); ++j) c[j] = std::clamp(c[j], lo[j], hi[j]);
    raw = c.data();
  }
  scaler.apply(raw, z.data());
  poly.expand(z.data(), x.data());
  return Eigen::Map<const Eigen::VectorXd>(x.data(), w_root.size()).dot(w_root) + b_root;
}

int hold_column_for(const Config& config, const std::vector<std::string>& features) {
  if (!config.hold_alpha_beyond_size) return -1;
  // the size of a node: its parameters, or in the LLM feature set the weights its calls read
  for (const char* size : {"num_parameters", "weight_elements"}) {
    const auto it = std::find(features.begin(), features.end(), size);
    if (it != features.end()) return static_cast<int>(it - features.begin());
  }
  return -1;
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

std::vector<std::string> own_names_for(const Config& config, const std::vector<std::string>& features) {
  if (!config.own_ops || config.training_strategy == Strategy::unstructured) return {};
  std::vector<std::string> out;
  for (const auto& name : own_feature_names(config.own_op_features)) {
    std::string base;
    if (own_feature_from_resource(name, &base) && std::find(features.begin(), features.end(), base) == features.end())
      continue;  // the predictor does not read that resource
    out.push_back(name);
  }
  return out;
}

FittedModel fit_model(const FlatTrees& data, const std::vector<int>& train_in, const Config& config,
                      std::uint64_t init_skip, std::vector<float>* workspace) {
  FittedModel model;
  model.config = config;
  model.feature_names = data.feature_names;
  model.own_names = own_names_for(config, data.feature_names);
  if (!model.own_names.empty() && model.own_names != data.own_names)
    throw Error("internal: the trees were flattened without the configured own-operation features");
  const int d = static_cast<int>(data.raw.cols());
  std::vector<int> train = train_in;
  if (config.sort_trees)
    std::stable_sort(train.begin(), train.end(),
                     [&](int a, int b) { return data.tree_keys[a] < data.tree_keys[b]; });

  // ML level: one regressor per primitive class, on the leaves with ground truth.
  std::vector<std::vector<int>> by_class(data.classes.size());
  std::vector<std::vector<double>> root_of(data.classes.size());  // each row's measured tree root (share)
  std::vector<char> class_seen(data.classes.size(), 0);
  bool any_gold = false;
  for (int t : train) {
    bool tree_gold = false;
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      if (data.has_gold(i)) tree_gold = true;
      if (!data.leaf[i]) continue;
      class_seen[data.leaf_class[i]] = 1;
      if (data.has_gold(i)) {
        by_class[data.leaf_class[i]].push_back(i);
        const int root = data.tree_begin[t];  // trees are stored root first
        root_of[data.leaf_class[i]].push_back(data.has_gold(root) ? data.gold[root] : data.gold[i]);
      }
    }
    if (!tree_gold)
      throw Error(fmt::format("tree {} has no ground-truth energy on any node: training needs measured trees",
                              data.tree_keys[t]));
    any_gold = any_gold || tree_gold;
  }
  std::vector<char> nonnegative;
  if (config.monotone_leaves)
    for (const auto& f : data.feature_names) nonnegative.push_back(grows_with_input(f) ? 1 : 0);
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
    const Eigen::VectorXd root = Eigen::Map<const Eigen::VectorXd>(root_of[c].data(), root_of[c].size());
    LeafRegressor r = LeafRegressor::fit(config.leaf_model, x, y, nonnegative, &root);
    for (const auto& f : data.feature_names) r.work.push_back(grows_with_input(f) ? 1 : 0);
    model.leaves.emplace(data.classes[c], std::move(r));
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
  up.lo = Eigen::VectorXd::Constant(d, std::numeric_limits<double>::infinity());
  up.hi = Eigen::VectorXd::Constant(d, -std::numeric_limits<double>::infinity());
  for (int i : rows)
    for (int j = 0; j < d; ++j) {
      up.lo[j] = std::min(up.lo[j], data.raw(i, j));
      up.hi[j] = std::max(up.hi[j], data.raw(i, j));
    }
  up.clamp_inputs = config.clamp_alpha_inputs;
  up.hold_column = hold_column_for(config, data.feature_names);
  up.poly = Polynomial(d, config.polynomial_degree, config.polynomial_features);
  init_weights(up, config.seed, init_skip);
  if (config.init == "zero") {
    up.w.setZero();
    up.b = 0;
  }
  up.w_root = Eigen::VectorXd::Zero(root_weight_terms(config, d));
  up.b_root = 0;
  // Own operations: s_k = (sum of o_k) / (sum of measured energies) over the supervised parents.
  const int k_own = static_cast<int>(model.own_names.size());
  up.own_w = Eigen::VectorXd::Zero(k_own);
  up.own_scale = Eigen::VectorXd::Ones(k_own);
  up.own_lo = Eigen::VectorXd::Constant(k_own, std::numeric_limits<double>::infinity());
  up.own_hi = Eigen::VectorXd::Constant(k_own, -std::numeric_limits<double>::infinity());
  for (int i : rows)
    if (!data.leaf[i])
      for (int k = 0; k < k_own; ++k) {
        up.own_lo[k] = std::min(up.own_lo[k], data.own(i, k));
        up.own_hi[k] = std::max(up.own_hi[k], data.own(i, k));
      }
  if (k_own > 0) {
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(k_own);
    double energy = 0;
    for (int i : rows)
      if (!data.leaf[i] && data.has_gold(i)) {
        sum += data.own.row(i).transpose();
        energy += data.gold[i];
      }
    for (int k = 0; k < k_own; ++k)
      if (sum[k] > 0 && energy > 0) up.own_scale[k] = sum[k] / energy;
  }
  const bool trains = (up.weighting != Weighting::exact_one || k_own > 0) &&
                      config.training_strategy != Strategy::none && config.epochs > 0;
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
                  std::vector<double>& pred, bool lenient, const PredictExtras& extras) {
  if (static_cast<int>(pred.size()) < data.rows()) pred.resize(data.rows(), kNaN);
  std::vector<double>* own = extras.own;
  std::vector<double>* alpha = extras.alpha;
  if (own && static_cast<int>(own->size()) < data.rows()) own->resize(data.rows(), 0.0);
  if (alpha && static_cast<int>(alpha->size()) < data.rows()) alpha->resize(data.rows(), 1.0);
  const bool has_own = model.upper.own_w.size() > 0;
  if (has_own && data.own_names != model.own_names)
    throw Error("internal: the trees were flattened without the predictor's own-operation features");
  const std::vector<const LeafRegressor*> regressor = leaf_regressors(model, data.classes);
  const UpperModel& up = model.upper;
  const bool unstructured = !up.children_add();
  for (int t : which) {
    const int b = data.tree_begin[t], e = data.tree_begin[t + 1];
    for (int i = b; i < e; ++i) {
      if (data.leaf[i]) {
        const LeafRegressor* reg = regressor[data.leaf_class[i]];
        if (!reg && lenient) {
          pred[i] = kNaN;
          continue;
        }
        if (!reg) throw unknown_primitive(model, data.tree_keys[t], data.classes[data.leaf_class[i]]);
        pred[i] = reg->predict(data.raw.row(i).data());
      } else {
        const double o = has_own ? up.own_energy(data.own.row(i).data()) : 0.0;
        if (own) (*own)[i] = o;
        pred[i] = unstructured ? up.unstructured_energy(data.raw.row(i).data()) : o;
        continue;
      }
      if (own) (*own)[i] = 0.0;
    }
    if (alpha) (*alpha)[b] = 1.0;
    if (unstructured) continue;
    for (int i = e - 1; i > b; --i) {
      const double a = up.weight(data.raw.row(i).data(), data.parent[i] == b);
      if (alpha) (*alpha)[i] = a;
      pred[data.parent[i]] += a * pred[i];
    }
  }
}

}  // namespace irene::predict
