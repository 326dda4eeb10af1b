// What a predictor predicts: the energy of a node (joules per forward pass, the paper's target)
// or its time (seconds per forward pass, `times_mean`).
//
// The IrEne method applies to any quantity that adds up over the tree. With target time the
// trees' ground truth is each node's measured `times_mean` (retarget() moves it into the slot
// that training and evaluation read, Node::ground_truth_energy_j), and no feature derived from
// time is an input (times_mean, cpu_time_mean, own_times_mean): no leak of the answer. A
// predictor file records its target and unit; every output of a time predictor states seconds.
//
// The node fields keep their names (`ground_truth_energy`, `predicted_energy` in JSONL): for a
// tree retargeted or predicted for time they hold seconds, and the tree's provenance says so
// ("target": "time", "target_unit": "s").
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "irene/core/tree.hpp"

namespace irene::predict {

enum class Target { energy, time };

std::string_view to_string(Target t);
// "energy" or "time"; Error otherwise.
Target target_from_string(std::string_view s);
// "J" or "s".
std::string_view target_unit(Target t);
// "joules per forward pass" or "seconds per forward pass".
std::string_view target_unit_words(Target t);

// True for a feature computed from measured time, which a time predictor must not read.
bool derived_from_time(std::string_view feature);
// `features` without those derived from time when the target is time.
std::vector<std::string> features_for_target(const std::vector<std::string>& features, Target t);

// With target time, every node's ground truth becomes its measured times_mean (seconds; none
// where the node has no times_mean) and the tree's provenance records the target; with target
// energy nothing changes. Returns how many trees have a measured root afterwards.
long retarget(std::vector<Tree>& trees, Target t);
void retarget(Tree& tree, Target t);

// The target a tree's values are in, from its provenance ("target"; energy when absent).
Target tree_target(const Tree& t);

}  // namespace irene::predict
