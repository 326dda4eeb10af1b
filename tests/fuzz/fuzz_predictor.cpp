// Fuzzes predictor files (predict/predictor.cpp): a file that loads must predict a small tree
// without reading outside its arrays, or refuse it cleanly.
#include "fuzz.hpp"
#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/json_util.hpp"
#include "irene/predict/predictor.hpp"

namespace {
const irene::Tree& small_tree() {
  static const irene::Tree t = [] {
    const std::string cfg = R"({"model_type":"gpt2","vocab_size":50,"n_embd":16,"n_layer":2,"n_head":2,"n_positions":32})";
    return irene::build_tree(irene::parse_model_config(cfg, "tiny"), 2, 8);
  }();
  return t;
}
}  // namespace

IRENE_FUZZ_ENTRY(predictor) {
  return irene::fuzz::run([&] {
    const auto j = irene::parse_json_document(irene::fuzz::text(data, size), "fuzz.json", "the predictor file");
    const irene::Predictor p = irene::Predictor::from_json(j, "fuzz.json");
    irene::Tree t = small_tree();
    if (p.cannot_predict(t).empty()) p.predict(t);
  });
}
