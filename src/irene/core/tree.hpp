// The model tree: plain data that every part of irene reads and annotates.
//
// A Tree is one (model, batch size, sequence length). Its nodes live in one flat vector in
// pre-order (nodes[0] is the root, a parent always comes before its children), linked by
// indices. Building (arch/), importing (data/), measuring (measure/), predicting (predict/)
// and rendering (explain/) are separate parts that fill in the fields below; none of them
// owns the tree.
//
// Units: flops in MFLOP (10^6 floating-point operations), mem in MiB (2^20 bytes) read and
// written, energies in joules per forward pass, times in seconds per forward pass.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace irene {

// The three node types of the IrEne paper.
enum class NodeType { model, module, ml };

std::string_view to_string(NodeType t);
// Throws irene::Error on anything but "model", "module", "ml".
NodeType node_type_from_string(std::string_view s);

// An uncertainty interval around a predicted energy, joules.
struct Interval {
  double low_j = 0;
  double high_j = 0;
};

// One operation a node runs that is not a child node: a residual add, the attention scaling,
// a mask, a GELU, ... (for an ML primitive: its own single operation may be listed too).
// `kind` names an operation of the registry (arch/registry.hpp), which says how it is counted
// and executed; `shape` is the shape of the tensor it produces (elements = product). The
// builder lists them so that a node's flops/mem are its children's plus its ops', and the
// executor runs exactly these operations.
struct Op {
  std::string kind;
  std::vector<std::int64_t> shape;
  bool operator==(const Op&) const = default;
};

struct Node {
  // Identity -----------------------------------------------------------------------------
  // Unique and stable inside its tree: "<scope or 'root'>:<class_name>", with "#k" (k = 0, 1,
  // ...) appended when a parent has several children of the same scope and class (the two
  // MatMul leaves of an attention). Equal across runs and files for the same architecture.
  std::string id;
  // Hugging Face module path ("encoder.layer.0.attention.self"); "" for the root. MatMul and
  // Softmax leaves carry the scope of the module that calls them.
  std::string scope;
  std::string parent_scope;  // scope of the parent ("" for children of the root and for the root)
  int depth = 0;             // root = 0
  NodeType type = NodeType::module;
  std::string class_name;    // Hugging Face / PyTorch class name: BertSelfAttention, Linear, ...

  // Static features for the tree's batch and sequence length -------------------------------
  std::int64_t num_parameters = 0;
  double flops_mflop = 0;    // MFLOP
  double mem_mib = 0;        // MiB read + written

  // Shape attributes of the node, enough to execute it (arch/ fills them, measure/ reads
  // them): e.g. Linear {in_features, out_features}, MatMul {heads, m, k, n}, Embedding
  // {num_embeddings, embedding_dim}, modules {hidden, heads, intermediate, ...}.
  std::map<std::string, std::int64_t> attrs;

  // Operations this node runs beyond its children (see Op). Empty for imported trees.
  std::vector<Op> ops;

  // Measured resource features, by the dataset's column names (cpu, mem, gpu, gpu_mem,
  // gpu_clk, gpu_mem_clk, times_mean, gpu_energy_mean, ...). Absent is not zero: a feature
  // the measurement did not have is simply not in the map.
  std::map<std::string, double> resources;

  // Energies, joules per forward pass ------------------------------------------------------
  std::optional<double> ground_truth_energy_j;  // measured (dataset energy_mean or profile)
  std::optional<double> predicted_energy_j;     // filled by predict/
  std::optional<Interval> predicted_interval;   // filled by predict/ where known
  // Of predicted_energy_j, the energy of the node's own operations (what it runs beyond its
  // children: `ops`, or for imported trees its counts minus its children's), with its interval;
  // filled by predict/ for nodes with children when the predictor has an own-operations term
  // (so predicted = sum of the children's weighted shares + this).
  std::optional<double> predicted_own_energy_j;
  std::optional<Interval> predicted_own_interval;
  // Where the predictor extrapolates for this node: one plain sentence per feature outside the
  // range of its training data ("batch_size 100000000 is 3125000x the largest in the training
  // data (32)"); empty when every feature is inside. Filled by predict/.
  std::vector<std::string> out_of_range;

  // Links (indices into Tree::nodes) -------------------------------------------------------
  int parent = -1;
  std::vector<int> children;

  bool is_leaf() const { return children.empty(); }
};

struct Tree {
  std::string model_name;  // "bert-base-uncased", or the config's name
  int batch_size = 0;
  int seq_len = 0;
  std::vector<Node> nodes;  // pre-order; nodes[0] is the root

  // Free-form provenance (where the tree came from: dataset folder, device, CPU, sensor...).
  std::map<std::string, std::string> provenance;

  const Node& root() const { return nodes.at(0); }
  Node& root() { return nodes.at(0); }

  // Index of the node with this id, or -1.
  int find_id(std::string_view id) const;

  // Appends a child of `parent` (-1: the root itself; the tree must then be empty) and
  // returns its index. Fills parent, depth, parent_scope and a unique id from scope and
  // class_name. Children must be added in pre-order (depth-first).
  int add_node(int parent, Node node);

  // Recomputes ids from scope/class_name/sibling order. Used after hand edits.
  void assign_ids();

  // Key "model_name/batch/seq" used to match trees across files.
  std::string key() const;
};

// The id rule in one place: "<scope or 'root'>:<class>", plus "#k" for repeated siblings.
std::string make_node_id(std::string_view scope, std::string_view class_name, int ordinal,
                         bool repeated);

}  // namespace irene
