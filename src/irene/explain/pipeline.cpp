#include "irene/explain/pipeline.hpp"
#include "irene/explain/prediction.hpp"

#include <fmt/format.h>

#include <iostream>
#include <map>

#include "irene/arch/builder.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/generation.hpp"
#include "irene/serving/request.hpp"

namespace irene::explain {

ModelConfig load_model(std::string_view name_or_path, const std::vector<std::string>& sets) {
  ModelConfig config = load_model_config(name_or_path);
  if (!config.note.empty()) std::cerr << fmt::format("irene: note: {}: {}\n", config.name, config.note);
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& kv : sets) overrides.push_back(parse_config_override(kv));
  if (!overrides.empty()) set_config_values(config, overrides);
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
  hold_batch_envelope(tree, config, options, predictor);
  stamp_prediction(tree, predictor);
  return tree;
}

bool hold_batch_envelope(Tree& tree, const ModelConfig& config, const BuildOptions& options, const Predictor& predictor) {
  const auto range = predictor.training_batch_range();
  if (!range || !tree.root().predicted_energy_j) return false;
  std::map<int, Tree> at;
  const auto per_sequence = [&](int k) {
    if (k == tree.batch_size) return *tree.root().predicted_energy_j / k;
    auto it = at.find(k);
    if (it == at.end()) {
      Tree t = build_tree(config, k, tree.seq_len, options);
      predictor.predict(t);
      it = at.emplace(k, std::move(t)).first;
    }
    return *it->second.root().predicted_energy_j / k;
  };
  const auto k = batch_envelope(tree.batch_size, *range, per_sequence);
  if (!k) return false;
  const double own = *tree.root().predicted_energy_j;
  const double held = per_sequence(*k) * tree.batch_size;
  hold_at_batch(tree, at.at(*k), batch_hold_reason("value", tree.batch_size, *k, *range, own, held));
  return true;
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
  b.serving = serving::network_answer(serving::default_table());
  return b;
}

}  // namespace irene::explain
