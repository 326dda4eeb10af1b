// What a design change costs: two predicted trees aligned node by node.
//
// Nodes are aligned by role, not by class name, so that two families compare module by module:
// a node's role is its parent's role plus its module kind (attention, feed-forward, norm ...), its
// primitive for a leaf (as the registry names it: LlamaRMSNorm and MistralRMSNorm are RMSNorm) and
// its ordinal among its parent's children of that kind and primitive. Layer i's attention of
// Llama-2-7b aligns with layer i's attention of Mistral-7B (LlamaAttention / MistralAttention), and
// for two trees of one family this is the alignment by id (scope:class, with #k for repeated
// siblings; core/tree.hpp). The two roots are always aligned with each other, whatever their
// class; a pair whose ids differ keeps b's id and a's in a_id. For every aligned node
// the difference is b - a of the nodes' own energies (joules per forward pass) and the change
// in percent of a; nodes present on one side only are "removed" (only in a) or "added" (only
// in b). Differences are also given per module kind and per primitive type, as sums of the ML
// primitives' (leaves') own energies, so a part that a change does not touch differs by
// exactly zero.
//
// Intervals of differences: both sides come from the same predictor, and an aligned pair is
// predicted by the same regressor, so their errors are taken as fully correlated: the
// difference's interval is [min, max] of (a.low - b.low) and (a.high - b.high) with signs for
// b - a, widened to contain the point difference. A model compared with itself therefore
// differs by exactly 0 with a [0, 0] interval. A one-sided node's interval is its own.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/explain/explain.hpp"

namespace irene::explain {

enum class DiffStatus { both, removed, added };  // removed: only in a; added: only in b
std::string_view to_string(DiffStatus s);

struct NodeDiff {
  std::string id;            // b's id for an aligned pair, else the node's own
  std::string a_id;          // a's id when an aligned pair's ids differ (another family), else empty
  std::string scope, class_name;
  int depth = 0;
  ModuleKind kind = ModuleKind::other;
  DiffStatus status = DiffStatus::both;
  std::optional<Energy> a, b;  // own energies
  Energy diff;                 // b - a (a missing side counts as 0)
  std::optional<double> change_pct;  // 100 * (b - a) / a; absent when a is missing or 0
};

struct GroupDiff {
  std::string name;
  Energy a, b, diff;  // sums of the leaves' own energies
  std::optional<double> change_pct;
};

struct Comparison {
  Explanation a, b;
  std::vector<NodeDiff> nodes;        // a's pre-order, then nodes only in b in b's pre-order
  NodeDiff total;                     // the root pair
  std::vector<GroupDiff> by_kind;     // every module kind (sums of the ML primitives' own energies)
  // The model's own energy minus the sum of its ML primitives' own energies: what the upper levels
  // add (the IrEne predictor weights each part and adds its own operations). by_kind + upper =
  // the model's energy, exactly, on each side.
  GroupDiff upper;
  std::vector<GroupDiff> by_primitive;  // union of types, by |diff| descending
};

// Compares two trees on the same basis (predicted if both roots have predictions, else
// measured). Errors: either tree lacking energies (see explain_tree()).
Comparison compare(const Tree& a, const Tree& b);

nlohmann::json to_json(const Comparison& c);

// CSV (compare --format csv): the header, then one row per node of `nodes` (a's pre-order, then
// b's nodes alone): id, a_id, class_name, kind, depth, status, a's, b's and b - a's own energies
// (joules, with interval bounds; empty where a side has no such node), change_pct (percent of
// a; empty without a), and a last column rests_on ("a: ...; b: ..." from both sides' rests_on
// lines, one line when they are the same), the same on every row (RFC 4180 quoting).
void write_csv(std::ostream& out, const Comparison& c);

// Text: totals, kinds, primitive types and the `top` nodes with the largest |difference|
// (-1: every node).
void write_text(std::ostream& out, const Comparison& c, int top = 20);

}  // namespace irene::explain
