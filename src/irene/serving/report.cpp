// The serving commands' library entries: crossval of a table file, its import, and the serving
// workload report (serving/crossval.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "irene/arch/family_table.hpp"
#include "irene/arch/module_kind.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/serving/crossval.hpp"
#include "irene/serving/request.hpp"

namespace irene::serving {

using json = nlohmann::json;

json crossval_serving_file(const std::filesystem::path& table, std::string_view hardware,
                           const ServingCrossvalOptions& options) {
  const hardware::Profile hw = hardware::load_profile(hardware);
  const PreparedTable t = prepare_table(read_serving_csv(table));
  return crossval_serving(t, hw, options);
}

std::string import_serving_csv(const std::filesystem::path& table, const std::filesystem::path& out) {
  const PreparedTable t = prepare_table(read_serving_csv(table));
  std::map<long, const PreparedRun*> usable;
  for (const auto& r : t.runs) usable[r.run->line] = &r;
  std::map<std::string, std::string> reason;
  for (const auto& s : t.skipped) reason[s.model_id] = s.reason;
  write_output(out, [&](std::ostream& os) {
    for (const auto& r : t.table.runs) {
      json j = run_to_json(r);
      if (usable.count(r.line))
        j["usable"] = true;
      else
        j["skipped"] = reason[r.model_id];
      os << j.dump() << '\n';
    }
  });
  std::set<std::string> models;
  for (const auto& r : t.table.runs) models.insert(r.model_id);
  long skipped = 0;
  std::string why;
  for (const auto& s : t.skipped) {
    skipped += s.rows;
    why += fmt::format("; {} ({} rows): {}", s.model_id, s.rows, s.reason);
  }
  return fmt::format("{} runs of {} models; {} usable (steps built), {} skipped{}", t.table.runs.size(), models.size(),
                     t.runs.size(), skipped, why);
}

std::filesystem::path default_table() {
  if (const char* e = std::getenv("IRENE_LLM_ENERGY"); e && *e) return e;
  return std::filesystem::path(IRENE_SOURCE_DIR) / ".." / "shared" / "llm-energy" / "mlenergy-v3-llm.csv";
}

StepWork fitting_step(const ModelConfig& config, const Workload& w, const hardware::Profile& hw, bool allow,
                      double& fit) {
  StepWork work = step_work(config, w, hw);
  fit = hardware::check_fit(work.memory, hw,
                            fmt::format("{} with {} sequences in flight on {} GPU{}", config.name, w.batch, w.gpus,
                                        w.gpus > 1 ? "s" : ""),
                            allow);
  return work;
}

FittedServing fit_for(const PreparedTable& t, const hardware::Profile& hw) {
  std::vector<const PreparedRun*> same, all;
  for (const auto& r : t.runs) {
    all.push_back(&r);
    if (r.work.hw.name == hw.name) same.push_back(&r);
  }
  if (all.empty()) throw Error(fmt::format("{}: no usable row to fit the serving predictor on", t.table.file));
  FittedServing f;
  f.per_gpu = !same.empty();
  f.predictor = std::make_shared<const ServingPredictor>(fit_serving(f.per_gpu ? same : all));
  return f;
}

namespace {

json report_of(const ModelConfig& config, const Workload& w, const hardware::Profile& hw, const StepWork& work,
               double fit, const std::string& table, const FittedServing& fitted) {
  const bool per_gpu = fitted.per_gpu;
  const ServingPredictor& p = *fitted.predictor;
  const StepPrediction sp = predict_step(p, work);
  const std::vector<ModuleKind> kinds = module_kinds_of(work.tree);
  std::map<std::string, double> by_kind;
  // the training rows' residual quantiles, widened outside the training data (serving_rests_on)
  json rests = serving_rests_on(p, per_gpu, work);
  const double widen = rests["interval_widening"].get<double>();
  const double lo = std::max(0.0, 1 + p.low_rel * widen), hi = 1 + p.high_rel * widen;
  // a unit's energy counted once, in the kind of the node it belongs to
  {
    std::vector<double> own = sp.node_j;
    for (std::size_t i = 0; i < work.tree.nodes.size(); ++i)
      for (int c : work.tree.nodes[i].children) own[i] -= sp.node_j[c];
    for (std::size_t i = 0; i < own.size(); ++i) {
      const ModuleKind k = kinds[i] == ModuleKind::experts || kinds[i] == ModuleKind::router ? ModuleKind::feed_forward
                                                                                             : kinds[i];
      by_kind[std::string(module_kind_name(k))] += own[i];
    }
  }
  by_kind["all-reduce"] += sp.allreduce_j;
  by_kind["step overhead (static power over the fixed step time)"] += sp.overhead_j;
  json kinds_j = json::array();
  for (const auto& [k, e] : by_kind)
    kinds_j.push_back({{"kind", k}, {"step_j", e}, {"share_pct", 100 * e / sp.energy_j}});
  std::sort(kinds_j.begin(), kinds_j.end(),
            [](const json& a, const json& b) { return a["step_j"].get<double>() > b["step_j"].get<double>(); });
  std::vector<int> order(work.tree.nodes.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<int> leaves;
  for (int i : order)
    if (work.tree.nodes[i].is_leaf()) leaves.push_back(i);
  std::sort(leaves.begin(), leaves.end(), [&](int a, int b) { return sp.node_j[a] > sp.node_j[b]; });
  json top = json::array();
  for (std::size_t i = 0; i < leaves.size() && i < 10; ++i)
    top.push_back({{"id", work.tree.nodes[leaves[i]].id},
                   {"step_j", sp.node_j[leaves[i]]},
                   {"share_pct", 100 * sp.node_j[leaves[i]] / sp.energy_j}});
  const double per_token = sp.energy_j / w.batch;
  json r;
  r["serving"] = {{"hardware", hardware::hardware_to_json(hw)},
                  {"predictor",
                   {{"kind", per_gpu ? "per-GPU" : "shared"},
                    {"table", table},
                    {"trained_on_hardware", p.hardware},
                    {"trained_on_models", p.models},
                    {"runs", p.runs},
                    {"coefficients", predictor_to_json(p)}}},
                  {"workload",
                   {{"model", config.name},
                    {"tensor_parallel", w.gpus},
                    {"data_parallel", w.data_parallel},
                    {"weight_precision", w.precision},
                    {"sequences_in_flight", w.batch},
                    {"prompt_tokens", w.prompt_tokens},
                    {"output_tokens", w.output_tokens},
                    {"mean_context_tokens", work.tree.past_len},
                    {"prompt_distribution", distribution_to_json(w.prompt_distribution)},
                    {"output_distribution", distribution_to_json(w.output_distribution)}}},
                  {"memory_per_gpu",
                   {{"weights_bytes", work.memory.weights_bytes},
                    {"kv_cache_bytes", work.memory.kv_cache_bytes},
                    {"activations_bytes", work.memory.activations_bytes},
                    {"share_of_memory", fit}}}};
  r["energy_per_token_j"] = {{"value", per_token}, {"low", per_token * lo}, {"high", per_token * hi}};
  r["energy_per_request_j"] = {{"value", per_token * w.output_tokens},
                               {"low", per_token * w.output_tokens * lo},
                               {"high", per_token * w.output_tokens * hi}};
  r["step_j"] = {{"value", sp.energy_j}, {"low", sp.energy_j * lo}, {"high", sp.energy_j * hi}};
  r["rests_on"] = std::move(rests);
  r["mean_power_w"] = sp.power_w;
  r["itl_s"] = sp.time_s;
  r["step_wall_s"] = sp.wall_s;
  r["throughput_tokens_per_s"] = w.batch / sp.wall_s;
  r["prefill_share_pct"] = 100 * sp.prefill_j / sp.energy_j;
  r["by_kind"] = kinds_j;
  r["top_nodes"] = top;
  return r;
}

}  // namespace

json serving_report(const ModelConfig& config, const Workload& w, const hardware::Profile& hw,
                    const std::filesystem::path& table, bool allow_oversubscribe) {
  double fit = 0;
  const StepWork work = fitting_step(config, w, hw, allow_oversubscribe, fit);
  const PreparedTable t = prepare_table(read_serving_csv(table));
  return report_of(config, w, hw, work, fit, t.table.file, fit_for(t, hw));
}

json serving_report(const ModelConfig& config, const Workload& w, const hardware::Profile& hw,
                    const PreparedTable& table, bool allow_oversubscribe) {
  double fit = 0;
  const StepWork work = fitting_step(config, w, hw, allow_oversubscribe, fit);
  return report_of(config, w, hw, work, fit, table.table.file, fit_for(table, hw));
}

json serving_report(const ModelConfig& config, const Workload& w, const hardware::Profile& hw,
                    const std::string& table_file, const FittedServing& fitted, bool allow_oversubscribe) {
  double fit = 0;
  const StepWork work = fitting_step(config, w, hw, allow_oversubscribe, fit);
  return report_of(config, w, hw, work, fit, table_file, fitted);
}

void add_carbon(json& r, double g_per_kwh) {
  const double g = g_per_kwh / 3.6e6;  // grams per joule
  r["carbon_intensity_g_per_kwh"] = g_per_kwh;
  for (const auto& [from, to] : {std::pair{"energy_per_token_j", "co2e_per_token_g"},
                                 std::pair{"energy_per_request_j", "co2e_per_request_g"}}) {
    const json& e = r.at(from);
    r[to] = {{"value", e.at("value").get<double>() * g}, {"low", e.at("low").get<double>() * g},
             {"high", e.at("high").get<double>() * g}};
  }
}

std::string workload_sources_text(const json& sources) {
  return fmt::format("prompt tokens: {}; output tokens: {}{}\n", sources["prompt_tokens"].get<std::string>(),
                     sources["output_tokens"].get<std::string>(),
                     sources.contains("output_distribution")
                         ? ", spread as " + sources["output_distribution"].get<std::string>()
                         : std::string());
}

std::string serving_report_text(const json& r) {
  const auto& s = r["serving"];
  std::string t;
  const auto& wl = s["workload"];
  const int ep = wl.value("expert_parallel", 1), dp = wl.value("data_parallel", 1);
  const std::string spread = fmt::format("tensor parallel {}{}{}", wl["tensor_parallel"].get<int>(),
                                         ep > 1 ? fmt::format(", experts over {} GPUs", ep) : "",
                                         dp > 1 ? fmt::format(", attention data-parallel {}", dp) : "");
  const auto spread_of = [&](const char* key) {
    const json& d = s["workload"].value(key, json());
    return d.is_array() && !d.empty() ? fmt::format(" (mean of {} lengths)", d.size()) : std::string();
  };
  t += fmt::format("{} on {} ({}), {}, {}, {:g} sequences in flight, prompt {:g}{} / output {:g}{} tokens, {:g} cached "
                   "on average\n",
                   s["workload"]["model"].get<std::string>(), s["hardware"]["name"].get<std::string>(),
                   s["hardware"]["description"].get<std::string>(), spread,
                   s["workload"]["weight_precision"].get<std::string>(),
                   s["workload"]["sequences_in_flight"].get<double>(), s["workload"]["prompt_tokens"].get<double>(),
                   spread_of("prompt_distribution"), s["workload"]["output_tokens"].get<double>(),
                   spread_of("output_distribution"), s["workload"].value("mean_context_tokens", 0.0));
  if (wl.contains("sources")) t += workload_sources_text(wl["sources"]);
  t += fmt::format("predictor: {} serving predictor fitted on {} runs of {} ({} models)\n",
                   s["predictor"]["kind"].get<std::string>(), s["predictor"]["runs"].get<long>(),
                   fmt::join(s["predictor"]["trained_on_hardware"].get<std::vector<std::string>>(), ", "),
                   s["predictor"]["trained_on_models"].size());
  if (r.contains("rests_on")) t += r["rests_on"]["summary"].get<std::string>() + "\n";
  const auto iv = [](const json& x) {
    return fmt::format("{:.4g} J [{:.4g} .. {:.4g}]", x["value"].get<double>(), x["low"].get<double>(),
                       x["high"].get<double>());
  };
  t += "energy per generated token: " + iv(r["energy_per_token_j"]) + "\n";
  t += "energy per request:         " + iv(r["energy_per_request_j"]) + "\n";
  if (r.contains("carbon_intensity_g_per_kwh")) {
    const auto g = [](const json& x) {
      return fmt::format("{:.4g} g [{:.4g} .. {:.4g}]", x["value"].get<double>(), x["low"].get<double>(),
                         x["high"].get<double>());
    };
    t += fmt::format("CO2e at {:g} g/kWh: {} per generated token, {} per request\n",
                     r["carbon_intensity_g_per_kwh"].get<double>(), g(r["co2e_per_token_g"]),
                     g(r["co2e_per_request_g"]));
  }
  t += fmt::format(
      "mean power {:.0f} W, inter-token latency {:.2f} ms (median), mean step {:.2f} ms, throughput {:.0f} tokens/s\n",
      r["mean_power_w"].get<double>(), 1000 * r["itl_s"].get<double>(), 1000 * r["step_wall_s"].get<double>(),
      r["throughput_tokens_per_s"].get<double>());
  t += fmt::format("one step ({} tokens): {}; of it the prefills carried: {:.1f}%\n",
                   s["workload"]["sequences_in_flight"].get<double>(), iv(r["step_j"]),
                   r["prefill_share_pct"].get<double>());
  t += "by module kind:\n";
  for (const auto& k : r["by_kind"])
    t += fmt::format("  {:<56} {:>10.4g} J {:>6.2f}%\n", k["kind"].get<std::string>(), k["step_j"].get<double>(),
                     k["share_pct"].get<double>());
  t += "costliest nodes:\n";
  for (const auto& k : r["top_nodes"])
    t += fmt::format("  {:<56} {:>10.4g} J {:>6.2f}%\n", k["id"].get<std::string>(), k["step_j"].get<double>(),
                     k["share_pct"].get<double>());
  return t;
}

}  // namespace irene::serving
