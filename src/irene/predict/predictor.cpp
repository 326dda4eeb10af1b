#include "irene/predict/predictor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/json_util.hpp"
#include "irene/predict/crossval.hpp"

namespace irene {

using nlohmann::json;
using namespace irene::predict;

namespace {

constexpr long kMinClassSamples = 20;
// Most features a predictor file may name (the two feature sets hold 14).
constexpr long kMaxFeatures = 64;

double quantile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

std::string interval_group(NodeType type, const std::string& class_name) {
  switch (type) {
    case NodeType::ml: return "ml:" + class_name;
    case NodeType::module: return "module";
    case NodeType::model: return "model";
  }
  return "module";
}

}  // namespace

Predictor Predictor::train(const std::vector<Tree>& trees, const Config& config, const TrainOptions& options) {
  if (trees.empty()) throw Error("no trees to train on");
  std::vector<std::string> skipped;
  const auto measured = measured_trees(trees, &skipped);
  if (measured.empty())
    throw Error(fmt::format("none of the {} trees has a ground-truth energy at its root: training needs measured trees "
                            "(irene data import, or irene collect)",
                            trees.size()));
  std::vector<const Tree*> ptrs;
  for (auto i : measured) ptrs.push_back(&trees[i]);
  Predictor p;
  const auto wanted = feature_names_of_sets(config.feature_sets);
  const auto features = available_features(ptrs, wanted, &p.dropped_);
  if (features.empty())
    throw Error(fmt::format("none of the configured features ({}) is present on every node of the training trees",
                            fmt::join(wanted, ", ")));
  FlatTrees data = flatten(ptrs, features);
  std::vector<int> all(data.trees());
  for (int t = 0; t < data.trees(); ++t) all[t] = t;
  p.model_ = fit_model(data, all, config);

  // Hardware and provenance.
  p.hardware_ = options.hardware;
  std::map<std::string, std::string> common = ptrs.front()->provenance;
  for (const Tree* t : ptrs)
    for (auto it = common.begin(); it != common.end();) {
      auto f = t->provenance.find(it->first);
      if (f == t->provenance.end() || f->second != it->second) it = common.erase(it);
      else ++it;
    }
  if (p.hardware_.empty()) {
    if (auto h = common.find("hardware"); h != common.end()) p.hardware_ = h->second;
    else if (auto d = common.find("device"); d != common.end()) {
      auto src = common.find("source");
      const bool published = src != common.end() && src->second.find("IrEne dataset") != std::string::npos;
      p.hardware_ = published ? d->second + " of the published IrEne dataset" : d->second;
    }
    else p.hardware_ = "unknown hardware (the training trees do not say)";
  }
  long nodes = 0;
  for (const Tree* t : ptrs) nodes += static_cast<long>(t->nodes.size());
  p.training_data_ = json{{"source", options.source},
                          {"trees", ptrs.size()},
                          {"skipped_trees", skipped},
                          {"nodes", nodes},
                          {"models", data.models},
                          {"provenance", common}};

  // Intervals from out-of-fold (or, with one model, in-sample) predictions.
  std::vector<double> pred;
  if (options.intervals && data.models.size() >= 2) {
    CrossvalOptions co;
    co.threads = options.threads;
    co.baselines = false;
    co.lenient = true;  // a primitive only the left-out model has gives no interval sample
    auto report = crossval(data, config, co);
    pred = std::move(report.out_of_fold);
    p.interval_method_ = "leave-one-model-out cross-validation at training time";
    p.training_data_["crossval_error_pct"] = errors_to_json(report.main.overall);
  } else {
    pred.assign(data.rows(), kNaN);
    predict_flat(p.model_, data, all, pred);
    p.interval_method_ = "in-sample (the training data holds one model: nothing to leave out)";
  }
  std::map<std::string, std::vector<double>> ratios;
  for (int i = 0; i < data.rows(); ++i) {
    if (!data.has_gold(i) || !(pred[i] > 0)) continue;
    const double r = data.gold[i] / pred[i];
    if (data.type[i] == NodeType::ml) {
      ratios["ml"].push_back(r);
      ratios["ml:" + data.classes[data.leaf_class[i] >= 0 ? data.leaf_class[i] : 0]].push_back(r);
    } else {
      ratios[interval_group(data.type[i], "")].push_back(r);
    }
  }
  const double c = config.interval_coverage;
  for (auto& [group, v] : ratios) {
    if (v.empty()) continue;
    if (group.rfind("ml:", 0) == 0 && static_cast<long>(v.size()) < kMinClassSamples) continue;
    IntervalFactors f;
    f.samples = static_cast<long>(v.size());
    f.low = std::min(1.0, quantile(v, (1 - c) / 2));
    f.high = std::max(1.0, quantile(v, (1 + c) / 2));
    p.intervals_[group] = f;
  }
  return p;
}

bool Predictor::needs_resource_features() const {
  for (const auto& f : model_.feature_names)
    if (is_resource_feature(f)) return true;
  // Any feature that is not a model spec comes from a measurement.
  static const std::set<std::string> specs = {"num_parameters", "input_size", "batch_size", "seq_len", "flops", "mem_bytes"};
  for (const auto& f : model_.feature_names)
    if (!specs.count(f)) return true;
  return false;
}

const Predictor::IntervalFactors& Predictor::interval_for(NodeType type, const std::string& class_name) const {
  static const IntervalFactors none{};
  auto it = intervals_.find(interval_group(type, class_name));
  if (it != intervals_.end()) return it->second;
  if (type == NodeType::ml) {
    it = intervals_.find("ml");
    if (it != intervals_.end()) return it->second;
  }
  return none;
}

std::string Predictor::cannot_predict(const Tree& tree) const {
  if (tree.nodes.empty()) return "it has no nodes";
  for (const Node& n : tree.nodes) {
    for (const auto& f : model_.feature_names) {
      const auto v = node_feature(tree, n, f);
      if (!v) return fmt::format("node '{}' lacks the feature '{}' that the predictor reads", n.id, f);
      if (!std::isfinite(*v)) return fmt::format("node '{}' has a non-finite '{}'", n.id, f);
    }
    if (n.children.empty() && !find_leaf_regressor(model_, n.class_name))
      return fmt::format("primitive type '{}' of node '{}' was never seen in training", n.class_name, n.id);
  }
  return "";
}

void Predictor::predict(Tree& tree) const {
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  FlatTrees data = flatten({&tree}, model_.feature_names);
  std::vector<double> pred(data.rows(), kNaN);
  predict_flat(model_, data, {0}, pred);
  // ---- Stand-ins: a leaf whose class has no regressor was predicted by its stand-in's (see
  // find_leaf_regressor); it says so, and its interval and its ancestors' are widened
  // (kStandInWidening, predictor.hpp). extra_low / extra_high: the widening a node inherits.
  std::vector<double> extra_low(tree.nodes.size(), 0.0), extra_high(tree.nodes.size(), 0.0);
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    Node& n = tree.nodes[i];
    n.stand_in.clear();
    if (!n.children.empty()) continue;
    find_leaf_regressor(model_, n.class_name, &n.stand_in);
    if (n.stand_in.empty()) continue;
    const auto& f = interval_for(NodeType::ml, n.stand_in);
    const double e = pred[i];
    // The stand-in class's bounds, then as much again beyond them on each side.
    double lo = e * f.low, hi = e * f.high;
    if (lo > hi) std::swap(lo, hi);
    const double wide_lo = std::min(lo / kStandInWidening, lo * kStandInWidening);
    const double wide_hi = std::max(hi / kStandInWidening, hi * kStandInWidening);
    for (int a = static_cast<int>(i); a >= 0; a = tree.nodes[a].parent) {
      extra_low[a] += lo - wide_lo;
      extra_high[a] += wide_hi - hi;
    }
  }
  // -------------------------------------------------------------------------------------------
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    Node& n = tree.nodes[i];
    const double e = pred[i];
    n.predicted_energy_j = e;
    const auto& f = interval_for(n.type, n.stand_in.empty() ? regressor_class(n.class_name) : n.stand_in);
    double lo = e * f.low, hi = e * f.high;
    if (lo > hi) std::swap(lo, hi);
    n.predicted_interval = Interval{lo - extra_low[i], hi + extra_high[i]};
  }
}

// ---------------------------------------------------------------------------------------------
// File format

namespace {

json vec(const Eigen::VectorXd& v) { return std::vector<double>(v.data(), v.data() + v.size()); }

}  // namespace

json Predictor::to_json() const {
  json j;
  j["format"] = "irene-predictor";
  j["version"] = kFormatVersion;
  j["irene_version"] = IRENE_VERSION;
  j["hardware"] = hardware_;
  j["config"] = config_to_json(model_.config);
  j["features"] = model_.feature_names;
  j["features_dropped"] = dropped_;
  j["needs_resource_features"] = needs_resource_features();
  j["training_data"] = training_data_;
  json leaves = json::object();
  for (const auto& [name, r] : model_.leaves)
    leaves[name] = {{"kind", std::string(to_string(r.kind))},
                    {"samples", r.samples},
                    {"mean", vec(r.scaler.mean)},
                    {"scale", vec(r.scaler.scale)},
                    {"coef", vec(r.coef)},
                    {"intercept", r.intercept}};
  j["leaf_models"] = leaves;
  const UpperModel& u = model_.upper;
  j["upper"] = {{"weighting", std::string(to_string(u.weighting))},
                {"strategy", std::string(to_string(u.strategy))},
                {"tau", u.tau},
                {"mean", vec(u.scaler.mean)},
                {"scale", vec(u.scaler.scale)},
                {"polynomial", u.poly.enabled()},
                {"degree", u.poly.degree()},
                {"weights", vec(u.w)},
                {"bias", u.b},
                {"final_train_loss", std::isfinite(model_.final_train_loss) ? json(model_.final_train_loss) : json(nullptr)}};
  if (u.w_root.size() > 0) {
    j["upper"]["root_weights"] = vec(u.w_root);
    j["upper"]["root_bias"] = u.b_root;
  }
  json groups = json::object();
  for (const auto& [g, f] : intervals_) groups[g] = {{"low", f.low}, {"high", f.high}, {"samples", f.samples}};
  j["intervals"] = {{"coverage", model_.config.interval_coverage}, {"method", interval_method_}, {"groups", groups}};
  return j;
}

namespace {

struct Reader {
  const std::string& where;
  [[noreturn]] void fail(const std::string& what) const { throw Error(fmt::format("{}: {}", where, what)); }
  const json& at(const json& j, const char* key, const char* ctx = "") const {
    if (!j.is_object()) fail(fmt::format("{}expected a JSON object", ctx));
    auto it = j.find(key);
    if (it == j.end()) fail(fmt::format("{}missing field '{}'", ctx, key));
    return *it;
  }
  double number(const json& j, const char* key, const char* ctx = "") const {
    const json& v = at(j, key, ctx);
    if (!v.is_number()) fail(fmt::format("{}field '{}' must be a number", ctx, key));
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(fmt::format("{}field '{}' is not finite", ctx, key));
    return x;
  }
  // A non-negative integer count (an integral float is accepted), checked before any cast.
  long count(const json& j, const char* key, const char* ctx = "") const {
    const double x = number(j, key, ctx);
    if (x < 0 || x > 1e15 || x != std::floor(x)) fail(fmt::format("{}field '{}' must be a non-negative integer", ctx, key));
    return static_cast<long>(x);
  }
  std::string string(const json& j, const char* key, const char* ctx = "") const {
    const json& v = at(j, key, ctx);
    if (!v.is_string()) fail(fmt::format("{}field '{}' must be a string", ctx, key));
    return v.get<std::string>();
  }
  Eigen::VectorXd vector(const json& j, const char* key, long size, const std::string& ctx) const {
    const json& v = at(j, key, ctx.c_str());
    if (!v.is_array()) fail(fmt::format("{}field '{}' must be an array of numbers", ctx, key));
    if (size >= 0 && static_cast<long>(v.size()) != size)
      fail(fmt::format("{}field '{}' has {} values, expected {}", ctx, key, v.size(), size));
    Eigen::VectorXd out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number() || !std::isfinite(v[i].get<double>()))
        fail(fmt::format("{}field '{}' holds a value that is not a finite number", ctx, key));
      out[static_cast<long>(i)] = v[i].get<double>();
    }
    return out;
  }
};

}  // namespace

Predictor Predictor::from_json(const json& j, const std::string& where) {
  Reader r{where};
  if (!j.is_object() || !j.contains("format") || j["format"] != "irene-predictor")
    r.fail("not an irene predictor file (no \"format\": \"irene-predictor\")");
  const json& version = r.at(j, "version");
  if (!version.is_number_integer() || version.get<long>() != kFormatVersion)
    r.fail(fmt::format("predictor format version {} is not supported (this irene reads version {}); retrain it with "
                       "irene train",
                       version.dump(), kFormatVersion));
  Predictor p;
  p.hardware_ = r.string(j, "hardware");
  p.model_.config = config_from_json(r.at(j, "config"), where + ": config");
  const json& features = r.at(j, "features");
  if (!features.is_array() || features.empty()) r.fail("field 'features' must be a non-empty array");
  for (const auto& f : features) {
    if (!f.is_string()) r.fail("field 'features' must hold strings");
    p.model_.feature_names.push_back(f.get<std::string>());
  }
  const long d = static_cast<long>(p.model_.feature_names.size());
  // Sizes are checked before anything is allocated: the polynomial expansion has
  // C(d + degree, degree) terms, so a file naming 300 features must not reach it.
  if (d > kMaxFeatures) r.fail(fmt::format("field 'features' names {} features, more than {}", d, kMaxFeatures));
  if (j.contains("features_dropped") && j["features_dropped"].is_array())
    for (const auto& f : j["features_dropped"])
      if (f.is_string()) p.dropped_.push_back(f.get<std::string>());
  if (j.contains("training_data")) p.training_data_ = j["training_data"];

  const json& leaves = r.at(j, "leaf_models");
  if (!leaves.is_object() || leaves.empty()) r.fail("field 'leaf_models' must be a non-empty object");
  for (const auto& [name, lj] : leaves.items()) {
    const std::string ctx = fmt::format("leaf_models.{}: ", name);
    LeafRegressor lr;
    const std::string kind = r.string(lj, "kind", ctx.c_str());
    if (kind == "linear") lr.kind = LeafModel::linear;
    else if (kind == "log_linear") lr.kind = LeafModel::log_linear;
    else if (kind == "relative") lr.kind = LeafModel::relative;
    else r.fail(fmt::format("{}unknown kind '{}'", ctx, kind));
    lr.scaler.mean = r.vector(lj, "mean", d, ctx);
    lr.scaler.scale = r.vector(lj, "scale", d, ctx);
    if ((lr.scaler.scale.array() <= 0).any()) r.fail(ctx + "scale values must be positive");
    lr.coef = r.vector(lj, "coef", d, ctx);
    lr.intercept = r.number(lj, "intercept", ctx.c_str());
    lr.samples = r.count(lj, "samples", ctx.c_str());
    p.model_.leaves.emplace(name, std::move(lr));
  }

  const json& uj = r.at(j, "upper");
  UpperModel& u = p.model_.upper;
  u.weighting = p.model_.config.weighting_setting;
  u.strategy = p.model_.config.training_strategy;
  if (r.string(uj, "weighting", "upper: ") != to_string(u.weighting) ||
      r.string(uj, "strategy", "upper: ") != to_string(u.strategy))
    r.fail("upper: weighting/strategy disagree with the configuration");
  u.tau = r.number(uj, "tau", "upper: ");
  u.root_children_exact = p.model_.config.root_children_exact;
  u.root_tau = p.model_.config.root_tanh_scalar;
  if (!(u.tau > 0)) r.fail("upper: tau must be positive");
  u.scaler.mean = r.vector(uj, "mean", d, "upper: ");
  u.scaler.scale = r.vector(uj, "scale", d, "upper: ");
  if ((u.scaler.scale.array() <= 0).any()) r.fail("upper: scale values must be positive");
  const json& poly = r.at(uj, "polynomial", "upper: ");
  if (!poly.is_boolean()) r.fail("upper: field 'polynomial' must be true or false");
  const double degree = r.number(uj, "degree", "upper: ");
  if (degree < 1 || degree > 4 || degree != std::floor(degree)) r.fail("upper: 'degree' must be 1 to 4");
  if (static_cast<int>(degree) != p.model_.config.polynomial_degree ||
      poly.get<bool>() != p.model_.config.polynomial_features)
    r.fail("upper: 'degree'/'polynomial' disagree with the configuration's polynomial_degree/polynomial_features");
  u.poly = Polynomial(static_cast<int>(d), static_cast<int>(degree), poly.get<bool>());
  u.w = r.vector(uj, "weights", u.poly.outputs(), "upper: ");
  u.b = r.number(uj, "bias", "upper: ");
  int root_terms = 0;
  try {
    root_terms = root_weight_terms(p.model_.config, static_cast<int>(d));
  } catch (const Error& e) {
    r.fail(std::string("configuration: ") + e.what());
  }
  if (root_terms > u.poly.outputs())
    r.fail(fmt::format("configuration: the root's {} own weights exceed the {} expansion terms", root_terms,
                       u.poly.outputs()));
  if (root_terms > 0) {
    u.w_root = r.vector(uj, "root_weights", root_terms, "upper: ");
    u.b_root = r.number(uj, "root_bias", "upper: ");
  }

  const json& ij = r.at(j, "intervals");
  p.interval_method_ = r.string(ij, "method", "intervals: ");
  const json& groups = r.at(ij, "groups", "intervals: ");
  if (!groups.is_object()) r.fail("intervals: 'groups' must be an object");
  for (const auto& [g, gj] : groups.items()) {
    const std::string ctx = fmt::format("intervals.groups.{}: ", g);
    IntervalFactors f;
    f.low = r.number(gj, "low", ctx.c_str());
    f.high = r.number(gj, "high", ctx.c_str());
    f.samples = r.count(gj, "samples", ctx.c_str());
    if (!(f.low <= 1 && 1 <= f.high)) r.fail(ctx + "expected low <= 1 <= high");
    p.intervals_[g] = f;
  }
  return p;
}

void Predictor::save(const std::filesystem::path& path) const {
  const json j = to_json();
  write_output(path, [&](std::ostream& out) { out << j.dump(1) << '\n'; });
}

Predictor Predictor::load(const std::filesystem::path& path) {
  const std::string text = read_file(path, std::uint64_t{256} << 20);
  const json j = parse_json_document(text, path.string(), "the predictor file");
  Predictor p = from_json(j, path.string());
  p.path_ = path;
  return p;
}

std::filesystem::path Predictor::default_path() {
  if (const char* env = std::getenv("IRENE_PREDICTOR"); env && *env) return env;
  const char* src = std::getenv("IRENE_SOURCE_DIR");
  const std::filesystem::path root = (src && *src) ? std::filesystem::path(src) : std::filesystem::path(IRENE_SOURCE_DIR);
  return root / "predictors" / "device_1.json";
}

Predictor Predictor::load_default() {
  const auto path = default_path();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error(fmt::format("the default predictor {} does not exist: set IRENE_PREDICTOR or pass --predictor "
                            "(scripts/make-default-predictor.sh regenerates it)",
                            path.string()));
  return load(path);
}

}  // namespace irene
