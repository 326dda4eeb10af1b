// irene data merge: shards of a collection joined into one dataset.
#include <gtest/gtest.h>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/data/merge.hpp"
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

}  // namespace
