// A serving request, defined once for the command line, Python and the HTTP API.
//
// `irene serving MODEL --hardware H100 --max-num-seqs 8 ...`, `irene explain MODEL --serving ...`,
// `irene.serving(model, hardware=..., max_num_seqs=...)`, `irene.explain(model, serving=True, ...)`
// and GET/POST /api/serving (/api/serving/explain) all fill one ServingRequest through the one
// table serving_options() (the command line registers it with CLI11, Python reads its keyword
// arguments and the server its JSON object or query string through it) and call the library
// functions below. Every field is the text as given ("" = the default); the library parses and
// checks it, so a bad value is the same one-line irene::Error everywhere.
//
// Values:
//   max_num_seqs   sequences in flight B (mean; default 8): a positive number, or a list "8,256"
//   prompt         mean prompt tokens per request (>= 0): default the task's assumed mean
//                  (task_prompt_tokens: lm-arena-chat 180, gpqa 260, sourcegraph-fim 1,200; assumed
//                  from the kind of prompts, not measured), else 180; a list sweeps; LEN:WEIGHT
//                  pairs ("100:3,400:1", weights relative request counts; an object {"100": 3,
//                  "400": 1} in JSON, a dict in Python) are one distribution (Workload's), one point
//                  at its mean
//   output         mean generated tokens per request (> 0): default the task's median output length
//                  over the table's rows of that task (avg_output_len; mlenergy-v3-llm.csv of
//                  2026-02-16: lm-arena-chat 634.3 over 328 rows, gpqa 6,710.8 over 187,
//                  sourcegraph-fim 251.1 over 50), else 400; a list sweeps; LEN:WEIGHT pairs as
//                  for prompt
//   task           lm-arena-chat | gpqa | sourcegraph-fim ("" = none); its outputs are spread
//                  as the task's published lengths are (task_output_distribution) around each
//                  output mean, unless output is given as a distribution
//   tensor_parallel  G GPUs the model is split across (default 1)
//   expert_parallel  E: a mixture of experts' experts spread over E GPUs (the GPUs are then E;
//                  E must divide the model's routed experts; --tensor-parallel 1 or E)
//   data_parallel  D ranks among the GPUs that run attention data-parallel (default 1; divides
//                  the GPUs; each rank holds and reads the attention weights)
//   precision, kv_cache_dtype, table, allow_oversubscribe, carbon_intensity: as `irene serving`.
// Lists: comma-separated numbers, at most 64 points in all (every combination, batch-major).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/explain/source.hpp"
#include "irene/serving/crossval.hpp"
#include "irene/serving/predictor.hpp"

namespace irene::serving {

struct ServingRequest {
  std::string model;  // positional on the command line and in Python; "model" in JSON
  std::string hardware, max_num_seqs, prompt, output, task;
  std::string tensor_parallel, expert_parallel, data_parallel;
  std::string precision, kv_cache_dtype, table, carbon_intensity;
  bool allow_oversubscribe = false;
};

// The options, in the order of the help: model (positional MODEL), hardware, max_num_seqs,
// prompt, output (--output-tokens, --output), task, tensor_parallel (--tensor-parallel, --gpus),
// expert_parallel, data_parallel, precision, kv_cache_dtype, table, allow_oversubscribe,
// carbon_intensity.
const std::vector<explain::Option<ServingRequest>>& serving_options();

// What a request resolves to: the model, the hardware, the workloads (one per point, batch-major,
// then prompt, then output), the table prepared, the predictor fitted on it, and where the
// defaults came from.
struct ResolvedServing {
  ModelConfig config;
  hardware::Profile hw;
  std::vector<Workload> points;
  std::shared_ptr<const PreparedTable> table;
  std::shared_ptr<const ServingPredictor> predictor;
  bool per_gpu = false;  // fitted on the table's rows of this GPU (else on all rows: shared)
  int expert_parallel = 1;
  std::string task;
  // {"prompt_tokens": "...", "output_tokens": "..."}: given, assumed, median, default; and
  // "output_distribution" where a task spread the outputs
  nlohmann::json sources;
  std::optional<double> carbon_g_per_kwh;
  bool allow_oversubscribe = false;
};
// Errors (one line each): no model or hardware; a bad number or list; more than 64 points; an
// unknown task; expert parallel on a dense model, not dividing its experts, or with another
// tensor-parallel size; the table's, the model's and the profile's errors.
ResolvedServing resolve(const ServingRequest& request);

// The table at `path` read and prepared once per process (and again when the file changes).
std::shared_ptr<const PreparedTable> prepared_table(const std::filesystem::path& path);

// The predictor serving_report uses for `hw` on a prepared table: fitted on its rows of that GPU
// when there are any (per_gpu), else on all its rows (shared). Error: no usable row.
struct FittedServing {
  std::shared_ptr<const ServingPredictor> predictor;
  bool per_gpu = false;
};
FittedServing fit_for(const PreparedTable& table, const hardware::Profile& hw);

// The step of `config` served as `w` on `hw`, refused when it does not fit (hardware::check_fit,
// unless `allow`); `fit` receives the share of one GPU's memory it needs.
StepWork fitting_step(const ModelConfig& config, const Workload& w, const hardware::Profile& hw, bool allow,
                      double& fit);

// serving_report with a predictor already fitted (fit_for); the report names the table `table_file`.
nlohmann::json serving_report(const ModelConfig& config, const Workload& w, const hardware::Profile& hw,
                              const std::string& table_file, const FittedServing& fitted, bool allow_oversubscribe);

// `irene serving`: serving_report of each point (with carbon when asked); one point: that report,
// several: {"points": [report, ...]}.
nlohmann::json serving_answer(const ServingRequest& request);
std::string serving_answer_text(const nlohmann::json& answer);

// Where the joules of one step go, by part (each unit's energy split by its terms,
// StepPrediction::units):
//   mlp_weights        weights streaming in the MLP (feed-forward, experts, router): the memory and
//                      launch terms of their Linear units
//   attention_weights  weights streaming in the attention projections: the same of theirs
//   matmul_math        the arithmetic term of those Linear units
//   kv_cache_reads     the fused attention's memory term, its cache bytes' share
//   attention_math     the rest of the fused attention (arithmetic, queries and outputs, launch)
//   lm_head            the LM head's Linear, whole
//   other              embeddings, norms, activations and the modules' own operations
//   all_reduce         the all-reduces (tensor parallelism), with the static power over them
//   fixed              static power over the step's fixed time (idle per step + host time per
//                      sequence in flight)
//   prefills           the prefills the step carries, whole
// Their joules add up to the step's (the prediction's energy_j). JSON: [{"part", "label",
// "step_j", "per_token_j", "share_pct"}] in that order.
nlohmann::json by_part(const StepWork& work, const StepPrediction& prediction);

// `irene explain --serving`: {"serving": {hardware, predictor, workload}, "rests_on" (the point
// farthest outside the training data: serving_rests_on), "parts": [{"part", "label"}], "points":
// [{"max_num_seqs", "prompt_tokens", "output_tokens", "mean_context_tokens", "step_j",
// "energy_per_token_j", "itl_s", "step_wall_s", "mean_power_w", "memory_share_of_gpu", "by_part", "rests_on"}],
// "shares": {part: [share_pct of each point]}}.
nlohmann::json serving_explanation(const ServingRequest& request);
std::string serving_explanation_text(const nlohmann::json& explanation);

// The HTTP API's checks before a request is answered: no `table` (a request never names a file),
// hardware a built-in profile, the model a built-in name or an id of configs/serving-models/.
void check_network_request(const ServingRequest& request);

// The HTTP API's answer of a request's fields (a JSON object): read through serving_options()
// (explain::apply_json), checked (check_network_request), answered with `table` (serving_answer,
// or serving_explanation when `explain`).
std::function<nlohmann::json(const nlohmann::json& fields, bool explain)> network_answer(std::filesystem::path table);

}  // namespace irene::serving
