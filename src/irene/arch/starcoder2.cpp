// StarCoder2 (modeling_starcoder2.py), as transformers 4.5x builds and runs it with eager attention:
//
//   Starcoder2ForCausalLM
//     model (Starcoder2Model): embed_tokens, layers.N (Starcoder2DecoderLayer), norm (LayerNorm);
//       ops: the causal mask and rotary_emb's cos / sin (embedding_dropout and residual_dropout
//       are identities in inference)
//       layers.N: input_layernorm (LayerNorm), self_attn (Starcoder2Attention: q_proj, k_proj,
//                 v_proj, the attention, o_proj), post_attention_layernorm (LayerNorm), mlp
//                 (Starcoder2MLP: c_fc, act, c_proj); ops: the two residual adds
//     lm_head (tied to embed_tokens unless tie_word_embeddings is false)
//
// use_bias (default true) puts biases on the four attention projections, c_fc and c_proj; the
// LayerNorms have biases (norm_epsilon). act is hidden_act, gelu_pytorch_tanh (PytorchGELUTanh) in
// the published models. The sliding_window only masks scores that eager attention computes
// anyway, as for Mistral.
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_starcoder2(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix);
  const auto h = c.hidden_size, I = c.intermediate_size;
  const bool bias = config_flag(c, "use_bias", true);
  SelfAttentionCall attn{cls + "Attention", c.num_heads, c.num_kv_heads, c.head_size(), bias, bias, ""};
  LinearCall mlp;
  mlp.bias = bias;
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, c.head_size());
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_module(base, l, cls + "DecoderLayer");
    tb.add_layer_norm(layer, l + ".input_layernorm", h);
    tb.add_self_attention(layer, l + ".self_attn", attn);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
    tb.add_layer_norm(layer, l + ".post_attention_layernorm", h);
    const int m = tb.add_module(layer, l + ".mlp", cls + "MLP");
    tb.add_linear(m, l + ".mlp.c_fc", h, I, mlp);
    tb.add_activation(m, l + ".mlp.act", tb.activation(), I);
    tb.add_linear(m, l + ".mlp.c_proj", I, h, mlp);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_layer_norm(base, p + "norm", h);
}

}  // namespace irene::arch_detail
