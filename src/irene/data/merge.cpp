#include "irene/data/merge.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"

namespace irene {

namespace fs = std::filesystem;

std::string tree_hardware(const Tree& tree) {
  for (const char* key : {"hardware", "device"})
    if (auto it = tree.provenance.find(key); it != tree.provenance.end() && !it->second.empty()) return it->second;
  return "";
}

MergeSummary merge_tree_files(const std::vector<fs::path>& inputs, const fs::path& output, bool allow_mixed) {
  if (inputs.empty()) throw Error("data merge: give at least one trees file");
  for (const auto& in : inputs) {
    check_input_file(in, "a JSONL trees file");
    std::error_code ec;
    if (in != "-" && output != "-" && fs::exists(output, ec) && fs::equivalent(in, output, ec))
      throw file_error(output, 0, "is also an input: write the merged trees to another file");
  }
  MergeSummary s;
  std::map<std::string, std::string> seen;       // key -> "FILE:LINE"
  std::map<std::string, std::string> hardware;   // hardware -> first "FILE:LINE"
  write_output(output, [&](std::ostream& out) {
    for (const auto& in : inputs) {
      JsonlReader reader(in);
      Tree t;
      while (reader.next(t)) {
        const std::string where = fmt::format("{}:{}", in.string(), reader.line());
        auto [it, fresh] = seen.emplace(t.key(), where);
        if (!fresh) throw Error(fmt::format("{}: tree {} is already in {}: a dataset holds each tree once", where, t.key(), it->second));
        const std::string hw = tree_hardware(t);
        if (hardware.emplace(hw, where).second) s.hardware.push_back(hw);
        if (hardware.size() > 1 && !allow_mixed) {
          std::vector<std::string> lines;
          for (const auto& h : s.hardware) lines.push_back(fmt::format("'{}' ({})", h.empty() ? "unknown" : h, hardware.at(h)));
          throw Error(fmt::format("trees measured on different hardware: {}; a predictor trained on them mixes machines "
                                  "(--allow-mixed merges them anyway)",
                                  fmt::join(lines, " and ")));
        }
        write_tree_jsonl(out, t);
        ++s.trees;
      }
      ++s.files;
    }
    if (s.trees == 0) throw Error("data merge: the inputs hold no trees");
  });
  return s;
}

}  // namespace irene
