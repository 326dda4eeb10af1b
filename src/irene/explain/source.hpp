// Where the trees and generations of a command come from: a trees/predictions JSONL file, or a
// model (built-in name, config.json or Hugging Face id, with --set overrides) at given batch sizes,
// sequence lengths, pasts, prompts and generated tokens (single values, or ranges where the command
// sweeps). The explanation commands (explain, compare, sweep, report) fill a Source from their
// options and call these; sizes are checked by the library (core/limits.hpp).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/tree.hpp"
#include "irene/explain/generation.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::explain {

// The options that pick the pass of a tree, as given ("" = default): --phase, --past, --dtype,
// --attention, --head, --allow-long.
struct PassText {
  std::string phase, past, dtype, attention, head;
  bool allow_long = false;
  std::string weights;  // --weights ("" = the config's quantization_config, else the dtype)
  std::string kv_cache_dtype;  // --kv-cache-dtype ("" = the dtype)
};
// True when any pass option was given (they apply to a model, not to a trees file).
bool any_pass_option(const PassText& pass);
// make_build_options of the texts (its errors).
BuildOptions build_options(const PassText& pass);

struct Source {
  std::string what;                    // positional argument: a model or a trees .jsonl file
  std::vector<std::string> overrides;  // --set
  std::string batch, seq;              // numbers or ranges
  std::string predictor;               // --predictor ("" = the shipped one)
  bool strict = false;                 // --strict: fail on a tree of the file that cannot be used
  PassText pass = {};                  // --phase, --past (a range where ranges are allowed), --dtype, ...
  std::string prompt = {}, generate = {};  // text generation: --prompt P --generate N (ranges in sweep)

  bool generation() const { return !prompt.empty() || !generate.empty(); }
};

// The predictor at `path` ("" = the shipped one); Error unless it predicts energy.
std::shared_ptr<const Predictor> load_energy_predictor(const std::string& path);

// A generation request of a model source: its batch (default 1), prompt and generate values
// (ranges where allowed: every combination, batch-major). Errors as the options are malformed or
// do not apply with --generate, or more than max_range_points combinations.
struct GenerationGrid {
  ModelConfig config;
  std::vector<int> batches, prompts, generates;
  BuildOptions pass;
};
GenerationGrid generation_grid(const Source& s, bool allow_ranges);
// predict_generation at every point of the grid, in its order.
std::vector<Generation> predict_generations(const GenerationGrid& grid, const Predictor& p);
// The same, handing each generation to `each` as it finishes (a sweep keeps one summary per
// point, never every point's trees and steps).
void for_each_generation(const GenerationGrid& grid, const Predictor& p, const std::function<void(Generation&&)>& each);

// Calls `start(total)` once, then `each(tree)` for every tree of the source, in order: the trees of
// a file (filtered by --batch/--seq, unusable ones skipped; predicted when a predictor is named), or
// the model predicted at every (batch, seq, past) of the ranges (default batch 8, seq 128 or 1 for a
// decode step), one at a time (a 1,024-point sweep never holds more than one tree), calling
// `progress(done, total)` after each. `hardware` gets what the energies describe.
void for_each_tree(const Source& s, bool allow_ranges, std::string& hardware,
                   const std::function<void(std::size_t)>& start, const std::function<void(Tree&&)>& each,
                   const std::function<void(std::size_t, std::size_t)>& progress = {});
// Every tree of for_each_tree, in memory.
std::vector<Tree> load_trees(const Source& s, bool allow_ranges, std::string& hardware);

}  // namespace irene::explain
