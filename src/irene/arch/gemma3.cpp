// Gemma 3's language model (modeling_gemma3.py), as transformers 4.5x builds and runs it:
//
//   Gemma3ForCausalLM
//     model (Gemma3TextModel): embed_tokens (scaled by sqrt(hidden_size), a buffer), layers.N
//       (Gemma3DecoderLayer), norm (Gemma3RMSNorm); ops: the embedding scale, the causal and the
//       sliding-window masks, rotary_emb's cos / sin
//       layers.N: input_layernorm, self_attn (Gemma3Attention: q_proj, q_norm, k_proj, k_norm,
//                 v_proj, the attention, o_proj), post_attention_layernorm,
//                 pre_feedforward_layernorm, mlp (Gemma3MLP: gate_proj, act_fn, up_proj,
//                 down_proj), post_feedforward_layernorm; ops: the two residual adds
//     lm_head (tied to embed_tokens by default)
//
// As Gemma 2 (gemma2.cpp) with: q_norm and k_norm (Gemma3RMSNorm, (1 + w), over head_dim on
// every head), no soft-capping unless attn_logit_softcapping / final_logit_softcapping are set
// (Gemma3TextConfig's defaults are null), and the sliding layers given by layer_types, else by
// sliding_window_pattern (default 6: five local layers, then a global one). A Gemma 3 config
// of Gemma3ForConditionalGeneration (model_type gemma3) is read as its text_config
// (config.cpp): its language model is built, its vision tower is not.
#include <fmt/format.h>

#include "irene/arch/families.hpp"
#include "irene/core/error.hpp"

namespace irene::arch_detail {

std::vector<bool> sliding_layers(const ModelConfig& c, std::int64_t pattern) {
  std::vector<bool> sliding(static_cast<std::size_t>(c.num_layers));
  const auto it = c.raw.find("layer_types");
  if (it != c.raw.end() && !it->is_null()) {
    if (!it->is_array() || static_cast<std::int64_t>(it->size()) != c.num_layers)
      throw Error(fmt::format("{}: 'layer_types' must list one of \"sliding_attention\" / \"full_attention\" for "
                              "each of the {} layers",
                              c.name, c.num_layers));
    for (std::size_t i = 0; i < sliding.size(); ++i) {
      const auto& v = (*it)[i];
      if (!v.is_string() || (v != "sliding_attention" && v != "full_attention"))
        throw Error(fmt::format("{}: 'layer_types' entry {} is {}; expected \"sliding_attention\" or "
                                "\"full_attention\"",
                                c.name, i, v.dump().substr(0, 40)));
      sliding[i] = v == "sliding_attention";
    }
    return sliding;
  }
  for (std::size_t i = 0; i < sliding.size(); ++i)
    sliding[i] = pattern > 0 && (static_cast<std::int64_t>(i) + 1) % pattern != 0;
  return sliding;
}

void build_gemma3(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size;
  const std::int64_t window = config_size(c, "sliding_window", 4096);
  const std::vector<bool> sliding = sliding_layers(c, config_size(c, "sliding_window_pattern", 6));
  const auto cap = c.raw.find("attn_logit_softcapping");
  SelfAttentionCall attn{cls + "Attention", c.num_heads, c.num_kv_heads, c.head_size(), false, false, norm};
  attn.softcap = cap != c.raw.end() && !cap->is_null();
  GatedMlpCall mlp;
  mlp.intermediate = c.intermediate_size;
  mlp.activation = tb.activation();
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_op(base, "mul_scalar", tb.hidden_shape());  // * embed_scale (sqrt(hidden_size))
  tb.add_mask_and_rotary_ops(base, c.head_size());
  if (!tb.sdpa) tb.add_op(base, "causal_mask", {tb.b, 1, tb.s, tb.kv_len()});  // the sliding-window mask
  tb.add_op(base, "rotary_cos_sin", {1, tb.s, c.head_size()});                // rotary_emb_local (local base)
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    attn.window = sliding[static_cast<std::size_t>(i)] ? window : 0;
    tb.add_sandwich_layer(base, l, cls + "DecoderLayer", norm, attn, cls + "MLP", mlp);
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
