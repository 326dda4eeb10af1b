// Gemma 2 (modeling_gemma2.py), as transformers 4.5x builds and runs it with eager attention:
//
//   Gemma2ForCausalLM
//     model (Gemma2Model): embed_tokens, layers.N (Gemma2DecoderLayer), norm (Gemma2RMSNorm);
//       ops: the embeddings times sqrt(hidden_size) (the normalizer), the causal mask and the
//       sliding-window mask, rotary_emb's cos / sin
//       layers.N: input_layernorm, self_attn (Gemma2Attention: q_proj, k_proj, v_proj, the
//                 attention, o_proj), post_attention_layernorm (on the attention's output),
//                 pre_feedforward_layernorm, mlp (Gemma2MLP: gate_proj, act_fn, up_proj,
//                 down_proj), post_feedforward_layernorm (on the MLP's output); ops: the two
//                 residual adds
//     lm_head (tied to embed_tokens); ops: the final logit soft-capping (logits / cap, tanh, * cap)
//
// head_dim is the config's (256 for gemma-2-2b, whose 8 heads make queries 2048 wide for a hidden
// size of 2304); the scores are scaled by query_pre_attn_scalar ** -0.5 and soft-capped
// (attn_logit_softcapping: / cap, tanh, * cap) before the mask. Even layers (0, 2, ...) slide over
// sliding_window positions (a decode step attends to at most that many keys), odd layers are
// global. Gemma2RMSNorm multiplies by (1 + weight) (registry.hpp's GemmaRMSNorm); act_fn is
// hidden_activation (gelu_pytorch_tanh).
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_gemma2(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size;
  const std::int64_t window = config_size(c, "sliding_window", 4096);
  const bool softcap = c.raw.contains("attn_logit_softcapping") ? !c.raw["attn_logit_softcapping"].is_null() : true;
  SelfAttentionCall attn{cls + "Attention", c.num_heads, c.num_kv_heads, c.head_size(), false, false, ""};
  attn.softcap = softcap;
  GatedMlpCall mlp;
  mlp.intermediate = c.intermediate_size;
  mlp.activation = tb.activation();
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_op(base, "mul_scalar", tb.hidden_shape());  // * normalizer (sqrt(hidden_size))
  tb.add_mask_and_rotary_ops(base, c.head_size());
  tb.add_op(base, "causal_mask", {tb.b, 1, tb.s, tb.kv_len()});  // the sliding-window mask
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    attn.window = i % 2 == 0 ? window : 0;
    tb.add_sandwich_layer(base, l, cls + "DecoderLayer", norm, attn, cls + "MLP", mlp);
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
