// irene hardware [NAME|FILE]        the built-in accelerator profiles, or one (datasheet facts, sources)
// irene serving MODEL --hardware H100 --max-num-seqs 8 [--prompt P --output N --task T --tensor-parallel G
//                    --expert-parallel E --data-parallel D]
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
#include "irene/serving/request.hpp"

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
    serving::ServingRequest r;
    std::string format = "text", out = "-";
  };
  auto sa = std::make_shared<ServeArgs>();
  auto* sv = app.add_subcommand(
      "serving",
      "Energy of serving a model with continuous batching on a named GPU: per generated token and per request, "
      "mean power, inter-token latency, throughput, by module kind (predictor fitted on measured serving runs)");
  // The options of serving/request.hpp's table (Python and the HTTP API read the same one).
  add_options(sv, sa->r, serving::serving_options(), false);
  sv->get_option("MODEL")->required();
  sv->add_option("--format", sa->format, "text | json")->check(CLI::IsMember({"text", "json"}));
  sv->add_option("-o,--output-file", sa->out, "output file ('-' = standard output, the default)");
  sv->callback([sa] {
    const nlohmann::json r = serving::serving_answer(sa->r);
    write_output(sa->out, [&](std::ostream& os) {
      os << (sa->format == "json" ? r.dump(1) + "\n" : serving::serving_answer_text(r));
    });
  });
}

}  // namespace irene::cli
