#include "irene/explain/splits.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "irene/core/error.hpp"
#include "irene/explain/explain.hpp"

namespace irene::explain {

namespace {

std::string label_of(const Tree& t) {
  std::string s = fmt::format("{} {} batch {}", t.display_name(), t.phase, t.batch_size);
  if (t.phase == kDecode) return s + fmt::format(" past {}", t.past_len);
  return s + fmt::format(" seq {}", t.seq_len);
}

std::vector<SplitComparison::KindSummary> summarize(const std::vector<const TreeSplit*>& trees) {
  std::vector<SplitComparison::KindSummary> out;
  if (trees.empty()) return out;
  const std::size_t kinds = trees.front()->kinds.size();
  for (std::size_t k = 0; k < kinds; ++k) {
    SplitComparison::KindSummary s;
    s.kind = trees.front()->kinds[k].kind;
    for (const auto* t : trees) {
      const auto& x = t->kinds[k];
      s.measured_share += x.measured_share / trees.size();
      s.predicted_share += x.predicted_share / trees.size();
      s.abs_diff_pp += 100.0 * std::abs(x.predicted_share - x.measured_share) / trees.size();
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

SplitComparison compare_kind_splits(const std::vector<Tree>& gold, const std::vector<Tree>& pred,
                                    const std::string& gold_name, const std::string& pred_name) {
  std::map<std::string, const Tree*> by_key;
  for (const auto& t : pred) by_key.emplace(t.key(), &t);
  SplitComparison c;
  double sum_pct = 0;
  for (const auto& g : gold) {
    auto it = by_key.find(g.key());
    if (it == by_key.end()) continue;
    const Tree& p = *it->second;
    if (g.nodes.empty() || !g.nodes[0].ground_truth_energy_j || *g.nodes[0].ground_truth_energy_j <= 0) {
      ++c.unmeasured_roots;  // as evaluate skips it: nothing to split
      continue;
    }
    if (p.nodes.empty() || !p.nodes[0].predicted_energy_j)
      throw Error(fmt::format("{}: tree {} has no predicted energy at its root", pred_name, p.key()));
    ExplainOptions mo, po;
    mo.basis = Basis::measured;
    po.basis = Basis::predicted;
    const Explanation me = explain_tree(g, mo), pe = explain_tree(p, po);
    TreeSplit s;
    s.key = g.key();
    s.label = label_of(g);
    s.phase = g.phase;
    s.measured_j = *g.nodes[0].ground_truth_energy_j;
    s.predicted_j = *p.nodes[0].predicted_energy_j;
    for (std::size_t k = 0; k < me.by_kind.size() && k < pe.by_kind.size(); ++k)
      s.kinds.push_back({me.by_kind[k].name, me.by_kind[k].attributed.j, pe.by_kind[k].attributed.j,
                         me.by_kind[k].share, pe.by_kind[k].share});
    const double pct = 100.0 * std::abs(s.predicted_j / s.measured_j - 1.0);
    sum_pct += pct;
    c.root_max_pct = std::max(c.root_max_pct, pct);
    if (pct <= 25.0) ++c.roots_within_25;
    c.trees.push_back(std::move(s));
  }
  if (c.trees.empty())
    throw Error(c.unmeasured_roots > 0
                    ? fmt::format("{}: no tree with a measured root energy has a prediction in {}", gold_name, pred_name)
                    : fmt::format("{}: no tree of {} is in it (trees are matched by model, phase, batch, seq, past, "
                                  "dtype, attention)",
                                  pred_name, gold_name));
  c.root_mape = sum_pct / c.trees.size();
  std::vector<const TreeSplit*> all;
  std::vector<std::string> phases;
  for (const auto& t : c.trees) {
    all.push_back(&t);
    if (std::find(phases.begin(), phases.end(), t.phase) == phases.end()) phases.push_back(t.phase);
  }
  c.overall = summarize(all);
  for (const auto& ph : phases) {
    std::vector<const TreeSplit*> some;
    for (const auto& t : c.trees)
      if (t.phase == ph) some.push_back(&t);
    c.by_phase.emplace_back(ph, summarize(some));
  }
  return c;
}

std::string splits_text(const SplitComparison& c) {
  std::string out = "Split by module kind: share of the step's energy, measured / predicted (%)\n";
  std::size_t width = 4;
  for (const auto& t : c.trees) width = std::max(width, t.label.size());
  out += fmt::format("{:<{}}  {:>10}  {:>10}  {:>7}", "tree", width, "measured J", "predicted J", "error %");
  if (!c.trees.empty())
    for (const auto& k : c.trees.front().kinds) out += fmt::format("  {:>13}", k.kind);
  out += '\n';
  for (const auto& t : c.trees) {
    out += fmt::format("{:<{}}  {:>10.4g}  {:>11.4g}  {:>+7.1f}", t.label, width, t.measured_j, t.predicted_j,
                       100.0 * (t.predicted_j / t.measured_j - 1.0));
    for (const auto& k : t.kinds)
      out += fmt::format("  {:>13}", fmt::format("{:.1f}/{:.1f}", 100 * k.measured_share, 100 * k.predicted_share));
    out += '\n';
  }
  auto summary = [&](const std::string& what, const std::vector<SplitComparison::KindSummary>& s) {
    out += fmt::format("{:<{}}", what, 24);
    for (const auto& k : s) out += fmt::format("  {} {:.1f}", k.kind, k.abs_diff_pp);
    out += '\n';
  };
  out += fmt::format("roots: mean error {:.1f}%, largest {:.1f}%, {} of {} within 25%{}\n", c.root_mape,
                     c.root_max_pct, c.roots_within_25, c.trees.size(),
                     c.unmeasured_roots > 0
                         ? fmt::format(" ({} trees without a measured root left out)", c.unmeasured_roots)
                         : "");
  out += "mean |predicted - measured| share, percentage points:\n";
  summary("  all trees", c.overall);
  for (const auto& [ph, s] : c.by_phase) summary("  " + ph, s);
  return out;
}

nlohmann::json splits_json(const SplitComparison& c) {
  using nlohmann::json;
  auto summary = [](const std::vector<SplitComparison::KindSummary>& s) {
    json a = json::array();
    for (const auto& k : s)
      a.push_back({{"kind", k.kind},
                   {"measured_share", k.measured_share},
                   {"predicted_share", k.predicted_share},
                   {"abs_diff_pp", k.abs_diff_pp}});
    return a;
  };
  json trees = json::array();
  for (const auto& t : c.trees) {
    json kinds = json::array();
    for (const auto& k : t.kinds)
      kinds.push_back({{"kind", k.kind},
                       {"measured_j", k.measured_j},
                       {"predicted_j", k.predicted_j},
                       {"measured_share", k.measured_share},
                       {"predicted_share", k.predicted_share}});
    trees.push_back({{"tree", t.key},
                     {"label", t.label},
                     {"phase", t.phase},
                     {"measured_j", t.measured_j},
                     {"predicted_j", t.predicted_j},
                     {"kinds", kinds}});
  }
  json phases = json::object();
  for (const auto& [ph, s] : c.by_phase) phases[ph] = summary(s);
  return {{"trees", trees},
          {"overall", summary(c.overall)},
          {"by_phase", phases},
          {"root_mape_pct", c.root_mape},
          {"root_max_pct", c.root_max_pct},
          {"roots_within_25", c.roots_within_25},
          {"unmeasured_roots", c.unmeasured_roots}};
}

}  // namespace irene::explain
