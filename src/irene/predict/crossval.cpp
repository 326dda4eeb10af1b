#include "irene/predict/crossval.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>
#include <thread>

#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/predict/intervals.hpp"
#include "irene/predict/predictor.hpp"
#include "irene/predict/range.hpp"

namespace irene::predict {

using nlohmann::json;

void LevelErrorSum::add(NodeType type, double predicted_j, double gold_j) {
  const int level = type == NodeType::ml ? 0 : type == NodeType::module ? 1 : 2;
  sum_[level] += 100.0 * std::abs(predicted_j - gold_j) / gold_j;
  ++count_[level];
}

LevelErrors LevelErrorSum::result() const {
  LevelErrors e;
  e.ml = count_[0] ? sum_[0] / count_[0] : kNaN;
  e.module = count_[1] ? sum_[1] / count_[1] : kNaN;
  e.model = count_[2] ? sum_[2] / count_[2] : kNaN;
  e.ml_nodes = count_[0];
  e.module_nodes = count_[1];
  e.model_nodes = count_[2];
  return e;
}

void IntervalStatsSum::add(NodeType type, const Interval& interval, double predicted_j, double gold_j) {
  const int level = type == NodeType::ml ? 0 : type == NodeType::module ? 1 : 2;
  if (interval.low_j <= gold_j && gold_j <= interval.high_j) ++covered_[level];
  ++count_[level];
  widths_[level].push_back(predicted_j > 0 ? (interval.high_j - interval.low_j) / predicted_j : kNaN);
}

IntervalStats IntervalStatsSum::result() const {
  IntervalStats s;
  for (int l = 0; l < 3; ++l) {
    s.nodes[l] = count_[l];
    s.coverage[l] = count_[l] ? static_cast<double>(covered_[l]) / static_cast<double>(count_[l]) : kNaN;
    std::vector<double> w;
    for (double x : widths_[l])
      if (std::isfinite(x)) w.push_back(x);
    if (w.empty()) continue;
    const std::size_t mid = w.size() / 2;
    std::nth_element(w.begin(), w.begin() + static_cast<long>(mid), w.end());
    double median = w[mid];
    if (w.size() % 2 == 0) median = (median + *std::max_element(w.begin(), w.begin() + static_cast<long>(mid))) / 2;
    s.width[l] = median;
  }
  return s;
}

LevelErrors level_errors(const FlatTrees& data, const std::vector<int>& which, const std::vector<double>& pred) {
  LevelErrorSum errors;
  for (int t : which)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i)
      if (data.has_gold(i) && !std::isnan(pred[i])) errors.add(data.type[i], pred[i], data.gold[i]);
  return errors.result();
}

LevelErrors mean_errors(const std::vector<LevelErrors>& folds) {
  auto mean = [&](auto get) {
    double s = 0;
    int n = 0;
    for (const auto& f : folds)
      if (std::isfinite(get(f))) {
        s += get(f);
        ++n;
      }
    return n ? s / n : kNaN;
  };
  LevelErrors e;
  e.ml = mean([](const LevelErrors& f) { return f.ml; });
  e.module = mean([](const LevelErrors& f) { return f.module; });
  e.model = mean([](const LevelErrors& f) { return f.model; });
  for (const auto& f : folds) {
    e.ml_nodes += f.ml_nodes;
    e.module_nodes += f.module_nodes;
    e.model_nodes += f.model_nodes;
  }
  return e;
}

json errors_to_json(const LevelErrors& e) {
  auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  return json{{"ml", num(e.ml)}, {"module", num(e.module)}, {"model", num(e.model)}};
}

namespace {

// Proportional baseline (FLOPs, traffic): E = k(level) x x, k minimizing the squared relative
// error on training nodes.
void proportional_baseline(const FlatTrees& data, const std::vector<double>& x, const std::vector<int>& train,
                           const std::vector<int>& test, std::vector<double>& pred) {
  double num[3] = {0, 0, 0}, den[3] = {0, 0, 0};
  auto level = [&](int i) { return data.type[i] == NodeType::ml ? 0 : data.type[i] == NodeType::module ? 1 : 2; };
  for (int t : train)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      if (!data.has_gold(i) || !(x[i] > 0)) continue;
      const double q = x[i] / data.gold[i];
      num[level(i)] += q;
      den[level(i)] += q * q;
    }
  for (int t : test)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      const int l = level(i);
      pred[i] = den[l] > 0 ? num[l] / den[l] * x[i] : 0.0;
    }
}

// The held-out leaf classes of `which` that `model` has no regressor of: one sentence each
// (CrossvalReport::stand_ins). `missing` turns true when one of them is a registry primitive
// without a stand-in the model knows (its rows are then predicted leniently, as NaN).
std::vector<std::string> stand_in_notes(const FittedModel& model, const FlatTrees& data, const std::vector<int>& which,
                                        bool* missing) {
  std::vector<char> used(data.classes.size(), 0);
  for (int t : which)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i)
      if (data.leaf[i]) used[data.leaf_class[i]] = 1;
  std::vector<std::string> notes;
  for (std::size_t c = 0; c < used.size(); ++c) {
    if (!used[c]) continue;
    std::string stand_in;
    const LeafRegressor* reg = find_leaf_regressor(model, data.classes[c], &stand_in);
    if (reg && !stand_in.empty())
      notes.push_back(fmt::format("{}: predicted by the {} regressor (stand-in; intervals widened)", data.classes[c], stand_in));
    if (!reg && find_primitive(data.classes[c])) {
      notes.push_back(fmt::format("{}: never seen in training and no stand-in seen either: not predicted",
                                  data.classes[c]));
      *missing = true;
    }
  }
  return notes;
}

// Leaves of `which` that `model` predicts by a stand-in get NaN, and so do their ancestors: what
// predict_flat gives leniently without stand-ins. Interval calibration takes its samples from
// the classes' own regressors only, and CrossvalOptions::lenient keeps its meaning.
void drop_stand_ins(const FittedModel& model, const FlatTrees& data, const std::vector<int>& which,
                    std::vector<double>& pred) {
  std::vector<char> by_stand_in(data.classes.size(), 0);
  for (std::size_t c = 0; c < data.classes.size(); ++c) {
    std::string stand_in;
    find_leaf_regressor(model, data.classes[c], &stand_in);
    by_stand_in[c] = stand_in.empty() ? 0 : 1;
  }
  for (int t : which)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i)
      if (data.leaf[i] && by_stand_in[data.leaf_class[i]])
        for (int a = i; a >= data.tree_begin[t]; a = data.parent[a]) {
          pred[a] = kNaN;
          if (a == data.tree_begin[t]) break;
        }
}

}  // namespace

CrossvalReport crossval(const FlatTrees& data, const Config& config, const CrossvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const int folds = static_cast<int>(data.models.size());
  if (folds < 2)
    throw Error(fmt::format("cross-validation leaves one model out and needs at least two models; the data has {}{}",
                            folds, folds == 1 ? fmt::format(" ({})", data.models[0]) : std::string()));
  CrossvalReport report;
  report.config = config;
  report.left_out = data.models;
  report.stand_ins.resize(folds);
  report.main.name = "irene";
  report.main.description = fmt::format("configuration '{}'", config.name);
  report.main.folds.resize(folds);
  report.out_of_fold.assign(data.rows(), kNaN);
  report.out_of_fold_own.assign(data.rows(), 0.0);
  report.out_of_fold_alpha.assign(data.rows(), 1.0);
  report.out_of_fold_distance.assign(data.rows(), 0.0);

  bool gpu_available = true;
  for (double g : data.gpu_energy)
    if (!std::isfinite(g)) {
      gpu_available = false;
      break;
    }
  const bool traffic_available =
      std::all_of(data.traffic.begin(), data.traffic.end(), [](double x) { return std::isfinite(x); });
  if (options.baselines) {
    auto add = [&](const char* name, const char* description) {
      CrossvalTable t;
      t.name = name;
      t.description = description;
      t.folds.resize(folds);
      report.baselines.push_back(std::move(t));
    };
    add("exact_one", "alpha = 1: a parent is the plain sum of its children (the leaf regressors of each fold)");
    add("unstructured", "each upper node from its own features alone (free weighting, trained like irene)");
    add("gpu_energy_mean", "the GPU driver's energy of each node taken as the estimate (no training)");
    add("flops", "energy proportional to FLOPs, one factor per level fit on the training models");
    add("traffic",
        "energy proportional to physical memory traffic (traffic_mib: weights once per call, activations, "
        "the cache), one factor per level fit on the training models");
    if (!gpu_available) {
      report.baselines[2].available = false;
      report.baselines[2].note = "the data has no gpu_energy_mean on every node";
    }
    if (!traffic_available) {
      report.baselines[4].available = false;
      report.baselines[4].note = "the registry cannot count the traffic of every node (trees without their leaves' attrs)";
    }
  }

  std::vector<std::vector<int>> train(folds), test(folds);
  for (int t = 0; t < data.trees(); ++t)
    for (int f = 0; f < folds; ++f) (data.tree_model[t] == f ? test[f] : train[f]).push_back(t);

  // Tasks: the folds, then (with intervals) one fit per pair of models {f, g} left out
  // together: the predictions of g's trees calibrate fold f's intervals and those of f's trees
  // fold g's (nested leave-one-model-out, as Predictor::train calibrates its intervals).
  std::vector<std::pair<int, int>> pairs;
  // With two models, leaving out a pair leaves nothing to train on: calibrate crossfit.
  const auto interval_mode = options.intervals == CrossvalOptions::Intervals::nested && folds < 3
                                 ? CrossvalOptions::Intervals::crossfit
                                 : options.intervals;
  if (interval_mode == CrossvalOptions::Intervals::nested)
    for (int f = 0; f < folds; ++f)
      for (int g = f + 1; g < folds; ++g) pairs.emplace_back(f, g);
  // inner[f][row]: for rows of models other than f, the prediction by the fit leaving out f and
  // the row's model (NaN elsewhere).
  std::vector<std::vector<double>> inner(pairs.empty() ? 0 : folds), inner_own(inner.size()),
      inner_alpha(inner.size());
  for (std::size_t f = 0; f < inner.size(); ++f) {
    inner[f].assign(data.rows(), kNaN);
    inner_own[f].assign(data.rows(), 0.0);
    inner_alpha[f].assign(data.rows(), 1.0);
  }
  const int tasks = folds + static_cast<int>(pairs.size());
  const std::uint64_t draws =
      Polynomial(static_cast<int>(data.raw.cols()), config.polynomial_degree, config.polynomial_features).outputs() + 1;

  std::atomic<int> next{0};
  std::mutex mutex;
  std::vector<std::exception_ptr> errors(tasks);
  auto work = [&] {
    std::vector<double> scratch(data.rows(), kNaN);
    std::vector<float> workspace;  // the training feature matrix, reused by this thread's fits
    for (int task; (task = next.fetch_add(1)) < tasks;) {
      try {
        if (task >= folds) {
          const auto [f, g] = pairs[task - folds];
          std::vector<int> rest;
          for (int t : train[f])
            if (data.tree_model[t] != g) rest.push_back(t);
          FittedModel model = fit_model(data, rest, config, static_cast<std::uint64_t>(task) * draws, &workspace);
          // A primitive only f and g have gives no calibration sample (NaN), not an error.
          predict_flat(model, data, test[g], inner[f], true, {&inner_own[f], &inner_alpha[f]});
          predict_flat(model, data, test[f], inner[g], true, {&inner_own[g], &inner_alpha[g]});
          drop_stand_ins(model, data, test[g], inner[f]);
          drop_stand_ins(model, data, test[f], inner[g]);
          continue;
        }
        const int f = task;
        // As the reference: one generator seeded once, one weight initialization per fold.
        const std::uint64_t skip = static_cast<std::uint64_t>(f) * draws;
        FittedModel model = fit_model(data, train[f], config, skip, &workspace);
        // Classes the training models lack: stand-ins, or (registry primitives without one) NaN.
        bool missing = false;
        report.stand_ins[f] = stand_in_notes(model, data, test[f], &missing);
        const bool lenient = options.lenient || missing;
        // rows of fold f only
        predict_flat(model, data, test[f], report.out_of_fold, lenient,
                     {&report.out_of_fold_own, &report.out_of_fold_alpha});
        if (options.lenient) {  // unseen classes are NaN, stand-ins or not (Predictor::train's calibration)
          drop_stand_ins(model, data, test[f], report.out_of_fold);
          report.stand_ins[f].clear();
        }
        range_check(model, data, test[f], report.out_of_fold_distance);
        propagate_distance(data, test[f], report.out_of_fold, report.out_of_fold_distance);
        report.main.folds[f] = level_errors(data, test[f], report.out_of_fold);
        if (options.baselines) {
          FittedModel exact = model;
          exact.upper.weighting = Weighting::exact_one;
          exact.upper.own_w.resize(0);
          predict_flat(exact, data, test[f], scratch, lenient);
          if (options.lenient) drop_stand_ins(exact, data, test[f], scratch);
          report.baselines[0].folds[f] = level_errors(data, test[f], scratch);

          Config uc = config;
          uc.training_strategy = Strategy::unstructured;
          uc.weighting_setting = Weighting::free;
          FittedModel unstructured = fit_model(data, train[f], uc, skip, &workspace);
          predict_flat(unstructured, data, test[f], scratch, lenient);
          if (options.lenient) drop_stand_ins(unstructured, data, test[f], scratch);
          report.baselines[1].folds[f] = level_errors(data, test[f], scratch);

          if (gpu_available) {
            for (int t : test[f])
              for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) scratch[i] = data.gpu_energy[i];
            report.baselines[2].folds[f] = level_errors(data, test[f], scratch);
          }
          proportional_baseline(data, data.flops, train[f], test[f], scratch);
          report.baselines[3].folds[f] = level_errors(data, test[f], scratch);
          if (traffic_available) {
            proportional_baseline(data, data.traffic, train[f], test[f], scratch);
            report.baselines[4].folds[f] = level_errors(data, test[f], scratch);
          }
        }
        if (options.progress) {
          std::lock_guard<std::mutex> lock(mutex);
          const auto& e = report.main.folds[f];
          options.progress(fmt::format("fold {}/{} left out {}: ml {:.3f}% module {:.3f}% model {:.3f}%", f + 1,
                                       folds, data.models[f], e.ml, e.module, e.model));
        }
      } catch (...) {
        errors[task] = std::current_exception();
      }
    }
  };
  const int threads = std::max(1, std::min(options.threads, tasks));
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  for (int task = 0; task < tasks; ++task)
    if (errors[task]) {
      try {
        std::rethrow_exception(errors[task]);
      } catch (const Error& e) {
        if (task < folds) throw Error(fmt::format("fold leaving out {}: {}", data.models[task], e.what()));
        const auto [f, g] = pairs[task - folds];
        throw Error(fmt::format("interval calibration leaving out {} and {}: {}", data.models[f], data.models[g],
                                e.what()));
      }
    }

  // Intervals of every fold from its nested calibration, and their coverage.
  if (interval_mode != CrossvalOptions::Intervals::none) {
    const bool nested = interval_mode == CrossvalOptions::Intervals::nested;
    report.interval_calibration = nested ? "nested" : "crossfit";
    report.interval_low.assign(data.rows(), kNaN);
    report.interval_high.assign(data.rows(), kNaN);
    report.own_low.assign(data.rows(), kNaN);
    report.own_high.assign(data.rows(), kNaN);
    report.interval_folds.resize(folds);
    IntervalStatsSum pooled;
    for (int f = 0; f < folds; ++f) {
      const IntervalCalibration cal =
          nested ? calibrate_intervals(data, train[f], HeldOut{&inner[f], &inner_own[f], &inner_alpha[f]},
                                       config.interval_coverage)
                 : calibrate_intervals(data, train[f],
                                       HeldOut{&report.out_of_fold, &report.out_of_fold_own, &report.out_of_fold_alpha},
                                       config.interval_coverage);
      IntervalStatsSum fold;
      // Stand-in leaves: the stand-in class's interval, widened as Predictor::predict widens it,
      // and the widening carried to every ancestor (extra_low / extra_high, joules).
      std::vector<double> extra_low(data.rows(), 0.0), extra_high(data.rows(), 0.0);
      std::vector<std::string> stand_in_of(data.rows());
      std::set<std::string> trained;  // regressor classes of the fold's training leaves
      for (int u : train[f])
        for (int k = data.tree_begin[u]; k < data.tree_begin[u + 1]; ++k)
          if (data.leaf[k]) trained.insert(regressor_class(data.classes[data.leaf_class[k]]));
      for (int t : test[f])
        for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
          if (!data.leaf[i] || std::isnan(report.out_of_fold[i])) continue;
          const std::string cls = regressor_class(data.classes[data.leaf_class[i]]);
          if (!trained.count(cls)) {
            const Primitive* prim = find_primitive(cls);
            if (!prim || prim->stand_in.empty()) continue;
            stand_in_of[i] = prim->stand_in;
            const double distance = report.out_of_fold_distance.empty() ? 0.0 : report.out_of_fold_distance[i];
            const Interval in =
                IntervalCalibration::apply(cal.factors(NodeType::ml, prim->stand_in), report.out_of_fold[i], distance);
            for (int a = i; a >= 0; a = data.parent[a]) {
              extra_low[a] += in.low_j - in.low_j / Predictor::kStandInWidening;
              extra_high[a] += in.high_j * Predictor::kStandInWidening - in.high_j;
              if (a == data.tree_begin[t]) break;
            }
          }
        }
      for (int t : test[f])
        for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
          const double p = report.out_of_fold[i];
          if (std::isnan(p)) continue;
          const std::string& cls = data.leaf[i] ? (stand_in_of[i].empty() ? data.classes[data.leaf_class[i]]
                                                                          : stand_in_of[i])
                                                : std::string();
          const double distance = report.out_of_fold_distance.empty() ? 0.0 : report.out_of_fold_distance[i];
          Interval iv = IntervalCalibration::apply(cal.factors(data.type[i], cls), p, distance);
          iv = Interval{std::max(0.0, iv.low_j - extra_low[i]), iv.high_j + extra_high[i]};
          report.interval_low[i] = iv.low_j;
          report.interval_high[i] = iv.high_j;
          if (!data.leaf[i] && !data.own_names.empty()) {
            const Interval ov = IntervalCalibration::apply(cal.own_factors(), report.out_of_fold_own[i], distance);
            report.own_low[i] = ov.low_j;
            report.own_high[i] = ov.high_j;
          }
          if (!data.has_gold(i)) continue;
          fold.add(data.type[i], iv, p, data.gold[i]);
          pooled.add(data.type[i], iv, p, data.gold[i]);
        }
      report.interval_folds[f] = fold.result();
    }
    report.interval_overall = pooled.result();
  }
  report.main.overall = mean_errors(report.main.folds);
  for (auto& b : report.baselines)
    if (b.available) b.overall = mean_errors(b.folds);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

void store_predictions(Tree& tree, const FlatTrees& data, int t, const CrossvalReport& r) {
  const int b = data.tree_begin[t];
  if (static_cast<int>(tree.nodes.size()) != data.tree_begin[t + 1] - b)
    throw Error(fmt::format("internal: tree {} does not match the flattened data", tree.key()));
  const bool own = !data.own_names.empty();
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    Node& n = tree.nodes[i];
    const int row = b + static_cast<int>(i);
    n.predicted_energy_j.reset();
    n.predicted_interval.reset();
    n.predicted_own_energy_j.reset();
    n.predicted_own_interval.reset();
    if (std::isnan(r.out_of_fold[row])) continue;
    n.predicted_energy_j = r.out_of_fold[row];
    if (!r.interval_low.empty() && !std::isnan(r.interval_low[row]))
      n.predicted_interval = Interval{r.interval_low[row], r.interval_high[row]};
    if (own && !n.children.empty()) {
      n.predicted_own_energy_j = r.out_of_fold_own[row];
      if (!r.own_low.empty() && !std::isnan(r.own_low[row]))
        n.predicted_own_interval = Interval{r.own_low[row], r.own_high[row]};
    }
  }
}

namespace {

json levels_json(const double (&v)[3]) {
  auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  return json{{"ml", num(v[0])}, {"module", num(v[1])}, {"model", num(v[2])}};
}

}  // namespace

json crossval_to_json(const CrossvalReport& r) {
  json j;
  j["config"] = config_to_json(r.config);
  const bool intervals = !r.interval_folds.empty();
  json folds = json::array();
  for (std::size_t f = 0; f < r.left_out.size(); ++f) {
    json fj = {{"left_out", r.left_out[f]}, {"error_pct", errors_to_json(r.main.folds[f])}};
    if (f < r.stand_ins.size() && !r.stand_ins[f].empty()) fj["stand_ins"] = r.stand_ins[f];
    if (intervals) {
      fj["coverage"] = levels_json(r.interval_folds[f].coverage);
      fj["interval_width"] = levels_json(r.interval_folds[f].width);
    }
    folds.push_back(fj);
  }
  j["folds"] = folds;
  j["overall"] = errors_to_json(r.main.overall);
  if (intervals) {
    j["overall"]["coverage"] = levels_json(r.interval_overall.coverage);
    j["overall"]["interval_width"] = levels_json(r.interval_overall.width);
    j["intervals"] = {{"nominal_coverage", r.config.interval_coverage},
                      {"coverage", "fraction of the measured held-out nodes of a level inside their interval "
                                   "(overall: pooled over all folds)"},
                      {"interval_width", "median over those nodes of (high - low) / estimate"},
                      {"calibration",
                       r.interval_calibration == "nested"
                           ? "nested: each fold's intervals are calibrated on its training models only, leaving one "
                             "more model out (as irene train does)"
                           : "crossfit: each fold's intervals are calibrated on the other folds' held-out predictions"},
                      {"nodes", {{"ml", r.interval_overall.nodes[0]},
                                 {"module", r.interval_overall.nodes[1]},
                                 {"model", r.interval_overall.nodes[2]}}}};
  }
  json baselines = json::object();
  for (const auto& b : r.baselines) {
    json bj = errors_to_json(b.overall);
    bj["description"] = b.description;
    if (!b.available) {
      bj["available"] = false;
      bj["note"] = b.note;
    } else {
      json bf = json::array();
      for (std::size_t f = 0; f < r.left_out.size(); ++f)
        bf.push_back({{"left_out", r.left_out[f]}, {"error_pct", errors_to_json(b.folds[f])}});
      bj["folds"] = bf;
    }
    baselines[b.name] = bj;
  }
  j["baselines"] = baselines;
  j["seconds"] = r.seconds;
  return j;
}

std::string crossval_to_text(const CrossvalReport& r) {
  auto cell = [](double x) { return std::isfinite(x) ? fmt::format("{:9.3f}", x) : fmt::format("{:>9}", "-"); };
  std::string out = fmt::format("Leave-one-model-out cross-validation, configuration '{}' (% error, mean over nodes)\n",
                                r.config.name);
  out += fmt::format("{:<26} {:>9} {:>9} {:>9}\n", "left out", "ml", "module", "model");
  for (std::size_t f = 0; f < r.left_out.size(); ++f) {
    const auto& e = r.main.folds[f];
    out += fmt::format("{:<26} {} {} {}\n", r.left_out[f], cell(e.ml), cell(e.module), cell(e.model));
  }
  out += fmt::format("{:<26} {} {} {}\n", "overall", cell(r.main.overall.ml), cell(r.main.overall.module),
                     cell(r.main.overall.model));
  for (std::size_t f = 0; f < r.stand_ins.size(); ++f)
    for (const auto& note : r.stand_ins[f])
      out += fmt::format("fold leaving out {}: {}\n", r.left_out[f], note);
  if (!r.interval_folds.empty()) {
    auto pct = [](double x) { return std::isfinite(x) ? fmt::format("{:5.1f}", 100 * x) : fmt::format("{:>5}", "-"); };
    auto row = [&](const std::string& name, const IntervalStats& s) {
      return fmt::format("{:<26} {}  {}  {}    {}  {}  {}\n", name, pct(s.coverage[0]), pct(s.coverage[1]),
                         pct(s.coverage[2]), pct(s.width[0]), pct(s.width[1]), pct(s.width[2]));
    };
    out += fmt::format("\n{:.0f}% intervals ({}): coverage % and median width % of the estimate\n",
                       100 * r.config.interval_coverage,
                       r.interval_calibration == "nested" ? "calibrated on each fold's training models"
                                                          : "calibrated on the other folds' held-out predictions");
    out += fmt::format("{:<26} {:>5}  {:>5}  {:>5}    {:>5}  {:>5}  {:>5}\n", "left out", "ml", "modul", "model",
                       "ml", "modul", "model");
    for (std::size_t f = 0; f < r.left_out.size(); ++f) out += row(r.left_out[f], r.interval_folds[f]);
    out += row("overall (pooled)", r.interval_overall);
  }
  if (!r.baselines.empty()) {
    out += "\nBaselines (overall, same folds)\n";
    for (const auto& b : r.baselines) {
      if (!b.available) {
        out += fmt::format("{:<26} n/a: {}\n", b.name, b.note);
        continue;
      }
      out += fmt::format("{:<26} {} {} {}\n", b.name, cell(b.overall.ml), cell(b.overall.module),
                         cell(b.overall.model));
    }
  }
  out += fmt::format("\n{} folds in {:.3f} s\n", r.left_out.size(), r.seconds);
  return out;
}

std::vector<BatchCurve> batch_curves(const std::vector<const Tree*>& trees, const FlatTrees& data,
                                     const CrossvalReport& r) {
  // (model, past) -> batch -> (measured, predicted) of the root.
  std::map<std::pair<std::string, int>, std::map<int, std::pair<double, double>>> points;
  for (int t = 0; t < data.trees() && t < static_cast<int>(trees.size()); ++t) {
    const Tree& tree = *trees[static_cast<std::size_t>(t)];
    const int root = data.tree_begin[t];
    if (!tree.is_decode() || !data.has_gold(root) || root >= static_cast<int>(r.out_of_fold.size()) ||
        !std::isfinite(r.out_of_fold[root]))
      continue;
    points[{tree.model_name, tree.past_len}][tree.batch_size] = {data.gold[root], r.out_of_fold[root]};
  }
  std::vector<BatchCurve> out;
  for (const auto& [key, by_batch] : points) {
    if (by_batch.size() < 2) continue;
    BatchCurve c;
    c.model = key.first;
    c.past = key.second;
    for (const auto& [b, v] : by_batch) {
      c.batches.push_back(b);
      c.measured_per_token.push_back(v.first / b);
      c.predicted_per_token.push_back(v.second / b);
    }
    c.measured_ratio = c.measured_per_token.back() / c.measured_per_token.front();
    c.predicted_ratio = c.predicted_per_token.back() / c.predicted_per_token.front();
    c.ratio_error_pct = 100 * std::fabs(c.predicted_ratio / c.measured_ratio - 1);
    out.push_back(std::move(c));
  }
  return out;
}

json batch_curves_to_json(const std::vector<BatchCurve>& curves) {
  json a = json::array();
  for (const auto& c : curves)
    a.push_back({{"model", c.model},
                 {"past", c.past},
                 {"batches", c.batches},
                 {"measured_per_token", c.measured_per_token},
                 {"predicted_per_token", c.predicted_per_token},
                 {"measured_ratio", c.measured_ratio},
                 {"predicted_ratio", c.predicted_ratio},
                 {"ratio_error_pct", c.ratio_error_pct}});
  return a;
}

std::string batch_curves_to_text(const std::vector<BatchCurve>& curves) {
  if (curves.empty()) return "";
  std::string out =
      "\nHeld-out batch curves of the decode steps: value per generated token at the largest batch / at the "
      "smallest\n";
  out += fmt::format("{:<40} {:>6} {:>9} {:>10} {:>10} {:>8}\n", "model", "past", "batches", "measured", "predicted",
                     "error %");
  double worst = 0;
  for (const auto& c : curves) {
    out += fmt::format("{:<40} {:>6} {:>4}-{:<4} {:>10.4f} {:>10.4f} {:>8.1f}\n", c.model, c.past, c.batches.front(),
                       c.batches.back(), c.measured_ratio, c.predicted_ratio, c.ratio_error_pct);
    worst = std::max(worst, c.ratio_error_pct);
  }
  out += fmt::format("worst ratio error: {:.1f}%\n", worst);
  return out;
}

}  // namespace irene::predict
