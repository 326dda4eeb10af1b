// The node-level H200 collection (data/gpu-h200) and the split comparison that checks a predictor's
// "where the joules go" against measured trees (explain/splits.hpp, irene evaluate --by-kind).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/explain/splits.hpp"
#include "test_util.hpp"

using namespace irene;
using namespace irene_test;

namespace {

// A tiny Llama decode step whose leaves are "measured" as their MFLOP and predicted the same way,
// parents the sums of their children.
Tree measured_and_predicted_tree(double attention_factor) {
  auto cfg = load_model_config("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  set_config_values(cfg, {{"num_hidden_layers", "2"}});
  BuildOptions o;
  o.phase = kDecode;
  o.past = 64;
  Tree t = build_tree(cfg, 2, 1, o);
  for (int i = static_cast<int>(t.nodes.size()) - 1; i >= 0; --i) {
    Node& n = t.nodes[i];
    if (n.is_leaf()) {
      const double j = 1e-3 * (1.0 + n.flops_mflop);
      n.ground_truth_energy_j = j;
      n.predicted_energy_j = j * (n.scope.find("self_attn") != std::string::npos ? attention_factor : 1.0);
    } else {
      double g = 0, p = 0;
      for (int c : n.children) {
        g += *t.nodes[c].ground_truth_energy_j;
        p += *t.nodes[c].predicted_energy_j;
      }
      n.ground_truth_energy_j = g;
      n.predicted_energy_j = p;
    }
  }
  return t;
}

const explain::KindSplit& kind(const explain::TreeSplit& t, const std::string& name) {
  for (const auto& k : t.kinds)
    if (k.kind == name) return k;
  throw std::runtime_error("no kind " + name);
}

}  // namespace

TEST(KindSplits, EqualSplitsAgreeAndAHeavierAttentionShowsInItsShare) {
  const Tree same = measured_and_predicted_tree(1.0);
  auto c = explain::compare_kind_splits({same}, {same});
  ASSERT_EQ(c.trees.size(), 1u);
  EXPECT_NEAR(c.root_mape, 0.0, 1e-9);
  double measured_sum = 0;
  for (const auto& k : c.trees[0].kinds) {
    EXPECT_NEAR(k.measured_share, k.predicted_share, 1e-12) << k.kind;
    measured_sum += k.measured_share;
  }
  EXPECT_NEAR(measured_sum, 1.0, 1e-9);
  EXPECT_GT(kind(c.trees[0], "attention").measured_share, 0.0);

  // Predicting the attention twice as heavy: its predicted share rises, the others fall, the root
  // is over-predicted, and the mean share differences say by how much.
  const Tree heavier = measured_and_predicted_tree(2.0);
  c = explain::compare_kind_splits({same}, {heavier});
  const auto& a = kind(c.trees[0], "attention");
  EXPECT_GT(a.predicted_share, a.measured_share + 0.01);
  EXPECT_LT(kind(c.trees[0], "feed-forward").predicted_share, kind(c.trees[0], "feed-forward").measured_share);
  EXPECT_GT(c.trees[0].predicted_j, c.trees[0].measured_j);
  EXPECT_NEAR(c.root_mape, 100.0 * (c.trees[0].predicted_j / c.trees[0].measured_j - 1.0), 1e-9);
  ASSERT_EQ(c.by_phase.size(), 1u);
  EXPECT_EQ(c.by_phase[0].first, "decode");
  for (const auto& s : c.overall)
    if (s.kind == "attention") EXPECT_NEAR(s.abs_diff_pp, 100.0 * (a.predicted_share - a.measured_share), 1e-9);
}

TEST(KindSplits, TreesWithoutMeasuredRootAreLeftOutAndNothingToCompareIsAnError) {
  Tree gold = measured_and_predicted_tree(1.0);
  const Tree pred = gold;
  gold.nodes[0].ground_truth_energy_j.reset();
  EXPECT_NE(error_of([&] { explain::compare_kind_splits({gold}, {pred}, "g.jsonl", "p.jsonl"); })
                .find("g.jsonl: no tree with a measured root energy has a prediction in p.jsonl"),
            std::string::npos);
  Tree other = pred;
  other.batch_size = 3;
  const Tree measured = measured_and_predicted_tree(1.0);
  EXPECT_NE(error_of([&] { explain::compare_kind_splits({measured}, {other}, "g.jsonl", "p.jsonl"); })
                .find("p.jsonl: no tree of g.jsonl is in it"),
            std::string::npos);
  const auto c = explain::compare_kind_splits({gold, measured_and_predicted_tree(1.0)}, {pred});
  EXPECT_EQ(c.unmeasured_roots, 1);
  EXPECT_EQ(c.trees.size(), 1u);
}

namespace {

// The H200 collection as irene JSONL: the trees of scripts/gpu-trees.sh with the committed node
// rows put back by scripts/gpu-collect.py import.
fs::path gpu_dataset(const fs::path& dir) {
  const std::string src = std::getenv("IRENE_SOURCE_DIR") ? std::getenv("IRENE_SOURCE_DIR") : ".";
  const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const fs::path trees = dir / "trees.jsonl", out = dir / "h200.jsonl";
  const auto r = run_shell("cd '" + src + "' && scripts/gpu-trees.sh '" + IRENE_BINARY + "' '" + trees.string() +
                           "' 2>&1 && " + py + " scripts/gpu-collect.py import --trees '" + trees.string() +
                           "' --csv data/gpu-h200/nodes.csv --provenance data/gpu-h200/provenance.json --out '" +
                           out.string() + "' 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  return out;
}

double per_token(const Tree& t, const Node& n) {
  return *n.ground_truth_energy_j / (t.batch_size * (t.phase == kDecode ? 1 : t.seq_len));
}

}  // namespace

TEST(GpuData, TheH200CollectionRebuildsAndIsPhysicallyConsistent) {
  const fs::path dir = fresh_dir("gpu");
  const auto trees = read_jsonl(gpu_dataset(dir));
  ASSERT_EQ(trees.size(), 33u);  // 3 models x (8 decode steps + 3 prefills)
  int moved = 0;
  std::map<std::string, std::map<int, double>> layer_per_token;  // model|past -> batch -> J/token
  for (const auto& t : trees) {
    EXPECT_EQ(t.dtype, "bfloat16");
    EXPECT_EQ(t.provenance.at("gpu"), "NVIDIA H200");
    EXPECT_NE(t.provenance.at("sensor").find("nvml"), std::string::npos);
    const bool levels_moved = t.provenance.count("levels") > 0;
    moved += levels_moved;
    // Every node but (on trees whose levels disagree) the root and the model is measured, and
    // every layer carries layer 0's measurement.
    std::map<std::string, double> layer0;
    for (const auto& n : t.nodes) {
      const bool top = n.scope.empty() || n.scope == "model";
      if (levels_moved && top) {
        EXPECT_FALSE(n.ground_truth_energy_j.has_value()) << n.id;
        EXPECT_TRUE(n.resources.count("capture_path_energy")) << n.id;
        continue;
      }
      ASSERT_TRUE(n.ground_truth_energy_j.has_value()) << t.key() << " " << n.id;
      EXPECT_GT(*n.ground_truth_energy_j, 0.0);
      EXPECT_GT(n.resources.at("times_mean"), 0.0);
      const auto at = n.scope.find(".layers.");
      if (at == std::string::npos) continue;
      std::string rest = n.scope.substr(at + 8);
      const auto digits_end = rest.find_first_not_of("0123456789");
      rest = digits_end == std::string::npos ? "" : rest.substr(digits_end);
      const auto key = rest + "|" + n.class_name;
      if (n.scope.rfind("model.layers.0", 0) == 0 && (n.scope.size() == 14 || n.scope[14] == '.'))
        layer0[key] = *n.ground_truth_energy_j;
      else if (layer0.count(key))
        EXPECT_EQ(*n.ground_truth_energy_j, layer0[key]) << n.id;
    }
    // A parent measured on its children's path is within 25% of their sum plus its own operations
    // (a decoder layer's own operations are two residual additions).
    for (const auto& n : t.nodes) {
      if (n.class_name.find("DecoderLayer") == std::string::npos) continue;
      double kids = 0;
      for (int c : n.children) kids += *t.nodes[c].ground_truth_energy_j;
      EXPECT_NEAR(*n.ground_truth_energy_j / kids, 1.0, 0.25) << t.key() << " " << n.id;
      if (t.phase == kDecode && n.scope == "model.layers.0")
        layer_per_token[t.model_name + "|" + std::to_string(t.past_len)][t.batch_size] = per_token(t, n);
    }
    if (!levels_moved) {
      double kids = 0;
      for (int c : t.nodes[0].children) kids += *t.nodes[c].ground_truth_energy_j;
      EXPECT_NEAR(*t.nodes[0].ground_truth_energy_j / kids, 1.0, 0.1) << t.key();
    }
  }
  EXPECT_EQ(moved, 15);  // the decode steps with large caches (data/gpu-h200/README.md)
  // Batching pays: a decoder layer's measured energy per generated token falls with the batch at
  // every context length of every model.
  ASSERT_EQ(layer_per_token.size(), 6u);
  for (const auto& [what, by_batch] : layer_per_token) {
    double last = INFINITY;
    for (const auto& [batch, j] : by_batch) {
      EXPECT_LT(j, last) << what << " batch " << batch;
      last = j;
    }
  }
}

TEST(GpuData, LeaveOneModelOutOnTheH200BeatsTheBaselinesAndEvaluateComparesTheSplit) {
  const fs::path dir = fresh_dir("gpucv");
  const fs::path data = gpu_dataset(dir);
  const std::string src = std::getenv("IRENE_SOURCE_DIR") ? std::getenv("IRENE_SOURCE_DIR") : ".";
  auto r = run_irene("crossval '" + data.string() + "' --config '" + src + "/configs/gpu-energy.json' -q --format json " +
                     "--predictions '" + (dir / "cv.jsonl").string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  const double model = j["overall"]["model"].get<double>(), module = j["overall"]["module"].get<double>();
  for (const char* b : {"exact_one", "unstructured", "flops"}) {
    EXPECT_LT(model, j["baselines"][b]["model"].get<double>()) << b;
    EXPECT_LT(module, j["baselines"][b]["module"].get<double>()) << b;
  }
  r = run_irene("evaluate '" + data.string() + "' '" + (dir / "cv.jsonl").string() + "' --by-kind --format json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto e = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  ASSERT_TRUE(e.contains("by_kind"));
  EXPECT_EQ(e["by_kind"]["trees"].size(), 18u);  // crossval predicts the trees with a measured root
  EXPECT_NEAR(e["by_kind"]["root_mape_pct"].get<double>(), e["model"].get<double>(), 1e-6);
  // Predictions of every tree (the shipped predictor): the 15 without a measured root are counted.
  r = run_irene("predict '" + data.string() + "' -o '" + (dir / "all.jsonl").string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_irene("evaluate '" + data.string() + "' '" + (dir / "all.jsonl").string() + "' --by-kind --format json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto all = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(all["by_kind"]["trees"].size(), 18u);
  EXPECT_EQ(all["by_kind"]["unmeasured_roots"].get<int>(), 15);
  r = run_irene("evaluate '" + data.string() + "' '" + (dir / "cv.jsonl").string() + "' --by-kind");
  EXPECT_NE(r.output.find("mean |predicted - measured| share, percentage points"), std::string::npos) << r.output;
  // Nothing to compare: one line naming the file.
  const fs::path empty = dir / "none.jsonl";
  write_text(empty, "");
  r = run_irene("evaluate '" + data.string() + "' '" + empty.string() + "' --by-kind");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("irene: error:"), std::string::npos) << r.output;
}
