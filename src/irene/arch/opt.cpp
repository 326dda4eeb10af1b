// OPT (modeling_opt.py: OPT-125m ... OPT-66B), as transformers builds and runs it with eager
// attention:
//
//   OPTForCausalLM
//     model (OPTModel)
//       decoder (OPTDecoder): embed_tokens (Embedding, vocab x word_embed_proj_dim),
//         embed_positions (OPTLearnedPositionalEmbedding: max_position_embeddings + 2 rows, the
//         offset of 2), project_in (when word_embed_proj_dim != hidden_size), layers.N
//         (OPTDecoderLayer), final_layer_norm (when do_layer_norm_before), project_out;
//         ops: the 4-D causal mask; the position ids cumsum(mask) * mask - 1 over past + seq and
//         + 2 over seq (int64); inputs_embeds + pos_embeds
//         layers.N: self_attn_layer_norm, self_attn (OPTAttention: q_proj, its * scaling,
//                   k_proj, v_proj, the attention, out_proj), final_layer_norm, fc1,
//                   activation_fn (ReLU), fc2 (the feed-forward part on the [batch x seq, hidden]
//                   reshape, as Hugging Face runs it); ops: the two residual adds. Post-norm when
//                   do_layer_norm_before is false (OPT-350m).
//     lm_head (Linear word_embed_proj_dim -> vocab, no bias, tied to embed_tokens: counted once)
#include <fmt/format.h>

#include "irene/arch/families.hpp"
#include "irene/core/limits.hpp"
#include "irene/core/error.hpp"

namespace irene::arch_detail {

namespace {

bool flag(const ModelConfig& c, const char* key, bool absent) {
  auto it = c.raw.find(key);
  return it == c.raw.end() || !it->is_boolean() ? absent : it->get<bool>();
}

std::int64_t proj_dim(const ModelConfig& c) {
  auto it = c.raw.find("word_embed_proj_dim");
  if (it == c.raw.end() || it->is_null()) return c.hidden_size;
  bool ok = false;
  if (it->is_number_unsigned())
    ok = it->get<std::uint64_t>() >= 1 && it->get<std::uint64_t>() <= static_cast<std::uint64_t>(limits::kMaxHidden);
  else if (it->is_number_integer())
    ok = it->get<std::int64_t>() >= 1 && it->get<std::int64_t>() <= limits::kMaxHidden;
  if (!ok)
    throw Error(fmt::format("{}: 'word_embed_proj_dim' must be a positive integer (at most {}), got {}", c.name,
                            limits::kMaxHidden, it->dump().substr(0, 40)));
  return it->get<std::int64_t>();
}

}  // namespace

void build_opt(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size, b = tb.b, s = tb.s, rows = tb.b * tb.s;
  const auto proj = proj_dim(c);
  const bool before = flag(c, "do_layer_norm_before", true);
  const bool final_norm = before && !flag(c, "_remove_final_layer_norm", false);
  LinearCall lin;
  lin.bias = flag(c, "enable_bias", true);
  LinearCall ffn = lin;
  ffn.input_rank = 2;
  ffn.rows = rows;
  LinearCall no_bias;
  no_bias.bias = false;
  const std::string act = tb.activation();

  const std::string dp = p + "decoder";
  const int dec = tb.add_module(base, dp, "OPTDecoder");
  tb.add_embedding(dec, dp + ".embed_tokens", c.vocab_size, proj, b);
  tb.add_mask_and_rotary_ops(dec, 0);
  tb.add_op(dec, "cumsum_int64", {b, tb.kv_len()});  // cumsum(attention_mask, dim=1)
  tb.add_op(dec, "mul_int64", {b, tb.kv_len()});     // * attention_mask
  tb.add_op(dec, "add_int64", {b, tb.kv_len()});     // - 1
  tb.add_op(dec, "add_int64", {b, s});               // [:, past:] + offset 2
  tb.add_embedding(dec, dp + ".embed_positions", c.max_positions + 2, h, b);
  tb.tree().nodes.back().class_name = "OPTLearnedPositionalEmbedding";
  if (proj != h) tb.add_linear(dec, dp + ".project_in", proj, h, no_bias);
  tb.add_op(dec, "add", tb.hidden_shape());  // inputs_embeds + pos_embeds
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}.layers.{}", dp, i);
    const int layer = tb.add_module(dec, l, "OPTDecoderLayer");
    if (before) tb.add_layer_norm(layer, l + ".self_attn_layer_norm", h);
    const int a = tb.add_module(layer, l + ".self_attn", "OPTAttention");
    tb.add_linear(a, l + ".self_attn.q_proj", h, h, lin);
    tb.add_op(a, "mul_scalar", tb.hidden_shape());  // q_proj(x) * scaling
    tb.add_linear(a, l + ".self_attn.k_proj", h, h, lin);
    tb.add_linear(a, l + ".self_attn.v_proj", h, h, lin);
    // Hugging Face scales the query above and calls the attention with scaling 1.0 (still a multiply).
    tb.add_causal_attention(a, l + ".self_attn", AttentionCall{c.num_heads, c.num_heads, c.head_size(), 0, false});
    tb.add_linear(a, l + ".self_attn.out_proj", h, h, lin);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
    if (!before) tb.add_layer_norm(layer, l + ".self_attn_layer_norm", h);
    if (before) {
      const int n = tb.add_layer_norm(layer, l + ".final_layer_norm", h);
      tb.tree().nodes[n].attrs["batch"] = rows;  // on the [batch x seq, hidden] reshape
      tb.tree().nodes[n].attrs["seq"] = 1;
    }
    tb.add_linear(layer, l + ".fc1", h, c.intermediate_size, ffn);
    tb.add_activation(layer, l + ".activation_fn", act, c.intermediate_size, rows, 1);
    tb.add_linear(layer, l + ".fc2", c.intermediate_size, h, ffn);
    tb.add_op(layer, "add", {rows, h});  // residual
    if (!before) {
      const int n = tb.add_layer_norm(layer, l + ".final_layer_norm", h);
      tb.tree().nodes[n].attrs["batch"] = rows;
      tb.tree().nodes[n].attrs["seq"] = 1;
    }
  }
  if (final_norm) tb.add_layer_norm(dec, dp + ".final_layer_norm", h);
  if (proj != h) tb.add_linear(dec, dp + ".project_out", h, proj, no_bias);
}

void add_opt_lm_head(TreeBuilder& tb, int root) { add_lm_head(tb, root, proj_dim(tb.config())); }

}  // namespace irene::arch_detail
