// Execution of model-tree nodes with libtorch (CPU), for measurement.
//
// Every node of a tree built by arch/ can be run in isolation: an ML primitive runs its libtorch
// operation (Linear, Conv1D = addmm, Embedding, LayerNorm, MatMul, Softmax, Tanh, ReLU, RMSNorm as
// LlamaRMSNorm's forward writes it, SiLU, GELU, scaled dot-product attention) on random weights
// and inputs of the node's real shapes; a module or the whole model runs every child
// (recursively, each with its own random weights) and then every extra operation the node lists
// in `ops` (residual adds, scaling, masks, GELU, rotary embedding, repeat_kv, the key/value cache
// update, the causal mask ...). So a node executes exactly the operations its features
// (flops_mflop, mem_mib) count. Views, permutes and dropout cost nothing in the counts and are
// not run. Everything runs under c10::InferenceMode (no gradients), on tensors of the tree's dtype
// (float32, bfloat16, float16 where libtorch has CPU kernels for it: else preparing the tree is a
// one-line refusal naming the kernel that is missing).
//
// How each primitive and op kind runs is a hook stored in its entry of the arch registry
// (arch/registry.hpp, `execute`), installed from executor.cpp: adding a primitive is a registry
// entry plus its hook there, and a test fails for an entry without a hook.
//
// Reads and writes follow the counts: add/sub/mul/where on two tensors of the op's shape,
// div/pow/rsub by a scalar; inputs of equal shape are shared read-only within a prepared node
// (activations), weights never are.
//
// This header does not include <torch/torch.h>: only executor.cpp compiles against libtorch.
//
// Shapes come from the node (see docs of prepare_node). A node that lacks what its primitive
// needs, an unknown primitive class or op kind, or a module with nothing to run is an
// irene::Error naming the node id and the missing piece; nothing is executed then.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "irene/core/tree.hpp"

namespace irene::measure {

// A node made ready to run: weights and inputs are allocated once; run() is one forward pass.
class PreparedNode {
 public:
  virtual ~PreparedNode() = default;
  // One forward pass of the node (children then ops, for a module). Thread-compatible only.
  virtual void run() = 0;
  // Shapes of the tensors produced by the last run, in execution order (one per executed ML
  // primitive and per op, recursively through children). Recorded only when the node was
  // prepared with `record_shapes`; empty otherwise.
  virtual const std::vector<std::vector<std::int64_t>>& produced_shapes() const = 0;
  // Number of primitive operations one run executes (ML leaves + ops, recursively).
  virtual std::size_t operation_count() const = 0;
};

struct PrepareOptions {
  // Keep the shapes of produced tensors (for tests); off for measurement (no overhead).
  bool record_shapes = false;
  // Seed of the random weights and inputs (reproducible runs).
  std::uint64_t seed = 0;
};

// Prepares tree.nodes[index] for execution.
//
// An ML leaf runs the execution hook of its registry primitive (arch/registry.hpp) with the
// primitive's attrs (Linear {in_features, out_features, batch, seq, input_rank}, Conv1D,
// Embedding, LayerNorm, MatMul {batch, heads, m, k, n}, Softmax, Tanh). A module or the model
// runs its children, then each of its `ops` with the registry operation's hook on random
// tensors of the op's output shape.
// Errors (irene::Error, nothing executed): index out of range, a class or op kind that is not
// in the registry or has no hook, a missing or non-positive attr, a module without children
// and ops (an imported CSV tree carries no shapes and cannot be executed).
std::unique_ptr<PreparedNode> prepare_node(const Tree& tree, int index, const PrepareOptions& options = {});

// Stores the executor's hooks in the registry's `execute` slots (idempotent; every function
// here calls it). A registry entry without a hook cannot be executed (tests check there is none).
void install_execution_hooks();

// The registry primitives and op kinds that have an execution hook (sorted).
std::vector<std::string> executable_classes();
std::vector<std::string> executable_op_kinds();
bool can_execute_class(std::string_view class_name);
bool can_execute_op(std::string_view kind);

// Checks, without allocating anything, that every node of the tree can be prepared; throws the
// first problem as irene::Error (used before a long profile starts).
void check_executable(const Tree& tree);

// libtorch intra-op threads: sets them when n > 0; returns the number in use.
int torch_threads(int n = 0);
// "1.13.1" (TORCH_VERSION of the headers executor.cpp was compiled against).
std::string torch_version();

}  // namespace irene::measure
