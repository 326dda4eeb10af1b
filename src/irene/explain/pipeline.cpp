#include "irene/explain/pipeline.hpp"

#include <fmt/format.h>

#include "irene/arch/builder.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/generation.hpp"

namespace irene::explain {

ModelConfig load_config_with_overrides(std::string_view name_or_path, const std::vector<std::string>& overrides,
                                       std::string_view option) {
  ModelConfig config = load_model_config(name_or_path);
  for (const auto& kv : overrides) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(fmt::format("bad {} '{}': expected KEY=VALUE (e.g. num_hidden_layers=6)", option, kv));
    set_config_value(config, std::string_view(kv).substr(0, eq), std::string_view(kv).substr(eq + 1));
  }
  return config;
}

Tree predicted_tree(const ModelConfig& config, int batch, int seq, const Predictor& predictor,
                    const BuildOptions& options) {
  if (predictor.needs_resource_features())
    throw Error(fmt::format(
        "predictor {} reads measured resource features, so it cannot predict a model from its configuration alone; "
        "use a model-spec predictor (the default) or explain a measured trees file",
        predictor.path().empty() ? std::string("(in memory)") : predictor.path().string()));
  Tree tree = build_tree(config, batch, seq, options);
  predictor.predict(tree);
  return tree;
}

bool is_trees_file(std::string_view arg) {
  return arg.size() > 6 && arg.substr(arg.size() - 6) == ".jsonl";
}

Backend make_backend(std::shared_ptr<const Predictor> predictor) {
  Backend b;
  b.hardware = predictor->hardware();
  b.model_names = [] { return builtin_model_names(); };
  b.load_model = [](std::string_view name) { return load_model_config(name); };
  b.parse_config = [](std::string_view json, const std::string& where) { return parse_model_config(json, where); };
  b.set_value = [](ModelConfig& c, std::string_view k, std::string_view v) { set_config_value(c, k, v); };
  b.predict_tree = [predictor](const ModelConfig& c, int batch, int seq) {
    return predicted_tree(c, batch, seq, *predictor);
  };
  b.predict_pass = [predictor](const ModelConfig& c, int batch, int seq, const BuildOptions& o) {
    return predicted_tree(c, batch, seq, *predictor, o);
  };
  b.generate = [predictor](const ModelConfig& c, int batch, int prompt, int generate, const BuildOptions& o) {
    GenerationRequest r;
    r.batch = batch;
    r.prompt = prompt;
    r.generate = generate;
    r.pass = o;
    return to_json(predict_generation(c, r, *predictor));
  };
  return b;
}

}  // namespace irene::explain
