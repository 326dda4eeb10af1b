// From what a user names to predicted trees: the glue between arch/, predict/ and explain/.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/tree.hpp"
#include "irene/explain/server.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::explain {

// The model every command names: a built-in name, a config.json path or a Hugging Face id in the
// local cache (load_model_config), with the overrides "KEY=VALUE" of `sets` (--set, each split by
// parse_config_override) applied together (set_config_values). Errors: unknown model,
// unreadable/malformed config, an override without '=' or with an empty key, or one
// set_config_values rejects.
ModelConfig load_model(std::string_view name_or_path, const std::vector<std::string>& sets);
// load_model (the name the explanation commands used first).
inline ModelConfig load_config_with_overrides(std::string_view name_or_path, const std::vector<std::string>& sets) {
  return load_model(name_or_path, sets);
}

// build_tree + Predictor::predict + hold_batch_envelope. Errors: those of both (bad batch/seq, a
// feature the predictor needs that a built tree lacks: "predictor P needs measured resource
// features").
Tree predicted_tree(const ModelConfig& config, int batch, int seq, const Predictor& predictor,
                    const BuildOptions& options = {});

// The batch envelope (predict/predictor.hpp batch_envelope) of a predicted tree of `config` (built
// with `options`): the same pass predicted at the batches the envelope asks for (at most the
// training batches' count) and, when another batch's energy per sequence is the answer,
// hold_at_batch from it. Returns whether it held; nothing happens for a predictor that does not
// read batch_size.
bool hold_batch_envelope(Tree& tree, const ModelConfig& config, const BuildOptions& options, const Predictor& predictor);

// True when `arg` names a predictions/trees JSONL file rather than a model (ends in .jsonl).
bool is_trees_file(std::string_view arg);

// The server's backend over the real builder and `predictor` (kept alive by the backend).
Backend make_backend(std::shared_ptr<const Predictor> predictor);

}  // namespace irene::explain
