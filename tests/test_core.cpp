#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/core/tree.hpp"

namespace fs = std::filesystem;
using namespace irene;

namespace {

Tree small_tree() {
  Tree t;
  t.model_name = "toy";
  t.batch_size = 2;
  t.seq_len = 4;
  Node root;
  root.type = NodeType::model;
  root.class_name = "ToyModel";
  root.ground_truth_energy_j = 1.5;
  t.add_node(-1, root);
  Node att;
  att.scope = "attn";
  att.class_name = "Attention";
  att.flops_mflop = 12.5;
  att.mem_mib = 0.1 + 0.2;  // not exactly representable: round trip must keep it
  att.resources["times_mean"] = 1e-5;
  att.ops = {Op{"div", {2, 2, 4, 4}}, Op{"add", {2, 4, 8}}};
  att.predicted_energy_j = 0.5;
  att.predicted_own_energy_j = 0.1 + 0.02;  // not exactly representable
  att.predicted_own_interval = Interval{0.0, 0.25};
  att.out_of_range = {"batch_size 64 is 2x the largest of the training data's nodes (32)", "seq_len \"x\""};
  const int a = t.add_node(0, att);
  Node mm;
  mm.scope = "attn";
  mm.class_name = "MatMul";
  mm.type = NodeType::ml;
  mm.attrs = {{"heads", 2}, {"m", 4}, {"k", 8}, {"n", 4}};
  t.add_node(a, mm);
  t.add_node(a, mm);
  Node lin;
  lin.scope = "attn.query";
  lin.class_name = "Linear";
  lin.type = NodeType::ml;
  lin.num_parameters = 72;
  lin.predicted_energy_j = 0.25;
  lin.predicted_interval = Interval{0.2, 0.3};
  t.add_node(a, lin);
  t.assign_ids();
  return t;
}

fs::path temp_dir() {
  auto d = fs::temp_directory_path() / ("irene_core_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(Tree, IdsAreUniqueAndRepeatedSiblingsNumbered) {
  Tree t = small_tree();
  EXPECT_EQ(t.nodes[0].id, "root:ToyModel");
  EXPECT_EQ(t.nodes[1].id, "attn:Attention");
  EXPECT_EQ(t.nodes[2].id, "attn:MatMul#0");
  EXPECT_EQ(t.nodes[3].id, "attn:MatMul#1");
  EXPECT_EQ(t.nodes[4].id, "attn.query:Linear");
  EXPECT_EQ(t.nodes[4].depth, 2);
  EXPECT_EQ(t.nodes[4].parent_scope, "attn");
  EXPECT_EQ(t.find_id("attn:MatMul#1"), 3);
  EXPECT_EQ(t.find_id("nope"), -1);
}

TEST(Jsonl, RoundTripIsIdentical) {
  const fs::path dir = temp_dir();
  Tree t = small_tree();
  write_jsonl(dir / "a.jsonl", {t, t});
  auto back = read_jsonl(dir / "a.jsonl");
  ASSERT_EQ(back.size(), 2u);
  write_jsonl(dir / "b.jsonl", back);
  EXPECT_EQ(read_file(dir / "a.jsonl"), read_file(dir / "b.jsonl"));
  const Node& lin = back[0].nodes[4];
  EXPECT_EQ(lin.num_parameters, 72);
  ASSERT_TRUE(lin.predicted_interval.has_value());
  EXPECT_DOUBLE_EQ(lin.predicted_interval->high_j, 0.3);
  EXPECT_EQ(back[0].nodes[1].mem_mib, 0.1 + 0.2);
  EXPECT_EQ(back[0].nodes[1].resources.at("times_mean"), 1e-5);
  EXPECT_FALSE(back[0].nodes[1].ground_truth_energy_j.has_value());
  EXPECT_EQ(back[0].nodes[2].attrs.at("k"), 8);
  EXPECT_EQ(back[0].nodes[1].ops, t.nodes[1].ops);
  // The own-operation share of a prediction, its interval and the out-of-range notes.
  ASSERT_TRUE(back[0].nodes[1].predicted_own_energy_j.has_value());
  EXPECT_EQ(*back[0].nodes[1].predicted_own_energy_j, 0.1 + 0.02);
  ASSERT_TRUE(back[0].nodes[1].predicted_own_interval.has_value());
  EXPECT_EQ(back[0].nodes[1].predicted_own_interval->low_j, 0.0);
  EXPECT_EQ(back[0].nodes[1].predicted_own_interval->high_j, 0.25);
  EXPECT_EQ(back[0].nodes[1].out_of_range, t.nodes[1].out_of_range);
  // Absent stays absent.
  EXPECT_FALSE(lin.predicted_own_energy_j.has_value());
  EXPECT_FALSE(lin.predicted_own_interval.has_value());
  EXPECT_TRUE(lin.out_of_range.empty());
  EXPECT_EQ(tree_to_json(back[0])["frontend_tree"]["child_nodes_obj"][0]["child_nodes_obj"][2].count("out_of_range"),
            0u);
  fs::remove_all(dir);
}

TEST(Jsonl, BadOwnEnergyOrNotesAreErrors) {
  const fs::path dir = temp_dir();
  auto line = tree_to_json(small_tree());
  line["frontend_tree"]["child_nodes_obj"][0]["out_of_range"] = "not a list";
  {
    std::ofstream out(dir / "notes.jsonl");
    out << line.dump() << "\n";
  }
  EXPECT_THROW(read_jsonl(dir / "notes.jsonl"), Error);
  line = tree_to_json(small_tree());
  line["frontend_tree"]["child_nodes_obj"][0]["predicted_own_energy"] = "much";
  {
    std::ofstream out(dir / "own.jsonl");
    out << line.dump() << "\n";
  }
  EXPECT_THROW(read_jsonl(dir / "own.jsonl"), Error);
  fs::remove_all(dir);
}

TEST(Jsonl, TruncatedLineNamesFileAndLine) {
  const fs::path dir = temp_dir();
  Tree t = small_tree();
  std::ostringstream ss;
  write_tree_jsonl(ss, t);
  std::string line = ss.str();
  {
    std::ofstream out(dir / "bad.jsonl");
    out << line << line.substr(0, line.size() / 2) << "\n";
  }
  try {
    read_jsonl(dir / "bad.jsonl");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2:"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Jsonl, MissingFieldAndMissingFileAreErrors) {
  const fs::path dir = temp_dir();
  {
    std::ofstream out(dir / "nofield.jsonl");
    out << R"({"model_name":"x","batch_size":1,"seq_len":2,"frontend_tree":{"scope":"","type":"model","flops":0,"mem_bytes":0}})" << "\n";
  }
  EXPECT_THROW(read_jsonl(dir / "nofield.jsonl"), Error);
  EXPECT_THROW(read_jsonl(dir / "absent.jsonl"), Error);
  {
    std::ofstream out(dir / "badbatch.jsonl");
    out << R"({"model_name":"x","batch_size":0,"seq_len":2,"frontend_tree":{}})" << "\n";
  }
  EXPECT_THROW(read_jsonl(dir / "badbatch.jsonl"), Error);
  fs::remove_all(dir);
}

TEST(WriteAtomic, FailedWriteLeavesNoFile) {
  const fs::path dir = temp_dir();
  EXPECT_THROW(write_output(dir / "out.txt",
                                 [](std::ostream& o) {
                                   o << "partial";
                                   throw Error("boom");
                                 }),
               Error);
  EXPECT_FALSE(fs::exists(dir / "out.txt"));
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST(ParsePositiveInt, RejectsZeroNegativeAndText) {
  EXPECT_EQ(parse_positive_int("8", "--batch"), 8);
  EXPECT_THROW(parse_positive_int("0", "--batch"), Error);
  EXPECT_THROW(parse_positive_int("-3", "--batch"), Error);
  EXPECT_THROW(parse_positive_int("8x", "--batch"), Error);
  EXPECT_THROW(parse_positive_int("", "--batch"), Error);
}

TEST(ErrorMessage, ControlCharactersAreEscapedSoAnErrorIsOneLine) {
  const irene::Error e("unsupported model_type 'op\nai\tgpt\x01'");
  EXPECT_EQ(std::string(e.what()), "unsupported model_type 'op\\nai\\tgpt\\x01'");
  EXPECT_EQ(std::string(irene::Error("plain").what()), "plain");
}
