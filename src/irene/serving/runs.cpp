#include "irene/serving/runs.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <map>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"

namespace irene::serving {

namespace {

constexpr std::uint64_t kMaxFileBytes = std::uint64_t{64} << 20;
constexpr long kMaxRows = 1000000;
constexpr std::size_t kMaxLineBytes = std::size_t{64} << 10;

const std::vector<std::string>& required_columns() {
  static const std::vector<std::string> v = {
      "model_id",        "task",          "architecture",   "weight_precision",        "gpu_model",
      "num_gpus",        "tensor_parallel", "expert_parallel", "data_parallel",         "max_num_seqs",
      "avg_batch_size",  "avg_output_len", "energy_per_token_joules", "energy_per_request_joules",
      "avg_power_watts", "median_itl_ms", "p90_itl_ms",     "output_throughput_tokens_per_sec"};
  return v;
}

// Splits one CSV line (RFC 4180 quoting: "a,b" and "" inside quotes).
std::vector<std::string> split_csv(std::string_view line, const std::string& file, long lineno) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"' && cur.empty()) {
      quoted = true;
    } else if (c == ',') {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (quoted) throw file_error(file, lineno, "a quoted field is not closed");
  out.push_back(std::move(cur));
  return out;
}

}  // namespace

bool is_serving_csv(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string first;
  if (!in || !std::getline(in, first)) return false;
  return first.find("model_id") != std::string::npos && first.find("energy_per_token_joules") != std::string::npos;
}

ServingTable read_serving_csv(const std::filesystem::path& path) {
  const std::string text = read_file(path, kMaxFileBytes);
  const std::string file = path.string();
  ServingTable table;
  table.file = file;
  std::map<std::string, std::size_t> col;
  std::size_t ncols = 0;
  long lineno = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > kMaxLineBytes)
      throw file_error(file, lineno, fmt::format("line longer than {} bytes", kMaxLineBytes));
    if (lineno == 1) {
      const auto names = split_csv(line, file, lineno);
      ncols = names.size();
      for (std::size_t i = 0; i < names.size(); ++i) col[names[i]] = i;
      for (const auto& c : required_columns())
        if (!col.count(c))
          throw file_error(file, lineno,
                           fmt::format("the header has no column '{}' (a serving table needs {})", c,
                                       fmt::join(required_columns(), ", ")));
      continue;
    }
    if (line.empty()) continue;
    if (static_cast<long>(table.runs.size()) >= kMaxRows)
      throw file_error(file, lineno, fmt::format("more than {} rows", kMaxRows));
    const auto f = split_csv(line, file, lineno);
    if (f.size() != ncols)
      throw file_error(file, lineno, fmt::format("{} fields where the header has {}", f.size(), ncols));
    const auto text_of = [&](const char* c) -> const std::string& {
      const std::string& v = f[col.at(c)];
      if (v.empty()) throw file_error(file, lineno, fmt::format("column '{}' is empty", c));
      return v;
    };
    const auto number = [&](const char* c) {
      const std::string& v = text_of(c);
      double x = 0;
      const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
      if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(x))
        throw file_error(file, lineno, fmt::format("column '{}': '{}' is not a number", c, v));
      if (x <= 0) throw file_error(file, lineno, fmt::format("column '{}': {} must be positive", c, v));
      return x;
    };
    const auto count = [&](const char* c) {
      const double x = number(c);
      if (x != std::floor(x) || x > 1e6)
        throw file_error(file, lineno, fmt::format("column '{}': {} must be a positive integer", c, f[col.at(c)]));
      return static_cast<int>(x);
    };
    MeasuredRun r;
    r.line = lineno;
    r.model_id = text_of("model_id");
    r.task = text_of("task");
    r.architecture = text_of("architecture");
    r.precision = text_of("weight_precision");
    r.gpu = text_of("gpu_model");
    r.num_gpus = count("num_gpus");
    r.tensor_parallel = count("tensor_parallel");
    r.expert_parallel = count("expert_parallel");
    r.data_parallel = count("data_parallel");
    r.max_num_seqs = count("max_num_seqs");
    r.avg_batch = number("avg_batch_size");
    r.avg_output_tokens = number("avg_output_len");
    r.energy_per_token_j = number("energy_per_token_joules");
    r.energy_per_request_j = number("energy_per_request_joules");
    r.power_w = number("avg_power_watts");
    r.median_itl_s = number("median_itl_ms") / 1000;
    r.p90_itl_s = number("p90_itl_ms") / 1000;
    r.throughput_tokens_per_s = number("output_throughput_tokens_per_sec");
    if (r.avg_batch > r.max_num_seqs * 1.0001)
      throw file_error(file, lineno,
                       fmt::format("avg_batch_size {} is above max_num_seqs {}", r.avg_batch, r.max_num_seqs));
    table.runs.push_back(std::move(r));
  }
  if (lineno == 0) throw file_error(file, 0, "empty file: a serving table needs a header and rows");
  if (table.runs.empty()) throw file_error(file, 0, "no rows after the header");
  return table;
}

nlohmann::json run_to_json(const MeasuredRun& r) {
  return {{"line", r.line},
          {"model_id", r.model_id},
          {"task", r.task},
          {"architecture", r.architecture},
          {"weight_precision", r.precision},
          {"gpu", r.gpu},
          {"num_gpus", r.num_gpus},
          {"tensor_parallel", r.tensor_parallel},
          {"expert_parallel", r.expert_parallel},
          {"data_parallel", r.data_parallel},
          {"max_num_seqs", r.max_num_seqs},
          {"avg_batch", r.avg_batch},
          {"avg_output_tokens", r.avg_output_tokens},
          {"energy_per_token_j", r.energy_per_token_j},
          {"energy_per_request_j", r.energy_per_request_j},
          {"power_w", r.power_w},
          {"median_itl_s", r.median_itl_s},
          {"p90_itl_s", r.p90_itl_s},
          {"throughput_tokens_per_s", r.throughput_tokens_per_s}};
}

}  // namespace irene::serving
