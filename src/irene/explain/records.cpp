#include "irene/explain/records.hpp"
#include "irene/explain/rests_on.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>

#include "irene/explain/explain.hpp"

namespace irene::explain {

using nlohmann::json;

const std::vector<std::string>& record_columns() {
  static const std::vector<std::string> columns = {
      "model_name", "batch_size",  "seq_len",         "id",        "parent_id",      "scope",
      "class_name", "type",        "depth",           "kind",      "num_parameters", "flops_mflop",
      "mem_mib",    "energy_j",    "low_j",           "high_j",    "measured_j",     "share_of_parent",
      "share_of_model", "attributed_j", "stand_in", "own_ops", "own_ops_j", "own_ops_share_of_parent",
      "own_ops_attributed_j"};
  return columns;
}

std::string relative_name(const Tree& t, const Node& n) {
  if (n.parent < 0) return t.display_name();
  const std::string& ps = t.nodes[n.parent].scope;
  if (n.scope == ps) {  // MatMul / Softmax leaves of an attention: tell repeated ones apart
    const auto hash = n.id.rfind('#');
    return hash == std::string::npos ? "" : n.id.substr(hash);
  }
  if (!ps.empty() && n.scope.rfind(ps + ".", 0) == 0) return n.scope.substr(ps.size() + 1);
  return n.scope;
}

namespace {

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

// The explanation when the tree has energies; nullopt for a bare tree.
std::optional<Explanation> explanation_of(const Tree& tree) {
  if (tree.nodes.empty()) return std::nullopt;
  if (!tree.root().predicted_energy_j && !tree.root().ground_truth_energy_j) return std::nullopt;
  ExplainOptions o;
  o.top = 0;
  return explain_tree(tree, o);
}

}  // namespace

json node_records(const Tree& tree) {
  const auto ex = explanation_of(tree);
  const auto kinds = module_kinds(tree);
  json nodes = json::array();
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    const Node& n = tree.nodes[i];
    json r;
    r["model_name"] = tree.model_name;
    r["batch_size"] = tree.batch_size;
    r["seq_len"] = tree.seq_len;
    r["id"] = n.id;
    r["parent_id"] = n.parent >= 0 ? tree.nodes[n.parent].id : std::string();
    r["scope"] = n.scope;
    r["class_name"] = n.class_name;
    r["type"] = std::string(to_string(n.type));
    r["depth"] = n.depth;
    r["kind"] = std::string(to_string(kinds[i]));
    r["num_parameters"] = n.num_parameters;
    r["flops_mflop"] = n.flops_mflop;
    r["mem_mib"] = n.mem_mib;
    r["stand_in"] = n.stand_in.empty() ? json(nullptr) : json(n.stand_in);
    if (ex) {
      const auto& x = ex->nodes[i];
      r["energy_j"] = x.own.j;
      r["low_j"] = x.own.interval ? json(x.own.interval->low_j) : json(nullptr);
      r["high_j"] = x.own.interval ? json(x.own.interval->high_j) : json(nullptr);
      r["measured_j"] = opt(n.ground_truth_energy_j);
      r["share_of_parent"] = x.share_of_parent;
      r["share_of_model"] = x.share_of_model;
      r["attributed_j"] = x.attributed.j;
      if (x.own_operations) {
        r["own_ops"] = x.own_operations->ops;
        r["own_ops_j"] = x.own_operations->energy.j;
        r["own_ops_share_of_parent"] = x.own_operations->share_of_parent;
        r["own_ops_attributed_j"] = x.own_operations->attributed.j;
      } else {
        for (const char* k : {"own_ops", "own_ops_j", "own_ops_share_of_parent", "own_ops_attributed_j"}) r[k] = nullptr;
      }
    } else {
      for (const char* k : {"energy_j", "low_j", "high_j", "share_of_parent", "share_of_model", "attributed_j", "own_ops",
                            "own_ops_j", "own_ops_share_of_parent", "own_ops_attributed_j"})
        r[k] = nullptr;
      r["measured_j"] = opt(n.ground_truth_energy_j);
    }
    nodes.push_back(std::move(r));
  }
  return nodes;
}

json tree_summary(const Tree& tree) {
  json j;
  j["model_name"] = tree.model_name;
  j["overrides"] = overrides_json(tree.overrides());
  j["batch_size"] = tree.batch_size;
  j["seq_len"] = tree.seq_len;
  j["phase"] = tree.phase;
  j["past_len"] = tree.past_len;
  j["dtype"] = tree.dtype;
  j["attention"] = tree.attention;
  j["weights"] = tree.weights.empty() ? tree.dtype : tree.weights;
  j["kv_cache_dtype"] = tree.kv_cache_dtype.empty() ? tree.dtype : tree.kv_cache_dtype;
  if (auto it = tree.provenance.find("config_torch_dtype"); it != tree.provenance.end())
    j["config_torch_dtype"] = it->second;
  if (auto it = tree.provenance.find("config_quantization"); it != tree.provenance.end())
    j["config_quantization"] = it->second;
  j["stand_ins"] = stand_ins_json(tree);
  const Node& root = tree.root();
  j["num_parameters"] = root.num_parameters;
  j["flops_mflop"] = root.flops_mflop;
  j["mem_mib"] = root.mem_mib;
  j["nodes"] = node_records(tree);
  const json& r = j["nodes"][0];
  for (const char* k : {"energy_j", "low_j", "high_j", "measured_j"}) j[k] = r[k];
  if (auto it = tree.provenance.find("predicted_for"); it != tree.provenance.end()) j["hardware"] = it->second;
  if (auto r = rests_on_of(tree); !r.is_null()) j["rests_on"] = std::move(r);
  j["units"] = {{"energy", "joules per forward pass"}, {"flops", "MFLOP"}, {"mem", "MiB"}};
  return j;
}

namespace {

std::string csv_field(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return csv_text(v.get<std::string>());
  if (v.is_number_float()) return fmt::format("{:.17g}", v.get<double>());
  return csv_text(v.dump());
}

}  // namespace

std::string csv_text(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void write_records_csv_header(std::ostream& out) {
  for (const auto& c : record_columns()) out << c << ',';
  out << "rests_on\n";
}

void write_records_csv_rows(std::ostream& out, const Tree& tree) {
  const auto& cols = record_columns();
  const std::string rests_on = csv_text(rests_on_line(rests_on_of(tree)));
  for (const auto& r : node_records(tree)) {
    for (const auto& c : cols) out << csv_field(r[c]) << ',';
    out << rests_on << '\n';
  }
}

void write_records_csv(std::ostream& out, const std::vector<Tree>& trees) {
  write_records_csv_header(out);
  for (const auto& t : trees) write_records_csv_rows(out, t);
}

}  // namespace irene::explain
