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
  // Bytes of one element of the key/value cache this operation reads or writes (1 for an fp8
  // cache, 2 for bfloat16/float16, 4 for float32), when the cache is not in the tree's dtype
  // (Tree::kv_cache_dtype); 0 = the tree's dtype. Only the cache operations (cache_cat,
  // cache_store, repeat_kv of a decode step) take it (arch/registry.hpp).
  int kv_bytes = 0;
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
  // (The parent's scope is Tree::parent_scope(index): not stored, a node is kept small since a
  // tree read from a file may hold up to limits::kMaxTreeNodes of them.)
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
  // For an ML leaf whose primitive class the predictor has no regressor for (e.g. LlamaRMSNorm
  // with the shipped predictor): the class whose regressor stood in, on this node's own
  // features, as the registry names it (arch/registry.hpp, Primitive::stand_in); its interval is
  // widened (predict/predictor.hpp). Empty otherwise.
  std::string stand_in;
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

// The two passes of text generation (arch/builder.hpp).
inline constexpr const char* kPrefill = "prefill";  // a full forward of seq_len tokens (the dataset's pass)
inline constexpr const char* kDecode = "decode";    // one step with a key/value cache: 1 new token per sequence

struct Tree {
  std::string model_name;  // "bert-base-uncased", or the config's name
  int batch_size = 0;
  int seq_len = 0;  // tokens this pass processes per sequence (1 for a decode step)
  // The pass: kPrefill (default; every tree of the published dataset) or kDecode, one
  // generation step whose new token attends to past_len cached positions plus itself.
  std::string phase = kPrefill;
  int past_len = 0;  // cached positions (0 for a prefill)
  // Element type of weights, activations and the key/value cache: "float32" (default, as the
  // dataset was measured), "float16" or "bfloat16". Byte counts (mem_mib) follow it.
  std::string dtype = "float32";
  // How attention runs: "eager" (default: two MatMul and a Softmax leaf, as the dataset) or "sdpa"
  // (one ScaledDotProductAttention leaf, torch's fused kernel, as Hugging Face runs by default).
  std::string attention = "eager";
  // Format of the quantized weights (arch/weight_format.hpp): "" = in `dtype` like everything
  // else, or "fp8", "mxfp4", "int8", "int4" (the Linear weights of the layers; their leaves carry
  // weight_format). Activations and the cache stay in `dtype`.
  std::string weights;
  // Element type of the key/value cache when it differs from `dtype`: "" = `dtype`, or "fp8",
  // "bfloat16", "float16", "float32" (--kv-cache-dtype). The cache operations and the attention
  // leaves that read the cache carry its element bytes (Op::kv_bytes, attr kv_bytes).
  std::string kv_cache_dtype;
  std::vector<Node> nodes;  // pre-order; nodes[0] is the root

  // Free-form provenance (where the tree came from: dataset folder, device, CPU, sensor...).
  std::map<std::string, std::string> provenance;

  const Node& root() const { return nodes.at(0); }
  Node& root() { return nodes.at(0); }

  // Index of the node with this id, or -1.
  int find_id(std::string_view id) const;

  // Scope of node `index`'s parent ("" for the root and its children): the JSONL's parent_name.
  std::string_view parent_scope(int index) const {
    const int p = nodes.at(static_cast<std::size_t>(index)).parent;
    return p < 0 ? std::string_view() : std::string_view(nodes[static_cast<std::size_t>(p)].scope);
  }

  // Appends a child of `parent` (-1: the root itself; the tree must then be empty) and
  // returns its index, in constant time. Fills parent, depth and a provisional id
  // "scope:class"; children must be added in pre-order (depth-first). Call assign_ids() once
  // the tree is whole: it numbers repeated siblings ("#0", "#1"). build_tree and the JSONL
  // reader do.
  int add_node(int parent, Node node);

  // Computes every id from scope/class_name/sibling order (the id rule above), in
  // O(nodes log siblings) time and 4 bytes per sibling of extra memory; after building a tree
  // with add_node, or after hand edits.
  void assign_ids();

  // Key used to match trees across files: "model_name/batch/seq", then "/pastP" for a decode
  // step, "/DTYPE" when not float32, "/sdpa" for fused attention, "/weights-FORMAT" for
  // quantized weights and "/kv-DTYPE" for a cache in another dtype.
  std::string key() const;

  // The configuration overrides the tree was built with (provenance "overrides":
  // "num_hidden_layers=6, ..."), "" when none.
  std::string overrides() const;
  // What headers print: the model name, followed by " [overrides]" when there are any.
  std::string display_name() const;
  bool is_decode() const { return phase == kDecode; }
};

// The id rule in one place: "<scope or 'root'>:<class>", plus "#k" for repeated siblings.
std::string make_node_id(std::string_view scope, std::string_view class_name, int ordinal,
                         bool repeated);

}  // namespace irene
