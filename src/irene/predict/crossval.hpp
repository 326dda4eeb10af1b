// Errors per level and leave-one-model-out cross-validation.
//
// Error of a level (ml, module, model) = mean over all nodes of that level with ground truth
// (> 0) of 100 x |predicted - measured| / measured, nodes pooled over the trees evaluated (as
// the reference's evaluate.py). Cross-validation: for each model, train on the trees of all
// other models, predict the trees of this one; overall = mean of the folds' errors. Intervals:
// each fold's predictions get the intervals a predictor trained on its training models would
// give (CrossvalOptions::intervals), and their coverage and width are reported per level.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/predict/config.hpp"
#include "irene/predict/model.hpp"

namespace irene::predict {

struct LevelErrors {
  double ml = kNaN, module = kNaN, model = kNaN;  // mean absolute percentage error, %
  long ml_nodes = 0, module_nodes = 0, model_nodes = 0;
};

// Sums absolute percentage errors per level (ml, module, model); one rule for crossval and
// evaluate. Energies in joules; `gold` must be > 0.
class LevelErrorSum {
 public:
  void add(NodeType type, double predicted_j, double gold_j);
  long nodes() const { return count_[0] + count_[1] + count_[2]; }
  // Means per level; a level without nodes is NaN.
  LevelErrors result() const;

 private:
  double sum_[3] = {0, 0, 0};
  long count_[3] = {0, 0, 0};
};

// Errors of pred[row] against data.gold over the trees `which`.
LevelErrors level_errors(const FlatTrees& data, const std::vector<int>& which, const std::vector<double>& pred);
// Mean of the folds' errors per level (NaN levels skipped).
LevelErrors mean_errors(const std::vector<LevelErrors>& folds);
nlohmann::json errors_to_json(const LevelErrors& e);

// Coverage and width of prediction intervals per level (index 0 ml, 1 module, 2 model).
struct IntervalStats {
  double coverage[3] = {kNaN, kNaN, kNaN};  // fraction of measured nodes inside their interval
  double width[3] = {kNaN, kNaN, kNaN};     // median of (high - low) / estimate
  long nodes[3] = {0, 0, 0};
};

class IntervalStatsSum {
 public:
  void add(NodeType type, const Interval& interval, double predicted_j, double gold_j);
  IntervalStats result() const;

 private:
  long covered_[3] = {0, 0, 0}, count_[3] = {0, 0, 0};
  std::vector<double> widths_[3];
};

struct CrossvalOptions {
  int threads = 1;          // folds run in parallel on this many threads; results do not depend on it
  bool baselines = true;    // also run exact_one, unstructured, gpu_energy_mean, flops, traffic baselines
  // Intervals of every fold and their coverage:
  //  nested   - calibrated as Predictor::train would on the fold's training models (leave one
  //             more model out: one extra fit per pair of models);
  //  crossfit - calibrated on the held-out predictions of the other folds (no extra fit; those
  //             predictors saw the fold's model in training, not as a calibration sample);
  //             nested falls back to it with two models (a pair leaves nothing to train on);
  //  none     - no intervals.
  enum class Intervals { none, nested, crossfit };
  Intervals intervals = Intervals::nested;
  bool lenient = false;     // a primitive type unseen in a fold's training: NaN (skipped), not an error
  std::function<void(const std::string&)> progress;  // called (from any thread, serialized) per finished fold
};

struct CrossvalTable {
  std::string name;                 // "irene", "exact_one", ...
  std::string description;
  std::vector<LevelErrors> folds;   // one per left-out model
  LevelErrors overall;
  bool available = true;            // false when the data lacks what it needs (note says why)
  std::string note;
};

struct CrossvalReport {
  Config config;
  std::vector<std::string> left_out;    // model names, one per fold
  // Per fold (of left_out): the held-out leaf classes its training models lack, each as one plain
  // sentence. A class with a stand-in (arch/registry.hpp, Primitive::stand_in) is predicted by the
  // stand-in's regressor, as Predictor::predict does ("Tanh: predicted by the Softmax regressor
  // (stand-in)"), its interval and its ancestors' widened by Predictor::kStandInWidening; a
  // registry primitive with neither is not predicted (NaN: its trees drop out of the fold's
  // errors) and the fold goes on. A class the registry does not know is still an error.
  std::vector<std::vector<std::string>> stand_ins;
  CrossvalTable main;
  std::vector<CrossvalTable> baselines;
  std::vector<double> out_of_fold;      // main predictions of every row (each from the fold leaving its model out)
  std::vector<double> out_of_fold_own;  // their own-operation energies (0 for leaves and without own_ops)
  std::vector<double> out_of_fold_alpha;  // the weight of each row in its parent (1 for roots)
  // Interval distance of each row from its fold's training range (range.hpp: the largest over the
  // node and its descendants).
  std::vector<double> out_of_fold_distance;
  // With CrossvalOptions::intervals: every row's interval and its own-operation interval (NaN
  // where none), their coverage per fold (of left_out) and pooled over all held-out nodes.
  std::vector<double> interval_low, interval_high, own_low, own_high;
  std::vector<IntervalStats> interval_folds;
  std::string interval_calibration;  // "nested" or "crossfit" (empty: no intervals)
  IntervalStats interval_overall;
  double seconds = 0;                   // wall time of the whole cross-validation
};

// Error when the data holds fewer than two models.
CrossvalReport crossval(const FlatTrees& data, const Config& config, const CrossvalOptions& options);

// Writes the held-out predictions of tree t of `data` into `tree` (the tree it was flattened
// from): predicted energy of every node, own-operation energy of every parent (with own_ops),
// intervals where the report has them.
void store_predictions(Tree& tree, const FlatTrees& data, int t, const CrossvalReport& r);

nlohmann::json crossval_to_json(const CrossvalReport& r);
std::string crossval_to_text(const CrossvalReport& r);

// The held-out batch curves of decode steps: for every model and cached length `past` with decode
// steps at two or more batch sizes, the measured and the predicted (out of fold) value per
// generated token (root value / batch) at each batch, and the ratio value-per-token(largest
// batch) / value-per-token(smallest) measured and predicted, with the predicted ratio's error in
// percent of the measured one. `trees[t]` is the tree flattened as tree t of `data`. Empty (an
// empty array) when the data holds no decode steps.
struct BatchCurve {
  std::string model;
  int past = 0;
  std::vector<int> batches;
  std::vector<double> measured_per_token, predicted_per_token;  // the target's unit per token
  double measured_ratio = kNaN, predicted_ratio = kNaN, ratio_error_pct = kNaN;
};
std::vector<BatchCurve> batch_curves(const std::vector<const Tree*>& trees, const FlatTrees& data,
                                     const CrossvalReport& r);
nlohmann::json batch_curves_to_json(const std::vector<BatchCurve>& curves);
std::string batch_curves_to_text(const std::vector<BatchCurve>& curves);

}  // namespace irene::predict
