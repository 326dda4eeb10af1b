// BERT and RoBERTa (modeling_bert.py / modeling_roberta.py): same layers, class prefix
// "Bert" or "Roberta"; RoBERTa computes its position ids from the input ids (batch-sized, with
// an int32 mul and an int64 add) and reserves two positions.
//
// --head lm: their masked-LM classes, BertForMaskedLM (`bert` without the pooler, `cls.predictions`:
// transform dense + GELU + LayerNorm, decoder tied to the word embeddings with its own bias) and
// RobertaForMaskedLM (`roberta` without the pooler, `lm_head`: dense + GELU + layer_norm, decoder).
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_bert_like(TreeBuilder& tb, int root, const std::string& x) {
  const ModelConfig& c = tb.config();
  // RoBERTa reserves padding_idx + 1 positions because it computes position ids from the input ids.
  const bool roberta = tb.family().reserved_positions > 0;
  const std::string p(tb.family().class_prefix);
  const auto h = c.hidden_size, b = tb.b, s = tb.s;
  const std::string act = tb.activation();

  // get_extended_attention_mask: (1.0 - mask) * -10000.0 on [batch, 1, 1, seq].
  tb.add_op(root, "rsub", {b, 1, 1, s});
  tb.add_op(root, "mul", {b, 1, 1, s});

  const int emb = tb.add_module(root, x + "embeddings", p + "Embeddings");
  if (roberta) {
    // create_position_ids_from_input_ids: cumsum(mask).type_as(mask) * mask, then + padding_idx.
    tb.add_op(emb, "mul", {b, s});
    tb.add_op(emb, "add_int64", {b, s});
  }
  tb.add_embedding(emb, x + "embeddings.word_embeddings", c.vocab_size, h, b);
  tb.add_embedding(emb, x + "embeddings.position_embeddings", c.max_positions, h, roberta ? b : 1);
  tb.add_embedding(emb, x + "embeddings.token_type_embeddings", c.type_vocab_size, h, b);
  tb.add_op(emb, "add", tb.hidden_shape());  // words + positions
  tb.add_op(emb, "add", tb.hidden_shape());  // + token types
  tb.add_layer_norm(emb, x + "embeddings.LayerNorm", h);

  const int enc = tb.add_module(root, x + "encoder", p + "Encoder");
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}encoder.layer.{}", x, i);
    const int layer = tb.add_module(enc, l, p + "Layer");
    const int att = tb.add_module(layer, l + ".attention", p + "Attention");
    const int self = tb.add_module(att, l + ".attention.self", p + "SelfAttention");
    tb.add_linear(self, l + ".attention.self.query", h, h);
    tb.add_linear(self, l + ".attention.self.key", h, h);
    tb.add_linear(self, l + ".attention.self.value", h, h);
    tb.add_attention_core(self, l + ".attention.self");
    tb.add_op(self, "div", tb.scores_shape());  // / sqrt(head size)
    tb.add_op(self, "add", tb.scores_shape());  // + attention mask
    const int so = tb.add_module(att, l + ".attention.output", p + "SelfOutput");
    tb.add_linear(so, l + ".attention.output.dense", h, h);
    tb.add_op(so, "add", tb.hidden_shape());  // residual
    tb.add_layer_norm(so, l + ".attention.output.LayerNorm", h);
    const int inter = tb.add_module(layer, l + ".intermediate", p + "Intermediate");
    tb.add_linear(inter, l + ".intermediate.dense", h, c.intermediate_size);
    tb.add_activation_ops(inter, act, tb.ffn_shape());
    const int out = tb.add_module(layer, l + ".output", p + "Output");
    tb.add_linear(out, l + ".output.dense", c.intermediate_size, h);
    tb.add_op(out, "add", tb.hidden_shape());  // residual
    tb.add_layer_norm(out, l + ".output.LayerNorm", h);
  }

  // The pooler reads the first token: dense on [batch, hidden] (one addmm), then tanh. The
  // masked-LM classes build the model without it (add_pooling_layer=False).
  if (!x.empty()) return;
  const int pool = tb.add_module(root, "pooler", p + "Pooler");
  tb.add_linear(pool, "pooler.dense", h, h, 2);
  tb.add_tanh(pool, "pooler.activation", h);
}

namespace {

// The masked-LM decoder: its weight is the word embeddings', its bias its own.
LinearCall mlm_decoder(const TreeBuilder& tb) {
  LinearCall decoder;
  decoder.tied = tb.config().tie_word_embeddings;
  return decoder;
}

}  // namespace

void add_roberta_lm_head(TreeBuilder& tb, int root) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size;
  const int head = tb.add_module(root, "lm_head", "RobertaLMHead");
  tb.add_linear(head, "lm_head.dense", h, h);
  tb.add_activation_ops(head, tb.activation(), tb.hidden_shape());
  tb.add_layer_norm(head, "lm_head.layer_norm", h);
  tb.add_linear(head, "lm_head.decoder", h, c.vocab_size, mlm_decoder(tb));
}

void add_bert_lm_head(TreeBuilder& tb, int root) {
  const ModelConfig& c = tb.config();
  const auto h = c.hidden_size;
  const std::string act = tb.activation();
  const LinearCall decoder = mlm_decoder(tb);
  const int cls = tb.add_module(root, "cls", "BertOnlyMLMHead");
  const int pred = tb.add_module(cls, "cls.predictions", "BertLMPredictionHead");
  const int tr = tb.add_module(pred, "cls.predictions.transform", "BertPredictionHeadTransform");
  tb.add_linear(tr, "cls.predictions.transform.dense", h, h);
  tb.add_activation_ops(tr, act, tb.hidden_shape());
  tb.add_layer_norm(tr, "cls.predictions.transform.LayerNorm", h);
  tb.add_linear(pred, "cls.predictions.decoder", h, c.vocab_size, decoder);
}

}  // namespace irene::arch_detail
