// Joining trees files: `irene data merge A.jsonl B.jsonl ... -o all.jsonl`.
//
// The parts of a dataset collected on several machines (`irene collect --shard K/N`, one shard a
// machine or a Slurm array task) become one file: every tree of every input, in the inputs'
// order, streamed (one tree in memory at a time) and written whole or not at all. Two rules keep
// the result one dataset:
//   - a tree (model/batch/seq) appearing twice is an error naming both places;
//   - trees measured on different hardware (provenance "hardware", else "device") are refused,
//     naming the hardware lines, unless `allow_mixed`.
//
// With `median` (`irene data merge --median PASS1 PASS2 PASS3 -o OUT`) the inputs are repeated
// passes of one collection instead, and a tree appearing in several of them is one tree measured
// several times: the output holds it once, at its first place, each node's measured values (every
// resource feature such as times_mean, and the energy) the median of its repeats. A node then also
// carries `repeats` (how many measurements its median rests on) and `times_repeat_spread` (the
// repeats' standard deviation / mean of times_mean, a fraction: what one pass differs from the
// next, where a pass's own `times_spread` is only its runs' agreement within a few seconds), and
// the tree's provenance "repeats" names the places. Measured on a VM, whole decode steps of one
// tree differ by 6-7% from pass to pass (median over trees; up to 48%) while each pass's runs
// agree within 2% (README, "Repeated passes"): the median of three passes is what the LLM time figures rest on. Repeats must be the
// same tree (the same node ids in the same order); anything else is an error naming both places.
// Holds every tree in memory (the shards mode streams).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace irene {

struct MergeSummary {
  int files = 0;
  int trees = 0;     // trees written
  int repeated = 0;  // of them, trees measured more than once (median mode)
  std::vector<std::string> hardware;  // distinct hardware lines, in order of appearance
};

struct MergeOptions {
  bool allow_mixed = false;  // merge trees measured on different hardware
  bool median = false;       // repeated passes: one tree per key, the median of its measurements
};

MergeSummary merge_tree_files(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& output,
                              const MergeOptions& options);

// The hardware a tree was measured on: provenance "hardware", else "device", else "".
struct Tree;
std::string tree_hardware(const Tree& tree);

}  // namespace irene
