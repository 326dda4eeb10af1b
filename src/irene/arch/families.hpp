// Internal to arch/: the helpers every architecture file builds its tree with.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "irene/arch/config.hpp"
#include "irene/arch/family_table.hpp"
#include "irene/arch/registry.hpp"
#include "irene/arch/weight_format.hpp"
#include "irene/core/tree.hpp"

namespace irene::arch_detail {

using Shape = std::vector<std::int64_t>;

// How a Linear leaf is called (add_linear).
struct LinearCall {
  bool bias = true;          // nn.Linear(..., bias=...)
  bool tied = false;         // the weight is the token embeddings' (no parameters of its own)
  int input_rank = 3;        // 3: [batch, seq, in]; 2: [rows, in]
  std::int64_t rows = -1;    // input_rank 2: rows of the input (-1: the batch size)
  std::int64_t seq = -1;     // input_rank 3: positions (-1: the builder's seq; 1 for last-token logits)
  // Routed experts (input_rank 2, rows = tokens x top_k): the leaf stands for this projection of
  // `experts` experts (registry.hpp's routed_active_experts); 1 = an ordinary Linear.
  std::int64_t experts = 1;
  std::int64_t top_k = 1;
  // Whether a quantized weight format applies to it (TreeBuilder::quant): false for routers and
  // the LM head, which fp8 / int8 / int4 checkpoints keep in the activation dtype. Only the Linear
  // leaves of the layers (a scope with a layer index) are quantized.
  bool quantizable = true;
};

// A gated feed-forward down(act(gate(x)) * up(x)) (add_gated_mlp), with the attribute names of
// its family (Llama: gate_proj, up_proj, down_proj, act_fn; Mixtral's experts: w1, w3, w2).
struct GatedMlpCall {
  std::int64_t intermediate = 0;
  std::string activation = "silu";  // the config's hidden_act
  std::string gate = "gate_proj", up = "up_proj", down = "down_proj", act = "act_fn";
  bool bias = false;
  // Routed experts: the module stands for every one of `experts` experts (scope "<moe>.experts"),
  // on the tokens x top_k rows a step routes to them; 1 = a dense MLP on [batch, seq, hidden].
  std::int64_t experts = 1;
  std::int64_t top_k = 1;
};

// How attention runs inside an attention module (add_causal_attention: the decoder LLM families).
struct AttentionCall {
  std::int64_t heads = 0;     // query heads
  std::int64_t kv_heads = 0;  // key/value heads (grouped-query attention when fewer than heads)
  std::int64_t head_dim = 0;
  std::int64_t rotary_dims = 0;  // 0: no rotary embedding; < head_dim: partial (GPT-NeoX), with a cat
  bool partial_rotary_cat = false;  // cat the rotated and passed-through dimensions (GPT-NeoX always does)
  // A sliding-window layer attends to at most `window` keys in a decode step, as transformers'
  // sliding cache layers hold them (min(past + 1, window) keys; a prefill computes every score
  // and masks); 0 = a global layer.
  std::int64_t window = 0;
  bool softcap = false;  // tanh soft-capping of the scaled scores (Gemma 2: / cap, tanh, * cap)
  // GPT-OSS's sinks: after the mask, an AttentionSinks leaf appends one learned logit per head
  // (cat: n + 1 columns), the row maximum is subtracted, the softmax runs over the n + 1 columns
  // and the sink's column is dropped (a view) before the product with the values.
  bool sinks = false;
};

// The self-attention module of a decoder layer (add_self_attention).
struct SelfAttentionCall {
  std::string class_name;  // Qwen3Attention ...
  std::int64_t heads = 0, kv_heads = 0, head_dim = 0;
  bool qkv_bias = false, o_bias = false;
  // The class of a norm over head_dim on every head of the queries and keys after their
  // projections (Qwen3's q_norm and k_norm, Qwen3RMSNorm); "" = none.
  std::string qk_norm_class;
  std::int64_t window = 0;  // AttentionCall::window
  bool softcap = false;     // AttentionCall::softcap
  bool sinks = false;       // AttentionCall::sinks
};

// A positive integer setting of a family's config (num_local_experts, moe_intermediate_size ...):
// its value, `fallback` (Hugging Face's default) when absent or null, the fallback 0 meaning that
// the key is required. Anything else, or a value above limits::kMaxIntermediate: irene::Error
// naming the config and the key.
std::int64_t config_size(const ModelConfig& config, const char* key, std::int64_t fallback = 0);
// A list of layer indices (mlp_only_layers): absent or null: empty; anything but a list of
// integers in 0 .. num_layers - 1: irene::Error naming the config and the key.
std::vector<std::int64_t> config_layer_list(const ModelConfig& config, const char* key);
// A true/false setting of the config, `fallback` when absent or null (the config reader has
// validated the row's flags).
bool config_flag(const ModelConfig& config, const char* key, bool fallback);
// The routed experts of a mixture of experts and the experts each token is routed to
// (num_experts_per_tok), with Hugging Face's defaults; more experts per token than experts:
// irene::Error naming the config and both keys.
std::pair<std::int64_t, std::int64_t> routed_experts(const ModelConfig& config, const char* experts_key,
                                                     std::int64_t experts_default, std::int64_t top_k_default);

// Appends nodes for one (model, batch, seq) pass. All add_* return the new node's index.
class TreeBuilder {
 public:
  TreeBuilder(Tree& tree, const ModelConfig& config, std::int64_t batch, std::int64_t seq, std::int64_t past = 0,
              bool sdpa = false, bool last_token_logits = false)
      : tree_(tree),
        config_(config),
        family_(family_of(config)),
        b(batch),
        s(seq),
        past(past),
        sdpa(sdpa),
        last_token_logits(last_token_logits) {}

  Tree& tree() { return tree_; }
  const ModelConfig& config() const { return config_; }
  // The row of the config's family (family_table.hpp): its traits and class names.
  const FamilyInfo& family() const { return family_; }
  // The config's activation name under the family's key (hidden_act ...), the family's default
  // when absent; "" for a family whose activation is fixed.
  std::string activation() const;

  int add_root(const std::string& class_name);
  // A module node; `attrs` gets batch/seq/hidden/heads added.
  int add_module(int parent, const std::string& scope, const std::string& class_name, Attrs attrs = {});
  void add_op(int node, const std::string& kind, Shape shape);
  // One key/value cache update of an attention `node` (keys or values, `heads` x `d` per
  // position): a decode step's cache_cat over `positions` cached + new positions; a prefill's
  // cache_store of its s new positions when the cache is in another dtype (kv_bytes), else nothing
  // (the cache keeps the tensors). Carries kv_bytes.
  void add_cache_update(int node, std::int64_t heads, std::int64_t positions, std::int64_t d);
  // Marks an attention leaf (MatMul's [k, n] operand, ScaledDotProductAttention's keys and values)
  // of a decode step as reading the cache itself: attr kv_bytes when the cache is in another dtype.
  void reads_cache(int leaf);

  // ML leaves.
  int add_linear(int parent, const std::string& scope, std::int64_t in, std::int64_t out, int input_rank = 3);
  int add_linear(int parent, const std::string& scope, std::int64_t in, std::int64_t out, const LinearCall& call);
  int add_conv1d(int parent, const std::string& scope, std::int64_t in, std::int64_t out);
  int add_embedding(int parent, const std::string& scope, std::int64_t rows, std::int64_t dim, std::int64_t id_batch);
  int add_layer_norm(int parent, const std::string& scope, std::int64_t width);
  int add_matmul(int parent, const std::string& scope, std::int64_t m, std::int64_t k, std::int64_t n);
  int add_softmax(int parent, const std::string& scope, std::int64_t m, std::int64_t n);
  int add_tanh(int parent, const std::string& scope, std::int64_t features);
  int add_relu(int parent, const std::string& scope, std::int64_t features);  // on [batch, seq, features]
  // RMSNorm of class `class_name` (LlamaRMSNorm ...) over `width` on [batch, seq, width].
  int add_rms_norm(int parent, const std::string& scope, const std::string& class_name, std::int64_t width);
  // The same on `rows_per_sequence` rows of each sequence ([batch, rows, width]: Qwen3's q_norm
  // over head_dim on seq x heads rows).
  int add_rms_norm_rows(int parent, const std::string& scope, const std::string& class_name, std::int64_t width,
                        std::int64_t rows_per_sequence);
  // The activation module of a Hugging Face config's hidden_act (silu / swish: SiLU, gelu:
  // GELUActivation, relu: ReLU) on [rows, seq, features]. Unknown name: irene::Error naming the
  // accepted ones.
  int add_activation(int parent, const std::string& scope, const std::string& act, std::int64_t features,
                     std::int64_t rows = -1, std::int64_t seq = -1);
  // attention query x key^T, softmax, x value with `heads` heads and kv_len() keys.
  int add_matmul_heads(int parent, const std::string& scope, std::int64_t heads, std::int64_t m, std::int64_t k,
                       std::int64_t n);
  int add_softmax_heads(int parent, const std::string& scope, std::int64_t heads, std::int64_t m, std::int64_t n,
                        bool upcast);

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

  // The attention of the decoder LLM families inside the attention module `attn` (scope
  // `scope`), after its q/k/v projections and before its output projection, as Hugging Face's
  // eager_attention_forward runs it: rotary embedding on q and k (ops), in a decode step the
  // cache update of k and v (cache_cat ops), repeat_kv of k and v when kv_heads < heads (ops),
  // MatMul q x k^T, * scaling (mul_scalar), + causal mask (add), Softmax (float32 upcast),
  // MatMul x v. With sdpa: one ScaledDotProductAttention leaf in place of the products, scaling,
  // mask and softmax (repeat_kv stays: Hugging Face's sdpa_attention_forward repeats too).
  void add_causal_attention(int attn, const std::string& scope, const AttentionCall& call);
  // The 4-D causal mask and, for rotary families, the cos/sin of the positions, as ops of the
  // base model `node` (Hugging Face computes both once per forward, shared by every layer).
  // With sdpa Hugging Face builds no mask (is_causal): none is listed.
  void add_mask_and_rotary_ops(int node, std::int64_t rotary_dims);
  // A gated MLP module of class `class_name` at `scope` under `parent`: gate, act, up, the
  // product, down, in the order the forward runs them. Returns the module.
  int add_gated_mlp(int parent, const std::string& scope, const std::string& class_name, const GatedMlpCall& call);
  // The self-attention module `scope` (the layer's "self_attn") under `layer`: q_proj (then
  // q_norm), k_proj (then k_norm), v_proj, the causal attention (add_causal_attention), o_proj.
  // Returns the module.
  int add_self_attention(int layer, const std::string& scope, const SelfAttentionCall& call);
  // The routing of a sparse mixture-of-experts block `moe` (scope `scope`), as Mixtral's and
  // Qwen3-MoE's forward run it on the pass's T = batch x seq tokens: the router `router` (a
  // Linear hidden -> experts without bias) on [T, hidden], the float32 softmax of its logits,
  // top-k, the renormalisation of the k weights when `renormalize`, the output buffer, the gather
  // of the T x k routed rows; after the experts (added by the caller), add_expert_combine: the
  // routing-weight product and index_add_ of the T x k outputs.
  void add_router(int moe, const std::string& scope, const std::string& router, std::int64_t experts,
                  std::int64_t top_k, bool renormalize);
  void add_expert_combine(int moe, std::int64_t top_k);
  // A sparse mixture-of-experts block of class `class_name` at `scope` under `layer`: the module,
  // add_router ("gate"), the experts module of class `expert_class` (add_gated_mlp with
  // `expert`, whose experts and top_k it routes), add_expert_combine. Returns the block.
  int add_sparse_moe(int layer, const std::string& scope, const std::string& class_name,
                     const std::string& expert_class, const GatedMlpCall& expert, bool renormalize);
  // The attention half of a pre-norm decoder layer `scope` of class `layer_class` under `base`:
  // the layer, input_layernorm, self_attn (add_self_attention), the residual add,
  // post_attention_layernorm (norms of class `norm`). Returns the layer: the caller adds its
  // feed-forward and the second residual add.
  int add_attention_half(int base, const std::string& scope, const std::string& layer_class, const std::string& norm,
                         const SelfAttentionCall& attn);
  // A decoder layer with norms before and after both halves (Gemma 2 and 3): the layer,
  // input_layernorm, self_attn, post_attention_layernorm, the residual add,
  // pre_feedforward_layernorm, mlp (add_gated_mlp of class `mlp_class`),
  // post_feedforward_layernorm, the residual add. Returns the layer.
  int add_sandwich_layer(int base, const std::string& scope, const std::string& layer_class, const std::string& norm,
                         const SelfAttentionCall& attn, const std::string& mlp_class, const GatedMlpCall& mlp);
  // Tokens of the pass: batch x seq.
  std::int64_t tokens() const { return b * s; }

  Shape hidden_shape() const { return {b, s, config_.hidden_size}; }
  Shape scores_shape() const { return {b, config_.num_heads, s, kv_len()}; }
  Shape ffn_shape() const { return {b, s, config_.intermediate_size}; }
  // Keys each new position attends to: the cached ones plus the new ones.
  std::int64_t kv_len() const { return past + s; }
  bool decode() const { return past > 0; }
  // Positions the LM head runs on: 1 for last-token logits (generate()), else seq.
  std::int64_t logits_seq() const { return last_token_logits ? 1 : s; }

 private:
  int add_leaf(int parent, const std::string& scope, const std::string& class_name, Attrs attrs);
  Tree& tree_;
  const ModelConfig& config_;
  const FamilyInfo& family_;

 public:
  const std::int64_t b;     // batch size
  const std::int64_t s;     // new positions per sequence (sequence length; 1 in a decode step)
  const std::int64_t past;  // cached positions (decode step), 0 for a prefill
  const bool sdpa;          // fused attention (BuildOptions::attention == "sdpa")
  const bool last_token_logits;
  // Bytes of one cached key/value element when the cache is in another dtype than the tree's
  // (BuildOptions::kv_cache_dtype), else 0: carried by the cache operations and the leaves that
  // read the cache (add_cache_update, reads_cache).
  int kv_bytes = 0;
  // The weights' format (BuildOptions::weights resolved): a quantizable Linear of the layers not
  // kept by quant.not_converted gets the attrs weight_format, weight_block and dequantize_ops
  // (registry.hpp's Linear).
  WeightQuant quant;

 private:
  void quantize(const std::string& scope, Attrs& a, bool quantizable);
};

// One function per builder file (the rows of family_table.cpp point to them); each adds every
// node of the base model (BertModel, GPT2Model, LlamaModel ...) below `base` (and its ops), with
// every scope prefixed by `prefix` ("" when the base model is the root; "transformer." /
// "model." / "gpt_neox." under an LM-head root).
void build_bert_like(TreeBuilder& tb, int base, const std::string& prefix);   // bert, roberta
void build_distilbert(TreeBuilder& tb, int base, const std::string& prefix);  // distilbert
void build_gpt_like(TreeBuilder& tb, int base, const std::string& prefix);    // gpt2, openai-gpt
void build_ctrl(TreeBuilder& tb, int base, const std::string& prefix);        // ctrl
void build_llama_like(TreeBuilder& tb, int base, const std::string& prefix);  // llama, mistral, qwen2
void build_gpt_neox(TreeBuilder& tb, int base, const std::string& prefix);    // gpt_neox
void build_opt(TreeBuilder& tb, int base, const std::string& prefix);         // opt
void build_qwen3(TreeBuilder& tb, int base, const std::string& prefix);       // qwen3
void build_mixtral(TreeBuilder& tb, int base, const std::string& prefix);     // mixtral
void build_qwen3_moe(TreeBuilder& tb, int base, const std::string& prefix);   // qwen3_moe
void build_phi3(TreeBuilder& tb, int base, const std::string& prefix);        // phi3
void build_starcoder2(TreeBuilder& tb, int base, const std::string& prefix);  // starcoder2
void build_gemma2(TreeBuilder& tb, int base, const std::string& prefix);      // gemma2
void build_gemma3(TreeBuilder& tb, int base, const std::string& prefix);      // gemma3_text (gemma3's text part)
void build_gpt_oss(TreeBuilder& tb, int base, const std::string& prefix);     // gpt_oss
void build_deepseek_v3(TreeBuilder& tb, int base, const std::string& prefix); // deepseek_v3

// The sliding-window layers of a config: by its layer_types ("sliding_attention" /
// "full_attention", one per layer) when given, else every layer i with (i + 1) % pattern != 0
// (Gemma 3's sliding_window_pattern; pattern 0: none). A layer_types that is not such a list of
// num_layers entries: irene::Error naming the config and the key.
std::vector<bool> sliding_layers(const ModelConfig& config, std::int64_t pattern);

// The LM head of a decoder under the LM-head root, the one helper every causal family's head is
// built with: a Linear `in_features` -> vocab_size at the row's lm_head_scope (lm_head,
// embed_out), with a bias when the row's lm_head_bias says so, its weight tied to the token
// embeddings when tie_word_embeddings (counted once), on the last position only for
// last-token logits. add_causal_lm_head: in_features = hidden_size (GPT2LMHeadModel,
// LlamaForCausalLM, GPTNeoXForCausalLM's embed_out, CTRLLMHeadModel ...).
void add_lm_head(TreeBuilder& tb, int root, std::int64_t in_features);
void add_causal_lm_head(TreeBuilder& tb, int root);
void add_opt_lm_head(TreeBuilder& tb, int root);  // in_features = word_embed_proj_dim
// Gemma 2's and Gemma 3's: add_causal_lm_head, then the final logit soft-capping (logits / cap,
// tanh, * cap) as ops of the root when final_logit_softcapping is set (absent: Gemma 2 caps at
// 30.0, Gemma 3 does not).
void add_gemma2_lm_head(TreeBuilder& tb, int root);
void add_gemma3_lm_head(TreeBuilder& tb, int root);

// The masked-LM heads of the encoders (their --head lm classes).
void add_bert_lm_head(TreeBuilder& tb, int root);        // BertForMaskedLM: cls.predictions
void add_roberta_lm_head(TreeBuilder& tb, int root);     // RobertaForMaskedLM: lm_head
void add_distilbert_lm_head(TreeBuilder& tb, int root);  // DistilBertForMaskedLM

}  // namespace irene::arch_detail
