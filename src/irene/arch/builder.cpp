#include "irene/arch/builder.hpp"

#include <fmt/format.h>

#include "irene/arch/families.hpp"
#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"

namespace irene {

namespace arch_detail {

int TreeBuilder::add_root(const std::string& class_name) {
  Node n;
  n.type = NodeType::model;
  n.class_name = class_name;
  n.attrs = {{"batch", b}, {"seq", s}, {"hidden", config_.hidden_size}, {"heads", config_.num_heads},
             {"layers", config_.num_layers}, {"intermediate", config_.intermediate_size},
             {"vocab", config_.vocab_size}};
  return tree_.add_node(-1, std::move(n));
}

int TreeBuilder::add_module(int parent, const std::string& scope, const std::string& class_name, Attrs attrs) {
  Node n;
  n.type = NodeType::module;
  n.scope = scope;
  n.class_name = class_name;
  attrs.emplace("batch", b);
  attrs.emplace("seq", s);
  attrs.emplace("hidden", config_.hidden_size);
  attrs.emplace("heads", config_.num_heads);
  n.attrs = std::move(attrs);
  return tree_.add_node(parent, std::move(n));
}

void TreeBuilder::add_op(int node, const std::string& kind, Shape shape) {
  tree_.nodes.at(node).ops.push_back(Op{kind, std::move(shape)});
}

int TreeBuilder::add_leaf(int parent, const std::string& scope, const std::string& class_name, Attrs attrs) {
  Node n;
  n.type = NodeType::ml;
  n.scope = scope;
  n.class_name = class_name;
  n.attrs = std::move(attrs);
  return tree_.add_node(parent, std::move(n));
}

int TreeBuilder::add_linear(int parent, const std::string& scope, std::int64_t in, std::int64_t out, int input_rank) {
  return add_leaf(parent, scope, "Linear",
                  {{"in_features", in}, {"out_features", out}, {"batch", b}, {"seq", input_rank == 2 ? 1 : s},
                   {"input_rank", input_rank}});
}

int TreeBuilder::add_conv1d(int parent, const std::string& scope, std::int64_t in, std::int64_t out) {
  return add_leaf(parent, scope, "Conv1D", {{"in_features", in}, {"out_features", out}, {"batch", b}, {"seq", s}});
}

int TreeBuilder::add_embedding(int parent, const std::string& scope, std::int64_t rows, std::int64_t dim,
                               std::int64_t id_batch) {
  return add_leaf(parent, scope, "Embedding",
                  {{"num_embeddings", rows}, {"embedding_dim", dim}, {"batch", id_batch}, {"seq", s}});
}

int TreeBuilder::add_layer_norm(int parent, const std::string& scope, std::int64_t width) {
  return add_leaf(parent, scope, "LayerNorm", {{"normalized_shape", width}, {"batch", b}, {"seq", s}});
}

int TreeBuilder::add_matmul(int parent, const std::string& scope, std::int64_t m, std::int64_t k, std::int64_t n) {
  return add_leaf(parent, scope, "MatMul", {{"batch", b}, {"heads", config_.num_heads}, {"m", m}, {"k", k}, {"n", n}});
}

int TreeBuilder::add_softmax(int parent, const std::string& scope, std::int64_t m, std::int64_t n) {
  return add_leaf(parent, scope, "Softmax", {{"batch", b}, {"heads", config_.num_heads}, {"m", m}, {"n", n}});
}

int TreeBuilder::add_tanh(int parent, const std::string& scope, std::int64_t features) {
  return add_leaf(parent, scope, "Tanh", {{"batch", b}, {"features", features}});
}

int TreeBuilder::add_relu(int parent, const std::string& scope, std::int64_t features) {
  return add_leaf(parent, scope, "ReLU", {{"batch", b}, {"seq", s}, {"features", features}});
}

void TreeBuilder::add_attention_core(int attn, const std::string& scope) {
  const auto d = config_.head_size();
  add_matmul(attn, scope, s, d, s);  // query x key^T
  add_softmax(attn, scope, s, s);
  add_matmul(attn, scope, s, s, d);  // weights x value
}

void TreeBuilder::add_gelu_tanh_ops(int node, const Shape& shape) {
  // 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * pow(x, 3))))
  for (const char* kind : {"pow", "mul", "add", "mul", "tanh", "add", "mul", "mul"}) add_op(node, kind, shape);
}

void TreeBuilder::add_activation_ops(int node, const std::string& name, const Shape& shape) {
  if (name == "gelu")
    add_op(node, "gelu", shape);
  else if (name == "gelu_new" || name == "gelu_pytorch_tanh")
    add_gelu_tanh_ops(node, shape);
  else if (name == "relu")
    add_op(node, "relu", shape);
  else
    throw Error(fmt::format("{}: unsupported activation '{}' (supported: gelu, gelu_new, relu)", config_.name, name));
}

}  // namespace arch_detail

namespace {

using arch_detail::TreeBuilder;

struct Family {
  const char* model_type;
  const char* root_class;
  void (*build)(TreeBuilder&, int);
  // Positions usable by input tokens (RoBERTa reserves padding_idx + 1 = 2 of them).
  std::int64_t reserved_positions;
};

const Family kFamilies[] = {
    {"bert", "BertModel", arch_detail::build_bert_like, 0},
    {"roberta", "RobertaModel", arch_detail::build_bert_like, 2},
    {"distilbert", "DistilBertModel", arch_detail::build_distilbert, 0},
    {"gpt2", "GPT2Model", arch_detail::build_gpt_like, 0},
    {"openai-gpt", "OpenAIGPTModel", arch_detail::build_gpt_like, 0},
    {"ctrl", "CTRLModel", arch_detail::build_ctrl, 0},
};

const Family& family_of(const ModelConfig& config) {
  for (const auto& f : kFamilies)
    if (config.model_type == f.model_type) return f;
  std::string names;
  for (const auto& f : kFamilies) names += (names.empty() ? "" : ", ") + std::string(f.model_type);
  throw Error(fmt::format("{}: unsupported model_type '{}' (supported: {})", config.name, config.model_type, names));
}

}  // namespace

std::string root_class_name(const ModelConfig& config) { return family_of(config).root_class; }

Tree build_tree(const ModelConfig& config, int batch, int seq) {
  const Family& f = family_of(config);
  if (batch <= 0 || batch > limits::kMaxBatch)
    throw Error(fmt::format("batch size must be an integer in 1..{}, got {}", limits::kMaxBatch, batch));
  if (seq <= 0 || seq > limits::kMaxSeq)
    throw Error(fmt::format("sequence length must be an integer in 1..{}, got {}", limits::kMaxSeq, seq));
  const std::int64_t max_seq = config.max_positions - f.reserved_positions;
  if (seq > max_seq)
    throw Error(fmt::format("sequence length {} exceeds the {} positions of {}", seq, max_seq, config.name));
  Tree tree;
  tree.model_name = config.name;
  tree.batch_size = batch;
  tree.seq_len = seq;
  tree.provenance["source"] = "architecture";
  tree.provenance["config"] = config.source.empty() ? config.name : config.source.string();
  if (!config.overrides.empty()) {
    std::string o;
    for (const auto& [k, v] : config.overrides) o += fmt::format("{}{}={}", o.empty() ? "" : ", ", k, v);
    tree.provenance["overrides"] = o;
  }
  TreeBuilder tb(tree, config, batch, seq);
  const int root = tb.add_root(f.root_class);
  f.build(tb, root);
  tree.assign_ids();
  recount(tree);
  return tree;
}

}  // namespace irene
