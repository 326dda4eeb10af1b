// Fuzzes the energy of generating text (explain/generation.cpp: the prefill plus every decode
// step through the step evaluator) with the shipped predictor. Input: text "MODEL PROMPT
// GENERATE [BATCH] [dtype=D] [attention=A] [KEY=VALUE...]" (a built-in model by name or by its
// index, then config overrides). Kept fast: at most 48 layers, 4096 prompt tokens, 512 steps.
// Every generation either is refused with one clear Error or has finite, non-negative energies
// in every step and total, and a JSON form that serializes.
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "fuzz.hpp"
#include "irene/arch/config.hpp"
#include "irene/explain/generation.hpp"

namespace {

const irene::Predictor& predictor() {
  static const irene::Predictor p = irene::Predictor::load_default();
  return p;
}

int number(const std::string& s, int fallback) {
  int v = fallback;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() ? v : fallback;
}

bool finite_energy(const irene::explain::Energy& e) {
  if (!std::isfinite(e.j) || e.j < 0) return false;
  return !e.interval || (std::isfinite(e.interval->low_j) && std::isfinite(e.interval->high_j));
}

}  // namespace

IRENE_FUZZ_ENTRY(generation) {
  return irene::fuzz::run([&] {
    std::istringstream in{std::string(irene::fuzz::text(data, size))};
    std::vector<std::string> words;
    for (std::string w; in >> w && words.size() < 40;) words.push_back(w);
    if (words.size() < 3) return;
    static const std::vector<std::string> names = irene::builtin_model_names();
    std::string model = words[0];
    if (const int k = number(model, -1); k >= 0) model = names[static_cast<std::size_t>(k) % names.size()];
    bool known = false;
    for (const auto& n : names) known = known || n == model;
    if (!known) return;  // a request never names a file
    irene::ModelConfig config = irene::load_model_config(model);
    irene::explain::GenerationRequest r;
    r.prompt = number(words[1], 0);
    r.generate = number(words[2], 0);
    r.batch = words.size() > 3 ? number(words[3], 1) : 1;
    if (r.prompt > 4096 || r.generate > 512 || r.batch > 64) return;
    for (std::size_t i = 4; i < words.size(); ++i) {
      const auto eq = words[i].find('=');
      if (eq == std::string::npos) continue;
      const std::string key = words[i].substr(0, eq), value = words[i].substr(eq + 1);
      if (key == "dtype") r.pass.dtype = value;
      else if (key == "attention") r.pass.attention = value;
      else irene::set_config_value(config, key, value);
    }
    if (config.num_layers > 48 || config.hidden_size > 8192) return;
    if (r.pass.dtype != "float32" && r.pass.dtype != "float16" && r.pass.dtype != "bfloat16") return;
    if (r.pass.attention != "eager" && r.pass.attention != "sdpa") return;
    const auto g = irene::explain::predict_generation(config, r, predictor());
    if (!finite_energy(g.total) || !finite_energy(g.prefill) || !finite_energy(g.decode)) std::abort();
    for (const auto& s : g.steps)
      if (!finite_energy(s.energy)) std::abort();
    if (g.steps.size() != static_cast<std::size_t>(r.generate)) std::abort();
    const std::string text = irene::explain::to_json(g).dump();
    if (nlohmann::json::parse(text, nullptr, false).is_discarded()) std::abort();
  });
}
