// irene tree MODEL --batch B --seq S [--phase decode --past P] [--dtype D] [--attention A] [--head H]
//            [--format text|jsonl] [--set key=value] [-o FILE]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"

namespace irene::cli {

namespace {

std::string with_commas(std::int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

// The node's name relative to its parent: "layer.0" under "encoder", "" when equal.
std::string short_name(const Tree& t, const Node& n) {
  if (n.parent < 0) return t.model_name;
  const std::string& ps = t.nodes[n.parent].scope;
  if (n.scope == ps) {  // MatMul / Softmax leaves of an attention: tell repeated ones apart
    const auto hash = n.id.rfind('#');
    return hash == std::string::npos ? "" : n.id.substr(hash);
  }
  if (!ps.empty() && n.scope.rfind(ps + ".", 0) == 0) return n.scope.substr(ps.size() + 1);
  return n.scope;
}

void print_text(std::ostream& out, const Tree& t) {
  out << fmt::format("{}  {}\n", t.model_name, describe_pass(t));
  if (auto it = t.provenance.find("config_torch_dtype"); it != t.provenance.end() && it->second != t.dtype)
    out << fmt::format("(the config's torch_dtype is {}; counted as {}: --dtype {} counts it)\n", it->second, t.dtype,
                       it->second);
  std::size_t width = 4;
  std::vector<std::string> labels;
  for (const auto& n : t.nodes) {
    std::string name = short_name(t, n);
    std::string label = std::string(2 * n.depth, ' ') + (name.empty() ? "" : name + " ") + "(" + n.class_name + ")";
    width = std::max(width, label.size());
    labels.push_back(std::move(label));
  }
  out << fmt::format("{:<{}}  {:>13}  {:>14}  {:>12}\n", "node", width, "params", "MFLOP", "MiB");
  int modules = 0, leaves = 0;
  for (std::size_t i = 0; i < t.nodes.size(); ++i) {
    const Node& n = t.nodes[i];
    (n.type == NodeType::ml ? leaves : modules) += n.type == NodeType::model ? 0 : 1;
    out << fmt::format("{:<{}}  {:>13}  {:>14.6f}  {:>12.6f}\n", labels[i], width, with_commas(n.num_parameters),
                       n.flops_mflop, n.mem_mib);
  }
  const Node& r = t.root();
  out << fmt::format("total: {} nodes ({} modules, {} ML primitives); {} parameters; {:.6f} MFLOP; {:.6f} MiB\n",
                     t.nodes.size(), modules, leaves, with_commas(r.num_parameters), r.flops_mflop, r.mem_mib);
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
  cmd->add_option("--format", a->format, "text (indented tree) or jsonl (IrEne JSONL record)")
      ->check(CLI::IsMember({"text", "jsonl"}));
  cmd->add_option("--set", a->sets, "override a config size, e.g. --set num_layers=6 (repeatable)");
  cmd->add_option("-o,--output", a->out, "output file ('-' = standard output, the default)");
  cmd->add_flag("--list", a->list, "list the built-in models and the supported model types");
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
    ModelConfig config = load_model_config(a->model);
    std::vector<std::pair<std::string, std::string>> overrides;
    for (const auto& kv : a->sets) overrides.push_back(parse_config_override(kv));
    if (!overrides.empty()) set_config_values(config, overrides);
    const Tree tree = build_tree(config, batch, seq, options);
    write_output(a->out, [&](std::ostream& os) {
      if (a->format == "jsonl")
        write_tree_jsonl(os, tree);
      else
        print_text(os, tree);
    });
  });
}

}  // namespace irene::cli
