#include "irene/data/merge.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"

namespace irene {

namespace fs = std::filesystem;

std::string tree_hardware(const Tree& tree) {
  for (const char* key : {"hardware", "device"})
    if (auto it = tree.provenance.find(key); it != tree.provenance.end() && !it->second.empty()) return it->second;
  return "";
}

namespace {

// The median of values (sorted in place; an even count: the mean of the middle two).
double median_of(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Standard deviation / mean of values (population), 0 for fewer than two or a zero mean.
double relative_spread(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  if (mean == 0) return 0;
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  return std::sqrt(var / static_cast<double>(v.size())) / std::abs(mean);
}

struct Measured {
  Tree tree;
  std::string where;  // FILE:LINE
  std::size_t input;  // index of its file among the inputs
};

// One tree from its repeated measurements (same structure, checked): node by node, the median
// of every measured value; `repeats` and `times_repeat_spread` added.
Tree median_tree(const std::vector<Measured>& repeats) {
  const Measured& first = repeats.front();
  for (std::size_t r = 1; r < repeats.size(); ++r) {
    const Tree& t = repeats[r].tree;
    if (t.nodes.size() != first.tree.nodes.size())
      throw Error(fmt::format("{}: tree {} has {} nodes, its repeat in {} has {}: repeats must be the same tree",
                              repeats[r].where, t.key(), t.nodes.size(), first.where, first.tree.nodes.size()));
    for (std::size_t i = 0; i < t.nodes.size(); ++i)
      if (t.nodes[i].id != first.tree.nodes[i].id)
        throw Error(fmt::format("{}: tree {}: node {} is '{}', in its repeat in {} '{}': repeats must be the same tree",
                                repeats[r].where, t.key(), i, t.nodes[i].id, first.where, first.tree.nodes[i].id));
  }
  Tree out = first.tree;
  std::vector<double> values;
  for (std::size_t i = 0; i < out.nodes.size(); ++i) {
    Node& n = out.nodes[i];
    values.clear();
    for (const auto& m : repeats)
      if (m.tree.nodes[i].ground_truth_energy_j) values.push_back(*m.tree.nodes[i].ground_truth_energy_j);
    if (!values.empty()) n.ground_truth_energy_j = median_of(values);
    std::map<std::string, std::vector<double>> by_name;
    for (const auto& m : repeats)
      for (const auto& [k, v] : m.tree.nodes[i].resources)
        if (k != "repeats" && k != "times_repeat_spread") by_name[k].push_back(v);
    n.resources.clear();
    for (auto& [k, v] : by_name) {
      if (k == "times_mean") n.resources["times_repeat_spread"] = relative_spread(v);
      n.resources[k] = median_of(v);
    }
    if (auto it = by_name.find("times_mean"); it != by_name.end())
      n.resources["repeats"] = static_cast<double>(it->second.size());
    else if (!values.empty())
      n.resources["repeats"] = static_cast<double>(values.size());
  }
  std::string places;
  for (const auto& m : repeats) places += (places.empty() ? "" : ", ") + m.where;
  out.provenance["repeats"] =
      fmt::format("{} measurements of this tree ({}); every node's values are their median", repeats.size(), places);
  return out;
}

}  // namespace

MergeSummary merge_tree_files(const std::vector<fs::path>& inputs, const fs::path& output, const MergeOptions& options) {
  if (inputs.empty()) throw Error("data merge: give at least one trees file");
  for (const auto& in : inputs) {
    check_input_file(in, "a JSONL trees file");
    std::error_code ec;
    if (in != "-" && output != "-" && fs::exists(output, ec) && fs::equivalent(in, output, ec))
      throw file_error(output, 0, "is also an input: write the merged trees to another file");
  }
  MergeSummary s;
  std::map<std::string, std::string> seen;       // key -> "FILE:LINE"
  std::map<std::string, std::string> hardware;   // hardware -> first "FILE:LINE"
  const auto check_hardware = [&](const Tree& t, const std::string& where) {
    const std::string hw = tree_hardware(t);
    if (hardware.emplace(hw, where).second) s.hardware.push_back(hw);
    if (hardware.size() > 1 && !options.allow_mixed) {
      std::vector<std::string> lines;
      for (const auto& h : s.hardware) lines.push_back(fmt::format("'{}' ({})", h.empty() ? "unknown" : h, hardware.at(h)));
      throw Error(fmt::format("trees measured on different hardware: {}; a predictor trained on them mixes machines "
                              "(--allow-mixed merges them anyway)",
                              fmt::join(lines, " and ")));
    }
  };
  if (options.median) {
    std::vector<std::vector<Measured>> groups;
    std::map<std::string, std::size_t> group_of;  // key -> index into groups
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      JsonlReader reader(inputs[i]);
      Tree t;
      while (reader.next(t)) {
        std::string where = fmt::format("{}:{}", inputs[i].string(), reader.line());
        check_hardware(t, where);
        auto [it, fresh] = group_of.emplace(t.key(), groups.size());
        if (fresh) groups.emplace_back();
        auto& g = groups[it->second];
        for (const auto& m : g)
          if (m.input == i)
            throw Error(fmt::format("{}: tree {} is already in {}: one pass measures each tree once", where, t.key(),
                                    m.where));
        g.push_back({std::move(t), std::move(where), i});
      }
      ++s.files;
    }
    if (groups.empty()) throw Error("data merge: the inputs hold no trees");
    std::vector<Tree> trees;
    trees.reserve(groups.size());
    for (auto& g : groups) {
      trees.push_back(g.size() == 1 ? std::move(g.front().tree) : median_tree(g));
      if (g.size() > 1) ++s.repeated;
      g.clear();
    }
    write_output(output, [&](std::ostream& out) {
      for (const auto& t : trees) write_tree_jsonl(out, t);
    });
    s.trees = static_cast<int>(trees.size());
    return s;
  }
  write_output(output, [&](std::ostream& out) {
    for (const auto& in : inputs) {
      JsonlReader reader(in);
      Tree t;
      while (reader.next(t)) {
        const std::string where = fmt::format("{}:{}", in.string(), reader.line());
        auto [it, fresh] = seen.emplace(t.key(), where);
        check_hardware(t, where);
        if (!fresh)
          throw Error(fmt::format("{}: tree {} is already in {}: a dataset holds each tree once (repeated passes of "
                                  "one collection: --median)",
                                  where, t.key(), it->second));
        write_tree_jsonl(out, t);
        ++s.trees;
      }
      ++s.files;
    }
    if (s.trees == 0) throw Error("data merge: the inputs hold no trees");
  });
  return s;
}

}  // namespace irene
