// GPT-NeoX (modeling_gpt_neox.py: Pythia, GPT-NeoX-20B), as transformers 4.48 builds and runs it
// with eager attention (the attention code of modeling_llama.py):
//
//   GPTNeoXForCausalLM
//     gpt_neox (GPTNeoXModel): embed_in (Embedding), layers.N (GPTNeoXLayer), final_layer_norm
//       (LayerNorm); ops: the 4-D causal mask and rotary_emb's cos / sin for the rotary dimensions
//       layers.N: input_layernorm, attention (GPTNeoXAttention), post_attention_layernorm, mlp
//                 (GPTNeoXMLP); ops: two adds (parallel residual x + attn(ln1(x)) + mlp(ln2(x)),
//                 or the sequential form when use_parallel_residual is false)
//         attention: query_key_value (Linear h -> 3h), the attention with partial rotary
//                    embedding (the first rotary_pct of each head's dimensions, then a cat with
//                    the rest), dense (Linear h -> h); biases when attention_bias (default true)
//         mlp: dense_h_to_4h, act (GELUActivation for hidden_act gelu), dense_4h_to_h
//     embed_out (Linear, no bias; tied to embed_in only when tie_word_embeddings)
#include <fmt/format.h>

#include "irene/arch/families.hpp"
#include "irene/core/error.hpp"

namespace irene::arch_detail {

void build_gpt_neox(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size, d = c.head_size(), heads = c.num_heads;
  auto it = c.raw.find("rotary_pct");
  double pct = tb.family().keys.rotary_pct_default;
  if (it != c.raw.end() && !it->is_null()) {
    if (!it->is_number() || !(it->get<double>() >= 0) || it->get<double>() > 1)
      throw Error(fmt::format("{}: 'rotary_pct' must be a number in 0..1, got {}", c.name, it->dump().substr(0, 40)));
    pct = it->get<double>();
  }
  const auto rot = static_cast<std::int64_t>(static_cast<double>(d) * pct);  // int(head_size * rotary_pct)
  auto bias_it = c.raw.find("attention_bias");
  LinearCall attn;
  attn.bias = bias_it == c.raw.end() || !bias_it->is_boolean() || bias_it->get<bool>();
  const std::string act = tb.activation();

  tb.add_embedding(base, p + "embed_in", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, rot);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_module(base, l, "GPTNeoXLayer");
    tb.add_layer_norm(layer, l + ".input_layernorm", h);
    const int a = tb.add_module(layer, l + ".attention", "GPTNeoXAttention", {{"rotary_dims", rot}});
    tb.add_linear(a, l + ".attention.query_key_value", h, 3 * h, attn);
    tb.add_causal_attention(a, l + ".attention", AttentionCall{heads, heads, d, rot, true});
    tb.add_linear(a, l + ".attention.dense", h, h, attn);
    tb.add_layer_norm(layer, l + ".post_attention_layernorm", h);
    const int m = tb.add_module(layer, l + ".mlp", "GPTNeoXMLP");
    tb.add_linear(m, l + ".mlp.dense_h_to_4h", h, c.intermediate_size);
    tb.add_activation(m, l + ".mlp.act", act, c.intermediate_size);
    tb.add_linear(m, l + ".mlp.dense_4h_to_h", c.intermediate_size, h);
    tb.add_op(layer, "add", tb.hidden_shape());  // mlp_output + attn_output (or attn_output + x)
    tb.add_op(layer, "add", tb.hidden_shape());  // ... + hidden_states (or mlp_output + attn_output)
  }
  tb.add_layer_norm(base, p + "final_layer_norm", h);
}

}  // namespace irene::arch_detail
