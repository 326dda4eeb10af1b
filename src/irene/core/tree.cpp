#include "irene/core/tree.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "irene/core/error.hpp"

namespace irene {

std::string_view to_string(NodeType t) {
  switch (t) {
    case NodeType::model: return "model";
    case NodeType::module: return "module";
    case NodeType::ml: return "ml";
  }
  return "module";
}

NodeType node_type_from_string(std::string_view s) {
  if (s == "model") return NodeType::model;
  if (s == "module") return NodeType::module;
  if (s == "ml") return NodeType::ml;
  throw Error(fmt::format("unknown node type '{}' (expected model, module or ml)", s));
}

std::string make_node_id(std::string_view scope, std::string_view class_name, int ordinal,
                         bool repeated) {
  std::string id = fmt::format("{}:{}", scope.empty() ? std::string_view("root") : scope, class_name);
  if (repeated) id += fmt::format("#{}", ordinal);
  return id;
}

int Tree::find_id(std::string_view id) const {
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].id == id) return static_cast<int>(i);
  return -1;
}

int Tree::add_node(int parent_index, Node node) {
  if (parent_index < 0) {
    if (!nodes.empty()) throw Error("add_node: the tree already has a root");
    node.parent = -1;
    node.depth = 0;
  } else {
    if (parent_index >= static_cast<int>(nodes.size()))
      throw Error(fmt::format("add_node: no parent at index {}", parent_index));
    node.parent = parent_index;
    node.depth = nodes[parent_index].depth + 1;
  }
  node.children.clear();
  // Provisional id; repeated siblings get their "#k" from assign_ids(), once the tree is whole
  // (numbering them here would rescan every sibling on every insertion: quadratic).
  node.id = make_node_id(node.scope, node.class_name, 0, false);
  const int index = static_cast<int>(nodes.size());
  nodes.push_back(std::move(node));
  if (parent_index >= 0) nodes[parent_index].children.push_back(index);
  return index;
}

void Tree::assign_ids() {
  if (nodes.empty()) return;
  nodes[0].id = make_node_id(nodes[0].scope, nodes[0].class_name, 0, false);
  // Siblings sorted by (scope, class), stably: a run of equal ones is numbered in sibling order.
  // Indices only, no copied keys: a read tree may have 131,072 children under one node.
  std::vector<int> order;
  auto less = [&](int a, int b) {
    const Node& x = nodes[static_cast<std::size_t>(a)];
    const Node& y = nodes[static_cast<std::size_t>(b)];
    return x.scope != y.scope ? x.scope < y.scope : x.class_name < y.class_name;
  };
  auto same = [&](int a, int b) { return !less(a, b) && !less(b, a); };
  for (const auto& p : nodes) {
    if (p.children.empty()) continue;
    order.assign(p.children.begin(), p.children.end());
    std::stable_sort(order.begin(), order.end(), less);
    for (std::size_t i = 0; i < order.size();) {
      std::size_t j = i + 1;
      while (j < order.size() && same(order[i], order[j])) ++j;
      for (std::size_t k = i; k < j; ++k) {
        Node& c = nodes[static_cast<std::size_t>(order[k])];
        c.id = make_node_id(c.scope, c.class_name, static_cast<int>(k - i), j - i > 1);
      }
      i = j;
    }
  }
}

std::string Tree::key() const {
  std::string k = fmt::format("{}/{}/{}", model_name, batch_size, seq_len);
  if (is_decode()) k += fmt::format("/past{}", past_len);
  if (dtype != "float32") k += "/" + dtype;
  if (attention != "eager") k += "/" + attention;
  if (!weights.empty()) k += "/weights-" + weights;
  if (!kv_cache_dtype.empty()) k += "/kv-" + kv_cache_dtype;
  return k;
}

std::string Tree::overrides() const {
  auto it = provenance.find("overrides");
  return it == provenance.end() ? std::string() : it->second;
}

std::string Tree::display_name() const {
  const std::string o = overrides();
  return o.empty() ? model_name : fmt::format("{} [{}]", model_name, o);
}

}  // namespace irene
