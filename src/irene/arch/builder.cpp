#include "irene/arch/builder.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "irene/arch/families.hpp"
#include "irene/arch/family_table.hpp"
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

void TreeBuilder::add_cache_update(int node, std::int64_t heads, std::int64_t positions, std::int64_t d) {
  if (decode()) {
    tree_.nodes.at(node).ops.push_back(Op{"cache_cat", {b, heads, positions, d}, kv_bytes});
  } else if (kv_bytes > 0) {
    tree_.nodes.at(node).ops.push_back(Op{"cache_store", {b, heads, s, d}, kv_bytes});
  }
}

void TreeBuilder::reads_cache(int leaf) {
  if (decode() && kv_bytes > 0) tree_.nodes.at(leaf).attrs["kv_bytes"] = kv_bytes;
}

int TreeBuilder::add_leaf(int parent, const std::string& scope, const std::string& class_name, Attrs attrs) {
  Node n;
  n.type = NodeType::ml;
  n.scope = scope;
  n.class_name = class_name;
  n.attrs = std::move(attrs);
  return tree_.add_node(parent, std::move(n));
}

namespace {

// A scope inside a layer: one of its dotted segments is a layer index (layers.3, h.0, layer.11).
bool in_a_layer(std::string_view scope) {
  std::size_t start = 0;
  while (start <= scope.size()) {
    const auto dot = scope.find('.', start);
    const auto seg = scope.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!seg.empty() && std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; })) return true;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return false;
}

}  // namespace

void TreeBuilder::quantize(const std::string& scope, Attrs& a, bool quantizable) {
  if (quant.format == WeightFormat::Same || !quantizable || a.count("tied") || !in_a_layer(scope) ||
      kept_unquantized(quant, scope))
    return;
  a["weight_format"] = static_cast<std::int64_t>(quant.format);
  if (quant.format == WeightFormat::Fp8) a["weight_block"] = quant.block;
  if (quant.format == WeightFormat::Int4) a["weight_block"] = quant.group_size;
  // Dequantized where they are read, inside the GEMM (registry.hpp's Linear: dequantize_ops).
  // fp8 block-scaled GEMMs multiply each output's partial sum of a block of inputs by its scale:
  // rows x out x ceil(in / block). The others dequantize every element of the weights the call
  // reads (those of the experts it chooses, rounded up to whole experts): one multiply, and for
  // int4 one subtraction of the zero point.
  const auto out = a.at("out_features"), in = a.at("in_features");
  if (quant.format == WeightFormat::Fp8) {
    const auto rows = a.at("input_rank") == 2 ? a.at("batch") : a.at("batch") * a.at("seq");
    a["dequantize_ops"] = rows * out * ((in + quant.block - 1) / quant.block);
    return;
  }
  const auto read = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(routed_active_experts(a) - 1e-9)));
  a["dequantize_ops"] = read * out * in * (quant.format == WeightFormat::Int4 ? 2 : 1);
}

int TreeBuilder::add_linear(int parent, const std::string& scope, std::int64_t in, std::int64_t out, int input_rank) {
  Attrs a{{"in_features", in}, {"out_features", out}, {"batch", b}, {"seq", input_rank == 2 ? 1 : s},
          {"input_rank", input_rank}};
  quantize(scope, a, true);
  return add_leaf(parent, scope, "Linear", std::move(a));
}

int TreeBuilder::add_linear(int parent, const std::string& scope, std::int64_t in, std::int64_t out,
                            const LinearCall& call) {
  const bool rank2 = call.input_rank == 2;
  Attrs a{{"in_features", in},
          {"out_features", out},
          {"batch", rank2 && call.rows > 0 ? call.rows : b},
          {"seq", rank2 ? 1 : call.seq > 0 ? call.seq : s},
          {"input_rank", call.input_rank}};
  if (!call.bias) a["bias"] = 0;
  if (call.tied) a["tied"] = 1;
  if (call.experts > 1) {
    a["num_experts"] = call.experts;
    a["top_k"] = call.top_k;
    a["tokens"] = (rank2 && call.rows > 0 ? call.rows : b) / std::max<std::int64_t>(1, call.top_k);
  }
  quantize(scope, a, call.quantizable);
  return add_leaf(parent, scope, "Linear", std::move(a));
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

int TreeBuilder::add_rms_norm(int parent, const std::string& scope, const std::string& class_name, std::int64_t width) {
  return add_leaf(parent, scope, class_name, {{"normalized_shape", width}, {"batch", b}, {"seq", s}});
}

int TreeBuilder::add_rms_norm_rows(int parent, const std::string& scope, const std::string& class_name,
                                   std::int64_t width, std::int64_t rows_per_sequence) {
  return add_leaf(parent, scope, class_name, {{"normalized_shape", width}, {"batch", b}, {"seq", rows_per_sequence}});
}

int TreeBuilder::add_activation(int parent, const std::string& scope, const std::string& act, std::int64_t features,
                                std::int64_t rows, std::int64_t seq) {
  // ACT2FN of Hugging Face's activations.py: the class each name builds.
  std::string cls;
  if (act == "silu" || act == "swish") cls = "SiLU";
  else if (act == "gelu") cls = "GELUActivation";
  else if (act == "relu") cls = "ReLU";
  else if (act == "gelu_pytorch_tanh") cls = "PytorchGELUTanh";
  else
    throw Error(fmt::format("{}: unsupported activation '{}' for model_type {} (supported: silu, swish, gelu, "
                            "gelu_pytorch_tanh, relu)",
                            config_.name, act, config_.model_type));
  return add_leaf(parent, scope, cls,
                  {{"batch", rows > 0 ? rows : b}, {"seq", seq > 0 ? seq : s}, {"features", features}});
}

int TreeBuilder::add_matmul_heads(int parent, const std::string& scope, std::int64_t heads, std::int64_t m,
                                  std::int64_t k, std::int64_t n) {
  return add_leaf(parent, scope, "MatMul", {{"batch", b}, {"heads", heads}, {"m", m}, {"k", k}, {"n", n}});
}

int TreeBuilder::add_softmax_heads(int parent, const std::string& scope, std::int64_t heads, std::int64_t m,
                                   std::int64_t n, bool upcast) {
  Attrs a{{"batch", b}, {"heads", heads}, {"m", m}, {"n", n}};
  if (upcast) a["upcast"] = 1;
  return add_leaf(parent, scope, "Softmax", std::move(a));
}

void TreeBuilder::add_attention_core(int attn, const std::string& scope) {
  const auto d = config_.head_size(), t = kv_len();
  reads_cache(add_matmul(attn, scope, s, d, t));  // query x key^T
  add_softmax(attn, scope, s, t);
  reads_cache(add_matmul(attn, scope, s, t, d));  // weights x value
}

void TreeBuilder::add_causal_attention(int attn, const std::string& scope, const AttentionCall& c) {
  const auto h = c.heads, kv = c.kv_heads, d = c.head_dim;
  const auto t = decode() && c.window > 0 ? std::min(kv_len(), c.window) : kv_len();
  if (c.rotary_dims > 0) {
    add_op(attn, "rotary", {b, h, s, c.rotary_dims});   // query
    add_op(attn, "rotary", {b, kv, s, c.rotary_dims});  // key
    if (c.partial_rotary_cat) {
      add_op(attn, "cat", {b, h, s, d});
      add_op(attn, "cat", {b, kv, s, d});
    }
  }
  // DynamicCache.update: torch.cat([cache, new], dim=-2) for keys and values (a decode step).
  add_cache_update(attn, kv, t, d);
  add_cache_update(attn, kv, t, d);
  // repeat_kv of keys and values; in a decode step with the cache in another dtype it reads the
  // cache and writes the copy the attention reads in the activations' dtype.
  const bool repeated = kv < h;
  if (repeated) {
    const int kvb = decode() ? kv_bytes : 0;
    tree_.nodes.at(attn).ops.push_back(Op{"repeat_kv", {b, kv, h / kv, t, d}, kvb});
    tree_.nodes.at(attn).ops.push_back(Op{"repeat_kv", {b, kv, h / kv, t, d}, kvb});
  }
  const auto cache_read = [&](int leaf) {
    if (!repeated) reads_cache(leaf);
  };
  if (sdpa) {
    cache_read(add_leaf(attn, scope, "ScaledDotProductAttention",
                        {{"batch", b}, {"heads", h}, {"m", s}, {"n", t}, {"d", d}, {"causal", s > 1 ? 1 : 0}}));
    return;
  }
  cache_read(add_matmul_heads(attn, scope, h, s, d, t));  // query x key^T
  add_op(attn, "mul_scalar", {b, h, s, t});    // * scaling
  if (c.softcap) {                              // / softcap, tanh, * softcap
    add_op(attn, "div", {b, h, s, t});
    add_op(attn, "tanh", {b, h, s, t});
    add_op(attn, "mul_scalar", {b, h, s, t});
  }
  add_op(attn, "add", {b, h, s, t});           // + causal mask
  if (c.sinks) {
    add_leaf(attn, scope + ".sinks", "AttentionSinks", {{"batch", b}, {"heads", h}, {"m", s}, {"n", t}});
    add_op(attn, "sub", {b, h, s, t + 1});  // combined_logits - max
    add_softmax_heads(attn, scope, h, s, t + 1, true);
    cache_read(add_matmul_heads(attn, scope, h, s, t, d));  // weights (the sink's column dropped) x value
    return;
  }
  add_softmax_heads(attn, scope, h, s, t, true);
  cache_read(add_matmul_heads(attn, scope, h, s, t, d));   // weights x value
}

void TreeBuilder::add_mask_and_rotary_ops(int node, std::int64_t rotary_dims) {
  if (!sdpa) add_op(node, "causal_mask", {b, 1, s, kv_len()});
  if (rotary_dims > 0) add_op(node, "rotary_cos_sin", {1, s, rotary_dims});
}

int TreeBuilder::add_gated_mlp(int parent, const std::string& scope, const std::string& class_name,
                               const GatedMlpCall& c) {
  const auto h = config_.hidden_size, i = c.intermediate;
  LinearCall in, out;
  in.bias = out.bias = c.bias;
  Attrs attrs;
  Shape product{b, s, i};
  std::int64_t rows = -1, seq = -1;
  if (c.experts > 1) {  // every expert, on the T x k rows routed to them ([rows, hidden] inputs)
    rows = tokens() * c.top_k;
    for (LinearCall* call : {&in, &out}) {
      call->input_rank = 2;
      call->rows = rows;
      call->experts = c.experts;
      call->top_k = c.top_k;
    }
    attrs = {{"num_experts", c.experts}, {"top_k", c.top_k}, {"tokens", tokens()}};
    product = {rows, i};
    seq = 1;
  }
  const int m = add_module(parent, scope, class_name, std::move(attrs));
  add_linear(m, scope + "." + c.gate, h, i, in);
  add_activation(m, scope + "." + c.act, c.activation, i, rows, seq);
  add_linear(m, scope + "." + c.up, h, i, in);
  add_op(m, "mul", product);  // act(gate(x)) * up(x)
  add_linear(m, scope + "." + c.down, i, h, out);
  return m;
}

int TreeBuilder::add_self_attention(int layer, const std::string& scope, const SelfAttentionCall& c) {
  const auto h = config_.hidden_size, d = c.head_dim;
  LinearCall in, out;
  in.bias = c.qkv_bias;
  out.bias = c.o_bias;
  const bool norms = !c.qk_norm_class.empty();
  const int attn = add_module(layer, scope, c.class_name, {{"kv_heads", c.kv_heads}, {"head_dim", d}});
  add_linear(attn, scope + ".q_proj", h, c.heads * d, in);
  if (norms) add_rms_norm_rows(attn, scope + ".q_norm", c.qk_norm_class, d, s * c.heads);
  add_linear(attn, scope + ".k_proj", h, c.kv_heads * d, in);
  if (norms) add_rms_norm_rows(attn, scope + ".k_norm", c.qk_norm_class, d, s * c.kv_heads);
  add_linear(attn, scope + ".v_proj", h, c.kv_heads * d, in);
  AttentionCall core{c.heads, c.kv_heads, d, d, false};
  core.window = c.window;
  core.softcap = c.softcap;
  core.sinks = c.sinks;
  add_causal_attention(attn, scope, core);
  add_linear(attn, scope + ".o_proj", c.heads * d, h, out);
  return attn;
}

void TreeBuilder::add_router(int moe, const std::string& scope, const std::string& router, std::int64_t experts,
                             std::int64_t top_k, bool renormalize) {
  const auto t = tokens(), h = config_.hidden_size;
  LinearCall call;
  call.bias = false;
  call.input_rank = 2;
  call.rows = t;
  call.quantizable = false;
  add_linear(moe, scope + "." + router, h, experts, call);  // router logits [T, experts]
  add_op(moe, "softmax", {t, experts});                     // softmax(router_logits, dtype=float)
  add_op(moe, "topk", {t, experts});
  if (renormalize) {
    add_op(moe, "sum", {t, top_k});
    add_op(moe, "div", {t, top_k});
  }
  add_op(moe, "zeros", {t, h});           // the output buffer
  add_op(moe, "gather", {t * top_k, h});  // hidden_states[top_x] of every expert
}

void TreeBuilder::add_expert_combine(int moe, std::int64_t top_k) {
  const auto rows = tokens() * top_k, h = config_.hidden_size;
  add_op(moe, "mul", {rows, h});        // expert output * routing weight
  add_op(moe, "index_add", {rows, h});  // final_hidden_states.index_add_(0, top_x, ...)
}

int TreeBuilder::add_sparse_moe(int layer, const std::string& scope, const std::string& class_name,
                                const std::string& expert_class, const GatedMlpCall& expert, bool renormalize) {
  const int moe = add_module(layer, scope, class_name, {{"num_experts", expert.experts}, {"top_k", expert.top_k}});
  add_router(moe, scope, "gate", expert.experts, expert.top_k, renormalize);
  add_gated_mlp(moe, scope + ".experts", expert_class, expert);
  add_expert_combine(moe, expert.top_k);
  return moe;
}

int TreeBuilder::add_sandwich_layer(int base, const std::string& l, const std::string& layer_class,
                                    const std::string& norm, const SelfAttentionCall& attn, const std::string& mlp_class,
                                    const GatedMlpCall& mlp) {
  const auto h = config_.hidden_size;
  const int layer = add_module(base, l, layer_class);
  add_rms_norm(layer, l + ".input_layernorm", norm, h);
  add_self_attention(layer, l + ".self_attn", attn);
  add_rms_norm(layer, l + ".post_attention_layernorm", norm, h);
  add_op(layer, "add", hidden_shape());  // residual
  add_rms_norm(layer, l + ".pre_feedforward_layernorm", norm, h);
  add_gated_mlp(layer, l + ".mlp", mlp_class, mlp);
  add_rms_norm(layer, l + ".post_feedforward_layernorm", norm, h);
  add_op(layer, "add", hidden_shape());  // residual
  return layer;
}

int TreeBuilder::add_attention_half(int base, const std::string& scope, const std::string& layer_class,
                                    const std::string& norm, const SelfAttentionCall& attn) {
  const auto h = config_.hidden_size;
  const int layer = add_module(base, scope, layer_class);
  add_rms_norm(layer, scope + ".input_layernorm", norm, h);
  add_self_attention(layer, scope + ".self_attn", attn);
  add_op(layer, "add", hidden_shape());  // residual
  add_rms_norm(layer, scope + ".post_attention_layernorm", norm, h);
  return layer;
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

std::string TreeBuilder::activation() const {
  if (family_.keys.activation.empty()) return {};
  const std::string key(family_.keys.activation);
  return config_.string_setting(key.c_str(), std::string(family_.keys.activation_default));
}

void add_lm_head(TreeBuilder& tb, int root, std::int64_t in_features) {
  LinearCall call;
  call.bias = tb.family().lm_head_bias;
  call.tied = tb.config().tie_word_embeddings;
  call.seq = tb.logits_seq();
  call.quantizable = false;
  tb.add_linear(root, std::string(tb.family().lm_head_scope), in_features, tb.config().vocab_size, call);
}

void add_causal_lm_head(TreeBuilder& tb, int root) { add_lm_head(tb, root, tb.config().hidden_size); }

namespace {

// The causal LM head, then the final logit soft-capping when final_logit_softcapping is set
// (`absent_caps`: whether an absent key means the config class's default cap).
void add_softcapped_lm_head(TreeBuilder& tb, int root, bool absent_caps) {
  add_causal_lm_head(tb, root);
  const auto it = tb.config().raw.find("final_logit_softcapping");
  if (it == tb.config().raw.end() ? !absent_caps : it->is_null()) return;
  const Shape logits{tb.b, tb.logits_seq(), tb.config().vocab_size};
  for (const char* op : {"div", "tanh", "mul_scalar"}) tb.add_op(root, op, logits);  // / cap, tanh, * cap
}

}  // namespace

void add_gemma2_lm_head(TreeBuilder& tb, int root) { add_softcapped_lm_head(tb, root, true); }  // default 30.0
void add_gemma3_lm_head(TreeBuilder& tb, int root) { add_softcapped_lm_head(tb, root, false); }  // default null

std::int64_t config_size(const ModelConfig& c, const char* key, std::int64_t fallback) {
  auto it = c.raw.find(key);
  if (it == c.raw.end() || it->is_null()) {
    if (fallback > 0) return fallback;
    throw Error(fmt::format("{}: missing '{}' (model_type {})", c.name, key, c.model_type));
  }
  if (it->is_number_integer() && it->get<std::int64_t>() > 0 && it->get<std::int64_t>() <= limits::kMaxIntermediate)
    return it->get<std::int64_t>();
  throw Error(fmt::format("{}: '{}' must be a positive integer (at most {}), got {}", c.name, key,
                          limits::kMaxIntermediate, it->dump().substr(0, 40)));
}

std::pair<std::int64_t, std::int64_t> routed_experts(const ModelConfig& c, const char* experts_key,
                                                     std::int64_t experts_default, std::int64_t top_k_default) {
  const auto experts = config_size(c, experts_key, experts_default);
  const auto top_k = config_size(c, "num_experts_per_tok", top_k_default);
  if (top_k > experts)
    throw Error(fmt::format("{}: 'num_experts_per_tok' {} exceeds the {} experts ('{}')", c.name, top_k, experts,
                            experts_key));
  return {experts, top_k};
}

bool config_flag(const ModelConfig& c, const char* key, bool fallback) {
  auto it = c.raw.find(key);
  return it != c.raw.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::vector<std::int64_t> config_layer_list(const ModelConfig& c, const char* key) {
  std::vector<std::int64_t> v;
  auto it = c.raw.find(key);
  if (it == c.raw.end() || it->is_null()) return v;
  auto bad = [&] {
    return Error(fmt::format("{}: '{}' must be a list of layer indices in 0..{}, got {}", c.name, key,
                             c.num_layers - 1, it->dump().substr(0, 40)));
  };
  if (!it->is_array()) throw bad();
  for (const auto& x : *it) {
    if (!x.is_number_integer() || x.get<std::int64_t>() < 0 || x.get<std::int64_t>() >= c.num_layers) throw bad();
    v.push_back(x.get<std::int64_t>());
  }
  return v;
}

}  // namespace arch_detail

namespace {

using arch_detail::TreeBuilder;

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool lm_root(const FamilyInfo& f, const BuildOptions& o) { return o.head.empty() ? f.lm_root : o.head == "lm"; }

}  // namespace

const std::vector<std::string>& supported_phases() {
  static const std::vector<std::string> v = {kPrefill, kDecode};
  return v;
}

const std::vector<std::string>& supported_attention() {
  static const std::vector<std::string> v = {"eager", "sdpa"};
  return v;
}

BuildOptions make_build_options(std::string_view phase, std::string_view past, std::string_view dtype,
                                std::string_view attention, std::string_view head, bool allow_long,
                                std::string_view weights, std::string_view kv_cache_dtype) {
  BuildOptions o;
  if (!phase.empty()) o.phase = std::string(phase);
  if (o.phase != kPrefill && o.phase != kDecode)
    throw Error(fmt::format("--phase must be {}, got '{}'", fmt::join(supported_phases(), " or "), phase));
  if (!past.empty()) {
    if (o.phase != kDecode)
      throw Error(fmt::format("--past {} needs --phase decode (a prefill has no cached positions)", past));
    o.past = parse_positive_int(past, "--past");
  } else if (o.phase == kDecode) {
    throw Error("--phase decode needs --past P, the cached positions the new token attends to");
  }
  if (!dtype.empty()) o.dtype = std::string(dtype);
  if (std::find(supported_dtypes().begin(), supported_dtypes().end(), o.dtype) == supported_dtypes().end())
    throw Error(fmt::format("--dtype must be {}, got '{}'{}", fmt::join(supported_dtypes(), ", "), dtype,
                            dtype == "int8" || dtype == "int4" || dtype == "fp8" || dtype == "mxfp4"
                                ? fmt::format(" (activations are floating point; --weights {} quantizes the weights)", dtype)
                                : ""));
  if (!attention.empty()) o.attention = std::string(attention);
  if (o.attention != "eager" && o.attention != "sdpa")
    throw Error(fmt::format("--attention must be eager or sdpa, got '{}'", attention));
  o.head = std::string(head);
  if (o.head != "" && o.head != "base" && o.head != "lm")
    throw Error(fmt::format("--head must be base or lm, got '{}'", head));
  o.allow_long = allow_long;
  if (!weights.empty()) {
    parse_weight_format(weights, "--weights");  // an unknown format names the accepted ones
    o.weights = std::string(weights);
  }
  if (!kv_cache_dtype.empty()) {
    kv_cache_element_bytes(kv_cache_dtype, "--kv-cache-dtype");  // an unknown dtype names the accepted ones
    o.kv_cache_dtype = std::string(kv_cache_dtype);
  }
  return o;
}

int pass_seq(std::string_view seq, const BuildOptions& o) {
  if (seq.empty()) return o.phase == kDecode ? 1 : kDefaultSeq;
  const int s = parse_positive_int(seq, "--seq");
  if (o.phase == kDecode && s != 1)
    throw Error(fmt::format("--phase decode feeds one new token per sequence: --seq must be 1 or left out, got {}", s));
  return s;
}

std::string describe_pass(const Tree& t) {
  std::string s = fmt::format("batch {}  seq {}", t.batch_size, t.seq_len);
  if (t.is_decode()) s += fmt::format("  decode past {}", t.past_len);
  s += "  " + t.dtype;
  if (!t.weights.empty()) s += "  weights " + t.weights;
  if (!t.kv_cache_dtype.empty()) s += "  kv-cache " + t.kv_cache_dtype;
  if (t.attention != "eager") s += "  " + t.attention;
  return s;
}

std::string root_class_name(const ModelConfig& config) {
  return std::string(family_of(config).root_class());
}

Tree build_tree(const ModelConfig& config, int batch, int seq, const BuildOptions& o) {
  const FamilyInfo& f = family_of(config);
  if (batch <= 0 || batch > limits::kMaxBatch)
    throw Error(fmt::format("batch size must be an integer in 1..{}, got {}", limits::kMaxBatch, batch));
  if (seq <= 0 || seq > limits::kMaxSeq)
    throw Error(fmt::format("sequence length must be an integer in 1..{}, got {}", limits::kMaxSeq, seq));
  if (o.phase != kPrefill && o.phase != kDecode)
    throw Error(fmt::format("unknown phase '{}' (supported: {})", o.phase, list(supported_phases())));
  dtype_bytes(o.dtype);  // an unknown dtype is an error naming the supported ones
  if (o.attention != "eager" && o.attention != "sdpa")
    throw Error(fmt::format("unknown attention '{}' (supported: {})", o.attention, list(supported_attention())));
  if (o.head != "" && o.head != "base" && o.head != "lm")
    throw Error(fmt::format("unknown head '{}' (supported: base, lm)", o.head));
  const bool decode = o.phase == kDecode;
  if (!decode && o.past != 0)
    throw Error(fmt::format("--past {} needs --phase decode (a prefill has no cached positions)", o.past));
  if (o.attention == "sdpa" && !f.sdpa)
    throw Error(fmt::format("--attention sdpa: {} ({}) is built as the dataset's Hugging Face version, which has only "
                            "eager attention (sdpa: {})",
                            config.name, config.model_type, family_list([](const FamilyInfo& x) { return x.sdpa; })));
  if (decode) {
    if (!f.causal)
      throw Error(fmt::format("{} is an encoder ({}): it has no decode phase (decoders: {})", config.name,
                              config.model_type, family_list([](const FamilyInfo& x) { return x.kv_cache; })));
    if (!f.kv_cache)
      throw Error(fmt::format("{} ({}): Hugging Face's implementation has no key/value cache, so there is no decode "
                              "step (every generated token reruns the whole sequence)",
                              config.name, config.model_type));
    if (seq != 1)
      throw Error(fmt::format("a decode step feeds one new token per sequence: --seq must be 1 or left out, got {}", seq));
    if (o.past <= 0 || o.past > limits::kMaxSeq)
      throw Error(fmt::format("--past must be an integer in 1..{} (cached positions of the decode step), got {}",
                              limits::kMaxSeq, o.past));
  }
  const std::int64_t positions = static_cast<std::int64_t>(o.past) + seq;
  const std::int64_t max_seq = config.max_positions - f.reserved_positions;
  if (positions > max_seq) {
    const std::string what = decode ? fmt::format("past {} + 1 new token = {} positions", o.past, positions)
                                    : fmt::format("sequence length {}", seq);
    if (!f.rotary())
      throw Error(fmt::format("{} exceeds the {} positions of {}{}", what, max_seq, config.name,
                              o.allow_long ? " (its position table has no row for more; --allow-long applies to "
                                             "rotary position models only)"
                                           : ""));
    if (!o.allow_long)
      throw Error(fmt::format("{} exceeds the {} positions of {} (max_position_embeddings); --allow-long builds it "
                              "anyway",
                              what, max_seq, config.name));
  }
  Tree tree;
  tree.model_name = config.name;
  tree.batch_size = batch;
  tree.seq_len = seq;
  tree.phase = o.phase;
  tree.past_len = decode ? o.past : 0;
  tree.dtype = o.dtype;
  tree.attention = o.attention;
  tree.provenance["source"] = "architecture";
  tree.provenance["config"] = config.source.empty() ? config.name : config.source.string();
  {
    // Which copy of the config was used: irene's built-in one, the Hugging Face cache's, or a file.
    const std::string src = config.source.lexically_normal().string();
    const std::string builtin = models_dir().lexically_normal().string();
    tree.provenance["config_source"] =
        config.source.empty()                                        ? "given"
        : src.rfind(builtin, 0) == 0                                 ? "built-in"
        : src.find("/snapshots/") != std::string::npos &&
                  src.find("/models--") != std::string::npos         ? "Hugging Face cache"
                                                                     : "file";
  }
  if (!config.overrides.empty()) {
    std::string text;
    for (const auto& [k, v] : config.overrides) text += fmt::format("{}{}={}", text.empty() ? "" : ", ", k, v);
    tree.provenance["overrides"] = text;
  }
  // A config's torch_dtype (the dtype its weights were saved in) is reported, never applied:
  // the tree counts o.dtype (float32 unless asked, as the dataset was measured).
  if (auto it = config.raw.find("torch_dtype"); it != config.raw.end() && it->is_string())
    tree.provenance["config_torch_dtype"] = it->get<std::string>();
  TreeBuilder tb(tree, config, batch, seq, decode ? o.past : 0, o.attention == "sdpa", o.last_token_logits);
  // The weights' format: asked for, else the config's quantization_config (reported in provenance).
  const std::string where = config.source.empty() ? config.name : config.source.string();
  const WeightQuant from_config = parse_quantization_config(config.raw, where);
  if (from_config.format != WeightFormat::Same)
    tree.provenance["config_quantization"] = std::string(weight_format_name(from_config.format));
  if (o.weights.empty()) {
    tb.quant = from_config;
  } else {
    tb.quant.format = parse_weight_format(o.weights, "--weights");
    // An asked-for format keeps the config's block size and unconverted modules when they agree.
    if (tb.quant.format == from_config.format) tb.quant = from_config;
  }
  if (tb.quant.format != WeightFormat::Same) tree.weights = std::string(weight_format_name(tb.quant.format));
  // The cache's dtype: recorded (and its bytes carried by the cache's operations and readers)
  // only when it differs from the dtype's bytes, so "--kv-cache-dtype bfloat16" of a bfloat16 tree
  // is the same tree.
  if (!o.kv_cache_dtype.empty()) {
    const double kv = kv_cache_element_bytes(o.kv_cache_dtype, "--kv-cache-dtype");
    if (kv != dtype_bytes(o.dtype)) {
      tree.kv_cache_dtype = o.kv_cache_dtype;
      tb.kv_bytes = static_cast<int>(kv);
    }
  }
  if (lm_root(f, o)) {
    const int root = tb.add_root(std::string(f.lm_class));
    const int base = tb.add_module(root, std::string(f.base_scope), std::string(f.base_class));
    f.build(tb, base, std::string(f.base_scope) + ".");
    f.lm_head(tb, root);
  } else {
    const int root = tb.add_root(std::string(f.base_class));
    f.build(tb, root, "");
  }
  if (decode) tree.nodes[0].attrs["past"] = o.past;
  tree.assign_ids();
  recount(tree);
  return tree;
}

}  // namespace irene
