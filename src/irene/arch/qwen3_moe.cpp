// Qwen3-MoE (modeling_qwen3_moe.py), as transformers 4.5x builds and runs it with eager attention:
//
//   Qwen3MoeForCausalLM
//     model (Qwen3MoeModel): embed_tokens, layers.N (Qwen3MoeDecoderLayer), norm; ops: the causal
//       mask and rotary_emb's cos / sin
//       layers.N: input_layernorm, self_attn (Qwen3MoeAttention: q_proj, q_norm, k_proj, k_norm,
//                 v_proj, the attention, o_proj; as Qwen3), post_attention_layernorm, mlp; ops:
//                 the two residual adds
//         mlp of a sparse layer (Qwen3MoeSparseMoeBlock): gate (the router, hidden -> num_experts),
//                 experts (Qwen3MoeMLP of moe_intermediate_size: gate_proj, act_fn, up_proj,
//                 down_proj) standing for the num_experts experts; ops: softmax, top-k
//                 (num_experts_per_tok), the renormalisation when norm_topk_prob, the output
//                 buffer, gather, routing-weight product, index_add_ (as Mixtral's)
//         mlp of a dense layer (Qwen3MoeMLP of intermediate_size): a layer listed in
//                 mlp_only_layers, or whose (index + 1) is not a multiple of decoder_sparse_step
//     lm_head
#include <fmt/format.h>

#include <algorithm>

#include "irene/arch/families.hpp"

namespace irene::arch_detail {

void build_qwen3_moe(TreeBuilder& tb, int base, const std::string& p) {
  const ModelConfig& c = tb.config();
  const FamilyInfo& f = tb.family();
  const std::string cls(f.class_prefix), norm(f.norm_class);
  const auto h = c.hidden_size;
  const auto [experts, top_k] = routed_experts(c, "num_experts", 128, 8);
  const auto step = config_size(c, "decoder_sparse_step", 1);
  const std::vector<std::int64_t> dense_layers = config_layer_list(c, "mlp_only_layers");
  const bool renormalize = config_flag(c, "norm_topk_prob", false);
  SelfAttentionCall attn{cls + "Attention", c.num_heads, c.num_kv_heads, c.head_size(), false, false, norm};
  GatedMlpCall dense, expert;
  dense.intermediate = c.intermediate_size;
  dense.activation = expert.activation = tb.activation();
  expert.intermediate = config_size(c, "moe_intermediate_size", 768);
  expert.experts = experts;
  expert.top_k = top_k;
  tb.add_embedding(base, p + "embed_tokens", c.vocab_size, h, tb.b);
  tb.add_mask_and_rotary_ops(base, c.head_size());
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = fmt::format("{}layers.{}", p, i);
    const int layer = tb.add_attention_half(base, l, cls + "DecoderLayer", norm, attn);
    const bool sparse =
        std::find(dense_layers.begin(), dense_layers.end(), i) == dense_layers.end() && (i + 1) % step == 0;
    if (sparse)
      tb.add_sparse_moe(layer, l + ".mlp", cls + "SparseMoeBlock", cls + "MLP", expert, renormalize);
    else
      tb.add_gated_mlp(layer, l + ".mlp", cls + "MLP", dense);
    tb.add_op(layer, "add", tb.hidden_shape());  // residual
  }
  tb.add_rms_norm(base, p + "norm", norm, h);
}

}  // namespace irene::arch_detail
