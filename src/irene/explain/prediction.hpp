// How `irene predict` renders a predicted tree: the text table (energy, interval, own
// operations, share of parent and attributed energy of every node, as explain.hpp defines them),
// the JSON record, and the provenance a prediction is stamped with.
#pragma once

#include <iosfwd>
#include <optional>

#include <nlohmann/json.hpp>

#include "irene/core/tree.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::explain {

struct PredictionView {
  int depth = -1;                          // nodes shown down to this depth (-1: all)
  std::optional<double> carbon_g_per_kwh;  // adds grams CO2e to the normalized figures
};

// The root's energy with its interval and normalized figures, what the predictor is and reads, the
// dtype, stand-ins and extrapolation, then one line per node (joules, or seconds for a time
// predictor: predict/target.hpp).
void write_prediction_text(std::ostream& out, const Tree& tree, const Predictor& predictor,
                           const PredictionView& view = {});

// The JSONL record of a predicted tree, plus its dtype and its stand-in summary (explain.hpp).
nlohmann::json prediction_json(const Tree& tree);

// Records in the tree's provenance what predicted it: "predicted_for" (hardware), "predictor"
// (its file), and for a time predictor "target" and "target_unit".
void stamp_prediction(Tree& tree, const Predictor& predictor);

}  // namespace irene::explain
