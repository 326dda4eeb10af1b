// Fuzzes Hugging Face config.json parsing (arch/config.cpp) and building the tree it describes.
#include <algorithm>

#include "fuzz.hpp"
#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"

IRENE_FUZZ_ENTRY(config) {
  return irene::fuzz::run([&] {
    irene::ModelConfig c = irene::parse_model_config(irene::fuzz::text(data, size), "fuzz/config.json");
    // Small shapes: the sizes themselves are what is fuzzed (limits, products, divisibility).
    const int seq = static_cast<int>(std::min<std::int64_t>(c.max_positions, 4));
    irene::Tree t = irene::build_tree(c, 1, seq);
    if (t.nodes.empty() || t.root().num_parameters < 0) std::abort();
    irene::set_config_values(c, {{"num_layers", "1"}});
  });
}
