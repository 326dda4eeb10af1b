// The decode steps of a generation, predicted: one new token per sequence attending to a
// key/value cache of `past` positions, at every past of a range (arch/builder.hpp's decode pass).
//
// Speed: the steps share one tree structure and only the nodes whose shapes depend on the cached
// length (the attention products and softmax, the cache update, repeat_kv, the mask, and their
// ancestors) change between steps. The steps are predicted from two template trees (past = first
// and first + 1): every attr and op dimension that differs is affine in the past (checked when
// built), identical subtrees (the layers) are predicted once, and a node's prediction is
// recomputed only when its features move. Each node's counts follow arch's node_counts, its
// features predict's node_feature, its energy predict's node-energy kernel (UpperModel::weight,
// own_energy; the leaf regressors resolved once), and the split of a step's energy among groups of
// nodes (module kinds) shares.hpp's rule: so each step's energy equals Predictor::predict on that
// step's tree exactly (same operations in the same order; tested), and its split equals
// explain_tree's.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/tree.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::workload {

struct StepEnergy {
  int past = 0;  // cached positions the step's new token attends to (plus itself)
  double j = 0;  // joules of the step (all sequences)
  // The predictor's own value when it fell below the previous step's (see DecodeSteps::held).
  std::optional<double> raw_j;
};

struct DecodeSteps {
  std::vector<StepEnergy> steps;  // past = first .. last, in order
  // A longer cache is more work, so a step never costs less than the one before it. Far outside
  // its training data a predictor can say otherwise (the weighted sums bend); such a step keeps the
  // previous step's energy (its groups scaled alike), keeps its own value in raw_j, and is counted
  // here.
  int held = 0;
  std::vector<double> by_group;  // joules of all steps by group (group_of), summed
  // Joules of all steps by node of first_tree (same indices in every step): each step's split
  // (shares.hpp) gives a leaf its share of the step and a parent its own operations' share, so a
  // step's nodes add up to the step; summed over the steps (held steps scaled alike).
  std::vector<double> by_node;
  Tree first_tree;               // the first step's tree as built (not predicted)
};

// Predicts the decode steps past = first .. last of `config` for `batch` sequences, with the pass
// options `step` (phase decode; its past is replaced). `group_of(node)` names each node's group in
// [0, groups) for the split of every step's energy (a parent's own operations count in its group).
// Errors (irene::Error): build_tree's; a feature the predictor reads that a node lacks; a
// primitive type without a regressor; templates that differ in structure (internal).
DecodeSteps predict_decode_steps(const ModelConfig& config, int batch, const BuildOptions& step, int first, int last,
                                 const Predictor& predictor, const std::function<int(const Node&)>& group_of,
                                 int groups);

}  // namespace irene::workload
