#include "irene/predict/evaluate.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <map>
#include <unordered_map>

#include "irene/core/error.hpp"

namespace irene::predict {

namespace {

// A node's id with its class part lower-cased. The reference implementation (lib/tree_node.py)
// lower-cases every instance_type it reads ("BertModel" -> "bertmodel") and writes it back so in
// predict.py's output; irene recomputes ids from scope and class (make_node_id: "scope:Class#k"),
// so a tree the reference wrote has the ids of gold with the class part in lower case.
std::string class_folded_id(const Node& n) {
  std::string id = n.id;
  const std::size_t start = (n.scope.empty() ? 4 : n.scope.size()) + 1;  // after "scope:" ("root:" for "")
  for (std::size_t i = start; i < start + n.class_name.size() && i < id.size(); ++i)
    id[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(id[i])));
  return id;
}

// The nodes of `pred` by the id of their gold node: exact ids, or else, when that fails and every
// node matches one to one with the class part folded (a file the reference wrote), those.
std::unordered_map<std::string, const Node*> match_nodes(const Tree& g, const Tree& p) {
  std::unordered_map<std::string, const Node*> exact;
  for (const auto& n : p.nodes) exact.emplace(n.id, &n);
  auto all_found = [&](const auto& map, auto key) {
    if (map.size() != g.nodes.size() || p.nodes.size() != g.nodes.size()) return false;
    for (const auto& n : g.nodes)
      if (!map.count(key(n))) return false;
    return true;
  };
  if (all_found(exact, [](const Node& n) { return n.id; })) return exact;
  std::unordered_map<std::string, const Node*> folded;
  for (const auto& n : p.nodes) folded.emplace(class_folded_id(n), &n);
  std::unordered_map<std::string, int> gold_folded;
  for (const auto& n : g.nodes) gold_folded.emplace(class_folded_id(n), 0);
  if (gold_folded.size() == g.nodes.size() && all_found(folded, class_folded_id)) {
    std::unordered_map<std::string, const Node*> by_gold_id;
    for (const auto& n : g.nodes) by_gold_id.emplace(n.id, folded.at(class_folded_id(n)));
    return by_gold_id;
  }
  return exact;
}

}  // namespace

LevelErrors evaluate_trees(const std::vector<Tree>& gold, const std::vector<Tree>& pred, const std::string& gold_name,
                           const std::string& pred_name, const UsablePolicy* skip) {
  auto index = [](const std::vector<Tree>& trees, const std::string& name) {
    std::map<std::string, const Tree*> by_key;
    for (const auto& t : trees)
      if (!by_key.emplace(t.key(), &t).second)
        throw Error(fmt::format("{}: tree {} appears twice", name, t.key()));
    return by_key;
  };
  const auto gold_trees = index(gold, gold_name);
  const auto pred_trees = index(pred, pred_name);
  for (const auto& [key, t] : pred_trees)
    if (!gold_trees.count(key))
      throw Error(fmt::format("{}: tree {} is not in {}", pred_name, key, gold_name));
  LevelErrorSum errors;
  for (const auto& [key, g] : gold_trees) {
    auto it = pred_trees.find(key);
    if (it == pred_trees.end()) {
      const std::string reason = fmt::format("no predicted tree in {}", pred_name);
      if (skip) {
        usable_or_skip(*g, [&](const Tree&) { return reason; }, *skip);  // a notice, or an Error when strict
        continue;
      }
      throw Error(fmt::format("{}: tree {} has no prediction in {}", gold_name, key, pred_name));
    }
    const Tree& p = *it->second;
    const std::unordered_map<std::string, const Node*> pred_nodes = match_nodes(*g, p);
    if (pred_nodes.size() != g->nodes.size() || p.nodes.size() != g->nodes.size()) {
      // Report the first id that does not match.
      std::unordered_map<std::string, int> gold_ids;
      for (const auto& n : g->nodes) gold_ids.emplace(n.id, 0);
      for (const auto& n : p.nodes)
        if (!gold_ids.count(n.id))
          throw Error(fmt::format("{}: tree {}: node id '{}' is not in {} (mismatched ids)", pred_name, key, n.id, gold_name));
    }
    for (const auto& n : g->nodes) {
      auto pn = pred_nodes.find(n.id);
      if (pn == pred_nodes.end())
        throw Error(fmt::format("{}: tree {}: node id '{}' has no match in {} (mismatched ids)", gold_name, key, n.id, pred_name));
      if (!n.ground_truth_energy_j || !(*n.ground_truth_energy_j > 0)) continue;
      if (!pn->second->predicted_energy_j)
        throw Error(fmt::format("{}: tree {}: node '{}' has no predicted energy", pred_name, key, n.id));
      errors.add(n.type, *pn->second->predicted_energy_j, *n.ground_truth_energy_j);
    }
  }
  if (errors.nodes() == 0)
    throw Error(fmt::format("{}: no node has a ground-truth energy to evaluate against", gold_name));
  return errors.result();
}

}  // namespace irene::predict
