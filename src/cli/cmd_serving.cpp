// irene hardware [NAME|FILE]        the built-in accelerator profiles, or one (datasheet facts, sources)
// irene serving MODEL --hardware H100 --max-num-seqs 8 [--prompt P --output N --tensor-parallel G]
//                                    energy of serving MODEL with continuous batching (serving/)
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/hardware/hardware.hpp"
#include "irene/serving/crossval.hpp"

namespace irene::cli {

void register_serving(CLI::App& app) {
  struct HwArgs {
    std::string name, format = "text";
  };
  auto ha = std::make_shared<HwArgs>();
  auto* hw = app.add_subcommand("hardware", "Accelerator profiles: datasheet facts with their sources");
  hw->add_option("NAME", ha->name, "a built-in profile (" + hardware::builtin_names() + ") or a JSON file; none: all");
  hw->add_option("--format", ha->format, "text | json")->check(CLI::IsMember({"text", "json"}));
  hw->callback([ha] {
    std::vector<hardware::Profile> list;
    if (ha->name.empty())
      list = hardware::builtin_profiles();
    else
      list.push_back(hardware::load_profile(ha->name));
    if (ha->format == "json") {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& p : list) j.push_back(hardware::hardware_to_json(p));
      std::cout << j.dump(1) << '\n';
      return;
    }
    std::cout << fmt::format("{:<10} {:>9} {:>10} {:>10} {:>10} {:>10} {:>6} {:>10}\n", "name", "mem GiB", "mem TB/s",
                             "bf16 TF/s", "fp8 TF/s", "fp4 TF/s", "TDP W", "link GB/s");
    for (const auto& p : list) {
      const auto opt = [](const std::optional<double>& x) { return x ? fmt::format("{:.0f}", *x / 1e12) : "-"; };
      std::cout << fmt::format("{:<10} {:>9.1f} {:>10.2f} {:>10.0f} {:>10} {:>10} {:>6.0f} {:>10.0f}  {}\n", p.name,
                               p.memory_gib(), p.memory_bandwidth / 1e12, p.peak_bf16 / 1e12, opt(p.peak_fp8),
                               opt(p.peak_fp4), p.tdp_watts, p.interconnect_bandwidth / 1e9,
                               p.sources.empty() ? "" : p.sources.front());
    }
  });

  struct ServeArgs {
    std::string model, hardware, precision = "bfloat16", kv_cache_dtype = "bfloat16", format = "text", out = "-", table,
        carbon;
    double batch = 8, prompt = 180, output = 400;
    int gpus = 1, data_parallel = 1;
    bool allow_oversubscribe = false;
  };
  auto sa = std::make_shared<ServeArgs>();
  auto* sv = app.add_subcommand(
      "serving",
      "Energy of serving a model with continuous batching on a named GPU: per generated token and per request, "
      "mean power, inter-token latency, throughput, by module kind (predictor fitted on measured serving runs)");
  sv->add_option("MODEL", sa->model, "model: built-in name, config.json, or Hugging Face id in the local cache")
      ->required();
  sv->add_option("--hardware", sa->hardware, "GPU: a built-in profile (" + hardware::builtin_names() + ") or a JSON file")
      ->required();
  sv->add_option("--max-num-seqs", sa->batch, "sequences in flight (B, mean; default 8)");
  sv->add_option("--prompt", sa->prompt, "mean prompt tokens per request (default 180)");
  sv->add_option("--output", sa->output, "mean generated tokens per request (default 400)");
  sv->add_option("--tensor-parallel,--gpus", sa->gpus,
                 "GPUs the model is split across (default 1; a mixture's experts spread over them, expert "
                 "parallel); energy counts all");
  sv->add_option("--data-parallel", sa->data_parallel,
                 "ranks among the GPUs that run attention data-parallel (default 1; each reads the attention "
                 "weights)");
  sv->add_option("--precision", sa->precision, "weight precision: bfloat16 (default), float16, fp8, mxfp4");
  sv->add_option("--kv-cache-dtype", sa->kv_cache_dtype,
                 "key/value cache dtype: bfloat16 (default), float16, fp8, float32 (bytes of the cache read and held)");
  sv->add_option("--table", sa->table,
                 "measured serving runs to fit the predictor on (default: ../shared/llm-energy/mlenergy-v3-llm.csv "
                 "beside the source tree, or $IRENE_LLM_ENERGY)");
  sv->add_flag("--allow-oversubscribe", sa->allow_oversubscribe,
               "predict a configuration whose weights, key/value cache and activations exceed the GPUs' memory");
  sv->add_option("--carbon-intensity", sa->carbon,
                 "grams CO2e per kWh of the electricity (e.g. 400): adds grams CO2e per token and per request");
  sv->add_option("--format", sa->format, "text | json")->check(CLI::IsMember({"text", "json"}));
  sv->add_option("-o,--output-file", sa->out, "output file ('-' = standard output, the default)");
  sv->callback([sa] {
    const auto carbon = explain::parse_carbon_intensity(sa->carbon);
    serving::Workload w;
    w.gpus = sa->gpus;
    w.data_parallel = sa->data_parallel;
    w.batch = sa->batch;
    w.prompt_tokens = sa->prompt;
    w.output_tokens = sa->output;
    w.precision = sa->precision;
    w.kv_cache_dtype = sa->kv_cache_dtype;
    nlohmann::json r = serving::serving_report(
        serving::load_serving_model(sa->model), w, hardware::load_profile(sa->hardware),
        sa->table.empty() ? serving::default_table() : std::filesystem::path(sa->table), sa->allow_oversubscribe);
    if (carbon) serving::add_carbon(r, *carbon);
    write_output(sa->out, [&](std::ostream& os) {
      os << (sa->format == "json" ? r.dump(1) + "\n" : serving::serving_report_text(r));
    });
  });
}

}  // namespace irene::cli
