// GPT-2 / DistilGPT2 (modeling_gpt2.py) and OpenAI-GPT (modeling_openai.py), in the Hugging
// Face version of the IrEne dataset: blocks `h.N` of class Block holding Attention (Conv1D
// c_attn / c_proj) and MLP (Conv1D c_fc / c_proj, tanh-approximated GELU), all directly under
// the base model with the embeddings (and GPT-2's final ln_f).
//
// Differences: GPT-2 is pre-norm (ln_1 -> attn -> add, ln_2 -> mlp -> add), its causal mask is
// a torch.where, and it has ln_f; OpenAI-GPT is post-norm (attn -> add -> ln_1, ...), its mask
// is w * b + -1e4 * (1 - b) on the [1, 1, seq, seq] mask b, and it adds the (zero) token type
// embeddings as a second add.
//
// Generation: GPT2LMHeadModel / OpenAIGPTLMHeadModel hold the base model as `transformer` and
// an lm_head Linear tied to wte / tokens_embed. A GPT-2 decode step concatenates the cached keys
// and values with the new ones (cache_cat; the `present` stack the dataset's counting leaves out
// stays out) and its scores span past + 1 keys. OpenAI-GPT has no cache in Hugging Face.
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_gpt_like(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const bool gpt2 = tb.family().pre_norm;  // GPT-2's layout; else OpenAI-GPT's (post-norm)
  const auto h = c.hidden_size, s = tb.s, t = tb.kv_len();
  const std::string act = tb.activation();
  // modeling_openai's ACT_FNS maps "gelu" to the tanh approximation.
  const std::string act_op = (!gpt2 && act == "gelu") ? "gelu_new" : act;

  tb.add_embedding(base, p + (gpt2 ? "wte" : "tokens_embed"), c.vocab_size, h, tb.b);
  tb.add_embedding(base, p + (gpt2 ? "wpe" : "positions_embed"), c.max_positions, h, 1);
  tb.add_op(base, "add", tb.hidden_shape());  // tokens + positions
  if (!gpt2) tb.add_op(base, "add", tb.hidden_shape());  // + token types (0)

  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}h.{}", p, i);
    const int block = tb.add_module(base, l, "Block");
    if (gpt2) tb.add_layer_norm(block, l + ".ln_1", h);
    const int attn = tb.add_module(block, l + ".attn", "Attention");
    tb.add_conv1d(attn, l + ".attn.c_attn", h, 3 * h);
    // torch.cat of the cached keys / values with the new ones (a decode step)
    tb.add_cache_update(attn, c.num_heads, t, c.head_size());
    tb.add_cache_update(attn, c.num_heads, t, c.head_size());
    tb.add_attention_core(attn, l + ".attn");
    tb.add_op(attn, "div", tb.scores_shape());  // / sqrt(head size)
    if (gpt2) {
      tb.add_op(attn, "where", tb.scores_shape());
    } else {
      tb.add_op(attn, "mul", tb.scores_shape());  // w * b
      tb.add_op(attn, "rsub", {1, 1, s, s});      // 1 - b
      tb.add_op(attn, "mul", {1, 1, s, s});       // -1e4 * (1 - b)
      tb.add_op(attn, "add", tb.scores_shape());  // w * b + ...
    }
    tb.add_conv1d(attn, l + ".attn.c_proj", h, h);
    tb.add_op(block, "add", tb.hidden_shape());  // residual
    if (!gpt2) tb.add_layer_norm(block, l + ".ln_1", h);
    if (gpt2) tb.add_layer_norm(block, l + ".ln_2", h);
    const int mlp = tb.add_module(block, l + ".mlp", "MLP");
    tb.add_conv1d(mlp, l + ".mlp.c_fc", h, c.intermediate_size);
    tb.add_activation_ops(mlp, act_op, tb.ffn_shape());
    tb.add_conv1d(mlp, l + ".mlp.c_proj", c.intermediate_size, h);
    tb.add_op(block, "add", tb.hidden_shape());  // residual
    if (!gpt2) tb.add_layer_norm(block, l + ".ln_2", h);
  }
  if (gpt2) tb.add_layer_norm(base, p + "ln_f", h);
}

}  // namespace irene::arch_detail
