#include "irene/serving/request.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <regex>

#include "irene/arch/family_table.hpp"
#include "irene/arch/module_kind.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/source.hpp"

namespace irene::serving {

using json = nlohmann::json;
using explain::Option;

namespace {

constexpr std::size_t kMaxPoints = 64;
constexpr double kDefaultPrompt = 180, kDefaultOutput = 400;
constexpr const char* kDefaultBatch = "8";

// The numbers of `text` ("8" or "8,256"), each checked by `ok` (whose rule `want` names).
std::vector<double> numbers(const std::string& text, const std::string& option, bool (*ok)(double),
                            const char* want) {
  std::vector<double> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    char* end = nullptr;
    const double v = item.empty() ? NAN : std::strtod(item.c_str(), &end);
    if (item.empty() || !end || *end != '\0' || !std::isfinite(v) || !ok(v))
      throw Error(fmt::format("{} must be {} or a comma-separated list of them (8,256), got '{}'", option, want,
                              text.substr(0, 80)));
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.size() > kMaxPoints)
    throw Error(fmt::format("{}: {} values, more than the {} points a request may have", option, out.size(), kMaxPoints));
  return out;
}

// A prompt or output length of a request: its mean, and the distribution it is the mean of
// (Workload's (tokens, share) pairs; empty: every request at the mean).
struct Lengths {
  double mean = 0;
  std::vector<std::pair<double, double>> distribution;
};

// `text` as lengths: a list of numbers (each one point of a sweep: "180,1200") or one
// distribution of LEN:WEIGHT pairs ("100:3,400:1": three requests of 100 tokens for each of 400;
// the weights are relative request counts). Each length checked by `ok` (whose rule `want` names).
std::vector<Lengths> lengths(const std::string& text, const std::string& option, bool (*ok)(double), const char* want) {
  std::vector<Lengths> out;
  if (text.find(':') == std::string::npos) {
    for (double v : numbers(text, option, ok, want)) out.push_back({v, {}});
    return out;
  }
  const auto bad = [&](const std::string& why) {
    return Error(fmt::format("{} as a distribution takes LEN:WEIGHT pairs (100:3,400:1; lengths {}, weights positive "
                             "request counts), got '{}': {}",
                             option, want, text.substr(0, 80), why));
  };
  std::map<double, double> weights;
  double total = 0;
  std::size_t pairs = 0, start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::size_t colon = item.find(':');
    if (colon == std::string::npos) throw bad(fmt::format("'{}' has no weight", item.substr(0, 40)));
    char* end = nullptr;
    const std::string len_text = item.substr(0, colon), weight_text = item.substr(colon + 1);
    const double len = std::strtod(len_text.c_str(), &end);
    if (len_text.empty() || *end != '\0' || !std::isfinite(len) || !ok(len))
      throw bad(fmt::format("'{}' is not a length", len_text.substr(0, 40)));
    const double weight = std::strtod(weight_text.c_str(), &end);
    if (weight_text.empty() || *end != '\0' || !std::isfinite(weight) || !(weight > 0) || weight > 1e12)
      throw bad(fmt::format("'{}' is not a positive weight", weight_text.substr(0, 40)));
    if (++pairs > kMaxPoints) throw bad(fmt::format("more than {} pairs", kMaxPoints));
    weights[len] += weight;
    total += weight;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  Lengths l;
  // the mean summed as step_work sums it from the shares (it checks the two agree)
  for (const auto& [len, weight] : weights) {
    l.distribution.emplace_back(len, weight / total);
    l.mean += l.distribution.back().second * len;
  }
  if (l.distribution.size() == 1) l.distribution.clear();
  out.push_back(std::move(l));
  return out;
}

bool positive_batch(double v) { return v > 0 && v <= 1e6; }
bool tokens_or_zero(double v) { return v >= 0 && v <= 1e7; }
bool positive_tokens(double v) { return v > 0 && v <= 1e7; }

// A positive integer option ("" = 1).
int count(const std::string& text, const std::string& option) {
  if (text.empty()) return 1;
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (!end || *end != '\0' || v < 1 || v > 1024)
    throw Error(fmt::format("{} must be a whole number of GPUs in 1..1024, got '{}'", option, text.substr(0, 40)));
  return static_cast<int>(v);
}

// The routed experts of a mixture of experts (0: dense), from its config.
std::int64_t routed_expert_count(const ModelConfig& config) {
  for (const char* k : {"num_local_experts", "num_experts", "n_routed_experts"}) {
    const auto it = config.raw.find(k);
    if (it != config.raw.end() && it->is_number_integer() && it->get<std::int64_t>() > 0) return it->get<std::int64_t>();
  }
  return 0;
}

// The median of the table's mean output lengths of `task`'s rows.
std::optional<std::pair<double, std::size_t>> median_output(const ServingTable& t, const std::string& task) {
  std::vector<double> v;
  for (const auto& r : t.runs)
    if (r.task == task) v.push_back(r.avg_output_tokens);
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return std::pair{n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, n};
}

Option<ServingRequest> text(std::string keyword, std::string flags, std::string help,
                            std::string ServingRequest::*field) {
  return explain::text_option<ServingRequest>(std::move(keyword), std::move(flags), std::move(help),
                                              [field](ServingRequest& r) -> std::string& { return r.*field; });
}

}  // namespace

const std::vector<Option<ServingRequest>>& serving_options() {
  using R = ServingRequest;
  static const std::vector<Option<R>> options = [] {
    std::vector<Option<R>> o;
    o.push_back(text("model", "MODEL",
                     "model: built-in name, config.json, a Hugging Face id in the local cache or of "
                     "configs/serving-models/",
                     &R::model));
    o.push_back(text("hardware", "--hardware",
                     "GPU: a built-in profile (" + hardware::builtin_names() + ") or a JSON file", &R::hardware));
    o.push_back(text("max_num_seqs", "--max-num-seqs",
                     "sequences in flight (B, mean; default 8); a list 8,256 sweeps", &R::max_num_seqs));
    o.push_back(text("prompt", "--prompt",
                     "mean prompt tokens per request (default: the task's assumed mean, else 180); a list sweeps; "
                     "LEN:WEIGHT pairs (100:3,400:1) are one distribution",
                     &R::prompt));
    o.push_back(text("output", "--output-tokens,--output",
                     "mean generated tokens per request (default: the task's median in the table, else 400); a list "
                     "sweeps; LEN:WEIGHT pairs (100:1,700:1) are one distribution",
                     &R::output));
    o.back().aliases = {"output_tokens"};
    o.push_back(text("task", "--task",
                     "the table's task whose lengths to use: lm-arena-chat, gpqa or sourcegraph-fim (its assumed "
                     "prompt, its median output, outputs spread as its published lengths are)",
                     &R::task));
    o.push_back(text("tensor_parallel", "--tensor-parallel,--gpus",
                     "GPUs the model is split across (default 1); energy counts all", &R::tensor_parallel));
    o.push_back(text("expert_parallel", "--expert-parallel",
                     "a mixture of experts' experts spread over E GPUs (E divides the experts; the GPUs are E)",
                     &R::expert_parallel));
    o.push_back(text("data_parallel", "--data-parallel",
                     "ranks among the GPUs that run attention data-parallel (default 1; each holds and reads the "
                     "attention weights)",
                     &R::data_parallel));
    o.push_back(text("precision", "--precision", "weight precision: bfloat16 (default), float16, fp8, mxfp4",
                     &R::precision));
    o.push_back(text("kv_cache_dtype", "--kv-cache-dtype",
                     "key/value cache dtype: bfloat16 (default), float16, fp8, float32", &R::kv_cache_dtype));
    o.push_back(text("table", "--table",
                     "measured serving runs to fit the predictor on (default: ../shared/llm-energy/mlenergy-v3-llm.csv "
                     "beside the source tree, or $IRENE_LLM_ENERGY)",
                     &R::table));
    o.push_back(explain::flag_option<R>(
        "allow_oversubscribe", "--allow-oversubscribe",
        "predict a configuration whose weights, key/value cache and activations exceed the GPUs' memory",
        [](R& r) -> bool& { return r.allow_oversubscribe; }));
    o.push_back(text("carbon_intensity", "--carbon-intensity",
                     "grams CO2e per kWh of the electricity (e.g. 400): adds grams CO2e per token and per request",
                     &R::carbon_intensity));
    return o;
  }();
  return options;
}

std::shared_ptr<const PreparedTable> prepared_table(const std::filesystem::path& path) {
  static std::mutex mutex;
  static std::map<std::string, std::pair<std::filesystem::file_time_type, std::shared_ptr<const PreparedTable>>> cache;
  std::error_code ec;
  const auto stamp = std::filesystem::last_write_time(path, ec);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(path.string());
  if (it != cache.end() && !ec && it->second.first == stamp) return it->second.second;
  auto t = std::make_shared<const PreparedTable>(prepare_table(read_serving_csv(path)));
  if (!ec) cache[path.string()] = {stamp, t};
  return t;
}

namespace {

// fit_for once per prepared table and GPU.
FittedServing fitted(const std::shared_ptr<const PreparedTable>& t, const hardware::Profile& hw) {
  static std::mutex mutex;
  static std::map<std::pair<const PreparedTable*, std::string>, std::pair<std::weak_ptr<const PreparedTable>, FittedServing>>
      cache;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::pair{t.get(), hw.name};
  auto it = cache.find(key);
  if (it != cache.end() && it->second.first.lock() == t) return it->second.second;
  FittedServing f = fit_for(*t, hw);
  cache[key] = {t, f};
  return f;
}

}  // namespace

ResolvedServing resolve(const ServingRequest& q) {
  if (q.model.empty()) throw Error("a serving request needs a model");
  if (q.hardware.empty()) throw Error("a serving request needs --hardware (" + hardware::builtin_names() + ")");
  ResolvedServing r;
  r.task = q.task;
  if (!q.task.empty() && !find_serving_task(q.task)) {
    std::vector<std::string_view> names;
    for (const ServingTask& t : serving_tasks()) names.push_back(t.name);
    const std::string_view last = names.back();
    names.pop_back();
    throw Error(fmt::format("unknown --task '{}' (expected {} or {})", q.task.substr(0, 40), fmt::join(names, ", "), last));
  }
  const auto batches = numbers(q.max_num_seqs.empty() ? kDefaultBatch : q.max_num_seqs, "--max-num-seqs",
                               positive_batch, "a positive number of sequences up to 1e6");
  const auto prompts_given = q.prompt.empty() ? std::vector<Lengths>{}
                                              : lengths(q.prompt, "--prompt", tokens_or_zero, "a number of tokens in 0..1e7");
  const auto outputs_given = q.output.empty()
                                 ? std::vector<Lengths>{}
                                 : lengths(q.output, "--output-tokens", positive_tokens, "a positive number of tokens up to 1e7");
  const int tp = count(q.tensor_parallel, "--tensor-parallel");
  r.expert_parallel = count(q.expert_parallel, "--expert-parallel");
  const int dp = count(q.data_parallel, "--data-parallel");
  r.carbon_g_per_kwh = explain::parse_carbon_intensity(q.carbon_intensity);
  r.allow_oversubscribe = q.allow_oversubscribe;
  r.hw = hardware::load_profile(q.hardware);
  r.config = load_serving_model(q.model);
  int gpus = tp;
  if (r.expert_parallel > 1) {
    const std::int64_t experts = routed_expert_count(r.config);
    if (experts == 0)
      throw Error(fmt::format("--expert-parallel {}: {} is not a mixture of experts", r.expert_parallel, r.config.name));
    if (experts % r.expert_parallel != 0)
      throw Error(fmt::format("--expert-parallel {} does not divide the {} experts of {}", r.expert_parallel, experts,
                              r.config.name));
    if (tp != 1 && tp != r.expert_parallel)
      throw Error(fmt::format("--tensor-parallel {} with --expert-parallel {}: the experts spread over {} GPUs are the "
                              "GPUs; give --tensor-parallel 1 or {}",
                              tp, r.expert_parallel, r.expert_parallel, r.expert_parallel));
    gpus = r.expert_parallel;
  }
  if (gpus % dp != 0)
    throw Error(fmt::format("--data-parallel {} must divide the {} GPU{}", dp, gpus, gpus > 1 ? "s" : ""));
  const std::size_t n_points = batches.size() * std::max<std::size_t>(1, prompts_given.size()) *
                               std::max<std::size_t>(1, outputs_given.size());
  if (n_points > kMaxPoints)
    throw Error(fmt::format("{} points: more than the {} a request may have", n_points, kMaxPoints));
  r.table = prepared_table(q.table.empty() ? default_table() : std::filesystem::path(q.table));
  std::vector<Lengths> prompts = prompts_given, outputs = outputs_given;
  const auto given = [](const std::vector<Lengths>& l) {
    return l.size() == 1 && !l[0].distribution.empty()
               ? fmt::format("given as a distribution of {} lengths", l[0].distribution.size())
               : std::string("given");
  };
  if (prompts.empty()) {
    prompts = {{q.task.empty() ? kDefaultPrompt : task_prompt_tokens(q.task), {}}};
    r.sources["prompt_tokens"] = q.task.empty() ? "default" : "assumed for " + q.task + " (task_prompt_tokens; not measured)";
  } else {
    r.sources["prompt_tokens"] = given(prompts);
  }
  if (outputs.empty()) {
    const auto median = q.task.empty() ? std::nullopt : median_output(r.table->table, q.task);
    if (!q.task.empty() && !median)
      throw Error(fmt::format("{}: no row of task {} to take its median output length from", r.table->table.file, q.task));
    outputs = {{median ? median->first : kDefaultOutput, {}}};
    r.sources["output_tokens"] =
        median ? fmt::format("median avg_output_len of the table's {} {} rows", median->second, q.task) : "default";
  } else {
    r.sources["output_tokens"] = given(outputs);
  }
  // A task's outputs spread as its published lengths do, around each mean (given or the
  // table's), unless the lengths were given as a distribution.
  if (!q.task.empty() && outputs.front().distribution.empty()) {
    for (Lengths& n : outputs) n.distribution = task_output_distribution(q.task, n.mean);
    r.sources["output_distribution"] =
        "the published shape of " + q.task + "'s output lengths (task_output_shape)";
  }
  for (double b : batches)
    for (const Lengths& p : prompts)
      for (const Lengths& n : outputs) {
        Workload w;
        w.gpus = gpus;
        w.data_parallel = dp;
        w.batch = b;
        w.prompt_tokens = p.mean;
        w.prompt_distribution = p.distribution;
        w.output_tokens = n.mean;
        w.output_distribution = n.distribution;
        if (!q.precision.empty()) w.precision = q.precision;
        if (!q.kv_cache_dtype.empty()) w.kv_cache_dtype = q.kv_cache_dtype;
        r.points.push_back(w);
      }
  const FittedServing f = fitted(r.table, r.hw);
  r.predictor = f.predictor;
  r.per_gpu = f.per_gpu;
  return r;
}

namespace {

// The request's own facts, added to a report's workload.
void describe(json& workload, const ResolvedServing& r) {
  workload["tensor_parallel"] = r.expert_parallel > 1 ? 1 : r.points.front().gpus;
  workload["expert_parallel"] = r.expert_parallel;
  workload["gpus"] = r.points.front().gpus;
  workload["kv_cache_dtype"] = r.points.front().kv_cache_dtype;
  workload["task"] = r.task.empty() ? json(nullptr) : json(r.task);
  workload["sources"] = r.sources;
  workload["prompt_distribution"] = distribution_to_json(r.points.front().prompt_distribution);
  workload["output_distribution"] = distribution_to_json(r.points.front().output_distribution);
}

}  // namespace

json serving_answer(const ServingRequest& q) {
  const ResolvedServing r = resolve(q);
  const FittedServing f{r.predictor, r.per_gpu};
  json points = json::array();
  for (const Workload& w : r.points) {
    json one = serving_report(r.config, w, r.hw, r.table->table.file, f, r.allow_oversubscribe);
    describe(one["serving"]["workload"], r);
    if (r.carbon_g_per_kwh) add_carbon(one, *r.carbon_g_per_kwh);
    points.push_back(std::move(one));
  }
  if (points.size() == 1) return points[0];
  return {{"points", points}};
}

std::string serving_answer_text(const json& answer) {
  if (!answer.contains("points")) return serving_report_text(answer);
  std::string t;
  for (const auto& p : answer["points"]) t += (t.empty() ? "" : "\n" + std::string(72, '-') + "\n") + serving_report_text(p);
  return t;
}

namespace {

struct Part {
  const char* key;
  const char* label;
};
const Part kParts[] = {
    {"mlp_weights", "weights streaming: MLP (feed-forward, experts)"},
    {"attention_weights", "weights streaming: attention projections"},
    {"matmul_math", "matmul arithmetic: MLP and attention proj."},
    {"kv_cache_reads", "key/value-cache reads"},
    {"attention_math", "attention math (fused attention)"},
    {"lm_head", "LM head"},
    {"other", "embeddings, norms, activations, other ops"},
    {"all_reduce", "all-reduce"},
    {"fixed", "fixed time: idle + host per sequence"},
    {"prefills", "prefills carried"},
};
enum PartIndex { kMlp, kAttnW, kMath, kKv, kAttnMath, kLmHead, kOther, kAllReduce, kFixed, kPrefills, kNParts };

}  // namespace

json by_part(const StepWork& work, const StepPrediction& sp) {
  const std::vector<UnitEnergy>& ue = sp.units;
  double j[kNParts] = {};
  const std::vector<ModuleKind> kinds = module_kinds_of(work.tree);
  for (std::size_t i = 0; i < work.units.size(); ++i) {
    const Unit& u = work.units[i];
    const UnitEnergy& e = ue[i];
    if (u.prefill) {
      j[kPrefills] += e.total_j();
      continue;
    }
    const ModuleKind k = kinds[static_cast<std::size_t>(u.node)];
    if (u.key.rfind("Linear", 0) == 0) {
      if (k == ModuleKind::lm_head) {
        j[kLmHead] += e.total_j();
      } else if (k == ModuleKind::feed_forward || k == ModuleKind::experts || k == ModuleKind::router ||
                 k == ModuleKind::attention) {
        j[k == ModuleKind::attention ? kAttnW : kMlp] += e.memory_j + e.launch_j;
        j[kMath] += e.compute_j;
      } else {
        j[kOther] += e.total_j();
      }
    } else if (u.key == "ScaledDotProductAttention") {
      const double cache = u.bytes > 0 ? e.memory_j * std::min(1.0, u.cache_bytes / u.bytes) : 0;
      j[kKv] += cache;
      j[kAttnMath] += e.total_j() - cache;
    } else {
      j[kOther] += e.total_j();
    }
  }
  j[kAllReduce] = sp.allreduce_j;
  j[kFixed] = sp.overhead_j;
  json out = json::array();
  for (int i = 0; i < kNParts; ++i)
    out.push_back({{"part", kParts[i].key},
                   {"label", kParts[i].label},
                   {"step_j", j[i]},
                   {"per_token_j", j[i] / work.workload.batch},
                   {"share_pct", sp.energy_j > 0 ? 100 * j[i] / sp.energy_j : 0}});
  return out;
}

json serving_explanation(const ServingRequest& q) {
  const ResolvedServing r = resolve(q);
  const ServingPredictor& p = *r.predictor;
  json points = json::array();
  json shares = json::object();
  json parts = json::array();
  json farthest;  // the rests_on of the point farthest outside the training data
  for (const Part& part : kParts) {
    parts.push_back({{"part", part.key}, {"label", part.label}});
    shares[part.key] = json::array();
  }
  for (const Workload& w : r.points) {
    double fit = 0;
    const StepWork work = fitting_step(r.config, w, r.hw, r.allow_oversubscribe, fit);
    const StepPrediction sp = predict_step(p, work);
    const json parts_j = by_part(work, sp);
    json pt = {{"max_num_seqs", w.batch},
               {"prompt_tokens", w.prompt_tokens},
               {"output_tokens", w.output_tokens},
               {"mean_context_tokens", work.tree.past_len},
               {"step_j", sp.energy_j},
               {"energy_per_token_j", sp.energy_j / w.batch},
               {"itl_s", sp.time_s},
               {"step_wall_s", sp.wall_s},
               {"mean_power_w", sp.power_w},
               {"memory_share_of_gpu", fit},
               {"by_part", parts_j}};
    if (r.carbon_g_per_kwh) pt["co2e_per_token_g"] = sp.energy_j / w.batch * *r.carbon_g_per_kwh / 3.6e6;
    pt["rests_on"] = serving_rests_on(p, r.per_gpu, work);
    if (farthest.is_null() || pt["rests_on"]["interval_widening"].get<double>() >
                                  farthest["interval_widening"].get<double>())
      farthest = pt["rests_on"];
    for (const auto& x : parts_j) shares[x["part"].get<std::string>()].push_back(x["share_pct"]);
    points.push_back(std::move(pt));
  }
  const Workload& w0 = r.points.front();
  json workload = {{"model", r.config.name},
                   {"data_parallel", w0.data_parallel},
                   {"weight_precision", w0.precision}};
  describe(workload, r);
  json out;
  out["serving"] = {{"hardware", hardware::hardware_to_json(r.hw)},
                    {"predictor",
                     {{"kind", r.per_gpu ? "per-GPU" : "shared"},
                      {"table", r.table->table.file},
                      {"trained_on_hardware", p.hardware},
                      {"trained_on_models", p.models},
                      {"runs", p.runs}}},
                    {"workload", workload}};
  if (r.carbon_g_per_kwh) out["carbon_intensity_g_per_kwh"] = *r.carbon_g_per_kwh;
  out["rests_on"] = farthest;
  out["parts"] = parts;
  out["points"] = points;
  out["shares"] = shares;
  return out;
}

std::string serving_explanation_text(const json& e) {
  const auto& s = e["serving"];
  const auto& w = s["workload"];
  std::string t = fmt::format(
      "Where the joules of a serving step go: {} on {} ({}), {} GPU{}{}, {}\n", w["model"].get<std::string>(),
      s["hardware"]["name"].get<std::string>(), s["hardware"]["description"].get<std::string>(), w["gpus"].get<int>(),
      w["gpus"].get<int>() > 1 ? "s" : "",
      w["expert_parallel"].get<int>() > 1 ? fmt::format(" (experts over {})", w["expert_parallel"].get<int>()) : "",
      w["weight_precision"].get<std::string>());
  t += fmt::format("predictor: {} serving predictor fitted on {} runs of {} ({} models)\n",
                   s["predictor"]["kind"].get<std::string>(), s["predictor"]["runs"].get<long>(),
                   fmt::join(s["predictor"]["trained_on_hardware"].get<std::vector<std::string>>(), ", "),
                   s["predictor"]["trained_on_models"].size());
  t += workload_sources_text(w["sources"]);
  if (e.contains("rests_on") && e["rests_on"].is_object())
    t += e["rests_on"]["summary"].get<std::string>() + (e["points"].size() > 1 ? " (the farthest point)\n" : "\n");
  const auto& pts = e["points"];
  std::vector<std::string> heads;
  for (const auto& p : pts)
    heads.push_back(fmt::format("B={:g} P={:g} N={:g}", p["max_num_seqs"].get<double>(), p["prompt_tokens"].get<double>(),
                                p["output_tokens"].get<double>()));
  constexpr int kLabel = 52;
  const auto row = [&](const std::string& label, const std::vector<std::string>& cells) {
    std::string line = fmt::format("{:<{}}", label, kLabel);
    for (const auto& c : cells) line += fmt::format(" {:>22}", c);
    return line + "\n";
  };
  t += row("", heads);
  const auto figures = [&](const char* key, const char* fmt_spec, double scale) {
    std::vector<std::string> c;
    for (const auto& p : pts) c.push_back(fmt::format(fmt::runtime(fmt_spec), p[key].get<double>() * scale));
    return c;
  };
  t += row("step energy (joules, all GPUs)", figures("step_j", "{:.4g} J", 1));
  t += row("energy per generated token", figures("energy_per_token_j", "{:.4g} J", 1));
  t += row("inter-token latency", figures("itl_s", "{:.2f} ms", 1000));
  t += row("mean power (all GPUs)", figures("mean_power_w", "{:.0f} W", 1));
  t += "share of the step:\n";
  for (const auto& part : e["parts"]) {
    std::vector<std::string> c;
    for (const auto& v : e["shares"][part["part"].get<std::string>()]) c.push_back(fmt::format("{:.2f}%", v.get<double>()));
    t += row("  " + part["label"].get<std::string>().substr(0, kLabel - 2), c);
  }
  return t;
}

void check_network_request(const ServingRequest& q) {
  if (!q.table.empty()) throw Error("'table' does not apply to the HTTP API (the server fits on its own table)");
  if (!q.hardware.empty() && !hardware::find_builtin(q.hardware))
    throw Error(fmt::format("unknown hardware '{}' (built-in profiles: {})", q.hardware.substr(0, 40),
                            hardware::builtin_names()));
  const auto names = builtin_model_names();
  if (q.model.empty() || std::find(names.begin(), names.end(), q.model) != names.end()) return;
  static const std::regex id("[A-Za-z0-9_][A-Za-z0-9._-]{0,95}/[A-Za-z0-9_][A-Za-z0-9._-]{0,95}");
  std::error_code ec;
  if (!std::regex_match(q.model, id) || q.model.find("..") != std::string::npos ||
      !std::filesystem::is_regular_file(
          std::filesystem::path(IRENE_SOURCE_DIR) / "configs" / "serving-models" / q.model / "config.json", ec))
    throw Error(fmt::format("unknown model '{}': the HTTP API serves built-in models and those of "
                            "configs/serving-models/ by name",
                            q.model.substr(0, 80)));
}

std::function<json(const json&, bool)> network_answer(std::filesystem::path table) {
  return [table](const json& fields, bool explain) {
    ServingRequest q;
    explain::apply_json(q, serving_options(), fields, "serving request");
    check_network_request(q);
    q.table = table.string();
    return explain ? serving_explanation(q) : serving_answer(q);
  };
}

}  // namespace irene::serving
