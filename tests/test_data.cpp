// data/: the published IrEne dataset as trees, and `irene data import|check`.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/data/dataset.hpp"
#include "test_util.hpp"

using namespace irene;
using namespace irene_test;

namespace {

const char* kHeader =
    "batch_size,seq_len,flops,mem_bytes,cpu,mem,gpu,gpu_mem,gpu_clk,gpu_mem_clk,times_mean,gpu_energy_mean,"
    "energy_mean,level_name,model_name\n";

std::string row(const std::string& level, const std::string& model, double flops = 1.0, double energy = 0.5) {
  return "8.0,32.0," + std::to_string(flops) + ",2.0,8.5,10.0,90.0,1.0,1900.0,3802.0,2.5e-05,0.002," +
         std::to_string(energy) + "," + level + "," + model + "\n";
}

// A small device folder: one distilbert configuration with some rows.
fs::path small_folder(const std::string& tag, const std::string& extra_model_rows = "") {
  const fs::path d = fresh_dir(tag) / "device_x";
  fs::create_directories(d);
  write_text(d / "model_level_features.csv", kHeader + row("distilbert-base-uncased", "distilbert-base-uncased", 21960.3, 2.0) + extra_model_rows);
  write_text(d / "module_level_features.csv", kHeader + row("transformer.layer.0.ffn:FFN", "distilbert-base-uncased"));
  write_text(d / "ml1_level_features.csv", kHeader + row("transformer.layer.0.ffn.lin1:Linear", "distilbert-base-uncased"));
  write_text(d / "ml2_level_features.csv",
             kHeader + row("transformer.layer.0.attention:MatMul", "distilbert-base-uncased", 12.0, 0.1) +
                 row("transformer.layer.0.attention:MatMul", "distilbert-base-uncased", 12.0, 0.2));
  return d;
}

}  // namespace

// The check that the builder counts features the way the dataset does: every row of both
// device folders is within 0.5% of the node it belongs to.
TEST(DataDataset, EveryRowOfBothDevicesWithinHalfAPercent) {
  const fs::path data = dataset_dir();
  IRENE_REQUIRE_DATASET(data);
  for (const char* device : {"device_1", "device_2"}) {
    const FeatureCheck c = check_device_folder(data / device, 0.005);
    EXPECT_GT(c.rows_checked, 20000) << device;
    EXPECT_EQ(c.rows_checked, c.summary.rows_total) << device << ": every row must belong to a node";
    EXPECT_EQ(c.summary.rows_unmatched, 0) << device;
    EXPECT_TRUE(c.summary.skipped_models.empty()) << device;
    EXPECT_EQ(c.failures_total, 0) << device << "\n" << c.to_string();
  }
}

TEST(DataDataset, ImportAttachesRowsToTheirNodes) {
  const fs::path dir = dataset_dir() / "device_2";
  IRENE_REQUIRE_DATASET(dataset_dir());
  const DatasetTable table = read_device_folder(dir);
  ImportSummary s;
  const auto trees = import_device_folder(dir, &s);
  std::set<std::tuple<std::string, int, int>> configs;
  for (const auto& r : table.rows) configs.insert({r.model_name, r.batch_size, r.seq_len});
  EXPECT_EQ(s.trees_written, static_cast<int>(configs.size()));
  EXPECT_EQ(trees.size(), configs.size());
  EXPECT_EQ(s.rows_matched + s.rows_unmatched, s.rows_total);
  EXPECT_EQ(s.rows_total, static_cast<long>(table.rows.size()));

  // Trees come in the files' order: models by their first row, then batch and sequence ascending.
  std::vector<std::string> first_seen;
  for (const auto& r : table.rows)
    if (std::find(first_seen.begin(), first_seen.end(), r.model_name) == first_seen.end())
      first_seen.push_back(r.model_name);
  ASSERT_GE(first_seen.size(), 2u);
  EXPECT_NE(first_seen, ([&] {
              auto sorted = first_seen;
              std::sort(sorted.begin(), sorted.end());
              return sorted;
            }()))
      << "the published files are not in alphabetical model order, so this checks the order";
  std::vector<std::string> tree_models;
  for (std::size_t t = 0; t < trees.size(); ++t) {
    if (tree_models.empty() || tree_models.back() != trees[t].model_name) tree_models.push_back(trees[t].model_name);
    if (t > 0 && trees[t].model_name == trees[t - 1].model_name) {
      EXPECT_LT(std::make_pair(trees[t - 1].batch_size, trees[t - 1].seq_len),
                std::make_pair(trees[t].batch_size, trees[t].seq_len))
          << trees[t].key();
    }
  }
  EXPECT_EQ(tree_models, first_seen);

  std::map<std::string, const Tree*> by_key;
  for (const auto& t : trees) by_key[t.key()] = &t;
  long nodes_with_energy = 0;
  for (const auto& t : trees)
    for (const auto& n : t.nodes) nodes_with_energy += n.ground_truth_energy_j.has_value();
  EXPECT_EQ(nodes_with_energy, s.rows_matched);

  // Every row's energy and features sit on its node; MatMul rows on the two MatMul leaves.
  std::map<std::string, int> seen;
  for (const auto& r : table.rows) {
    const Tree& t = *by_key.at(fmt::format("{}/{}/{}", r.model_name, r.batch_size, r.seq_len));
    std::string id = r.level == DatasetLevel::model ? t.root().id : r.level_name;
    if (r.level_name.ends_with(":MatMul")) id += "#" + std::to_string(seen[t.key() + r.level_name]++);
    const int i = t.find_id(id);
    ASSERT_GE(i, 0) << id;
    const Node& n = t.nodes[i];
    if (!r.level_name.ends_with(":MatMul")) {  // the two MatMul rows are identical
      EXPECT_EQ(*n.ground_truth_energy_j, r.energy_j) << id;
      EXPECT_EQ(n.resources.at("times_mean"), r.resources[6]) << id;
    }
    EXPECT_EQ(n.flops_mflop, r.flops_mflop);
    EXPECT_EQ(n.mem_mib, r.mem_mib);
    EXPECT_EQ(n.resources.size(), table.resource_columns.size());
  }
  const Tree& bert = *by_key.at("bert-base-uncased/8/32");
  EXPECT_EQ(bert.root().class_name, "BertModel");
  EXPECT_EQ(bert.root().num_parameters, 109482240);
  EXPECT_EQ(bert.provenance.at("device"), "device_2");
  EXPECT_EQ(table.resource_columns, (std::vector<std::string>{"cpu", "mem", "gpu", "gpu_mem", "gpu_clk", "gpu_mem_clk",
                                                              "times_mean", "gpu_energy_mean"}));
}

TEST(DataDataset, MissingLevelsAreReported) {
  const fs::path dir = dataset_dir() / "device_1";
  IRENE_REQUIRE_DATASET(dataset_dir());
  const DatasetTable table = read_device_folder(dir);
  // Configurations lacking a whole level, counted independently of the importer.
  std::map<std::string, std::set<int>> levels;
  for (const auto& r : table.rows)
    levels[fmt::format("{}/{}/{}", r.model_name, r.batch_size, r.seq_len)].insert(static_cast<int>(r.level));
  std::set<std::string> incomplete;
  for (const auto& [k, l] : levels)
    if (l.size() < 4) incomplete.insert(k);
  ImportSummary s;
  const auto trees = import_device_folder(dir, &s);
  ASSERT_EQ(s.missing_levels.size(), incomplete.size());
  for (const auto& m : s.missing_levels) EXPECT_TRUE(incomplete.count(m.substr(0, m.find(':')))) << m;
  long without = 0;
  for (const auto& t : trees)
    for (const auto& n : t.nodes) without += !n.ground_truth_energy_j.has_value();
  EXPECT_EQ(without, s.nodes_without_row);
}

TEST(DataDataset, JsonlRoundTripOfImportedTrees) {
  const fs::path dir = dataset_dir() / "device_1";
  IRENE_REQUIRE_DATASET(dataset_dir());
  const fs::path d = fresh_dir("data");
  const ImportSummary s = import_device_folder_to_jsonl(dir, d / "a.jsonl");
  const auto trees = read_jsonl(d / "a.jsonl");
  ASSERT_EQ(static_cast<int>(trees.size()), s.trees_written);
  const auto direct = import_device_folder(dir);
  ASSERT_EQ(direct.size(), trees.size());
  for (std::size_t t = 0; t < trees.size(); ++t) {
    ASSERT_EQ(trees[t].key(), direct[t].key());
    ASSERT_EQ(trees[t].nodes.size(), direct[t].nodes.size());
    for (std::size_t i = 0; i < trees[t].nodes.size(); ++i) {
      const Node &a = trees[t].nodes[i], &b = direct[t].nodes[i];
      ASSERT_EQ(a.id, b.id);
      EXPECT_EQ(a.flops_mflop, b.flops_mflop);
      EXPECT_EQ(a.mem_mib, b.mem_mib);
      EXPECT_EQ(a.resources, b.resources);
      EXPECT_EQ(a.ground_truth_energy_j, b.ground_truth_energy_j);
      EXPECT_EQ(a.num_parameters, b.num_parameters);
      EXPECT_EQ(a.attrs, b.attrs);
      EXPECT_EQ(a.ops, b.ops);
      EXPECT_EQ(a.children, b.children);
    }
  }
  write_jsonl(d / "b.jsonl", trees);
  EXPECT_EQ(read_file(d / "a.jsonl"), read_file(d / "b.jsonl"));
  fs::remove_all(d.parent_path() / d.filename());
}

TEST(DataImport, SmallFolderMatchesRowsAndCountsTheRest) {
  const fs::path d = small_folder("data", row("bert-base-uncased", "t5-small"));
  ImportSummary s;
  const auto trees = import_device_folder(d, &s);
  ASSERT_EQ(trees.size(), 1u);
  EXPECT_EQ(s.rows_total, 6);
  EXPECT_EQ(s.rows_matched, 5);
  EXPECT_EQ(s.rows_unmatched, 0);
  ASSERT_EQ(s.skipped_models.size(), 1u);
  EXPECT_NE(s.skipped_models[0].find("t5-small (1 rows)"), std::string::npos) << s.skipped_models[0];
  const Tree& t = trees[0];
  EXPECT_EQ(s.nodes_without_row, static_cast<long>(t.nodes.size()) - 5);
  EXPECT_EQ(*t.root().ground_truth_energy_j, 2.0);
  EXPECT_EQ(t.root().flops_mflop, 21960.3);  // the CSV's value replaces the counted one
  EXPECT_EQ(*t.nodes[t.find_id("transformer.layer.0.attention:MatMul#0")].ground_truth_energy_j, 0.1);
  EXPECT_EQ(*t.nodes[t.find_id("transformer.layer.0.attention:MatMul#1")].ground_truth_energy_j, 0.2);
  EXPECT_FALSE(t.nodes[t.find_id("transformer.layer.1.ffn:FFN")].ground_truth_energy_j.has_value());
  EXPECT_EQ(t.nodes[t.find_id("transformer.layer.0.ffn.lin1:Linear")].resources.at("gpu_clk"), 1900.0);
  EXPECT_TRUE(s.missing_levels.empty());

  // With the counted features kept, the root has the architecture's numbers.
  ImportOptions keep;
  keep.csv_features = false;
  const auto counted = import_device_folder(d, nullptr, keep);
  EXPECT_DOUBLE_EQ(counted[0].root().flops_mflop,
                   build_tree(load_model_config("distilbert-base-uncased"), 8, 32).root().flops_mflop);
  fs::remove_all(d.parent_path());
}

TEST(DataImport, RowsMatchingNoNodeAndMissingLevelsAreReported) {
  const fs::path d = small_folder("data");
  // A third MatMul row, a scope the model does not have, and a configuration with one level only.
  std::string ml2 = read_file(d / "ml2_level_features.csv");
  ml2 += row("transformer.layer.0.attention:MatMul", "distilbert-base-uncased");
  ml2 += row("transformer.layer.9.attention:MatMul", "distilbert-base-uncased");
  ml2 += "16.0,64.0,1.0,2.0,8.5,10.0,90.0,1.0,1900.0,3802.0,2.5e-05,0.002,0.3,transformer.layer.0.attention:Softmax,"
         "distilbert-base-uncased\n";
  write_text(d / "ml2_level_features.csv", ml2);
  ImportSummary s;
  const auto trees = import_device_folder(d, &s);
  EXPECT_EQ(trees.size(), 2u);
  EXPECT_EQ(s.rows_unmatched, 2);
  ASSERT_EQ(s.unmatched_examples.size(), 2u);
  EXPECT_NE(s.unmatched_examples[0].find("ml2_level_features.csv:4: transformer.layer.0.attention:MatMul"),
            std::string::npos)
      << s.unmatched_examples[0];
  ASSERT_EQ(s.missing_levels.size(), 1u);
  EXPECT_EQ(s.missing_levels[0], "distilbert-base-uncased/16/64: no model row, no module rows, no ml1 rows");
  EXPECT_NE(s.to_string().find("rows matching no node:    2"), std::string::npos) << s.to_string();
  ImportOptions skip;
  skip.skip_incomplete = true;
  ImportSummary s2;
  const auto complete = import_device_folder(d, &s2, skip);
  ASSERT_EQ(complete.size(), 1u);
  EXPECT_EQ(complete[0].key(), "distilbert-base-uncased/8/32");
  EXPECT_EQ(s2.trees_written, 1);
  EXPECT_EQ(s2.incomplete_skipped, 1);
  EXPECT_EQ(s2.nodes_without_row, s.nodes_without_row - static_cast<long>(trees[1].nodes.size()) + 1);
  fs::remove_all(d.parent_path());
}

// What the reference implementation cannot read: leaves outside its seven ML-level operations
// (lib/utils.py ML_OPERATIONS_LIST, compared lower-cased) and configurations lacking a level.
TEST(DataImport, ReferenceLeafRule) {
  Node n;
  n.type = NodeType::ml;
  for (const char* cls : {"Linear", "MatMul", "Conv1D", "LayerNorm", "Embedding", "Softmax", "Tanh", "matmul"}) {
    n.class_name = cls;
    EXPECT_TRUE(reference_predicts_leaf(n)) << cls;
  }
  for (const char* cls : {"ReLU", "GELUActivation", "Dropout", "NewGELU"}) {
    n.class_name = cls;
    EXPECT_FALSE(reference_predicts_leaf(n)) << cls;
  }
  n.class_name = "Linear";
  n.type = NodeType::module;  // the reference asserts that every leaf is typed ml
  EXPECT_FALSE(reference_predicts_leaf(n));
  EXPECT_EQ(reference_ml_operations().size(), 7u);
}

TEST(DataImport, LeavesTheReferenceCannotPredictAreLeftOutOnRequest) {
  // distilbert 8/32 (complete enough: every level), tiny-ctrl 8/32 (ReLU leaves), distilbert
  // 16/64 (an ml2 row only: incomplete).
  const fs::path d = small_folder("data", row("sshleifer/tiny-ctrl", "sshleifer/tiny-ctrl"));
  for (auto level : {"module", "ml1", "ml2"}) {
    const fs::path f = d / (std::string(level) + "_level_features.csv");
    write_text(f, read_file(f) + row(std::string(level) == "module" ? "transformer.h.0:EncoderLayer"
                                                                   : "transformer.h.0.ffn.0:Linear",
                                     "sshleifer/tiny-ctrl"));
  }
  write_text(d / "ml2_level_features.csv",
             read_file(d / "ml2_level_features.csv") +
                 "16.0,64.0,1.0,2.0,8.5,10.0,90.0,1.0,1900.0,3802.0,2.5e-05,0.002,0.3,"
                 "transformer.layer.0.attention:Softmax,distilbert-base-uncased\n");
  ImportSummary all;
  const auto every = import_device_folder(d, &all);
  ASSERT_EQ(every.size(), 3u);
  EXPECT_EQ(all.trees_written, 3);
  EXPECT_TRUE(all.other_leaves_skipped.empty());
  EXPECT_EQ(all.to_string().find("cannot predict"), std::string::npos) << all.to_string();

  ImportOptions ref;
  ref.skip_incomplete = true;
  ref.skip_other_leaves = true;
  ImportSummary s;
  const auto kept = import_device_folder(d, &s, ref);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].key(), "distilbert-base-uncased/8/32");
  EXPECT_EQ(s.trees_written, 1);
  EXPECT_EQ(s.incomplete_skipped, 1);
  EXPECT_EQ(s.other_leaves_trees_skipped, 1);
  ASSERT_EQ(s.other_leaves_skipped.size(), 1u);
  EXPECT_EQ(s.other_leaves_skipped[0], "sshleifer/tiny-ctrl (1 trees): leaves of class ReLU");
  EXPECT_NE(s.to_string().find("models with leaves the reference implementation cannot predict: 1 (1 trees, not written)"),
            std::string::npos)
      << s.to_string();
  for (const auto& t : kept)
    for (const auto& n : t.nodes)
      if (n.children.empty()) EXPECT_TRUE(reference_predicts_leaf(n)) << t.key() << " " << n.id;

  // The command line leaves both out by default and says so; --keep-other-leaves, --keep-incomplete
  // and --all put them back.
  const fs::path out = d.parent_path() / "ref.jsonl";
  auto r = run_irene("data import " + d.string() + " -o " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("trees written:            1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sshleifer/tiny-ctrl (1 trees): leaves of class ReLU"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("distilbert-base-uncased/16/64: no model row, no module rows, no ml1 rows (not written)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("left out so that the reference implementation reads the file: 1 incomplete, 1 with other leaves"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_jsonl(out).size(), 1u);
  struct Case {
    const char* flags;
    std::size_t trees;
  };
  for (const Case& c : {Case{"--keep-other-leaves", 2}, Case{"--keep-incomplete", 2}, Case{"--skip-incomplete", 1},
                        Case{"--all", 3}}) {
    r = run_irene("data import " + d.string() + " -o " + out.string() + " " + c.flags);
    ASSERT_EQ(r.status, 0) << c.flags << "\n" << r.output;
    EXPECT_EQ(read_jsonl(out).size(), c.trees) << c.flags;
  }
  EXPECT_EQ(r.output.find("left out"), std::string::npos) << r.output;  // --all: nothing left out
  // Contradictory flags: one error line, exit 1, no file.
  fs::remove(out);
  r = run_irene("data import " + d.string() + " -o " + out.string() + " --skip-incomplete --keep-incomplete");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find("irene: error: "), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(d.parent_path());
}

TEST(DataImport, BadCsvIsAnErrorNamingFileAndLine) {
  struct Case {
    const char* what;
    std::string text;
    std::string expected;
  };
  const std::string good = row("transformer.layer.0.ffn.lin1:Linear", "distilbert-base-uncased");
  const std::vector<Case> cases = {
      {"truncated row", kHeader + good + good.substr(0, 40) + "\n", "ml1_level_features.csv:3: expected 15 fields, got"},
      {"not a number", kHeader + std::string("8.0,32.0,abc") + good.substr(good.find(",2.0,")), "ml1_level_features.csv:2: column 'flops': 'abc' is not a number"},
      {"zero batch", kHeader + std::string("0.0") + good.substr(3), "ml1_level_features.csv:2: column 'batch_size': 0.0 is not a positive integer"},
      {"fractional seq", kHeader + std::string("8.0,32.5") + good.substr(8), "column 'seq_len': 32.5 is not a positive integer"},
      {"missing column", std::string("batch_size,seq_len,flops\n8,32,1\n"), "ml1_level_features.csv:1: missing column 'mem_bytes'"},
      {"empty file", std::string(""), "ml1_level_features.csv: empty file"},
      {"unterminated quote", kHeader + std::string("8.0,32.0,\"1.0") + good.substr(12), "ml1_level_features.csv:2: malformed row"},
      {"bad level_name", kHeader + row("Linear", "distilbert-base-uncased"), "is not 'scope:Class'"},
  };
  int cli_runs = 0;
  for (const auto& c : cases) {
    const fs::path d = small_folder("data");
    write_text(d / "ml1_level_features.csv", c.text);
    const std::string e = error_of([&] { import_device_folder(d); });
    EXPECT_NE(e.find(c.expected), std::string::npos) << c.what << ": " << e;
    if (cli_runs++ >= 2) {  // each CLI start costs ~1 s: check the CLI on the first two cases
      fs::remove_all(d.parent_path());
      continue;
    }
    // The CLI: one error line, exit 1, no output file.
    const fs::path out = d.parent_path() / "out.jsonl";
    const auto r = run_irene("data import " + d.string() + " -o " + out.string());
    EXPECT_EQ(r.status, 1) << c.what;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.what << ": " << r.output;
    EXPECT_NE(r.output.find("irene: error: "), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.what;
    fs::remove_all(d.parent_path());
  }
}

TEST(DataImport, CrlfLineEndingsAndQuotedFieldsAreRead) {
  const fs::path d = small_folder("data");
  std::string text = std::string(kHeader) + row("\"transformer.layer.0.ffn.lin1:Linear\"", "\"distilbert-base-uncased\"");
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write_text(d / "ml1_level_features.csv", crlf);
  DatasetTable table;
  read_level_csv(d / "ml1_level_features.csv", DatasetLevel::ml1, table);
  ASSERT_EQ(table.rows.size(), 1u);
  EXPECT_EQ(table.rows[0].level_name, "transformer.layer.0.ffn.lin1:Linear");
  EXPECT_EQ(table.rows[0].model_name, "distilbert-base-uncased");
  EXPECT_EQ(table.resource_columns.back(), "gpu_energy_mean");
  ImportSummary s;
  import_device_folder(d, &s);
  EXPECT_EQ(s.rows_matched, 5);
  fs::remove_all(d.parent_path());
}

TEST(DataImport, MissingFolderOrFileIsAnError) {
  const fs::path d = small_folder("data");
  EXPECT_NE(error_of([&] { import_device_folder(d / "nope"); }).find("nope: no such folder"), std::string::npos);
  EXPECT_NE(error_of([&] { import_device_folder(d / "model_level_features.csv"); }).find("not a folder"),
            std::string::npos);
  fs::remove(d / "ml2_level_features.csv");
  EXPECT_NE(error_of([&] { import_device_folder(d); }).find("ml2_level_features.csv: no such file"), std::string::npos);
  const auto r = run_irene("data import " + (d / "nope").string() + " -o " + (d / "o.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("no such folder"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "o.jsonl"));
  fs::remove_all(d.parent_path());
}

TEST(DataImport, CliWritesTreesAndSummary) {
  const fs::path d = small_folder("data");
  const fs::path out = d.parent_path() / "trees.jsonl";
  const auto r = run_irene("data import " + d.string() + " -o " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* line : {"trees written:            1", "rows matched to a node:   5", "rows matching no node:    0",
                           "nodes with no row:", "configurations with missing levels: 0"})
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
  const auto trees = read_jsonl(out);
  ASSERT_EQ(trees.size(), 1u);
  EXPECT_EQ(trees[0].model_name, "distilbert-base-uncased");
  EXPECT_EQ(*trees[0].root().ground_truth_energy_j, 2.0);
  fs::remove_all(d.parent_path());
}

TEST(DataCheck, CliReportsRowsBeyondTolerance) {
  const fs::path d = small_folder("data");
  auto r = run_irene("data check " + d.string());
  EXPECT_EQ(r.status, 1);  // the small folder's made-up features are far from the counted ones
  EXPECT_NE(r.output.find("beyond tolerance"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FAIL flops"), std::string::npos) << r.output;
  const fs::path data = dataset_dir();
  if (fs::is_directory(data / "device_2")) {
    r = run_irene("data check " + (data / "device_2").string());
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(", 0 beyond tolerance"), std::string::npos) << r.output;
  }
  fs::remove_all(d.parent_path());
}
