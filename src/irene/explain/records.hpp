// Flat per-node records: one row per node with the same columns in CSV (--format csv of tree,
// predict and explain), JSON and Python (irene.tree / irene.predict "nodes"), so that
// pandas.DataFrame(result["nodes"]) takes them as they are.
//
// Columns (units in the names; null / empty where unknown):
//   model_name, batch_size, seq_len, id, parent_id ("" for the root), scope, class_name,
//   type (model|module|ml), depth, kind (attention, feed-forward, embeddings, ...: explain.hpp),
//   num_parameters, flops_mflop, mem_mib,
//   energy_j, low_j, high_j          the node's own predicted energy and interval (joules per
//                                    forward pass), or its measured one when nothing is predicted,
//   measured_j                       ground truth, where measured,
//   share_of_parent, share_of_model  explain.hpp's split of the model's energy (fractions),
//   attributed_j                     share_of_model x the model's energy (the part of the model's
//                                    prediction this node stands for; named as such everywhere),
//   stand_in                         the class whose regressor predicted this leaf when its own
//                                    class has none (predict/predictor.hpp), else null,
//   own_ops, own_ops_j,              a parent's own operations (explain.hpp, OwnOperations): their
//   own_ops_share_of_parent,         kinds and counts ("add x2"), energy, share of the parent (with
//   own_ops_attributed_j             the children's shares it sums to 1) and attributed energy;
//                                    null for leaves and parents without own-operation energy.
// Trees without any energy (irene tree) leave the energy columns empty.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/core/tree.hpp"

namespace irene::explain {

const std::vector<std::string>& record_columns();

// A node's name relative to its parent, for indented trees: "layer.0" under "encoder", "#1" for
// the second of repeated siblings of the parent's own scope (the MatMuls of an attention), the
// model name for the root.
std::string relative_name(const Tree& tree, const Node& node);

// One object per node, in pre-order, keys = record_columns().
nlohmann::json node_records(const Tree& tree);

// {"model_name", "batch_size", "seq_len", "phase", "past_len", "dtype", "attention",
//  "config_torch_dtype" (when the config names one), "stand_ins" ([{class_name, stand_in, leaves,
//  predicted_j, interval_widening}]), "num_parameters", "flops_mflop", "mem_mib", "energy_j",
//  "low_j", "high_j", "measured_j", "hardware" (when predicted), "nodes": [...]}.
nlohmann::json tree_summary(const Tree& tree);

// `text` as one CSV field: as it is, or quoted (RFC 4180) where it holds a comma, a quote or a
// line break. Every CSV irene writes quotes its fields with it.
std::string csv_text(const std::string& text);

// CSV: the header, then one row per node of every tree (RFC 4180 quoting where needed), the
// columns of record_columns() and a last column "rests_on": the one-line summary of what the
// tree's energies rest on (rests_on.hpp; the same on every row of a tree, empty for a tree
// predicted elsewhere or without energies), so that pandas.read_csv reads the file as it is.
void write_records_csv(std::ostream& out, const std::vector<Tree>& trees);
// The same in parts, for writers that stream trees: the header line, then each tree's rows.
void write_records_csv_header(std::ostream& out);
void write_records_csv_rows(std::ostream& out, const Tree& tree);

}  // namespace irene::explain
