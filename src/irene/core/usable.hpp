// One rule for trees a command cannot use.
//
// Every command that reads a trees file (predict, evaluate, train, crossval, explain, compare,
// sweep, report) asks of each tree whether it can use it (a predictor's features present on
// every node, energies at the root, ...). A tree it cannot use is skipped with one notice line
// naming the tree and why ("irene: skipping openai-gpt/32/128 of d1.jsonl: no measured energy at
// its root"), or, with --strict, the command fails on it with that reason.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "irene/core/tree.hpp"

namespace irene {

struct SkippedTree {
  std::string key;     // Tree::key()
  std::string reason;  // why it cannot be used
};

// The problem that makes `tree` unusable for a command, or "" when it can be used.
using TreeCheck = std::function<std::string(const Tree&)>;

struct UsablePolicy {
  bool strict = false;     // fail on the first unusable tree instead of skipping it
  std::string source;      // the file, for messages
  bool quiet = false;      // no notice lines
};

// Keeps the usable trees (in order). Errors: strict and a tree is unusable ("FILE: tree K: reason
// (--strict)"); no tree is usable ("FILE: no usable tree: K: reason").
std::vector<Tree> keep_usable(std::vector<Tree> trees, const TreeCheck& check, const UsablePolicy& policy,
                              std::vector<SkippedTree>* skipped = nullptr);

// For streaming readers: true when `tree` is usable; else prints the notice (or throws when
// strict) and records it.
bool usable_or_skip(const Tree& tree, const TreeCheck& check, const UsablePolicy& policy,
                    std::vector<SkippedTree>* skipped = nullptr);

// Checks of general use.
std::string check_measured_root(const Tree& tree);  // "no measured energy at its root"
std::string check_energies(const Tree& tree);       // neither predicted nor measured energy at the root

}  // namespace irene
