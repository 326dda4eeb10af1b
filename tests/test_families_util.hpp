// The model families people serve in 2026 (qwen3, qwen3_moe, mixtral, phi3, starcoder2, gemma2,
// gemma3_text / gemma3, gpt_oss, deepseek_v3): their parameter counts by Hugging Face's
// AutoModelForCausalLM, written out here from the modeling files independently of the tree
// builders (docs/families-2026.md gives each rule and where it comes from), and tiny
// configurations of each family for the tests.
//
// Counting conventions (PyTorch's Module.parameters(), which num_parameters() sums): every
// nn.Parameter once (a tied LM head shares the token embeddings' weight), buffers never (rotary
// inv_freq, Gemma's embed_scale, DeepSeek-V3's e_score_correction_bias), every expert of a
// mixture of experts. "Active" parameters are those one token reads: the total less the routed
// experts a token does not use (num_experts - top_k per MoE layer); shared experts, routers and
// the embeddings count as active.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace irene_test {

// One projection nn.Linear(in, out, bias).
inline std::int64_t linear_params(std::int64_t in, std::int64_t out, bool bias = false) {
  return in * out + (bias ? out : 0);
}

// q/k/v/o of grouped-query attention: q h -> H d, k and v h -> KV d, o H d -> h.
inline std::int64_t gqa_params(std::int64_t h, std::int64_t H, std::int64_t KV, std::int64_t d, bool qkv_bias,
                               bool o_bias) {
  return linear_params(h, H * d, qkv_bias) + 2 * linear_params(h, KV * d, qkv_bias) + linear_params(H * d, h, o_bias);
}

// A gated MLP (gate, up: h -> I; down: I -> h) without biases: Qwen3MLP, Gemma2MLP, Mixtral's
// w1 / w3 / w2, DeepseekV3MLP.
inline std::int64_t glu_params(std::int64_t h, std::int64_t I) { return 3 * h * I; }

// Token embeddings V x h, plus an LM head V x h unless tied.
inline std::int64_t embedding_params(std::int64_t V, std::int64_t h, bool tie) { return V * h * (tie ? 1 : 2); }

struct FamilyCount {
  std::int64_t total = 0;
  std::int64_t active = 0;  // = total for a dense model
};

// Qwen3ForCausalLM: per layer q/k/v/o (+ biases with attention_bias, on all four), q_norm and
// k_norm (Qwen3RMSNorm over head_dim), the gated MLP, input_layernorm and
// post_attention_layernorm; final norm.
inline FamilyCount qwen3_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t H, std::int64_t KV,
                                std::int64_t d, std::int64_t L, bool tie, bool attention_bias) {
  const std::int64_t layer = gqa_params(h, H, KV, d, attention_bias, attention_bias) + 2 * d + glu_params(h, I) + 2 * h;
  const std::int64_t t = embedding_params(V, h, tie) + L * layer + h;
  return {t, t};
}

// Qwen3MoeForCausalLM: Qwen3's attention; a layer is sparse (Qwen3MoeSparseMoeBlock: gate
// h -> E without bias, E experts Qwen3MoeMLP of moe_intermediate_size) unless it is in
// mlp_only_layers or (layer + 1) % decoder_sparse_step != 0, then a Qwen3MoeMLP of
// intermediate_size. `sparse_layers` of the L are sparse.
inline FamilyCount qwen3_moe_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t moe_I,
                                    std::int64_t E, std::int64_t k, std::int64_t H, std::int64_t KV, std::int64_t d,
                                    std::int64_t L, std::int64_t sparse_layers, bool tie) {
  const std::int64_t common = gqa_params(h, H, KV, d, false, false) + 2 * d + 2 * h;
  const std::int64_t sparse = common + h * E + E * glu_params(h, moe_I);
  const std::int64_t dense = common + glu_params(h, I);
  const std::int64_t t = embedding_params(V, h, tie) + sparse_layers * sparse + (L - sparse_layers) * dense + h;
  return {t, t - sparse_layers * (E - k) * glu_params(h, moe_I)};
}

// MixtralForCausalLM: q/k/v/o without biases; block_sparse_moe: gate h -> E (no bias), E
// experts MixtralBlockSparseTop2MLP (w1, w3: h -> I; w2: I -> h); two RMSNorms per layer.
inline FamilyCount mixtral_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t E, std::int64_t k,
                                  std::int64_t H, std::int64_t KV, std::int64_t d, std::int64_t L, bool tie) {
  const std::int64_t common = gqa_params(h, H, KV, d, false, false) + h * E + 2 * h;
  const std::int64_t t = embedding_params(V, h, tie) + L * (common + E * glu_params(h, I)) + h;
  return {t, t - L * (E - k) * glu_params(h, I)};
}

// Phi3ForCausalLM: qkv_proj h -> (H + 2 KV) d and o_proj H d -> h, gate_up_proj h -> 2 I and
// down_proj I -> h, no biases; two Phi3RMSNorms per layer (the residual dropouts hold nothing).
inline FamilyCount phi3_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t H, std::int64_t KV,
                               std::int64_t d, std::int64_t L, bool tie) {
  const std::int64_t layer = linear_params(h, (H + 2 * KV) * d) + linear_params(H * d, h) + linear_params(h, 2 * I) +
                             linear_params(I, h) + 2 * h;
  const std::int64_t t = embedding_params(V, h, tie) + L * layer + h;
  return {t, t};
}

// Starcoder2ForCausalLM: q/k/v/o and mlp.c_fc (h -> I) / mlp.c_proj (I -> h), all with biases
// when use_bias (default true); input_layernorm and post_attention_layernorm are nn.LayerNorm
// (weight and bias), as the final norm; tied LM head by default.
inline FamilyCount starcoder2_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t H, std::int64_t KV,
                                     std::int64_t d, std::int64_t L, bool tie, bool use_bias) {
  const std::int64_t layer = gqa_params(h, H, KV, d, use_bias, use_bias) + linear_params(h, I, use_bias) +
                             linear_params(I, h, use_bias) + 4 * h;
  const std::int64_t t = embedding_params(V, h, tie) + L * layer + 2 * h;
  return {t, t};
}

// Gemma2ForCausalLM / Gemma3ForCausalLM: q/k/v/o (biases with attention_bias), the gated MLP,
// four norms per layer (input_layernorm, post_attention_layernorm, pre_feedforward_layernorm,
// post_feedforward_layernorm; Gemma RMSNorm weights of h), Gemma 3's q_norm and k_norm over
// head_dim (`qk_norm`); final norm; tied LM head by default. The embedding scale sqrt(h) is a
// constant (Gemma 3: a buffer of Gemma3TextScaledWordEmbedding), not a parameter.
inline FamilyCount gemma_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t H, std::int64_t KV,
                                std::int64_t d, std::int64_t L, bool tie, bool qk_norm) {
  const std::int64_t layer = gqa_params(h, H, KV, d, false, false) + (qk_norm ? 2 * d : 0) + glu_params(h, I) + 4 * h;
  const std::int64_t t = embedding_params(V, h, tie) + L * layer + h;
  return {t, t};
}

// GptOssForCausalLM: q/k/v/o with biases (attention_bias, true in the published configs),
// sinks (one per head); mlp.router (GptOssTopKRouter: weight E x h and bias E); mlp.experts
// (GptOssExperts: gate_up_proj E x h x 2I, gate_up_proj_bias E x 2I, down_proj E x I x h,
// down_proj_bias E x h); two RMSNorms per layer.
inline FamilyCount gpt_oss_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t E, std::int64_t k,
                                  std::int64_t H, std::int64_t KV, std::int64_t d, std::int64_t L, bool tie,
                                  bool attention_bias) {
  const std::int64_t expert = h * 2 * I + 2 * I + I * h + h;
  const std::int64_t common =
      gqa_params(h, H, KV, d, attention_bias, attention_bias) + H + linear_params(h, E, true) + 2 * h;
  const std::int64_t t = embedding_params(V, h, tie) + L * (common + E * expert) + h;
  return {t, t - L * (E - k) * expert};
}

// DeepseekV3ForCausalLM (transformers' own modeling_deepseek_v3.py; the multi-token-prediction
// layer of the checkpoint is not built). Multi-head latent attention per layer: q_a_proj
// h -> q_lora_rank, q_a_layernorm, q_b_proj q_lora_rank -> H (nope + rope) (or, when
// q_lora_rank is null, q_proj h -> H (nope + rope)); kv_a_proj_with_mqa h -> kv_lora_rank + rope,
// kv_a_layernorm over kv_lora_rank, kv_b_proj kv_lora_rank -> H (nope + v); o_proj H v -> h
// (biases on q_a_proj, kv_a_proj_with_mqa and o_proj with attention_bias). The first
// `first_dense` layers have a DeepseekV3MLP of intermediate_size; the others a DeepseekV3MoE:
// gate (DeepseekV3TopkRouter: weight E x h; e_score_correction_bias is a buffer), E experts of
// moe_intermediate_size and shared_experts, one DeepseekV3MLP of moe_I x n_shared.
struct MlaSizes {
  std::int64_t q_lora_rank = 0;  // 0: null (q_proj)
  std::int64_t kv_lora_rank = 0;
  std::int64_t nope = 0;  // qk_nope_head_dim
  std::int64_t rope = 0;  // qk_rope_head_dim
  std::int64_t v = 0;     // v_head_dim
};
inline std::int64_t mla_params(std::int64_t h, std::int64_t H, const MlaSizes& m, bool attention_bias) {
  const std::int64_t q = m.q_lora_rank > 0 ? linear_params(h, m.q_lora_rank, attention_bias) + m.q_lora_rank +
                                                 linear_params(m.q_lora_rank, H * (m.nope + m.rope))
                                           : linear_params(h, H * (m.nope + m.rope));
  return q + linear_params(h, m.kv_lora_rank + m.rope, attention_bias) + m.kv_lora_rank +
         linear_params(m.kv_lora_rank, H * (m.nope + m.v)) + linear_params(H * m.v, h, attention_bias);
}
inline FamilyCount deepseek_v3_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t moe_I,
                                      std::int64_t E, std::int64_t k, std::int64_t n_shared, std::int64_t H,
                                      const MlaSizes& m, std::int64_t L, std::int64_t first_dense, bool tie) {
  const std::int64_t common = mla_params(h, H, m, false) + 2 * h;
  const std::int64_t dense = common + glu_params(h, I);
  const std::int64_t sparse = common + E * h + E * glu_params(h, moe_I) + glu_params(h, moe_I * n_shared);
  const std::int64_t t = embedding_params(V, h, tie) + first_dense * dense + (L - first_dense) * sparse + h;
  return {t, t - (L - first_dense) * (E - k) * glu_params(h, moe_I)};
}

// Key/value cache elements one position adds per layer: full heads 2 KV d; DeepSeek-V3's
// latent cache kv_lora_rank + qk_rope_head_dim (what a served decode step keeps and reads).
inline std::int64_t kv_cache_elements(std::int64_t KV, std::int64_t d) { return 2 * KV * d; }
inline std::int64_t mla_cache_elements(const MlaSizes& m) { return m.kv_lora_rank + m.rope; }

// Expected distinct experts a step of T tokens activates under uniform top-k routing over E
// experts: E (1 - (1 - k / E)^T).
inline double expected_active_experts(std::int64_t E, std::int64_t k, std::int64_t T) {
  double miss = 1;
  for (std::int64_t t = 0; t < T; ++t) miss *= 1.0 - static_cast<double>(k) / static_cast<double>(E);
  return static_cast<double>(E) * (1.0 - miss);
}

// A tiny configuration of a family and what Hugging Face counts for it.
struct TinyFamily {
  std::string name;  // folder name of its config.json
  std::string json;  // the config.json
  FamilyCount params;
};

inline std::vector<TinyFamily> tiny_families() {
  return {
      {"tiny-qwen3",
       R"({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24, "num_hidden_layers": 2,
           "vocab_size": 128, "max_position_embeddings": 64, "tie_word_embeddings": false, "hidden_act": "silu"})",
       qwen3_params(128, 64, 96, 4, 2, 24, 2, false, false)},
      {"tiny-qwen3-bias-tied",
       R"({"model_type": "qwen3", "hidden_size": 48, "intermediate_size": 64, "num_attention_heads": 6,
           "num_key_value_heads": 6, "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 32,
           "attention_bias": true, "tie_word_embeddings": true})",
       qwen3_params(50, 48, 64, 6, 6, 8, 1, true, true)},
      // Layers 0 and 2 sparse, 1 in mlp_only_layers (dense).
      {"tiny-qwen3-moe",
       R"({"model_type": "qwen3_moe", "hidden_size": 48, "intermediate_size": 64, "moe_intermediate_size": 32,
           "num_experts": 8, "num_experts_per_tok": 2, "decoder_sparse_step": 1, "mlp_only_layers": [1],
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 3,
           "vocab_size": 100, "max_position_embeddings": 64, "norm_topk_prob": true})",
       qwen3_moe_params(100, 48, 64, 32, 8, 2, 4, 2, 16, 3, 2, false)},
      {"tiny-mixtral",
       R"({"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96, "num_local_experts": 4,
           "num_experts_per_tok": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
           "vocab_size": 100, "max_position_embeddings": 128, "sliding_window": null})",
       mixtral_params(100, 64, 96, 4, 2, 4, 2, 16, 2, false)},
      {"tiny-phi3",
       R"({"model_type": "phi3", "hidden_size": 64, "intermediate_size": 80, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 120, "max_position_embeddings": 64,
           "original_max_position_embeddings": 64, "sliding_window": 31, "resid_pdrop": 0.0})",
       phi3_params(120, 64, 80, 4, 2, 16, 2, false)},
      {"tiny-starcoder2",
       R"({"model_type": "starcoder2", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64,
           "hidden_act": "gelu_pytorch_tanh", "norm_epsilon": 1e-05, "sliding_window": 16})",
       starcoder2_params(100, 64, 128, 4, 2, 16, 2, true, true)},
      {"tiny-starcoder2-nobias",
       R"({"model_type": "starcoder2", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
           "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": 40, "max_position_embeddings": 32,
           "use_bias": false, "tie_word_embeddings": false})",
       starcoder2_params(40, 32, 64, 2, 1, 16, 1, false, false)},
      // head_dim 16 != 48 / 4; layers 0 and 2 slide over 4 positions, layer 1 is global.
      {"tiny-gemma2",
       R"({"model_type": "gemma2", "hidden_size": 48, "intermediate_size": 96, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 3, "vocab_size": 100,
           "max_position_embeddings": 64, "sliding_window": 4, "query_pre_attn_scalar": 16,
           "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
           "hidden_activation": "gelu_pytorch_tanh"})",
       gemma_params(100, 48, 96, 4, 2, 16, 3, true, false)},
      // sliding_window_pattern 6 (the default): layers 0-4 and 6 slide, layer 5 is global.
      {"tiny-gemma3-text",
       R"({"model_type": "gemma3_text", "hidden_size": 48, "intermediate_size": 64, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 7, "vocab_size": 90,
           "max_position_embeddings": 64, "sliding_window": 4, "query_pre_attn_scalar": 16})",
       gemma_params(90, 48, 64, 4, 2, 16, 7, true, true)},
      // Gemma3ForConditionalGeneration's config: irene builds the text part (its text_config).
      {"tiny-gemma3",
       R"({"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
           "text_config": {"model_type": "gemma3_text", "hidden_size": 32, "intermediate_size": 64,
                           "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                           "num_hidden_layers": 2, "vocab_size": 80, "max_position_embeddings": 64,
                           "sliding_window": 4},
           "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                             "num_attention_heads": 2, "num_hidden_layers": 1, "image_size": 28, "patch_size": 14}})",
       gemma_params(80, 32, 64, 2, 1, 16, 2, true, true)},
      {"tiny-gpt-oss",
       R"({"model_type": "gpt_oss", "hidden_size": 64, "intermediate_size": 32, "num_local_experts": 4,
           "num_experts_per_tok": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
           "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64, "sliding_window": 4,
           "layer_types": ["sliding_attention", "full_attention"], "attention_bias": true,
           "tie_word_embeddings": false, "swiglu_limit": 7.0})",
       gpt_oss_params(100, 64, 32, 4, 2, 4, 2, 16, 2, false, true)},
      // One dense layer, two MoE layers with a shared expert.
      {"tiny-deepseek-v3",
       R"({"model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 24,
           "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1, "first_k_dense_replace": 1,
           "n_group": 2, "topk_group": 1, "num_attention_heads": 4, "num_key_value_heads": 4,
           "q_lora_rank": 32, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8,
           "num_hidden_layers": 3, "vocab_size": 100, "max_position_embeddings": 64, "tie_word_embeddings": false})",
       deepseek_v3_params(100, 64, 96, 24, 8, 2, 1, 4, MlaSizes{32, 16, 8, 4, 8}, 3, 1, false)},
      // DeepSeek-V2-Lite's form: q_lora_rank null (q_proj).
      {"tiny-deepseek-v3-no-q-lora",
       R"({"model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 48, "moe_intermediate_size": 16,
           "n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 2, "first_k_dense_replace": 0,
           "n_group": 1, "topk_group": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "q_lora_rank": null,
           "kv_lora_rank": 8, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8,
           "num_hidden_layers": 1, "vocab_size": 60, "max_position_embeddings": 64})",
       deepseek_v3_params(60, 32, 48, 16, 4, 2, 2, 2, MlaSizes{0, 8, 8, 4, 8}, 1, 0, false)},
  };
}

// The built-in configurations of the nine families (models/<org>/<name>/config.json, written
// from each model's published config.json) and what AutoModelForCausalLM counts for them; the
// model cards' rounded totals beside (docs/families-2026.md).
struct BuiltinFamilyModel {
  const char* name;
  FamilyCount params;
  double card_total_billions;
  double card_active_billions;  // 0: dense
};

inline std::vector<BuiltinFamilyModel> builtin_family_models() {
  return {
      {"Qwen/Qwen3-8B", qwen3_params(151936, 4096, 12288, 32, 8, 128, 36, false, false), 8.2, 0},
      {"Qwen/Qwen3-30B-A3B", qwen3_moe_params(151936, 2048, 6144, 768, 128, 8, 32, 4, 128, 48, 48, false), 30.5, 3.3},
      {"google/gemma-2-2b", gemma_params(256000, 2304, 9216, 8, 4, 256, 26, true, false), 2.61, 0},
      // The text part (Gemma3ForCausalLM of text_config; vocab_size 262208 by Gemma3TextConfig's
      // default); the card's 27.4B adds the SigLIP vision tower and the projector.
      {"google/gemma-3-27b-it", gemma_params(262208, 5376, 21504, 32, 16, 128, 62, true, true), 27.0, 0},
      {"microsoft/Phi-3-mini-4k-instruct", phi3_params(32064, 3072, 8192, 32, 32, 96, 32, false), 3.82, 0},
      {"mistralai/Mixtral-8x7B-v0.1", mixtral_params(32000, 4096, 14336, 8, 2, 32, 8, 128, 32, false), 46.7, 12.9},
      {"openai/gpt-oss-20b", gpt_oss_params(201088, 2880, 2880, 32, 4, 64, 8, 64, 24, false, true), 20.9, 3.6},
      {"bigcode/starcoder2-7b", starcoder2_params(49152, 4608, 18432, 36, 4, 128, 32, true, true), 7.17, 0},
      {"deepseek-ai/DeepSeek-V3",
       deepseek_v3_params(129280, 7168, 18432, 2048, 256, 8, 1, 128, MlaSizes{1536, 512, 128, 64, 128}, 61, 3, false),
       671, 37},
  };
}

}  // namespace irene_test
