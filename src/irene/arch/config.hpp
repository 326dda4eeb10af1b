// Hugging Face model configurations.
//
// A ModelConfig is a parsed `config.json` of a Hugging Face Transformer: the raw JSON plus the
// typed sizes the tree builders need, under one set of names whatever the model family calls
// them (BERT's `num_hidden_layers` is GPT-2's `n_layer` is DistilBERT's `n_layers`).
//
// Supported `model_type`s (the rows of the family table, family_table.hpp, which also holds each
// family's config keys): bert, roberta, distilbert, gpt2, openai-gpt, ctrl (the families of the
// published IrEne dataset) and the decoder LLM families llama (Llama 2 and 3, TinyLlama, Code
// Llama ...), mistral, qwen2, gpt_neox (Pythia) and opt. Built-in
// configurations live in `<repo>/models/<name>/config.json` (the six models of the published
// IrEne dataset and sshleifer/tiny-ctrl); the folder is found through env `IRENE_MODELS_DIR`,
// else `$IRENE_SOURCE_DIR/models`, else the source folder irene was built from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace irene {

struct ModelConfig {
  // The built-in name ("bert-base-uncased") or, for a file, `_name_or_path` / `name` from the
  // JSON when present, else the file's parent folder name, else the file name.
  std::string name;
  std::string model_type;  // "bert", "roberta", "distilbert", "gpt2", "openai-gpt", "ctrl", "llama", ...
  nlohmann::json raw;      // the config.json as read (updated by set_config_value)
  std::filesystem::path source;  // the file it came from
  // Overrides applied so far by set_config_values, in order ("num_hidden_layers" -> "6"); build_tree
  // records them in the tree's provenance ("overrides"), so every output names them.
  std::vector<std::pair<std::string, std::string>> overrides;
  // One line about what was read of the config and what was not ("" = nothing to say): a gemma3
  // config (Gemma3ForConditionalGeneration) is read as its text_config, whose language model is
  // built (the CLI prints it as "irene: note: ...").
  std::string note;

  // Typed sizes (canonical names; the Hugging Face key of each family in brackets).
  std::int64_t vocab_size = 0;         // [vocab_size]
  std::int64_t hidden_size = 0;        // [hidden_size | dim | n_embd]
  std::int64_t num_layers = 0;         // [num_hidden_layers | n_layers | n_layer]
  std::int64_t num_heads = 0;          // [num_attention_heads | n_heads | n_head]
  std::int64_t intermediate_size = 0;  // [intermediate_size | hidden_dim | n_inner (null: 4 x n_embd) | dff]
  std::int64_t max_positions = 0;      // [max_position_embeddings | n_positions]
  std::int64_t type_vocab_size = 0;    // [type_vocab_size] (BERT, RoBERTa; 0 elsewhere)
  // Key/value heads of grouped-query attention [num_key_value_heads] (llama, mistral, qwen2;
  // absent or null: num_heads); num_heads is a multiple of it.
  std::int64_t num_kv_heads = 0;
  // Width of one attention head [head_dim] (llama, mistral, qwen2, when given; else hidden_size /
  // num_heads, which must then divide evenly).
  std::int64_t head_dim = 0;
  // The LM head shares the token embeddings' weight [tie_word_embeddings] (Hugging Face's
  // default per family: true for the dataset's families and opt, false for llama, mistral, qwen2,
  // gpt_neox). Counted once.
  bool tie_word_embeddings = false;

  // A string setting of the config (e.g. "hidden_act"), `fallback` when absent or null. A value
  // of another type is an irene::Error naming the key (never nlohmann's type_error).
  std::string string_setting(const char* key, const std::string& fallback) const;
  std::int64_t head_size() const { return head_dim > 0 ? head_dim : num_heads > 0 ? hidden_size / num_heads : 0; }
  // A decoder that generates text (gpt2, openai-gpt, ctrl and the LLM families), as opposed to
  // the encoders bert, roberta and distilbert.
  bool is_decoder() const;
  // One of the decoder LLM families (llama, mistral, qwen2, gpt_neox, opt): its root is the class
  // AutoModelForCausalLM builds (LlamaForCausalLM ...), not the base model.
  bool is_causal_lm_family() const;
};

// The model_types the builders support, in the family table's order.
const std::vector<std::string>& supported_model_types();

// Names of the built-in configurations (bert-base-uncased, roberta-base, ...), sorted.
std::vector<std::string> builtin_model_names();

// The folder holding the built-in configurations (see the file comment).
std::filesystem::path models_dir();

// Loads a configuration: a built-in name, a path to a config.json (or to a folder holding one),
// or a Hugging Face model id ("meta-llama/Llama-2-7b-hf") found in the local Hugging Face cache
// (hf_cache_dirs(): folder models--ORG--NAME/snapshots/<revision>/config.json, the revision of
// refs/main, else the newest snapshot). Nothing is ever downloaded. A config's name is its
// "_name_or_path" / "name", else the model id, else its folder for a config.json and its file
// name for any other file (bert-tiny.json -> bert-tiny). Errors (irene::Error, one line): unknown name that is not a file ("unknown model 'x':
// not a built-in model (bert-base-uncased, ...) nor a config.json file"), unreadable file,
// malformed or truncated JSON ("FILE:LINE: not valid JSON ..."), a missing or non-positive
// size or one above its limit (core/limits.hpp, naming the key and the limit), hidden size not
// divisible by heads (without head_dim), heads not divisible by key/value heads, a flag that is
// not true/false, and an unsupported model_type (naming the supported ones).
ModelConfig load_model_config(std::string_view name_or_path);

// Where Hugging Face caches models: $HF_HUB_CACHE (or $HUGGINGFACE_HUB_CACHE) alone when set,
// else in the order searched $HF_HOME/hub (else $XDG_CACHE_HOME/huggingface/hub),
// ~/.cache/huggingface/hub.
std::vector<std::filesystem::path> hf_cache_dirs();

// Parses a config from JSON text; `where` names its origin in error messages.
ModelConfig parse_model_config(std::string_view json_text, const std::string& where,
                               const std::string& name = {});

// Overrides one size, e.g. ("num_hidden_layers", "6") or ("num_layers", "6"): canonical names
// (vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions,
// type_vocab_size, num_kv_heads, head_dim) and each family's Hugging Face key are accepted; the
// value must be a positive integer.
// The raw JSON is updated under the family's key. Errors: unknown key (naming the accepted
// ones), bad value, a result that fails validation (hidden size not divisible by heads).
void set_config_value(ModelConfig& config, std::string_view key, std::string_view value);

// Applies several overrides, validating once at the end (so hidden size and heads can change
// together). On error `config` is left as it was.
void set_config_values(ModelConfig& config, const std::vector<std::pair<std::string, std::string>>& overrides);

// Splits "key=value" (as given to --set, by every command, the Python module and explain's
// load_model). Errors: no '=' or an empty key ("bad --set 'x': expected key=value ...").
std::pair<std::string, std::string> parse_config_override(std::string_view text);

}  // namespace irene
