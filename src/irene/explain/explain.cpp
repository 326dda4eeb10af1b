#include "irene/explain/explain.hpp"
#include "irene/explain/rests_on.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>
#include <cmath>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>

#include "irene/arch/family_table.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/units.hpp"
#include "irene/workload/shares.hpp"

namespace irene::explain {

std::string_view to_string(ModuleKind kind) { return module_kind_name(kind); }

std::string_view to_string(Basis basis) {
  return basis == Basis::predicted ? "predicted" : "measured";
}

namespace {

constexpr const char* kIntervalsCombine =
    "a sum adds its parts' ends (their errors taken as fully correlated); a part's upper bound is at most its whole's "
    "over the part's weight in it, a group's at most the model's";
constexpr const char* kPartsAboveWhole =
    "each is weighted below 1 in its parent (the predictor's learned near-one weights), so its own prediction can "
    "exceed its parent's; counted at its weight (its attributed energy and interval) it stays inside";

// The explanation's six kinds: a mixture-of-experts block's experts and router are feed-forward.
ModuleKind explained(ModuleKind k) {
  return k == ModuleKind::experts || k == ModuleKind::router ? ModuleKind::feed_forward : k;
}

Energy scaled(const Energy& own, double target_j) {
  Energy e;
  e.j = target_j;
  if (own.interval) {
    if (own.j > 0) {
      const double f = target_j / own.j;
      e.interval = Interval{own.interval->low_j * f, own.interval->high_j * f};
    } else {
      e.interval = Interval{std::min(0.0, target_j), std::max(0.0, target_j)};
    }
  }
  return e;
}

void add_to(Energy& sum, const Energy& e, bool& all_intervals) {
  sum.j += e.j;
  if (!e.interval) {
    all_intervals = false;
    return;
  }
  if (!sum.interval) sum.interval = Interval{0, 0};
  sum.interval->low_j += e.interval->low_j;
  sum.interval->high_j += e.interval->high_j;
}

nlohmann::json interval_json(const std::optional<Interval>& i, const char* low, const char* high,
                             nlohmann::json& j) {
  j[low] = i ? nlohmann::json(i->low_j) : nlohmann::json(nullptr);
  j[high] = i ? nlohmann::json(i->high_j) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json energy_json(const Energy& e) {
  nlohmann::json j;
  j["j"] = e.j;
  interval_json(e.interval, "low_j", "high_j", j);
  return j;
}

nlohmann::json group_json(const GroupEnergy& g) {
  nlohmann::json j;
  j["name"] = g.name;
  j["count"] = g.count;
  j["energy"] = energy_json(g.attributed);
  j["share"] = g.share;
  j["measured_j"] = g.measured_j ? nlohmann::json(*g.measured_j) : nlohmann::json(nullptr);
  return j;
}

std::string label(const NodeExplanation& n) {
  if (n.scope.empty()) return n.class_name;
  return fmt::format("{} ({})", n.scope, n.class_name);
}

}  // namespace

ModuleKind module_kind(std::string_view scope, std::string_view class_name) {
  return explained(module_kind_of(scope, class_name));
}

std::vector<ModuleKind> module_kinds(const Tree& tree) {
  std::vector<ModuleKind> kinds = module_kinds_of(tree);
  for (auto& k : kinds) k = explained(k);
  return kinds;
}

std::string format_joules(double j) { return joules(j); }

std::string format_interval(const Energy& e) {
  if (!e.interval) return "no interval";
  // Bounds in the value's unit: "5.734 .. 6.843 J".
  const ColumnUnit u = column_unit({e.j}, "J");
  auto num = [&](double v) { return fixed_significant(v / u.scale, 4); };
  return fmt::format("{} .. {} {}", num(e.interval->low_j), num(e.interval->high_j), u.unit);
}

std::string format_energy_compact(const Energy& e) {
  if (!e.interval) return format_joules(e.j) + " [no interval]";
  std::string bounds = format_interval(e);
  bounds.resize(bounds.rfind(' '));  // the unit is printed once, after the value
  return fmt::format("{} [{}]", format_joules(e.j), bounds);
}

std::string csv_number(double v) { return fmt::format("{:.9g}", v); }

std::string csv_energy(const Energy& e) {
  return fmt::format("{},{},{}", csv_number(e.j), e.interval ? csv_number(e.interval->low_j) : "",
                     e.interval ? csv_number(e.interval->high_j) : "");
}

std::string format_energy(const Energy& e) {
  if (!e.interval) return format_joules(e.j) + " [no interval]";
  return format_energy_compact(e);
}

namespace {

// "encoder.layer.3.intermediate.dense" -> "encoder.layer.*.intermediate.dense".
std::string repeated_pattern(std::string_view scope) {
  std::string out;
  std::size_t start = 0;
  while (start <= scope.size()) {
    const std::size_t dot = scope.find('.', start);
    const std::string_view seg = scope.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    const bool number = !seg.empty() && std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!out.empty() || start > 0) out += '.';
    out += number ? std::string("*") : std::string(seg);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

}  // namespace
std::vector<StandInGroup> stand_ins(const Tree& tree) {
  std::vector<StandInGroup> groups;
  for (const Node& n : tree.nodes) {
    if (n.stand_in.empty()) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const StandInGroup& g) { return g.class_name == n.class_name && g.stand_in == n.stand_in; });
    if (it == groups.end()) it = groups.insert(groups.end(), StandInGroup{n.class_name, n.stand_in, 0, 0});
    ++it->leaves;
    it->predicted_j += n.predicted_energy_j.value_or(0.0);
  }
  return groups;
}

std::string stand_in_note(const Tree& tree) {
  const auto groups = stand_ins(tree);
  if (groups.empty()) return "";
  std::string s = "stand-ins: ";
  for (std::size_t i = 0; i < groups.size(); ++i)
    s += fmt::format("{}{} {} leaves by the {} regressor", i ? ", " : "", groups[i].leaves, groups[i].class_name,
                     groups[i].stand_in);
  return s + " (no regressor of their own: predicted on their own features; their intervals widened x2 each side, "
             "their ancestors' by as much)";
}

nlohmann::json stand_ins_json(const Tree& tree) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& g : stand_ins(tree))
    a.push_back({{"class_name", g.class_name}, {"stand_in", g.stand_in}, {"leaves", g.leaves},
                 {"predicted_j", g.predicted_j}, {"interval_widening", 2.0}});
  return a;
}

Explanation explain_tree(const Tree& tree, const ExplainOptions& options) {
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  const Node& root = tree.root();
  Basis basis;
  if (options.basis) {
    basis = *options.basis;
    if (basis == Basis::predicted && !root.predicted_energy_j)
      throw Error(fmt::format("tree {} has no predicted energies: run irene predict or pass --predictor", tree.key()));
    if (basis == Basis::measured && !root.ground_truth_energy_j)
      throw Error(fmt::format("tree {} has no measured energy at its root", tree.key()));
  } else if (root.predicted_energy_j) {
    basis = Basis::predicted;
  } else if (root.ground_truth_energy_j) {
    basis = Basis::measured;
  } else {
    throw Error(fmt::format(
        "tree {} has neither predicted nor measured energies: run irene predict or pass --predictor",
        tree.key()));
  }

  Explanation e;
  e.model_name = tree.model_name;
  e.overrides = tree.overrides();
  e.display_name = tree.display_name();
  e.batch_size = tree.batch_size;
  e.seq_len = tree.seq_len;
  e.basis = basis;
  e.dtype = tree.dtype;
  e.weights = tree.weights;
  e.kv_cache_dtype = tree.kv_cache_dtype;
  if (auto it = tree.provenance.find("batch_held"); it != tree.provenance.end()) e.batch_held = it->second;
  e.rests_on = rests_on_of(tree);
  e.phase = tree.phase;
  e.past_len = tree.past_len;
  if (basis == Basis::predicted) e.stand_ins = stand_ins(tree);
  e.nodes.resize(tree.nodes.size());
  const std::vector<ModuleKind> node_kinds = module_kinds(tree);
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    const Node& n = tree.nodes[i];
    NodeExplanation& x = e.nodes[i];
    x.index = static_cast<int>(i);
    x.parent = n.parent;
    x.id = n.id;
    x.scope = n.scope;
    x.class_name = n.class_name;
    x.type = n.type;
    x.depth = n.depth;
    x.kind = node_kinds[i];
    x.num_parameters = n.num_parameters;
    x.flops_mflop = n.flops_mflop;
    x.mem_mib = n.mem_mib;
    x.predicted_j = n.predicted_energy_j;
    x.interval = n.predicted_interval;
    x.measured_j = n.ground_truth_energy_j;
    x.stand_in = n.stand_in;
    if (basis == Basis::predicted) {
      x.own.j = n.predicted_energy_j.value_or(0.0);
      if (n.predicted_interval)  // widened to contain the estimate (see the header)
        x.own.interval = Interval{std::min(n.predicted_interval->low_j, x.own.j),
                                  std::max(n.predicted_interval->high_j, x.own.j)};
    } else {
      x.own.j = n.ground_truth_energy_j.value_or(0.0);
    }
  }
  e.total = e.nodes[0].own;
  e.measured_total_j = root.ground_truth_energy_j;

  // Shares: pre-order guarantees a parent is done before its children.
  e.nodes[0].share_of_parent = 1;
  e.nodes[0].share_of_model = 1;
  const double root_j = std::max(0.0, e.total.j);
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    const Node& n = tree.nodes[i];
    const auto& children = n.children;
    if (children.empty()) continue;
    double sum = 0;
    for (int c : children) sum += workload::split_weight(e.nodes[c].own.j);
    // The parent's own operations: the predictor's own-operation energy, or (measured basis)
    // what the parent measured above the sum of its children; at most the whole parent.
    Energy own_ops;
    if (basis == Basis::predicted && n.predicted_own_energy_j) {
      own_ops.j = *n.predicted_own_energy_j;
      if (n.predicted_own_interval)
        own_ops.interval = Interval{std::min(n.predicted_own_interval->low_j, own_ops.j),
                                    std::max(n.predicted_own_interval->high_j, own_ops.j)};
    } else if (basis == Basis::measured && n.ground_truth_energy_j) {
      double children_j = 0;
      bool all = true;
      for (int c : children) {
        all = all && tree.nodes[c].ground_truth_energy_j.has_value();
        children_j += tree.nodes[c].ground_truth_energy_j.value_or(0.0);
      }
      if (all) own_ops.j = *n.ground_truth_energy_j - children_j;
    }
    const double own_share = workload::own_share(own_ops.j, e.nodes[i].own.j);
    if (workload::split_weight(own_ops.j) > 0 && workload::split_weight(e.nodes[i].own.j) > 0) {
      OwnOperations o;
      o.ops = own_operations_text(n);
      o.energy = own_ops;
      o.share_of_parent = own_share;
      e.nodes[i].own_operations = std::move(o);
    }
    for (int c : children)
      e.nodes[c].share_of_parent = workload::child_share(1.0, own_share, e.nodes[c].own.j, sum, children.size());
  }
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    NodeExplanation& x = e.nodes[i];
    if (x.parent >= 0) x.share_of_model = e.nodes[x.parent].share_of_model * x.share_of_parent;
    x.attributed = scaled(x.own, x.share_of_model * root_j);
    if (i == 0) x.attributed = x.own;
    // Counted at its share, a part is inside its parent: its attributed upper bound is at most the
    // parent's (never below its point). Pre-order: the parent is done first.
    const auto inside = [](Energy& part, const Energy& whole) {
      if (part.interval && whole.interval)
        part.interval->high_j = std::max(part.j, std::min(part.interval->high_j, whole.interval->high_j));
    };
    if (x.parent >= 0) inside(x.attributed, e.nodes[x.parent].attributed);
    if (x.own_operations) {
      auto& o = *x.own_operations;
      o.share_of_model = x.share_of_model * o.share_of_parent;
      o.attributed = scaled(o.energy, o.share_of_model * root_j);
      inside(o.attributed, x.attributed);
    }
  }

  // Parts whose own upper bound reaches above their parent's: a part weighted below 1 in its
  // parent (the learned near-one weights) can be predicted above its whole; counted at its weight
  // (its attributed energy and interval) it stays inside.
  for (std::size_t i = 1; i < e.nodes.size(); ++i) {
    const NodeExplanation& x = e.nodes[i];
    const NodeExplanation& p = e.nodes[static_cast<std::size_t>(x.parent)];
    if (x.own.interval && p.own.interval && x.own.interval->high_j > p.own.interval->high_j * (1 + 1e-9))
      ++e.parts_above_whole;
  }

  // Groups over the leaves.
  std::map<std::string, GroupEnergy> prim;
  std::map<ModuleKind, GroupEnergy> kinds;
  std::map<std::string, bool> prim_all_iv, prim_all_meas;
  std::map<ModuleKind, bool> kind_all_iv, kind_all_meas;
  for (ModuleKind k : all_module_kinds) {
    kinds[k].name = std::string(to_string(k));
    kind_all_iv[k] = true;
    kind_all_meas[k] = true;
  }
  std::vector<int> leaves;
  for (const auto& x : e.nodes) {
    if (!tree.nodes[x.index].is_leaf()) continue;
    leaves.push_back(x.index);
    auto [pit, fresh] = prim.try_emplace(x.class_name);
    if (fresh) {
      pit->second.name = x.class_name;
      prim_all_iv[x.class_name] = true;
      prim_all_meas[x.class_name] = true;
    }
    for (auto* target : {&pit->second, &kinds[x.kind]}) {
      bool& all_iv = target == &pit->second ? prim_all_iv[x.class_name] : kind_all_iv[x.kind];
      bool& all_meas = target == &pit->second ? prim_all_meas[x.class_name] : kind_all_meas[x.kind];
      ++target->count;
      add_to(target->attributed, x.attributed, all_iv);
      if (x.measured_j) target->measured_j = target->measured_j.value_or(0.0) + *x.measured_j;
      else all_meas = false;
    }
  }
  // A group is a part of the whole: its attributed energy can be no more than the whole's, so its
  // upper bound (the sum of its members' upper bounds, errors taken as fully correlated) is capped
  // at the whole's upper bound (never below its point).
  const auto cap_at_whole = [&](Energy& a) {
    if (a.interval && e.total.interval)
      a.interval->high_j = std::max(a.j, std::min(a.interval->high_j, e.total.interval->high_j));
  };
  auto finish = [&](GroupEnergy& g, bool all_iv, bool all_meas) {
    if (!all_iv) g.attributed.interval.reset();
    cap_at_whole(g.attributed);
    if (!all_meas) g.measured_j.reset();
    g.share = root_j > 0 ? g.attributed.j / root_j : 0.0;
  };
  // Every parent's own operations: one group of their own, and in the parent's module kind.
  GroupEnergy own_group;
  own_group.name = kOwnOperationsGroup;
  bool own_all_iv = true;
  for (const auto& x : e.nodes) {
    if (!x.own_operations) continue;
    ++own_group.count;
    add_to(own_group.attributed, x.own_operations->attributed, own_all_iv);
    add_to(kinds[x.kind].attributed, x.own_operations->attributed, kind_all_iv[x.kind]);
    kind_all_meas[x.kind] = false;  // a residual, not a measured node
  }
  if (own_group.count > 0) {
    finish(own_group, own_all_iv, false);
    e.by_primitive.push_back(own_group);
  }
  for (auto& [name, g] : prim) {
    finish(g, prim_all_iv[name], prim_all_meas[name]);
    e.by_primitive.push_back(g);
  }
  std::stable_sort(e.by_primitive.begin(), e.by_primitive.end(),
                   [](const GroupEnergy& a, const GroupEnergy& b) { return a.attributed.j > b.attributed.j; });
  for (ModuleKind k : all_module_kinds) {
    finish(kinds[k], kind_all_iv[k], kind_all_meas[k] && kinds[k].count > 0);
    if (kinds[k].count == 0 && !kinds[k].attributed.interval) kinds[k].attributed.interval = Interval{0, 0};  // exactly nothing
    e.by_kind.push_back(kinds[k]);
  }

  std::stable_sort(leaves.begin(), leaves.end(), [&](int a, int b) {
    return e.nodes[a].attributed.j > e.nodes[b].attributed.j;
  });
  // Groups of repeated leaves, from every leaf (before the cut to `top`).
  std::map<std::pair<std::string, std::string>, HotspotGroup> groups;
  std::map<std::pair<std::string, std::string>, std::pair<bool, bool>> group_iv;  // all attributed / own intervals
  for (int i : leaves) {
    const auto& x = e.nodes[i];
    const auto key = std::make_pair(repeated_pattern(x.scope), x.class_name);
    auto [it, fresh] = groups.try_emplace(key);
    HotspotGroup& g = it->second;
    if (fresh) {
      g.pattern = key.first;
      g.class_name = key.second;
      group_iv[key] = {true, true};
    }
    g.members.push_back(i);
    g.share += x.share_of_model;
    add_to(g.attributed, x.attributed, group_iv[key].first);
    add_to(g.own, x.own, group_iv[key].second);
  }
  for (auto& [key, g] : groups) {
    if (!group_iv[key].first) g.attributed.interval.reset();
    cap_at_whole(g.attributed);
    if (!group_iv[key].second) g.own.interval.reset();
    std::sort(g.members.begin(), g.members.end());
    e.hotspot_groups.push_back(std::move(g));
  }
  std::stable_sort(e.hotspot_groups.begin(), e.hotspot_groups.end(),
                   [](const HotspotGroup& a, const HotspotGroup& b) { return a.attributed.j > b.attributed.j; });
  if (options.top >= 0 && static_cast<int>(e.hotspot_groups.size()) > options.top) e.hotspot_groups.resize(options.top);
  if (options.top >= 0 && static_cast<int>(leaves.size()) > options.top) leaves.resize(options.top);
  e.hotspots = leaves;
  return e;
}

std::string own_operations_text(const Node& node) {
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& op : node.ops) {
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == op.kind; });
    if (it == counts.end()) counts.emplace_back(op.kind, 1);
    else ++it->second;
  }
  std::string out;
  for (const auto& [kind, n] : counts) out += fmt::format("{}{} x{}", out.empty() ? "" : ", ", kind, n);
  return out;
}

nlohmann::json overrides_json(const std::string& overrides) {
  nlohmann::json j = nlohmann::json::object();
  std::size_t start = 0;
  while (start < overrides.size()) {
    std::size_t end = overrides.find(", ", start);
    if (end == std::string::npos) end = overrides.size();
    const std::string item = overrides.substr(start, end - start);
    const auto eq = item.find('=');
    if (eq != std::string::npos) {
      const std::string k = item.substr(0, eq), v = item.substr(eq + 1);
      char* stop = nullptr;
      const long long n = std::strtoll(v.c_str(), &stop, 10);
      j[k] = (!v.empty() && stop && *stop == '\0') ? nlohmann::json(n) : nlohmann::json(v);
    }
    start = end + 2;
  }
  return j;
}

nlohmann::json to_json(const Explanation& e) {
  nlohmann::json j;
  j["model_name"] = e.model_name;
  j["overrides"] = overrides_json(e.overrides);
  j["display_name"] = e.display_name;
  j["batch_size"] = e.batch_size;
  j["seq_len"] = e.seq_len;
  j["basis"] = std::string(to_string(e.basis));
  j["dtype"] = e.dtype;
  j["weights"] = e.weights.empty() ? e.dtype : e.weights;
  j["kv_cache_dtype"] = e.kv_cache_dtype.empty() ? e.dtype : e.kv_cache_dtype;
  j["batch_held"] = e.batch_held.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.batch_held);
  if (!e.rests_on.is_null()) j["rests_on"] = e.rests_on;
  j["intervals"] = {{"combine", kIntervalsCombine},
                    {"parts_above_whole", e.parts_above_whole},
                    {"parts_above_whole_reason", e.parts_above_whole > 0 ? nlohmann::json(kPartsAboveWhole)
                                                                        : nlohmann::json(nullptr)}};
  j["phase"] = e.phase;
  j["past_len"] = e.past_len;
  const bool whole = e.phase == kWholeGeneration;
  if (whole) j["generate"] = e.generate;
  {
    nlohmann::json si = nlohmann::json::array();
    for (const auto& g : e.stand_ins)
      si.push_back({{"class_name", g.class_name}, {"stand_in", g.stand_in}, {"leaves", g.leaves},
                    {"predicted_j", g.predicted_j}, {"interval_widening", 2.0}});
    j["stand_ins"] = std::move(si);
  }
  j["units"] = {{"energy", whole ? "joules of the whole generation (the prefill and every decode step)"
                                 : "joules per forward pass"},
                {"flops", "MFLOP"}, {"mem", "MiB"}, {"share", "fraction of parent / of model"}};
  j["total"] = energy_json(e.total);
  j["measured_total_j"] = e.measured_total_j ? nlohmann::json(*e.measured_total_j) : nlohmann::json(nullptr);
  auto& nodes = j["nodes"] = nlohmann::json::array();
  for (const auto& x : e.nodes) {
    nlohmann::json n;
    n["id"] = x.id;
    n["parent"] = x.parent;
    n["scope"] = x.scope;
    n["class_name"] = x.class_name;
    n["type"] = std::string(to_string(x.type));
    n["depth"] = x.depth;
    n["kind"] = std::string(to_string(x.kind));
    n["num_parameters"] = x.num_parameters;
    n["flops_mflop"] = x.flops_mflop;
    n["mem_mib"] = x.mem_mib;
    n["predicted_j"] = x.predicted_j ? nlohmann::json(*x.predicted_j) : nlohmann::json(nullptr);
    interval_json(x.interval, "predicted_low_j", "predicted_high_j", n);
    n["measured_j"] = x.measured_j ? nlohmann::json(*x.measured_j) : nlohmann::json(nullptr);
    n["stand_in"] = x.stand_in.empty() ? nlohmann::json(nullptr) : nlohmann::json(x.stand_in);
    n["energy"] = energy_json(x.own);
    n["share_of_parent"] = x.share_of_parent;
    n["share_of_model"] = x.share_of_model;
    n["attributed"] = energy_json(x.attributed);
    if (x.own_operations) {
      const auto& o = *x.own_operations;
      n["own_operations"] = {{"ops", o.ops},
                             {"energy", energy_json(o.energy)},
                             {"share_of_parent", o.share_of_parent},
                             {"share_of_model", o.share_of_model},
                             {"attributed", energy_json(o.attributed)}};
    } else {
      n["own_operations"] = nullptr;
    }
    nodes.push_back(std::move(n));
  }
  j["hotspots"] = e.hotspots;
  auto& hg = j["hotspot_groups"] = nlohmann::json::array();
  for (const auto& g : e.hotspot_groups)
    hg.push_back({{"pattern", g.pattern},
                  {"class_name", g.class_name},
                  {"count", g.members.size()},
                  {"members", g.members},
                  {"share", g.share},
                  {"attributed", energy_json(g.attributed)},
                  {"own", energy_json(g.own)}});
  j["normalized"] = explain::to_json(normalize(e.total.j, e.batch_size, whole ? e.generate : e.seq_len, std::nullopt));
  auto& prim = j["by_primitive"] = nlohmann::json::array();
  for (const auto& g : e.by_primitive) prim.push_back(group_json(g));
  auto& kinds = j["by_kind"] = nlohmann::json::array();
  for (const auto& g : e.by_kind) kinds.push_back(group_json(g));
  return j;
}

void write_text(std::ostream& out, const Explanation& e, const TextOptions& o) {
  const bool predicted = e.basis == Basis::predicted;
  // Measured energies have no predictor interval: say so once instead of on every line.
  const auto energy = [&](const Energy& x) { return !predicted && !x.interval ? format_joules(x.j) : format_energy(x); };
  const bool whole = e.phase == kWholeGeneration;
  const std::string dtypes = (e.dtype != "float32" ? " " + e.dtype : "") + (e.weights.empty() ? "" : " weights " + e.weights) +
                             (e.kv_cache_dtype.empty() ? "" : " kv-cache " + e.kv_cache_dtype);
  if (whole) {
    out << fmt::format("{} batch {} prompt {} generate {}{}: {} {} for the whole generation (the prefill and {} "
                       "decode steps, node by node)\n",
                       e.display_name, e.batch_size, e.seq_len, e.generate, dtypes, to_string(e.basis),
                       energy(e.total), e.generate);
    out << "  " << to_text(normalize(e.total.j, e.batch_size, e.generate, o.carbon_g_per_kwh), o.carbon_g_per_kwh)
        << " (tokens: the generated ones, the prefill included)\n";
  } else {
    out << fmt::format("{} batch {} seq {}{}{}: {} {} per forward pass\n", e.display_name, e.batch_size, e.seq_len,
                       e.phase == kDecode ? fmt::format(" decode past {}", e.past_len) : "", dtypes,
                       to_string(e.basis), energy(e.total));
    out << "  " << to_text(normalize(e.total.j, e.batch_size, e.seq_len, o.carbon_g_per_kwh), o.carbon_g_per_kwh) << '\n';
  }
  if (!predicted) out << "  (measured energies: no predictions, so no intervals)\n";
  if (!e.batch_held.empty()) out << "  held: " << e.batch_held << '\n';
  if (const std::string line = rests_on_line(e.rests_on); !line.empty()) out << "  " << line << '\n';
  if (predicted && e.total.interval) out << "  intervals: " << kIntervalsCombine << '\n';
  if (e.parts_above_whole > 0)
    out << fmt::format("  note: {} node(s) reach above their parent's upper bound: {}\n", e.parts_above_whole,
                       kPartsAboveWhole);
  for (const auto& g : e.stand_ins)
    out << fmt::format("  stand-in: {} {} leaves predicted by the {} regressor on their own features (no regressor of "
                       "their own; intervals widened x2 each side, their ancestors' by as much)\n",
                       g.leaves, g.class_name, g.stand_in);
  if (e.measured_total_j && predicted) {
    const double err = e.total.j / *e.measured_total_j - 1;
    out << fmt::format("  measured {} (prediction {:+.1f}%)\n", format_joules(*e.measured_total_j), 100 * err);
  }
  if (!o.hardware.empty()) out << "  " << (predicted ? "predicted for: " : "measured on: ") << o.hardware << '\n';
  out << fmt::format(
      "\nHotspots: ML primitives by attributed energy (their share of the model's {} {}){}:\n", to_string(e.basis),
      format_joules(e.total.j), o.expand ? "" : "; repeated layers grouped (--expand lists each)");
  if (o.expand) {
    for (std::size_t r = 0; r < e.hotspots.size(); ++r) {
      const auto& x = e.nodes[e.hotspots[r]];
      out << fmt::format("  {:>2}. {:>6.2f}%  attributed {}  {}  (own {})", r + 1, 100 * x.share_of_model,
                         energy(x.attributed), label(x), format_joules(x.own.j));
      if (x.measured_j) out << fmt::format("  measured {}", format_joules(*x.measured_j));
      out << '\n';
    }
  } else {
    for (std::size_t r = 0; r < e.hotspot_groups.size(); ++r) {
      const auto& g = e.hotspot_groups[r];
      const std::size_t n = g.members.size();
      const std::string name = fmt::format("{} ({})", g.pattern.empty() ? std::string("(root)") : g.pattern, g.class_name);
      if (n == 1)
        out << fmt::format("  {:>2}. {:>6.2f}%  attributed {}  {}  (own {})\n", r + 1, 100 * g.share,
                           energy(g.attributed), name, format_joules(g.own.j));
      else
        out << fmt::format("  {:>2}. {:>6.2f}%  attributed {}  {}, {} x {:.2f}%  (own {} each)\n", r + 1,
                           100 * g.share, energy(g.attributed), name, n, 100 * g.share / static_cast<double>(n),
                           format_joules(g.own.j / static_cast<double>(n)));
    }
  }
  auto groups = [&](const std::string& title, const std::vector<GroupEnergy>& gs) {
    out << '\n' << title << '\n';
    double total = 0;
    for (const auto& g : gs) {
      if (g.count == 0 && g.attributed.j == 0) continue;  // a kind this architecture does not have
      total += g.attributed.j;
      out << fmt::format("  {:<14} {:>6.2f}%  {}  ({} {})", g.name, 100 * g.share, energy(g.attributed), g.count,
                         g.name == kOwnOperationsGroup ? "parents" : "leaves");
      if (g.measured_j) out << fmt::format("  measured sum {}", format_joules(*g.measured_j));
      out << '\n';
    }
    out << fmt::format("  {:<14} {:>6.2f}%  {}\n", "total", 100.0, format_joules(total));
  };
  const bool any_own = std::any_of(e.nodes.begin(), e.nodes.end(), [](const auto& x) { return x.own_operations.has_value(); });
  groups(fmt::format("Energy by primitive type (attributed energies of the ML primitives{}; they add up to the model's {}):",
                     any_own ? " and of the modules' own operations" : "", format_joules(e.total.j)),
         e.by_primitive);
  groups(fmt::format("Energy by module kind (attributed, as above; layer norms are 'norm'{}):",
                     any_own ? "; a module's own operations count in its kind" : ""),
         e.by_kind);
  out << fmt::format(
      "\nTree: each node's own {} energy; its share of its parent / of the model; attributed = share of the model "
      "x the model's energy{}:\n",
      to_string(e.basis), o.depth >= 0 ? fmt::format(" (depth <= {}, --depth -1 shows all)", o.depth) : "");
  for (const auto& x : e.nodes) {
    if (o.depth >= 0 && x.depth > o.depth) continue;
    out << fmt::format("{:{}}{}  own {}  {:.1f}% / {:.1f}%  attributed {}", "", 2 * x.depth + 2, label(x),
                       energy(x.own), 100 * x.share_of_parent, 100 * x.share_of_model, format_joules(x.attributed.j));
    if (!x.stand_in.empty()) out << fmt::format("  [stand-in: {}]", x.stand_in);
    if (x.measured_j && predicted) out << fmt::format("  measured {}", format_joules(*x.measured_j));
    out << '\n';
    if (x.own_operations && (o.depth < 0 || x.depth + 1 <= o.depth)) {
      const auto& own = *x.own_operations;
      out << fmt::format("{:{}}own operations{}  own {}  {:.1f}% / {:.1f}%  attributed {}\n", "", 2 * x.depth + 4,
                         own.ops.empty() ? std::string(" (counted as the node minus its children)") : " (" + own.ops + ")",
                         energy(own.energy), 100 * own.share_of_parent, 100 * own.share_of_model,
                         format_joules(own.attributed.j));
    }
  }
}

}  // namespace irene::explain
