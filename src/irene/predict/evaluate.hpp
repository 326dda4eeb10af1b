// Evaluation of predicted trees against measured ones.
#pragma once

#include <filesystem>
#include <vector>

#include "irene/core/tree.hpp"
#include "irene/core/usable.hpp"
#include "irene/predict/crossval.hpp"

namespace irene::predict {

// Mean absolute percentage error per level (ml, module, model) of the predicted energies in
// `pred` against the ground truth in `gold`, over every gold node with ground truth > 0. Trees
// are matched by (model, batch, seq), nodes by id; when the ids of a tree do not all match, they
// are matched with their class part lower-cased if that pairs every node one to one: the
// reference implementation's predict.py writes instance_type lower-cased ("bertmodel"), and ids
// are recomputed from scope and class. `gold_name` and `pred_name` (file names)
// prefix errors. Errors: a tree key repeated in one file; a gold tree or node missing from the
// predictions, or a predicted tree or node that gold does not have (mismatched ids); a matched
// node without a predicted energy; no node with ground truth at all.
// With `skip` (a non-strict policy), a gold tree without a predicted tree is skipped with a notice
// (usable.hpp) instead of being an error.
LevelErrors evaluate_trees(const std::vector<Tree>& gold, const std::vector<Tree>& pred,
                           const std::string& gold_name = "gold", const std::string& pred_name = "predictions",
                           const UsablePolicy* skip = nullptr);

}  // namespace irene::predict
