// Mixtral (modeling_mixtral.py), as transformers 4.5x builds and runs it with eager attention:
//
//   MixtralForCausalLM
//     model (MixtralModel): embed_tokens, layers.N (MixtralDecoderLayer), norm (MixtralRMSNorm);
//       ops: the causal mask and rotary_emb's cos / sin
//       layers.N: input_layernorm, self_attn (MixtralAttention: q_proj, k_proj, v_proj, the
//                 attention, o_proj), post_attention_layernorm, block_sparse_moe
//                 (MixtralSparseMoeBlock); ops: the two residual adds
//         block_sparse_moe: gate (Linear hidden -> num_local_experts, the router), experts
//                 (MixtralBlockSparseTop2MLP: w1, act_fn, w3, w2) standing for all
//                 num_local_experts experts; ops: softmax of the router logits, top-k
//                 (num_experts_per_tok), the renormalisation of the k weights, the output
//                 buffer, the gather of the routed rows, the routing-weight product, index_add_
//     lm_head
//
// Mixture of experts as it runs (registry.hpp, routed_active_experts): the experts module and its
// leaves stand for every expert, on the batch x seq x top_k rows a step routes to them, each
// expert reading its weights when at least one token chooses it (uniform routing).
#include <fmt/format.h>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_mixtral(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size;
  const auto [experts, top_k] = routed_experts(c, "num_local_experts", 8, 2);
  SelfAttentionCall attn{cls + "Attention", c.num_heads, c.num_kv_heads, c.head_size(), false, false, ""};
  GatedMlpCall expert;
  expert.intermediate = c.intermediate_size;
  expert.activation = tb.activation();
  expert.gate = "w1";
  expert.up = "w3";
  expert.down = "w2";
  expert.experts = experts;
  expert.top_k = top_k;
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, c.head_size());
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_attention_half(base, l, cls + "DecoderLayer", norm, attn);
    tb.add_sparse_moe(layer, l + ".block_sparse_moe", cls + "SparseMoeBlock", cls + "BlockSparseTop2MLP", expert, true);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
