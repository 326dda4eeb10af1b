// How a predictor splits each tree's energy across module kinds, against the measured split: the
// check of an explanation's "where the joules go" on trees measured node by node (e.g. the H200
// collection of data/gpu-h200, or a cross-validation's held-out predictions).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/core/tree.hpp"

namespace irene::explain {

// One module kind of one tree: its energy (joules per forward pass, the kind's leaves plus the own
// operations of the modules of that kind, as explanations attribute them) and its share of the
// root's energy, measured and predicted.
struct KindSplit {
  std::string kind;  // module_kind_name: "attention", "feed-forward", ...
  double measured_j = 0, predicted_j = 0;
  double measured_share = 0, predicted_share = 0;  // in [0, 1]
};

struct TreeSplit {
  std::string key;    // Tree::key()
  std::string label;  // "Qwen/Qwen2-0.5B decode batch 8 past 256"
  std::string phase;  // prefill | decode
  double measured_j = 0, predicted_j = 0;  // the roots', joules per forward pass
  std::vector<KindSplit> kinds;            // explain's all_module_kinds order
};

struct SplitComparison {
  std::vector<TreeSplit> trees;  // gold order, the trees both files have
  // Per kind: mean measured and predicted share over the trees, and the mean absolute
  // difference of the shares in percentage points; the same over the trees of each phase.
  struct KindSummary {
    std::string kind;
    double measured_share = 0, predicted_share = 0, abs_diff_pp = 0;
  };
  std::vector<KindSummary> overall;
  std::vector<std::pair<std::string, std::vector<KindSummary>>> by_phase;  // phases in gold order
  double root_mape = 0;      // mean |predicted / measured - 1| of the roots, %
  double root_max_pct = 0;   // the largest of them, %
  int roots_within_25 = 0;   // roots predicted within 25%
  int unmeasured_roots = 0;  // matched gold trees left out: no measured root energy
};

// Trees of `gold` (measured: ground truth on the root and the leaves) matched by Tree::key() with
// those of `pred` (predicted: every node, as irene predict or crossval --predictions write them);
// gold trees without a prediction, or without a measured root energy (counted), are left out.
// Errors (irene::Error, naming `gold_name` or `pred_name`): no tree left to compare; a matched
// predicted tree without a predicted root.
SplitComparison compare_kind_splits(const std::vector<Tree>& gold, const std::vector<Tree>& pred,
                                    const std::string& gold_name = "gold", const std::string& pred_name = "predictions");

// Text: a table per tree (root joules measured/predicted, % error, each kind's measured and
// predicted share), then the mean absolute share differences overall and per phase.
std::string splits_text(const SplitComparison& c);
nlohmann::json splits_json(const SplitComparison& c);

}  // namespace irene::explain
