// The published IrEne dataset (one device folder of four CSV files) as model trees.
//
// A device folder holds model_level_features.csv, module_level_features.csv,
// ml1_level_features.csv and ml2_level_features.csv (see ../shared/irene-data/README.md).
// Importing it builds, for every (model, batch size, sequence length) in the files, the tree of
// that model from its architecture (arch/builder.hpp: so every node has its parameters, attrs
// and ops) and attaches every CSV row to its node:
//   * the model row (level_name = model name) to the root; a module / ml1 row
//     ("scope:Class") to the node of that scope and class; the two identical MatMul rows of an
//     attention to its two MatMul leaves, in order;
//   * flops (MFLOP) and mem_bytes (MiB) of the row replace the computed ones (the computed ones
//     agree within 0.5%; ImportOptions::csv_features = false keeps them);
//   * the row's resource columns (cpu, mem, gpu, gpu_mem, gpu_clk, gpu_mem_clk, times_mean,
//     gpu_energy_mean) become Node::resources, and energy_mean (joules) ground_truth_energy_j.
// Models whose architecture is not supported are skipped and listed in the summary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "irene/core/tree.hpp"

namespace irene {

// The four level files, in the order of the README.
enum class DatasetLevel { model, module, ml1, ml2 };
std::string_view level_file_name(DatasetLevel level);  // "model_level_features.csv", ...
std::string_view to_string(DatasetLevel level);         // "model", "module", "ml1", "ml2"

// One CSV row.
struct DatasetRow {
  DatasetLevel level = DatasetLevel::model;
  std::string model_name;
  std::string level_name;  // "scope:Class", or the model name on the model level
  int batch_size = 0;
  int seq_len = 0;
  double flops_mflop = 0;  // MFLOP
  double mem_mib = 0;      // MiB
  double energy_j = 0;     // energy_mean, joules per forward pass
  std::vector<double> resources;  // values of DatasetTable::resource_columns, same order
  long line = 0;                  // line in its file (header = 1)
};

// The rows of one or more level files.
struct DatasetTable {
  std::vector<std::string> resource_columns;  // cpu, mem, gpu, ... (columns that are features)
  std::vector<DatasetRow> rows;
};

// Reads one level CSV. Errors (irene::Error "FILE:LINE: problem"): missing or unreadable file,
// empty file, a header without a required column (batch_size, seq_len, flops, mem_bytes,
// energy_mean, level_name, model_name) or with other resource columns than earlier files
// (when `table` is not empty), a row with the wrong number of fields (truncated), a field that
// is not a number, a batch size or sequence length that is not a positive integer.
// Appends to `table`.
void read_level_csv(const std::filesystem::path& file, DatasetLevel level, DatasetTable& table);

// The same on text already in memory; `file` labels errors.
void parse_level_csv(std::string_view text, const std::filesystem::path& file, DatasetLevel level,
                     DatasetTable& table);

// Reads the four files of a device folder. A missing folder or file is an Error.
DatasetTable read_device_folder(const std::filesystem::path& dir);

struct ImportSummary {
  std::filesystem::path folder;
  int trees_written = 0;
  long rows_total = 0;      // rows of the four files
  long rows_matched = 0;    // rows attached to a node
  long rows_unmatched = 0;  // rows of supported models that match no node (or repeat one)
  std::vector<std::string> unmatched_examples;  // up to 10: "FILE:LINE: level_name (model/b/s)"
  long nodes_without_row = 0;                   // nodes of written trees no row was attached to
  // "model/b/s: no model row, no ml2 rows" for configurations lacking whole levels.
  std::vector<std::string> missing_levels;
  int incomplete_skipped = 0;  // of those, not written (ImportOptions::skip_incomplete)
  // "model (N trees): Class, ..." for models not written because a leaf of theirs is of a class
  // outside the reference implementation's ML-level operations (ImportOptions::skip_other_leaves).
  std::vector<std::string> other_leaves_skipped;
  int other_leaves_trees_skipped = 0;  // trees of those models
  // "model (N rows): reason" for models not imported.
  std::vector<std::string> skipped_models;

  // A multi-line human-readable report.
  std::string to_string() const;
};

struct ImportOptions {
  // true: a matched row's flops / mem_bytes replace the computed ones on its node.
  bool csv_features = true;
  // true: configurations lacking a whole level (see ImportSummary::missing_levels) are
  // reported but not written.
  bool skip_incomplete = false;
  // true: trees with a leaf the reference implementation cannot predict
  // (reference_predicts_leaf() is false) are reported but not written.
  bool skip_other_leaves = false;
  // Called for every matched row before its features are attached (tests compare the
  // computed counts with the row's here).
  std::function<void(const DatasetRow&, const Tree&, int node)> on_match;
};

// The IrEne reference implementation (StonyBrookNLP/irene) reads a trees file only when
//   * every node carries its features (lib/tree_node.py reads tree_dict["cpu"], ... for every
//     node: a configuration without its model, module or ml1 rows stops it with KeyError 'cpu'),
//     and its ground truth (prepare_for_non_ml_training makes a tensor of every node's);
//   * every leaf is typed "ml" (read_from_json asserts it) and its instance_type, lower-cased, is
//     one of ML_OPERATIONS_LIST (lib/utils.py): get_ml_level_data only warns about other classes
//     and predicts nothing for them, so RecursiveTreeComputation.forward fails on
//     `assert node.predicted_energy is not None, "Found leaf node w/o energy prediction."`
//     (sshleifer/tiny-ctrl's ReLU).
// The operations of that list, lower case: embedding, layernorm, linear, tanh, conv1d, softmax, matmul.
const std::vector<std::string>& reference_ml_operations();
// Whether the reference predicts this leaf: typed ml and of one of those classes (any case).
bool reference_predicts_leaf(const Node& leaf);

// Imports a folder, handing each tree to `sink` in a fixed order: models in the order of their
// first row in the files (read in the order model, module, ml1, ml2), then batch size and sequence
// length ascending (the published CSVs' order, which the reference's JSONL keeps).
ImportSummary import_device_folder(const std::filesystem::path& dir, const std::function<void(Tree&&)>& sink,
                                   const ImportOptions& options = {});

// Imports a folder into memory.
std::vector<Tree> import_device_folder(const std::filesystem::path& dir, ImportSummary* summary = nullptr,
                                       const ImportOptions& options = {});

// Imports a folder into a JSONL file, atomically (no file is left on error). "-": stdout.
ImportSummary import_device_folder_to_jsonl(const std::filesystem::path& dir, const std::filesystem::path& out,
                                            const ImportOptions& options = {});

// How well the counts of trees built from the architecture reproduce a folder's rows.
struct FeatureCheck {
  struct Worst {
    double flops_rel = 0;  // largest |computed - row| / row over the rows of this class
    double mem_rel = 0;
    std::string flops_where, mem_where;  // "FILE:LINE: level_name (model/b/s) computed vs row"
    long rows = 0;
  };
  long rows_checked = 0;
  std::map<std::string, Worst> by_class;     // class name ("Linear", "BertModel", ...)
  std::vector<std::string> failures;         // rows beyond the tolerance (up to 50)
  long failures_total = 0;
  ImportSummary summary;
  std::string to_string() const;
};

// Imports `dir` keeping the computed counts and compares them with every matched row:
// a row fails when flops or mem_bytes differ by more than `tolerance` (relative; rows whose
// value is 0 must be within 1e-9 absolute).
FeatureCheck check_device_folder(const std::filesystem::path& dir, double tolerance = 0.005);

// The dataset folder: env IRENE_DATA, else <IRENE_SOURCE_DIR>/../shared/irene-data.
std::filesystem::path default_data_dir();

}  // namespace irene
