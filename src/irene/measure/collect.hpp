// Collecting a dataset: profile a grid of (model, batch size, sequence length) trees into one
// JSONL file that `irene train` reads, safe against interruption.
//
// Every finished tree is appended to the output as one whole line with a single write(2) and
// then fsync'ed, so a Ctrl-C, a kill or a crash loses at most the tree being measured. A rerun
// with the same output resumes: trees already in the file (same model/batch/seq key) are
// skipped, and a half-written last line (a kill during the write) is detected and cut off.
// Identical nodes are measured once per collection, across trees (e.g. the same Linear in
// BERT and RoBERTa at the same shapes).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/measure/profile.hpp"
#include "irene/measure/sensor.hpp"

namespace irene::measure {

// What an existing output file holds, read for resuming.
struct ResumeState {
  std::set<std::string> keys;  // Tree::key() of every complete tree ("model/batch/seq")
  int trees = 0;
  bool dropped_partial_line = false;  // a half-written last line was cut off the file
  std::string sensor;                 // provenance "sensor" of the trees ("" if none or mixed)
};

// Reads `path` (missing file: empty state). A last line without its newline, or one that is
// not a complete tree, is cut off the file (truncate) and reported. A malformed line before
// the last is an Error "FILE:LINE: ..." (the file is not one irene collect wrote).
ResumeState scan_for_resume(const std::filesystem::path& path);

// Appends one tree as one line (single write, then fsync). Errors name the file.
void append_tree_line(const std::filesystem::path& path, const Tree& tree);

struct CollectItem {
  ModelConfig config;
  int batch = 0;
  int seq = 0;
  BuildOptions options;  // the pass: prefill or a decode step at options.past, dtype, attention
};

struct CollectProgress {
  int trees_done = 0;         // trees written in this collection (excluding resumed ones)
  int trees_total = 0;        // trees to measure in this collection
  int units_done = 0;         // distinct node measurements finished (the unit of work)
  int units_total = 0;        // distinct node measurements planned
  double elapsed_seconds = 0;
  std::optional<double> seconds_left;  // estimate, once one unit is done
  std::string current;        // "bert-base-uncased/8/32 encoder.layer.0:BertLayer run 2"
  bool tree_finished = false;
};

struct CollectSummary {
  int planned = 0;      // trees in the grid
  int skipped = 0;      // already in the output
  int collected = 0;    // written now
  bool dropped_partial_line = false;
  bool interrupted = false;
  double seconds = 0;
  std::optional<double> idle_watts;
};

// Expands the grid (models x batches x seqs, in that order; for decode steps models x batches x
// pasts, each step one new token per sequence); every model name is loaded with
// load_model_config and every tree is built and checked for execution before anything runs.
// Errors: empty lists, unknown model, bad batch/seq/past (as build_tree), a dtype this libtorch
// cannot run on the CPU.
std::vector<CollectItem> make_grid(const std::vector<std::string>& models, const std::vector<int>& batches,
                                   const std::vector<int>& seqs, const BuildOptions& options = {},
                                   const std::vector<int>& pasts = {});

// "K/N" (1 <= K <= N <= 10000) for `collect --shard K/N`. Error naming the text otherwise.
std::pair<int, int> parse_shard(std::string_view text);

// Shard K of N of a grid: items K-1, K-1+N, K-1+2N, ... (round robin, so that every shard gets
// its share of every model and shape). The N shards together are the grid, each item once.
std::vector<CollectItem> shard_of(const std::vector<CollectItem>& grid, int k, int n);

// Profiles every item of the grid not yet in `output`, appending each finished tree. Stops
// cleanly (summary.interrupted) when options.stop_requested returns true: finished trees are
// kept, the tree being measured is dropped. Sensor and other errors propagate (finished trees
// are kept as well).
CollectSummary collect(const std::vector<CollectItem>& grid, const std::filesystem::path& output, Sensor& sensor,
                       const ProfileOptions& options,
                       const std::function<void(const CollectProgress&)>& on_progress = {});

}  // namespace irene::measure
