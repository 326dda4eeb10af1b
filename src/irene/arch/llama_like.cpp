// Llama (modeling_llama.py: Llama 2 and 3, TinyLlama, Code Llama ...), Mistral
// (modeling_mistral.py) and Qwen2 (modeling_qwen2.py), as transformers 4.48 builds and runs them
// with eager attention:
//
//   LlamaForCausalLM
//     model (LlamaModel): embed_tokens (Embedding), layers.N (LlamaDecoderLayer), norm (LlamaRMSNorm);
//       ops: the 4-D causal mask and rotary_emb's cos / sin, computed once per forward
//       (rotary_emb holds no parameters: its work is an op of the model, not a node)
//       layers.N: input_layernorm, self_attn (LlamaAttention), post_attention_layernorm,
//                 mlp (LlamaMLP); ops: the two residual adds
//         self_attn: q_proj, k_proj, v_proj (num_key_value_heads x head_dim wide), the attention
//                    (TreeBuilder::add_causal_attention: rotary, cache update, repeat_kv, MatMul,
//                    scaling, mask, Softmax, MatMul), o_proj
//         mlp: gate_proj, act_fn (SiLU), up_proj, down_proj; op: act_fn(gate) * up (the gated MLP)
//     lm_head (Linear, no bias; tied to embed_tokens when tie_word_embeddings: counted once)
//
// Children are listed in the order the forward runs them. Biases: Llama's attention_bias and
// mlp_bias (both false by default), Mistral none, Qwen2 on q_proj, k_proj and v_proj. Class names
// take the family's prefix (MistralAttention, Qwen2RMSNorm ...). Mistral's sliding window only
// masks scores that eager attention computes anyway: the counts do not change.
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

namespace {

bool flag(const ModelConfig& c, const char* key) {
  auto it = c.raw.find(key);
  return it != c.raw.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

void build_llama_like(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size, d = c.head_size(), heads = c.num_heads, kv = c.num_kv_heads;
  const bool qkv_bias = f.qkv_bias || (f.bias_flags && flag(c, "attention_bias"));
  const bool o_bias = f.bias_flags && flag(c, "attention_bias");
  const bool mlp_bias = f.bias_flags && flag(c, "mlp_bias");
  const std::string act = tb.activation();
  LinearCall attn_in, attn_out, mlp;
  attn_in.bias = qkv_bias;
  attn_out.bias = o_bias;
  mlp.bias = mlp_bias;

  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, d);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_module(base, l, cls + "DecoderLayer");
    tb.add_rms_norm(layer, l + ".input_layernorm", norm, h);
    const int attn = tb.add_module(layer, l + ".self_attn", cls + "Attention", {{"kv_heads", kv}, {"head_dim", d}});
    tb.add_linear(attn, l + ".self_attn.q_proj", h, heads * d, attn_in);
    tb.add_linear(attn, l + ".self_attn.k_proj", h, kv * d, attn_in);
    tb.add_linear(attn, l + ".self_attn.v_proj", h, kv * d, attn_in);
    tb.add_causal_attention(attn, l + ".self_attn", AttentionCall{heads, kv, d, d, false});
    tb.add_linear(attn, l + ".self_attn.o_proj", heads * d, h, attn_out);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
    tb.add_rms_norm(layer, l + ".post_attention_layernorm", norm, h);
    const int m = tb.add_module(layer, l + ".mlp", cls + "MLP");
    tb.add_linear(m, l + ".mlp.gate_proj", h, c.intermediate_size, mlp);
    tb.add_activation(m, l + ".mlp.act_fn", act, c.intermediate_size);
    tb.add_linear(m, l + ".mlp.up_proj", h, c.intermediate_size, mlp);
    tb.add_op(m, "mul", tb.ffn_shape());  // act_fn(gate_proj(x)) * up_proj(x)
    tb.add_linear(m, l + ".mlp.down_proj", c.intermediate_size, h, mlp);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
