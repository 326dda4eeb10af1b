// What an answer rests on, stated the same way in every interface (text, JSON, CSV, Python, the
// HTTP API, the report): the hardware and what its joules cover, the predictor and the span of its
// training data (predict/predictor.hpp TrainingSpan), the question asked in the same dimensions,
// and how far outside the training data the question is, dimension by dimension:
//
//   size     the model's parameters against the training models' (factor: x the largest, or
//            the smallest / this below it);
//   batch    sequences per call;
//   tokens   tokens per sequence per call (a prefill's seq, 1 for a decode step);
//   context  positions a token attends to (a prefill's seq, a decode step's past + 1);
//   phase    prefill / decode, when the training data holds no such pass;
//   dtype    the dtype applied, the weights' format and the key/value cache's dtype, when the
//            training trees were in another.
//
// Besides the dimensions: the nodes outside their features' ranges (predict/range.hpp, the
// tree's provenance "out_of_range"), the stand-ins, the batch envelope (batch_held), the dtype
// applied against the config's torch_dtype, and where the config came from.
//
// JSON (the "rests_on" object):
//   {"hardware": {"name", "energy_covers"}, "predictor": {"file", "target", "trained_on": span},
//    "question": {"model", "parameters", "batch", "tokens", "context", "phases", "dtype",
//                 "weights", "kv_cache_dtype"},
//    "outside": [{"dimension", "value", "trained", "factor", "words"}], "within_training_data",
//    "nodes_outside", "stand_ins", "batch_held", "dtype_applied", "config_torch_dtype",
//    "config_source", "summary"}
// "summary" is the one line the text outputs print ("rests on: ...").
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/core/tree.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::explain {

// A question in the dimensions of a training span; ranges [lo, hi] for a generation, which asks
// about a prefill and steps over a range of contexts.
struct Question {
  std::string model;
  double parameters = 0;
  std::pair<int, int> batch{0, 0}, tokens{0, 0}, context{0, 0};
  std::vector<std::string> phases;
  std::string dtype = "float32", weights, kv_cache_dtype;  // "" = the dtype
};

// The question one predicted tree answers.
Question question_of(const Tree& tree);

// The "rests_on" object (file comment). `tree` supplies the provenance (out_of_range, batch_held,
// config_torch_dtype, config_source) and stand-ins; for a generation, pass its prefill tree and
// merge what its steps' trees say (merge_rests_on).
nlohmann::json rests_on(const Question& question, const Predictor& predictor, const Tree& tree);

// Merges the object of another part (a generation's step, a sweep's point) into `into` (null: takes it as it is): the
// question's ranges widen to hold both, each dimension outside keeps its farthest entry,
// within_training_data holds only when both do, the node note with more nodes outside, stand-ins
// and the batch envelope of either; the summary is rewritten.
void merge_rests_on(nlohmann::json& into, const nlohmann::json& other);

// Records rests_on(question_of(tree), predictor, tree) in the tree's provenance ("rests_on", the
// JSON text), where every output of the tree finds it.
void stamp_rests_on(Tree& tree, const Predictor& predictor);

// The object a tree's provenance holds (null when it was not stamped or does not parse).
nlohmann::json rests_on_of(const Tree& tree);

// The one-line summary ("rests on: ...") of an object.
std::string rests_on_line(const nlohmann::json& rests_on);

}  // namespace irene::explain
