// How a predicted node's energy is split among its parts: the one rule explain_tree
// (explain/explain.hpp) and the decode-step evaluator (steps.hpp) both apply.
//
// A parent's energy goes first to its own operations (the operations it runs that are not nodes),
// at most the whole parent; its children split the rest in proportion to their own energies.
// Energies that are negative or not finite (a linear leaf regressor can give them for tiny nodes)
// weigh zero; when every child weighs zero the children split evenly. A node's share of the whole
// model is the product of the shares along its path. Energies in joules, shares in [0, 1].
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace irene::workload {

// What an energy weighs in a split: itself when finite and > 0, else 0.
inline double split_weight(double j) { return std::isfinite(j) && j > 0 ? j : 0.0; }

// The fraction of a parent's energy `parent_j` its own operations (`own_j`) take: own_j /
// parent_j, at most 1; 0 unless both weigh more than zero.
inline double own_share(double own_j, double parent_j) {
  const double parent = split_weight(parent_j);
  return split_weight(own_j) > 0 && parent > 0 ? std::min(1.0, own_j / parent) : 0.0;
}

// A child's fraction of what its parent leaves to its children: its weight over `children_sum`
// (the sum of the weights of the parent's `children` children), or an even part when that sum is 0.
inline double sibling_fraction(double child_j, double children_sum, std::size_t children) {
  return children_sum > 0 ? split_weight(child_j) / children_sum : 1.0 / static_cast<double>(children);
}

// A child's share: of its parent's share `parent_share` (1: the child's share of its parent; the
// parent's share of the model: the child's), what the parent's own operations leave
// (1 - `parent_own_share`), times its sibling_fraction.
inline double child_share(double parent_share, double parent_own_share, double child_j, double children_sum,
                          std::size_t children) {
  return parent_share * (1 - parent_own_share) * sibling_fraction(child_j, children_sum, children);
}

}  // namespace irene::workload
