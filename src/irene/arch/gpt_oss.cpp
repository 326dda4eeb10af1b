// GPT-OSS (modeling_gpt_oss.py), as transformers 4.55 builds and runs it with eager attention:
//
//   GptOssForCausalLM
//     model (GptOssModel): embed_tokens, layers.N (GptOssDecoderLayer), norm (GptOssRMSNorm); ops:
//       the causal and the sliding-window masks, rotary_emb's cos / sin
//       layers.N: input_layernorm, self_attn (GptOssAttention: q_proj, k_proj, v_proj with
//                 biases (attention_bias), the attention with sinks, o_proj), the residual add,
//                 post_attention_layernorm, mlp (GptOssMLP), the residual add
//         self_attn: scores * scaling + mask, then the sinks (one learned logit per head,
//                 num_attention_heads parameters) concatenated as a last column, minus the row
//                 maximum, softmax over the n + 1 columns, the sink's column dropped, x values
//         mlp: router (GptOssTopKRouter: a Linear hidden -> num_local_experts with bias) on the
//                 step's tokens, top-k (num_experts_per_tok) of its logits, softmax of the k
//                 values; experts (GptOssExperts) standing for the num_local_experts experts on
//                 the tokens x k routed rows: gate_up_proj (fused and interleaved, hidden ->
//                 2 x intermediate, with bias), swiglu with clamp (gate clamped to at most
//                 swiglu_limit 7.0, up to [-7, 7]; glu = gate * sigmoid(gate * 1.702);
//                 (up + 1) * glu), down_proj (with bias); the routing-weight product and index_add_
//     lm_head (untied)
//
// Layers alternate sliding (sliding_window 128) and full attention by layer_types (absent:
// GptOssConfig's even layers sliding); a decode step of a sliding layer attends to at most the
// window's keys. Experts are counted as every mixture of experts here (registry.hpp): parameters
// of all, FLOPs of the k a token is routed to.
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_gpt_oss(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size, inter = c.intermediate_size;
  const auto [experts, top_k] = routed_experts(c, "num_local_experts", 128, 4);
  const std::int64_t window = config_size(c, "sliding_window", 128);
  const std::vector<bool> sliding = sliding_layers(c, 2);
  const bool bias = config_flag(c, "attention_bias", true);
  SelfAttentionCall attn{cls + "Attention", c.num_heads, c.num_kv_heads, c.head_size(), bias, bias, ""};
  attn.sinks = true;
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, c.head_size());
  if (!tb.sdpa) tb.add_op(base, "causal_mask", {tb.b, 1, tb.s, tb.kv_len()});  // the sliding-window mask
  const auto t = tb.tokens(), rows = t * top_k;
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    attn.window = sliding[static_cast<std::size_t>(i)] ? window : 0;
    const int layer = tb.add_attention_half(base, l, cls + "DecoderLayer", norm, attn);
    const std::string m = l + ".mlp";
    const int mlp = tb.add_module(layer, m, cls + "MLP", {{"num_experts", experts}, {"top_k", top_k}});
    LinearCall router;
    router.input_rank = 2;
    router.rows = t;
    router.quantizable = false;
    tb.add_linear(mlp, m + ".router", h, experts, router);  // router logits [T, experts], with bias
    tb.add_op(mlp, "topk", {t, experts});
    tb.add_op(mlp, "softmax", {t, top_k});  // softmax of the top-k values
    tb.add_op(mlp, "zeros", {t, h});        // the output buffer
    tb.add_op(mlp, "gather", {rows, h});    // the rows routed to each expert
    const int ex = tb.add_module(mlp, m + ".experts", cls + "Experts",
                                 {{"num_experts", experts}, {"top_k", top_k}, {"tokens", t}});
    LinearCall proj;
    proj.input_rank = 2;
    proj.rows = rows;
    proj.experts = experts;
    proj.top_k = top_k;
    tb.add_linear(ex, m + ".experts.gate_up_proj", h, 2 * inter, proj);
    const Shape half{rows, inter};
    tb.add_op(ex, "clamp", half);       // gate.clamp(max=limit)
    tb.add_op(ex, "clamp", half);       // up.clamp(-limit, limit)
    tb.add_op(ex, "mul_scalar", half);  // gate * alpha
    tb.add_op(ex, "sigmoid", half);
    tb.add_op(ex, "mul", half);         // glu = gate * sigmoid(gate * alpha)
    tb.add_op(ex, "add", half);         // up + 1
    tb.add_op(ex, "mul", half);         // (up + 1) * glu
    tb.add_linear(ex, m + ".experts.down_proj", inter, h, proj);
    tb.add_expert_combine(mlp, top_k);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
