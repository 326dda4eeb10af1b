// DeepSeek-V3 (transformers' modeling_deepseek_v3.py, eager attention), with the multi-head latent
// attention of a decode step in the absorbed form that served DeepSeek-V3 runs (DeepSeek's
// inference code with attn_impl "absorb", vLLM's and SGLang's MLA); docs/families-2026.md.
//
//   DeepseekV3ForCausalLM
//     model (DeepseekV3Model): embed_tokens, layers.N (DeepseekV3DecoderLayer), norm
//       (DeepseekV3RMSNorm); ops: the causal mask and rotary_emb's cos / sin (qk_rope_head_dim)
//       layers.N: input_layernorm, self_attn (DeepseekV3Attention), the residual add,
//                 post_attention_layernorm, mlp, the residual add
//         self_attn: q_a_proj (hidden -> q_lora_rank), q_a_layernorm, q_b_proj (-> H x (nope +
//                 rope)) or, with q_lora_rank null, q_proj; kv_a_proj_with_mqa (hidden ->
//                 kv_lora_rank + rope: the latent and the rotary key shared by every head),
//                 kv_a_layernorm (over kv_lora_rank); rotary on the rope dimensions of q and of
//                 the shared key; o_proj (H x v_head_dim -> hidden). Biases on q_a_proj,
//                 kv_a_proj_with_mqa and o_proj with attention_bias.
//           prefill: kv_b_proj (kv_lora_rank -> H x (nope + v)) expands every position's
//                 latent; q and k are cat(nope, rope) of H heads; eager attention over H heads
//                 of nope + rope (scores) and v_head_dim (values).
//           decode step (absorbed): the cache holds the latent and the rotary key of every
//                 position (kv_lora_rank + rope elements per layer, cache_cat of each), not the
//                 expanded heads Hugging Face's eager code caches; q_nope times kv_b_proj's key
//                 half gives each head's query in the latent space, its scores are that query
//                 times the latent cache plus q_rope times the rotary cache (one MatMul each,
//                 every head's rows against the one cache: heads folded into the rows as MLA
//                 kernels run them, the cache read once per sequence), softmax, the context in
//                 the latent space is the weights times the latent cache, and kv_b_proj's value
//                 half brings it to v_head_dim per head. The kv_b_proj leaf stands for those two
//                 products: the same weight read once and the same FLOPs as the Linear
//                 kv_lora_rank -> H x (nope + v) on the step's tokens.
//         mlp of the first first_k_dense_replace layers: DeepseekV3MLP (intermediate_size)
//         mlp of the others (DeepseekV3MoE): gate (DeepseekV3TopkRouter: the router's Linear
//                 hidden -> n_routed_experts on the T tokens, then sigmoid scores, +
//                 e_score_correction_bias (a buffer), the top-2 sum of each of n_group groups,
//                 the top topk_group groups, the others masked, top-k (num_experts_per_tok) of
//                 the rest, the k weights gathered, renormalised (norm_topk_prob) and scaled by
//                 routed_scaling_factor); experts (DeepseekV3MLP of moe_intermediate_size)
//                 standing for every routed expert (registry.hpp); the dispatch and combine;
//                 shared_experts (one DeepseekV3MLP of moe_intermediate_size x n_shared_experts
//                 on every token), added to the routed output
//     lm_head (untied)
//
// The checkpoint's multi-token-prediction layer (num_nextn_predict_layers) is not built, as
// AutoModelForCausalLM does not build it.
#include <fmt/format.h>

#include "irene/arch/families.hpp"
#include "irene/core/error.hpp"

namespace irene::arch_detail {

namespace {

struct Mla {
  std::int64_t q_lora = 0;  // 0: q_lora_rank null (q_proj)
  std::int64_t kv_lora = 0, nope = 0, rope = 0, v = 0;
};

Mla mla_sizes(const ModelConfig& c) {
  Mla m;
  const auto q = c.raw.find("q_lora_rank");
  m.q_lora = q != c.raw.end() && q->is_null() ? 0 : config_size(c, "q_lora_rank", 1536);
  m.kv_lora = config_size(c, "kv_lora_rank", 512);
  m.nope = config_size(c, "qk_nope_head_dim", 128);
  m.rope = config_size(c, "qk_rope_head_dim", 64);
  m.v = config_size(c, "v_head_dim", 128);
  return m;
}

void add_mla(TreeBuilder& tb, int layer, const std::string& scope, const std::string& cls, const std::string& norm,
             const Mla& m, bool bias) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size, H = c.num_heads, b = tb.b, s = tb.s, t = tb.kv_len();
  const auto qk = m.nope + m.rope;
  const int attn = tb.add_module(layer, scope, cls + "Attention",
                                 {{"kv_lora_rank", m.kv_lora}, {"qk_rope_head_dim", m.rope}, {"v_head_dim", m.v}});
  LinearCall biased, plain;
  biased.bias = bias;
  plain.bias = false;
  if (m.q_lora > 0) {
    tb.add_linear(attn, scope + ".q_a_proj", h, m.q_lora, biased);
    tb.add_rms_norm(attn, scope + ".q_a_layernorm", norm, m.q_lora);
    tb.add_linear(attn, scope + ".q_b_proj", m.q_lora, H * qk, plain);
  } else {
    tb.add_linear(attn, scope + ".q_proj", h, H * qk, plain);
  }
  tb.add_linear(attn, scope + ".kv_a_proj_with_mqa", h, m.kv_lora + m.rope, biased);
  tb.add_rms_norm(attn, scope + ".kv_a_layernorm", norm, m.kv_lora);
  tb.add_op(attn, "rotary", {b, H, s, m.rope});  // q_rot (interleaved pairs)
  tb.add_op(attn, "rotary", {b, 1, s, m.rope});  // the shared rotary key
  tb.add_cache_update(attn, 1, t, m.kv_lora);     // the latent cache (cat in a decode step)
  tb.add_cache_update(attn, 1, t, m.rope);        // the rotary key cache
  if (!tb.decode()) {
    tb.add_linear(attn, scope + ".kv_b_proj", m.kv_lora, H * (m.nope + m.v), plain);
    tb.add_op(attn, "cat", {b, H, s, qk});  // query_states = cat(q_pass, q_rot)
    tb.add_op(attn, "cat", {b, H, s, qk});  // key_states = cat(k_pass, k_rot expanded to every head)
    tb.add_matmul_heads(attn, scope, H, s, qk, t);  // query x key^T
    tb.add_op(attn, "mul_scalar", {b, H, s, t});  // * scaling (qk ** -0.5 x mscale^2)
    tb.add_op(attn, "add", {b, H, s, t});         // + causal mask
    tb.add_softmax_heads(attn, scope, H, s, t, true);
    tb.add_matmul_heads(attn, scope, H, s, t, m.v);  // weights x value
  } else {
    // kv_b_proj's two absorbed products (its key half on q_nope, its value half on the context).
    tb.add_linear(attn, scope + ".kv_b_proj", m.kv_lora, H * (m.nope + m.v), plain);
    tb.reads_cache(tb.add_matmul_heads(attn, scope, 1, H * s, m.kv_lora, t));  // q_latent x latent cache^T
    tb.reads_cache(tb.add_matmul_heads(attn, scope, 1, H * s, m.rope, t));     // q_rope x rotary cache^T
    tb.add_op(attn, "add", {b, H, s, t});                  // the two score parts
    tb.add_op(attn, "mul_scalar", {b, H, s, t});           // * scaling
    tb.add_op(attn, "add", {b, H, s, t});                  // + causal mask
    tb.add_softmax_heads(attn, scope, H, s, t, true);
    tb.reads_cache(tb.add_matmul_heads(attn, scope, 1, H * s, t, m.kv_lora));  // weights x latent cache
  }
  LinearCall out;
  out.bias = bias;
  tb.add_linear(attn, scope + ".o_proj", H * m.v, h, out);
}

// DeepseekV3MoE: the router (DeepseekV3TopkRouter), the routed experts, the shared experts.
void add_deepseek_moe(TreeBuilder& tb, int layer, const std::string& scope, const std::string& cls,
                      const GatedMlpCall& expert, const GatedMlpCall& shared, std::int64_t groups,
                      bool renormalize) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size, t = tb.tokens(), E = expert.experts, k = expert.top_k;
  const int moe = tb.add_module(layer, scope, cls + "MoE", {{"num_experts", E}, {"top_k", k}});
  const std::string g = scope + ".gate";
  const int gate = tb.add_module(moe, g, cls + "TopkRouter", {{"num_experts", E}, {"top_k", k}});
  LinearCall logits;
  logits.bias = false;
  logits.input_rank = 2;
  logits.rows = t;
  logits.quantizable = false;
  tb.add_linear(gate, g, h, E, logits);  // F.linear(hidden.float(), weight.float()): [T, E]
  tb.add_op(gate, "sigmoid", {t, E});
  tb.add_op(gate, "add", {t, E});                 // + e_score_correction_bias
  tb.add_op(gate, "topk", {t, E});                // the top 2 of each group
  tb.add_op(gate, "sum", {t, groups, 2});         // group scores
  tb.add_op(gate, "topk", {t, groups});           // the top topk_group groups
  tb.add_op(gate, "zeros", {t, groups});          // the group mask (scatter_ of ones)
  tb.add_op(gate, "mul", {t, E});                 // masked_fill(~mask, 0): the scores outside them zeroed
  tb.add_op(gate, "topk", {t, E});                // the k experts
  tb.add_op(gate, "gather", {t, k});              // their weights
  if (renormalize) {
    tb.add_op(gate, "sum", {t, k});
    tb.add_op(gate, "div", {t, k});
  }
  tb.add_op(gate, "mul_scalar", {t, k});  // * routed_scaling_factor
  tb.add_op(moe, "zeros", {t, h});        // the output buffer
  tb.add_op(moe, "gather", {t * k, h});   // the rows routed to each expert
  tb.add_gated_mlp(moe, scope + ".experts", cls + "MLP", expert);
  tb.add_expert_combine(moe, k);
  tb.add_gated_mlp(moe, scope + ".shared_experts", cls + "MLP", shared);
  tb.add_op(moe, "add", tb.hidden_shape());  // routed + shared
}

}  // namespace

void build_deepseek_v3(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size;
  const Mla m = mla_sizes(c);
  const auto [experts, top_k] = routed_experts(c, "n_routed_experts", 256, 8);
  const auto groups = config_size(c, "n_group", 8);
  const auto top_groups = config_size(c, "topk_group", 4);
  if (experts % groups != 0)
    throw Error(fmt::format("{}: 'n_routed_experts' {} is not a multiple of 'n_group' {}", c.name, experts, groups));
  if (top_groups > groups)
    throw Error(fmt::format("{}: 'topk_group' {} exceeds 'n_group' {}", c.name, top_groups, groups));
  if (top_k > top_groups * (experts / groups))
    throw Error(fmt::format("{}: 'num_experts_per_tok' {} exceeds the {} experts of 'topk_group' {} groups", c.name,
                            top_k, top_groups * (experts / groups), top_groups));
  const auto shared_experts = config_size(c, "n_shared_experts", 1);
  const auto dense_key = c.raw.find("first_k_dense_replace");  // 0 allowed: every layer sparse
  const auto first_dense = dense_key != c.raw.end() && dense_key->is_number_integer() && *dense_key == 0
                               ? 0
                               : config_size(c, "first_k_dense_replace", 3);
  const bool bias = config_flag(c, "attention_bias", false);
  const bool renormalize = config_flag(c, "norm_topk_prob", true);
  GatedMlpCall dense, expert, shared;
  dense.intermediate = c.intermediate_size;
  dense.activation = expert.activation = shared.activation = tb.activation();
  expert.intermediate = config_size(c, "moe_intermediate_size", 2048);
  expert.experts = experts;
  expert.top_k = top_k;
  shared.intermediate = expert.intermediate * shared_experts;
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, m.rope);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_module(base, l, cls + "DecoderLayer");
    tb.add_rms_norm(layer, l + ".input_layernorm", norm, h);
    add_mla(tb, layer, l + ".self_attn", cls, norm, m, bias);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
    tb.add_rms_norm(layer, l + ".post_attention_layernorm", norm, h);
    if (i < first_dense)
      tb.add_gated_mlp(layer, l + ".mlp", cls + "MLP", dense);
    else
      add_deepseek_moe(tb, layer, l + ".mlp", cls, expert, shared, groups, renormalize);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
