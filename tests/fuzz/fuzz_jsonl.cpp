// Fuzzes the JSONL trees reader (core/jsonl.cpp): every accepted tree must write and read back
// identically, and the predictor's check and explanation must not fail on it but cleanly.
#include <nlohmann/json.hpp>
#include <sstream>

#include "fuzz.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/explain/explain.hpp"

IRENE_FUZZ_ENTRY(jsonl) {
  return irene::fuzz::run([&] {
    std::istringstream in{std::string(irene::fuzz::text(data, size))};
    irene::JsonlReader reader(in, "fuzz.jsonl");
    irene::Tree t;
    int trees = 0;
    while (reader.next(t) && ++trees < 64) {
      const std::string line = irene::tree_to_json(t).dump();
      const irene::Tree back = irene::tree_from_json(nlohmann::json::parse(line), "round trip");
      if (irene::tree_to_json(back).dump() != line) std::abort();
      try {
        (void)irene::explain::explain_tree(t);
      } catch (const irene::Error& e) {
        irene::fuzz::check_message(e);
      }
    }
  });
}
