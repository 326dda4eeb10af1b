#include "irene/explain/compare.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/rests_on.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_map>

#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"

namespace irene::explain {

std::string_view to_string(DiffStatus s) {
  switch (s) {
    case DiffStatus::both: return "both";
    case DiffStatus::removed: return "removed";
    case DiffStatus::added: return "added";
  }
  return "both";
}

namespace {

// b - a with fully correlated errors (see the header).
Energy difference(const std::optional<Energy>& a, const std::optional<Energy>& b) {
  Energy d;
  const double aj = a ? a->j : 0.0;
  const double bj = b ? b->j : 0.0;
  d.j = bj - aj;
  if (a && b) {
    if (a->interval && b->interval) {
      const double x = b->interval->low_j - a->interval->low_j;
      const double y = b->interval->high_j - a->interval->high_j;
      d.interval = Interval{std::min({x, y, d.j}), std::max({x, y, d.j})};
    }
  } else if (b) {
    d.interval = b->interval;
  } else if (a && a->interval) {
    d.interval = Interval{-a->interval->high_j, -a->interval->low_j};
  }
  return d;
}

std::optional<double> change_pct(double a, double diff) {
  if (a == 0 || !std::isfinite(a)) return std::nullopt;
  return 100.0 * diff / a;
}

nlohmann::json energy_json(const Energy& e) {
  nlohmann::json j;
  j["j"] = e.j;
  j["low_j"] = e.interval ? nlohmann::json(e.interval->low_j) : nlohmann::json(nullptr);
  j["high_j"] = e.interval ? nlohmann::json(e.interval->high_j) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json opt_energy_json(const std::optional<Energy>& e) {
  return e ? energy_json(*e) : nlohmann::json(nullptr);
}

nlohmann::json diff_json(const NodeDiff& d) {
  return {{"id", d.id},
          {"a_id", d.a_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.a_id)},
          {"scope", d.scope},
          {"class_name", d.class_name},
          {"depth", d.depth},
          {"kind", std::string(to_string(d.kind))},
          {"status", std::string(to_string(d.status))},
          {"a", opt_energy_json(d.a)},
          {"b", opt_energy_json(d.b)},
          {"diff", energy_json(d.diff)},
          {"change_pct", d.change_pct ? nlohmann::json(*d.change_pct) : nlohmann::json(nullptr)}};
}

nlohmann::json group_json(const GroupDiff& g) {
  return {{"name", g.name},
          {"a", energy_json(g.a)},
          {"b", energy_json(g.b)},
          {"diff", energy_json(g.diff)},
          {"change_pct", g.change_pct ? nlohmann::json(*g.change_pct) : nlohmann::json(nullptr)}};
}

std::string node_label(const NodeDiff& d) {
  std::string label = d.scope.empty() ? d.class_name : fmt::format("{} ({})", d.scope, d.class_name);
  if (!d.a_id.empty()) label += fmt::format("  [a: {}]", d.a_id);
  return label;
}

std::string signed_joules(double j) { return (j > 0 ? "+" : "") + format_joules(j); }

std::string format_diff(const Energy& d) {
  if (!d.interval) return signed_joules(d.j) + " [no interval]";
  return fmt::format("{} [{} .. {}]", signed_joules(d.j), signed_joules(d.interval->low_j),
                     signed_joules(d.interval->high_j));
}

std::string format_pct(const std::optional<double>& p) {
  return p ? fmt::format("{:+.2f}%", *p) : std::string("n/a");
}

// The role of every node of an explanation (see the header): the root ""; a child, its parent's
// role + "/" + its kind + ":" + (a leaf: its primitive as the registry names it, so LlamaRMSNorm
// and MistralRMSNorm are one role; a module: "module") + "#" + its ordinal among the earlier
// siblings of that kind and primitive.
std::vector<std::string> role_keys(const Explanation& e) {
  std::vector<std::string> key(e.nodes.size());
  std::map<std::pair<int, std::string>, int> seen;  // (parent, role name) -> siblings so far
  for (std::size_t i = 1; i < e.nodes.size(); ++i) {
    const NodeExplanation& n = e.nodes[i];
    const bool leaf = n.type == NodeType::ml;
    std::string name = std::string(to_string(n.kind)) + ":";
    if (leaf) {
      const Primitive* p = find_primitive(n.class_name);
      name += p ? p->class_name : n.class_name;
    } else {
      name += "module";
    }
    const int ordinal = seen[{n.parent, name}]++;
    key[i] = (n.parent >= 0 ? key[static_cast<std::size_t>(n.parent)] : std::string()) + "/" + name + "#" +
             std::to_string(ordinal);
  }
  return key;
}

}  // namespace

Comparison compare(const Tree& ta, const Tree& tb) {
  if (ta.nodes.empty() || tb.nodes.empty()) throw Error("compare: a tree has no nodes");
  ExplainOptions opt;
  opt.top = 10;
  const bool both_predicted = ta.root().predicted_energy_j && tb.root().predicted_energy_j;
  opt.basis = both_predicted ? Basis::predicted : Basis::measured;
  if (!both_predicted && !(ta.root().ground_truth_energy_j && tb.root().ground_truth_energy_j))
    throw Error(fmt::format(
        "compare: {} and {} have no common energies (both predicted or both measured): run irene predict or pass --predictor",
        ta.key(), tb.key()));
  Comparison c;
  c.a = explain_tree(ta, opt);
  c.b = explain_tree(tb, opt);

  // Aligned by role (see the header); the explanation's nodes are the trees' in pre-order.
  const std::vector<std::string> ra = role_keys(c.a), rb = role_keys(c.b);
  std::unordered_map<std::string, int> b_index;
  for (std::size_t i = 1; i < tb.nodes.size(); ++i) b_index.emplace(rb[i], static_cast<int>(i));
  std::vector<bool> b_used(tb.nodes.size(), false);

  auto make = [&](const NodeExplanation* x, const NodeExplanation* y) {
    NodeDiff d;
    const NodeExplanation& ref = x ? *x : *y;
    d.id = y ? y->id : ref.id;
    if (x && y && x->id != y->id) d.a_id = x->id;
    d.scope = y ? y->scope : ref.scope;
    d.class_name = y ? y->class_name : ref.class_name;
    d.depth = ref.depth;
    d.kind = ref.kind;
    d.status = x && y ? DiffStatus::both : (x ? DiffStatus::removed : DiffStatus::added);
    if (x) d.a = x->own;
    if (y) d.b = y->own;
    d.diff = difference(d.a, d.b);
    if (x) d.change_pct = change_pct(x->own.j, d.diff.j);
    return d;
  };

  for (std::size_t i = 0; i < ta.nodes.size(); ++i) {
    int j = -1;
    if (i == 0) {
      j = 0;
    } else if (auto it = b_index.find(ra[i]); it != b_index.end()) {
      j = it->second;
    }
    if (j >= 0) b_used[j] = true;
    c.nodes.push_back(make(&c.a.nodes[i], j >= 0 ? &c.b.nodes[j] : nullptr));
  }
  for (std::size_t j = 1; j < tb.nodes.size(); ++j)
    if (!b_used[j]) c.nodes.push_back(make(nullptr, &c.b.nodes[j]));
  c.total = c.nodes.front();

  // Groups: sums of the leaves' own energies, so that a part the change does not touch differs
  // by exactly zero (attributed energies would move with the root's prediction).
  auto leaf_sums = [](const Tree& t, const Explanation& e, bool by_kind) {
    std::map<std::string, std::optional<Energy>> sums;
    std::map<std::string, bool> all_iv;
    for (const auto& x : e.nodes) {
      if (!t.nodes[x.index].is_leaf() || x.index == 0) continue;
      const std::string key = by_kind ? std::string(to_string(x.kind)) : x.class_name;
      auto& sum = sums[key];
      if (!sum) {
        sum = Energy{0, Interval{0, 0}};
        all_iv[key] = true;
      }
      sum->j += x.own.j;
      if (x.own.interval) {
        sum->interval->low_j += x.own.interval->low_j;
        sum->interval->high_j += x.own.interval->high_j;
      } else {
        all_iv[key] = false;
      }
    }
    for (auto& [k, v] : sums)
      if (!all_iv[k]) v->interval.reset();
    return sums;
  };
  auto group = [](const std::string& name, const std::optional<Energy>& a, const std::optional<Energy>& b) {
    GroupDiff g;
    g.name = name;
    g.a = a.value_or(Energy{0, Interval{0, 0}});
    g.b = b.value_or(Energy{0, Interval{0, 0}});
    g.diff = difference(g.a, g.b);
    g.change_pct = change_pct(g.a.j, g.diff.j);
    return g;
  };
  auto ka = leaf_sums(ta, c.a, true), kb = leaf_sums(tb, c.b, true);
  for (ModuleKind k : all_module_kinds) {
    const std::string name(to_string(k));
    c.by_kind.push_back(group(name, ka[name], kb[name]));
  }
  auto residual = [](const Explanation& e, const std::map<std::string, std::optional<Energy>>& kinds) {
    Energy leaves{0, Interval{0, 0}};
    bool all = e.total.interval.has_value();
    for (const auto& [name, v] : kinds) {
      if (!v) continue;
      leaves.j += v->j;
      if (v->interval) {
        leaves.interval->low_j += v->interval->low_j;
        leaves.interval->high_j += v->interval->high_j;
      } else {
        all = false;
      }
    }
    Energy r;
    r.j = e.total.j - leaves.j;
    if (all)
      r.interval = Interval{std::min(r.j, e.total.interval->low_j - leaves.interval->high_j),
                            std::max(r.j, e.total.interval->high_j - leaves.interval->low_j)};
    return std::optional<Energy>(r);
  };
  c.upper = group("upper levels", residual(c.a, ka), residual(c.b, kb));
  auto pa = leaf_sums(ta, c.a, false), pb = leaf_sums(tb, c.b, false);
  std::set<std::string> names;
  for (const auto& [n, _] : pa) names.insert(n);
  for (const auto& [n, _] : pb) names.insert(n);
  for (const auto& n : names) c.by_primitive.push_back(group(n, pa[n], pb[n]));
  std::stable_sort(c.by_primitive.begin(), c.by_primitive.end(), [](const GroupDiff& x, const GroupDiff& y) {
    return std::fabs(x.diff.j) > std::fabs(y.diff.j);
  });
  return c;
}

nlohmann::json to_json(const Comparison& c) {
  nlohmann::json j;
  auto side = [](const Explanation& e) {
    return nlohmann::json{{"model_name", e.model_name},
                          {"overrides", overrides_json(e.overrides)},
                          {"display_name", e.display_name},
                          {"batch_size", e.batch_size},
                          {"seq_len", e.seq_len},
                          {"phase", e.phase},
                          {"past_len", e.past_len},
                          {"dtype", e.dtype},
                          {"weights", e.weights.empty() ? e.dtype : e.weights},
                          {"kv_cache_dtype", e.kv_cache_dtype.empty() ? e.dtype : e.kv_cache_dtype},
                          {"basis", std::string(to_string(e.basis))},
                          {"rests_on", e.rests_on}};
  };
  j["a"] = side(c.a);
  j["b"] = side(c.b);
  j["units"] = {{"energy", "joules per forward pass"}, {"change", "percent of a"}};
  j["total"] = diff_json(c.total);
  auto& kinds = j["by_kind"] = nlohmann::json::array();
  for (const auto& g : c.by_kind) kinds.push_back(group_json(g));
  j["upper_levels"] = group_json(c.upper);
  auto& prims = j["by_primitive"] = nlohmann::json::array();
  for (const auto& g : c.by_primitive) prims.push_back(group_json(g));
  auto& nodes = j["nodes"] = nlohmann::json::array();
  for (const auto& d : c.nodes) nodes.push_back(diff_json(d));
  return j;
}

void write_csv(std::ostream& out, const Comparison& c) {
  const std::string la = rests_on_line(c.a.rests_on), lb = rests_on_line(c.b.rests_on);
  const std::string rests = la == lb ? la : fmt::format("a: {}; b: {}", la, lb);
  const auto side = [](const std::optional<Energy>& e) { return e ? csv_energy(*e) : std::string(",,"); };
  out << "id,a_id,class_name,kind,depth,status,a_j,a_low_j,a_high_j,b_j,b_low_j,b_high_j,diff_j,diff_low_j,"
         "diff_high_j,change_pct,rests_on\n";
  for (const NodeDiff& d : c.nodes)
    out << fmt::format("{},{},{},{},{},{},{},{},{},{},{}\n", csv_text(d.id), csv_text(d.a_id), csv_text(d.class_name),
                       to_string(d.kind), d.depth, to_string(d.status), side(d.a), side(d.b), csv_energy(d.diff),
                       d.change_pct ? csv_number(*d.change_pct) : "", csv_text(rests));
}

void write_text(std::ostream& out, const Comparison& c, int top) {
  // The pass beyond batch and seq, where it is not the default: a decode step, a 16-bit dtype.
  auto pass = [](const Explanation& e) {
    return (e.phase == kDecode ? fmt::format(" decode past {}", e.past_len) : std::string()) +
           (e.dtype != "float32" ? " " + e.dtype : std::string()) + (e.weights.empty() ? "" : " weights " + e.weights) +
           (e.kv_cache_dtype.empty() ? "" : " kv-cache " + e.kv_cache_dtype);
  };
  out << fmt::format("a: {} batch {} seq {}{}\nb: {} batch {} seq {}{}\n", c.a.display_name, c.a.batch_size,
                     c.a.seq_len, pass(c.a), c.b.display_name, c.b.batch_size, c.b.seq_len, pass(c.b));
  for (const auto& [name, e] : {std::pair{"a", &c.a}, std::pair{"b", &c.b}})
    if (const std::string line = rests_on_line(e->rests_on); !line.empty()) out << name << " " << line << '\n';
  out << fmt::format("total ({}): a {}  b {}\n  b - a = {}  ({})\n", to_string(c.a.basis),
                     format_energy(c.a.total), format_energy(c.b.total), format_diff(c.total.diff),
                     format_pct(c.total.change_pct));
  auto row = [&](const GroupDiff& g) {
    out << fmt::format("  {:<14} a {:<30} b {:<30} b - a {}  ({})\n", g.name, format_energy_compact(g.a),
                       format_energy_compact(g.b), format_diff(g.diff), format_pct(g.change_pct));
  };
  auto groups = [&](const char* title, const std::vector<GroupDiff>& gs, bool with_upper) {
    out << '\n' << title << '\n';
    for (const auto& g : gs)
      if (g.a.j != 0 || g.b.j != 0 || g.diff.j != 0) row(g);  // kinds neither model has are left out
    if (with_upper) {
      row(c.upper);
      GroupDiff total;
      total.name = "= model";
      total.a = c.a.total;
      total.b = c.b.total;
      total.diff = c.total.diff;
      total.change_pct = c.total.change_pct;
      row(total);
    }
  };
  groups("By module kind: sums of the ML primitives' own energies, plus what the upper levels add (the model's\n"
         "energy minus its primitives'), adding up to the model:",
         c.by_kind, true);
  groups("By primitive type (sums of their own energies):", c.by_primitive, false);

  std::vector<const NodeDiff*> order;
  for (const auto& d : c.nodes) order.push_back(&d);
  std::stable_sort(order.begin(), order.end(),
                   [](const NodeDiff* x, const NodeDiff* y) { return std::fabs(x->diff.j) > std::fabs(y->diff.j); });
  std::size_t changed = 0, removed = 0, added = 0;
  for (const auto& d : c.nodes) {
    if (d.status == DiffStatus::removed) ++removed;
    else if (d.status == DiffStatus::added) ++added;
    else if (d.diff.j != 0) ++changed;
  }
  out << fmt::format("\nNodes: {} aligned ({} changed), {} only in a (removed), {} only in b (added)\n",
                     c.nodes.size() - removed - added, changed, removed, added);
  const std::size_t n = top < 0 ? order.size() : std::min<std::size_t>(order.size(), static_cast<std::size_t>(top));
  if (n > 0) out << fmt::format("Largest differences (own energy, b - a):\n");
  for (std::size_t i = 0; i < n; ++i) {
    const NodeDiff& d = *order[i];
    out << fmt::format("  {:<8} {}  ({})  {}\n", to_string(d.status), format_diff(d.diff),
                       format_pct(d.change_pct), node_label(d));
  }
}

}  // namespace irene::explain
