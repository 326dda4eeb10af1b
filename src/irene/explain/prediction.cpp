#include "irene/explain/prediction.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "irene/core/jsonl.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/rests_on.hpp"
#include "irene/explain/units.hpp"
#include "irene/predict/target.hpp"

namespace irene::explain {

using predict::Target;

void write_prediction_text(std::ostream& out, const Tree& t, const Predictor& p, const PredictionView& view) {
  const Node& r = t.root();
  // A time predictor's values are seconds per forward pass (predict/target.hpp).
  const bool time = p.target() == Target::time;
  auto q = [&](double v) { return time ? format_si(v, "s") : joules(v); };
  out << fmt::format("{}  batch {}  seq {}{}{}{}: {}{} per forward pass", t.display_name(), t.batch_size, t.seq_len,
                     t.is_decode() ? fmt::format("  decode past {}", t.past_len) : "",
                     t.dtype != "float32" ? "  " + t.dtype : "",
                     (t.weights.empty() ? "" : "  weights " + t.weights) +
                         (t.kv_cache_dtype.empty() ? "" : "  kv-cache " + t.kv_cache_dtype) +
                         (t.attention != "eager" ? "  " + t.attention : ""),
                     time ? "time " : "", q(*r.predicted_energy_j));
  if (r.predicted_interval)
    out << fmt::format(" ({:.0f}% interval {} .. {})", 100 * p.config().interval_coverage,
                       q(r.predicted_interval->low_j), q(r.predicted_interval->high_j));
  out << '\n';
  if (time)
    out << fmt::format("  {} per sample, {} per token\n", q(*r.predicted_energy_j / t.batch_size),
                       q(*r.predicted_energy_j / (static_cast<double>(t.batch_size) * std::max(1, t.seq_len))));
  else
    out << "  "
        << to_text(normalize(*r.predicted_energy_j, t.batch_size, t.seq_len, view.carbon_g_per_kwh),
                            view.carbon_g_per_kwh)
        << '\n';
  if (r.ground_truth_energy_j)
    out << fmt::format("  measured {} (prediction {:+.1f}%)\n", q(*r.ground_truth_energy_j),
                       100 * (*r.predicted_energy_j / *r.ground_truth_energy_j - 1));
  out << fmt::format("predicted for: {}\npredictor: {} (target: {}, {}; features: {})\n", p.hardware(),
                     p.path().empty() ? std::string("(in memory)") : p.path().string(), to_string(p.target()),
                     target_unit_words(p.target()), fmt::join(p.feature_names(), ", "));
  if (!t.weights.empty())
    out << fmt::format("weights: {} (the Linear weights of the layers, scales included; FLOPs unchanged); the predictor "
                       "was trained on trees whose weights are in their dtype\n",
                       t.weights);
  if (!t.kv_cache_dtype.empty())
    out << fmt::format("key/value cache: {} (its reads and writes; FLOPs unchanged); the predictor was trained on "
                       "trees whose cache is in their dtype\n",
                       t.kv_cache_dtype);
  out << fmt::format("dtype: {} ({}activations{}){}\n", t.dtype, t.weights.empty() ? "weights, " : "",
                     t.is_decode() && t.kv_cache_dtype.empty() ? ", key/value cache" : "",
                     t.provenance.count("config_torch_dtype") && t.provenance.at("config_torch_dtype") != t.dtype
                         ? fmt::format("; the config's torch_dtype {} is not applied", t.provenance.at("config_torch_dtype"))
                         : "");
  if (const std::string note = stand_in_note(t); !note.empty()) out << note << '\n';
  if (const std::string line = rests_on_line(rests_on_of(t)); !line.empty()) out << line << '\n';
  if (auto it = t.provenance.find("out_of_range"); it != t.provenance.end())
    out << fmt::format("extrapolated (intervals widened): {}\n", it->second);
  if (auto it = t.provenance.find("batch_held"); it != t.provenance.end()) out << "held: " << it->second << '\n';
  out << '\n';
  bool measured = false;
  for (const auto& n : t.nodes) measured = measured || n.ground_truth_energy_j.has_value();
  std::vector<std::string> labels;
  std::size_t width = 4;
  for (const auto& n : t.nodes) {
    const std::string name = relative_name(t, n);
    std::string label = std::string(2 * n.depth, ' ') + (name.empty() ? "" : name + " ") + "(" + n.class_name + ")";
    width = std::max(width, label.size());
    labels.push_back(std::move(label));
  }
  // Share of parent and attributed energy as irene explain defines them: a parent's energy split
  // among its children in proportion to their own predictions.
  const Explanation shares = explain_tree(t);
  // "own": the part of a parent's energy its own operations account for (residual adds, GELU,
  // attention scaling and masking; predictors with an own-operations term).
  bool own = false;
  for (const auto& n : t.nodes) own = own || n.predicted_own_energy_j.has_value();
  out << fmt::format("{:<{}}  {:>11}  {:>11}  {:>11}{}  {:>7}  {:>11}{}\n",
                     time ? "node (time per forward pass)" : "node (energy per forward pass)", width,
                     time ? "time" : "energy", "low", "high", own ? fmt::format("  {:>11}", "own") : "", "share", "attributed",
                     measured ? fmt::format("  {:>11}", "measured") : "");
  for (std::size_t i = 0; i < t.nodes.size(); ++i) {
    const Node& n = t.nodes[i];
    if (view.depth >= 0 && n.depth > view.depth) continue;
    const double e = *n.predicted_energy_j;
    const std::string share = n.parent >= 0 ? fmt::format("{:.1f}%", 100 * shares.nodes[i].share_of_parent) : "";
    const std::string own_cell = !own                     ? ""
                                 : n.predicted_own_energy_j ? fmt::format("  {:>11}", q(*n.predicted_own_energy_j))
                                                            : fmt::format("  {:>11}", "");
    out << fmt::format("{:<{}}  {:>11}  {:>11}  {:>11}{}  {:>7}  {:>11}", labels[i], width, q(e),
                       q(n.predicted_interval ? n.predicted_interval->low_j : e),
                       q(n.predicted_interval ? n.predicted_interval->high_j : e), own_cell, share,
                       q(shares.nodes[i].attributed.j));
    if (measured) out << fmt::format("  {:>11}", n.ground_truth_energy_j ? q(*n.ground_truth_energy_j) : "-");
    if (!n.stand_in.empty()) out << "  stand-in: " << n.stand_in;
    out << '\n';
  }
  if (view.depth >= 0) out << fmt::format("(nodes deeper than {} not shown; --depth -1 shows all)\n", view.depth);
}

nlohmann::json prediction_json(const Tree& t) {
  nlohmann::json j = tree_to_json(t);
  j["dtype"] = t.dtype;
  j["weights"] = t.weights.empty() ? t.dtype : t.weights;
  j["kv_cache_dtype"] = t.kv_cache_dtype.empty() ? t.dtype : t.kv_cache_dtype;
  j["stand_ins"] = stand_ins_json(t);
  if (auto r = rests_on_of(t); !r.is_null()) {
    j["rests_on"] = std::move(r);
    if (j.contains("provenance") && j["provenance"].is_object()) j["provenance"].erase("rests_on");
  }
  return j;
}

void stamp_prediction(Tree& t, const Predictor& p) {
  t.provenance["predicted_for"] = p.hardware();
  t.provenance["predictor"] = p.path().empty() ? std::string("(in memory)") : p.path().string();
  if (p.target() == Target::time) {
    // The predicted_energy fields hold seconds (predict/target.hpp).
    t.provenance["target"] = "time";
    t.provenance["target_unit"] = "s";
  }
  stamp_rests_on(t, p);
}

}  // namespace irene::explain
