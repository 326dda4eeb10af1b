// irene tree MODEL --batch B --seq S [--phase decode --past P] [--dtype D] [--attention A] [--head H]
//            [--format text|jsonl] [--set key=value] [-o FILE]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/units.hpp"

namespace irene::cli {

namespace {

std::string with_commas(std::int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

void print_text(std::ostream& out, const Tree& t, int depth) {
  out << fmt::format("{}  {}\n", t.display_name(), describe_pass(t));
  if (auto it = t.provenance.find("config_torch_dtype"); it != t.provenance.end() && it->second != t.dtype)
    out << fmt::format("(the config's torch_dtype is {}; counted as {}: --dtype {} counts it)\n", it->second, t.dtype,
                       it->second);
  if (auto it = t.provenance.find("config_quantization"); it != t.provenance.end())
    out << (t.weights == it->second
                ? fmt::format("(weights {} from the config's quantization_config: --weights same counts them in {})\n",
                              it->second, t.dtype)
                : fmt::format("(the config's quantization_config is {}; counted as {}: --weights {} counts it)\n",
                              it->second, t.weights.empty() ? t.dtype : t.weights, it->second));
  std::size_t width = 4;
  std::vector<std::string> labels;
  for (const auto& n : t.nodes) {
    std::string name = explain::relative_name(t, n);
    std::string label = std::string(2 * n.depth, ' ') + (name.empty() ? "" : name + " ") + "(" + n.class_name + ")";
    width = std::max(width, label.size());
    labels.push_back(std::move(label));
  }
  out << fmt::format("{:<{}}  {:>10}  {:>13}  {:>11}\n", "node", width, "parameters", "FLOPs", "memory");
  int modules = 0, leaves = 0;
  for (std::size_t i = 0; i < t.nodes.size(); ++i) {
    const Node& n = t.nodes[i];
    (n.type == NodeType::ml ? leaves : modules) += n.type == NodeType::model ? 0 : 1;
    if (depth >= 0 && n.depth > depth) continue;
    out << fmt::format("{:<{}}  {:>10}  {:>13}  {:>11}\n", labels[i], width,
                       explain::count_text(static_cast<double>(n.num_parameters)), explain::mflop_text(n.flops_mflop),
                       explain::mib_text(n.mem_mib));
  }
  if (depth >= 0) out << fmt::format("(nodes deeper than {} not shown; --depth -1 shows all)\n", depth);
  const Node& r = t.root();
  // A mixture of experts: the parameters one token reads, beside the total.
  const std::int64_t active = active_parameters(t);
  const std::string params = active == r.num_parameters
                                 ? with_commas(r.num_parameters)
                                 : fmt::format("{} ({} active per token)", with_commas(r.num_parameters),
                                               with_commas(active));
  out << fmt::format("total: {} nodes ({} modules, {} ML primitives); {} parameters; {} ({:.6f} MFLOP); {} ({:.6f} MiB)\n",
                     t.nodes.size(), modules, leaves, params, explain::mflop_text(r.flops_mflop), r.flops_mflop,
                     explain::mib_text(r.mem_mib), r.mem_mib);
}

}  // namespace

void register_tree(CLI::App& app) {
  struct Args {
    std::string model;
    std::string batch = std::to_string(kDefaultBatch);
    std::string seq;  // "" = 1 for a decode step, kDefaultSeq otherwise
    PassArgs pass;
    std::string format = "text";
    std::string out = "-";
    std::vector<std::string> sets;
    bool list = false;
    int depth = -1;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "tree", "Print the model tree of MODEL (a built-in name or a config.json) for one batch size and "
              "sequence length, with parameters, MFLOP and MiB per node");
  cmd->add_option("MODEL", a->model, "built-in model name (see --list) or path to a Hugging Face config.json");
  cmd->add_option("--batch", a->batch, "batch size, a positive integer (default 8)");
  cmd->add_option("--seq", a->seq,
                  "sequence length in tokens, a positive integer (default 128; 1, the new token, with --phase decode)");
  add_pass_options(cmd, a->pass);
  cmd->add_option("--format", a->format,
                  "text (indented tree), jsonl (IrEne JSONL record) or csv (one row per node, the columns of "
                  "irene.tree in Python)")
      ->check(CLI::IsMember({"text", "jsonl", "csv"}));
  cmd->add_option("--set", a->sets, "override a config size, e.g. --set num_layers=6 (repeatable)");
  cmd->add_option("-o,--output", a->out, "output file ('-' = standard output, the default)");
  cmd->add_flag("--list", a->list, "list the built-in models and the supported model types");
  cmd->add_option("--depth", a->depth, "text: show nodes down to this depth (default -1: all)");
  cmd->callback([a] {
    if (a->list) {
      std::cout << "built-in models:\n";
      for (const auto& n : builtin_model_names()) std::cout << "  " << n << '\n';
      std::cout << "supported model_types:";
      for (const auto& t : supported_model_types()) std::cout << ' ' << t;
      std::cout << '\n';
      return;
    }
    if (a->model.empty()) throw Error("tree: MODEL is required (a built-in name, see 'irene tree --list', or a config.json)");
    const int batch = parse_positive_int(a->batch, "--batch");
    const BuildOptions options = build_options(a->pass);
    const int seq = pass_seq(a->seq, options);
    const Tree tree = build_tree(explain::load_model(a->model, a->sets), batch, seq, options);
    write_output(a->out, [&](std::ostream& os) {
      if (a->format == "jsonl")
        write_tree_jsonl(os, tree);
      else if (a->format == "csv")
        explain::write_records_csv(os, {tree});
      else
        print_text(os, tree, a->depth);
    });
  });
}

}  // namespace irene::cli
