// CTRL (modeling_ctrl.py), e.g. sshleifer/tiny-ctrl: token embedding `w` (positions are a
// fixed sinusoidal buffer, no node), blocks `h.N` of class EncoderLayer holding
// MultiHeadAttention (Linear Wq/Wk/Wv/dense) and the feed-forward `ffn`, a Sequential of
// Linear `ffn.0`, ReLU `ffn.1` and Linear `ffn.2`; final `layernorm`. The ReLU is an nn.Module
// without children: an ML primitive (a leaf typed ml), as the reference implementation requires.
//
// Generation: CTRLLMHeadModel holds the base model as `transformer` and lm_head, a Linear with
// a bias whose weight is tied to `w`. A decode step concatenates the cached keys and values with
// the new ones (cache_cat) and its scores and mask span past + 1 keys.
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_ctrl(TreeBuilder& tb, int root, const std::string& p) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size, s = tb.s, t = tb.kv_len();

  tb.add_embedding(root, p + "w", c.vocab_size, h, tb.b);
  tb.add_op(root, "mul", tb.hidden_shape());  // embeddings * sqrt(d_model)
  tb.add_op(root, "add", tb.hidden_shape());  // + positional encoding
  tb.add_op(root, "add", tb.hidden_shape());  // + token types (0)

  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}h.{}", p, i);
    const int block = tb.add_module(root, l, "EncoderLayer");
    tb.add_layer_norm(block, l + ".layernorm1", h);
    const int mha = tb.add_module(block, l + ".multi_head_attention", "MultiHeadAttention");
    tb.add_linear(mha, l + ".multi_head_attention.Wq", h, h);
    tb.add_linear(mha, l + ".multi_head_attention.Wk", h, h);
    tb.add_linear(mha, l + ".multi_head_attention.Wv", h, h);
    // torch.cat((past_key, k), dim=-2) and the same for values (a decode step)
    tb.add_cache_update(mha, c.num_heads, t, c.head_size());
    tb.add_cache_update(mha, c.num_heads, t, c.head_size());
    tb.add_attention_core(mha, l + ".multi_head_attention");
    tb.add_op(mha, "div", tb.scores_shape());  // / sqrt(dk)
    tb.add_op(mha, "mul", {s, t});             // mask * -1e4
    tb.add_op(mha, "add", tb.scores_shape());  // += mask
    tb.add_linear(mha, l + ".multi_head_attention.dense", h, h);
    tb.add_op(block, "add", tb.hidden_shape());  // residual
    tb.add_layer_norm(block, l + ".layernorm2", h);
    const int ffn = tb.add_module(block, l + ".ffn", "Sequential");
    tb.add_linear(ffn, l + ".ffn.0", h, c.intermediate_size);
    tb.add_relu(ffn, l + ".ffn.1", c.intermediate_size);
    tb.add_linear(ffn, l + ".ffn.2", c.intermediate_size, h);
    tb.add_op(block, "add", tb.hidden_shape());  // residual
  }
  tb.add_layer_norm(root, p + "layernorm", h);
}

}  // namespace irene::arch_detail
