// Prediction intervals: calibrated on held-out predictions, widened out of the training range.
//
// A group of nodes ("ml:Linear", ... per ML primitive class with enough samples, else "ml";
// "module"; "model"; "own" for the own-operation energies) gets two factors, low <= 1 <= high;
// the interval of a prediction p is [p x low, p x high]. They come from held-out
// (leave-one-model-out) predictions p of measured nodes g, with the finite-sample (conformal)
// quantile: of n values, the k-th smallest, k = ceil((n + 1) q), c the nominal coverage
// (Config::interval_coverage):
//  * levels: symmetric in log space, q_c of |log(g / p)| = L, low = e^-L, high = e^L (errors
//    of a held-out model lean one way or the other by model; a central interval calibrated on
//    five models leans as they do, and undercovers the sixth);
//  * own: the "measured" own energy of a parent is its measured energy minus the weighted
//    measured energies of its children (sum alpha(c) g(c)), a small difference of large numbers
//    that can be negative: low and high are the quantiles (1 - c) / 2 and (1 + c) / 2 of it over
//    the predicted own energy, on parents whose children are all measured and whose own part is
//    at least 5% of their prediction (below, the measured difference is noise around a sliver);
//    low may be below 0: the interval's low end is then 0.
//
// Out of range (range.hpp): a node whose features leave the training data's range gets a wider
// interval: both relative half-widths (1 - low, high - 1) grow by the factor (1 + d), d the
// node's distance from the range (the largest log10 of value / bound over its features), low
// floored at 0.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/core/tree.hpp"
#include "irene/predict/model.hpp"

namespace irene::predict {

struct IntervalFactors {
  double low = 1, high = 1;  // multiply the prediction
  long samples = 0;          // held-out predictions they come from
};

// The own group calibrates on parents whose predicted own energy is at least this share of
// their predicted energy.
inline constexpr double kMinOwnShare = 0.05;

// A group needs this many held-out samples to have factors of its own ("ml:Linear" falls back
// to "ml" below it).
inline constexpr long kMinGroupSamples = 20;

// Held-out predictions per row of a FlatTrees (NaN: none): energy, own-operation energy, weight
// in the parent (PredictExtras).
struct HeldOut {
  const std::vector<double>* pred = nullptr;
  const std::vector<double>* own = nullptr;    // optional
  const std::vector<double>* alpha = nullptr;  // optional (needed with own)
};

struct IntervalCalibration {
  std::map<std::string, IntervalFactors> groups;
  double coverage = 0.9;

  // The factors for a node: its class group, else its level's, else the next level down's (a
  // model without "model" samples takes "module", then "ml"): calibration leaves out every tree
  // with a stand-in leaf, so a level can have no samples at all (leave-one-model-out over four
  // LLM families, each with a class of its own), and a zero-width interval would claim a certainty
  // nothing measured. None of them: 1, 1.
  const IntervalFactors& factors(NodeType type, const std::string& class_name) const;
  const IntervalFactors& own_factors() const;
  // [p x low, p x high] widened by `distance` (see the file comment); low >= 0.
  static Interval apply(const IntervalFactors& f, double p, double distance = 0);
};

// Calibrates on the rows of the trees `trees` that have ground truth and a held-out prediction.
IntervalCalibration calibrate_intervals(const FlatTrees& data, const std::vector<int>& trees, const HeldOut& held,
                                        double coverage);

// The group of a node: "ml:CLASS", "module" or "model".
std::string interval_group(NodeType type, const std::string& class_name);

}  // namespace irene::predict
