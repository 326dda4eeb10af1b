// The one registry of what a model tree is made of.
//
// Two tables, each a list of small counting functions keyed by name (fvcore's idea):
//
// * Primitives: the ML-level leaves of a tree (Linear, Conv1D, Embedding, LayerNorm, MatMul,
//   Softmax, Tanh), keyed by class name. Each says which `Node::attrs` keys it reads, how many
//   parameters it has, how its FLOPs and bytes are counted from those attrs, which regressor
//   predicts it, and (filled in by measure/) how it is executed.
// * Operations: the element-wise operations a module runs that are not tree nodes (residual
//   adds, the attention scaling, masks, GELU ...), keyed by `Op::kind`. Each counts a fixed
//   number of FLOPs and bytes per element of the tensor it produces.
//
// A node's counts are then: ML leaf = its primitive's count; module or model = the sum of its
// children's counts plus its `ops`' counts (`recount`). Adding a primitive or an operation is
// one entry here. The counting rules are those of the published IrEne dataset
// (float32 = 4 bytes; see ../shared/irene-data/README.md): they reproduce every row of it
// within 0.5%.
//
// Units: Counts hold plain FLOPs and bytes; nodes store MFLOP (10^6 FLOPs) and MiB (2^20 bytes).
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
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

// An ML-level primitive (a tree leaf of type ml).
struct Primitive {
  std::string class_name;  // "Linear": Node::class_name of the leaves it describes
  std::string description;
  // The attrs keys it reads, each with its meaning (all required).
  std::vector<std::pair<std::string, std::string>> attrs;
  // Trainable parameters from the attrs.
  std::function<std::int64_t(const Attrs&)> parameters;
  // FLOPs and bytes of one forward pass from the attrs.
  std::function<Counts(const Attrs&)> count;
  // The regressor family that predicts it: "ml_linear" (IrEne: one linear regressor per
  // primitive class, trained on the leaves of that class).
  std::string regressor = "ml_linear";
  // How measure/ executes it. arch/ never reads this: measure/ stores whatever callable type
  // it uses (through mutable_primitive) and reads it back with std::any_cast.
  std::any execute;
};

// An element-wise operation listed in Node::ops.
struct OpKind {
  std::string name;  // Op::kind: "add"
  std::string description;
  double flops_per_element = 0;  // per element of the produced tensor
  double bytes_per_element = 0;  // bytes read + written per element of the produced tensor
  std::any execute;              // as Primitive::execute
};

// Every primitive / operation, in a fixed order.
const std::vector<Primitive>& primitives();
const std::vector<OpKind>& op_kinds();

// Lookups: nullptr when unknown.
const Primitive* find_primitive(std::string_view class_name);
const OpKind* find_op_kind(std::string_view name);

// Mutable entries, for measure/ to install execution hooks at start-up (not thread-safe:
// call before trees are executed concurrently). Unknown name: irene::Error.
Primitive& mutable_primitive(std::string_view class_name);
OpKind& mutable_op_kind(std::string_view name);

// Product of a shape's dimensions (1 for a scalar shape []).
std::int64_t elements(const std::vector<std::int64_t>& shape);

// Counts of one operation. Unknown kind or negative dimension: irene::Error.
Counts count_op(const Op& op);

// Reads an attr of a node; missing: irene::Error naming the node and the key.
std::int64_t attr(const Node& node, std::string_view key);

// Parameters and counts of an ML leaf from its attrs. Unknown class or missing attr: Error.
std::int64_t primitive_parameters(const Node& leaf);
Counts primitive_counts(const Node& leaf);

// Recomputes num_parameters, flops_mflop and mem_mib of every node, bottom-up: ML leaves from
// their primitive, modules and the model from their children plus their ops.
void recount(Tree& tree);

}  // namespace irene
