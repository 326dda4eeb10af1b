#include "irene/core/jsonl.hpp"

#include <fmt/format.h>
#include <malloc.h>

#include <nlohmann/json.hpp>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <algorithm>
#include <exception>
#include <set>
#include <thread>
#include <type_traits>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/json_util.hpp"
#include "irene/core/limits.hpp"

namespace irene {

using nlohmann::json;

namespace {

// Keys of a node object that are not resource features.
const std::set<std::string>& structural_keys() {
  static const std::set<std::string> keys = {
      "id", "scope", "parent_name", "level", "instance_type", "type", "num_parameters", "flops",
      "mem_bytes", "ground_truth_energy", "predicted_energy", "predicted_energy_low",
      "predicted_energy_high", "predicted_own_energy", "predicted_own_energy_low", "predicted_own_energy_high",
      "out_of_range", "stand_in", "attrs", "ops", "child_nodes_obj", "child_nodes"};
  return keys;
}

json node_to_json(const Tree& tree, int index) {
  const Node& n = tree.nodes[index];
  json j;
  // Unique across a whole file (the reference implementation keys nodes by id over the file):
  // the tree's key, then the node's id in its tree. Readers recompute the in-tree id.
  j["id"] = tree.key() + "/" + n.id;
  j["scope"] = n.scope;
  j["parent_name"] = tree.parent_scope(index);
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
  if (!n.stand_in.empty()) j["stand_in"] = n.stand_in;
  if (n.predicted_own_energy_j) j["predicted_own_energy"] = *n.predicted_own_energy_j;
  if (n.predicted_own_interval) {
    j["predicted_own_energy_low"] = n.predicted_own_interval->low_j;
    j["predicted_own_energy_high"] = n.predicted_own_interval->high_j;
  }
  if (!n.out_of_range.empty()) j["out_of_range"] = n.out_of_range;
  if (!n.attrs.empty()) j["attrs"] = n.attrs;
  if (!n.ops.empty()) {
    json ops = json::array();
    for (const auto& op : n.ops) {
      json o = {{"kind", op.kind}, {"shape", op.shape}};
      if (op.kv_bytes != 0) o["kv_bytes"] = op.kv_bytes;
      ops.push_back(std::move(o));
    }
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
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) throw Error(fmt::format("{}: field '{}' must be a string, not {}", where, key, it->type_name()));
    return it->get<std::string>();
  } else {
    static_assert(std::is_same_v<T, double>);
    if (!it->is_number()) throw Error(fmt::format("{}: field '{}' must be a number, not {}", where, key, it->type_name()));
    const double v = it->get<double>();
    if (!std::isfinite(v)) throw Error(fmt::format("{}: field '{}' is not a finite number", where, key));
    return v;
  }
}

// An integer in [lo, hi]: a JSON integer, or a float with an integral value (the reference's
// files store some counts as floats). Anything else is an Error naming the field and the range.
std::int64_t int_value(const json& v, const std::string& what, std::int64_t lo, std::int64_t hi,
                       const std::string& where) {
  auto bad = [&] {
    return Error(fmt::format("{}: {} must be an integer in {}..{}, got {}", where, what, lo, hi, v.dump().substr(0, 40)));
  };
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(hi)) throw bad();
    const auto x = static_cast<std::int64_t>(u);
    if (x < lo) throw bad();
    return x;
  }
  if (v.is_number_integer()) {
    const auto x = v.get<std::int64_t>();
    if (x < lo || x > hi) throw bad();
    return x;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // Compare as doubles before any cast: a float outside the range never reaches static_cast.
    if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
      throw bad();
    return static_cast<std::int64_t>(d);
  }
  throw bad();
}

std::int64_t int_field(const json& j, const char* key, std::int64_t lo, std::int64_t hi, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(fmt::format("{}: missing field '{}'", where, key));
  return int_value(*it, fmt::format("field '{}'", key), lo, hi, where);
}

// One node's own fields (not its children).
Node node_fields(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(fmt::format("{}: a tree node must be a JSON object", where));
  Node n;
  n.scope = get_field<std::string>(j, "scope", where);
  n.class_name = get_field<std::string>(j, "instance_type", where);
  try {
    n.type = node_type_from_string(get_field<std::string>(j, "type", where));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: node '{}': {}", where, n.scope, e.what()));
  }
  n.num_parameters = j.contains("num_parameters") ? int_field(j, "num_parameters", 0, limits::kMaxCount, where) : 0;
  n.flops_mflop = get_field<double>(j, "flops", where);
  n.mem_mib = get_field<double>(j, "mem_bytes", where);
  if (auto it = j.find("ground_truth_energy"); it != j.end() && !it->is_null())
    n.ground_truth_energy_j = get_field<double>(j, "ground_truth_energy", where);
  if (auto it = j.find("predicted_energy"); it != j.end() && !it->is_null())
    n.predicted_energy_j = get_field<double>(j, "predicted_energy", where);
  if (j.contains("predicted_energy_low") && j.contains("predicted_energy_high"))
    n.predicted_interval = Interval{get_field<double>(j, "predicted_energy_low", where),
                                    get_field<double>(j, "predicted_energy_high", where)};
  if (j.contains("stand_in")) n.stand_in = get_field<std::string>(j, "stand_in", where);
  if (auto it = j.find("predicted_own_energy"); it != j.end() && !it->is_null())
    n.predicted_own_energy_j = get_field<double>(j, "predicted_own_energy", where);
  if (j.contains("predicted_own_energy_low") && j.contains("predicted_own_energy_high"))
    n.predicted_own_interval = Interval{get_field<double>(j, "predicted_own_energy_low", where),
                                        get_field<double>(j, "predicted_own_energy_high", where)};
  if (auto it = j.find("out_of_range"); it != j.end()) {
    if (!it->is_array()) throw Error(fmt::format("{}: field 'out_of_range' must be an array of strings", where));
    for (const auto& s : *it) {
      if (!s.is_string()) throw Error(fmt::format("{}: field 'out_of_range' must be an array of strings", where));
      n.out_of_range.push_back(s.get<std::string>());
    }
  }
  if (auto it = j.find("attrs"); it != j.end()) {
    if (!it->is_object()) throw Error(fmt::format("{}: 'attrs' must be an object", where));
    for (const auto& [k, v] : it->items())
      n.attrs[k] = int_value(v, "attrs." + k, -limits::kMaxCount, limits::kMaxCount, where);
  }
  if (auto it = j.find("ops"); it != j.end()) {
    if (!it->is_array()) throw Error(fmt::format("{}: 'ops' must be an array", where));
    for (const auto& o : *it) {
      if (!o.is_object()) throw Error(fmt::format("{}: an entry of 'ops' must be an object", where));
      Op op;
      op.kind = get_field<std::string>(o, "kind", where);
      auto shape = o.find("shape");
      if (shape == o.end() || !shape->is_array())
        throw Error(fmt::format("{}: op '{}': 'shape' must be an array of integers", where, op.kind));
      if (shape->size() > 16) throw Error(fmt::format("{}: op '{}': a shape of more than 16 dimensions", where, op.kind));
      for (const auto& d : *shape)
        op.shape.push_back(int_value(d, fmt::format("op '{}': a shape dimension", op.kind), 0, limits::kMaxCount, where));
      if (auto kv = o.find("kv_bytes"); kv != o.end())
        op.kv_bytes = static_cast<int>(int_value(*kv, fmt::format("op '{}': kv_bytes", op.kind), 1, 8, where));
      n.ops.push_back(std::move(op));
    }
  }
  const auto& structural = structural_keys();
  for (const auto& [k, v] : j.items()) {
    if (structural.count(k)) continue;
    if (v.is_number()) {
      const double x = v.get<double>();
      if (!std::isfinite(x)) throw Error(fmt::format("{}: field '{}' is not a finite number", where, k));
      n.resources[k] = x;
    }
  }
  return n;
}

// The whole tree under `root`, depth first, without recursion: a file cannot exhaust the stack.
void nodes_from_json(const json& root, Tree& tree, const std::string& where) {
  struct Pending {
    const json* node;
    int parent;
  };
  std::vector<Pending> stack{{&root, -1}};
  while (!stack.empty()) {
    const Pending p = stack.back();
    stack.pop_back();
    if (static_cast<std::int64_t>(tree.nodes.size()) >= limits::kMaxTreeNodes)
      throw Error(fmt::format("{}: more than {} nodes in one tree", where, limits::kMaxTreeNodes));
    const int index = tree.add_node(p.parent, node_fields(*p.node, where));
    if (tree.nodes[index].depth > limits::kMaxTreeDepth)
      throw Error(fmt::format("{}: the tree nests deeper than {} levels", where, limits::kMaxTreeDepth));
    auto kids = p.node->find("child_nodes_obj");
    if (kids == p.node->end()) continue;
    if (!kids->is_array()) throw Error(fmt::format("{}: 'child_nodes_obj' must be an array", where));
    // Pushed in reverse so that children are added in order (pre-order).
    for (auto it = kids->rbegin(); it != kids->rend(); ++it) stack.push_back({&*it, index});
  }
}

}  // namespace

json tree_to_json(const Tree& tree) {
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  json j;
  j["model_name"] = tree.model_name;
  j["batch_size"] = tree.batch_size;
  j["seq_len"] = tree.seq_len;
  // Written only when they differ from the defaults, so prefill float32 files keep their shape.
  if (tree.is_decode()) {
    j["phase"] = tree.phase;
    j["past_len"] = tree.past_len;
  }
  if (tree.dtype != "float32") j["dtype"] = tree.dtype;
  if (tree.attention != "eager") j["attention"] = tree.attention;
  if (!tree.weights.empty()) j["weights"] = tree.weights;
  if (!tree.kv_cache_dtype.empty()) j["kv_cache_dtype"] = tree.kv_cache_dtype;
  if (!tree.provenance.empty()) j["provenance"] = tree.provenance;
  j["frontend_tree"] = node_to_json(tree, 0);
  return j;
}

namespace {

// The record's own fields (not its nodes) into `t`.
void record_fields(const json& record, Tree& t, const std::string& where) {
  t.model_name = get_field<std::string>(record, "model_name", where);
  // The reference files store batch_size and seq_len as numbers; integral floats are accepted.
  t.batch_size = static_cast<int>(int_field(record, "batch_size", 1, limits::kMaxBatch, where));
  t.seq_len = static_cast<int>(int_field(record, "seq_len", 1, limits::kMaxSeq, where));
  if (record.contains("phase")) {
    t.phase = get_field<std::string>(record, "phase", where);
    if (t.phase != kPrefill && t.phase != kDecode)
      throw Error(fmt::format("{}: field 'phase' must be \"prefill\" or \"decode\", got '{}'", where, t.phase.substr(0, 40)));
  }
  if (record.contains("past_len")) t.past_len = static_cast<int>(int_field(record, "past_len", 0, limits::kMaxSeq, where));
  if (t.past_len > 0 && !t.is_decode()) throw Error(fmt::format("{}: 'past_len' is only for a decode step (phase \"decode\")", where));
  if (record.contains("dtype")) {
    t.dtype = get_field<std::string>(record, "dtype", where);
    if (t.dtype != "float32" && t.dtype != "float16" && t.dtype != "bfloat16")
      throw Error(fmt::format("{}: field 'dtype' must be float32, float16 or bfloat16, got '{}'", where, t.dtype.substr(0, 40)));
  }
  if (record.contains("attention")) {
    t.attention = get_field<std::string>(record, "attention", where);
    if (t.attention != "eager" && t.attention != "sdpa")
      throw Error(fmt::format("{}: field 'attention' must be eager or sdpa, got '{}'", where, t.attention.substr(0, 40)));
  }
  if (record.contains("weights")) {
    t.weights = get_field<std::string>(record, "weights", where);
    // Predictions written as JSON say "weights": their dtype when the weights are not quantized.
    if (t.weights == "float32" || t.weights == "float16" || t.weights == "bfloat16") t.weights.clear();
    if (!t.weights.empty() && t.weights != "fp8" && t.weights != "mxfp4" && t.weights != "int8" && t.weights != "int4")
      throw Error(fmt::format("{}: field 'weights' must be fp8, mxfp4, int8 or int4, got '{}'", where, t.weights.substr(0, 40)));
  }
  if (record.contains("kv_cache_dtype")) {
    t.kv_cache_dtype = get_field<std::string>(record, "kv_cache_dtype", where);
    // Predictions written as JSON say "kv_cache_dtype": their dtype when the cache is in it.
    if (t.kv_cache_dtype == t.dtype) t.kv_cache_dtype.clear();
    if (!t.kv_cache_dtype.empty() && t.kv_cache_dtype != "fp8" && t.kv_cache_dtype != "bfloat16" &&
        t.kv_cache_dtype != "float16" && t.kv_cache_dtype != "float32")
      throw Error(fmt::format("{}: field 'kv_cache_dtype' must be fp8, bfloat16, float16 or float32, got '{}'", where,
                              t.kv_cache_dtype.substr(0, 40)));
  }
  if (auto it = record.find("provenance"); it != record.end() && it->is_object())
    for (const auto& [k, v] : it->items()) t.provenance[k] = v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

Tree tree_from_json(const json& record, const std::string& where) {
  if (!record.is_object()) throw Error(fmt::format("{}: a tree record must be a JSON object", where));
  Tree t;
  record_fields(record, t, where);
  auto root = record.find("frontend_tree");
  if (root == record.end()) throw Error(fmt::format("{}: missing field 'frontend_tree'", where));
  nodes_from_json(*root, t, where);
  t.assign_ids();  // ids always follow one rule, whatever the file says
  return t;
}

void write_tree_jsonl(std::ostream& out, const Tree& tree) { out << tree_to_json(tree).dump() << '\n'; }

JsonlReader::JsonlReader(const std::filesystem::path& path) : path_(path) {
  check_input_file(path, "a JSONL file");
  if (path == "-") {
    in_ = &std::cin;
  } else {
    file_.open(path, std::ios::binary);
    if (!file_) throw file_error(path, 0, "cannot open for reading");
    in_ = &file_;
  }
}

JsonlReader::JsonlReader(std::istream& in, const std::string& name) : path_(name), in_(&in) {}

namespace {

// Reads one line of at most `max` bytes (without the newline); false at the end of the input.
bool read_line(std::istream& in, std::string& line, std::int64_t max, bool& too_long) {
  line.clear();
  too_long = false;
  std::streambuf* sb = in.rdbuf();
  bool any = false;
  for (;;) {
    const int c = sb->sbumpc();
    if (c == std::char_traits<char>::eof()) return any;
    any = true;
    if (c == '\n') return true;
    if (static_cast<std::int64_t>(line.size()) >= max) {
      too_long = true;
      return true;
    }
    line.push_back(static_cast<char>(c));
  }
}

}  // namespace

namespace {
constexpr std::size_t kTrimAfterLineBytes = std::size_t{1} << 20;
}  // namespace

bool JsonlReader::next_line(std::string& text) {
  bool too_long = false;
  while (read_line(*in_, text, limits::kMaxLineBytes, too_long)) {
    ++line_;
    if (too_long)
      throw Error(fmt::format("{}:{}: a line longer than {} bytes", path_.string(), line_, limits::kMaxLineBytes));
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    // Reading a long line grows `text` by doubling; the buffers it outgrew stay in the heap, as
    // large as the line, while the tree is parsed. Handing them back bounds a read at the line,
    // its tree and the process (bench/RESULTS.md, "Parsing memory").
    if (text.size() >= kTrimAfterLineBytes) ::malloc_trim(0);
    return true;
  }
  return false;
}

namespace {

// Builds a tree straight from the parser's events (nlohmann's SAX interface), never holding the
// line as a JSON document: memory is the tree itself plus, for each open node (at most
// kMaxTreeDepth), the few fields it keeps. Depth, node count and the values a node keeps are
// counted as they arrive and refused past their limits before anything grows; values irene does
// not read (unknown non-numeric fields, "child_nodes") are skipped without being stored.
class TreeSax {
 public:
  TreeSax(Tree& tree, const std::string& where) : tree_(tree), where_(where) {
    // Never reallocated: a keep frame points into the fields of the frame below it.
    frames_.reserve(limits::kMaxJsonDepth + 1);
  }

  bool null() { return scalar(json(nullptr)); }
  bool boolean(bool v) { return scalar(json(v)); }
  bool number_integer(json::number_integer_t v) { return scalar(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(json(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return scalar(json(v)); }
  bool string(std::string& v) { return scalar(json(std::move(v))); }
  bool binary(json::binary_t&) { return scalar(json()); }
  bool key(std::string& k) {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) { return open(true); }
  bool start_array(std::size_t) { return open(false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t byte, const std::string&, const nlohmann::detail::exception& e) {
    if (e.id >= 101 && e.id < 200)
      throw Error(fmt::format("{}: not valid JSON (byte {}): the line is malformed or truncated", where_, byte));
    throw Error(fmt::format("{}: not valid JSON: {}", where_, json_error_text(e)));
  }

  // After the parse: the tree, checked as tree_from_json checks it.
  void finish() {
    if (!is_object_) throw Error(fmt::format("{}: a tree record must be a JSON object", where_));
    record_fields(record_, tree_, where_);
    if (!has_root_) throw Error(fmt::format("{}: missing field 'frontend_tree'", where_));
    tree_.assign_ids();  // ids always follow one rule, whatever the file says
  }

 private:
  enum class Kind { record, node, children, keep, skip };
  struct Frame {
    Kind kind;
    int node = -1;           // node: its index in the tree; children: the owner's
    json* value = nullptr;   // keep: the container being filled
    json fields;             // node: the fields it keeps (until its object closes)
  };

  [[noreturn]] void fail(const std::string& what) const { throw Error(fmt::format("{}: {}", where_, what)); }

  // Counts one kept value of the innermost open node (or of the record).
  void count_kept() {
    if (++kept_ > limits::kMaxNodeValues)
      fail(fmt::format("a node (or the record) holds more than {} values", limits::kMaxNodeValues));
  }

  // Where a value that starts now goes: into a container being kept (returns it), or decided by
  // the key of a record or node frame.
  enum class Dest { keep, skip, root, children, field, not_object };
  Dest destination(bool is_object, bool is_array) {
    if (frames_.empty()) return is_object ? Dest::root : Dest::not_object;
    Frame& f = frames_.back();
    switch (f.kind) {
      case Kind::skip: return Dest::skip;
      case Kind::keep: return Dest::keep;
      case Kind::children:
        if (!is_object) fail("a tree node must be a JSON object");
        return Dest::root;
      case Kind::record:
        if (key_ == "frontend_tree") {
          if (!is_object) fail("a tree node must be a JSON object");
          if (has_root_) fail("field 'frontend_tree' appears twice");
          return Dest::root;
        }
        if (key_ == "model_name" || key_ == "batch_size" || key_ == "seq_len" || key_ == "phase" ||
            key_ == "past_len" || key_ == "dtype" || key_ == "attention" || key_ == "weights" || key_ == "kv_cache_dtype" || key_ == "provenance")
          return Dest::field;
        return Dest::skip;
      case Kind::node:
        if (key_ == "child_nodes_obj") {
          if (!is_array) fail("'child_nodes_obj' must be an array");
          return Dest::children;
        }
        if (key_ == "child_nodes") return Dest::skip;
        if (structural_keys().count(key_)) return Dest::field;
        return (is_object || is_array) ? Dest::skip : Dest::field;  // unknown: numbers only
    }
    return Dest::skip;
  }

  json* keep_slot() {
    count_kept();
    Frame& f = frames_.back();
    if (f.kind == Kind::keep) {
      if (f.value->is_array()) {
        f.value->push_back(nullptr);
        return &f.value->back();
      }
      return &(*f.value)[key_];
    }
    return &target_fields()[key_];
  }

  json& target_fields() {
    Frame& f = frames_.back();
    return f.kind == Kind::record ? record_ : f.fields;
  }

  bool scalar(json v) {
    switch (destination(false, false)) {
      case Dest::not_object: is_object_ = false; return true;
      case Dest::skip: return true;
      case Dest::keep:
      case Dest::field: *keep_slot() = std::move(v); return true;
      default: return true;  // unreachable: scalars are refused above where a container must come
    }
  }

  bool open(bool is_object) {
    if (static_cast<int>(frames_.size()) >= limits::kMaxJsonDepth)
      fail(fmt::format("the JSON nests deeper than {} levels (a tree may nest {} levels)", limits::kMaxJsonDepth,
                       limits::kMaxTreeDepth));
    const Dest d = destination(is_object, !is_object);
    switch (d) {
      case Dest::not_object:
        is_object_ = false;
        frames_.push_back({Kind::skip});
        return true;
      case Dest::skip: frames_.push_back({Kind::skip}); return true;
      case Dest::keep:
      case Dest::field: {
        json* slot = keep_slot();
        *slot = is_object ? json::object() : json::array();
        frames_.push_back({Kind::keep, -1, slot});
        return true;
      }
      case Dest::children: frames_.push_back({Kind::children, frames_.back().node}); return true;
      case Dest::root: {
        if (frames_.empty()) {
          frames_.push_back({Kind::record});
          return true;
        }
        // Added in the order the objects open, which is pre-order; its fields once it closes.
        const int parent = frames_.back().kind == Kind::children ? frames_.back().node : -1;
        if (parent < 0) has_root_ = true;
        const int depth = parent < 0 ? 0 : tree_.nodes[parent].depth + 1;
        if (static_cast<std::int64_t>(tree_.nodes.size()) >= limits::kMaxTreeNodes)
          fail(fmt::format("more than {} nodes in one tree", limits::kMaxTreeNodes));
        if (depth > limits::kMaxTreeDepth) fail(fmt::format("the tree nests deeper than {} levels", limits::kMaxTreeDepth));
        const int index = tree_.add_node(parent, Node{});
        kept_stack_.push_back(kept_);
        kept_ = 0;
        frames_.push_back({Kind::node, index});
        return true;
      }
    }
    return true;
  }

  bool close() {
    Frame& f = frames_.back();
    if (f.kind == Kind::node) {
      Node& n = tree_.nodes[f.node];
      Node read = node_fields(f.fields, where_);
      read.parent = n.parent;
      read.depth = n.depth;
      read.children = std::move(n.children);
      n = std::move(read);
      kept_ = kept_stack_.back();
      kept_stack_.pop_back();
    }
    frames_.pop_back();
    return true;
  }

  Tree& tree_;
  const std::string& where_;
  std::vector<Frame> frames_;
  std::vector<std::int64_t> kept_stack_;
  std::int64_t kept_ = 0;
  std::string key_;
  json record_ = json::object();
  bool is_object_ = true;
  bool has_root_ = false;
};

}  // namespace

Tree JsonlReader::parse_line(const std::string& text, const std::string& where) {
  Tree tree;
  // A node takes at least 64 bytes of a line (its five required fields): reserving that many
  // never grows the vector by copying (pages not reached are never touched, so not resident).
  tree.nodes.reserve(static_cast<std::size_t>(
      std::min<std::int64_t>(limits::kMaxTreeNodes, static_cast<std::int64_t>(text.size() / 64) + 1)));
  TreeSax sax(tree, where);
  try {
    json::sax_parse(text, &sax);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", where, json_error_text(e)));
  }
  sax.finish();
  return tree;
}

bool JsonlReader::next(Tree& tree) {
  std::string text;
  if (!next_line(text)) return false;
  tree = parse_line(text, fmt::format("{}:{}", path_.string(), line_));
  return true;
}

std::vector<Tree> read_jsonl(const std::filesystem::path& path) {
  // Lines are read in order, then parsed on up to 4 threads (parsing is most of the time: 15 MB
  // of device_1 trees); the error of the earliest bad line wins, as a sequential read would.
  JsonlReader reader(path);
  std::vector<std::string> lines;
  std::vector<long> numbers;
  std::string text;
  while (reader.next_line(text)) {
    lines.push_back(std::move(text));
    numbers.push_back(reader.line());
  }
  if (lines.empty()) throw file_error(path, 0, "holds no trees");
  std::vector<Tree> trees(lines.size());
  std::vector<std::exception_ptr> errors(lines.size());
  const std::size_t threads =
      std::min<std::size_t>({std::max(1u, std::thread::hardware_concurrency()), 4, (lines.size() + 7) / 8});
  auto work = [&](std::size_t k) {
    for (std::size_t i = k; i < lines.size(); i += threads) {
      try {
        trees[i] = JsonlReader::parse_line(lines[i], fmt::format("{}:{}", path.string(), numbers[i]));
      } catch (...) {
        errors[i] = std::current_exception();
      }
      std::string().swap(lines[i]);  // free the text as soon as it is parsed
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t k = 1; k < threads; ++k) pool.emplace_back(work, k);
  work(0);
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return trees;
}

void write_jsonl(const std::filesystem::path& path, const std::vector<Tree>& trees) {
  write_output(path, [&](std::ostream& out) {
    for (const auto& t : trees) write_tree_jsonl(out, t);
  });
}

}  // namespace irene
