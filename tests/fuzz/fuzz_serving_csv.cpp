// Fuzzes the reader of measured serving runs (serving/runs.cpp: the ML.ENERGY LLM serving table)
// and what is built on the rows it accepts: prepare_table (models resolved, decode and prefill
// steps built), fit_serving, predict_step and crossval_serving. Input: the bytes of a table file.
// Kept fast: at most 6 rows are prepared, the predictor is fitted on at most 4; a model_id that
// is neither a built-in model nor one of configs/serving-models/ becomes "no-such-model" (an
// input never names a file or the Hugging Face cache). Every accepted row has finite, positive
// numbers; every prediction and cross-validation figure is finite; errors are one irene::Error.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "fuzz.hpp"
#include "irene/arch/config.hpp"
#include "irene/serving/crossval.hpp"

namespace {

namespace sv = irene::serving;

const std::set<std::string>& known_models() {
  static const std::set<std::string> s = [] {
    std::set<std::string> out;
    for (const auto& n : irene::builtin_model_names()) out.insert(n);
    const std::filesystem::path root = std::filesystem::path(IRENE_SOURCE_DIR) / "configs" / "serving-models";
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->path().filename() == "config.json")
        out.insert(it->path().parent_path().lexically_relative(root).generic_string());
    return out;
  }();
  return s;
}

bool positive(double x) { return std::isfinite(x) && x > 0; }

void check_run(const sv::MeasuredRun& r) {
  const bool ok = r.line >= 2 && !r.model_id.empty() && !r.task.empty() && !r.gpu.empty() && r.num_gpus >= 1 &&
                  r.tensor_parallel >= 1 && r.expert_parallel >= 1 && r.data_parallel >= 1 && r.max_num_seqs >= 1 &&
                  positive(r.avg_batch) && positive(r.avg_output_tokens) && positive(r.energy_per_token_j) &&
                  positive(r.energy_per_request_j) && positive(r.power_w) && positive(r.median_itl_s) &&
                  positive(r.p90_itl_s) && positive(r.throughput_tokens_per_s) &&
                  r.avg_batch <= r.max_num_seqs * 1.0001;
  if (!ok) {
    std::fprintf(stderr, "fuzz: accepted a serving run out of range: %s\n", sv::run_to_json(r).dump().c_str());
    std::abort();
  }
}

void check_prediction(const sv::StepPrediction& p, const sv::StepWork& w) {
  const bool ok = std::isfinite(p.time_s) && p.time_s >= 0 && std::isfinite(p.energy_j) && p.energy_j >= 0 &&
                  std::isfinite(p.power_w) &&
                  p.node_j.size() == w.tree.nodes.size() &&
                  std::all_of(p.node_j.begin(), p.node_j.end(), [](double x) { return std::isfinite(x); });
  if (!ok) {
    std::fprintf(stderr, "fuzz: a serving step predicted out of range: time %g s, energy %g J\n", p.time_s,
                 p.energy_j);
    std::abort();
  }
}

}  // namespace

IRENE_FUZZ_ENTRY(serving_csv) {
  return irene::fuzz::run([&] {
    const auto path = irene::fuzz::temp_file("serving.csv", irene::fuzz::text(data, size));
    sv::ServingTable table = sv::read_serving_csv(path);
    if (table.runs.empty()) std::abort();  // the reader refuses a table without rows
    for (const auto& r : table.runs) check_run(r);
    if (table.runs.size() > 6) table.runs.resize(6);
    for (auto& r : table.runs)
      if (!known_models().count(r.model_id)) r.model_id = "no-such-model";
    const std::size_t rows = table.runs.size();
    const sv::PreparedTable prepared = sv::prepare_table(std::move(table));
    long skipped = 0;
    for (const auto& s : prepared.skipped) skipped += s.rows;
    if (prepared.runs.size() + static_cast<std::size_t>(skipped) != rows) std::abort();
    if (prepared.runs.empty()) return;
    std::vector<const sv::PreparedRun*> train;
    for (const auto& r : prepared.runs)
      if (train.size() < 4) train.push_back(&r);
    const sv::ServingPredictor p = sv::fit_serving(train);
    // finite coefficients, and an interval [1 + low_rel, 1 + high_rel] that holds the prediction
    if (!irene::fuzz::all_finite(sv::predictor_to_json(p)) || !(p.low_rel <= 0 && p.high_rel >= 0)) {
      std::fprintf(stderr, "fuzz: a serving predictor with a coefficient that is not finite: %s\n",
                   sv::predictor_to_json(p).dump().c_str());
      std::abort();
    }
    for (const auto& r : prepared.runs) check_prediction(sv::predict_step(p, r.work), r.work);
    const nlohmann::json cv = sv::crossval_serving(prepared, prepared.runs.front().work.hw);
    if (!irene::fuzz::all_finite(cv)) {
      std::fprintf(stderr, "fuzz: a cross-validation figure that is not finite: %s\n", cv.dump().c_str());
      std::abort();
    }
    if (sv::crossval_serving_text(cv).empty()) std::abort();
  });
}
