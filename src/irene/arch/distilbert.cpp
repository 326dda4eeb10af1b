// DistilBERT (modeling_distilbert.py): Embeddings, Transformer > TransformerBlock >
// MultiHeadSelfAttention + FFN; the query is scaled before the product, the mask is a
// masked_fill; the residual adds sit in the block.
//
// --head lm: DistilBertForMaskedLM (`distilbert`, then vocab_transform, GELU, vocab_layer_norm and
// vocab_projector, tied to the word embeddings with its own bias).
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_distilbert(TreeBuilder& tb, int root, const std::string& x) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size, b = tb.b, s = tb.s;
  const std::string act = tb.activation();

  const int emb = tb.add_module(root, x + "embeddings", "Embeddings");
  tb.add_embedding(emb, x + "embeddings.word_embeddings", c.vocab_size, h, b);
  // position ids are expanded to the batch before the lookup.
  tb.add_embedding(emb, x + "embeddings.position_embeddings", c.max_positions, h, b);
  tb.add_op(emb, "add", tb.hidden_shape());
  tb.add_layer_norm(emb, x + "embeddings.LayerNorm", h);

  const int tr = tb.add_module(root, x + "transformer", "Transformer");
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}transformer.layer.{}", x, i);
    const int block = tb.add_module(tr, l, "TransformerBlock");
    const int att = tb.add_module(block, l + ".attention", "MultiHeadSelfAttention");
    tb.add_linear(att, l + ".attention.q_lin", h, h);
    tb.add_linear(att, l + ".attention.k_lin", h, h);
    tb.add_linear(att, l + ".attention.v_lin", h, h);
    tb.add_op(att, "div", {b, c.num_heads, s, c.head_size()});  // q / sqrt(head size)
    tb.add_attention_core(att, l + ".attention");
    tb.add_op(att, "masked_fill", tb.scores_shape());
    tb.add_linear(att, l + ".attention.out_lin", h, h);
    tb.add_op(block, "add", tb.hidden_shape());  // residual
    tb.add_layer_norm(block, l + ".sa_layer_norm", h);
    const int ffn = tb.add_module(block, l + ".ffn", "FFN");
    tb.add_linear(ffn, l + ".ffn.lin1", h, c.intermediate_size);
    tb.add_activation_ops(ffn, act, tb.ffn_shape());
    tb.add_linear(ffn, l + ".ffn.lin2", c.intermediate_size, h);
    tb.add_op(block, "add", tb.hidden_shape());  // residual
    tb.add_layer_norm(block, l + ".output_layer_norm", h);
  }
}

}  // namespace irene::arch_detail

namespace irene::arch_detail {

void add_distilbert_lm_head(TreeBuilder& tb, int root) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size;
  tb.add_linear(root, "vocab_transform", h, h);
  tb.add_activation_ops(root, tb.activation(), tb.hidden_shape());
  tb.add_layer_norm(root, "vocab_layer_norm", h);
  LinearCall projector;
  projector.tied = c.tie_word_embeddings;
  tb.add_linear(root, "vocab_projector", h, c.vocab_size, projector);
}

}  // namespace irene::arch_detail
