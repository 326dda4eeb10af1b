// Qwen3 (modeling_qwen3.py), as transformers builds and runs it with eager attention:
//
//   Qwen3ForCausalLM
//     model (Qwen3Model): embed_tokens, layers.N (Qwen3DecoderLayer), norm (Qwen3RMSNorm); ops: the
//       causal mask and rotary_emb's cos / sin
//       layers.N: input_layernorm, self_attn (Qwen3Attention), post_attention_layernorm, mlp
//                 (Qwen3MLP); ops: the two residual adds
//         self_attn: q_proj, q_norm, k_proj, k_norm, v_proj, the attention, o_proj. q_norm and
//                    k_norm are Qwen3RMSNorm over head_dim, applied to every head of the
//                    projected queries [batch, seq, heads, head_dim] and keys (kv heads) before
//                    rotary embedding; head_dim is the config's (128 for Qwen3-8B)
//         mlp: gate_proj, act_fn, up_proj, down_proj
//     lm_head (untied unless tie_word_embeddings)
//
// attention_bias puts biases on all four projections.
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_qwen3(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size;
  const bool bias = config_flag(c, "attention_bias", false);
  SelfAttentionCall attn{cls + "Attention", c.num_heads, c.num_kv_heads, c.head_size(), bias, bias, norm};
  GatedMlpCall mlp;
  mlp.intermediate = c.intermediate_size;
  mlp.activation = tb.activation();
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, c.head_size());
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_attention_half(base, l, cls + "DecoderLayer", norm, attn);
    tb.add_gated_mlp(layer, l + ".mlp", cls + "MLP", mlp);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
