// The IrEne JSONL format: one tree per line.
//
// Line:  {"model_name", "batch_size", "seq_len", "frontend_tree": NODE, "provenance": {...}}, plus
//        where they differ from the defaults "phase" ("decode"), "past_len", "dtype" (float16,
//        bfloat16) and "attention" ("sdpa") (core/tree.hpp)
// NODE:  {"id" ("model/batch/seq/scope:Class", unique in the file; read back from scope, class
//         and sibling order, so files with other ids read the same), "scope", "parent_name", "level" (depth), "instance_type" (class name),
//         "type" (model|module|ml), "num_parameters", "flops" (MFLOP), "mem_bytes" (MiB),
//         resource fields by name (cpu, mem, gpu, gpu_mem, gpu_clk, gpu_mem_clk, times_mean,
//         gpu_energy_mean, ...; only those known), "ground_truth_energy" and "predicted_energy"
//         (joules, only when known), "predicted_energy_low"/"predicted_energy_high" (joules,
//         the interval, when known), "predicted_own_energy" with "predicted_own_energy_low"/
//         "predicted_own_energy_high" (joules: the node's own operations, of predicted_energy,
//         and their interval, when known), "out_of_range" (strings: where the prediction
//         extrapolates beyond the predictor's training data; only when there is such a note),
//         "stand_in" (the class whose regressor stood in, when one did),
//         "attrs" (irene's shape attributes), "ops" (extra operations,
//         [{"kind","shape"}]), "child_nodes_obj"
//         (children, same shape), "child_nodes" (children's scopes)}
//
// Leaves are always typed "ml" (ML primitives), as the reference implementation requires.
// Files are read and written as streams, one tree at a time; reading, writing and reading
// again gives identical trees (doubles are written with round-trip precision).
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/core/tree.hpp"

namespace irene {

nlohmann::json tree_to_json(const Tree& tree);
// `where` prefixes error messages ("file.jsonl:12").
Tree tree_from_json(const nlohmann::json& record, const std::string& where);

// Writes one tree as one line (with the trailing newline).
void write_tree_jsonl(std::ostream& out, const Tree& tree);

// Streams trees out of a JSONL file ("-": standard input; a FIFO is read as it comes). Every
// problem is an Error "FILE:LINE: problem": malformed JSON, a number out of range, a wrong field
// type, a count out of its range (limits.hpp), a line over limits::kMaxLineBytes, a tree nested
// deeper than limits::kMaxTreeDepth or with more than limits::kMaxTreeNodes nodes.
class JsonlReader {
 public:
  explicit JsonlReader(const std::filesystem::path& path);
  // Reads from a stream the caller keeps alive; `name` labels errors.
  JsonlReader(std::istream& in, const std::string& name);
  // Reads the next tree; false at the end of the file. Blank lines are skipped.
  bool next(Tree& tree);
  // Reads the next non-blank line without parsing it (checked for length); false at the end.
  // line() is then its line number.
  bool next_line(std::string& text);
  // One line's tree; `where` ("FILE:LINE") prefixes errors. Thread-safe.
  static Tree parse_line(const std::string& text, const std::string& where);
  long line() const { return line_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ifstream file_;           // when reading a file
  std::istream* in_ = nullptr;   // what is read: file_, standard input or the caller's stream
  long line_ = 0;
};

// Reads every tree of a file; an empty file is an error (no trees).
std::vector<Tree> read_jsonl(const std::filesystem::path& path);

// Writes trees atomically (temporary file, then rename).
void write_jsonl(const std::filesystem::path& path, const std::vector<Tree>& trees);

}  // namespace irene
