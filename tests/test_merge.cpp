// irene data merge: shards of a collection joined into one dataset.
#include <gtest/gtest.h>

#include <cmath>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/data/merge.hpp"
#include "irene/explain/pipeline.hpp"
#include "test_util.hpp"

namespace {

using namespace irene;
using irene_test::fresh_dir;
using irene_test::run_irene;
namespace fs = std::filesystem;

Tree measured(int batch, int seq, const std::string& hardware) {
  Tree t = build_tree(load_model_config("distilgpt2"), batch, seq);
  t.provenance["hardware"] = hardware;
  t.root().ground_truth_energy_j = 1.0 * batch * seq;
  return t;
}

TEST(Merge, JoinsShardsInOrderEachTreeOnce) {
  const fs::path d = fresh_dir("merge");
  write_jsonl(d / "a.jsonl", {measured(1, 8, "cpu X"), measured(1, 16, "cpu X")});
  write_jsonl(d / "b.jsonl", {measured(2, 8, "cpu X")});
  const auto r = run_irene("data merge " + (d / "a.jsonl").string() + " " + (d / "b.jsonl").string() + " -o " +
                           (d / "all.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("merged 3 trees from 2 files"), std::string::npos) << r.output;
  const auto all = read_jsonl(d / "all.jsonl");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].key(), "distilgpt2/1/8");
  EXPECT_EQ(all[2].key(), "distilgpt2/2/8");
  EXPECT_EQ(*all[2].root().ground_truth_energy_j, 16.0);
}

TEST(Merge, RefusesDuplicatesAndMixedHardwareUnlessAllowed) {
  const fs::path d = fresh_dir("merge");
  write_jsonl(d / "a.jsonl", {measured(1, 8, "cpu X")});
  write_jsonl(d / "dup.jsonl", {measured(1, 8, "cpu X")});
  write_jsonl(d / "other.jsonl", {measured(4, 8, "gpu Y")});
  auto r = run_irene("data merge " + (d / "a.jsonl").string() + " " + (d / "dup.jsonl").string() + " -o " +
                     (d / "x.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("tree distilgpt2/1/8 is already in"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "x.jsonl"));
  r = run_irene("data merge " + (d / "a.jsonl").string() + " " + (d / "other.jsonl").string() + " -o " +
                (d / "x.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("different hardware: 'cpu X'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'gpu Y'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "x.jsonl"));
  r = run_irene("data merge --allow-mixed " + (d / "a.jsonl").string() + " " + (d / "other.jsonl").string() + " -o " +
                (d / "x.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_jsonl(d / "x.jsonl").size(), 2u);
  r = run_irene("data merge " + (d / "a.jsonl").string() + " -o " + (d / "a.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("is also an input"), std::string::npos) << r.output;
  r = run_irene("data merge /dev/zero -o " + (d / "y.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("is a device"), std::string::npos) << r.output;
}

// One pass of a collection: the tree's root took `root_s` seconds, its first leaf `leaf_s`, and
// the root measured `joules`.
Tree pass(int batch, double root_s, double leaf_s, double joules) {
  Tree t = measured(batch, 8, "cpu X");
  t.root().resources["times_mean"] = root_s;
  t.root().resources["times_spread"] = 0.01;
  t.root().ground_truth_energy_j = joules;
  for (auto& n : t.nodes)
    if (n.is_leaf()) {
      n.resources["times_mean"] = leaf_s;
      break;
    }
  return t;
}

const Node& first_leaf(const Tree& t) {
  for (const auto& n : t.nodes)
    if (n.is_leaf()) return n;
  throw std::runtime_error("no leaf");
}

TEST(Merge, MedianOfRepeatedPassesNodeByNode) {
  const fs::path d = fresh_dir("merge");
  // Three passes of the same collection; batch 2 only in the first (an unfinished later pass).
  write_jsonl(d / "p1.jsonl", {pass(1, 1.0, 0.5, 10), pass(2, 7.0, 0.7, 70)});
  write_jsonl(d / "p2.jsonl", {pass(1, 3.0, 0.1, 30)});
  write_jsonl(d / "p3.jsonl", {pass(1, 2.0, 0.3, 20)});
  const auto r = run_irene("data merge --median " + (d / "p1.jsonl").string() + " " + (d / "p2.jsonl").string() +
                           " " + (d / "p3.jsonl").string() + " -o " + (d / "all.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("merged 2 trees (1 measured more than once: median per node) from 3 files"),
            std::string::npos)
      << r.output;
  const auto all = read_jsonl(d / "all.jsonl");
  ASSERT_EQ(all.size(), 2u);
  const Tree& t = all[0];
  EXPECT_EQ(t.key(), "distilgpt2/1/8");
  EXPECT_DOUBLE_EQ(t.root().resources.at("times_mean"), 2.0);
  EXPECT_DOUBLE_EQ(*t.root().ground_truth_energy_j, 20.0);
  EXPECT_DOUBLE_EQ(t.root().resources.at("repeats"), 3.0);
  // stddev / mean of 1, 2, 3 seconds
  EXPECT_NEAR(t.root().resources.at("times_repeat_spread"), std::sqrt(2.0 / 3.0) / 2.0, 1e-12);
  EXPECT_DOUBLE_EQ(t.root().resources.at("times_spread"), 0.01);
  EXPECT_DOUBLE_EQ(first_leaf(t).resources.at("times_mean"), 0.3);  // median of 0.5, 0.1, 0.3
  EXPECT_NE(t.provenance.at("repeats").find("3 measurements of this tree"), std::string::npos);
  EXPECT_NE(t.provenance.at("repeats").find("p2.jsonl:1"), std::string::npos);
  // Measured once: kept as it was.
  EXPECT_EQ(all[1].key(), "distilgpt2/2/8");
  EXPECT_DOUBLE_EQ(all[1].root().resources.at("times_mean"), 7.0);
  EXPECT_EQ(all[1].root().resources.count("repeats"), 0u);
  // Two repeats: the mean of the two.
  const auto r2 = run_irene("data merge --median " + (d / "p1.jsonl").string() + " " + (d / "p2.jsonl").string() +
                            " -o " + (d / "two.jsonl").string());
  ASSERT_EQ(r2.status, 0) << r2.output;
  EXPECT_DOUBLE_EQ(read_jsonl(d / "two.jsonl")[0].root().resources.at("times_mean"), 2.0);
}

TEST(Merge, MedianRefusesRepeatsThatAreNotTheSameTree) {
  const fs::path d = fresh_dir("merge");
  write_jsonl(d / "p1.jsonl", {pass(1, 1.0, 0.5, 10)});
  Tree smaller = build_tree(irene::explain::load_config_with_overrides("distilgpt2", {"n_layer=1"}), 1, 8);
  smaller.provenance["hardware"] = "cpu X";
  smaller.root().resources["times_mean"] = 0.5;
  write_jsonl(d / "p2.jsonl", {smaller});
  auto r = run_irene("data merge --median " + (d / "p1.jsonl").string() + " " + (d / "p2.jsonl").string() + " -o " +
                     (d / "x.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("p2.jsonl:1: tree distilgpt2/1/8 has"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("repeats must be the same tree"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "x.jsonl"));
  // One pass holding a tree twice is not a repeat.
  write_jsonl(d / "twice.jsonl", {pass(1, 1.0, 0.5, 10), pass(1, 2.0, 0.5, 10)});
  r = run_irene("data merge --median " + (d / "twice.jsonl").string() + " -o " + (d / "x.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("twice.jsonl:2: tree distilgpt2/1/8 is already in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("one pass measures each tree once"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "x.jsonl"));
  // Mixed hardware is refused in this mode too.
  Tree other = pass(1, 2.0, 0.5, 10);
  other.provenance["hardware"] = "gpu Y";
  write_jsonl(d / "other.jsonl", {other});
  r = run_irene("data merge --median " + (d / "p1.jsonl").string() + " " + (d / "other.jsonl").string() + " -o " +
                (d / "x.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("different hardware"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "x.jsonl"));
}

}  // namespace
