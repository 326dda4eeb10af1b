// The energy of generating text: a prompt's prefill plus one decode step per generated token.
//
// predict_generation(config, {batch B, prompt P, generate N}, predictor) predicts
//   - the prefill: the forward of the P prompt tokens, as generate() runs it (the LM-head class,
//     logits of the last position only);
//   - N decode steps with a key/value cache, at past = P, P + 1, ..., P + N - 1 (each one new
//     token per sequence attending to the cached positions plus itself; arch/builder.hpp);
// and gives prefill_j, decode_j (the sum of the steps), total_j = prefill_j + decode_j and
// per_token_j = decode_j / (B x N), each with its interval, every step's energy and interval, and
// the energy by module kind (explain.hpp: attention, feed-forward, embeddings, norm, lm head,
// other) over the whole generation. Joules per generation (per token for per_token_j).
//
// The steps are predicted below explain/, by workload/steps.hpp (predict_decode_steps: two template
// trees, identical layers predicted once, the node-energy kernel of predict/ and the share split of
// workload/shares.hpp); each step's energy equals Predictor::predict on that step's tree exactly
// (tested), and its module-kind split equals explain_tree's. This file attributes and renders.
//
// Intervals: a step's interval is its energy times the root's interval ratios (low / energy,
// high / energy) of the full prediction of the first and last step trees, the wider of the two
// (the ratios are the predictor's per-group factors, plus the stand-in widening); sums add their
// ends (explain.hpp); a module kind's decode interval takes the kind's ratios the same way.
#pragma once

#include <array>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/limits.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/report.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::explain {

// Most tokens one generation may ask for (core/limits.hpp).
inline constexpr int kMaxGenerate = static_cast<int>(limits::kMaxGenerate);

struct GenerationRequest {
  int batch = 1;      // sequences generated together
  int prompt = 0;     // tokens of each prompt (the prefill's sequence length)
  int generate = 0;   // new tokens per sequence (decode steps)
  // dtype, attention and allow_long apply; phase, past, head and last_token_logits are set here.
  BuildOptions pass;
};

struct GenerationStep {
  int past = 0;   // cached positions the step's new token attends to (plus itself)
  Energy energy;  // joules of the step (all B sequences)
  // The predictor's own value when it fell below the previous step's (see Generation::held).
  std::optional<double> raw_j;
};

// How long a generation takes and what follows from it, from the time companion of the energy
// predictor (Predictor::time_companion: the shipped one has predictors/device_1-time.json, the
// same features and training data with target time). The prefill and every decode step are
// predicted as for energy (workload/steps.hpp), intervals as the energy's: the prefill tree's and
// the last step's relative interval over the steps.
struct GenerationTime {
  std::string predictor;             // the time companion's file
  Energy prefill, decode, total;     // seconds (the fields named _j hold seconds here)
  double time_to_first_token_s = 0;  // the prefill (it computes the first new token's logits)
  double inter_token_latency_s = 0;  // decode / generate: the mean time of a decode step
  double decode_tokens_per_s = 0;    // batch x generate / decode
  double tokens_per_s = 0;           // batch x generate / total (prefill included)
  double mean_power_w = 0;           // the generation's joules / its seconds
  double decode_power_w = 0;         // the decode steps' joules / their seconds
  nlohmann::json rests_on;           // what the time predictions rest on (rests_on.hpp)
};

struct Generation {
  std::string model_name;
  int batch = 0, prompt = 0, generate = 0;
  std::string dtype, attention;
  std::string weights;  // the quantized weights' format ("" = in dtype; core/tree.hpp)
  std::string kv_cache_dtype;  // the key/value cache's dtype ("" = dtype; core/tree.hpp)
  std::string hardware;  // what the predictor's energies describe
  Energy prefill, decode, total, per_token;
  std::vector<GenerationStep> steps;
  // A longer cache is more work, so a step never costs less than the one before it. Far outside
  // its training data a predictor can say otherwise (the weighted sums bend); such a step keeps the
  // previous step's energy (and interval ratios), keeps its own value in raw_j, and is counted here.
  int held = 0;
  // Where the prefill or the sum of the steps takes another batch's energy per sequence (the
  // batch envelope, predict/predictor.hpp batch_envelope: above the training batches always):
  // one sentence per part ("prefill: ...", "decode: ..."). Empty when nothing was held.
  std::vector<std::string> batch_held;
  // The whole generation by module kind, every kind of all_module_kinds in that order; `share` of
  // total_j; `count` is the number of leaves of the kind in the prefill tree.
  std::vector<GroupEnergy> by_kind;
  std::array<double, kModuleKinds> prefill_by_kind{}, decode_by_kind{};  // joules
  // Predicted trees: the prefill and the first and last decode steps (node-level detail).
  Tree prefill_tree, first_step, last_step;
  // Every decode step node by node (workload/steps.hpp DecodeSteps::by_node): the joules of all
  // steps of each node of first_step (a leaf's share of each step, a parent's own operations'),
  // and the relative interval of the steps (low / energy, high / energy: the wider of the first
  // and last step's, as every step's interval). whole_generation_tree reads them.
  std::vector<double> decode_by_node;
  double decode_low_ratio = 1, decode_high_ratio = 1;
  // Stand-ins of the prefill and of the steps (explain.hpp), in that order, each class once.
  std::vector<StandInGroup> stand_ins;
  // Grams CO2e per kWh of the electricity (--carbon-intensity), or none: the outputs then add
  // the generation's CO2e beside its watt-hours.
  std::optional<double> carbon_g_per_kwh;
  // What the answer rests on (rests_on.hpp): the question is the prefill and every step (tokens
  // 1 .. prompt, context prompt .. prompt + generate, both phases); the node notes of the prefill
  // and the first and last steps.
  nlohmann::json rests_on;
  // Latency, throughput and power, when the energy predictor has a time companion.
  std::optional<GenerationTime> time;
};

// Errors (irene::Error, one line): an encoder (it does not generate text), a decoder without a
// key/value cache in Hugging Face (openai-gpt), batch / prompt / generate not positive or above
// their limits, prompt + generate beyond max_position_embeddings (unless pass.allow_long, rotary
// models only), a predictor that needs measured resource features, and build_tree's errors.
Generation predict_generation(const ModelConfig& config, const GenerationRequest& request, const Predictor& predictor);

// ---- The whole generation node by node (irene explain / report --prompt P --generate N) ------
// One tree for the prefill and every decode step together: the prefill tree's nodes (with the
// nodes only the steps have, such as DeepSeek-V3's absorbed-attention product, added under their
// parent), each node's energy the sum of what the prefill and all the steps give it. A node's
// part of a pass is explain_tree's attributed split (a leaf's share of the pass, a parent's own
// operations' share), so a node's energy is the sum of its parts below it, the root's is
// total_j, and an explanation of the tree (shares, hotspots, by module kind) is one of the whole
// generation: its by_kind equals the generation's. Intervals: a part's prefill joules at the
// prefill's relative interval plus its decode joules at the steps' (so the root's is total_j's
// and no part reaches above its whole). Counts: flops_mflop and mem_mib are the prefill's plus
// generate x the mean of the first and last step's (exact for counts that grow linearly with the
// past). Error: a generation without its trees (moved from).
Tree whole_generation_tree(const Generation& g);

// explain_tree of whole_generation_tree, marked as such: phase kWholeGeneration, generate = N
// (explain.hpp: its text and JSON say "the whole generation" instead of "per forward pass").
Explanation explain_generation(const Generation& g, const ExplainOptions& options = {});

// The boot data of the report of a generation (report.hpp report_data): "trees" holds the
// explanations of the prefill, the first and the last decode step and the whole generation
// (explain_generation), in that order; "generation" is to_json(g); "title" options.title, else
// "irene energy report: MODEL generating text"; the hardware and carbon intensity of `options`.
nlohmann::json generation_report_data(const Generation& g, const ReportOptions& options);

// JSON: {"model_name", "batch", "prompt", "generate", "dtype", "attention", "hardware", "units",
// "prefill_j", "decode_j", "total_j", "per_token_j" (each {"j", "low_j", "high_j"}), "steps":
// [{"past", "energy_j", "low_j", "high_j"}], "by_kind": [{"name", "energy", "share", "prefill_j",
// "decode_j"}], "stand_ins": [...], "held_steps", "parameters", "normalized": {"total_wh",
// "per_token_wh", "co2e_g" (null without a carbon intensity), "per_token_co2e_g",
// "carbon_intensity_g_per_kwh"}}; a step held at the previous one's energy also has "raw_energy_j".
nlohmann::json to_json(const Generation& g);
// Writes to_json(g).dump(1) and a newline, byte for byte, without holding the steps as JSON
// values (a million steps are 130 MB of text but would be 900 MB as values).
void write_json(std::ostream& out, const Generation& g);

// Text: the totals with intervals, per-token energy, where it goes (by kind), stand-ins, and a
// table of the steps (past, energy J, low J, high J): every step, or with `all_steps` false at
// most 8 evenly spaced (the summaries explain / compare print).
void write_text(std::ostream& out, const Generation& g, bool all_steps = true);

// ---- Comparing two generations (irene compare --prompt P --generate N) ----------------------
struct GenerationDiff {
  std::string name;  // "prefill", "decode", "total", "per token", then the module kinds
  Energy a, b, diff;  // diff = b - a, its interval as compare.hpp's (errors fully correlated)
  std::optional<double> change_pct;
};
struct GenerationComparison {
  Generation a, b;
  std::vector<GenerationDiff> rows;
};
GenerationComparison compare_generations(Generation a, Generation b);
nlohmann::json to_json(const GenerationComparison& c);
void write_text(std::ostream& out, const GenerationComparison& c);

// ---- Sweeping generations (irene sweep --prompt ... --generate 128:4096:128) ----------------
struct GenerationPoint {
  std::string model_name;
  int batch = 0, prompt = 0, generate = 0;
  Energy prefill, decode, total, per_token;
  std::array<Energy, kModuleKinds> kinds;  // the whole generation by module kind
  int held = 0;
  std::string rests_on;  // the one-line summary of what the generation rests on (rests_on.hpp)
};
GenerationPoint generation_point(const Generation& g);
// CSV: model,batch,prompt,generate,prefill_j,prefill_low_j,prefill_high_j,decode_j,...,total_j,...,
// per_token_j,...,attention_j,...,held_steps,co2e_g,per_token_co2e_g (of total_j and per_token_j
// at the carbon intensity; empty without one),rests_on (the point's summary line).
void write_generation_csv(std::ostream& out, const std::vector<GenerationPoint>& points,
                          std::optional<double> carbon_g_per_kwh = std::nullopt);
void write_generation_table(std::ostream& out, const std::vector<GenerationPoint>& points,
                            std::optional<double> carbon_g_per_kwh = std::nullopt);
// [{"model_name", "batch", "prompt", "generate", "prefill_j", "decode_j", "total_j", "per_token_j",
//   "kinds", "held_steps", "co2e_g", "per_token_co2e_g" (null without a carbon intensity),
//   "rests_on" (the summary line)}].
nlohmann::json to_json(const std::vector<GenerationPoint>& points, std::optional<double> carbon_g_per_kwh = std::nullopt);

}  // namespace irene::explain
