// Where a prediction leaves the range of the predictor's training data.
//
// The training data fixes, per feature, the range [lo, hi] of every input the predictor reads:
// the features of each ML primitive class (its leaf regressor's inputs), the features of all
// training nodes (alpha's inputs) and the own-operation features of the training parents. A node
// reads: a leaf, its class's features; a parent, its own features (alpha's inputs) and its
// own-operation features. For each of those outside its range the node gets a note, and a
// distance: log10(value / hi) above the range, log10(lo / value) below it (1 where the training
// data holds only values <= 0 and the node's is positive, or the reverse), its largest over the
// features. A node's interval widens with the largest distance over the node and its
// descendants (their errors add up in it): see intervals.hpp.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "irene/predict/model.hpp"

namespace irene::predict {

// Distance of x from [lo, hi] (0 inside) and, when `note` is not null and x is outside, a
// sentence: "batch_size 1e+08 is 3.12e+06x the largest of SCOPE (32)", SCOPE e.g. "the training
// data's Linear leaves".
double range_distance(const std::string& feature, double x, double lo, double hi, std::string* note = nullptr,
                      const std::string& scope = "the training data");

// For every row of the trees `which`: distance[row] = the node's own distance (the largest over
// the features it reads; 0 inside); with `notes`, its sentences. Nothing is checked for a model
// without ranges (a version-1 predictor file): distances 0, no notes.
// `worst` (optional): per feature name, the largest distance seen and its note.
struct RangeWorst {
  double distance = 0;
  std::string note;
  long nodes = 0;  // nodes with this feature out of range
};
void range_check(const FittedModel& model, const FlatTrees& data, const std::vector<int>& which,
                 std::vector<double>& distance, std::vector<std::vector<std::string>>* notes = nullptr,
                 std::map<std::string, RangeWorst>* worst = nullptr);

// Turns own distances into interval distances (see the file comment), bottom-up; `pred`: the
// predicted energies (joules) of the rows.
void propagate_distance(const FlatTrees& data, const std::vector<int>& which, const std::vector<double>& pred,
                        std::vector<double>& distance);

}  // namespace irene::predict
