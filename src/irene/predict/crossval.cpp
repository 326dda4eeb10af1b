#include "irene/predict/crossval.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <chrono>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "irene/core/error.hpp"

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

// FLOPs baseline: E = k(level) x flops, k minimizing the squared relative error on training nodes.
void flops_baseline(const FlatTrees& data, const std::vector<int>& train, const std::vector<int>& test,
                    std::vector<double>& pred) {
  double num[3] = {0, 0, 0}, den[3] = {0, 0, 0};
  auto level = [&](int i) { return data.type[i] == NodeType::ml ? 0 : data.type[i] == NodeType::module ? 1 : 2; };
  for (int t : train)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      if (!data.has_gold(i) || !(data.flops[i] > 0)) continue;
      const double q = data.flops[i] / data.gold[i];
      num[level(i)] += q;
      den[level(i)] += q * q;
    }
  for (int t : test)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      const int l = level(i);
      pred[i] = den[l] > 0 ? num[l] / den[l] * data.flops[i] : 0.0;
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
  report.main.name = "irene";
  report.main.description = fmt::format("configuration '{}'", config.name);
  report.main.folds.resize(folds);
  report.out_of_fold.assign(data.rows(), kNaN);

  bool gpu_available = true;
  for (double g : data.gpu_energy)
    if (!std::isfinite(g)) {
      gpu_available = false;
      break;
    }
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
    if (!gpu_available) {
      report.baselines[2].available = false;
      report.baselines[2].note = "the data has no gpu_energy_mean on every node";
    }
  }

  std::vector<std::vector<int>> train(folds), test(folds);
  for (int t = 0; t < data.trees(); ++t)
    for (int f = 0; f < folds; ++f) (data.tree_model[t] == f ? test[f] : train[f]).push_back(t);

  std::atomic<int> next{0};
  std::mutex mutex;
  std::vector<std::exception_ptr> errors(folds);
  auto work = [&] {
    std::vector<double> scratch(data.rows(), kNaN);
    std::vector<float> workspace;  // the training feature matrix, reused by this thread's folds
    for (int f; (f = next.fetch_add(1)) < folds;) {
      try {
        // As the reference: one generator seeded once, one weight initialization per fold.
        const std::uint64_t skip = static_cast<std::uint64_t>(f) *
                                   (Polynomial(static_cast<int>(data.raw.cols()), config.polynomial_degree,
                                               config.polynomial_features).outputs() + 1);
        FittedModel model = fit_model(data, train[f], config, skip, &workspace);
        predict_flat(model, data, test[f], report.out_of_fold, options.lenient);  // rows of fold f only
        report.main.folds[f] = level_errors(data, test[f], report.out_of_fold);
        if (options.baselines) {
          FittedModel exact = model;
          exact.upper.weighting = Weighting::exact_one;
          predict_flat(exact, data, test[f], scratch, options.lenient);
          report.baselines[0].folds[f] = level_errors(data, test[f], scratch);

          Config uc = config;
          uc.training_strategy = Strategy::unstructured;
          uc.weighting_setting = Weighting::free;
          FittedModel unstructured = fit_model(data, train[f], uc, skip, &workspace);
          predict_flat(unstructured, data, test[f], scratch, options.lenient);
          report.baselines[1].folds[f] = level_errors(data, test[f], scratch);

          if (gpu_available) {
            for (int t : test[f])
              for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) scratch[i] = data.gpu_energy[i];
            report.baselines[2].folds[f] = level_errors(data, test[f], scratch);
          }
          flops_baseline(data, train[f], test[f], scratch);
          report.baselines[3].folds[f] = level_errors(data, test[f], scratch);
        }
        if (options.progress) {
          std::lock_guard<std::mutex> lock(mutex);
          const auto& e = report.main.folds[f];
          options.progress(fmt::format("fold {}/{} left out {}: ml {:.3f}% module {:.3f}% model {:.3f}%", f + 1,
                                       folds, data.models[f], e.ml, e.module, e.model));
        }
      } catch (...) {
        errors[f] = std::current_exception();
      }
    }
  };
  const int threads = std::max(1, std::min(options.threads, folds));
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  for (int f = 0; f < folds; ++f)
    if (errors[f]) {
      try {
        std::rethrow_exception(errors[f]);
      } catch (const Error& e) {
        throw Error(fmt::format("fold leaving out {}: {}", data.models[f], e.what()));
      }
    }
  report.main.overall = mean_errors(report.main.folds);
  for (auto& b : report.baselines)
    if (b.available) b.overall = mean_errors(b.folds);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

json crossval_to_json(const CrossvalReport& r) {
  json j;
  j["config"] = config_to_json(r.config);
  json folds = json::array();
  for (std::size_t f = 0; f < r.left_out.size(); ++f)
    folds.push_back({{"left_out", r.left_out[f]}, {"error_pct", errors_to_json(r.main.folds[f])}});
  j["folds"] = folds;
  j["overall"] = errors_to_json(r.main.overall);
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

}  // namespace irene::predict
