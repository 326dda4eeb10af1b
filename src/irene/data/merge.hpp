// Joining trees files: `irene data merge A.jsonl B.jsonl ... -o all.jsonl`.
//
// The parts of a dataset collected on several machines (`irene collect --shard K/N`, one shard a
// machine or a Slurm array task) become one file: every tree of every input, in the inputs'
// order, streamed (one tree in memory at a time) and written whole or not at all. Two rules keep
// the result one dataset:
//   - a tree (model/batch/seq) appearing twice is an error naming both places;
//   - trees measured on different hardware (provenance "hardware", else "device") are refused,
//     naming the hardware lines, unless `allow_mixed`.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace irene {

struct MergeSummary {
  int files = 0;
  int trees = 0;
  std::vector<std::string> hardware;  // distinct hardware lines, in order of appearance
};

MergeSummary merge_tree_files(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& output,
                              bool allow_mixed);

// The hardware a tree was measured on: provenance "hardware", else "device", else "".
struct Tree;
std::string tree_hardware(const Tree& tree);

}  // namespace irene
