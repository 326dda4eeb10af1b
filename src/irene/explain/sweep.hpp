// Energy against sequence length or batch size.
//
// A sweep predicts one tree per (batch, seq) point and records, per point, the energy per
// level (the model root; the sum of the root's children, "modules"; the sum of the ML
// primitives, "ml") and per module kind (attributed energies, see explain.hpp), each with its
// interval. Joules per forward pass.
#pragma once

#include <array>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string_view>
#include <vector>

#include <limits>

#include <nlohmann/json_fwd.hpp>

#include "irene/core/limits.hpp"
#include "irene/explain/explain.hpp"

namespace irene::explain {

// Largest number of values one range may expand to (core/limits.hpp).
inline constexpr int max_range_points = limits::kMaxRangePoints;

// Parses "8", "32:512:32" (start:stop:step, stop included when reached), "32:64" (step 1) or a
// comma list "8,16,32" into positive integers in [1, max_value], at most max_range_points of
// them. Errors name `what` ("--seq") and the text: "bad --seq range '32:16': start 32 > stop 16".
// The commands' options take the default max_value: the sizes' limits are the library's
// (core/limits.hpp), checked where a tree or a generation is built, so a size a range holds is
// accepted or refused with the same words as the same size given alone.
std::vector<int> parse_range(std::string_view text, std::string_view what,
                             int max_value = std::numeric_limits<int>::max());

struct SweepPoint {
  std::string model_name;
  int batch_size = 0;
  int seq_len = 0;
  int past_len = 0;  // cached positions of a decode step (0 for a prefill)
  Energy model;    // the root's own energy
  Energy modules;  // sum of the root's children's own energies
  Energy ml;       // sum of the ML primitives' (leaves') own energies
  std::array<Energy, kModuleKinds> kinds;  // attributed, in all_module_kinds order
  std::optional<double> measured_j;  // root's ground truth, when present
  std::string rests_on;  // the one-line summary of what the point rests on (rests_on.hpp; "" when unknown)
};

// One point from a predicted (or measured) tree; errors as explain_tree().
SweepPoint sweep_point(const Tree& tree);

// Makes the tree of one point, with energies (e.g. build_tree + Predictor::predict).
using TreeMaker = std::function<Tree(int batch, int seq)>;

// Every (batch, seq) pair, batch-major. `progress(done, total)` is called after each point.
std::vector<SweepPoint> sweep(const TreeMaker& make, const std::vector<int>& batches,
                              const std::vector<int>& seqs,
                              const std::function<void(int, int)>& progress = {});

// Grams CO2e of `joules` at `carbon_g_per_kwh` grams per kWh (none without one).
std::optional<double> co2e_g(double joules, std::optional<double> carbon_g_per_kwh);

// CSV with a header: model,batch,seq,model_j,model_low_j,model_high_j,modules_j,...,
// attention_j,attention_low_j,attention_high_j,...,measured_j,past (0 for a prefill),co2e_g (of
// model_j at the carbon intensity; empty without one),rests_on (the point's one-line summary).
// Unknown values are empty; every row has the header's fields (pandas.read_csv reads it as it is).
void write_sweep_csv(std::ostream& out, const std::vector<SweepPoint>& points,
                     std::optional<double> carbon_g_per_kwh = std::nullopt);
// Aligned text table (point estimates with intervals; a CO2e column with a carbon intensity).
void write_sweep_table(std::ostream& out, const std::vector<SweepPoint>& points,
                       std::optional<double> carbon_g_per_kwh = std::nullopt);
// [{"model_name", "batch_size", "seq_len", "past_len", "model", "modules", "ml", "kinds",
//   "measured_j", "co2e_g" (null without a carbon intensity), "rests_on" (the summary line)}].
nlohmann::json to_json(const std::vector<SweepPoint>& points, std::optional<double> carbon_g_per_kwh = std::nullopt);

}  // namespace irene::explain
