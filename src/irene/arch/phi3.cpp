// Phi-3 (modeling_phi3.py), as transformers 4.5x builds and runs it with eager attention:
//
//   Phi3ForCausalLM
//     model (Phi3Model): embed_tokens, layers.N (Phi3DecoderLayer), norm (Phi3RMSNorm); ops: the
//       causal mask and rotary_emb's cos / sin
//       layers.N: input_layernorm, self_attn (Phi3Attention), post_attention_layernorm, mlp
//                 (Phi3MLP); ops: the two residual adds (resid_attn_dropout and
//                 resid_mlp_dropout are identities in inference: no nodes)
//         self_attn: qkv_proj (one Linear hidden -> (heads + 2 kv_heads) x head_dim, split into
//                    queries, keys and values by views), the attention, o_proj
//         mlp: gate_up_proj (hidden -> 2 x intermediate, chunked by views into gate and up),
//              activation_fn (SiLU) on gate, up * act(gate), down_proj
//     lm_head
//
// No biases. The sliding_window (2047 in Phi-3-mini-4k) only masks scores that eager attention
// computes anyway, as for Mistral: the counts do not change.
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_phi3(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size, d = c.head_size(), heads = c.num_heads, kv = c.num_kv_heads, I = c.intermediate_size;
  LinearCall no_bias;
  no_bias.bias = false;
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, d);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_module(base, l, cls + "DecoderLayer");
    tb.add_rms_norm(layer, l + ".input_layernorm", norm, h);
    const int attn = tb.add_module(layer, l + ".self_attn", cls + "Attention", {{"kv_heads", kv}, {"head_dim", d}});
    tb.add_linear(attn, l + ".self_attn.qkv_proj", h, (heads + 2 * kv) * d, no_bias);
    tb.add_causal_attention(attn, l + ".self_attn", AttentionCall{heads, kv, d, d, false});
    tb.add_linear(attn, l + ".self_attn.o_proj", heads * d, h, no_bias);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
    tb.add_rms_norm(layer, l + ".post_attention_layernorm", norm, h);
    const int m = tb.add_module(layer, l + ".mlp", cls + "MLP");
    tb.add_linear(m, l + ".mlp.gate_up_proj", h, 2 * I, no_bias);
    tb.add_activation(m, l + ".mlp.activation_fn", tb.activation(), I);
    tb.add_op(m, "mul", tb.ffn_shape());  // up * act(gate)
    tb.add_linear(m, l + ".mlp.down_proj", I, h, no_bias);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
