#include "irene/explain/api.hpp"

#include <fmt/format.h>

#include <map>
#include <mutex>

#include "irene/arch/builder.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/sweep.hpp"

namespace irene::api {

using nlohmann::json;

ModelConfig load(const ModelSpec& spec) {
  ModelConfig c = spec.config ? parse_model_config(spec.config->dump(), "config", spec.name_or_path)
                              : load_model_config(spec.name_or_path);
  if (!spec.overrides.empty()) set_config_values(c, spec.overrides);
  return c;
}

std::shared_ptr<const Predictor> predictor(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Predictor>> cache;
  const std::string key = path.empty() ? Predictor::default_path().string() : path;
  std::lock_guard lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto p = std::make_shared<const Predictor>(path.empty() ? Predictor::load_default() : Predictor::load(path));
  p->require_energy("the explanation API");
  cache.emplace(key, p);
  return p;
}

std::vector<std::string> models() { return builtin_model_names(); }

namespace {

Tree predicted(const ModelSpec& spec, int batch, int seq, const std::string& path, const BuildOptions& pass = {}) {
  const auto p = predictor(path);
  Tree t = explain::predicted_tree(load(spec), batch, seq, *p, pass);
  t.provenance["predicted_for"] = p->hardware();
  t.provenance["predictor"] = p->path().string();
  return t;
}

}  // namespace

json tree(const ModelSpec& spec, int batch, int seq, const BuildOptions& pass) {
  return explain::tree_summary(build_tree(load(spec), batch, seq, pass));
}

json predict(const ModelSpec& spec, int batch, int seq, const std::string& predictor_path, const BuildOptions& pass) {
  return explain::tree_summary(predicted(spec, batch, seq, predictor_path, pass));
}

json generate(const ModelSpec& spec, int batch, int prompt, int generate, const std::string& predictor_path,
              const BuildOptions& pass) {
  explain::GenerationRequest r;
  r.batch = batch;
  r.prompt = prompt;
  r.generate = generate;
  r.pass = pass;
  return explain::to_json(explain::predict_generation(load(spec), r, *predictor(predictor_path)));
}

json explain(const ModelSpec& spec, int batch, int seq, const std::string& predictor_path, int top) {
  explain::ExplainOptions o;
  o.top = top;
  json j = explain::to_json(explain::explain_tree(predicted(spec, batch, seq, predictor_path), o));
  j["hardware"] = predictor(predictor_path)->hardware();
  return j;
}

json compare(const ModelSpec& a, const ModelSpec& b, int batch, int seq, int batch_b, int seq_b,
             const std::string& predictor_path) {
  json j = explain::to_json(
      explain::compare(predicted(a, batch, seq, predictor_path), predicted(b, batch_b, seq_b, predictor_path)));
  j["hardware"] = predictor(predictor_path)->hardware();
  return j;
}

json sweep(const ModelSpec& spec, const std::vector<int>& batches, const std::vector<int>& seqs,
           const std::string& predictor_path) {
  if (batches.empty() || seqs.empty()) throw Error("sweep: batch and seq need at least one value each");
  if (batches.size() * seqs.size() > static_cast<std::size_t>(explain::max_range_points))
    throw Error(fmt::format("sweep: {} points is more than {}", batches.size() * seqs.size(), explain::max_range_points));
  const ModelConfig config = load(spec);
  const auto p = predictor(predictor_path);
  const auto points = explain::sweep(
      [&](int b, int s) { return explain::predicted_tree(config, b, s, *p); }, batches, seqs);
  json j;
  j["model_name"] = config.name;
  j["hardware"] = p->hardware();
  j["points"] = explain::to_json(points);
  return j;
}

}  // namespace irene::api
