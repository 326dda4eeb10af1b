// The IrEne predictor: predicts the energy (joules per forward pass) of every node of a model
// tree, with an uncertainty interval.
//
// Trained on measured trees (`Predictor::train`), saved as a versioned JSON file that holds the
// configuration, the feature names, the scaling statistics, all weights, the intervals and
// where the training data came from. `predictors/device_1.json` in the repository is the
// shipped one: device_1 of the published IrEne dataset, model-spec features only, so that it
// predicts trees built from a configuration alone (scripts/make-default-predictor.sh).
//
// Intervals (intervals.hpp): at training time the predictor cross-validates itself leaving one
// model out and keeps, per group of nodes ("ml:Linear", ... per ML primitive class with >= 20
// out-of-fold samples, else "ml"; "module"; "model"; "own" for the own-operation energies),
// factors calibrated on the out-of-fold predictions (levels: the conformal quantile L at
// interval_coverage of |log(measured / predicted)|, interval [p / e^L, p e^L]). Trained on a
// single model there is nothing to leave out: the factors are then in-sample and the file says
// so ("intervals.method").
//
// Ranges (range.hpp): the file keeps the training range of every input; predict() flags each
// node outside it (Node::out_of_range), summarizes them in the tree's provenance
// ("out_of_range"), and widens its interval with the distance.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/core/tree.hpp"
#include "irene/predict/config.hpp"
#include "irene/predict/intervals.hpp"
#include "irene/predict/model.hpp"

namespace irene {

// What a predictor's training data spans, in the dimensions a user asks about (the "rests on"
// object of every answer, explain/rests_on.hpp): the models and their sizes, batch sizes, tokens
// per pass, context (the positions a token attends to: a prefill's seq_len, a decode step's
// past_len + 1), phases and dtypes, and what the joules cover. Recorded in the predictor file at
// training time ("training_data"."span"); for a file that predates it, derived from the ranges of
// the features it reads and the source of its trees (`recorded` false), where a dimension may then
// be unknown (nullopt / empty).
struct TrainingSpan {
  std::vector<std::string> models;
  long trees = 0;
  std::optional<std::pair<double, double>> parameters;  // of the models (the roots), smallest and largest
  std::optional<std::pair<int, int>> batch, tokens, context;
  std::vector<std::string> phases, dtypes;  // sorted; empty = not known
  std::string energy_covers;                // what the measured joules cover ("" = not known)
  bool recorded = true;

  nlohmann::json to_json() const;
  static TrainingSpan from_json(const nlohmann::json& j);
};

// What the measured energy of trees with this provenance covers: the sensor's own words
// (provenance "sensor_covers", irene collect), the published IrEne dataset's power meter (the whole
// machine), or "" when the trees do not say.
std::string energy_covers_of(const std::map<std::string, std::string>& provenance);

// The span of measured trees (TrainingSpan), from their roots and provenance.
TrainingSpan span_of_trees(const std::vector<const Tree*>& trees);

class Predictor {
 public:
  // Version 2 adds the own-operations term and the training ranges (range checks, clamping);
  // version-1 files still load (no own operations, no range checks).
  static constexpr int kFormatVersion = 2;
  // Stand-ins: a leaf whose primitive class the predictor has no regressor for is predicted by
  // the regressor of the class the registry names as its stand-in (RMSNorm -> LayerNorm, ReLU and
  // GELU -> SiLU -> Softmax, ScaledDotProductAttention -> MatMul), on the leaf's own features; predict()
  // records that class in Node::stand_in. Its interval is the stand-in class's, widened by this
  // factor on each side (low / 2, high x 2), and every ancestor's interval grows by the same
  // extra widths (summed, as explain/ sums intervals).
  static constexpr double kStandInWidening = 2.0;

  struct TrainOptions {
    std::string hardware;     // what the training data measured; empty: from tree provenance
    std::string source;       // where the trees came from (a file path), recorded in the file
    bool intervals = true;    // cross-validate for intervals (needs >= 2 models, else in-sample)
    int threads = 1;          // for that cross-validation
  };

  // Trains on measured trees. Errors (irene::Error): no trees; a tree without any ground-truth
  // energy; a primitive class without measured leaves; a configured feature that no tree has.
  // Features of the configured sets that some node lacks are left out (dropped_features()).
  static Predictor train(const std::vector<Tree>& trees, const predict::Config& config,
                         const TrainOptions& options);

  // Reads a predictor file. Errors: missing file, not JSON, not a predictor, another format
  // version, missing or inconsistent fields ("FILE: problem").
  static Predictor load(const std::filesystem::path& path);
  // The shipped predictor: $IRENE_PREDICTOR if set, else <IRENE_SOURCE_DIR>/predictors/device_1.json
  // (the environment variable, then the source tree irene was built from).
  static Predictor load_default();
  static std::filesystem::path default_path();
  // The time companion of an energy predictor loaded from FILE.json: FILE-time.json beside it
  // (the shipped one: predictors/device_1-time.json, scripts/make-default-predictor.sh --time), loaded
  // once per path and kept for the process. nullptr when there is none, when `energy` was not
  // loaded from a file or does not predict energy. Error when the file exists but is not a
  // predictor, does not predict time, or describes other hardware.
  static std::shared_ptr<const Predictor> time_companion(const Predictor& energy);

  // Fills predicted_energy_j, predicted_interval and out_of_range of every node (and stand_in of
  // the leaves predicted by a stand-in, see kStandInWidening), and with an own-operations term
  // predicted_own_energy_j and predicted_own_interval of every parent; sets (or clears) the
  // tree's provenance "out_of_range" summary. Errors naming the tree and node: a feature the
  // predictor uses is missing, a leaf is not an ML primitive, a primitive type was never seen in
  // training and has no stand-in the predictor knows.
  void predict(Tree& tree) const;

  // The batch sizes of the training data, [smallest, largest] of batch_size over the training
  // nodes; nullopt when the predictor does not read batch_size (or its file keeps no ranges).
  std::optional<std::pair<int, int>> training_batch_range() const;

  // What the training data spans (TrainingSpan): recorded in the file, or derived for an older one.
  TrainingSpan training_span() const;

  // Why predict() would fail on `tree`, or "" when it would not: a node lacking a feature the
  // predictor reads (or holding a non-finite one), a primitive type never seen in training
  // without a stand-in.
  std::string cannot_predict(const Tree& tree) const;

  // True when the predictor reads measured resource features (cpu, gpu, times_mean, ...): it
  // cannot predict a tree built from a configuration alone.
  bool needs_resource_features() const;
  // What the predictions describe, e.g. "device_1 of the published IrEne dataset".
  std::string hardware() const { return hardware_; }
  // Writes the predictor file atomically.
  void save(const std::filesystem::path& path) const;

  const std::vector<std::string>& feature_names() const { return model_.feature_names; }
  const std::vector<std::string>& dropped_features() const { return dropped_; }
  const predict::Config& config() const { return model_.config; }
  // What it predicts (predict/target.hpp): energy (J per forward pass) or time (s per pass).
  predict::Target target() const { return model_.config.target; }
  // Error unless the predictor predicts energy: for the commands whose outputs are joules
  // (explain, compare, sweep, report, the HTTP API); `what` names the command.
  void require_energy(std::string_view what) const;
  const predict::FittedModel& model() const { return model_; }
  const nlohmann::json& training_data() const { return training_data_; }
  // Where load() read it from (empty when trained in this process).
  const std::filesystem::path& path() const { return path_; }

  using IntervalFactors = predict::IntervalFactors;
  const std::map<std::string, IntervalFactors>& intervals() const { return intervals_.groups; }

  nlohmann::json to_json() const;
  static Predictor from_json(const nlohmann::json& j, const std::string& where);

 private:
  predict::FittedModel model_;
  std::vector<std::string> dropped_;
  std::string hardware_;
  nlohmann::json training_data_ = nlohmann::json::object();
  predict::IntervalCalibration intervals_;
  std::string interval_method_;
  std::filesystem::path path_;
};

// More sequences in one call never cost more per sequence (the weights are read once for all of
// them). A predictor does not know it: its weighted sums bend either way, inside its training
// batches by a little (the shipped one has Qwen3-8B's decode step cost 0.16% more per sequence at
// batch 32 than at 24) and beyond them by more (Llama-2-7b's 4.5% more at batch 128 than at 32).
// The batch envelope makes the energy per sequence non-increasing in the batch by construction,
// for any predictor, with `per_sequence(k)` the predictor's joules per sequence of the same pass at
// batch k and [lo, hi] = `range`, the batch sizes it was trained on:
//   - batch > hi: the lowest per-sequence energy of the training batches, always (how far it would
//     fall beyond them is not in the training data);
//   - lo < batch <= hi: the lowest of batches lo .. batch, when a smaller batch's is lower than its own;
//   - batch < lo: the highest of batches batch .. lo, when a larger batch's is higher than its own.
// Returns the batch whose energy per sequence `batch` takes, or nullopt when it keeps its own.
// Energy per call stays non-decreasing in the batch when the predictor's is. Calls per_sequence
// at most hi - lo + 1 times (never for batch == lo); throws what it throws.
std::optional<int> batch_envelope(int batch, std::pair<int, int> range, const std::function<double(int)>& per_sequence);

// Why a pass at `batch` takes batch `at`'s energy per sequence (batch_envelope), in words:
// `own_j` is the predictor's own value for the pass (or the steps, `what`), `held_j` the value it
// takes (at's x batch / at).
std::string batch_hold_reason(std::string_view what, int batch, int at, std::pair<int, int> range, double own_j,
                              double held_j);

// Every node of `tree` takes `at`'s prediction (energy, own energy) times tree batch / at batch,
// so the tree still adds up, with the wider of the two relative intervals (a tree outside the
// training data keeps its widened interval), and its provenance "batch_held" says `why`
// (Predictor::predict erases it). Error when the two trees differ in structure (node count or ids).
void hold_at_batch(Tree& tree, const Tree& at, const std::string& why);

}  // namespace irene
