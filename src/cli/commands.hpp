// One register function per command group; both entry points (main.cpp: `irene`, and
// main_measure.cpp: `irene-measure`, the helper that links libtorch) build the same command line
// with run(). A command parses its options with CLI11, calls the libraries, and prints. No logic
// beyond that lives in src/cli.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "irene/core/error.hpp"
#include "irene/explain/source.hpp"

namespace irene {
struct Tree;
struct BuildOptions;
class Predictor;
}  // namespace irene

namespace irene::cli {

void register_version(CLI::App& app);
void register_sensors(CLI::App& app);  // cmd_sensors.cpp
void register_tree(CLI::App& app);     // cmd_tree.cpp
void register_data(CLI::App& app);     // cmd_data.cpp
void register_explain(CLI::App& app);  // cmd_explain.cpp: explain, compare, sweep, report, serve
void register_predict(CLI::App& app);  // cmd_predict.cpp: train, predict, evaluate, crossval
void register_serving(CLI::App& app);  // cmd_serving.cpp: hardware, serving
// cmd_measure.cpp (irene-measure only): profile, collect.
void register_measure(CLI::App& app);

// --carbon-intensity G (grams CO2e per kWh): none when empty; Error unless a number in 0..100000.
std::optional<double> parse_carbon_intensity(const std::string& text);

// The commands that execute models, for `irene --help` in a binary without libtorch: they are
// listed, and main.cpp hands them to irene-measure before parsing.
void register_measure_placeholders(CLI::App& app);

// The options that pick the pass of a tree, shared by every command that builds one (tree,
// predict, explain, compare, sweep, report, profile, collect): --phase, --past, --dtype,
// --attention, --head, --allow-long, as explain/source.hpp's PassText (any_pass_option and
// build_options there validate them).
using PassArgs = explain::PassText;
void add_pass_options(CLI::App* cmd, PassArgs& args, bool with_head = true);

// Registers one option of a table (explain/source.hpp: the same table Python reads its keyword
// arguments from) setting its field of `target`; `ranges`: the command takes ranges (the help says so).
template <class T>
void add_option(CLI::App* cmd, T& target, const explain::Option<T>& o, bool ranges) {
  using Kind = typename explain::Option<T>::Kind;
  const std::string& help = ranges && !o.range_help.empty() ? o.range_help : o.help;
  switch (o.kind) {
    case Kind::text: cmd->add_option(o.flags, o.text(target), help); break;
    case Kind::list: cmd->add_option(o.flags, o.list(target), help); break;
    case Kind::flag: cmd->add_flag(o.flags, o.flag(target), help); break;
    case Kind::integer: {
      auto* opt = cmd->add_option(o.flags, o.integer(target), help);
      if (o.capture_default) opt->capture_default_str();
      if (o.max >= o.min) opt->check(CLI::Range(o.min, o.max));
      break;
    }
  }
}
// Every option of a table, in its order.
template <class T>
void add_options(CLI::App* cmd, T& target, const std::vector<explain::Option<T>>& options, bool ranges) {
  for (const auto& o : options) add_option(cmd, target, o, ranges);
}
// The options of a table on a command that has options of its own: each registered under those of
// its names (flags) the command does not have yet; one left with none (a positional, or every name
// taken) is not registered, and its keyword is returned (the command's own option then stands
// for it).
template <class T>
std::vector<std::string> add_options_not_taken(CLI::App* cmd, T& target, const std::vector<explain::Option<T>>& options) {
  std::vector<std::string> skipped;
  for (auto o : options) {
    std::string kept, rest = o.flags + ",";
    for (std::size_t c; (c = rest.find(',')) != std::string::npos; rest.erase(0, c + 1)) {
      const std::string name = rest.substr(0, c);
      if (name.rfind("-", 0) == 0 && !cmd->get_option_no_throw(name)) kept += (kept.empty() ? "" : ",") + name;
    }
    if (kept.empty()) {
      skipped.push_back(o.keyword);
      continue;
    }
    o.flags = kept;
    add_option(cmd, target, o, false);
  }
  return skipped;
}
// The option of a table with this keyword (Error when there is none).
template <class T>
const explain::Option<T>& option_named(const std::vector<explain::Option<T>>& options, const std::string& keyword) {
  for (const auto& o : options)
    if (o.keyword == keyword) return o;
  throw Error("no option " + keyword);
}

// `predict --profile`: measures the resource features of a tree on this machine (set by
// irene-measure; null in irene, which hands such a command to irene-measure).
using ProfileHook = std::function<void(Tree& tree, const Predictor& predictor)>;
void set_profile_hook(ProfileHook hook);
const ProfileHook& profile_hook();

// Builds the command line (with `register_measure_commands` for the measuring commands) and runs
// it: 0 on success, 1 with "irene: error: ..." on an irene::Error, CLI11's status on a usage error.
int run(int argc, char** argv, const std::function<void(CLI::App&)>& register_measure_commands);

// True when the command line names a command that executes models (profile, collect,
// predict --profile): `irene` hands it to irene-measure.
bool needs_measure_helper(int argc, char** argv);
// Replaces this process by irene-measure (beside the irene binary, or $IRENE_MEASURE) with the
// same arguments; returns only on failure, after printing one line that says how to get it.
int exec_measure_helper(int argc, char** argv);

}  // namespace irene::cli
