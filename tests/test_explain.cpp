// explain/: shares, hotspots, groups, intervals, compare and sweep on synthetic trees.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "irene/core/error.hpp"
#include "irene/core/tree.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/report.hpp"
#include "irene/explain/sweep.hpp"
#include "test_explain_util.hpp"

using namespace irene;
using namespace irene::explain;

using irene::test::expect_contains;
using irene::test::synthetic;

TEST(ExplainShares, ChildrenSharesSumToOneHundredPercentOfEveryParent) {
  const Tree t = synthetic(3, 7);
  const Explanation e = explain_tree(t);
  ASSERT_EQ(e.nodes.size(), t.nodes.size());
  int parents = 0;
  for (const Node& n : t.nodes) {
    if (n.is_leaf()) continue;
    ++parents;
    double sum = 0, sum_model = 0;
    for (int c : n.children) {
      sum += e.nodes[c].share_of_parent;
      sum_model += e.nodes[c].share_of_model;
    }
    EXPECT_NEAR(sum, 1.0, 1e-12) << n.id;
    // A parent's share of the model is handed down to its children whole.
    EXPECT_NEAR(sum_model, e.nodes[t.find_id(n.id)].share_of_model, 1e-12) << n.id;
  }
  EXPECT_GT(parents, 10);
  double leaves = 0;
  for (const Node& n : t.nodes)
    if (n.is_leaf()) leaves += e.nodes[t.find_id(n.id)].share_of_model;
  EXPECT_NEAR(leaves, 1.0, 1e-12);
}

TEST(ExplainShares, ShareOfParentIsProportionalToOwnEnergy) {
  const Tree t = synthetic(1, 3);
  const Explanation e = explain_tree(t);
  const Node& self = t.nodes[t.find_id("encoder.layer.0.attention.self:BertSelfAttention")];
  double sum = 0;
  for (int c : self.children) sum += *t.nodes[c].predicted_energy_j;
  for (int c : self.children)
    EXPECT_NEAR(e.nodes[c].share_of_parent, *t.nodes[c].predicted_energy_j / sum, 1e-12);
  // Attributed energy = share of model x total.
  for (const auto& x : e.nodes) EXPECT_NEAR(x.attributed.j, x.share_of_model * e.total.j, 1e-12);
}

TEST(ExplainShares, GroupsSumToTheModelAndMatchTheirLeaves) {
  const Tree t = synthetic(2, 11);
  const Explanation e = explain_tree(t);
  double prim = 0, kinds = 0, prim_j = 0;
  for (const auto& g : e.by_primitive) {
    prim += g.share;
    prim_j += g.attributed.j;
    double leaves = 0;
    int count = 0;
    for (const auto& x : e.nodes)
      if (t.nodes[x.index].is_leaf() && x.class_name == g.name) {
        leaves += x.attributed.j;
        ++count;
      }
    EXPECT_NEAR(g.attributed.j, leaves, 1e-12) << g.name;
    EXPECT_EQ(g.count, count) << g.name;
  }
  for (const auto& g : e.by_kind) kinds += g.share;
  EXPECT_NEAR(prim, 1.0, 1e-12);
  EXPECT_NEAR(kinds, 1.0, 1e-12);
  EXPECT_NEAR(prim_j, e.total.j, 1e-12);
  ASSERT_EQ(e.by_kind.size(), kModuleKinds);
  EXPECT_EQ(e.by_kind[0].name, "attention");
  EXPECT_EQ(e.by_kind[3].name, "norm");
  // Sorted by energy, largest first.
  for (std::size_t i = 1; i < e.by_primitive.size(); ++i)
    EXPECT_GE(e.by_primitive[i - 1].attributed.j, e.by_primitive[i].attributed.j);
}

TEST(ExplainShares, ZeroAndNegativeChildrenAreSplitSafely) {
  Tree t = synthetic(1, 5);
  const Node& self = t.nodes[t.find_id("encoder.layer.0.attention.self:BertSelfAttention")];
  const std::vector<int> kids = self.children;
  for (int c : kids) t.nodes[c].predicted_energy_j = 0.0;
  t.nodes[kids[0]].predicted_energy_j = -1.0;  // a linear regressor can go below zero
  const Explanation e = explain_tree(t);
  double sum = 0;
  for (int c : kids) {
    sum += e.nodes[c].share_of_parent;
    EXPECT_GE(e.nodes[c].share_of_parent, 0.0);
  }
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

TEST(ExplainHotspots, TopLeavesInDescendingOrder) {
  const Tree t = synthetic(2, 9);
  ExplainOptions opt;
  opt.top = 5;
  const Explanation e = explain_tree(t, opt);
  ASSERT_EQ(e.hotspots.size(), 5u);
  double min_top = 1e300;
  for (std::size_t i = 0; i < e.hotspots.size(); ++i) {
    EXPECT_TRUE(t.nodes[e.hotspots[i]].is_leaf());
    if (i) EXPECT_GE(e.nodes[e.hotspots[i - 1]].attributed.j, e.nodes[e.hotspots[i]].attributed.j);
    min_top = std::min(min_top, e.nodes[e.hotspots[i]].attributed.j);
  }
  for (const auto& x : e.nodes)
    if (t.nodes[x.index].is_leaf() &&
        std::find(e.hotspots.begin(), e.hotspots.end(), x.index) == e.hotspots.end())
      EXPECT_LE(x.attributed.j, min_top);
}

TEST(ExplainIntervals, EveryEnergyIntervalContainsItsPointEstimate) {
  Tree t = synthetic(2, 13);
  // A ratio-quantile interval may lie wholly above the estimate: it must be widened.
  t.nodes[3].predicted_interval = Interval{*t.nodes[3].predicted_energy_j * 1.1, *t.nodes[3].predicted_energy_j * 1.5};
  const Explanation e = explain_tree(t);
  expect_contains(e.total, "total");
  for (const auto& x : e.nodes) {
    expect_contains(x.own, x.id + " own");
    expect_contains(x.attributed, x.id + " attributed");
  }
  for (const auto& g : e.by_primitive) expect_contains(g.attributed, g.name);
  for (const auto& g : e.by_kind)
    if (g.count) expect_contains(g.attributed, g.name);
  // The interval as given is kept alongside.
  EXPECT_NEAR(e.nodes[3].interval->low_j, *t.nodes[3].predicted_energy_j * 1.1, 1e-15);
  // Text and JSON show the interval of every energy.
  std::ostringstream text;
  TextOptions all;
  all.depth = -1;
  all.expand = true;
  write_text(text, e, all);
  EXPECT_EQ(text.str().find("no interval"), std::string::npos);
  const auto j = to_json(e);
  for (const auto& n : j["nodes"]) {
    EXPECT_FALSE(n["energy"]["low_j"].is_null());
    EXPECT_LE(n["energy"]["low_j"].get<double>(), n["energy"]["j"].get<double>());
    EXPECT_GE(n["energy"]["high_j"].get<double>(), n["energy"]["j"].get<double>());
  }
}

TEST(ExplainIntervals, MissingIntervalsAreSaidSo) {
  const Tree t = synthetic(1, 13, 1.0, /*intervals=*/false);
  const Explanation e = explain_tree(t);
  std::ostringstream text;
  write_text(text, e);
  EXPECT_NE(text.str().find("[no interval]"), std::string::npos);
  EXPECT_TRUE(to_json(e)["total"]["low_j"].is_null());
}

TEST(ExplainKinds, ClassifiesTransformerBlocks) {
  EXPECT_EQ(module_kind("encoder.layer.0.attention.self.query", "Linear"), ModuleKind::attention);
  EXPECT_EQ(module_kind("encoder.layer.0.attention.output.dense", "Linear"), ModuleKind::attention);
  EXPECT_EQ(module_kind("encoder.layer.0.attention.self", "MatMul"), ModuleKind::attention);
  EXPECT_EQ(module_kind("encoder.layer.3.intermediate.dense", "Linear"), ModuleKind::feed_forward);
  EXPECT_EQ(module_kind("encoder.layer.3.output.LayerNorm", "LayerNorm"), ModuleKind::norm);
  EXPECT_EQ(module_kind("h.0.ln_1", "LayerNorm"), ModuleKind::norm);
  EXPECT_EQ(module_kind("transformer.layer.0.sa_layer_norm", "LayerNorm"), ModuleKind::norm);
  EXPECT_EQ(module_kind("model.layers.0.input_layernorm", "LlamaRMSNorm"), ModuleKind::norm);
  EXPECT_EQ(module_kind("lm_head", "Linear"), ModuleKind::lm_head);
  EXPECT_EQ(module_kind("cls.predictions.transform.dense", "Linear"), ModuleKind::lm_head);
  EXPECT_EQ(module_kind("vocab_projector", "Linear"), ModuleKind::lm_head);
  EXPECT_EQ(module_kind("embed_out", "Linear"), ModuleKind::lm_head);
  EXPECT_EQ(module_kind("model.decoder.layers.3.fc1", "Linear"), ModuleKind::feed_forward);
  EXPECT_EQ(module_kind("model.decoder.layers.3.activation_fn", "ReLU"), ModuleKind::feed_forward);
  EXPECT_EQ(module_kind("model.layers.2.self_attn.o_proj", "Linear"), ModuleKind::attention);
  EXPECT_EQ(module_kind("model.embed_tokens", "Embedding"), ModuleKind::embeddings);
  EXPECT_EQ(module_kind("h.0.attn.c_attn", "Conv1D"), ModuleKind::attention);
  EXPECT_EQ(module_kind("h.0.mlp.c_fc", "Conv1D"), ModuleKind::feed_forward);
  EXPECT_EQ(module_kind("transformer.layer.1.ffn.lin1", "Linear"), ModuleKind::feed_forward);
  EXPECT_EQ(module_kind("embeddings.word_embeddings", "Embedding"), ModuleKind::embeddings);
  EXPECT_EQ(module_kind("wte", "Embedding"), ModuleKind::embeddings);
  EXPECT_EQ(module_kind("w", "Embedding"), ModuleKind::embeddings);
  EXPECT_EQ(module_kind("pooler.dense", "Linear"), ModuleKind::other);
  EXPECT_EQ(module_kind("", "BertModel"), ModuleKind::other);
}

TEST(ExplainBasis, FallsBackToMeasuredAndRejectsTreesWithoutEnergy) {
  Tree t = synthetic(1, 2);
  for (auto& n : t.nodes) {
    n.ground_truth_energy_j = n.predicted_energy_j;
    n.predicted_energy_j.reset();
    n.predicted_interval.reset();
  }
  const Explanation e = explain_tree(t);
  EXPECT_EQ(e.basis, Basis::measured);
  EXPECT_DOUBLE_EQ(e.total.j, *t.root().ground_truth_energy_j);
  ExplainOptions opt;
  opt.basis = Basis::predicted;
  EXPECT_THROW(explain_tree(t, opt), Error);
  for (auto& n : t.nodes) n.ground_truth_energy_j.reset();
  try {
    explain_tree(t);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("toy-bert/8/32"), std::string::npos) << err.what();
  }
  EXPECT_THROW(explain_tree(Tree{}), Error);
}

TEST(ExplainBasis, PredictedAgainstMeasuredIsReported) {
  Tree t = synthetic(1, 4);
  for (auto& n : t.nodes) n.ground_truth_energy_j = *n.predicted_energy_j * 1.25;
  const Explanation e = explain_tree(t);
  EXPECT_EQ(e.basis, Basis::predicted);
  ASSERT_TRUE(e.measured_total_j);
  std::ostringstream text;
  write_text(text, e);
  EXPECT_NE(text.str().find("-20.0%"), std::string::npos) << text.str();  // 1/1.25 - 1
  for (const auto& g : e.by_primitive) EXPECT_TRUE(g.measured_j.has_value());
}

TEST(ExplainCompare, ModelWithItselfIsZeroEverywhere) {
  const Tree t = synthetic(2, 21);
  const Comparison c = compare(t, t);
  ASSERT_EQ(c.nodes.size(), t.nodes.size());
  for (const auto& d : c.nodes) {
    EXPECT_EQ(d.status, DiffStatus::both) << d.id;
    EXPECT_EQ(d.diff.j, 0.0) << d.id;
    ASSERT_TRUE(d.diff.interval) << d.id;
    EXPECT_EQ(d.diff.interval->low_j, 0.0) << d.id;
    EXPECT_EQ(d.diff.interval->high_j, 0.0) << d.id;
    ASSERT_TRUE(d.change_pct) << d.id;
    EXPECT_EQ(*d.change_pct, 0.0) << d.id;
  }
  for (const auto& g : c.by_kind) EXPECT_EQ(g.diff.j, 0.0) << g.name;
  for (const auto& g : c.by_primitive) EXPECT_EQ(g.diff.j, 0.0) << g.name;
  EXPECT_EQ(c.total.diff.j, 0.0);
  const auto j = to_json(c);
  for (const auto& n : j["nodes"]) EXPECT_EQ(n["diff"]["j"].get<double>(), 0.0);
}

TEST(ExplainCompare, AlignsByScopeAndReportsRemovedAndAddedNodes) {
  const Tree a = synthetic(3, 21);
  Tree b = synthetic(2, 21);  // same energies draw order for the shared prefix is not assumed
  b.model_name = "toy-bert-2";
  const Comparison c = compare(a, b);
  int removed = 0, added = 0;
  for (const auto& d : c.nodes) {
    if (d.status == DiffStatus::removed) {
      ++removed;
      EXPECT_NE(d.scope.find("encoder.layer.2"), std::string::npos) << d.id;
      EXPECT_FALSE(d.b);
      EXPECT_DOUBLE_EQ(d.diff.j, -d.a->j);
      expect_contains(d.diff, d.id);
    }
    if (d.status == DiffStatus::added) ++added;
  }
  EXPECT_EQ(removed, 17);  // every node of layer 2: layer, attention, self + 6, output + 2, intermediate + 1, output + 2
  EXPECT_EQ(added, 0);
  // Reverse direction: the layer is added.
  const Comparison r = compare(b, a);
  int added_r = 0;
  for (const auto& d : r.nodes) added_r += d.status == DiffStatus::added;
  EXPECT_EQ(added_r, 17);
  // Totals and percent change.
  EXPECT_DOUBLE_EQ(c.total.diff.j, *b.root().predicted_energy_j - *a.root().predicted_energy_j);
  EXPECT_NEAR(*c.total.change_pct, 100.0 * c.total.diff.j / *a.root().predicted_energy_j, 1e-9);
}

TEST(ExplainCompare, ScaledEnergiesChangeByTheScaleWithIntervalsAroundIt) {
  const Tree a = synthetic(2, 8, 1.0);
  const Tree b = synthetic(2, 8, 2.0);
  const Comparison c = compare(a, b);
  for (const auto& d : c.nodes) {
    ASSERT_EQ(d.status, DiffStatus::both);
    EXPECT_NEAR(*d.change_pct, 100.0, 1e-9) << d.id;
    expect_contains(d.diff, d.id);
  }
  for (const auto& g : c.by_kind) {
    if (g.a.j > 0) EXPECT_NEAR(*g.change_pct, 100.0, 1e-9);
    expect_contains(g.diff, g.name);
  }
  std::ostringstream text;
  write_text(text, c, 5);
  EXPECT_NE(text.str().find("+100.00%"), std::string::npos) << text.str();
}

TEST(ExplainCompare, RejectsTreesWithoutCommonEnergies) {
  Tree a = synthetic(1, 1);
  Tree b = synthetic(1, 1);
  for (auto& n : b.nodes) n.predicted_energy_j.reset();
  EXPECT_THROW(compare(a, b), Error);
}

TEST(ExplainSweepRange, ParsesSingleValuesRangesAndLists) {
  EXPECT_EQ(parse_range("8", "--batch", 1024), std::vector<int>{8});
  const auto r = parse_range("32:512:32", "--seq", 4096);
  ASSERT_EQ(r.size(), 16u);
  EXPECT_EQ(r.front(), 32);
  EXPECT_EQ(r.back(), 512);
  EXPECT_EQ(parse_range("30:40:7", "--seq", 4096), (std::vector<int>{30, 37}));
  EXPECT_EQ(parse_range("3:5", "--seq", 4096), (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(parse_range("8,16,64", "--seq", 4096), (std::vector<int>{8, 16, 64}));
}

TEST(ExplainSweepRange, RejectsBadRangesWithAClearMessage) {
  for (const char* bad : {"", "x", "0", "-8", "32:16", "32:64:0", "32:64:-4", "1:2:3:4", "8,,16", "8,x",
                          "5000", "1:100000", "12abc", "32:"}) {
    try {
      parse_range(bad, "--seq", 4096);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad --seq range"), std::string::npos) << e.what();
    }
  }
}

TEST(ExplainSweep, PointsPerLevelAndKindWithIntervalsAndCsv) {
  const auto seqs = parse_range("32:128:32", "--seq", 4096);
  int calls = 0, last_progress = 0;
  const auto points = sweep(
      [&](int b, int s) {
        ++calls;
        Tree t = synthetic(2, 5, s / 32.0 * b / 8.0);
        t.batch_size = b;
        t.seq_len = s;
        return t;
      },
      {8}, seqs, [&](int done, int total) {
        EXPECT_EQ(total, 4);
        last_progress = done;
      });
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(last_progress, 4);
  ASSERT_EQ(points.size(), 4u);
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    EXPECT_EQ(p.seq_len, seqs[i]);
    EXPECT_NEAR(p.model.j, points[0].model.j * (i + 1), 1e-12);
    expect_contains(p.model, "model");
    expect_contains(p.modules, "modules");
    expect_contains(p.ml, "ml");
    double kinds = 0;
    for (const auto& k : p.kinds) kinds += k.j;
    EXPECT_NEAR(kinds, p.model.j, 1e-12);  // kinds partition the model's energy
  }
  std::ostringstream csv;
  write_sweep_csv(csv, points);
  std::istringstream lines(csv.str());
  std::string header, line;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("model,batch,seq,model_j,model_low_j,model_high_j", 0), 0u);
  EXPECT_NE(header.find("feed_forward_j"), std::string::npos);
  const auto columns = std::count(header.begin(), header.end(), ',');
  int rows = 0;
  while (std::getline(lines, line)) {
    ++rows;
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), columns) << line;
  }
  EXPECT_EQ(rows, 4);
  std::ostringstream table;
  write_sweep_table(table, points);
  EXPECT_NE(table.str().find("attention"), std::string::npos);
  EXPECT_EQ(to_json(points).size(), 4u);
}

TEST(ExplainSweep, RejectsTooManyPoints) {
  const auto many = parse_range("1:1000", "--seq", 4096);
  EXPECT_THROW(sweep([](int, int) { return synthetic(1); }, {1, 2}, many), Error);
}

TEST(ExplainReport, EmbeddedDataCannotCloseItsScriptElement) {
  Tree t = synthetic(1, 2);
  t.model_name = "</script><script>alert(1)</script>";
  const std::string html = render_report({t});
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("{{IRENE_"), std::string::npos);
  const auto begin = html.find("<script id=\"irene-data\" type=\"application/json\">");
  ASSERT_NE(begin, std::string::npos);
  const auto start = html.find('>', begin) + 1;
  const auto data = nlohmann::json::parse(html.substr(start, html.find("</script>", start) - start));
  EXPECT_EQ(data["trees"][0]["model_name"], t.model_name);  // and the name survives intact
  EXPECT_TRUE(data["sweep"].is_null());                     // one tree: no sweep
  // The title is HTML-escaped.
  EXPECT_NE(html.find("&lt;/script&gt;"), std::string::npos);
}

TEST(ExplainReport, SeveralPointsOfOneModelMakeASweep) {
  std::vector<Tree> trees;
  for (int s : {32, 64, 96}) {
    Tree t = synthetic(1, 2, s / 32.0);
    t.seq_len = s;
    trees.push_back(t);
  }
  const auto data = report_data(trees);
  ASSERT_TRUE(data["sweep"].is_array());
  EXPECT_EQ(data["sweep"].size(), 3u);
  EXPECT_EQ(data["trees"].size(), 3u);
  EXPECT_THROW(report_data({}), Error);
}
