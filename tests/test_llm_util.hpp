// Tiny configurations of the decoder LLM families, written by the tests (parsed from JSON text,
// or written as config.json files for the CLI), and their parameter counts by Hugging Face's
// formulas, written out here independently of the tree builders.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "irene/arch/config.hpp"

namespace irene_test {

struct TinyLlm {
  std::string name;  // folder name of its config.json
  std::string json;  // the config.json
  std::int64_t parameters;  // what Hugging Face's AutoModelForCausalLM counts (tied weights once)
};

// llama-like: embed V h; per layer q, k, v, o (+ biases), gate / up / down (+ biases), 2 norms;
// final norm; lm_head V h unless tied.
inline std::int64_t llama_params(std::int64_t V, std::int64_t h, std::int64_t I, std::int64_t H, std::int64_t KV,
                                 std::int64_t d, std::int64_t L, bool tie, bool qkv_bias, bool o_bias,
                                 bool mlp_bias) {
  const std::int64_t attn = h * H * d + 2 * h * KV * d + H * d * h + (qkv_bias ? H * d + 2 * KV * d : 0) +
                            (o_bias ? h : 0);
  const std::int64_t mlp = 3 * h * I + (mlp_bias ? 2 * I + h : 0);
  return V * h + L * (attn + mlp + 2 * h) + h + (tie ? 0 : V * h);
}

inline std::vector<TinyLlm> tiny_llms() {
  return {
      {"tiny-llama",
       R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128, "max_position_embeddings": 64,
           "hidden_act": "silu", "torch_dtype": "bfloat16"})",
       llama_params(128, 64, 96, 4, 2, 16, 2, false, false, false, false)},
      {"tiny-llama-bias-tied",
       R"({"model_type": "llama", "hidden_size": 48, "intermediate_size": 64, "num_attention_heads": 6,
           "num_key_value_heads": 6, "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 32,
           "attention_bias": true, "mlp_bias": true, "tie_word_embeddings": true})",
       llama_params(50, 48, 64, 6, 6, 8, 1, true, true, true, true)},
      {"tiny-mistral",
       R"({"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_key_value_heads": 1, "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 128,
           "sliding_window": 16, "head_dim": 24})",
       llama_params(100, 64, 128, 4, 1, 24, 2, false, false, false, false)},
      {"tiny-qwen2",
       R"({"model_type": "qwen2", "hidden_size": 48, "intermediate_size": 80, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 90, "max_position_embeddings": 64,
           "tie_word_embeddings": true})",
       llama_params(90, 48, 80, 4, 2, 12, 2, true, true, false, false)},
      // GPT-NeoX: embed_in V h; per layer 2 LayerNorms 4h, query_key_value h 3h + 3h, dense h h + h,
      // dense_h_to_4h h I + I, dense_4h_to_h I h + h; final LayerNorm 2h; embed_out V h.
      {"tiny-neox",
       R"({"model_type": "gpt_neox", "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4,
           "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64, "rotary_pct": 0.25,
           "use_parallel_residual": true, "hidden_act": "gelu"})",
       100 * 64 + 2 * (4 * 64 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64) + 128 + 100 * 64},
      // OPT: embed_tokens V p, embed_positions (max + 2) h, project_in p h, project_out h p; per layer
      // 2 LayerNorms 4h, q / k / v / out_proj 4 (h h + h), fc1 h I + I, fc2 I h + h; final
      // LayerNorm 2h; lm_head tied.
      {"tiny-opt",
       R"({"model_type": "opt", "hidden_size": 32, "ffn_dim": 64, "num_attention_heads": 2, "num_hidden_layers": 2,
           "vocab_size": 100, "max_position_embeddings": 64, "word_embed_proj_dim": 16,
           "do_layer_norm_before": true, "activation_function": "relu"})",
       100 * 16 + 66 * 32 + 16 * 32 + 32 * 16 + 2 * (4 * 32 + 4 * (32 * 32 + 32) + 32 * 64 + 64 + 64 * 32 + 32) + 64},
  };
}

inline irene::ModelConfig tiny_llm_config(const TinyLlm& t) { return irene::parse_model_config(t.json, t.name, t.name); }

// Writes every tiny config as DIR/NAME/config.json; returns DIR/NAME paths.
inline std::vector<std::filesystem::path> write_tiny_llms(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& t : tiny_llms()) {
    std::filesystem::create_directories(dir / t.name);
    std::ofstream(dir / t.name / "config.json") << t.json;
    out.push_back(dir / t.name);
  }
  return out;
}

}  // namespace irene_test
