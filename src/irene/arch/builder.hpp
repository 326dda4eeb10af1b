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
// openai-gpt; ctrl.cpp), sharing the helpers of families.hpp.
#pragma once

#include "irene/arch/config.hpp"
#include "irene/core/tree.hpp"

namespace irene {

// Errors (irene::Error): batch or seq not positive; seq longer than the model's positions;
// an unsupported model_type (naming the supported ones).
Tree build_tree(const ModelConfig& config, int batch, int seq);

// The batch size and sequence length (tokens) that commands build a model for when they are not
// given: irene tree, predict, explain, compare, sweep, report.
inline constexpr int kDefaultBatch = 8;
inline constexpr int kDefaultSeq = 128;

// The class name of the model's root node (BertModel, RobertaModel, DistilBertModel,
// GPT2Model, OpenAIGPTModel, CTRLModel). Unsupported model_type: irene::Error.
std::string root_class_name(const ModelConfig& config);

}  // namespace irene
