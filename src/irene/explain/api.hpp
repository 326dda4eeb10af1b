// irene's explanation commands as plain function calls: what the command line (src/cli) prints
// with --format json and what the Python module (python/irene_module.cpp) returns come from the
// same function here, each taking the options as explain/source.hpp's Source or request (filled
// from the one table of options both read). The structured results are kept for the text outputs.
//
// A Source's model is a built-in name, a path to a config.json (or a folder holding one), a Hugging
// Face name found in the local cache (arch/config.hpp), a config given as a JSON object (Source's
// `config`), or a trees .jsonl file where the command reads trees. Every problem is an irene::Error.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/core/tree.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/source.hpp"
#include "irene/explain/sweep.hpp"

namespace irene::api {

using explain::CompareRequest;
using explain::ExplainRequest;
using explain::Source;
using explain::SweepRequest;

// Built-in model names.
std::vector<std::string> models();

// tree_summary (records.hpp) of the model's tree at one batch and seq (defaults 8 and 128, 1 for a
// decode step): parameters, MFLOP and MiB per node, no energies. Error: a predictor, --prompt /
// --generate or a trees file (nothing is predicted).
nlohmann::json tree(const Source& s);

// tree_summary of the predicted tree (+ "hardware", and "normalized": joules per sample and per
// token, watt-hours, grams CO2e at the carbon intensity where given); of every tree of a trees file
// (a list where there are several); with prompt and generate: generate()'s result.
nlohmann::json predict(const ExplainRequest& r);

// A generation (prompt P, generate N; batch default 1): generation.hpp's to_json plus the flat node
// records (records.hpp node_records: every column, the note columns included) of its prefill,
// "prefill_nodes", and of its last decode step, "step_nodes". The carbon intensity adds CO2e.
nlohmann::json generate(const ExplainRequest& r);

// irene explain: the explanations of every tree of the source, or of a generation's prefill, last
// decode step and the whole generation node by node (generation.hpp explain_generation).
struct Explained {
  std::string hardware;
  std::optional<double> carbon_g_per_kwh;
  std::vector<Tree> trees;                          // the trees explained (none for a generation)
  // One per tree; a generation: the prefill, the last step, the whole generation.
  std::vector<explain::Explanation> explanations;
  std::optional<explain::Generation> generation;    // --prompt P --generate N
};
Explained explain(const ExplainRequest& r);
// explain --format json: one tree's explanation (a list for several) with "hardware",
// "normalized" (and the carbon intensity where given); a generation: to_json(generation) with
// "prefill_explanation", "last_step_explanation" and "generation_explanation" (the whole
// generation: shares, hotspots, by module kind over the prefill and every step).
nlohmann::json to_json(const Explained& e);

// irene compare: b against a, node by node; with --prompt / --generate the two generations and
// their last decode steps node by node.
struct Compared {
  std::string hardware, hardware_b;
  std::optional<explain::GenerationComparison> generations;
  explain::Comparison comparison;  // the trees, or the generations' last decode steps
  std::optional<double> carbon_g_per_kwh;  // --carbon-intensity
};
// Grams CO2e of a, b and b - a (the totals: the trees' energies, or the whole generations') at
// the comparison's carbon intensity; nullopt without one.
struct CompareCo2e {
  double a_g = 0, b_g = 0, diff_g = 0;
};
std::optional<CompareCo2e> co2e(const Compared& c);
Compared compare(const CompareRequest& r);
// compare --format json: compare.hpp's to_json (generations: generation.hpp's, with "last_step")
// plus "hardware" and "hardware_b"; with a carbon intensity "carbon_intensity_g_per_kwh" and
// "co2e_g": {"a", "b", "diff"}.
nlohmann::json to_json(const Compared& c);

// irene sweep: one point per tree of the source (ranges of batch, seq, past) or per generation
// (ranges of batch, prompt, generate), computed one at a time.
struct Swept {
  std::string model_name, hardware;
  bool generation = false;
  std::vector<explain::SweepPoint> points;                 // trees
  std::vector<explain::GenerationPoint> generation_points;  // generations
  // What the points rest on, merged over them (rests_on.hpp merge_rests_on); null when no point
  // says (trees of a file predicted elsewhere).
  nlohmann::json rests_on;
  std::optional<double> carbon_g_per_kwh;  // --carbon-intensity: the points' co2e_g
};
// What a caller may do with each point as it is made (the command line's --jsonl and --report).
struct SweepHooks {
  std::function<void(std::size_t)> start;                       // the number of tree points
  std::function<void(Tree&)> tree;                              // each point's tree
  std::function<void(explain::Generation&)> generation;         // each generation (it may be moved from)
  std::function<void(std::size_t, std::size_t)> progress;       // (done, total) after each tree
};
Swept sweep(const SweepRequest& r, const SweepHooks& hooks = {});
// What irene sweep --format json prints and Python's irene.sweep returns: {"model_name",
// "hardware", "rests_on", "points" (sweep.hpp's or generation.hpp's to_json of the points, with
// co2e_g), "carbon_intensity_g_per_kwh" (null without one)}.
nlohmann::json to_json(const Swept& s);
// Writes the sweep as irene sweep --format prints it: "table" (text), "csv" or "json".
void write_sweep(std::ostream& out, const Swept& s, const std::string& format);

}  // namespace irene::api
