#include "irene/explain/generation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_map>

#include "irene/arch/family_table.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"
#include "irene/predict/features.hpp"
#include "irene/predict/model.hpp"

namespace irene::explain {

namespace {

using predict::FittedModel;
using predict::LeafRegressor;

bool positive(double x) { return std::isfinite(x) && x > 0; }

// A value of a step tree that moves with the past: value(past) = base + slope x (past - past0),
// at most `cap` (the keys of a sliding-window layer stop growing at its window).
struct Affine {
  std::int64_t base = 0, slope = 0;
  std::int64_t cap = std::numeric_limits<std::int64_t>::max();
  std::int64_t at(std::int64_t delta) const { return std::min(base + slope * delta, cap); }
};

// Predicts decode steps at any past from two template trees (see the file comment of the header).
class StepEvaluator {
 public:
  StepEvaluator(const ModelConfig& config, int batch, const BuildOptions& base, int first, int last,
                const Predictor& predictor)
      : model_(predictor.model()), past0_(first) {
    BuildOptions a = base;
    a.past = first;
    tree_ = build_tree(config, batch, 1, a);
    e_bytes_ = dtype_bytes(tree_.dtype);
    const int n = static_cast<int>(tree_.nodes.size());
    attrs_.resize(n);
    ops_.resize(n);
    if (last > first) {
      BuildOptions b = base;
      b.past = first + 1;
      const Tree next = build_tree(config, batch, 1, b);
      diff(next);
      if (last > first + 1) {  // values that stop growing within the range: their cap
        b.past = last;
        caps(build_tree(config, batch, 1, b), last - first);
      }
    }
    classify();
  }

  const Tree& first_tree() const { return tree_; }

  // The step's energy (joules) and its energy by module kind (explain_tree's attribution).
  double evaluate(int past, std::array<double, kModuleKinds>& kinds) {
    const std::int64_t delta = past - past0_;
    for (int u = static_cast<int>(classes_.size()) - 1; u >= 0; --u) {
      Class& c = classes_[u];
      if (c.done && !c.moves) continue;
      compute(c, delta);
      c.done = true;
    }
    // Shares as explain_tree splits a parent among its children (pre-order: parents first).
    const double root_e = classes_[class_of_[0]].energy;
    const double root_j = std::max(0.0, root_e);
    kinds.fill(0.0);
    for (auto& c : classes_) {
      c.positive_sum = 0;
      for (int k : tree_.nodes[c.rep].children) {
        const double e = classes_[class_of_[k]].energy;
        c.positive_sum += positive(e) ? e : 0.0;
      }
    }
    // A parent's own operations take their share first (explain_tree's OwnOperations), in the
    // parent's kind; its children split the rest.
    auto own_share = [&](const Class& c) {
      return positive(c.own_energy) && positive(c.energy) ? std::min(1.0, c.own_energy / c.energy) : 0.0;
    };
    share_.assign(tree_.nodes.size(), 1.0);
    {
      const double s0 = own_share(classes_[class_of_[0]]);
      kinds[kind_[0]] += s0 * root_j;
    }
    for (std::size_t i = 1; i < tree_.nodes.size(); ++i) {
      const Node& nd = tree_.nodes[i];
      const Class& parent = classes_[class_of_[nd.parent]];
      const Class& self = classes_[class_of_[i]];
      const double e = self.energy;
      const double own = positive(e) ? e : 0.0;
      const double of_parent = parent.positive_sum > 0
                                   ? own / parent.positive_sum
                                   : 1.0 / static_cast<double>(tree_.nodes[nd.parent].children.size());
      share_[i] = share_[nd.parent] * (1 - own_share(parent)) * of_parent;
      if (nd.children.empty()) kinds[kind_[i]] += share_[i] * root_j;
      else kinds[kind_[i]] += share_[i] * own_share(self) * root_j;
    }
    return root_e;
  }

 private:
  struct Class {
    int rep = 0;                      // representative node index
    bool moves = false;               // its features depend on the past
    bool done = false;
    bool root = false, root_child = false;
    const LeafRegressor* regressor = nullptr;
    Counts counts;
    double energy = 0, alpha = 1, positive_sum = 0;
    double own_energy = 0;  // of a parent: its own operations' predicted energy (0 without an own term)
  };

  // Records every attr and op dimension that differs between the template trees as affine.
  void diff(const Tree& next) {
    auto mismatch = [&](const std::string& what) {
      return Error(fmt::format("internal: the decode steps of {} differ in structure ({}): cannot predict them as one",
                               tree_.model_name, what));
    };
    if (next.nodes.size() != tree_.nodes.size()) throw mismatch("node count");
    for (std::size_t i = 0; i < tree_.nodes.size(); ++i) {
      const Node& a = tree_.nodes[i];
      const Node& b = next.nodes[i];
      if (a.id != b.id || a.children != b.children || a.ops.size() != b.ops.size() || a.attrs.size() != b.attrs.size())
        throw mismatch(a.id);
      for (const auto& [k, v] : a.attrs) {
        auto it = b.attrs.find(k);
        if (it == b.attrs.end()) throw mismatch(a.id + " attr " + k);
        if (it->second != v) attrs_[i].push_back({k, Affine{v, it->second - v}});
      }
      for (std::size_t o = 0; o < a.ops.size(); ++o) {
        if (a.ops[o].kind != b.ops[o].kind || a.ops[o].shape.size() != b.ops[o].shape.size())
          throw mismatch(a.id + " op " + a.ops[o].kind);
        for (std::size_t d = 0; d < a.ops[o].shape.size(); ++d)
          if (a.ops[o].shape[d] != b.ops[o].shape[d])
            ops_[i].push_back({static_cast<int>(o), static_cast<int>(d),
                               Affine{a.ops[o].shape[d], b.ops[o].shape[d] - a.ops[o].shape[d]}});
      }
    }
  }

  // Values of the tree at past0 + delta that fall short of the affine rule: capped there (a
  // sliding window's keys, min(past + 1, window)); one that exceeds it is an error.
  void caps(const Tree& last, std::int64_t delta) {
    auto cap = [&](Affine& a, std::int64_t actual, const std::string& what) {
      if (actual > a.at(delta))
        throw Error(fmt::format("internal: the decode steps of {} grow faster than the first two ({}): cannot "
                                "predict them as one",
                                tree_.model_name, what));
      if (actual < a.at(delta)) a.cap = actual;
    };
    for (std::size_t i = 0; i < tree_.nodes.size(); ++i) {
      for (auto& [k, a] : attrs_[i]) cap(a, last.nodes[i].attrs.at(k), tree_.nodes[i].id + " attr " + k);
      for (auto& m : ops_[i]) cap(m.affine, last.nodes[i].ops[m.op].shape[m.dim], tree_.nodes[i].id + " op");
    }
  }

  // Groups identical subtrees (class, type, attrs, ops and how they move, children, place under
  // the root): they have the same features at every past, so the same prediction.
  void classify() {
    const int n = static_cast<int>(tree_.nodes.size());
    class_of_.assign(n, -1);
    kind_.assign(n, 0);
    std::vector<char> moves(n, 0);
    std::unordered_map<std::string, int> ids;
    // Children before parents: a node's signature names its children's classes.
    for (int i = n - 1; i >= 0; --i) {
      const Node& nd = tree_.nodes[i];
      std::string sig = fmt::format("{}|{}|{}|", nd.class_name, static_cast<int>(nd.type),
                                    i == 0 ? 2 : nd.parent == 0 ? 1 : 0);
      for (const auto& [k, v] : nd.attrs) sig += fmt::format("{}={},", k, v);
      sig += '|';
      for (const auto& [k, a] : attrs_[i]) sig += fmt::format("{}+{}<{},", k, a.slope, a.cap);
      sig += '|';
      for (const auto& op : nd.ops) {
        sig += op.kind + '[';
        for (auto d : op.shape) sig += fmt::format("{},", d);
        sig += ']';
      }
      sig += '|';
      for (const auto& m : ops_[i]) sig += fmt::format("{}.{}+{}<{},", m.op, m.dim, m.affine.slope, m.affine.cap);
      sig += '|';
      bool m = !attrs_[i].empty() || !ops_[i].empty();
      for (int k : nd.children) {
        sig += fmt::format("{},", class_of_[k]);
        m = m || moves[k];
      }
      moves[i] = m;
      auto [it, fresh] = ids.emplace(std::move(sig), 0);
      if (fresh) {
        it->second = static_cast<int>(classes_.size());
        Class c;
        c.rep = i;
        c.moves = m;
        c.root = i == 0;
        c.root_child = nd.parent == 0;
        if (nd.children.empty()) {
          c.regressor = predict::find_leaf_regressor(model_, nd.class_name);
          if (!c.regressor)
            throw Error(fmt::format("tree {}: primitive type '{}' was never seen in training and has no stand-in the "
                                    "predictor knows",
                                    tree_.key(), nd.class_name));
        }
        classes_.push_back(c);
      }
      class_of_[i] = it->second;
      kind_[i] = static_cast<int>(module_kind(nd.scope, nd.class_name));
    }
    // classes_ were created children first: reverse so that evaluate() (walking backwards)
    // computes children before parents.
    std::reverse(classes_.begin(), classes_.end());
    const int k = static_cast<int>(classes_.size());
    for (auto& c : class_of_) c = k - 1 - c;
    row_.resize(model_.feature_names.size());
  }

  // Counts, features, prediction and weight of one class at past0 + delta, as recount(),
  // node_feature() and predict_flat() compute them (same operations, same order).
  void compute(Class& c, std::int64_t delta) {
    Node& nd = tree_.nodes[c.rep];
    for (const auto& [k, a] : attrs_[c.rep]) nd.attrs[k] = a.at(delta);
    for (const auto& m : ops_[c.rep]) nd.ops[m.op].shape[m.dim] = m.affine.at(delta);
    Counts counts;
    if (nd.type == NodeType::ml && nd.children.empty()) {
      counts = primitive_counts(nd, e_bytes_);
    } else {
      for (int k : nd.children) counts += classes_[class_of_[k]].counts;
    }
    for (const auto& op : nd.ops) counts += count_op(op, e_bytes_);
    if (!std::isfinite(counts.flops) || !std::isfinite(counts.bytes))
      throw Error(fmt::format("node {}: its FLOP or byte count is not finite", nd.id));
    c.counts = counts;
    nd.flops_mflop = counts.mflop();
    nd.mem_mib = counts.mib();
    for (std::size_t f = 0; f < row_.size(); ++f) {
      const auto v = predict::node_feature(tree_, nd, model_.feature_names[f]);
      if (!v || !std::isfinite(*v))
        throw Error(fmt::format("tree {}: node '{}' lacks the feature '{}' that the predictor reads", tree_.key(), nd.id,
                                model_.feature_names[f]));
      row_[f] = *v;
    }
    const auto& up = model_.upper;
    const bool unstructured = up.strategy == predict::Strategy::unstructured;
    if (nd.children.empty()) {
      c.energy = c.regressor->predict(row_.data());
    } else if (unstructured) {
      c.energy = up.alpha(up.score(row_.data()));
    } else {
      // The own operations' energy, then the children, as predict_flat adds them (the last
      // child first).
      c.own_energy = up.own_w.size() > 0 ? up.own(own_row(nd).data()) : 0.0;
      double sum = c.own_energy;
      for (auto it = nd.children.rbegin(); it != nd.children.rend(); ++it) {
        const Class& child = classes_[class_of_[*it]];
        sum += child.alpha * child.energy;
      }
      c.energy = sum;
    }
    if (!c.root && !unstructured) {
      const bool exact = up.weighting == predict::Weighting::exact_one || (up.root_children_exact && c.root_child);
      const double s = exact ? 0.0 : c.root_child ? up.root_child_score(row_.data()) : up.score(row_.data());
      c.alpha = exact ? 1.0 : c.root_child ? up.root_child_alpha(s) : up.alpha(s);
    }
  }

  // The node's own-operation features (predict/features.hpp, own_feature), with its children's
  // counts taken from their classes (only each class's representative node is kept current).
  const std::vector<double>& own_row(const Node& nd) {
    own_row_.resize(model_.own_names.size());
    for (std::size_t k = 0; k < own_row_.size(); ++k) {
      const std::string& name = model_.own_names[k];
      const bool flops = name == "own_flops";
      if (flops || name == "own_mem_bytes") {
        double v = flops ? nd.flops_mflop : nd.mem_mib;
        const double whole = v;
        for (int ch : nd.children) {
          const Counts& cc = classes_[class_of_[ch]].counts;
          v -= flops ? cc.mflop() : cc.mib();
        }
        own_row_[k] = predict::own_remainder(whole, v);
      } else {
        own_row_[k] = predict::own_feature(tree_, nd, name);
      }
    }
    return own_row_;
  }

  struct OpMove {
    int op = 0, dim = 0;
    Affine affine;
  };

  const FittedModel& model_;
  int past0_;
  Tree tree_;
  double e_bytes_ = 4;
  std::vector<std::vector<std::pair<std::string, Affine>>> attrs_;
  std::vector<std::vector<OpMove>> ops_;
  std::vector<Class> classes_;
  std::vector<int> class_of_, kind_;
  std::vector<double> row_, share_, own_row_;
};

Energy with_ratio(double j, double lo, double hi) {
  Energy e;
  e.j = j;
  double a = j * lo, b = j * hi;
  if (a > b) std::swap(a, b);
  e.interval = Interval{std::min(a, j), std::max(b, j)};
  return e;
}

void add_energy(Energy& sum, const Energy& e) {
  sum.j += e.j;
  if (!e.interval) return;
  if (!sum.interval) sum.interval = Interval{0, 0};
  sum.interval->low_j += e.interval->low_j;
  sum.interval->high_j += e.interval->high_j;
}

// low / j and high / j of an energy (1, 1 without an interval or at 0 J).
std::pair<double, double> ratios(const Energy& e) {
  if (!e.interval || e.j == 0) return {1.0, 1.0};
  return {e.interval->low_j / e.j, e.interval->high_j / e.j};
}

void merge_stand_ins(std::vector<StandInGroup>& into, const std::vector<StandInGroup>& from) {
  for (const auto& g : from) {
    auto it = std::find_if(into.begin(), into.end(), [&](const StandInGroup& x) {
      return x.class_name == g.class_name && x.stand_in == g.stand_in;
    });
    if (it == into.end()) into.push_back(g);
  }
}

nlohmann::json energy_json(const Energy& e) {
  return {{"j", e.j},
          {"low_j", e.interval ? nlohmann::json(e.interval->low_j) : nlohmann::json(nullptr)},
          {"high_j", e.interval ? nlohmann::json(e.interval->high_j) : nlohmann::json(nullptr)}};
}

}  // namespace

Generation predict_generation(const ModelConfig& config, const GenerationRequest& r, const Predictor& predictor) {
  const FamilyInfo& family = family_of(config);
  if (!family.causal)
    throw Error(fmt::format("--generate: {} is an encoder ({}): it does not generate text (decoders: {})",
                            config.name, config.model_type,
                            family_list([](const FamilyInfo& f) { return f.kv_cache; })));
  if (r.batch < 1 || r.batch > limits::kMaxBatch)
    throw Error(fmt::format("--batch must be an integer in 1..{}, got {}", limits::kMaxBatch, r.batch));
  if (r.prompt < 1 || r.prompt > limits::kMaxSeq)
    throw Error(fmt::format("--prompt must be an integer in 1..{} (tokens of each prompt), got {}", limits::kMaxSeq,
                            r.prompt));
  if (r.generate < 1 || r.generate > kMaxGenerate)
    throw Error(fmt::format("--generate must be an integer in 1..{} (new tokens per sequence), got {}", kMaxGenerate,
                            r.generate));
  if (predictor.needs_resource_features())
    throw Error(fmt::format("predictor {} reads measured resource features, so it cannot predict a generation from a "
                            "configuration alone; use a model-spec predictor (the default)",
                            predictor.path().empty() ? std::string("(in memory)") : predictor.path().string()));
  const std::int64_t positions = static_cast<std::int64_t>(r.prompt) + r.generate;
  if (positions > config.max_positions && !(r.pass.allow_long && family.rotary()))
    throw Error(fmt::format("prompt {} + generate {} = {} positions exceeds the {} positions of {} "
                            "(max_position_embeddings){}",
                            r.prompt, r.generate, positions, config.max_positions, config.name,
                            !family.rotary() ? " (a learned position table: --allow-long cannot help)"
                                : "; --allow-long predicts it anyway"));

  Generation g;
  g.model_name = config.name;
  g.batch = r.batch;
  g.prompt = r.prompt;
  g.generate = r.generate;
  g.dtype = r.pass.dtype;
  g.attention = r.pass.attention;
  g.hardware = predictor.hardware();

  // The prefill, as generate() runs it: the LM-head class, logits of the last position.
  BuildOptions pre = r.pass;
  pre.phase = kPrefill;
  pre.past = 0;
  pre.head = "lm";
  pre.last_token_logits = true;
  g.prefill_tree = build_tree(config, r.batch, r.prompt, pre);
  predictor.predict(g.prefill_tree);
  const Explanation pe = explain_tree(g.prefill_tree);
  g.prefill = pe.total;

  // The steps.
  BuildOptions step = r.pass;
  step.phase = kDecode;
  step.head = "lm";
  step.last_token_logits = true;
  const int first = r.prompt, last = r.prompt + r.generate - 1;
  StepEvaluator steps(config, r.batch, step, first, last, predictor);
  g.first_step = steps.first_tree();
  predictor.predict(g.first_step);
  step.past = last;
  g.last_step = build_tree(config, r.batch, 1, step);
  predictor.predict(g.last_step);
  const Explanation fe = explain_tree(g.first_step), le = explain_tree(g.last_step);
  const auto [f_lo, f_hi] = ratios(fe.total);
  const auto [l_lo, l_hi] = ratios(le.total);
  const double lo = std::min(f_lo, l_lo), hi = std::max(f_hi, l_hi);
  g.steps.reserve(r.generate);
  std::array<double, kModuleKinds> kinds{};
  g.decode.j = 0;
  double floor = -std::numeric_limits<double>::infinity();
  for (int past = first; past <= last; ++past) {
    double e = steps.evaluate(past, kinds);
    GenerationStep s;
    s.past = past;
    if (e < floor) {  // held at the previous step's energy (see Generation::held)
      s.raw_j = e;
      if (e > 0)
        for (auto& k : kinds) k *= floor / e;
      e = floor;
      ++g.held;
    }
    floor = e;
    s.energy = with_ratio(e, lo, hi);
    add_energy(g.decode, s.energy);
    for (std::size_t k = 0; k < kModuleKinds; ++k) g.decode_by_kind[k] += kinds[k];
    g.steps.push_back(s);
  }
  g.total = g.prefill;
  add_energy(g.total, g.decode);
  const double tokens = static_cast<double>(r.batch) * r.generate;
  g.per_token.j = g.decode.j / tokens;
  if (g.decode.interval) g.per_token.interval = Interval{g.decode.interval->low_j / tokens, g.decode.interval->high_j / tokens};

  // By module kind over the whole generation.
  for (std::size_t k = 0; k < kModuleKinds; ++k) {
    const GroupEnergy& p = pe.by_kind[k];
    g.prefill_by_kind[k] = p.attributed.j;
    const auto [a_lo, a_hi] = ratios(fe.by_kind[k].attributed);
    const auto [b_lo, b_hi] = ratios(le.by_kind[k].attributed);
    Energy d = with_ratio(g.decode_by_kind[k], std::min(a_lo, b_lo), std::max(a_hi, b_hi));
    GroupEnergy ge;
    ge.name = p.name;
    ge.count = p.count;
    ge.attributed = p.attributed;
    add_energy(ge.attributed, d);
    ge.share = g.total.j > 0 ? ge.attributed.j / g.total.j : 0.0;
    g.by_kind.push_back(ge);
  }
  g.stand_ins = pe.stand_ins;
  merge_stand_ins(g.stand_ins, fe.stand_ins);
  merge_stand_ins(g.stand_ins, le.stand_ins);
  return g;
}

nlohmann::json to_json(const Generation& g) {
  nlohmann::json j;
  j["model_name"] = g.model_name;
  j["batch"] = g.batch;
  j["prompt"] = g.prompt;
  j["generate"] = g.generate;
  j["dtype"] = g.dtype;
  j["attention"] = g.attention;
  j["hardware"] = g.hardware;
  j["units"] = {{"energy", "joules for the whole generation (per_token_j: joules per generated token)"},
                {"share", "fraction of total_j"}};
  j["parameters"] = g.prefill_tree.nodes.empty() ? 0 : g.prefill_tree.root().num_parameters;
  j["prefill_j"] = energy_json(g.prefill);
  j["decode_j"] = energy_json(g.decode);
  j["total_j"] = energy_json(g.total);
  j["per_token_j"] = energy_json(g.per_token);
  auto& steps = j["steps"] = nlohmann::json::array();
  for (const auto& s : g.steps) {
    nlohmann::json step = {
        {"past", s.past},
        {"energy_j", s.energy.j},
        {"low_j", s.energy.interval ? nlohmann::json(s.energy.interval->low_j) : nlohmann::json(nullptr)},
        {"high_j", s.energy.interval ? nlohmann::json(s.energy.interval->high_j) : nlohmann::json(nullptr)}};
    if (s.raw_j) step["raw_energy_j"] = *s.raw_j;
    steps.push_back(std::move(step));
  }
  j["held_steps"] = g.held;
  auto& kinds = j["by_kind"] = nlohmann::json::array();
  for (std::size_t k = 0; k < g.by_kind.size(); ++k)
    kinds.push_back({{"name", g.by_kind[k].name},
                     {"energy", energy_json(g.by_kind[k].attributed)},
                     {"share", g.by_kind[k].share},
                     {"prefill_j", g.prefill_by_kind[k]},
                     {"decode_j", g.decode_by_kind[k]}});
  auto& si = j["stand_ins"] = nlohmann::json::array();
  for (const auto& s : g.stand_ins)
    si.push_back({{"class_name", s.class_name}, {"stand_in", s.stand_in}, {"interval_widening", 2.0}});
  return j;
}

void write_text(std::ostream& out, const Generation& g, bool all_steps) {
  out << fmt::format("{}  batch {}  prompt {}  generate {}  {}{}: {} in total\n", g.model_name, g.batch, g.prompt,
                     g.generate, g.dtype, g.attention != "eager" ? "  " + g.attention : "", format_energy(g.total));
  if (!g.hardware.empty()) out << "predicted for: " << g.hardware << '\n';
  const double total = g.total.j;
  auto pct = [&](double x) { return total > 0 ? fmt::format("{:.1f}%", 100 * x / total) : std::string("-"); };
  out << fmt::format("  {:<30} {}  {}\n", fmt::format("prefill ({} tokens x {})", g.prompt, g.batch),
                     format_energy(g.prefill), pct(g.prefill.j));
  out << fmt::format("  {:<30} {}  {}\n", fmt::format("decode ({} steps)", g.generate), format_energy(g.decode),
                     pct(g.decode.j));
  out << fmt::format("  {:<30} {}  (decode / {} tokens)\n", "per generated token", format_energy(g.per_token),
                     static_cast<long long>(g.batch) * g.generate);
  out << "\nWhere it goes (by module kind, prefill + decode):\n";
  for (std::size_t k = 0; k < g.by_kind.size(); ++k) {
    const auto& b = g.by_kind[k];
    if (b.count == 0 && b.attributed.j == 0) continue;
    out << fmt::format("  {:<14} {:>6.2f}%  {}  (prefill {}, decode {})\n", b.name, 100 * b.share,
                       format_energy(b.attributed), format_joules(g.prefill_by_kind[k]),
                       format_joules(g.decode_by_kind[k]));
  }
  for (const auto& s : g.stand_ins)
    out << fmt::format("stand-in: {} predicted by the {} regressor (no regressor of its own; intervals widened x2 each "
                       "side)\n",
                       s.class_name, s.stand_in);
  if (g.held > 0) {
    int from = 0, to = 0;
    for (const auto& s : g.steps)
      if (s.raw_j) {
        if (!from) from = s.past;
        to = s.past;
      }
    out << fmt::format("note: at {} steps (past {} to {}) the predictor gave less energy than at the step before, which "
                       "a longer cache cannot cost; those steps keep the previous step's energy (their own values are "
                       "raw_energy_j in --format json). Such bends come from extrapolating far outside the training "
                       "data.\n",
                       g.held, from, to);
  }
  out << "\nDecode steps (joules per step, all sequences):\n";
  out << fmt::format("  {:>8}  {:>12}  {:>12}  {:>12}\n", "past", "energy J", "low J", "high J");
  const std::size_t n = g.steps.size();
  const std::size_t shown = all_steps ? n : std::min<std::size_t>(n, 8);
  for (std::size_t i = 0; i < shown; ++i) {
    const std::size_t k = shown <= 1 ? 0 : all_steps ? i : i * (n - 1) / (shown - 1);
    const Energy& e = g.steps[k].energy;
    out << fmt::format("  {:>8}  {:>12.6g}  {:>12.6g}  {:>12.6g}\n", g.steps[k].past, e.j,
                       e.interval ? e.interval->low_j : e.j, e.interval ? e.interval->high_j : e.j);
  }
  if (shown < n) out << fmt::format("  ({} of {} steps shown, evenly spaced)\n", shown, n);
}

}  // namespace irene::explain

namespace irene::explain {

namespace {

// b - a, with the interval of compare.hpp (both sides from one predictor: fully correlated).
Energy difference(const Energy& a, const Energy& b) {
  Energy d;
  d.j = b.j - a.j;
  if (a.interval && b.interval) {
    const double x = b.interval->low_j - a.interval->low_j, y = b.interval->high_j - a.interval->high_j;
    d.interval = Interval{std::min({x, y, d.j}), std::max({x, y, d.j})};
  }
  return d;
}

std::string signed_energy(const Energy& e) {
  auto sj = [](double j) { return (j > 0 ? "+" : "") + format_joules(j); };
  if (!e.interval) return sj(e.j);
  return fmt::format("{} [{} .. {}]", sj(e.j), sj(e.interval->low_j), sj(e.interval->high_j));
}

std::string num(double v) { return fmt::format("{:.9g}", v); }

std::string column(ModuleKind k) {
  std::string s(to_string(k));
  for (auto& c : s)
    if (c == '-' || c == ' ') c = '_';
  return s;
}

}  // namespace

GenerationComparison compare_generations(Generation a, Generation b) {
  GenerationComparison c;
  auto row = [&](const std::string& name, const Energy& x, const Energy& y) {
    GenerationDiff d;
    d.name = name;
    d.a = x;
    d.b = y;
    d.diff = difference(x, y);
    if (x.j != 0 && std::isfinite(x.j)) d.change_pct = 100.0 * d.diff.j / x.j;
    c.rows.push_back(d);
  };
  row("prefill", a.prefill, b.prefill);
  row("decode", a.decode, b.decode);
  row("total", a.total, b.total);
  row("per token", a.per_token, b.per_token);
  for (std::size_t k = 0; k < std::min(a.by_kind.size(), b.by_kind.size()); ++k)
    row(a.by_kind[k].name, a.by_kind[k].attributed, b.by_kind[k].attributed);
  c.a = std::move(a);
  c.b = std::move(b);
  return c;
}

nlohmann::json to_json(const GenerationComparison& c) {
  nlohmann::json j;
  j["a"] = to_json(c.a);
  j["b"] = to_json(c.b);
  for (auto* side : {&j["a"], &j["b"]}) side->erase("steps");  // each side's steps: irene predict --generate
  auto& rows = j["rows"] = nlohmann::json::array();
  for (const auto& r : c.rows)
    rows.push_back({{"name", r.name},
                    {"a", energy_json(r.a)},
                    {"b", energy_json(r.b)},
                    {"diff", energy_json(r.diff)},
                    {"change_pct", r.change_pct ? nlohmann::json(*r.change_pct) : nlohmann::json(nullptr)}});
  return j;
}

void write_text(std::ostream& out, const GenerationComparison& c) {
  auto side = [](const Generation& g) {
    return fmt::format("{}  batch {}  prompt {}  generate {}  {}{}", g.model_name, g.batch, g.prompt, g.generate, g.dtype,
                       g.attention != "eager" ? "  " + g.attention : "");
  };
  out << "a: " << side(c.a) << "\nb: " << side(c.b) << "\n";
  if (!c.a.hardware.empty()) out << "predicted for: " << c.a.hardware << "\n";
  out << fmt::format("\n{:<14} {:>30}  {:>30}  {:>38}  {:>9}\n", "", "a", "b", "b - a", "change");
  for (const auto& r : c.rows)
    out << fmt::format("{:<14} {:>30}  {:>30}  {:>38}  {:>9}\n", r.name, format_energy(r.a), format_energy(r.b),
                       signed_energy(r.diff), r.change_pct ? fmt::format("{:+.2f}%", *r.change_pct) : std::string("n/a"));
  for (const auto* g : {&c.a, &c.b})
    if (g->held > 0)
      out << fmt::format("note: {}: {} steps keep the previous step's energy (the predictor bent far outside its "
                         "training data)\n",
                         g->model_name, g->held);
}

GenerationPoint generation_point(const Generation& g) {
  GenerationPoint p;
  p.model_name = g.model_name;
  p.batch = g.batch;
  p.prompt = g.prompt;
  p.generate = g.generate;
  p.prefill = g.prefill;
  p.decode = g.decode;
  p.total = g.total;
  p.per_token = g.per_token;
  for (std::size_t k = 0; k < kModuleKinds && k < g.by_kind.size(); ++k) p.kinds[k] = g.by_kind[k].attributed;
  p.held = g.held;
  return p;
}

void write_generation_csv(std::ostream& out, const std::vector<GenerationPoint>& points) {
  out << "model,batch,prompt,generate";
  for (const char* n : {"prefill", "decode", "total", "per_token"}) out << fmt::format(",{0}_j,{0}_low_j,{0}_high_j", n);
  for (ModuleKind k : all_module_kinds) out << fmt::format(",{0}_j,{0}_low_j,{0}_high_j", column(k));
  out << ",held_steps\n";
  auto e3 = [](const Energy& e) {
    return fmt::format(",{},{},{}", num(e.j), e.interval ? num(e.interval->low_j) : "", e.interval ? num(e.interval->high_j) : "");
  };
  for (const auto& p : points) {
    std::string name = p.model_name;
    if (name.find_first_of(",\"") != std::string::npos) {
      std::string q = "\"";
      for (char ch : name) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      name = q + "\"";
    }
    out << fmt::format("{},{},{},{}", name, p.batch, p.prompt, p.generate) << e3(p.prefill) << e3(p.decode)
        << e3(p.total) << e3(p.per_token);
    for (const auto& k : p.kinds) out << e3(k);
    out << ',' << p.held << '\n';
  }
}

void write_generation_table(std::ostream& out, const std::vector<GenerationPoint>& points) {
  out << fmt::format("{:>6} {:>7} {:>8}  {:>28}  {:>28}  {:>28}  {:>28}\n", "batch", "prompt", "generate", "prefill",
                     "decode", "total", "per token");
  for (const auto& p : points)
    out << fmt::format("{:>6} {:>7} {:>8}  {:>28}  {:>28}  {:>28}  {:>28}\n", p.batch, p.prompt, p.generate,
                       format_energy_compact(p.prefill), format_energy_compact(p.decode), format_energy_compact(p.total),
                       format_energy_compact(p.per_token));
}

nlohmann::json to_json(const std::vector<GenerationPoint>& points) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : points) {
    nlohmann::json kinds = nlohmann::json::object();
    for (std::size_t k = 0; k < kModuleKinds; ++k) kinds[std::string(to_string(all_module_kinds[k]))] = energy_json(p.kinds[k]);
    a.push_back({{"model_name", p.model_name},
                 {"batch", p.batch},
                 {"prompt", p.prompt},
                 {"generate", p.generate},
                 {"prefill_j", energy_json(p.prefill)},
                 {"decode_j", energy_json(p.decode)},
                 {"total_j", energy_json(p.total)},
                 {"per_token_j", energy_json(p.per_token)},
                 {"kinds", kinds},
                 {"held_steps", p.held}});
  }
  return a;
}

}  // namespace irene::explain
