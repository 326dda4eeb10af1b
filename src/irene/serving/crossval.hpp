// Cross-validation of the serving predictor on a table of measured serving runs
// (serving/runs.hpp), as `irene crossval TABLE.csv --hardware H100` runs it.
//
// Which rows are used: a row whose model irene builds (arch's load_model_config of its
// Hugging Face id: a built-in config under models/, a config.json path, or the local Hugging
// Face cache) and whose GPU has a hardware profile, served with tensor parallelism over all its
// GPUs, or with its experts spread over all of them (expert parallel) and attention tensor- or
// data-parallel. Every other row is skipped and counted, per model, with the reason (the
// builder's error for a family irene does not build yet).
//
// Settings, each reported with the % error of energy per token (|predicted - measured| /
// measured, in percent):
//   * leave one model out on the rows of the named GPU: for each model, a predictor fitted on
//     the GPU's other models (per-GPU), one fitted on every GPU's rows of the other models
//     (shared), and the four-total least-squares baseline of ../shared/llm-energy/README.md
//     (step energy = c1 GPUs + c2 weight bytes + c3 key/value bytes read + c4 FLOPs, fitted
//     per GPU on the same training rows), each predicting the left-out model's rows; per model:
//     mean and worst row error; overall: mean over models of their mean (mape) and the worst
//     model's mean (worst_model); for all rows and for the dense bfloat16 lm-arena-chat rows;
//   * leave one task out (per-GPU predictor), where the GPU's usable rows have two tasks or more;
//   * few-shot on the named GPU: the shared predictor fitted on every other GPU's rows plus k
//     rows (spread over its batch sizes) of one model of the named GPU, predicting all other rows
//     of the named GPU; k = 0, 1, 2, 4, averaged over the choice of that model;
//   * as by-products: batch curves, the predicted and measured ratio energy(largest batch) /
//     energy(batch nearest 8) per token, one per series of a model's runs that differ in batch
//     only (same task, GPUs and data-parallel ranks; a model's "batch_ratio" is its series with the
//     most runs, "batch_ratios" all of them; overall: how many within 20% of the measured ratio);
//     and the median % error of the inter-token latency over rows.
// Every held-out row is listed under its model's "runs" with its measured and predicted energy
// per token (per-GPU "predicted_j", "shared_j", "baseline_j" and, for a dense bfloat16 chat
// row, "own_rows_j": fitted on those rows only), ITL and mean step wall time.
// What is chosen where: the energy model's pull is chosen inside each fit, by cross-validation over
// that fit's own training models (predictor.hpp), so no held-out model takes part in it; the form
// of the model (its terms) was chosen by comparing variants on these same folds, so the figures
// are not a clean held-out estimate of that choice (README.md says so beside them).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/hardware/hardware.hpp"
#include "irene/serving/predictor.hpp"
#include "irene/serving/runs.hpp"

namespace irene::serving {

// The usable rows of a table, each with its step built, and the skipped ones.
struct PreparedTable {
  ServingTable table;
  std::vector<PreparedRun> runs;  // usable rows, in file order
  struct Skipped {
    std::string model_id;
    long rows = 0;
    std::string reason;
  };
  std::vector<Skipped> skipped;  // by model, in order of first row
};

// Resolves every row (see the file comment) and builds the steps of the usable ones, with the
// task's mean prompt length (task_prompt_tokens) and the row's mean output length, spread as the
// task's published output lengths are (task_output_distribution).
PreparedTable prepare_table(ServingTable table);

// How crossval_serving runs; neither changes a figure.
struct ServingCrossvalOptions {
  // Fits run in parallel on this many threads (the folds of leaving one model or one task out, and
  // the few-shot choices); the results are merged in a fixed order, so they are the same for any
  // count.
  int threads = 1;
  // Called with one line as each fold of leaving one model out, each task left out and each
  // few-shot k is done (from the worker threads, one call at a time); empty: no progress.
  std::function<void(const std::string&)> progress;
};

// The cross-validation of the file comment for GPU `gpu` (a hardware profile name, matched to the
// rows' gpu_model through the profiles). Errors: no usable row of that GPU; fewer than two models;
// a fit's error, for the first fold (in the report's order) that failed.
nlohmann::json crossval_serving(const PreparedTable& table, const hardware::Profile& gpu,
                                const ServingCrossvalOptions& options = {});

// Plain text of crossval_serving's JSON: one table per setting.
std::string crossval_serving_text(const nlohmann::json& report);

}  // namespace irene::serving

namespace irene::serving {

// `irene crossval TABLE.csv --hardware NAME`: reads the table, prepares it and cross-validates
// on the named profile (load_profile). Errors: the reader's, the profile's, crossval_serving's.
nlohmann::json crossval_serving_file(const std::filesystem::path& table, std::string_view hardware,
                                     const ServingCrossvalOptions& options = {});

// `irene data import TABLE.csv -o runs.jsonl`: the table's rows as JSON lines (run_to_json plus
// "usable": true, or "skipped": the reason), written whole or not at all. Returns the summary
// line printed after it: "N runs of M models; U usable (steps built), S skipped: ...".
std::string import_serving_csv(const std::filesystem::path& table, const std::filesystem::path& out);

// The default table: IRENE_LLM_ENERGY when set, else ../shared/llm-energy/mlenergy-v3-llm.csv
// beside the source tree.
std::filesystem::path default_table();

// The serving workload (the `irene serving` command): the step of `config` served as `w` on `hw`
// with a predictor fitted on `table`'s rows of that GPU when there are any (per-GPU), else on all
// its rows (shared; the hardware then enters only through its datasheet). Refuses a configuration
// that does not fit (hardware::check_fit) unless `allow_oversubscribe`. JSON: "serving" (the
// hardware profile, the predictor: kind, trained on which GPUs, models and runs; the workload;
// the memory per GPU) and the results: energy per generated token and per request (joules, with
// intervals), mean power (watts, over the mean step wall time), inter-token latency (itl_s: the
// median, seconds), the mean step wall time (step_wall_s), throughput (tokens/s: sequences in
// flight / step_wall_s), the step
// by module kind (joules and share; the all-reduces and the fixed step overhead as kinds of
// their own; the shares add up to 100%), the prefills' share, the ten costliest nodes, and
// "rests_on" (serving_rests_on: what the answer rests on, how far outside the training runs it
// is); the intervals are the training rows' 5% / 95% relative residuals, their half-widths
// multiplied by its "interval_widening".
nlohmann::json serving_report(const ModelConfig& config, const Workload& w, const hardware::Profile& hw,
                              const std::filesystem::path& table, bool allow_oversubscribe);
// The same on a table already read and prepared (prepare_table), for callers that report several
// workloads on one table; the report names the table by its file.
nlohmann::json serving_report(const ModelConfig& config, const Workload& w, const hardware::Profile& hw,
                              const PreparedTable& table, bool allow_oversubscribe);
std::string serving_report_text(const nlohmann::json& report);
// The line of a serving text answer that says where the workload's lengths came from (its
// workload's "sources": prompt tokens, output tokens and, where a task spread the outputs, that).
std::string workload_sources_text(const nlohmann::json& sources);
// Adds grams CO2e at `g_per_kwh` grams per kWh of the electricity (--carbon-intensity):
// "carbon_intensity_g_per_kwh", "co2e_per_token_g" and "co2e_per_request_g" ({"value", "low",
// "high"}, from the energies and their intervals); serving_report_text prints them.
void add_carbon(nlohmann::json& report, double g_per_kwh);

}  // namespace irene::serving
