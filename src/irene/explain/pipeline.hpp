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

// A built-in model name or config.json path, with overrides "KEY=VALUE" applied in order.
// Errors: unknown model, unreadable/malformed config, an override without '=' ("bad --set
// 'x': expected KEY=VALUE"), or one set_config_value rejects.
ModelConfig load_config_with_overrides(std::string_view name_or_path, const std::vector<std::string>& overrides,
                                       std::string_view option = "--set");

// build_tree + Predictor::predict. Errors: those of both (bad batch/seq, a feature the
// predictor needs that a built tree lacks: "predictor P needs measured resource features").
Tree predicted_tree(const ModelConfig& config, int batch, int seq, const Predictor& predictor,
                    const BuildOptions& options = {});

// True when `arg` names a predictions/trees JSONL file rather than a model (ends in .jsonl).
bool is_trees_file(std::string_view arg);

// The server's backend over the real builder and `predictor` (kept alive by the backend).
Backend make_backend(std::shared_ptr<const Predictor> predictor);

}  // namespace irene::explain
