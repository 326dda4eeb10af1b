// Model trees from Hugging Face configurations.
//
// build_tree(config, batch, seq) returns the IrEne tree of one forward pass of the model on
// `batch` sequences of `seq` tokens: the model at the root, Hugging Face modules nested as in
// the library (ModuleList containers such as `encoder.layer` / `h` and Dropout are not nodes),
// and ML primitives (registry.hpp) as leaves; MatMul and Softmax leaves carry the scope of the
// attention module that calls them. Class names are those of the Hugging Face version the
// published IrEne dataset was recorded with (GPT-2's blocks are `Block`, `Attention`, `MLP`).
//
// Every node gets its id, scope, depth, type, class name, `attrs` (shapes, see registry.hpp),
// `ops` (its element-wise operations that are not nodes) and, through recount(), its
// num_parameters, flops (MFLOP) and mem (MiB) for this batch and sequence length.
//
// One file per family (bert_like.cpp: bert, roberta; distilbert.cpp; gpt_like.cpp: gpt2,
// openai-gpt; ctrl.cpp; llama_like.cpp: llama, mistral, qwen2; gpt_neox.cpp; opt.cpp), sharing
// the helpers of families.hpp; the family table (family_table.hpp) holds each family's row:
// classes, config keys, traits, module kinds and the builder functions build_tree calls.
//
// Text generation (BuildOptions): a prefill is the full forward of `seq` tokens (what the
// dataset measured); a decode step feeds one new token per sequence that attends to `past`
// cached positions plus itself, with the key/value cache updated as Hugging Face's DynamicCache
// does (torch.cat of the cache and the new position). The decoder LLM families are counted as
// Hugging Face's eager code path runs them (transformers 4.48: modeling_llama.py's
// eager_attention_forward; see registry.hpp), with an attention mask of ones as a tokenizer and
// generate() pass it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "irene/arch/config.hpp"
#include "irene/core/tree.hpp"

namespace irene {

// What pass of which class to build, beyond the model, batch and sequence length.
struct BuildOptions {
  std::string phase = kPrefill;  // kPrefill (a full forward of seq tokens) or kDecode (one step)
  int past = 0;                   // decode: cached positions the new token attends to (>= 1)
  std::string dtype = "float32";  // float32 | float16 | bfloat16 (bytes of weights, activations, cache)
  std::string attention = "eager";  // eager | sdpa (LLM families: one ScaledDotProductAttention leaf)
  // The weights' format (arch/weight_format.hpp): "" = the config's quantization_config when it
  // has one (fp8 with block scales, mxfp4, GPTQ/AWQ int4 or int8), else the dtype; "same" (or
  // "same-as-dtype"): the dtype whatever the config says; "fp8" | "mxfp4" | "int8" | "int4". The
  // quantized Linear weights of the layers are counted in their bytes, scales included, with a
  // dequantize op where they are read; FLOPs of the products do not change.
  std::string weights;
  // The key/value cache's element type (arch/weight_format.hpp's kv_cache_element_bytes): "" = the
  // dtype; "fp8" | "bfloat16" | "float16" | "float32". A decode step's cache reads and writes
  // (cache_cat, the attention leaves that read it, repeat_kv's source) and a prefill's store of
  // its new keys and values (cache_store) are counted in its bytes; FLOPs unchanged (the upcast
  // happens in the attention kernel's registers, as vLLM's fp8 cache kernels do).
  std::string kv_cache_dtype;
  // The root class: "" = the family's default (the base model for the six dataset models, as the
  // dataset; the class AutoModelForCausalLM builds for the LLM families), "base" (BertModel,
  // GPT2Model, LlamaModel ...) or "lm" (the LM-head class: GPT2LMHeadModel, LlamaForCausalLM ...;
  // for the encoders their masked-LM class, BertForMaskedLM ..., which does not generate text).
  std::string head;
  // past + seq beyond max_position_embeddings is an error unless this is set (rotary position
  // families only: a learned position table has no row for it).
  bool allow_long = false;
  // The LM head runs on the last position only, as generate() asks for (logits_to_keep = 1);
  // otherwise on every position, as a plain forward.
  bool last_token_logits = false;
};

// The phases, dtypes, attention kinds and heads BuildOptions accepts (for option help and errors).
const std::vector<std::string>& supported_phases();
const std::vector<std::string>& supported_attention();

// Errors (irene::Error, one line): batch or seq not positive; seq longer than the model's
// positions (a decode step: past + 1, unless allow_long for a rotary model); a decode step of an
// encoder, with seq other than 1 or past < 1; past without the decode phase; an unknown phase,
// dtype, attention or head; sdpa where the family has none; an unsupported model_type (naming the
// supported ones). The lists of families in these errors are the family table's.
Tree build_tree(const ModelConfig& config, int batch, int seq, const BuildOptions& options = {});

// The batch size and sequence length (tokens) that commands build a model for when they are not
// given: irene tree, predict, explain, compare, sweep, report.
inline constexpr int kDefaultBatch = 8;
inline constexpr int kDefaultSeq = 128;

// BuildOptions from option texts as the command line, the HTTP API and Python give them ("" =
// the default: prefill, no past, float32, eager, the family's head). Errors (irene::Error, one
// line naming the option): --past not a positive integer, or given without --phase decode; an
// unknown phase, dtype, attention, head, weight format or cache dtype (naming the accepted ones).
BuildOptions make_build_options(std::string_view phase, std::string_view past, std::string_view dtype = "",
                                std::string_view attention = "", std::string_view head = "", bool allow_long = false,
                                std::string_view weights = "", std::string_view kv_cache_dtype = "");

// Tokens per sequence of a pass from the --seq text: "" = 1 for a decode step, kDefaultSeq
// otherwise. Errors: not a positive integer; a decode step with seq other than 1.
int pass_seq(std::string_view seq, const BuildOptions& options);

// One line describing a tree's pass for headers: "batch 8  seq 128  float32", with "  decode
// past 512", "  weights fp8", "  kv-cache fp8" and "  sdpa" where they apply.
std::string describe_pass(const Tree& tree);

// The class name of the model's root node for its default head (BertModel, RobertaModel,
// DistilBertModel, GPT2Model, OpenAIGPTModel, CTRLModel, LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM, GPTNeoXForCausalLM, OPTForCausalLM). Unsupported model_type: irene::Error.
std::string root_class_name(const ModelConfig& config);

}  // namespace irene
