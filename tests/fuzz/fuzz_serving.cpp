// Fuzzes the serving workload (serving/report.cpp's serving_report, as `irene serving MODEL
// --hardware H` runs it): the step of a model served with continuous batching (step_work), the
// memory check, the predictor fitted on measured runs and the report. Input: a first line
// "MODEL HARDWARE [BATCH [PROMPT [OUTPUT]]] [gpus=G] [dp=D] [precision=P] [kv=K] [oversubscribe=1]
// [pdist=LEN:WEIGHT,...] [odist=LEN:WEIGHT,...] [KEY=VALUE...]" (MODEL: a built-in model by name
// or index, or "json"; HARDWARE: a built-in profile by name, alias or index, or "json"; pdist and
// odist: prompt and output length distributions; KEY=VALUE: config overrides), then the JSON texts
// the "json" words take, in that order, separated by lines "---": a config.json and a hardware
// profile file. The predictor is fitted on a small table of this harness (7 runs of three small
// models on H100 and A100-80GB, prepared once), so a profile of another name uses the shared
// predictor. Kept fast: at most 48 layers and hidden size 8192, as the generation harness. Every
// report either is refused with one clear Error or has only finite numbers, shares that add up to
// 100% and a text form.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>
#include <vector>

#include "fuzz.hpp"
#include "irene/arch/config.hpp"
#include "irene/hardware/hardware.hpp"
#include "irene/serving/crossval.hpp"

namespace {

namespace sv = irene::serving;

// Consistent with the table's identity: energy per token = power x ITL / batch.
constexpr const char* kTable =
    "model_id,task,architecture,weight_precision,gpu_model,num_gpus,tensor_parallel,expert_parallel,data_parallel,"
    "max_num_seqs,avg_batch_size,avg_output_len,energy_per_token_joules,energy_per_request_joules,avg_power_watts,"
    "median_itl_ms,p90_itl_ms,output_throughput_tokens_per_sec\n"
    "Qwen/Qwen3-8B,lm-arena-chat,Dense Transformer,bfloat16,H100,1,1,1,1,8,7.9,400,0.5316,212.7,350,12,15.6,658.3\n"
    "Qwen/Qwen3-8B,gpqa,Dense Transformer,bfloat16,H100,1,1,1,1,64,60,900,0.165,148.5,550,18,23.4,3333\n"
    "Qwen/Qwen2-0.5B,lm-arena-chat,Dense Transformer,bfloat16,H100,1,1,1,1,8,7.9,350,0.1899,66.46,250,6,7.8,1317\n"
    "Qwen/Qwen2-0.5B,lm-arena-chat,Dense Transformer,bfloat16,H100,1,1,1,1,128,120,350,0.035,12.25,420,10,13,12000\n"
    "Qwen/Qwen3-30B-A3B,lm-arena-chat,MoE,bfloat16,H100,2,2,1,1,16,15.8,420,0.8544,358.9,900,15,19.5,1053\n"
    "Qwen/Qwen3-8B,lm-arena-chat,Dense Transformer,bfloat16,A100-80GB,1,1,1,1,8,7.9,400,0.8354,334.2,300,22,28.6,359.1\n"
    "Qwen/Qwen2-0.5B,gpqa,Dense Transformer,bfloat16,A100-80GB,1,1,1,1,32,31,800,0.07258,58.06,250,9,11.7,3444\n";

// Read and prepared once (its 14 trees are most of the work of a report).
const sv::PreparedTable& table() {
  static const sv::PreparedTable t = [] {
    sv::PreparedTable p = sv::prepare_table(sv::read_serving_csv(irene::fuzz::temp_file("serving-table.csv", kTable)));
    if (p.runs.size() != 7) std::abort();  // every run of the harness's table is usable
    return p;
  }();
  return t;
}

template <typename T>
bool number(const std::string& s, T& out) {
  T v{};
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return false;
  out = v;
  return true;
}

// "LEN:WEIGHT,..." into a workload's length distribution: the weights made shares and the mean set
// to theirs where they have a positive finite total (else taken as given, for step_work to refuse).
void distribution(const std::string& text, std::vector<std::pair<double, double>>& out, double& mean) {
  out.clear();
  std::istringstream in(text);
  double total = 0;
  for (std::string item; std::getline(in, item, ',') && out.size() < 80;) {
    const auto colon = item.find(':');
    double len = 0, weight = 0;
    if (colon == std::string::npos || !number(item.substr(0, colon), len) || !number(item.substr(colon + 1), weight))
      continue;
    out.emplace_back(len, weight);
    total += weight;
  }
  if (!(total > 0) || !std::isfinite(total)) return;
  mean = 0;
  for (auto& [len, share] : out) {
    share /= total;
    mean += share * len;
  }
}

// The JSON texts after the first line, split at lines "---".
std::vector<std::string> json_parts(const std::string& rest) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    const std::size_t sep = rest.find("\n---\n", pos);
    out.push_back(rest.substr(pos, sep == std::string::npos ? std::string::npos : sep - pos));
    if (sep == std::string::npos) break;
    pos = sep + 5;
  }
  return out;
}

}  // namespace

IRENE_FUZZ_ENTRY(serving) {
  return irene::fuzz::run([&] {
    const std::string in(irene::fuzz::text(data, size));
    const auto nl = in.find('\n');
    std::istringstream first(in.substr(0, nl));
    std::vector<std::string> words;
    for (std::string w; first >> w && words.size() < 40;) words.push_back(w);
    if (words.size() < 2) return;
    const std::vector<std::string> parts = json_parts(nl == std::string::npos ? "" : in.substr(nl + 1));
    std::size_t next_part = 0;
    const auto part = [&]() -> std::string { return next_part < parts.size() ? parts[next_part++] : ""; };

    // the model: never a file or the Hugging Face cache
    static const std::vector<std::string> names = irene::builtin_model_names();
    irene::ModelConfig config;
    if (words[0] == "json") {
      config = irene::parse_model_config(part(), "fuzz/config.json");
    } else {
      std::string model = words[0];
      if (int k = -1; number(model, k) && k >= 0) model = names[static_cast<std::size_t>(k) % names.size()];
      if (std::find(names.begin(), names.end(), model) == names.end()) return;
      config = irene::load_model_config(model);
    }
    // the hardware: a built-in profile or the profile file of the input
    irene::hardware::Profile hw;
    if (words[1] == "json") {
      hw = irene::hardware::load_profile(irene::fuzz::temp_file("hardware.json", part()).string());
    } else if (int k = -1; number(words[1], k) && k >= 0) {
      const auto& all = irene::hardware::builtin_profiles();
      hw = all[static_cast<std::size_t>(k) % all.size()];
    } else if (irene::hardware::find_builtin(words[1])) {
      hw = irene::hardware::load_profile(words[1]);
    } else {
      return;
    }

    sv::Workload w;
    w.batch = 8;
    w.prompt_tokens = 180;
    w.output_tokens = 400;
    double* const positional[] = {&w.batch, &w.prompt_tokens, &w.output_tokens};
    std::size_t i = 2;
    for (double* x : positional)
      if (i < words.size() && words[i].find('=') == std::string::npos) number(words[i++], *x);
    bool oversubscribe = false;
    for (; i < words.size(); ++i) {
      const auto eq = words[i].find('=');
      if (eq == std::string::npos) continue;
      const std::string key = words[i].substr(0, eq), value = words[i].substr(eq + 1);
      if (key == "gpus") number(value, w.gpus);
      else if (key == "dp") number(value, w.data_parallel);
      else if (key == "precision") w.precision = value;
      else if (key == "kv") w.kv_cache_dtype = value;
      else if (key == "oversubscribe") oversubscribe = value == "1";
      else if (key == "pdist" || key == "odist") distribution(value, key == "pdist" ? w.prompt_distribution : w.output_distribution,
                                                         key == "pdist" ? w.prompt_tokens : w.output_tokens);
      else irene::set_config_value(config, key, value);
    }
    if (config.num_layers > 48 || config.hidden_size > 8192) return;

    const nlohmann::json r = sv::serving_report(config, w, hw, table(), oversubscribe);
    if (!irene::fuzz::all_finite(r)) {
      std::fprintf(stderr, "fuzz: a serving report with a number that is not finite: %s\n", r.dump().c_str());
      std::abort();
    }
    const double step = r.at("step_j").at("value").get<double>();
    if (!(step >= 0) || !(r.at("energy_per_token_j").at("value").get<double>() >= 0) ||
        !(r.at("itl_s").get<double>() >= 0))
      std::abort();
    double shares = 0;
    for (const auto& k : r.at("by_kind")) shares += k.at("share_pct").get<double>();
    if (step > 0 && std::abs(shares - 100) > 1e-6 * 100) {
      std::fprintf(stderr, "fuzz: the shares by module kind add up to %.17g%%\n", shares);
      std::abort();
    }
    if (sv::serving_report_text(r).empty()) std::abort();
  });
}
