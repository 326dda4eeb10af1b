// The family table: one row per Transformer family irene builds, in the spirit of llama.cpp's
// per-architecture tables (llama-arch.cpp). Everything that differs between families and is not
// the shape of the tree itself lives in its row:
//
//   * who it is: its Hugging Face `model_type`, the `architectures` classes of its config.json,
//     its base-model and LM-head classes, the prefix of its module classes;
//   * the config keys it reads (each canonical size's Hugging Face key, which are the aliases
//     `--set` accepts, and the defaults of the keys that may be absent);
//   * its traits: causal (generates text), key/value cache, positions (learned, rotary,
//     sinusoidal), sdpa, norm class, pre- or post-norm, tied embeddings, parallel residual,
//     grouped-query attention, and for the families still to come: mixture of experts, sliding
//     window, qk-norm, logit soft-capping, latent attention (MLA);
//   * its modules: the attribute and class name of each module (or leaf) that starts a part of
//     the model, with the part's kind (embeddings, attention, feed-forward, norm, LM head,
//     experts, router), so explanations read each node's kind from the table;
//   * its builder: the function of its builder file that adds the base model's nodes, and the
//     function that adds its LM head.
//
// Config reading (config.cpp), tree building and its errors (builder.cpp), the generation
// checks (explain/generation.cpp) and the module kinds of explanations (explain/explain.cpp)
// read the table; no code outside family_table.cpp tests a model_type.
//
// A new family is one builder file plus one row (and registry entries if it brings new
// primitives or operations); see README.md in this folder for the rule and a worked example.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "irene/arch/config.hpp"
#include "irene/arch/module_kind.hpp"
#include "irene/core/tree.hpp"

namespace irene {

namespace arch_detail {
class TreeBuilder;
}

// How a family encodes positions.
enum class Positions {
  learned,     // a position table of max_position_embeddings rows (BERT, GPT-2, OPT ...)
  sinusoidal,  // a fixed sinusoidal buffer, no parameters (CTRL)
  rotary,      // rotary embedding of queries and keys (Llama, GPT-NeoX ...): no table, so
               // --allow-long may build past max_position_embeddings
};

// One module (or leaf) that starts a part of the model: the node whose scope ends in
// `attribute` (its attribute name in its parent) of class `class_name` ("" = any class) is of
// `kind`, and so is everything under it (see module_kind_of for the precedence). A declaration
// with an empty attribute is a class rule for the node itself (every Embedding leaf is
// embeddings, wherever it sits).
struct ModuleDecl {
  std::string_view attribute;
  std::string_view class_name;
  ModuleKind kind;
};

// A true/false setting a family reads, validated when the config is read.
struct FlagKey {
  std::string_view key;
  bool absent;  // its value when absent or null
};

// The config.json keys of one family. Each size's key is the alias `--set` accepts beside the
// canonical name (hidden_size = n_embd for GPT-2); "" = the family has no such key.
struct ConfigKeys {
  std::string_view hidden, layers, heads;
  std::string_view intermediate;       // "": always 4 x hidden (OpenAI-GPT)
  bool intermediate_optional = false;  // absent or null: 4 x hidden (GPT-2's n_inner)
  std::string_view positions;
  std::string_view type_vocab = {};          // "": none (required when named)
  std::string_view kv_heads = {};            // "": as many as heads; absent or null: as many as heads
  std::string_view head_dim = {};            // "": hidden / heads; absent or null: hidden / heads
  std::int64_t head_dim_default = 0;         // head_dim when absent or null (Gemma: 256); 0: hidden / heads
  std::string_view activation = {};          // the activation's key ("hidden_act"); "": fixed by the family
  std::string_view activation_default = {};  // its value when absent or null ("gelu", "silu" ...)
  bool tie_default = true;                   // tie_word_embeddings when the config does not say
  // rotary_pct: the share of each head's dimensions rotary embedding turns (GPT-NeoX), with its
  // default; "": the whole head (or no rotary embedding).
  std::string_view rotary_pct = {};
  double rotary_pct_default = 1.0;
  std::vector<FlagKey> flags = {};                 // further true/false settings it reads
  std::vector<std::string_view> extra_sizes = {};  // further optional sizes it reads (positive integers)
};

// One family: a row of the table.
struct FamilyInfo {
  std::string_view model_type;                  // "gpt2"
  std::vector<std::string_view> architectures;  // config.json "architectures" classes it builds
  std::string_view base_class;                  // the base model: "GPT2Model"
  std::string_view lm_class;                    // the LM-head class ("GPT2LMHeadModel"; encoders: masked LM)
  std::string_view base_scope;                  // the base model's attribute in the LM-head class
  std::string_view class_prefix;                // of its module classes: "Llama" (LlamaAttention ...)
  ConfigKeys keys;

  // Traits.
  bool causal = false;    // a decoder that generates text (not an encoder)
  bool lm_root = false;   // its default root is the LM-head class (the decoder LLM families)
  bool kv_cache = false;  // Hugging Face's implementation has a key/value cache: a decode step
  bool sdpa = false;      // the Hugging Face version built has sdpa attention (--attention sdpa)
  Positions positions = Positions::learned;
  std::int64_t reserved_positions = 0;         // positions input tokens cannot use (RoBERTa: padding_idx + 1)
  std::string_view norm_class = "LayerNorm";   // its normalization's class (LlamaRMSNorm ...)
  bool pre_norm = true;                        // norm before attention / feed-forward (false: after, OpenAI-GPT, BERT)
  bool parallel_residual = false;              // attention and feed-forward read the same input (GPT-NeoX)
  bool grouped_query = false;                  // reads num_key_value_heads (grouped-query attention)
  bool qkv_bias = false;                       // biases on q, k and v whatever the config says (Qwen2)
  bool bias_flags = false;                     // reads attention_bias and mlp_bias (Llama)
  std::string_view lm_head_scope = "lm_head";  // the causal LM head's attribute (GPT-NeoX: embed_out)
  bool lm_head_bias = false;                   // the causal LM head has a bias of its own (CTRL)
  // The families of the next architectures (declared so their rows need no new fields).
  bool moe = false;               // mixture-of-experts feed-forward (router + experts)
  bool sliding_window = false;    // sliding-window attention (sliding_window key)
  bool qk_norm = false;           // a norm on queries and keys before rotary embedding
  bool logit_softcap = false;     // tanh soft-capping of attention scores or logits
  bool latent_attention = false;  // multi-head latent attention (DeepSeek's MLA)

  std::vector<ModuleDecl> modules;

  // Adds every node of the base model below `base`, scopes prefixed by `prefix` (builder.hpp).
  void (*build)(arch_detail::TreeBuilder& tb, int base, const std::string& prefix) = nullptr;
  // Adds the LM head under the LM-head root.
  void (*lm_head)(arch_detail::TreeBuilder& tb, int root) = nullptr;

  bool rotary() const { return positions == Positions::rotary; }
  // The root class for the default head.
  std::string_view root_class() const { return lm_root ? lm_class : base_class; }
};

// Every row, in a fixed order (bert, roberta, distilbert, gpt2, openai-gpt, ctrl, llama,
// mistral, qwen2, gpt_neox, opt).
const std::vector<FamilyInfo>& families();

// The row of a model_type; nullptr when unsupported.
const FamilyInfo* find_family(std::string_view model_type);

// The row of a configuration's model_type. Unsupported: irene::Error "NAME: unsupported
// model_type 'X' (supported: bert, roberta, ...)".
const FamilyInfo& family_of(const ModelConfig& config);

// The row whose base-model or LM-head class is `root_class` (the root of a tree built or read
// back); nullptr when none.
const FamilyInfo* family_of_root(std::string_view root_class);

// The model_types of the rows that satisfy `pred` (nullptr: every row), joined with ", " (for the
// lists in errors).
std::string family_list(bool (*pred)(const FamilyInfo&));

// The kind of one node from its scope and class, by the declarations of `family` (nullptr: of
// every row), first rule that applies:
//   1. the node's class is a family's norm_class: norm, wherever it sits;
//   2. the node's class has a class rule (a declaration with no attribute: Embedding): its kind;
//   3. walking the scope from the outside in, a segment declared embeddings, LM head, experts
//      or router: that kind (the first such);
//   4. else the outermost segment declared attention or feed-forward: that kind;
//   5. else other (containers such as a layer, the pooler, the model itself).
// A segment is looked up by its attribute; where several declarations share it (across rows, or
// modules of different classes in one row), the one of the segment's class wins, else the first.
// The last segment's class is the node's own (a MatMul leaf carries the scope of its attention
// module: the attribute alone decides there); with `classes` (one per segment, "" = unknown) the
// others' are the classes of the ancestors they name. Never throws.
ModuleKind module_kind_of(std::string_view scope, std::string_view class_name, const FamilyInfo* family = nullptr,
                          const std::vector<std::string_view>& classes = {});

// The kind of every node of a tree, in node order: the declarations of the family of its root's
// class (family_of_root; every row's when unknown), each segment matched with the class of the
// ancestor it names.
std::vector<ModuleKind> module_kinds_of(const Tree& tree);

}  // namespace irene
