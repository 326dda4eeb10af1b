#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <set>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

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
  EXPECT_EQ(t.parent_scope(4), "attn");
  EXPECT_EQ(t.parent_scope(0), "");
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

// Temporary names drawn by the next writes: 1, 1, 2, 3, ... (a planted file under the first
// name must make irene draw another, never open it).
std::uint64_t g_next_name = 1;
std::uint64_t scripted_name() { return g_next_name == 1 ? (g_next_name = 2, 1) : g_next_name++; }
struct ScriptedNames {
  ScriptedNames() {
    g_next_name = 1;
    set_temp_name_source(scripted_name);
  }
  ~ScriptedNames() { set_temp_name_source(nullptr); }
};

TEST(WriteAtomic, PlantedSymlinkOrFifoAtTheTemporaryNameIsNeitherWrittenNorOpened) {
  const fs::path dir = temp_dir();
  const fs::path victim = dir / "victim.txt";
  { std::ofstream(victim) << "precious\n"; }
  const fs::path name1 = dir / ".out.txt.0000000000000001.tmp";
  for (const bool fifo : {false, true}) {
    fs::remove(name1);
    if (fifo) ASSERT_EQ(::mkfifo(name1.c_str(), 0600), 0);
    else fs::create_symlink(victim, name1);
    ScriptedNames names;
    write_output(dir / "out.txt", [](std::ostream& o) { o << "result\n"; });  // a FIFO opened would hang here
    std::ifstream in(dir / "out.txt");
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "result");
    std::ifstream v(victim);
    std::getline(v, line);
    EXPECT_EQ(line, "precious") << "the planted link's target must not receive the output";
    struct stat st {};
    ASSERT_EQ(::lstat(name1.c_str(), &st), 0) << "the planted file must survive";
    EXPECT_TRUE(fifo ? S_ISFIFO(st.st_mode) : S_ISLNK(st.st_mode));
    EXPECT_FALSE(fs::exists(dir / ".out.txt.0000000000000002.tmp"));  // renamed into place
  }
  fs::remove_all(dir);
}

TEST(WriteAtomic, TemporaryNamesAreRandomAndTheNewFileGetsTheUmaskMode) {
  const fs::path dir = temp_dir();
  std::vector<std::string> seen;  // the 16 hex digits of each name
  for (int i = 0; i < 4; ++i) {
    std::string tmp;
    write_output(dir / "out.txt", [&](std::ostream& o) {
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().ends_with(".tmp")) tmp = e.path().filename().string();
      o << "x";
    });
    // ".out.txt." + 16 hex digits + ".tmp" and nothing else (no process id, no counter)
    ASSERT_EQ(tmp.size(), std::string(".out.txt.0123456789abcdef.tmp").size()) << tmp;
    ASSERT_TRUE(tmp.starts_with(".out.txt.") && tmp.ends_with(".tmp")) << tmp;
    const std::string hex = tmp.substr(9, 16);
    EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << tmp;
    seen.push_back(hex);
    fs::remove(dir / "out.txt");
  }
  // Random 64-bit values differ in about 15 of 16 hex digits; a process id or a counter would
  // leave most of them equal from one name to the next. Fewer than 8 differing digits happens by
  // chance about once in 10^7 pairs. (A test that a name does not contain the process id failed
  // by chance once the pids wrapped to two and three digits.)
  for (std::size_t a = 0; a < seen.size(); ++a)
    for (std::size_t b = a + 1; b < seen.size(); ++b) {
      int differ = 0;
      for (int k = 0; k < 16; ++k) differ += seen[a][k] != seen[b][k];
      EXPECT_GE(differ, 8) << "no predictable part: " << seen[a] << " then " << seen[b];
    }
  const mode_t old = ::umask(027);
  write_output(dir / "new.txt", [](std::ostream& o) { o << "x"; });
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "new.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  fs::remove_all(dir);
}

TEST(WriteAtomic, AReadOnlyFileIsRefusedAndKept) {
  const fs::path dir = temp_dir();
  const fs::path ro = dir / "ro.txt";
  { std::ofstream(ro) << "keep\n"; }
  ASSERT_EQ(::chmod(ro.c_str(), 0444), 0);
  try {
    write_output(ro, [](std::ostream& o) { o << "new"; });
    FAIL() << "a read-only file was replaced";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
  }
  std::ifstream in(ro);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "keep");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

// The error of parsing one JSONL line (fails the test when it parses).
std::string line_error(const std::string& line) {
  try {
    JsonlReader::parse_line(line, "f.jsonl:1");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "parsed: " << line.substr(0, 80);
  return "";
}

TEST(JsonlBounds, NestedBracketsAreRefusedWithTheDepthLimitWhereverTheyAre) {
  const std::string deep(4 << 20, '[');  // 4 MiB of '[' (the issue's line was 64 MiB)
  for (const std::string& line : {deep, R"({"model_name":"m","frontend_tree":{"attrs":)" + deep,
                                  R"({"provenance":)" + deep, R"({"frontend_tree":{"skipped_field":)" + deep}) {
    const std::string e = line_error(line);
    EXPECT_EQ(e, "f.jsonl:1: the JSON nests deeper than 136 levels (a tree may nest 64 levels)") << e.substr(0, 200);
  }
}

TEST(JsonlBounds, TreesNestedOrCrowdedPastTheLimitsAreRefusedAndUnreadFieldsSkipped) {
  // A chain of 66 nodes: one level more than kMaxTreeDepth.
  std::string chain;
  for (int i = 0; i < 65; ++i)
    chain += fmt::format(R"({{"scope":"s{}","instance_type":"X","type":"module","flops":1,"mem_bytes":1,"child_nodes_obj":[)", i);
  chain += R"({"scope":"leaf","instance_type":"X","type":"ml","flops":1,"mem_bytes":1})";
  for (int i = 0; i < 65; ++i) chain += "]}";
  EXPECT_EQ(line_error(R"({"model_name":"m","batch_size":1,"seq_len":1,"frontend_tree":)" + chain + "}"),
            "f.jsonl:1: the tree nests deeper than 64 levels");
  // A node keeping too many values.
  std::string attrs;
  for (int i = 0; i < 5000; ++i) attrs += (i ? "," : "") + fmt::format(R"("a{}":1)", i);
  EXPECT_EQ(line_error(R"({"model_name":"m","batch_size":1,"seq_len":1,"frontend_tree":{"scope":"","instance_type":"X",)"
                       R"("type":"ml","flops":1,"mem_bytes":1,"attrs":{)" + attrs + "}}}"),
            "f.jsonl:1: a node (or the record) holds more than 4096 values");
  // Fields irene does not read are skipped however large; the tree is the same.
  const std::string base = R"({"model_name":"m","batch_size":2,"seq_len":3,"frontend_tree":{"scope":"","instance_type":"X","type":"ml","flops":1.5,"mem_bytes":2,"gpu":7)";
  const Tree plain = JsonlReader::parse_line(base + "}}", "x");
  std::string big = "[";
  for (int i = 0; i < 100000; ++i) big += (i ? ",[1,2]" : "[1,2]");
  big += "]";
  const Tree skipped = JsonlReader::parse_line(base + R"(,"notes":)" + big + R"(,"child_nodes":["a"]},"extra":)" + big + "}", "x");
  ASSERT_EQ(skipped.nodes.size(), 1u);
  EXPECT_EQ(skipped.nodes[0].flops_mflop, plain.nodes[0].flops_mflop);
  EXPECT_EQ(skipped.nodes[0].resources, plain.nodes[0].resources);
  EXPECT_EQ(skipped.batch_size, 2);
  EXPECT_EQ(line_error("[1,2]"), "f.jsonl:1: a tree record must be a JSON object");
  EXPECT_EQ(line_error(R"({"model_name":"m","frontend_tree":{"sc)"),
            "f.jsonl:1: not valid JSON (byte 39): the line is malformed or truncated");
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
