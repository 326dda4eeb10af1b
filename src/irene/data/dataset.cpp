#include "irene/data/dataset.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <cctype>
#include <tuple>
#include <unordered_map>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"

namespace irene {

namespace fs = std::filesystem;

namespace {

constexpr DatasetLevel kLevels[] = {DatasetLevel::model, DatasetLevel::module, DatasetLevel::ml1,
                                    DatasetLevel::ml2};

// Splits one CSV line into fields (RFC 4180 quotes supported; the published files use none).
// Quoted fields are unescaped into `unquoted`, which the views then point into. Returns false
// on an unterminated quote or text after a closing quote.
bool split_csv(std::string_view line, std::vector<std::string_view>& fields, std::vector<std::string>& unquoted) {
  fields.clear();
  unquoted.clear();
  if (line.find('"') != std::string_view::npos) unquoted.reserve(line.size() + 1);  // views stay valid
  std::size_t i = 0;
  while (true) {
    if (i < line.size() && line[i] == '"') {
      std::string v;
      bool closed = false;
      for (++i; i < line.size(); ++i) {
        if (line[i] != '"') {
          v += line[i];
        } else if (i + 1 < line.size() && line[i + 1] == '"') {
          v += '"';
          ++i;
        } else {
          closed = true;
          ++i;
          break;
        }
      }
      if (!closed || (i < line.size() && line[i] != ',')) return false;
      unquoted.push_back(std::move(v));
      fields.emplace_back(unquoted.back());
    } else {
      const std::size_t end = line.find(',', i);
      fields.push_back(line.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
      i = end == std::string_view::npos ? line.size() : end;
    }
    if (i >= line.size()) break;
    ++i;  // the comma
    if (i == line.size()) {
      fields.emplace_back();
      break;
    }
  }
  return true;
}

double parse_number(std::string_view text, const fs::path& file, long line, std::string_view column) {
  double v = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  while (first < last && *first == ' ') ++first;
  while (last > first && (last[-1] == ' ' || last[-1] == '\r')) --last;
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || ptr != last || first == last || !std::isfinite(v))
    throw file_error(file, line, fmt::format("column '{}': '{}' is not a number", column, text));
  return v;
}

int parse_count(std::string_view text, const fs::path& file, long line, std::string_view column) {
  const double v = parse_number(text, file, line, column);
  if (!(v >= 1) || v != std::floor(v) || v > 1e9)
    throw file_error(file, line, fmt::format("column '{}': {} is not a positive integer", column, text));
  return static_cast<int>(v);
}

std::string config_key(const std::string& model, int b, int s) { return fmt::format("{}/{}/{}", model, b, s); }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const std::vector<std::string>& reference_ml_operations() {
  // lib/utils.py, ML_OPERATIONS_LIST (lower case; the reference lower-cases instance_type first).
  static const std::vector<std::string> ops = {"embedding", "layernorm", "linear", "tanh", "conv1d", "softmax", "matmul"};
  return ops;
}

bool reference_predicts_leaf(const Node& leaf) {
  const auto& ops = reference_ml_operations();
  return leaf.type == NodeType::ml && std::find(ops.begin(), ops.end(), lower(leaf.class_name)) != ops.end();
}

std::string_view level_file_name(DatasetLevel level) {
  switch (level) {
    case DatasetLevel::model: return "model_level_features.csv";
    case DatasetLevel::module: return "module_level_features.csv";
    case DatasetLevel::ml1: return "ml1_level_features.csv";
    case DatasetLevel::ml2: return "ml2_level_features.csv";
  }
  return "";
}

std::string_view to_string(DatasetLevel level) {
  switch (level) {
    case DatasetLevel::model: return "model";
    case DatasetLevel::module: return "module";
    case DatasetLevel::ml1: return "ml1";
    case DatasetLevel::ml2: return "ml2";
  }
  return "";
}

void read_level_csv(const fs::path& file, DatasetLevel level, DatasetTable& table) {
  parse_level_csv(read_file(file, std::uint64_t{512} << 20), file, level, table);
}

void parse_level_csv(std::string_view text, const fs::path& file, DatasetLevel level, DatasetTable& table) {
  std::vector<std::string_view> fields;
  std::vector<std::string> unquoted;
  std::size_t pos = 0;
  long line_no = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= text.size()) return false;
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    ++line_no;
    return true;
  };
  std::string_view line;
  if (!next_line(line) || line.find_first_not_of(" \t") == std::string_view::npos)
    throw file_error(file, 0, "empty file: expected a CSV header");
  if (!split_csv(line, fields, unquoted)) throw file_error(file, 1, "malformed header (unterminated quote)");
  const std::vector<std::string> header(fields.begin(), fields.end());
  const std::size_t ncols = header.size();
  auto column = [&](const char* name) -> std::size_t {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw file_error(file, 1, fmt::format("missing column '{}' in the header", name));
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t c_batch = column("batch_size"), c_seq = column("seq_len"), c_flops = column("flops"),
                    c_mem = column("mem_bytes"), c_energy = column("energy_mean"), c_level = column("level_name"),
                    c_model = column("model_name");
  std::vector<std::size_t> resource_cols;
  std::vector<std::string> resource_names;
  for (std::size_t i = 0; i < ncols; ++i) {
    if (i == c_batch || i == c_seq || i == c_flops || i == c_mem || i == c_energy || i == c_level || i == c_model)
      continue;
    resource_cols.push_back(i);
    resource_names.push_back(header[i]);
  }
  if (table.resource_columns.empty() && table.rows.empty()) {
    table.resource_columns = resource_names;
  } else if (table.resource_columns != resource_names) {
    throw file_error(file, 1, "its resource columns differ from those of the other files of the folder");
  }
  while (next_line(line)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    if (!split_csv(line, fields, unquoted)) throw file_error(file, line_no, "malformed row (unterminated quote)");
    if (fields.size() != ncols)
      throw file_error(file, line_no,
                       fmt::format("expected {} fields, got {} (malformed or truncated row)", ncols, fields.size()));
    DatasetRow r;
    r.level = level;
    r.line = line_no;
    r.batch_size = parse_count(fields[c_batch], file, line_no, "batch_size");
    r.seq_len = parse_count(fields[c_seq], file, line_no, "seq_len");
    r.flops_mflop = parse_number(fields[c_flops], file, line_no, "flops");
    r.mem_mib = parse_number(fields[c_mem], file, line_no, "mem_bytes");
    r.energy_j = parse_number(fields[c_energy], file, line_no, "energy_mean");
    r.level_name = std::string(fields[c_level]);
    r.model_name = std::string(fields[c_model]);
    if (r.model_name.empty()) throw file_error(file, line_no, "empty model_name");
    if (r.level_name.empty()) throw file_error(file, line_no, "empty level_name");
    if (level != DatasetLevel::model && r.level_name.find(':') == std::string::npos)
      throw file_error(file, line_no, fmt::format("level_name '{}' is not 'scope:Class'", r.level_name));
    r.resources.reserve(resource_cols.size());
    for (std::size_t k = 0; k < resource_cols.size(); ++k)
      r.resources.push_back(parse_number(fields[resource_cols[k]], file, line_no, resource_names[k]));
    table.rows.push_back(std::move(r));
  }
}

DatasetTable read_device_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw file_error(dir, 0, "no such folder");
  if (!fs::is_directory(dir, ec)) throw file_error(dir, 0, "not a folder (expected a device folder of CSV files)");
  DatasetTable table;
  for (auto level : kLevels) read_level_csv(dir / level_file_name(level), level, table);
  return table;
}

std::string ImportSummary::to_string() const {
  std::string s = fmt::format("imported {}\n", folder.string());
  s += fmt::format("  trees written:            {}\n", trees_written);
  s += fmt::format("  CSV rows:                 {}\n", rows_total);
  s += fmt::format("  rows matched to a node:   {}\n", rows_matched);
  s += fmt::format("  rows matching no node:    {}\n", rows_unmatched);
  for (const auto& e : unmatched_examples) s += fmt::format("    {}\n", e);
  s += fmt::format("  nodes with no row:        {}\n", nodes_without_row);
  s += fmt::format("  configurations with missing levels: {}\n", missing_levels.size());
  for (const auto& m : missing_levels) s += fmt::format("    {}\n", m);
  if (!other_leaves_skipped.empty()) {
    s += fmt::format("  models with leaves the reference implementation cannot predict: {} ({} trees, not written)\n",
                     other_leaves_skipped.size(), other_leaves_trees_skipped);
    for (const auto& m : other_leaves_skipped) s += fmt::format("    {}\n", m);
  }
  s += fmt::format("  models skipped:           {}\n", skipped_models.size());
  for (const auto& m : skipped_models) s += fmt::format("    {}\n", m);
  return s;
}

ImportSummary import_device_folder(const fs::path& dir, const std::function<void(Tree&&)>& sink,
                                   const ImportOptions& options) {
  const DatasetTable table = read_device_folder(dir);
  ImportSummary summary;
  summary.folder = dir;
  summary.rows_total = static_cast<long>(table.rows.size());

  // Group rows by configuration, in a fixed order: models in the order of their first row in the
  // files (model, module, ml1, ml2 level; the published CSVs list bert-base-uncased,
  // distilbert-base-uncased, roberta-base, distilgpt2, openai-gpt, gpt2, ... as the reference's
  // JSONL does), then batch size and sequence length ascending.
  struct Group {
    std::string model;
    int batch = 0, seq = 0;
    std::vector<const DatasetRow*> rows;
  };
  std::unordered_map<std::string, std::size_t> model_rank;
  for (const auto& r : table.rows) model_rank.try_emplace(r.model_name, model_rank.size());
  std::map<std::tuple<std::size_t, int, int>, Group> groups;
  for (const auto& r : table.rows) {
    auto& g = groups[{model_rank.at(r.model_name), r.batch_size, r.seq_len}];
    g.model = r.model_name;
    g.batch = r.batch_size;
    g.seq = r.seq_len;
    g.rows.push_back(&r);
  }

  // Configurations per model (loaded once); failures skip the model.
  std::map<std::string, std::optional<ModelConfig>> configs;
  std::map<std::string, std::pair<long, std::string>> skipped;  // model -> rows, reason
  // model -> (trees, classes of its leaves the reference cannot predict), in the models' order
  std::vector<std::pair<std::string, std::pair<int, std::set<std::string>>>> other_leaves;
  const std::string device = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();

  for (auto& [key, g] : groups) {
    auto cit = configs.find(g.model);
    if (cit == configs.end()) {
      std::optional<ModelConfig> cfg;
      try {
        cfg = load_model_config(g.model);
      } catch (const Error& e) {
        skipped[g.model].second = e.what();
      }
      cit = configs.emplace(g.model, std::move(cfg)).first;
    }
    if (!cit->second) {
      skipped[g.model].first += static_cast<long>(g.rows.size());
      continue;
    }
    Tree tree;
    try {
      tree = build_tree(*cit->second, g.batch, g.seq);
    } catch (const Error& e) {
      const auto& r = *g.rows.front();
      throw file_error(dir / level_file_name(r.level), r.line, e.what());
    }
    tree.model_name = g.model;
    tree.provenance["source"] = "IrEne dataset";
    tree.provenance["dataset_folder"] = fs::absolute(dir).lexically_normal().string();
    tree.provenance["device"] = device;

    // "scope:Class" -> nodes, in pre-order (the two MatMul leaves of an attention in order).
    std::unordered_map<std::string, std::vector<int>> by_key;
    by_key.reserve(tree.nodes.size() * 2);
    for (int i = 1; i < static_cast<int>(tree.nodes.size()); ++i)
      by_key[tree.nodes[i].scope + ":" + tree.nodes[i].class_name].push_back(i);
    std::unordered_map<std::string, std::size_t> used;
    std::vector<char> has_row(tree.nodes.size(), 0);
    bool level_seen[4] = {false, false, false, false};

    for (const DatasetRow* r : g.rows) {
      level_seen[static_cast<int>(r->level)] = true;
      int node = -1;
      if (r->level == DatasetLevel::model) {
        if (r->level_name == g.model && !has_row[0]) node = 0;
      } else if (auto it = by_key.find(r->level_name); it != by_key.end()) {
        auto& k = used[r->level_name];
        if (k < it->second.size()) node = it->second[k++];
      }
      if (node < 0) {
        ++summary.rows_unmatched;
        if (summary.unmatched_examples.size() < 10)
          summary.unmatched_examples.push_back(fmt::format("{}:{}: {} ({})", (dir / level_file_name(r->level)).string(),
                                                           r->line, r->level_name, config_key(g.model, g.batch, g.seq)));
        continue;
      }
      if (options.on_match) options.on_match(*r, tree, node);
      Node& n = tree.nodes[node];
      has_row[node] = 1;
      ++summary.rows_matched;
      if (options.csv_features) {
        n.flops_mflop = r->flops_mflop;
        n.mem_mib = r->mem_mib;
      }
      for (std::size_t k = 0; k < table.resource_columns.size(); ++k) n.resources[table.resource_columns[k]] = r->resources[k];
      n.ground_truth_energy_j = r->energy_j;
    }
    std::string missing;
    for (auto level : kLevels)
      if (!level_seen[static_cast<int>(level)])
        missing += fmt::format("{}no {} row{}", missing.empty() ? "" : ", ", to_string(level),
                               level == DatasetLevel::model ? "" : "s");
    if (!missing.empty()) {
      summary.missing_levels.push_back(config_key(g.model, g.batch, g.seq) + ": " + missing);
      if (options.skip_incomplete) {
        ++summary.incomplete_skipped;
        summary.missing_levels.back() += " (not written)";
        continue;
      }
    }
    if (options.skip_other_leaves) {
      std::set<std::string> classes;
      for (const Node& n : tree.nodes)
        if (n.children.empty() && !reference_predicts_leaf(n)) classes.insert(n.class_name);
      if (!classes.empty()) {
        if (other_leaves.empty() || other_leaves.back().first != g.model) other_leaves.push_back({g.model, {}});
        ++other_leaves.back().second.first;
        other_leaves.back().second.second.insert(classes.begin(), classes.end());
        ++summary.other_leaves_trees_skipped;
        continue;
      }
    }
    summary.nodes_without_row += static_cast<long>(std::count(has_row.begin(), has_row.end(), 0));
    ++summary.trees_written;
    sink(std::move(tree));
  }
  for (const auto& [model, info] : other_leaves)
    summary.other_leaves_skipped.push_back(
        fmt::format("{} ({} trees): leaves of class {}", model, info.first, fmt::join(info.second, ", ")));
  for (const auto& [model, info] : skipped)
    summary.skipped_models.push_back(fmt::format("{} ({} rows): {}", model, info.first, info.second));
  return summary;
}

std::vector<Tree> import_device_folder(const fs::path& dir, ImportSummary* summary, const ImportOptions& options) {
  std::vector<Tree> trees;
  ImportSummary s = import_device_folder(dir, [&](Tree&& t) { trees.push_back(std::move(t)); }, options);
  if (summary) *summary = std::move(s);
  return trees;
}

ImportSummary import_device_folder_to_jsonl(const fs::path& dir, const fs::path& out, const ImportOptions& options) {
  // The trees stream into a temporary file renamed into place only on success: an error leaves no file.
  ImportSummary summary;
  write_output(out, [&](std::ostream& os) {
    summary = import_device_folder(dir, [&](Tree&& t) { write_tree_jsonl(os, t); }, options);
  });
  return summary;
}

FeatureCheck check_device_folder(const fs::path& dir, double tolerance) {
  FeatureCheck check;
  ImportOptions options;
  options.csv_features = false;
  options.on_match = [&](const DatasetRow& r, const Tree& tree, int node) {
    const Node& n = tree.nodes[node];
    auto rel = [](double computed, double row) {
      if (row == 0) return std::abs(computed) <= 1e-9 ? 0.0 : std::abs(computed);
      return std::abs(computed - row) / std::abs(row);
    };
    const double rf = rel(n.flops_mflop, r.flops_mflop), rm = rel(n.mem_mib, r.mem_mib);
    auto where = [&](double computed, double row) {
      return fmt::format("{}:{}: {} ({}): computed {:.9g} vs row {:.9g}", (dir / level_file_name(r.level)).string(),
                         r.line, r.level_name, tree.key(), computed, row);
    };
    auto& w = check.by_class[n.class_name];
    ++w.rows;
    ++check.rows_checked;
    if (rf >= w.flops_rel) {
      w.flops_rel = rf;
      w.flops_where = where(n.flops_mflop, r.flops_mflop);
    }
    if (rm >= w.mem_rel) {
      w.mem_rel = rm;
      w.mem_where = where(n.mem_mib, r.mem_mib);
    }
    if (rf > tolerance || rm > tolerance) {
      ++check.failures_total;
      if (check.failures.size() < 50)
        check.failures.push_back(rf > tolerance ? "flops " + where(n.flops_mflop, r.flops_mflop)
                                                : "mem_bytes " + where(n.mem_mib, r.mem_mib));
    }
  };
  check.summary = import_device_folder(dir, [](Tree&&) {}, options);
  return check;
}

std::string FeatureCheck::to_string() const {
  std::string s = fmt::format("{} rows checked, {} beyond tolerance\n", rows_checked, failures_total);
  s += fmt::format("  {:<28} {:>6} {:>14} {:>14}\n", "class", "rows", "worst flops %", "worst mem %");
  for (const auto& [cls, w] : by_class)
    s += fmt::format("  {:<28} {:>6} {:>14.6f} {:>14.6f}\n", cls, w.rows, 100 * w.flops_rel, 100 * w.mem_rel);
  for (const auto& f : failures) s += "  FAIL " + f + "\n";
  return s;
}

fs::path default_data_dir() {
  if (const char* d = std::getenv("IRENE_DATA"); d && *d) return d;
  const char* src = std::getenv("IRENE_SOURCE_DIR");
  return (fs::path(src && *src ? src : IRENE_SOURCE_DIR) / ".." / "shared" / "irene-data").lexically_normal();
}

}  // namespace irene
