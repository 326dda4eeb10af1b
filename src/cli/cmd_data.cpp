// irene data import DIR -o trees.jsonl   the published IrEne CSV dataset as trees
// irene data check DIR                   computed counts vs every row of the dataset
// irene data merge A.jsonl B.jsonl ... -o all.jsonl   join shards of a collection
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <filesystem>
#include <memory>
#include <vector>

#include "commands.hpp"
#include "irene/core/error.hpp"
#include "irene/data/dataset.hpp"
#include "irene/data/merge.hpp"
#include "irene/serving/crossval.hpp"

namespace irene::cli {

void register_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Datasets: import the published IrEne CSV folders, check them, merge trees files");
  data->require_subcommand(1);

  struct ImportArgs {
    std::string dir;
    std::string out;
    bool computed = false;
    bool skip_incomplete = false;  // the default now; the flag stays for older scripts
    bool keep_incomplete = false;
    bool keep_other_leaves = false;
    bool all = false;
  };
  auto ia = std::make_shared<ImportArgs>();
  auto* imp = data->add_subcommand(
      "import",
      "Turn one device folder of the CSV dataset into one tree per (model, batch, seq), built from the "
      "architecture, with each row's features and energy_mean (ground truth, joules) on its node");
  imp->add_option("DIR", ia->dir,
                  "device folder, e.g. ../shared/irene-data/device_1; or a table of measured serving runs (CSV, "
                  "../shared/llm-energy/mlenergy-v3-llm.csv), written as one JSON line per run")
      ->required();
  imp->add_option("-o,--output", ia->out, "output JSONL file ('-' = standard output)")->required();
  imp->add_flag("--computed-features", ia->computed,
                "keep the counted flops/mem_bytes instead of the CSV's (they agree within 0.5%)");
  auto* keep_inc = imp->add_flag(
      "--keep-incomplete", ia->keep_incomplete,
      "also write configurations that lack a whole level (no model row, no module rows, ...; device_1's "
      "openai-gpt/32/128): irene's train and crossval skip them, the reference implementation stops on them "
      "(KeyError: 'cpu')");
  imp->add_flag(
      "--keep-other-leaves", ia->keep_other_leaves,
      "also write models with leaves outside the reference implementation's seven ML-level operations "
      "(embedding, layernorm, linear, tanh, conv1d, softmax, matmul; sshleifer/tiny-ctrl's ReLU): irene "
      "predicts them, the reference stops on them (AssertionError: Found leaf node w/o energy prediction)");
  auto* all = imp->add_flag("--all", ia->all, "write every configuration: --keep-incomplete and --keep-other-leaves");
  imp->add_flag("--skip-incomplete", ia->skip_incomplete,
                "do not write configurations that lack a whole level (the default; kept for older scripts)")
      ->excludes(keep_inc)
      ->excludes(all);
  imp->footer(
      "By default the file is one the IrEne reference implementation (StonyBrookNLP/irene) reads as it is: "
      "train.py, predict.py and evaluate.py accept it. What is left out is listed in the summary; --all "
      "writes it too.");
  imp->callback([ia] {
    if (serving::is_serving_csv(ia->dir)) {  // a table of measured serving runs
      const std::string summary = serving::import_serving_csv(ia->dir, ia->out);
      (ia->out == "-" ? std::cerr : std::cout) << summary << "; written to " << ia->out << '\n';
      return;
    }
    ImportOptions options;
    options.csv_features = !ia->computed;
    options.skip_incomplete = !(ia->keep_incomplete || ia->all);
    options.skip_other_leaves = !(ia->keep_other_leaves || ia->all);
    const ImportSummary s = import_device_folder_to_jsonl(ia->dir, ia->out, options);
    std::ostream& os = ia->out == "-" ? std::cerr : std::cout;
    os << s.to_string();
    if (s.incomplete_skipped > 0 || s.other_leaves_trees_skipped > 0)
      os << fmt::format("  left out so that the reference implementation reads the file: {} incomplete, {} with other "
                        "leaves (--keep-incomplete, --keep-other-leaves or --all write them)\n",
                        s.incomplete_skipped, s.other_leaves_trees_skipped);
    os << "  written to " << ia->out << '\n';
  });

  struct CheckArgs {
    std::string dir;
    double tolerance = 0.005;
  };
  auto ca = std::make_shared<CheckArgs>();
  auto* chk = data->add_subcommand(
      "check", "Compare the flops/mem_bytes counted from the architecture with every row of a device folder");
  chk->add_option("DIR", ca->dir, "device folder")->required();
  chk->add_option("--tolerance", ca->tolerance, "largest relative difference accepted (default 0.005 = 0.5%)");
  struct MergeArgs {
    std::vector<std::string> inputs;
    std::string out;
    MergeOptions options;
  };
  auto ma = std::make_shared<MergeArgs>();
  auto* mrg = data->add_subcommand(
      "merge",
      "Join trees files (the shards of 'irene collect --shard K/N') into one; each tree once, one hardware; with "
      "--median, repeated passes of one collection into the median of their measurements");
  mrg->add_option("INPUTS", ma->inputs, "trees files (JSONL), in order")->required();
  mrg->add_option("-o,--output", ma->out, "merged JSONL file, written whole or not at all")->required();
  mrg->add_flag("--allow-mixed", ma->options.allow_mixed, "merge trees measured on different hardware");
  mrg->add_flag("--median", ma->options.median,
                "the inputs are repeated passes of one collection: a tree in several of them is written once, every "
                "node's measured values the median of its repeats (with repeats and times_repeat_spread)");
  mrg->callback([ma] {
    std::vector<std::filesystem::path> inputs(ma->inputs.begin(), ma->inputs.end());
    const MergeSummary s = merge_tree_files(inputs, ma->out, ma->options);
    std::cerr << fmt::format("irene: merged {} trees{} from {} files into {}; hardware: {}\n", s.trees,
                             ma->options.median ? fmt::format(" ({} measured more than once: median per node)", s.repeated)
                                                : std::string(),
                             s.files, ma->out,
                             s.hardware.size() == 1 ? (s.hardware[0].empty() ? "unknown" : s.hardware[0])
                                                    : fmt::format("{} different (--allow-mixed)", s.hardware.size()));
  });

  chk->callback([ca] {
    const FeatureCheck c = check_device_folder(ca->dir, ca->tolerance);
    std::cout << c.summary.to_string() << c.to_string();
    if (c.failures_total > 0)
      throw Error(fmt::format("{}: {} rows differ from the counted features by more than {}%", ca->dir,
                              c.failures_total, 100 * ca->tolerance));
  });
}

}  // namespace irene::cli
