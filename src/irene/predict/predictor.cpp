#include "irene/predict/predictor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <set>

#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"
#include "irene/core/io.hpp"
#include "irene/core/json_util.hpp"
#include "irene/predict/crossval.hpp"
#include "irene/predict/range.hpp"

namespace irene {

using nlohmann::json;
using namespace irene::predict;

namespace {

// Most features a predictor file may name (the two feature sets hold 14).
constexpr long kMaxFeatures = 64;

// The provenance entries every tree has with the same value.
std::map<std::string, std::string> common_provenance(const std::vector<const Tree*>& trees) {
  if (trees.empty()) return {};
  std::map<std::string, std::string> common = trees.front()->provenance;
  for (const Tree* t : trees)
    for (auto it = common.begin(); it != common.end();) {
      const auto f = t->provenance.find(it->first);
      it = f == t->provenance.end() || f->second != it->second ? common.erase(it) : std::next(it);
    }
  return common;
}

bool from_irene_dataset(const std::map<std::string, std::string>& provenance) {
  const auto it = provenance.find("source");
  return it != provenance.end() && it->second.find("IrEne dataset") != std::string::npos;
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
  const auto wanted =
      features_for_target(feature_names_of_sets(config.feature_sets, config.cache_knees_mib), config.target);
  const auto features = available_features(ptrs, wanted, &p.dropped_);
  if (features.empty())
    throw Error(fmt::format("none of the configured features ({}) is present on every node of the training trees",
                            fmt::join(wanted, ", ")));
  FlatTrees data = flatten(ptrs, features, own_names_for(config, features));
  std::vector<int> all(data.trees());
  for (int t = 0; t < data.trees(); ++t) all[t] = t;
  p.model_ = fit_model(data, all, config);

  // Hardware and provenance.
  p.hardware_ = options.hardware;
  const std::map<std::string, std::string> common = common_provenance(ptrs);
  if (p.hardware_.empty()) {
    if (auto h = common.find("hardware"); h != common.end()) p.hardware_ = h->second;
    else if (auto d = common.find("device"); d != common.end()) {
      p.hardware_ = from_irene_dataset(common) ? d->second + " of the published IrEne dataset" : d->second;
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
  p.training_data_["span"] = span_of_trees(ptrs).to_json();

  // Intervals from out-of-fold (or, with one model, in-sample) predictions.
  std::vector<double> pred, own, alpha;
  if (options.intervals && data.models.size() >= 2) {
    CrossvalOptions co;
    co.threads = options.threads;
    co.baselines = false;
    co.intervals = CrossvalOptions::Intervals::none;
    co.lenient = true;  // a primitive only the left-out model has gives no interval sample
    auto report = crossval(data, config, co);
    pred = std::move(report.out_of_fold);
    own = std::move(report.out_of_fold_own);
    alpha = std::move(report.out_of_fold_alpha);
    p.interval_method_ = "leave-one-model-out cross-validation at training time";
    p.training_data_["crossval_error_pct"] = errors_to_json(report.main.overall);
  } else {
    pred.assign(data.rows(), kNaN);
    predict_flat(p.model_, data, all, pred, false, {&own, &alpha});
    p.interval_method_ = "in-sample (the training data holds one model: nothing to leave out)";
  }
  p.intervals_ = calibrate_intervals(data, all, HeldOut{&pred, &own, &alpha}, config.interval_coverage);
  return p;
}

bool Predictor::needs_resource_features() const {
  for (const auto& f : model_.feature_names)
    if (is_resource_feature(f)) return true;
  // Any feature that is not counted from the tree comes from a measurement.
  for (const auto& f : model_.feature_names)
    if (!is_counted_feature(f)) return true;
  return false;
}

void Predictor::require_energy(std::string_view what) const {
  if (target() == Target::energy) return;
  throw Error(fmt::format("predictor {} predicts {} ({}), and {} explains energy in joules; irene predict states "
                          "its predictions in seconds",
                          path_.empty() ? std::string("(in memory)") : path_.string(), to_string(target()),
                          target_unit_words(target()), what));
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

std::optional<std::pair<int, int>> Predictor::training_batch_range() const {
  const auto& names = model_.feature_names;
  const auto it = std::find(names.begin(), names.end(), "batch_size");
  const auto col = static_cast<Eigen::Index>(it - names.begin());
  const auto& up = model_.upper;
  if (it == names.end() || up.lo.size() <= col || up.hi.size() <= col) return std::nullopt;
  const double lo = up.lo[col], hi = up.hi[col];
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo < 1 || hi < lo) return std::nullopt;
  return std::pair{static_cast<int>(std::lround(lo)), static_cast<int>(std::lround(hi))};
}

namespace {

// [lo, hi], counts as integers where they are whole; null for an unknown range or bound.
json pair_json(const auto& p) {
  if (!p) return nullptr;
  const auto value = [](auto v) -> json {
    if constexpr (std::is_floating_point_v<decltype(v)>) {
      if (!std::isfinite(v)) return nullptr;
      if (v == std::floor(v) && std::fabs(v) < 9.0e15) return static_cast<std::int64_t>(v);
    }
    return v;
  };
  return json::array({value(p->first), value(p->second)});
}

template <class T>
std::optional<std::pair<T, T>> pair_of(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_number() || !(*it)[1].is_number())
    return std::nullopt;
  return std::pair<T, T>{(*it)[0].get<T>(), (*it)[1].get<T>()};
}

std::vector<std::string> strings_of(const json& j, const char* key) {
  std::vector<std::string> out;
  if (const auto it = j.find(key); it != j.end() && it->is_array())
    for (const auto& v : *it)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

}  // namespace

json TrainingSpan::to_json() const {
  return json{{"models", models},         {"trees", trees},   {"parameters", pair_json(parameters)},
              {"batch", pair_json(batch)}, {"tokens", pair_json(tokens)}, {"context", pair_json(context)},
              {"phases", phases},         {"dtypes", dtypes}, {"energy_covers", energy_covers},
              {"recorded", recorded}};
}

TrainingSpan TrainingSpan::from_json(const json& j) {
  TrainingSpan s;
  if (!j.is_object()) return s;
  s.models = strings_of(j, "models");
  if (const auto it = j.find("trees"); it != j.end() && it->is_number_integer()) s.trees = it->get<long>();
  s.parameters = pair_of<double>(j, "parameters");
  s.batch = pair_of<int>(j, "batch");
  s.tokens = pair_of<int>(j, "tokens");
  s.context = pair_of<int>(j, "context");
  s.phases = strings_of(j, "phases");
  s.dtypes = strings_of(j, "dtypes");
  if (const auto it = j.find("energy_covers"); it != j.end() && it->is_string()) s.energy_covers = it->get<std::string>();
  if (const auto it = j.find("recorded"); it != j.end() && it->is_boolean()) s.recorded = it->get<bool>();
  return s;
}

std::string energy_covers_of(const std::map<std::string, std::string>& provenance) {
  if (const auto it = provenance.find("sensor_covers"); it != provenance.end() && !it->second.empty()) return it->second;
  if (from_irene_dataset(provenance))
    return "the whole machine (CPU, memory, an NVIDIA GPU) from a power meter";
  return "";
}

TrainingSpan span_of_trees(const std::vector<const Tree*>& trees) {
  TrainingSpan s;
  if (trees.empty()) return s;
  std::set<std::string> models, phases, dtypes;
  auto widen = [](auto& range, auto v) {
    if (!range) range.emplace(v, v);
    else range->first = std::min(range->first, v), range->second = std::max(range->second, v);
  };
  for (const Tree* t : trees) {
    models.insert(t->model_name);
    phases.insert(t->phase);
    dtypes.insert(t->dtype);
    widen(s.parameters, static_cast<double>(t->root().num_parameters));
    widen(s.batch, t->batch_size);
    widen(s.tokens, t->seq_len);
    widen(s.context, t->is_decode() ? t->past_len + 1 : t->seq_len);
  }
  s.models.assign(models.begin(), models.end());
  s.trees = static_cast<long>(trees.size());
  s.phases.assign(phases.begin(), phases.end());
  s.dtypes.assign(dtypes.begin(), dtypes.end());
  s.energy_covers = energy_covers_of(common_provenance(trees));
  return s;
}

TrainingSpan Predictor::training_span() const {
  if (const auto it = training_data_.find("span"); it != training_data_.end() && it->is_object())
    return TrainingSpan::from_json(*it);
  // A file that predates the recorded span: what its feature ranges and provenance say.
  TrainingSpan s;
  s.recorded = false;
  s.models = strings_of(training_data_, "models");
  if (const auto it = training_data_.find("trees"); it != training_data_.end() && it->is_number_integer())
    s.trees = it->get<long>();
  std::map<std::string, std::string> provenance;
  if (const auto it = training_data_.find("provenance"); it != training_data_.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) provenance[k] = v.get<std::string>();
  s.energy_covers = energy_covers_of(provenance);
  const auto& names = model_.feature_names;
  const auto& up = model_.upper;
  auto range = [&](const char* f) -> std::optional<std::pair<double, double>> {
    const auto it = std::find(names.begin(), names.end(), f);
    const auto col = static_cast<Eigen::Index>(it - names.begin());
    if (it == names.end() || up.lo.size() <= col || up.hi.size() <= col) return std::nullopt;
    if (!std::isfinite(up.lo[col]) || !std::isfinite(up.hi[col])) return std::nullopt;
    return std::pair{up.lo[col], up.hi[col]};
  };
  auto ints = [](const std::optional<std::pair<double, double>>& r) -> std::optional<std::pair<int, int>> {
    if (!r) return std::nullopt;
    return std::pair{static_cast<int>(std::lround(r->first)), static_cast<int>(std::lround(r->second))};
  };
  s.batch = ints(range("batch_size"));
  s.tokens = ints(range("seq_len"));
  // Over every training node: the largest is a whole model; the smallest is some leaf's, not a
  // model's, so only the largest is known.
  if (const auto p = range("num_parameters")) s.parameters = std::pair{std::nan(""), p->second};
  if (from_irene_dataset(provenance)) {
    // The published dataset holds full forward passes in float32 only.
    s.phases = {kPrefill};
    s.dtypes = {"float32"};
    s.context = s.tokens;
  }
  return s;
}

std::optional<int> batch_envelope(int batch, std::pair<int, int> range,
                                  const std::function<double(int)>& per_sequence) {
  const auto [lo, hi] = range;
  if (batch == lo || lo < 1 || hi < lo) return std::nullopt;
  std::optional<int> pick;
  double value = 0;
  if (batch > lo) {
    // The lowest of lo .. min(batch - 1, hi); ties keep the larger batch.
    for (int k = lo; k <= std::min(batch - 1, hi); ++k)
      if (const double v = per_sequence(k); !pick || v <= value) pick = k, value = v;
    if (batch > hi) return pick;
    return per_sequence(batch) > value ? pick : std::nullopt;
  }
  // Below the training batches: the highest of batch + 1 .. lo; ties keep the smaller batch.
  for (int k = batch + 1; k <= lo; ++k)
    if (const double v = per_sequence(k); !pick || v > value) pick = k, value = v;
  return per_sequence(batch) < value ? pick : std::nullopt;
}

std::string batch_hold_reason(std::string_view what, int batch, int at, std::pair<int, int> range, double own_j,
                              double held_j) {
  const auto [lo, hi] = range;
  const std::string scale = fmt::format("every {} x {}/{}", what == "steps" ? "step" : "node", batch, at);
  if (batch > hi)
    return fmt::format("batch {} is above the batch sizes the predictor was trained on ({}-{}): held at batch {}'s "
                       "energy per sequence, the lowest of those batches, {} (the predictor's own {}, {:.4g} J, is {:+.1f}% "
                       "from that)",
                       batch, lo, hi, at, scale, what, own_j, 100 * (own_j / held_j - 1));
  if (batch < lo)
    return fmt::format("batch {} is below the batch sizes the predictor was trained on ({}-{}), where the predictor's "
                       "own {}, {:.4g} J, is less per sequence than batch {}'s: held at batch {}'s energy per sequence, "
                       "{}",
                       batch, lo, hi, what, own_j, at, at, scale);
  return fmt::format("at batch {} the predictor's own {}, {:.4g} J, is {:+.2f}% per sequence from batch {}'s: held at "
                     "batch {}'s energy per sequence (more sequences per call never cost more per sequence), {}",
                     batch, what, own_j, 100 * (own_j / held_j - 1), at, at, scale);
}

void hold_at_batch(Tree& tree, const Tree& at, const std::string& why) {
  if (tree.nodes.size() != at.nodes.size())
    throw Error(fmt::format("internal: tree {} and tree {} whose energy per sequence it takes differ in structure",
                            tree.key(), at.key()));
  const double scale = static_cast<double>(tree.batch_size) / at.batch_size;
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    Node& n = tree.nodes[i];
    const Node& e = at.nodes[i];
    if (n.id != e.id)
      throw Error(fmt::format("internal: tree {} and tree {} differ at node {} / {}", tree.key(), at.key(), n.id, e.id));
    const auto times = [&](const std::optional<double>& v) { return v ? std::optional<double>(*v * scale) : std::nullopt; };
    // The held point with the wider relative interval of the two: `at`'s, or the tree's own
    // (widened where the tree is outside the training data, as its flags still say).
    const auto interval = [&](const std::optional<double>& point, const std::optional<Interval>& own,
                              const std::optional<double>& own_point, const std::optional<Interval>& v) {
      if (!v || !point) return std::optional<Interval>();
      Interval i{v->low_j * scale, v->high_j * scale};
      if (own && own_point && *own_point > 0) {
        i.low_j = std::min(i.low_j, *point * own->low_j / *own_point);
        i.high_j = std::max(i.high_j, *point * own->high_j / *own_point);
      }
      return std::optional<Interval>(i);
    };
    const std::optional<double> point = times(e.predicted_energy_j), own_point = times(e.predicted_own_energy_j);
    n.predicted_interval = interval(point, n.predicted_interval, n.predicted_energy_j, e.predicted_interval);
    n.predicted_own_interval = interval(own_point, n.predicted_own_interval, n.predicted_own_energy_j,
                                        e.predicted_own_interval);
    n.predicted_energy_j = point;
    n.predicted_own_energy_j = own_point;
  }
  tree.provenance["batch_held"] = why;
}

void Predictor::predict(Tree& tree) const {
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  tree.provenance.erase("batch_held");  // a new prediction; hold_at_batch says it again when it holds
  FlatTrees data = flatten({&tree}, model_.feature_names, model_.own_names);
  std::vector<double> pred(data.rows(), kNaN), own(data.rows(), 0.0), distance(data.rows(), 0.0),
      alpha(data.rows(), 1.0);
  predict_flat(model_, data, {0}, pred, false, {&own, &alpha});
  std::vector<std::vector<std::string>> notes;
  std::map<std::string, RangeWorst> worst;
  range_check(model_, data, {0}, distance, &notes, &worst);
  long flagged = 0;
  for (const auto& n : notes) flagged += n.empty() ? 0 : 1;
  propagate_distance(data, {0}, pred, distance);
  const bool has_own = !model_.own_names.empty();
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
    // The stand-in class's interval, then as much again beyond it on each side.
    const Interval in = IntervalCalibration::apply(intervals_.factors(NodeType::ml, n.stand_in), pred[i], distance[i]);
    const double wide_lo = in.low_j / kStandInWidening;
    const double wide_hi = in.high_j * kStandInWidening;
    for (int a = static_cast<int>(i); a >= 0; a = tree.nodes[a].parent) {
      extra_low[a] += in.low_j - wide_lo;
      extra_high[a] += wide_hi - in.high_j;
    }
  }
  // -------------------------------------------------------------------------------------------
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    Node& n = tree.nodes[i];
    const double e = pred[i];
    n.predicted_energy_j = e;
    const std::string cls = n.stand_in.empty() ? regressor_class(n.class_name) : n.stand_in;
    const Interval in = IntervalCalibration::apply(intervals_.factors(n.type, cls), e, distance[i]);
    n.predicted_interval = Interval{std::max(0.0, in.low_j - extra_low[i]), in.high_j + extra_high[i]};
    n.predicted_own_energy_j.reset();
    n.predicted_own_interval.reset();
    if (has_own && !n.children.empty()) {
      n.predicted_own_energy_j = own[i];
      n.predicted_own_interval = IntervalCalibration::apply(intervals_.own_factors(), own[i], distance[i]);
    }
    n.out_of_range = std::move(notes[i]);
    // A plausible predictor on an accepted tree stays finite; anything else never reaches an
    // output (inf/NaN would be written as nulls that no reader takes back).
    const bool finite = std::isfinite(e) && std::isfinite(n.predicted_interval->low_j) &&
                        std::isfinite(n.predicted_interval->high_j) &&
                        (!n.predicted_own_energy_j ||
                         (std::isfinite(*n.predicted_own_energy_j) && std::isfinite(n.predicted_own_interval->low_j) &&
                          std::isfinite(n.predicted_own_interval->high_j)));
    if (!finite)
      throw Error(fmt::format("tree {}: node '{}': the predicted energy is not a finite number ({} J): the predictor "
                              "{} does not hold plausible weights for this input",
                              tree.key(), n.id, e, path_.empty() ? std::string("in use") : path_.string()));
  }
  // Parts never exceed their whole: every term of a parent's sum is >= 0, so a child's weighted
  // energy alpha x E and the parent's own operations are at most the parent's energy, and their
  // upper bounds at most the parent's upper bound (the calibrated bounds of a part far outside the
  // training data can otherwise be wider than its whole's: own operations [0 .. 25.8 J] inside a
  // decode step of [8.1 .. 12.8 J]). Pre-order: a parent is bounded before its children.
  // (Only where every term is >= 0: parents add their children with positive weights.)
  const bool parts_add = model_.upper.children_add() && model_.upper.weighting != Weighting::free;
  for (std::size_t i = 0; parts_add && i < tree.nodes.size(); ++i) {
    Node& n = tree.nodes[i];
    if (n.predicted_own_interval)
      n.predicted_own_interval->high_j = std::max(*n.predicted_own_energy_j,
                                                  std::min(n.predicted_own_interval->high_j, n.predicted_interval->high_j));
    if (n.parent < 0 || !(alpha[i] > 0)) continue;
    const double bound = tree.nodes[static_cast<std::size_t>(n.parent)].predicted_interval->high_j / alpha[i];
    n.predicted_interval->high_j = std::max(*n.predicted_energy_j, std::min(n.predicted_interval->high_j, bound));
  }
  // The tree's summary: how many nodes leave the training range, and the farthest value of each
  // feature that does.
  if (flagged == 0) {
    tree.provenance.erase("out_of_range");
  } else {
    std::vector<std::pair<double, std::string>> by_distance;
    for (const auto& [feature, w] : worst) by_distance.emplace_back(-w.distance, w.note);
    std::sort(by_distance.begin(), by_distance.end());
    std::string text = fmt::format("{} of {} nodes outside the range of the training data; farthest: ", flagged,
                                   tree.nodes.size());
    for (std::size_t k = 0; k < by_distance.size(); ++k) text += (k ? "; " : "") + by_distance[k].second;
    tree.provenance["out_of_range"] = text;
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
  j["target"] = std::string(to_string(target()));  // also in config; here for people reading the file
  j["unit"] = std::string(target_unit(target())) + " per forward pass";
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
                    {"intercept", r.intercept},
                    {"lo", vec(r.lo)},
                    {"hi", vec(r.hi)}};
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
  j["upper"]["lo"] = vec(u.lo);
  j["upper"]["hi"] = vec(u.hi);
  if (!model_.own_names.empty())
    j["upper"]["own"] = {{"features", model_.own_names},
                         {"weights", vec(u.own_w)},
                         {"scale", vec(u.own_scale)},
                         {"lo", vec(u.own_lo)},
                         {"hi", vec(u.own_hi)}};
  json groups = json::object();
  for (const auto& [g, f] : intervals_.groups) groups[g] = {{"low", f.low}, {"high", f.high}, {"samples", f.samples}};
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

namespace {

// Refuses a key of `j` that the format does not have, naming it (a misspelt or foreign field
// would otherwise be silently ignored).
void known_keys(const Reader& r, const json& j, std::initializer_list<const char*> keys, const char* ctx) {
  if (!j.is_object()) return;
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (const char* key : keys) known = known || k == key;
    if (!known) r.fail(fmt::format("{}unknown field '{}'", ctx, k.substr(0, 80)));
  }
}

// The keys of a predictor file.
constexpr std::array<const char*, 14> kTopLevelKeys = {
    "format",          "version",  "irene_version", "hardware", "config",
    "target",          "unit",     "features",      "features_dropped", "needs_resource_features",
    "training_data",   "leaf_models", "upper",      "intervals"};

// Weights of a plausible predictor stay far below this magnitude (the shipped one: < 1e9); a
// larger one (1e308) would turn predictions into inf or NaN.
constexpr double kMaxWeightMagnitude = 1e15;

void plausible(const Reader& r, const Eigen::VectorXd& v, const std::string& what) {
  if (v.size() > 0 && v.cwiseAbs().maxCoeff() > kMaxWeightMagnitude)
    r.fail(fmt::format("{} holds a value beyond +-{:g}: not a plausible predictor", what, kMaxWeightMagnitude));
}
void plausible(const Reader& r, double v, const std::string& what) {
  if (std::abs(v) > kMaxWeightMagnitude)
    r.fail(fmt::format("{} is {:g}, beyond +-{:g}: not a plausible predictor", what, v, kMaxWeightMagnitude));
}

}  // namespace

Predictor Predictor::from_json(const json& j, const std::string& where) {
  Reader r{where};
  if (!j.is_object() || !j.contains("format") || j["format"] != "irene-predictor")
    r.fail("not an irene predictor file (no \"format\": \"irene-predictor\")");
  for (const auto& [k, v] : j.items())
    if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), k) == kTopLevelKeys.end())
      r.fail(fmt::format("unknown field '{}'", k.substr(0, 80)));
  const json& version = r.at(j, "version");
  if (!version.is_number_integer() || version.get<long>() < 1 || version.get<long>() > kFormatVersion)
    r.fail(fmt::format("predictor format version {} is not supported (this irene reads versions 1 to {}); retrain "
                       "it with irene train",
                       version.dump(), kFormatVersion));
  const bool v2 = version.get<long>() >= 2;
  Predictor p;
  p.hardware_ = r.string(j, "hardware");
  p.model_.config = config_from_json(r.at(j, "config"), where + ": config");
  const json& features = r.at(j, "features");
  if (!features.is_array() || features.empty()) r.fail("field 'features' must be a non-empty array");
  for (const auto& f : features) {
    if (!f.is_string()) r.fail("field 'features' must hold strings");
    p.model_.feature_names.push_back(f.get<std::string>());
    if (p.target() == Target::time && derived_from_time(p.model_.feature_names.back()))
      r.fail(fmt::format("a time predictor reads '{}', a feature derived from time (the answer itself)",
                         p.model_.feature_names.back()));
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
    known_keys(r, lj, {"kind", "samples", "mean", "scale", "coef", "intercept", "lo", "hi"}, ctx.c_str());
    LeafRegressor lr;
    const std::string kind = r.string(lj, "kind", ctx.c_str());
    if (kind == "linear") lr.kind = LeafModel::linear;
    else if (kind == "log_linear") lr.kind = LeafModel::log_linear;
    else if (kind == "relative") lr.kind = LeafModel::relative;
    else if (kind == "share") lr.kind = LeafModel::share;
    else r.fail(fmt::format("{}unknown kind '{}'", ctx, kind));
    lr.scaler.mean = r.vector(lj, "mean", d, ctx);
    lr.scaler.scale = r.vector(lj, "scale", d, ctx);
    if ((lr.scaler.scale.array() <= 0).any()) r.fail(ctx + "scale values must be positive");
    lr.coef = r.vector(lj, "coef", d, ctx);
    lr.intercept = r.number(lj, "intercept", ctx.c_str());
    plausible(r, lr.coef, ctx + "'coef'");
    plausible(r, lr.intercept, ctx + "'intercept'");
    lr.samples = r.count(lj, "samples", ctx.c_str());
    if (v2) {
      lr.lo = r.vector(lj, "lo", d, ctx);
      lr.hi = r.vector(lj, "hi", d, ctx);
      if ((lr.lo.array() > lr.hi.array()).any()) r.fail(ctx + "'lo' exceeds 'hi'");
    }
    for (const auto& f : p.model_.feature_names) lr.work.push_back(grows_with_input(f) ? 1 : 0);
    p.model_.leaves.emplace(name, std::move(lr));
  }

  const json& uj = r.at(j, "upper");
  known_keys(r, uj,
             {"weighting", "strategy", "tau", "mean", "scale", "polynomial", "degree", "weights", "bias",
              "final_train_loss", "root_weights", "root_bias", "lo", "hi", "own"},
             "upper: ");
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
  plausible(r, u.w, "upper: 'weights'");
  plausible(r, u.b, "upper: 'bias'");
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
    plausible(r, u.w_root, "upper: 'root_weights'");
    plausible(r, u.b_root, "upper: 'root_bias'");
  }
  u.clamp_inputs = p.model_.config.clamp_alpha_inputs;
  u.hold_column = hold_column_for(p.model_.config, p.model_.feature_names);
  if (v2) {
    u.lo = r.vector(uj, "lo", d, "upper: ");
    u.hi = r.vector(uj, "hi", d, "upper: ");
    if ((u.lo.array() > u.hi.array()).any()) r.fail("upper: 'lo' exceeds 'hi'");
  } else if (u.clamp_inputs || p.model_.config.own_ops) {
    r.fail("a version-1 file cannot hold clamp_alpha_inputs or own_ops; retrain it with irene train");
  }
  std::vector<std::string> own_names;
  try {
    own_names = own_names_for(p.model_.config, p.model_.feature_names);
  } catch (const Error& e) {
    r.fail(std::string("configuration: ") + e.what());
  }
  if (!own_names.empty()) {
    const json& oj = r.at(uj, "own", "upper: ");
    known_keys(r, oj, {"features", "weights", "scale", "lo", "hi"}, "upper.own: ");
    const json& names = r.at(oj, "features", "upper.own: ");
    if (names != json(own_names))
      r.fail(fmt::format("upper.own: 'features' must be {} (from the configuration)", json(own_names).dump()));
    const long k = static_cast<long>(own_names.size());
    u.own_w = r.vector(oj, "weights", k, "upper.own: ");
    u.own_scale = r.vector(oj, "scale", k, "upper.own: ");
    u.own_lo = r.vector(oj, "lo", k, "upper.own: ");
    u.own_hi = r.vector(oj, "hi", k, "upper.own: ");
    if ((u.own_w.array() < 0).any()) r.fail("upper.own: 'weights' must be >= 0");
    plausible(r, u.own_w, "upper.own: 'weights'");
    if ((u.own_scale.array() <= 0).any()) r.fail("upper.own: 'scale' values must be positive");
    p.model_.own_names = own_names;
  }

  const json& ij = r.at(j, "intervals");
  known_keys(r, ij, {"coverage", "method", "groups"}, "intervals: ");
  p.intervals_.coverage = p.model_.config.interval_coverage;
  p.interval_method_ = r.string(ij, "method", "intervals: ");
  const json& groups = r.at(ij, "groups", "intervals: ");
  if (!groups.is_object()) r.fail("intervals: 'groups' must be an object");
  for (const auto& [g, gj] : groups.items()) {
    const std::string ctx = fmt::format("intervals.groups.{}: ", g);
    known_keys(r, gj, {"low", "high", "samples"}, ctx.c_str());
    IntervalFactors f;
    f.low = r.number(gj, "low", ctx.c_str());
    f.high = r.number(gj, "high", ctx.c_str());
    f.samples = r.count(gj, "samples", ctx.c_str());
    if (!(f.low <= 1 && 1 <= f.high)) r.fail(ctx + "expected low <= 1 <= high");
    p.intervals_.groups[g] = f;
  }
  return p;
}

void Predictor::save(const std::filesystem::path& path) const {
  const json j = to_json();
  write_output(path, [&](std::ostream& out) { out << j.dump(1) << '\n'; });
}

Predictor Predictor::load(const std::filesystem::path& path) {
  std::string text = read_file(path, limits::kMaxPredictorBytes);
  // Depth and array lengths are checked before the document is built (no array of the format
  // is longer than the expansion of 64 features at degree 4: 814,385 weights).
  JsonBounds bounds;
  bounds.max_depth = limits::kMaxPredictorDepth;
  bounds.top_level_keys.assign(kTopLevelKeys.begin(), kTopLevelKeys.end());
  bounds.bytes_per_value = 8;  // numbers are written with 17 digits: about 20 bytes each
  json j = parse_json_document(text, path.string(), "the predictor file", bounds);
  std::string().swap(text);
  // The free-form "training_data" is moved, not copied, into the predictor.
  json training;
  if (auto it = j.find("training_data"); j.is_object() && it != j.end()) {
    training = std::move(*it);
    j.erase(it);
  }
  Predictor p = from_json(j, path.string());
  if (!training.is_null()) p.training_data_ = std::move(training);
  p.path_ = path;
  return p;
}

std::filesystem::path Predictor::default_path() {
  if (const char* env = std::getenv("IRENE_PREDICTOR"); env && *env) return env;
  const char* src = std::getenv("IRENE_SOURCE_DIR");
  const std::filesystem::path root = (src && *src) ? std::filesystem::path(src) : std::filesystem::path(IRENE_SOURCE_DIR);
  return root / "predictors" / "device_1.json";
}

std::shared_ptr<const Predictor> Predictor::time_companion(const Predictor& energy) {
  if (energy.path().empty() || energy.target() != Target::energy) return nullptr;
  const std::filesystem::path file =
      energy.path().parent_path() / (energy.path().stem().string() + "-time" + energy.path().extension().string());
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Predictor>> cache;
  std::lock_guard lock(mutex);
  if (const auto it = cache.find(file.string()); it != cache.end()) return it->second;
  std::shared_ptr<const Predictor> p;
  std::error_code ec;
  if (std::filesystem::is_regular_file(file, ec)) {
    auto loaded = std::make_shared<Predictor>(load(file));
    if (loaded->target() != Target::time)
      throw Error(fmt::format("{}: the time companion of {} predicts {}, not time", file.string(),
                              energy.path().string(), to_string(loaded->target())));
    if (loaded->hardware() != energy.hardware())
      throw Error(fmt::format("{}: the time companion of {} describes '{}', not '{}'", file.string(),
                              energy.path().string(), loaded->hardware(), energy.hardware()));
    p = std::move(loaded);
  }
  cache.emplace(file.string(), p);
  return p;
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
