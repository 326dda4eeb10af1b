// The one registry of what a model tree is made of.
//
// Two tables, each a list of small counting functions keyed by name (fvcore's idea):
//
// * Primitives: the ML-level leaves of a tree (Linear, Conv1D, Embedding, LayerNorm, MatMul,
//   Softmax, Tanh, ReLU; for the decoder LLM families RMSNorm, SiLU, GELU and the fused
//   ScaledDotProductAttention), keyed by class name (or a Hugging Face alias: LlamaRMSNorm). Each
//   says which `Node::attrs` keys it reads, how many parameters it has, how its FLOPs and bytes
//   are counted from those attrs, which primitive stands in for it where a predictor has no
//   regressor of its own, and (filled in by measure/) how it is executed.
// * Operations: the element-wise operations a module runs that are not tree nodes (residual
//   adds, the attention scaling, masks, GELU, rotary position embedding, the repeat of grouped
//   key/value heads, the key/value cache update, the causal mask ...), keyed by `Op::kind`. Each
//   counts FLOPs and bytes from the shape of the tensor it produces.
//
// A node's counts are then: ML leaf = its primitive's count; module or model = the sum of its
// children's counts plus its `ops`' counts (`recount`). Adding a primitive or an operation is
// one entry here. The counting rules are those of the published IrEne dataset
// (float32 = 4 bytes; see ../shared/irene-data/README.md): they reproduce every row of it
// within 0.5%. The entries added for the decoder LLM families count the operations of Hugging
// Face's eager code path (modeling_llama.py's eager_attention_forward, LlamaRMSNorm,
// apply_rotary_pos_emb, repeat_kv, DynamicCache.update, the 4-D causal mask), in the same
// conventions: FLOPs of the arithmetic, bytes of every tensor read and written once.
//
// Two byte counts. `mem_mib` (Node, the dataset's `mem_bytes`) follows the published dataset's
// rule, which counts a 3-D Linear as a matmul batched over the batch: its weight is counted once
// per sequence. That rule reproduces the published rows and stays for every predictor trained on
// them (paper and default configurations). It is not what moves through memory: a kernel reads
// each weight once per call whatever the batch. The second count, the physical memory traffic
// (`traffic_bytes`, feature `traffic_mib`), counts what one call reads and writes once: every
// weight once (a mixture's expert scaled by weight_use), activations in and out, the key/value
// cache read in full by attention and written for the new positions (cache_cat), each in the
// bytes of its dtype. The two differ for Linear (weights) and Embedding (gathered rows); every
// other primitive and operation already counts each tensor once. Example, Llama-2-7b's decode
// step (past 512, float32), model.layers.0.mlp.down_proj [4096 x 11008, no bias]:
//   mem_bytes:   batch 1  172 MiB, batch 64  10.75 GiB   (weight counted per sequence)
//   traffic_mib: batch 1  172.1 MiB, batch 64  175.7 MiB (weight once: +2.1% at batch 64)
//
// Mixtures of experts: a Linear leaf standing for the same projection of all E experts of a
// layer carries the attrs num_experts (E), top_k (k) and tokens (T, routed in one call); its
// weight (and bias) traffic is that of the routed_active_experts = E x weight_use experts the T
// tokens choose, weight_use = 1 - (1 - k/E)^T being the probability that one expert is chosen.
//
// Units: Counts hold plain FLOPs and bytes; nodes store MFLOP (10^6 FLOPs) and MiB (2^20 bytes).
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "irene/core/tree.hpp"

namespace irene {

using Attrs = std::map<std::string, std::int64_t>;

// FLOPs and bytes read + written of an operation or a node.
struct Counts {
  double flops = 0;
  double bytes = 0;
  double mflop() const { return flops / 1e6; }
  double mib() const { return bytes / 1048576.0; }
  Counts& operator+=(const Counts& o) {
    flops += o.flops;
    bytes += o.bytes;
    return *this;
  }
};

// Bytes of one element of a tree's floating-point tensors (weights, activations, the key/value
// cache) for its dtype: float32 4 (the default, as the dataset was measured), float16 and
// bfloat16 2. Unknown dtype: irene::Error naming the accepted ones.
double dtype_bytes(std::string_view dtype);
// The dtypes irene counts and executes, in a fixed order ("float32", "float16", "bfloat16").
const std::vector<std::string>& supported_dtypes();

// Mixture of experts as it runs. A leaf with attrs `experts` E > 1 and `top_k` k stands for the
// same projection of all E routed experts of a layer, on the `batch` = T x k rows that a step of T
// tokens routes to them (each token to k experts). Under uniform routing (every token picks k
// distinct experts uniformly, tokens independent) an expert is chosen by at least one token with
// probability p = 1 - (1 - k/E)^T and then reads its weights once: the leaf reads E p experts'
// weights. Returns E p, the expected distinct experts the step activates (1 for an ordinary leaf).
double routed_active_experts(const Attrs& attrs);

// Bytes of one element of a Linear's weight: the tree's dtype (`element_bytes`), or with the
// attr weight_format its quantized format's bytes, scales included, spread over the weight
// (arch/weight_format.hpp). A weight_format or weight_block out of range: irene::Error.
double linear_weight_element_bytes(const Attrs& attrs, double element_bytes);

// Parameters one token reads: the tree's total less, at every routed-experts leaf, the experts a
// token does not use (experts - top_k of them); equal to the total for a dense model.
std::int64_t active_parameters(const Tree& tree);

// An ML-level primitive (a tree leaf of type ml).
struct Primitive {
  // Entries are written with designated initializers (.class_name = "Linear", ...); fields left
  // out keep the defaults below. A leaf is predicted by the regressor of its class (predict/).
  std::string class_name;  // "Linear": Node::class_name of the leaves it describes
  // Other class names of leaves that are this primitive: Hugging Face gives each family its own
  // class for the same operation (LlamaRMSNorm, MistralRMSNorm and Qwen2RMSNorm are RMSNorm).
  std::vector<std::string> aliases = {};
  std::string description;
  // The attrs keys it reads, each with its meaning (all required).
  std::vector<std::pair<std::string, std::string>> attrs;
  // Trainable parameters from the attrs.
  std::function<std::int64_t(const Attrs&)> parameters;
  // FLOPs and bytes of one forward pass from the attrs and the bytes of one floating-point
  // element of the tree's dtype (4 for float32; see dtype_bytes).
  std::function<Counts(const Attrs&, double element_bytes)> count;
  // The primitive whose regressor predicts this one, on the leaf's own features, when a
  // predictor has no regressor for it (the shipped device_1 predictor has seen no RMSNorm, SiLU
  // ...): the closest in what it computes and how it is counted; where the predictor lacks the
  // stand-in too, the stand-in's own stand-in, and so on (at most 4 steps). Empty: none (the
  // predictor then refuses the tree). predict/ says so on every such node and widens its interval.
  std::string stand_in = {};
  // Attrs it reads when present, each with its meaning and the value when absent.
  std::vector<std::tuple<std::string, std::string, std::int64_t>> optional_attrs = {};
  // Physical memory traffic of one call, bytes (see "Two byte counts" above), from the attrs and
  // the bytes of one element. Empty: the same as count's bytes (every tensor the dataset rule
  // counts is read or written once per call).
  std::function<double(const Attrs&, double element_bytes)> traffic = {};
  // Kernels one call launches (each a dispatch with its fixed overhead). Empty: 1.
  std::function<int(const Attrs&, double element_bytes)> kernels = {};
  // How measure/ executes it. arch/ never reads this: measure/ stores whatever callable type
  // it uses (through mutable_primitive) and reads it back with std::any_cast.
  std::any execute = {};
};

// An element-wise operation listed in Node::ops.
struct OpKind {
  std::string name;  // Op::kind: "add"
  std::string description;
  // FLOPs and bytes read + written of one operation producing a tensor of `shape`, for floating-
  // point elements of `element_bytes` bytes (the tree's dtype). The shape's dimensions are >= 0.
  std::function<Counts(const std::vector<std::int64_t>& shape, double element_bytes)> count;
  int kernels = 1;        // kernels one operation launches (its bytes are physical traffic already)
  std::any execute = {};  // as Primitive::execute
  // The cache operations only: FLOPs and bytes when the key/value cache is in another dtype than
  // the tree's, `kv_element_bytes` per cached element (Op::kv_bytes > 0). Empty: the operation
  // never touches the cache, and an Op of its kind with kv_bytes is an error.
  std::function<Counts(const std::vector<std::int64_t>& shape, double element_bytes, double kv_element_bytes)>
      count_cache = {};
};

// Every primitive / operation, in a fixed order.
const std::vector<Primitive>& primitives();
const std::vector<OpKind>& op_kinds();

// Lookups: nullptr when unknown. A primitive is found by its class name or any of its aliases.
const Primitive* find_primitive(std::string_view class_name);
const OpKind* find_op_kind(std::string_view name);

// Mutable entries, for measure/ to install execution hooks at start-up (not thread-safe:
// call before trees are executed concurrently). Unknown name: irene::Error.
Primitive& mutable_primitive(std::string_view class_name);
OpKind& mutable_op_kind(std::string_view name);

// Product of a shape's dimensions (1 for a scalar shape []).
std::int64_t elements(const std::vector<std::int64_t>& shape);

// Counts of one operation at `element_bytes` per floating-point element (4: float32), and
// op.kv_bytes per element of the key/value cache it touches when op.kv_bytes > 0 (its kind's
// count_cache). Unknown kind, negative dimension, kv_bytes outside 1..8 or on an operation that
// does not touch the cache: irene::Error.
Counts count_op(const Op& op, double element_bytes = 4);

// Reads an attr of a node; missing: irene::Error naming the node and the key.
std::int64_t attr(const Node& node, std::string_view key);

// Parameters and counts of an ML leaf from its attrs (at `element_bytes`, 4: float32). Unknown
// class or missing attr: Error.
std::int64_t primitive_parameters(const Node& leaf);
Counts primitive_counts(const Node& leaf, double element_bytes = 4);

// Counts of one node (recount's rule, the one place it is written): an ML leaf from its
// primitive, any other node from its children's counts (`child_counts(k)` for child index k, in
// child order), plus its ops. Error naming the node when a count is not finite.
Counts node_counts(const Node& node, double element_bytes, const std::function<const Counts&(int)>& child_counts);
// The probability that one expert of a mixture is chosen by a call's tokens under uniform routing,
// 1 - (1 - min(top_k, E) / E)^tokens; 1 for a dense layer (no num_experts attr, or num_experts 0).
double weight_use(const Attrs& attrs);

// Physical memory traffic (bytes, see "Two byte counts") and kernel launches of one call of an
// ML leaf, at `element_bytes` per element. Unknown class or missing attr: Error.
double primitive_traffic(const Node& leaf, double element_bytes = 4);
int primitive_kernels(const Node& leaf, double element_bytes = 4);
// The GEMM one call of a Linear or Conv1D leaf runs: `rows` of the flattened input (batch x seq,
// or batch for a Linear of input rank 2) times in_features into out_features. nullopt for any
// other class; missing attr: Error.
struct GemmShape {
  double rows = 0, in = 0, out = 0;
};
std::optional<GemmShape> gemm_shape(const Node& leaf);

// Physical traffic and kernels of a node of `tree` (at the tree's dtype): an ML leaf's from its
// primitive; a module's or the model's, the sum of its children's plus its ops'. Computed on
// demand, in O(nodes of its subtree).
struct Traffic {
  double bytes = 0;    // bytes read + written once per call
  double kernels = 0;  // kernel launches
  double mib() const { return bytes / 1048576.0; }
};
Traffic node_traffic(const Tree& tree, const Node& node);

// Recomputes num_parameters, flops_mflop and mem_mib of every node, bottom-up: ML leaves from
// their primitive, modules and the model from their children plus their ops (node_counts), at
// the bytes per element of the tree's dtype.
void recount(Tree& tree);

}  // namespace irene
