#include "irene/serving/crossval.hpp"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"

namespace irene::serving {

namespace {

using json = nlohmann::json;
using Runs = std::vector<const PreparedRun*>;

bool same_gpu(const PreparedRun& r, const hardware::Profile& gpu) { return r.work.hw.name == gpu.name; }

bool dense_bf16_chat(const MeasuredRun& r) {
  return r.dense() && r.precision == "bfloat16" && r.task == "lm-arena-chat";
}

double pct(double predicted, double measured) { return 100 * std::abs(predicted - measured) / measured; }

// The four-total baseline: least squares of the step energy on GPUs, weight bytes, key/value bytes
// and FLOPs (no intercept), on relative errors (each row divided by its measured step energy) as
// the other fits are: rows span 8 to 2048 sequences and 8B to 671B parameters, and absolute least
// squares would fit the largest steps only.
struct Baseline {
  Eigen::VectorXd c;
  static Eigen::VectorXd row(const PreparedRun& r) {
    Eigen::VectorXd x(4);
    x << r.work.workload.gpus, r.work.weight_bytes / 1e9, r.work.kv_bytes / 1e9, r.work.flops / 1e12;
    return x;
  }
  explicit Baseline(const Runs& train) {
    Eigen::MatrixXd x(static_cast<long>(train.size()), 4);
    Eigen::VectorXd y(x.rows());
    for (long i = 0; i < x.rows(); ++i) {
      const double label = train[i]->run->step_energy_j();
      x.row(i) = row(*train[i]).transpose() / label;
      y(i) = 1;
    }
    c = x.colPivHouseholderQr().solve(y);
  }
  double step_j(const PreparedRun& r) const { return row(r).dot(c); }
};

struct ModelErrors {
  std::vector<double> pred, base, shared, itl;
  double mean(const std::vector<double>& v) const {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / static_cast<double>(v.size());
  }
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

json summary(const std::map<std::string, std::vector<double>>& per_model) {
  double sum = 0, worst = 0;
  std::string worst_model;
  long rows = 0;
  for (const auto& [m, v] : per_model) {
    double s = 0;
    for (double x : v) s += x;
    const double mean = s / static_cast<double>(v.size());
    sum += mean;
    rows += static_cast<long>(v.size());
    if (mean >= worst) {
      worst = mean;
      worst_model = m;
    }
  }
  if (per_model.empty()) return json{{"models", 0}, {"rows", 0}, {"mape", nullptr}};
  return {{"models", per_model.size()},
          {"rows", rows},
          {"mape", sum / static_cast<double>(per_model.size())},
          {"worst_model", worst_model},
          {"worst_model_mape", worst}};
}

// Rows of runs spread over their batch sizes: k of them, evenly.
Runs spread(Runs rows, int k) {
  std::sort(rows.begin(), rows.end(),
            [](const PreparedRun* a, const PreparedRun* b) { return a->run->avg_batch < b->run->avg_batch; });
  Runs out;
  if (k <= 0 || rows.empty()) return out;
  for (int i = 0; i < k && i < static_cast<int>(rows.size()); ++i) {
    const auto idx = k == 1 ? rows.size() / 2 : static_cast<std::size_t>(std::lround(double(i) * (rows.size() - 1) / (k - 1)));
    if (std::find(out.begin(), out.end(), rows[idx]) == out.end()) out.push_back(rows[idx]);
  }
  return out;
}

// Runs task(0) ... task(n - 1) on up to `threads` threads (the calling one among them). Where
// tasks throw, the error of the first of them in index order is rethrown once all have ended.
void run_tasks(int n, int threads, const std::function<void(int)>& task) {
  std::atomic<int> next{0};
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(std::max(n, 0)));
  const auto work = [&] {
    for (int i = next++; i < n; i = next++) {
      try {
        task(i);
      } catch (...) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < std::min(threads, n); ++k) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// One fold of leaving one model out: the % errors of the held-out model's rows (empty where it
// has no such row) and its entry of the report's per_model.
struct Fold {
  std::vector<double> pred, shared, base, pred_d, shared_d, base_d, pred_own, base_own, itl, ratio;
  json entry;
};

Fold leave_model_out(const std::string& m, const Runs& all, const hardware::Profile& gpu) {
  Fold f;
  Runs train_gpu, train_all, test;
  for (const PreparedRun* r : all) {
    if (r->run->model_id == m) {
      if (same_gpu(*r, gpu)) test.push_back(r);
      continue;
    }
    train_all.push_back(r);
    if (same_gpu(*r, gpu)) train_gpu.push_back(r);
  }
  const ServingPredictor p = fit_serving(train_gpu);
  const ServingPredictor ps = fit_serving(train_all);
  const Baseline base(train_gpu);
  // The dense bfloat16 chat rows predicted from the other models' dense bfloat16 chat rows
  // only (the protocol of the table's README for its four-total reference).
  Runs train_own;
  for (const PreparedRun* r : train_gpu)
    if (dense_bf16_chat(*r->run)) train_own.push_back(r);
  const bool own = !train_own.empty() && std::any_of(test.begin(), test.end(), [](const PreparedRun* r) {
    return dense_bf16_chat(*r->run);
  });
  const std::optional<ServingPredictor> p_own = own ? std::optional(fit_serving(train_own)) : std::nullopt;
  const std::optional<Baseline> base_own = own ? std::optional(Baseline(train_own)) : std::nullopt;
  json rows = json::array();
  // Batch curves: one per series of runs that differ in batch only (task, GPUs, data-parallel
  // ranks; the model and so its precision are fixed): the run nearest batch 8 and the largest.
  struct Curve {
    const PreparedRun *small = nullptr, *large = nullptr;
    double small_pred = 0, large_pred = 0;
    long runs = 0;
  };
  std::map<std::string, Curve> curves;
  for (const PreparedRun* r : test) {
    const StepPrediction sp = predict_step(p, r->work);
    const double b = r->run->avg_batch, measured = r->run->energy_per_token_j;
    const double e = sp.energy_j / b, es = predict_step(ps, r->work).energy_j / b, eb = base.step_j(*r) / b;
    f.pred.push_back(pct(e, measured));
    f.shared.push_back(pct(es, measured));
    f.base.push_back(pct(eb, measured));
    double own_j = 0;  // the dense chat rows' own-rows prediction, where there is one
    if (dense_bf16_chat(*r->run)) {
      f.pred_d.push_back(pct(e, measured));
      f.shared_d.push_back(pct(es, measured));
      f.base_d.push_back(pct(eb, measured));
      if (own) {
        own_j = predict_step(*p_own, r->work).energy_j / b;
        f.pred_own.push_back(pct(own_j, measured));
        f.base_own.push_back(pct(base_own->step_j(*r) / b, measured));
      }
    }
    f.itl.push_back(pct(sp.time_s, r->run->median_itl_s));
    Curve& c = curves[fmt::format("{}, {} GPU{}{}", r->run->task, r->run->num_gpus, r->run->num_gpus > 1 ? "s" : "",
                                  r->run->data_parallel > 1
                                      ? fmt::format(", {} data-parallel ranks", r->run->data_parallel)
                                      : std::string())];
    ++c.runs;
    if (!c.small || std::abs(b - 8) < std::abs(c.small->run->avg_batch - 8)) {
      c.small = r;
      c.small_pred = e;
    }
    if (!c.large || b > c.large->run->avg_batch) {
      c.large = r;
      c.large_pred = e;
    }
    rows.push_back({{"line", r->run->line},
                    {"task", r->run->task},
                    {"max_num_seqs", r->run->max_num_seqs},
                    {"avg_batch", b},
                    {"measured_j", measured},
                    {"predicted_j", e},
                    {"shared_j", es},
                    {"baseline_j", eb},
                    {"measured_itl_s", r->run->median_itl_s},
                    {"predicted_itl_s", sp.time_s},
                    {"measured_step_wall_s", b / r->run->throughput_tokens_per_s},
                    {"predicted_step_wall_s", sp.wall_s},
                    {"predicted_power_scale", sp.power_scale}});
    if (own_j > 0) rows.back()["own_rows_j"] = own_j;
  }
  const auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
  };
  const auto worst = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  // every curve with two batch sizes or more; the model's main one (most runs, then the widest
  // batch range) is its "batch_ratio"
  json ratios = json::array(), main_ratio;
  long main_runs = 0;
  double main_span = 0;
  for (const auto& [series, c] : curves) {
    if (c.runs < 2 || c.large == c.small) continue;
    const double measured_ratio = c.large->run->energy_per_token_j / c.small->run->energy_per_token_j;
    const double predicted_ratio = c.large_pred / c.small_pred;
    const double error = pct(predicted_ratio, measured_ratio);
    json x = {{"series", series},
              {"runs", c.runs},
              {"from_batch", c.small->run->avg_batch},
              {"to_batch", c.large->run->avg_batch},
              {"measured", measured_ratio},
              {"predicted", predicted_ratio},
              {"error_pct", error}};
    f.ratio.push_back(error);
    const double span = c.large->run->avg_batch / c.small->run->avg_batch;
    if (c.runs > main_runs || (c.runs == main_runs && span > main_span)) {
      main_runs = c.runs;
      main_span = span;
      main_ratio = x;
    }
    ratios.push_back(std::move(x));
  }
  f.entry = json({{"model", m},
                  {"rows", test.size()},
                  {"energy_per_token", {{"mape", mean(f.pred)}, {"worst", worst(f.pred)}}},
                  {"shared", {{"mape", mean(f.shared)}, {"worst", worst(f.shared)}}},
                  {"baseline", {{"mape", mean(f.base)}, {"worst", worst(f.base)}}},
                  {"batch_ratio", main_ratio},
                  {"batch_ratios", ratios},
                  {"runs", rows},
                  {"per_gpu_predictor", predictor_to_json(p)}});
  return f;
}

}  // namespace

PreparedTable prepare_table(ServingTable table) {
  PreparedTable t;
  t.table = std::move(table);
  std::map<std::string, std::size_t> skipped_index;
  std::map<std::string, std::optional<ModelConfig>> configs;
  std::map<std::string, std::string> config_errors;
  const auto skip = [&](const MeasuredRun& r, const std::string& reason) {
    const std::string key = r.model_id + "\n" + reason;
    auto it = skipped_index.find(key);
    if (it == skipped_index.end()) {
      it = skipped_index.emplace(key, t.skipped.size()).first;
      t.skipped.push_back({r.model_id, 0, reason});
    }
    ++t.skipped[it->second].rows;
  };
  t.runs.reserve(t.table.runs.size());
  for (const MeasuredRun& r : t.table.runs) {
    const hardware::Profile* hw = hardware::find_builtin(r.gpu);
    if (!hw) {
      skip(r, fmt::format("no hardware profile for GPU '{}'", r.gpu));
      continue;
    }
    auto cit = configs.find(r.model_id);
    if (cit == configs.end()) {
      try {
        cit = configs.emplace(r.model_id, load_serving_model(r.model_id)).first;
      } catch (const Error& e) {
        config_errors[r.model_id] = e.what();
        cit = configs.emplace(r.model_id, std::nullopt).first;
      }
    }
    if (!cit->second) {
      std::string why = config_errors[r.model_id];
      if (why.rfind("unknown model", 0) == 0) why = "irene has no config of this model (its family is not built yet)";
      skip(r, why);
      continue;
    }
    // Tensor parallel over the GPUs, or experts spread over them (expert parallel, attention
    // tensor- or data-parallel): each GPU does 1 / G of the work.
    const bool tp_only = r.expert_parallel == 1 && r.data_parallel == 1 && r.num_gpus == r.tensor_parallel;
    const bool ep = r.expert_parallel == r.num_gpus && r.num_gpus % r.data_parallel == 0;
    if (!tp_only && !ep) {
      skip(r, fmt::format("tensor {} x expert {} x data {} parallel on {} GPUs is not modelled", r.tensor_parallel,
                          r.expert_parallel, r.data_parallel, r.num_gpus));
      continue;
    }
    Workload w;
    w.gpus = r.num_gpus;
    w.data_parallel = ep ? r.data_parallel : 1;
    w.precision = r.precision;
    w.batch = r.avg_batch;
    w.prompt_tokens = task_prompt_tokens(r.task);
    w.output_tokens = r.avg_output_tokens;
    w.output_distribution = task_output_distribution(r.task, r.avg_output_tokens);
    try {
      t.runs.push_back({&r, step_work(*cit->second, w, *hw)});
    } catch (const Error& e) {
      skip(r, e.what());
    }
  }
  return t;
}

json crossval_serving(const PreparedTable& table, const hardware::Profile& gpu, const ServingCrossvalOptions& options) {
  Runs all, here;
  for (const auto& r : table.runs) {
    all.push_back(&r);
    if (same_gpu(r, gpu)) here.push_back(&r);
  }
  if (here.empty())
    throw Error(fmt::format("{}: no usable row for hardware {} (rows of GPUs: {})", table.table.file, gpu.name,
                            fmt::join([&] {
                              std::set<std::string> s;
                              for (const auto& r : table.runs) s.insert(r.work.hw.name);
                              return std::vector<std::string>(s.begin(), s.end());
                            }(),
                                      ", ")));
  std::vector<std::string> models;
  for (const PreparedRun* r : here)
    if (std::find(models.begin(), models.end(), r->run->model_id) == models.end()) models.push_back(r->run->model_id);
  if (models.size() < 2)
    throw Error(fmt::format("{}: {} has usable rows of one model only ({}): leaving one model out needs two",
                            table.table.file, gpu.name, models.front()));
  std::mutex progress_mutex;
  const auto progress = [&](const std::string& line) {
    if (!options.progress) return;
    std::lock_guard<std::mutex> lock(progress_mutex);
    options.progress(line);
  };

  // Leave one model out: each fold on its own, merged below in the models' order.
  std::vector<Fold> folds(models.size());
  std::size_t folds_done = 0;  // under progress_mutex, so that the lines count up in order
  run_tasks(static_cast<int>(models.size()), options.threads, [&](int i) {
    folds[static_cast<std::size_t>(i)] = leave_model_out(models[static_cast<std::size_t>(i)], all, gpu);
    const Fold& f = folds[static_cast<std::size_t>(i)];
    std::lock_guard<std::mutex> lock(progress_mutex);
    ++folds_done;
    if (options.progress)
      options.progress(fmt::format("fold {}/{} left out {}: {:.1f}% over {} rows", folds_done, models.size(),
                                   models[static_cast<std::size_t>(i)],
                                   f.entry["energy_per_token"]["mape"].get<double>(), f.pred.size()));
  });
  std::map<std::string, std::vector<double>> err_pred, err_shared, err_base, err_pred_d, err_shared_d, err_base_d,
      err_pred_own, err_base_own;
  std::vector<double> itl_err, ratio_err;
  json per_model = json::array();
  for (std::size_t i = 0; i < models.size(); ++i) {
    Fold& f = folds[i];
    const std::string& m = models[i];
    const auto keep = [&](std::map<std::string, std::vector<double>>& to, std::vector<double>& v) {
      if (!v.empty()) to[m] = std::move(v);
    };
    keep(err_pred, f.pred);
    keep(err_shared, f.shared);
    keep(err_base, f.base);
    keep(err_pred_d, f.pred_d);
    keep(err_shared_d, f.shared_d);
    keep(err_base_d, f.base_d);
    keep(err_pred_own, f.pred_own);
    keep(err_base_own, f.base_own);
    itl_err.insert(itl_err.end(), f.itl.begin(), f.itl.end());
    ratio_err.insert(ratio_err.end(), f.ratio.begin(), f.ratio.end());
    per_model.push_back(std::move(f.entry));
  }

  json out;
  out["hardware"] = hardware::hardware_to_json(gpu);
  out["table"] = table.table.file;
  out["unit"] = "percent error of energy per generated token (joules, all GPUs)";
  long used = 0;
  for (const auto& r : table.runs) used += same_gpu(r, gpu) ? 1 : 0;
  out["rows"] = {{"in_table", table.table.runs.size()}, {"usable", table.runs.size()}, {"usable_on_hardware", used}};
  json skipped = json::array();
  for (const auto& s : table.skipped) skipped.push_back({{"model", s.model_id}, {"rows", s.rows}, {"reason", s.reason}});
  out["skipped"] = skipped;
  out["overall"] = {{"energy_per_token", summary(err_pred)},
                    {"median_itl_error_pct", median(itl_err)},
                    {"batch_ratio",
                     {{"curves", ratio_err.size()},
                      {"within_20_pct", std::count_if(ratio_err.begin(), ratio_err.end(),
                                                      [](double e) { return e <= 20; })},
                      {"median_error_pct", ratio_err.empty() ? json() : json(median(ratio_err))},
                      {"worst_error_pct", ratio_err.empty() ? json()
                                                            : json(*std::max_element(ratio_err.begin(),
                                                                                     ratio_err.end()))}}}};
  out["settings"]["leave_one_model_out"] = {
      {"per_gpu", {{"all", summary(err_pred)}, {"dense_bfloat16_chat", summary(err_pred_d)}}},
      {"shared", {{"all", summary(err_shared)}, {"dense_bfloat16_chat", summary(err_shared_d)}}},
      {"baseline_four_totals", {{"all", summary(err_base)}, {"dense_bfloat16_chat", summary(err_base_d)}}},
      {"dense_bfloat16_chat_fitted_on_its_rows",
       {{"per_gpu", summary(err_pred_own)}, {"baseline_four_totals", summary(err_base_own)}}}};
  std::map<std::string, std::vector<double>> dense_m, moe_m;
  for (const auto& entry : err_pred) {
    const std::string& model = entry.first;
    const auto it = std::find_if(here.begin(), here.end(), [&](const PreparedRun* r) { return r->run->model_id == model; });
    ((*it)->run->dense() ? dense_m : moe_m)[model] = entry.second;
  }
  out["overall"]["dense"] = summary(dense_m);
  out["overall"]["moe"] = summary(moe_m);
  out["per_model"] = per_model;

  // leave one task out
  std::set<std::string> tasks;
  for (const PreparedRun* r : here) tasks.insert(r->run->task);
  if (tasks.size() >= 2) {
    const std::vector<std::string> task_list(tasks.begin(), tasks.end());
    std::vector<std::vector<double>> task_err(task_list.size());
    run_tasks(static_cast<int>(task_list.size()), options.threads, [&](int i) {
      const std::string& task = task_list[static_cast<std::size_t>(i)];
      Runs train, test;
      for (const PreparedRun* r : here) (r->run->task == task ? test : train).push_back(r);
      const ServingPredictor p = fit_serving(train);
      std::vector<double>& e = task_err[static_cast<std::size_t>(i)];
      for (const PreparedRun* r : test)
        e.push_back(pct(predict_step(p, r->work).energy_j, r->run->step_energy_j()));
      double s = 0;
      for (double x : e) s += x;
      progress(fmt::format("leave task {} out: {:.1f}% over {} rows", task, s / static_cast<double>(e.size()),
                           e.size()));
    });
    json lot = json::object();
    for (std::size_t i = 0; i < task_list.size(); ++i) {
      const std::vector<double>& e = task_err[i];
      double s = 0;
      for (double x : e) s += x;
      lot[task_list[i]] = {{"rows", e.size()}, {"mape", s / static_cast<double>(e.size())}};
    }
    out["settings"]["leave_one_task_out"] = lot;
  } else {
    out["settings"]["leave_one_task_out"] =
        fmt::format("not run: the usable rows of {} have one task ({})", gpu.name, *tasks.begin());
  }

  // few-shot: other GPUs' rows plus k rows of one model of this GPU
  Runs others;
  for (const PreparedRun* r : all)
    if (!same_gpu(*r, gpu)) others.push_back(r);
  if (others.empty()) {
    out["settings"]["few_shot"] = fmt::format("not run: no usable rows of another GPU than {}", gpu.name);
  } else {
    json fs = json::array();
    // The pull is chosen once on the other GPUs' rows (the k rows added to them take no part in
    // the choice; the rows predicted never do).
    const double pull = fit_serving(others).energy_pull;
    std::mutex left_mutex;
    // one task per (k, model of the k rows); k = 0 needs one choice
    const std::vector<int> ks = {0, 1, 2, 4};
    std::vector<std::pair<int, std::size_t>> choices;  // (index in ks, model)
    for (std::size_t j = 0; j < ks.size(); ++j)
      for (std::size_t m = 0; m < (ks[j] == 0 ? 1 : models.size()); ++m) choices.emplace_back(static_cast<int>(j), m);
    std::vector<double> choice_err(choices.size());
    // the mean error over the choices of ks[j], and how many there are
    const auto mean_of_k = [&](std::size_t j) {
      double sum = 0;
      std::size_t n = 0;
      for (std::size_t c = 0; c < choices.size(); ++c)
        if (choices[c].first == static_cast<int>(j)) {
          sum += choice_err[c];
          ++n;
        }
      return std::pair(sum / static_cast<double>(n), n);
    };
    std::vector<std::size_t> left(ks.size(), 0);
    for (const auto& c : choices) ++left[static_cast<std::size_t>(c.first)];
    run_tasks(static_cast<int>(choices.size()), options.threads, [&](int i) {
      const auto [j, mi] = choices[static_cast<std::size_t>(i)];
      const int k = ks[static_cast<std::size_t>(j)];
      Runs of_m;
      for (const PreparedRun* r : here)
        if (r->run->model_id == models[mi]) of_m.push_back(r);
      const Runs shots = spread(of_m, k);
      Runs train = others;
      train.insert(train.end(), shots.begin(), shots.end());
      const ServingPredictor p = fit_serving(train, pull);
      double s = 0;
      long n = 0;
      for (const PreparedRun* r : here) {
        if (std::find(shots.begin(), shots.end(), r) != shots.end()) continue;
        s += pct(predict_step(p, r->work).energy_j, r->run->step_energy_j());
        ++n;
      }
      choice_err[static_cast<std::size_t>(i)] = s / static_cast<double>(n);
      std::lock_guard<std::mutex> lock(left_mutex);
      if (--left[static_cast<std::size_t>(j)] == 0) {
        const auto [mape, n_choices] = mean_of_k(static_cast<std::size_t>(j));
        progress(fmt::format("few-shot k = {}: {:.1f}% over the other rows ({} choices of model)", k, mape, n_choices));
      }
    });
    for (std::size_t j = 0; j < ks.size(); ++j) {
      const auto [mape, n] = mean_of_k(j);
      fs.push_back({{"k", ks[j]}, {"mape", mape}, {"choices", n}});
    }
    out["settings"]["few_shot"] = {{"trained_on", [&] {
                                      std::set<std::string> s;
                                      for (const PreparedRun* r : others) s.insert(r->work.hw.name);
                                      return std::vector<std::string>(s.begin(), s.end());
                                    }()},
                                   {"results", fs}};
  }
  return out;
}

std::string crossval_serving_text(const json& r) {
  std::string s;
  s += fmt::format("hardware: {} ({})\n", r["hardware"]["name"].get<std::string>(),
                   r["hardware"]["description"].get<std::string>());
  s += fmt::format("rows: {} in the table, {} usable, {} on this hardware\n", r["rows"]["in_table"].get<long>(),
                   r["rows"]["usable"].get<long>(), r["rows"]["usable_on_hardware"].get<long>());
  for (const auto& k : r["skipped"])
    s += fmt::format("  skipped {:>3} rows of {}: {}\n", k["rows"].get<long>(), k["model"].get<std::string>(),
                     k["reason"].get<std::string>());
  s += "\nleave one model out, % error of energy per token (mean over rows of each model)\n";
  s += fmt::format("{:<44} {:>6} {:>10} {:>10} {:>10} {:>14}\n", "model", "rows", "per-GPU", "shared", "baseline",
                   "E(Bmax)/E(8)");
  for (const auto& m : r["per_model"]) {
    const auto& br = m["batch_ratio"];
    s += fmt::format("{:<44} {:>6} {:>9.1f}% {:>9.1f}% {:>9.1f}% {}\n", m["model"].get<std::string>(),
                     m["rows"].get<long>(), m["energy_per_token"]["mape"].get<double>(),
                     m["shared"]["mape"].get<double>(), m["baseline"]["mape"].get<double>(),
                     br.is_null() ? std::string("-")
                                  : fmt::format("{:>6.3f}/{:<6.3f}", br["predicted"].get<double>(),
                                                br["measured"].get<double>()));
  }
  {
    const auto& br = r["overall"]["batch_ratio"];
    if (br["curves"].get<long>() > 0)
      s += fmt::format(
          "batch curves (E(Bmax)/E(8) per token, one per task and GPU count of a model): {} of {} within 20% of the "
          "measured ratio, median error {:.1f}%, worst {:.1f}%\n",
          br["within_20_pct"].get<long>(), br["curves"].get<long>(), br["median_error_pct"].get<double>(),
          br["worst_error_pct"].get<double>());
  }
  const auto& lomo = r["settings"]["leave_one_model_out"];
  for (const char* subset : {"all", "dense_bfloat16_chat"}) {
    const auto cell = [&](const char* who) {
      const auto& x = lomo[who][subset];
      return x["mape"].is_null() ? std::string("-")
                                 : fmt::format("{:.1f}% (worst {:.1f}%)", x["mape"].get<double>(),
                                               x["worst_model_mape"].get<double>());
    };
    s += fmt::format("{:<22} per-GPU {}  shared {}  baseline {}\n", subset, cell("per_gpu"), cell("shared"),
                     cell("baseline_four_totals"));
  }
  {
    const auto& own = lomo["dense_bfloat16_chat_fitted_on_its_rows"];
    const auto cell = [&](const char* who) {
      const auto& x = own[who];
      return x["mape"].is_null() ? std::string("-")
                                 : fmt::format("{:.1f}% (worst {:.1f}%)", x["mape"].get<double>(),
                                               x["worst_model_mape"].get<double>());
    };
    s += fmt::format("dense_bfloat16_chat, fitted on those rows only: per-GPU {}  baseline {}\n", cell("per_gpu"),
                     cell("baseline_four_totals"));
  }
  s += fmt::format("inter-token latency: median error {:.1f}% over rows\n",
                   r["overall"]["median_itl_error_pct"].get<double>());
  const auto& lot = r["settings"]["leave_one_task_out"];
  if (lot.is_string()) {
    s += "leave one task out: " + lot.get<std::string>() + "\n";
  } else {
    for (const auto& [task, v] : lot.items())
      s += fmt::format("leave task {} out: {:.1f}% over {} rows\n", task, v["mape"].get<double>(), v["rows"].get<long>());
  }
  const auto& fs = r["settings"]["few_shot"];
  if (fs.is_string()) {
    s += "few-shot: " + fs.get<std::string>() + "\n";
  } else {
    for (const auto& x : fs["results"])
      s += fmt::format("few-shot k = {}: {:.1f}% over the other rows (mean of {} choices of model)\n",
                       x["k"].get<int>(), x["mape"].get<double>(), x["choices"].get<long>());
  }
  return s;
}

}  // namespace irene::serving
