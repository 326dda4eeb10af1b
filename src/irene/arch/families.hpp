// Internal to arch/: the helpers every architecture file builds its tree with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/tree.hpp"

namespace irene::arch_detail {

using Shape = std::vector<std::int64_t>;

// Appends nodes for one (model, batch, seq). All add_* return the new node's index.
class TreeBuilder {
 public:
  TreeBuilder(Tree& tree, const ModelConfig& config, std::int64_t batch, std::int64_t seq)
      : tree_(tree), config_(config), b(batch), s(seq) {}

  Tree& tree() { return tree_; }
  const ModelConfig& config() const { return config_; }

  int add_root(const std::string& class_name);
  // A module node; `attrs` gets batch/seq/hidden/heads added.
  int add_module(int parent, const std::string& scope, const std::string& class_name, Attrs attrs = {});
  void add_op(int node, const std::string& kind, Shape shape);

  // ML leaves.
  int add_linear(int parent, const std::string& scope, std::int64_t in, std::int64_t out, int input_rank = 3);
  int add_conv1d(int parent, const std::string& scope, std::int64_t in, std::int64_t out);
  int add_embedding(int parent, const std::string& scope, std::int64_t rows, std::int64_t dim, std::int64_t id_batch);
  int add_layer_norm(int parent, const std::string& scope, std::int64_t width);
  int add_matmul(int parent, const std::string& scope, std::int64_t m, std::int64_t k, std::int64_t n);
  int add_softmax(int parent, const std::string& scope, std::int64_t m, std::int64_t n);
  int add_tanh(int parent, const std::string& scope, std::int64_t features);
  int add_relu(int parent, const std::string& scope, std::int64_t features);  // on [batch, seq, features]

  // Shared pieces.
  // The attention core inside `attn` (an attention module with scope `scope`): MatMul
  // query x key^T, Softmax, MatMul weights x value. The element-wise operations on the scores
  // (scaling, masks) differ per family and are added by the caller with add_op.
  void add_attention_core(int attn, const std::string& scope);
  // The activation `name` of a Hugging Face config ("gelu", "gelu_new", "relu") as ops on
  // `node`. Unknown name: irene::Error naming the accepted ones.
  void add_activation_ops(int node, const std::string& name, const Shape& shape);
  // GELU with the tanh approximation as Hugging Face's gelu_new writes it: 8 element-wise
  // operations (pow, mul, add, mul, tanh, add, mul, mul) on `shape`, listed on `node`.
  void add_gelu_tanh_ops(int node, const Shape& shape);

  Shape hidden_shape() const { return {b, s, config_.hidden_size}; }
  Shape scores_shape() const { return {b, config_.num_heads, s, s}; }
  Shape ffn_shape() const { return {b, s, config_.intermediate_size}; }

 private:
  int add_leaf(int parent, const std::string& scope, const std::string& class_name, Attrs attrs);
  Tree& tree_;
  const ModelConfig& config_;

 public:
  const std::int64_t b;  // batch size
  const std::int64_t s;  // sequence length
};

// One function per family; each adds every node below (and the ops of) the root.
void build_bert_like(TreeBuilder& tb, int root);   // bert, roberta
void build_distilbert(TreeBuilder& tb, int root);  // distilbert
void build_gpt_like(TreeBuilder& tb, int root);    // gpt2, openai-gpt
void build_ctrl(TreeBuilder& tb, int root);        // ctrl

}  // namespace irene::arch_detail
