#include "irene/core/jsonl.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <set>

#include "irene/core/error.hpp"

namespace irene {

using nlohmann::json;

namespace {

// Keys of a node object that are not resource features.
const std::set<std::string>& structural_keys() {
  static const std::set<std::string> keys = {
      "id", "scope", "parent_name", "level", "instance_type", "type", "num_parameters", "flops",
      "mem_bytes", "ground_truth_energy", "predicted_energy", "predicted_energy_low",
      "predicted_energy_high", "predicted_own_energy", "predicted_own_energy_low", "predicted_own_energy_high",
      "out_of_range", "attrs", "ops", "child_nodes_obj", "child_nodes"};
  return keys;
}

json node_to_json(const Tree& tree, int index) {
  const Node& n = tree.nodes[index];
  json j;
  j["id"] = n.id;
  j["scope"] = n.scope;
  j["parent_name"] = n.parent_scope;
  j["level"] = n.depth;
  j["instance_type"] = n.class_name;
  j["type"] = std::string(to_string(n.type));
  j["num_parameters"] = n.num_parameters;
  j["flops"] = n.flops_mflop;
  j["mem_bytes"] = n.mem_mib;
  for (const auto& [k, v] : n.resources) j[k] = v;
  if (n.ground_truth_energy_j) j["ground_truth_energy"] = *n.ground_truth_energy_j;
  if (n.predicted_energy_j) j["predicted_energy"] = *n.predicted_energy_j;
  if (n.predicted_interval) {
    j["predicted_energy_low"] = n.predicted_interval->low_j;
    j["predicted_energy_high"] = n.predicted_interval->high_j;
  }
  if (n.predicted_own_energy_j) j["predicted_own_energy"] = *n.predicted_own_energy_j;
  if (n.predicted_own_interval) {
    j["predicted_own_energy_low"] = n.predicted_own_interval->low_j;
    j["predicted_own_energy_high"] = n.predicted_own_interval->high_j;
  }
  if (!n.out_of_range.empty()) j["out_of_range"] = n.out_of_range;
  if (!n.attrs.empty()) j["attrs"] = n.attrs;
  if (!n.ops.empty()) {
    json ops = json::array();
    for (const auto& op : n.ops) ops.push_back({{"kind", op.kind}, {"shape", op.shape}});
    j["ops"] = std::move(ops);
  }
  json kids = json::array();
  json kid_scopes = json::array();
  for (int c : n.children) {
    kids.push_back(node_to_json(tree, c));
    kid_scopes.push_back(tree.nodes[c].scope);
  }
  j["child_nodes_obj"] = std::move(kids);
  j["child_nodes"] = std::move(kid_scopes);
  return j;
}

template <typename T>
T get_field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(fmt::format("{}: missing field '{}'", where, key));
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw Error(fmt::format("{}: field '{}' has the wrong type ({})", where, key, it->type_name()));
  }
}

void node_from_json(const json& j, Tree& tree, int parent, const std::string& where) {
  if (!j.is_object()) throw Error(fmt::format("{}: a tree node must be a JSON object", where));
  Node n;
  n.scope = get_field<std::string>(j, "scope", where);
  n.class_name = get_field<std::string>(j, "instance_type", where);
  n.type = [&] {
    try {
      return node_type_from_string(get_field<std::string>(j, "type", where));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: node '{}': {}", where, n.scope, e.what()));
    }
  }();
  n.num_parameters = j.contains("num_parameters") ? get_field<std::int64_t>(j, "num_parameters", where) : 0;
  n.flops_mflop = get_field<double>(j, "flops", where);
  n.mem_mib = get_field<double>(j, "mem_bytes", where);
  if (auto it = j.find("ground_truth_energy"); it != j.end() && !it->is_null())
    n.ground_truth_energy_j = get_field<double>(j, "ground_truth_energy", where);
  if (auto it = j.find("predicted_energy"); it != j.end() && !it->is_null())
    n.predicted_energy_j = get_field<double>(j, "predicted_energy", where);
  if (j.contains("predicted_energy_low") && j.contains("predicted_energy_high"))
    n.predicted_interval = Interval{get_field<double>(j, "predicted_energy_low", where),
                                    get_field<double>(j, "predicted_energy_high", where)};
  if (auto it = j.find("predicted_own_energy"); it != j.end() && !it->is_null())
    n.predicted_own_energy_j = get_field<double>(j, "predicted_own_energy", where);
  if (j.contains("predicted_own_energy_low") && j.contains("predicted_own_energy_high"))
    n.predicted_own_interval = Interval{get_field<double>(j, "predicted_own_energy_low", where),
                                        get_field<double>(j, "predicted_own_energy_high", where)};
  if (auto it = j.find("out_of_range"); it != j.end())
    n.out_of_range = get_field<std::vector<std::string>>(j, "out_of_range", where);
  if (auto it = j.find("attrs"); it != j.end()) {
    if (!it->is_object()) throw Error(fmt::format("{}: 'attrs' must be an object", where));
    for (const auto& [k, v] : it->items()) {
      if (!v.is_number_integer()) throw Error(fmt::format("{}: attrs.{} must be an integer", where, k));
      n.attrs[k] = v.get<std::int64_t>();
    }
  }
  if (auto it = j.find("ops"); it != j.end()) {
    if (!it->is_array()) throw Error(fmt::format("{}: 'ops' must be an array", where));
    for (const auto& o : *it) {
      Op op;
      op.kind = get_field<std::string>(o, "kind", where);
      op.shape = get_field<std::vector<std::int64_t>>(o, "shape", where);
      n.ops.push_back(std::move(op));
    }
  }
  const auto& structural = structural_keys();
  for (const auto& [k, v] : j.items()) {
    if (structural.count(k)) continue;
    if (v.is_number()) n.resources[k] = v.get<double>();
  }
  const std::string id = j.value("id", std::string());
  const int index = tree.add_node(parent, std::move(n));
  (void)id;  // ids are recomputed from scope/class/order so that they always follow one rule
  auto kids = j.find("child_nodes_obj");
  if (kids != j.end()) {
    if (!kids->is_array()) throw Error(fmt::format("{}: 'child_nodes_obj' must be an array", where));
    for (const auto& c : *kids) node_from_json(c, tree, index, where);
  }
}

}  // namespace

json tree_to_json(const Tree& tree) {
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  json j;
  j["model_name"] = tree.model_name;
  j["batch_size"] = tree.batch_size;
  j["seq_len"] = tree.seq_len;
  if (!tree.provenance.empty()) j["provenance"] = tree.provenance;
  j["frontend_tree"] = node_to_json(tree, 0);
  return j;
}

Tree tree_from_json(const json& record, const std::string& where) {
  if (!record.is_object()) throw Error(fmt::format("{}: a tree record must be a JSON object", where));
  Tree t;
  t.model_name = get_field<std::string>(record, "model_name", where);
  // The reference files store batch_size and seq_len as numbers; accept integral doubles too.
  auto positive = [&](const char* key) {
    const double v = get_field<double>(record, key, where);
    if (!(v >= 1) || v != static_cast<double>(static_cast<long>(v)))
      throw Error(fmt::format("{}: '{}' must be a positive integer, got {}", where, key, v));
    return static_cast<int>(v);
  };
  t.batch_size = positive("batch_size");
  t.seq_len = positive("seq_len");
  if (auto it = record.find("provenance"); it != record.end() && it->is_object())
    for (const auto& [k, v] : it->items()) t.provenance[k] = v.is_string() ? v.get<std::string>() : v.dump();
  auto root = record.find("frontend_tree");
  if (root == record.end()) throw Error(fmt::format("{}: missing field 'frontend_tree'", where));
  node_from_json(*root, t, -1, where);
  return t;
}

void write_tree_jsonl(std::ostream& out, const Tree& tree) { out << tree_to_json(tree).dump() << '\n'; }

JsonlReader::JsonlReader(const std::filesystem::path& path) : path_(path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw file_error(path, 0, "no such file");
  if (std::filesystem::is_directory(path, ec)) throw file_error(path, 0, "is a folder, expected a JSONL file");
  in_.open(path, std::ios::binary);
  if (!in_) throw file_error(path, 0, "cannot open for reading");
}

bool JsonlReader::next(Tree& tree) {
  std::string text;
  while (std::getline(in_, text)) {
    ++line_;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path_.string(), line_);
    json record;
    try {
      record = json::parse(text);
    } catch (const json::parse_error& e) {
      throw Error(fmt::format("{}: not valid JSON (byte {}): the line is malformed or truncated", where, e.byte));
    }
    tree = tree_from_json(record, where);
    return true;
  }
  return false;
}

std::vector<Tree> read_jsonl(const std::filesystem::path& path) {
  JsonlReader reader(path);
  std::vector<Tree> trees;
  Tree t;
  while (reader.next(t)) trees.push_back(std::move(t));
  if (trees.empty()) throw file_error(path, 0, "holds no trees");
  return trees;
}

void write_jsonl(const std::filesystem::path& path, const std::vector<Tree>& trees) {
  write_file_atomic(path, [&](std::ostream& out) {
    for (const auto& t : trees) write_tree_jsonl(out, t);
  });
}

}  // namespace irene
