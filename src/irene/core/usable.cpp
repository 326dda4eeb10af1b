#include "irene/core/usable.hpp"

#include <fmt/format.h>

#include <iostream>

#include "irene/core/error.hpp"

namespace irene {

bool usable_or_skip(const Tree& tree, const TreeCheck& check, const UsablePolicy& policy,
                    std::vector<SkippedTree>* skipped) {
  const std::string reason = check(tree);
  if (reason.empty()) return true;
  if (policy.strict)
    throw Error(fmt::format("{}: tree {}: {} (--strict: unusable trees are errors)", policy.source, tree.key(), reason));
  if (!policy.quiet)
    std::cerr << fmt::format("irene: skipping {} of {}: {}\n", tree.key(), policy.source, reason);
  if (skipped) skipped->push_back({tree.key(), reason});
  return false;
}

std::vector<Tree> keep_usable(std::vector<Tree> trees, const TreeCheck& check, const UsablePolicy& policy,
                              std::vector<SkippedTree>* skipped) {
  std::vector<Tree> kept;
  std::vector<SkippedTree> out;
  const std::size_t total = trees.size();
  for (auto& t : trees) {
    std::string reason = check(t);
    if (reason.empty()) {
      kept.push_back(std::move(t));
      continue;
    }
    if (policy.strict)
      throw Error(fmt::format("{}: tree {}: {} (--strict: unusable trees are errors)", policy.source, t.key(), reason));
    out.push_back({t.key(), std::move(reason)});
  }
  if (kept.empty() && !out.empty())
    throw Error(fmt::format("{}: none of the {} trees can be used: {}: {}{}", policy.source, total, out[0].key,
                            out[0].reason, out.size() > 1 ? fmt::format(" (and {} more)", out.size() - 1) : ""));
  if (!policy.quiet) {
    constexpr std::size_t kShown = 10;
    for (std::size_t i = 0; i < out.size() && i < kShown; ++i)
      std::cerr << fmt::format("irene: skipping {} of {}: {}\n", out[i].key, policy.source, out[i].reason);
    if (out.size() > kShown)
      std::cerr << fmt::format("irene: skipping {} more trees of {} (--strict lists the first as an error)\n",
                               out.size() - kShown, policy.source);
  }
  if (skipped) skipped->insert(skipped->end(), out.begin(), out.end());
  return kept;
}

std::string check_measured_root(const Tree& tree) {
  if (tree.nodes.empty()) return "it has no nodes";
  const auto& e = tree.root().ground_truth_energy_j;
  if (!e || !(*e > 0)) return "no measured energy at its root (an incomplete measurement)";
  return "";
}

std::string check_energies(const Tree& tree) {
  if (tree.nodes.empty()) return "it has no nodes";
  if (!tree.root().predicted_energy_j && !tree.root().ground_truth_energy_j)
    return "neither a predicted nor a measured energy at its root (run irene predict, or pass --predictor)";
  return "";
}

}  // namespace irene
