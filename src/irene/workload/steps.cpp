#include "irene/workload/steps.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <unordered_map>

#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/predict/features.hpp"
#include "irene/predict/model.hpp"
#include "irene/workload/shares.hpp"

namespace irene::workload {

namespace {

using predict::FittedModel;
using predict::LeafRegressor;

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
                const Predictor& predictor, const std::function<int(const Node&)>& group_of)
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
    classify(group_of);
    subtree_features_ = std::any_of(model_.feature_names.begin(), model_.feature_names.end(), predict::reads_subtree) ||
                        std::any_of(model_.own_names.begin(), model_.own_names.end(), predict::reads_subtree);
  }

  const Tree& first_tree() const { return tree_; }

  // The step's energy (joules), its energy by group and by node (shares.hpp's split, as
  // explain_tree's: a leaf's share, a parent's own operations' share).
  double evaluate(int past, std::vector<double>& groups, std::vector<double>& nodes) {
    const std::int64_t delta = past - past0_;
    for (int u = static_cast<int>(classes_.size()) - 1; u >= 0; --u) {
      Class& c = classes_[u];
      if (c.done && !c.moves) continue;
      compute(c, delta);
      c.done = true;
    }
    const double root_e = classes_[class_of_[0]].energy;
    const double root_j = std::max(0.0, root_e);
    std::fill(groups.begin(), groups.end(), 0.0);
    nodes.assign(tree_.nodes.size(), 0.0);
    for (auto& c : classes_) {
      c.weight_sum = 0;
      for (int k : tree_.nodes[c.rep].children) c.weight_sum += split_weight(classes_[class_of_[k]].energy);
      // A parent's own operations take their share first, in the parent's group.
      c.own_share = workload::own_share(c.own_energy, c.energy);
    }
    // Pre-order: parents first.
    share_.assign(tree_.nodes.size(), 1.0);
    nodes[0] = share_[0] * classes_[class_of_[0]].own_share * root_j;
    groups[group_[0]] += nodes[0];
    for (std::size_t i = 1; i < tree_.nodes.size(); ++i) {
      const Node& nd = tree_.nodes[i];
      const Class& parent = classes_[class_of_[nd.parent]];
      const Class& self = classes_[class_of_[i]];
      share_[i] = workload::child_share(share_[nd.parent], parent.own_share, self.energy, parent.weight_sum,
                                        tree_.nodes[nd.parent].children.size());
      nodes[i] = nd.children.empty() ? share_[i] * root_j : share_[i] * self.own_share * root_j;
      groups[group_[i]] += nodes[i];
    }
    return root_e;
  }

 private:
  struct Class {
    int rep = 0;                      // representative node index
    std::vector<int> members;         // every node of the class (rep among them)
    bool moves = false;               // its features depend on the past
    bool done = false;
    bool root = false, root_child = false;
    const LeafRegressor* regressor = nullptr;
    int leaf_class = -1;  // index into the leaf classes of classify()
    Counts counts;
    double energy = 0, alpha = 1;
    double own_energy = 0;  // of a parent: its own operations' predicted energy (0 without an own term)
    double weight_sum = 0, own_share = 0;  // of a step's split (shares.hpp)
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
  void classify(const std::function<int(const Node&)>& group_of) {
    const int n = static_cast<int>(tree_.nodes.size());
    class_of_.assign(n, -1);
    group_.assign(n, 0);
    std::vector<std::string> leaf_classes;
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
          c.leaf_class = static_cast<int>(leaf_classes.size());
          leaf_classes.push_back(nd.class_name);
        }
        classes_.push_back(c);
      }
      class_of_[i] = it->second;
      classes_[it->second].members.push_back(i);
      group_[i] = group_of(nd);
    }
    // The leaf regressors, resolved once (as predict_flat resolves them).
    const auto regressors = predict::leaf_regressors(model_, leaf_classes);
    for (auto& c : classes_)
      if (c.leaf_class >= 0) {
        c.regressor = regressors[c.leaf_class];
        if (!c.regressor) throw predict::unknown_primitive(model_, tree_.key(), leaf_classes[c.leaf_class]);
      }
    // classes_ were created children first: reverse so that evaluate() (walking backwards)
    // computes children before parents.
    std::reverse(classes_.begin(), classes_.end());
    const int k = static_cast<int>(classes_.size());
    for (auto& c : class_of_) c = k - 1 - c;
    row_.resize(model_.feature_names.size());
  }

  // Counts, features, prediction and weight of one class at past0 + delta, with recount's
  // node_counts, node_feature and predict's node-energy kernel (same operations, same order).
  void compute(Class& c, std::int64_t delta) {
    Node& nd = tree_.nodes[c.rep];
    for (const auto& [k, a] : attrs_[c.rep]) nd.attrs[k] = a.at(delta);
    for (const auto& m : ops_[c.rep]) nd.ops[m.op].shape[m.dim] = m.affine.at(delta);
    c.counts = node_counts(nd, e_bytes_, [&](int k) -> const Counts& { return classes_[class_of_[k]].counts; });
    nd.flops_mflop = c.counts.mflop();
    nd.mem_mib = c.counts.mib();
    // The other nodes of the class move too when a parent's features read its whole subtree
    // (predict::reads_subtree: node_traffic, traffic_beyond_, own_evicted_); otherwise only the
    // representative's features are ever computed.
    if (subtree_features_)
      for (int i : c.members) {
        if (i == c.rep) continue;
        Node& member = tree_.nodes[i];
        for (const auto& [k, a] : attrs_[i]) member.attrs[k] = a.at(delta);
        for (const auto& m : ops_[i]) member.ops[m.op].shape[m.dim] = m.affine.at(delta);
        member.flops_mflop = nd.flops_mflop;
        member.mem_mib = nd.mem_mib;
      }
    for (std::size_t f = 0; f < row_.size(); ++f) {
      const auto v = predict::node_feature(tree_, nd, model_.feature_names[f]);
      if (!v || !std::isfinite(*v))
        throw Error(fmt::format("tree {}: node '{}' lacks the feature '{}' that the predictor reads", tree_.key(), nd.id,
                                model_.feature_names[f]));
      row_[f] = *v;
    }
    const auto& up = model_.upper;
    if (nd.children.empty()) {
      c.energy = c.regressor->predict(row_.data());
    } else if (!up.children_add()) {
      c.energy = up.unstructured_energy(row_.data());
    } else {
      // The own operations' energy, then the children, as predict_flat adds them (the last
      // child first).
      c.own_energy = up.own_w.size() > 0 ? up.own_energy(own_row(nd).data()) : 0.0;
      double sum = c.own_energy;
      for (auto it = nd.children.rbegin(); it != nd.children.rend(); ++it) {
        const Class& child = classes_[class_of_[*it]];
        sum += child.alpha * child.energy;
      }
      c.energy = sum;
    }
    if (!c.root && up.children_add()) c.alpha = up.weight(row_.data(), c.root_child);
  }

  // The node's own-operation features (predict/features.hpp, own_feature), with its children's
  // counts taken from their classes (the values every node of a class holds).
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
  bool subtree_features_ = false;  // the predictor reads some parent's subtree (see compute)
  std::vector<std::vector<std::pair<std::string, Affine>>> attrs_;
  std::vector<std::vector<OpMove>> ops_;
  std::vector<Class> classes_;
  std::vector<int> class_of_, group_;
  std::vector<double> row_, share_, own_row_;
};

}  // namespace

DecodeSteps predict_decode_steps(const ModelConfig& config, int batch, const BuildOptions& step, int first, int last,
                                 const Predictor& predictor, const std::function<int(const Node&)>& group_of,
                                 int groups) {
  StepEvaluator evaluator(config, batch, step, first, last, predictor, group_of);
  DecodeSteps out;
  out.first_tree = evaluator.first_tree();  // before evaluate() moves its nodes
  out.by_group.assign(groups, 0.0);
  out.steps.reserve(last - first + 1);
  std::vector<double> split(groups, 0.0), node_split;
  out.by_node.assign(out.first_tree.nodes.size(), 0.0);
  double floor = -std::numeric_limits<double>::infinity();
  for (int past = first; past <= last; ++past) {
    double e = evaluator.evaluate(past, split, node_split);
    StepEnergy s;
    s.past = past;
    if (e < floor) {  // held at the previous step's energy (see DecodeSteps::held)
      s.raw_j = e;
      if (e > 0) {
        for (auto& k : split) k *= floor / e;
        for (auto& k : node_split) k *= floor / e;
      }
      e = floor;
      ++out.held;
    }
    floor = e;
    s.j = e;
    for (int k = 0; k < groups; ++k) out.by_group[k] += split[k];
    for (std::size_t k = 0; k < node_split.size(); ++k) out.by_node[k] += node_split[k];
    out.steps.push_back(s);
  }
  return out;
}

}  // namespace irene::workload
