// Explanations that add up and read well: one node energy in every view, sums that add up to
// what they are shown against, grouped hotspots, overrides named, numbers with units.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/report.hpp"
#include "irene/explain/server.hpp"
#include "irene/explain/sweep.hpp"
#include "irene/explain/units.hpp"
#include "irene/predict/predictor.hpp"
#include "test_util.hpp"

namespace {

using namespace irene;
using namespace irene::explain;
using irene_test::run_irene;
using nlohmann::json;

const Predictor& shipped() {
  static const Predictor p = Predictor::load_default();
  return p;
}

Tree predicted(const std::string& model, int batch, int seq,
               const std::vector<std::pair<std::string, std::string>>& overrides = {}) {
  ModelConfig c = load_model_config(model);
  if (!overrides.empty()) set_config_values(c, overrides);
  return predicted_tree(c, batch, seq, shipped());
}

TEST(Units, SignificantDigitsWithSiPrefixes) {
  EXPECT_EQ(joules(2.58456e6), "2.585 MJ");
  EXPECT_EQ(joules(0.0824485), "82.45 mJ");
  EXPECT_EQ(joules(14.7181), "14.72 J");
  EXPECT_EQ(joules(0.99999), "1.000 J");  // rounds up into the next prefix, never "1000 mJ"
  EXPECT_EQ(joules(-0.5), "-500.0 mJ");
  EXPECT_EQ(joules(0), "0 J");
  EXPECT_EQ(mflop_text(179483.4432), "179.5 GFLOP");
  EXPECT_EQ(mflop_text(12.5), "12.50 MFLOP");
  EXPECT_EQ(mib_text(4737.38), "4.626 GiB");
  EXPECT_EQ(mib_text(0.375977), "385.0 KiB");
  EXPECT_EQ(count_text(124439808), "124.4 M");
  EXPECT_EQ(count_text(6738415616.0), "6.738 B");
  const ColumnUnit u = column_unit({0.004, 0.25, 0.9}, "J");
  EXPECT_EQ(u.unit, "mJ");
  EXPECT_DOUBLE_EQ(u.scale, 1e-3);
  EXPECT_EQ(column_unit({3.0, 812.0}, "J").unit, "J");
}

TEST(Units, NormalizedFigures) {
  const Normalized n = normalize(14.4, 8, 128, 400.0);
  EXPECT_DOUBLE_EQ(n.per_sample_j, 1.8);
  EXPECT_DOUBLE_EQ(*n.per_token_j, 14.4 / 1024);
  EXPECT_DOUBLE_EQ(n.wh, 0.004);
  EXPECT_NEAR(*n.co2e_g, 14.4 / 3.6e6 * 400, 1e-15);
  EXPECT_FALSE(normalize(1, 1, 1, std::nullopt).co2e_g.has_value());
  EXPECT_NE(to_text(n, 400.0).find("CO2e at 400 g/kWh"), std::string::npos);
}

TEST(OneEnergy, EveryViewGivesANodeTheSameEnergy) {
  const Tree t = predicted("bert-base-uncased", 8, 64);
  const std::string id = "encoder.layer.0.intermediate.dense:Linear";
  const int i = t.find_id(id);
  ASSERT_GT(i, 0);
  const double own = *t.nodes[i].predicted_energy_j;
  const Explanation e = explain_tree(t);
  EXPECT_EQ(e.nodes[i].own.j, own);
  const json ej = to_json(e);
  EXPECT_EQ(ej["nodes"][i]["energy"]["j"].get<double>(), own);
  EXPECT_EQ(ej["nodes"][i]["predicted_j"].get<double>(), own);
  const json records = node_records(t);
  EXPECT_EQ(records[i]["energy_j"].get<double>(), own);
  EXPECT_EQ(records[i]["attributed_j"].get<double>(), e.nodes[i].attributed.j);
  // The HTTP API (as served) and the command line's JSON give the same figure.
  EnergyServer server(make_backend(std::make_shared<const Predictor>(shipped())), ServeOptions{});
  const auto r = server.handle("GET", "/api/predict?model=bert-base-uncased&batch=8&seq=64");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["nodes"][i]["energy"]["j"].get<double>(), own);
  const auto cli = run_irene("predict bert-base-uncased --batch 8 --seq 64 --format csv");
  ASSERT_EQ(cli.status, 0);
  std::istringstream lines(cli.output);
  std::string line;
  bool found = false;
  while (std::getline(lines, line))
    if (line.find("," + id + ",") != std::string::npos) {
      found = true;
      // energy_j is the 14th column.
      std::stringstream cells(line);
      std::string cell;
      for (int c = 0; c < 14; ++c) std::getline(cells, cell, ',');
      EXPECT_EQ(std::stod(cell), own);
    }
  EXPECT_TRUE(found);
  // Text shows the node's own energy and its attributed energy, each named.
  std::ostringstream text;
  TextOptions all;
  all.depth = -1;
  write_text(text, e, all);
  EXPECT_NE(text.str().find("own " + format_energy(e.nodes[i].own)), std::string::npos);
  EXPECT_NE(text.str().find("attributed " + format_joules(e.nodes[i].attributed.j)), std::string::npos);
}

TEST(AddsUp, ModuleKindsAndPrimitiveTypesAddUpToTheModel) {
  for (const std::string m : {"bert-base-uncased", "gpt2", "distilbert-base-uncased", "sshleifer/tiny-ctrl"}) {
    const Explanation e = explain_tree(predicted(m, 4, 32));
    double kinds = 0, prims = 0;
    for (const auto& g : e.by_kind) kinds += g.attributed.j;
    for (const auto& g : e.by_primitive) prims += g.attributed.j;
    EXPECT_NEAR(kinds, e.total.j, 1e-9 * e.total.j) << m;
    EXPECT_NEAR(prims, e.total.j, 1e-9 * e.total.j) << m;
  }
  // compare: kinds (leaves' own energies) + upper levels = each model's energy, exactly.
  const Comparison c = compare(predicted("bert-base-uncased", 8, 64), predicted("distilbert-base-uncased", 8, 64));
  double a = c.upper.a.j, b = c.upper.b.j;
  for (const auto& g : c.by_kind) {
    a += g.a.j;
    b += g.b.j;
  }
  EXPECT_NEAR(a, c.a.total.j, 1e-9 * c.a.total.j);
  EXPECT_NEAR(b, c.b.total.j, 1e-9 * c.b.total.j);
  // Layer norms are one kind in both architectures: no spurious 'other' change.
  for (const auto& g : c.by_kind)
    if (g.name == "other") EXPECT_LT(std::fabs(g.diff.j), 0.05 * c.a.total.j);
}

TEST(Hotspots, RepeatedLayersAreOneGroup) {
  const Explanation e = explain_tree(predicted("bert-base-uncased", 8, 128));
  ASSERT_FALSE(e.hotspot_groups.empty());
  const HotspotGroup& top = e.hotspot_groups.front();
  EXPECT_EQ(top.pattern, "encoder.layer.*.intermediate.dense");
  EXPECT_EQ(top.class_name, "Linear");
  ASSERT_EQ(top.members.size(), 12u);
  double share = 0, attributed = 0;
  for (int i : top.members) {
    share += e.nodes[i].share_of_model;
    attributed += e.nodes[i].attributed.j;
  }
  EXPECT_NEAR(top.share, share, 1e-12);
  EXPECT_NEAR(top.attributed.j, attributed, 1e-12);
  for (std::size_t g = 1; g < e.hotspot_groups.size(); ++g)
    EXPECT_GE(e.hotspot_groups[g - 1].attributed.j, e.hotspot_groups[g].attributed.j);
  std::ostringstream text;
  write_text(text, e, TextOptions{});
  EXPECT_NE(text.str().find("encoder.layer.*.intermediate.dense (Linear), 12 x"), std::string::npos) << text.str();
  std::ostringstream expanded;
  TextOptions x;
  x.expand = true;
  write_text(expanded, e, x);
  EXPECT_NE(expanded.str().find("encoder.layer.0.intermediate.dense (Linear)"), std::string::npos);
}

TEST(Overrides, NamedInHeadersJsonProvenanceAndReportTitle) {
  const Tree t = predicted("bert-base-uncased", 8, 64, {{"num_hidden_layers", "6"}});
  EXPECT_EQ(t.provenance.at("overrides"), "num_hidden_layers=6");
  EXPECT_EQ(t.display_name(), "bert-base-uncased [num_hidden_layers=6]");
  const json j = to_json(explain_tree(t));
  EXPECT_EQ(j["overrides"]["num_hidden_layers"], 6);
  const auto r = run_irene("compare bert-base-uncased --set num_hidden_layers=6 --batch 8 --seq 64");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("a: bert-base-uncased batch 8 seq 64"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("b: bert-base-uncased [num_hidden_layers=6] batch 8 seq 64"), std::string::npos) << r.output;
  const auto cj = run_irene("compare bert-base-uncased --set num_hidden_layers=6 --batch 8 --seq 64 --format json");
  EXPECT_EQ(json::parse(cj.output)["b"]["overrides"]["num_hidden_layers"], 6);
  const std::string html = render_report({t});
  EXPECT_NE(html.find("<title>irene energy report: bert-base-uncased [num_hidden_layers=6] batch 8 seq 64</title>"),
            std::string::npos);
}

TEST(Sweep, TableHasOneUnitPerColumnAndStaysNarrow) {
  std::vector<SweepPoint> points;
  for (int s : {1, 64, 512}) points.push_back(sweep_point(predicted("gpt2", 8, s)));
  std::ostringstream out;
  write_sweep_table(out, points);
  std::istringstream lines(out.str());
  std::string line, header;
  while (std::getline(lines, line))
    if (line.find("batch") != std::string::npos && line.find("seq") != std::string::npos) header = line;
  ASSERT_FALSE(header.empty()) << out.str();
  EXPECT_NE(header.find("model (J)"), std::string::npos) << header;
  EXPECT_LE(header.size(), 140u) << header;
  // No cell carries its own unit: the unit is in the header.
  std::istringstream rows(out.str());
  while (std::getline(rows, line))
    if (!line.empty() && std::isdigit(static_cast<unsigned char>(line.back())) && line.find('(') == std::string::npos)
      EXPECT_EQ(line.find(" J"), std::string::npos) << line;
}

TEST(Report, AThousandPointSweepStaysSmall) {
  const ModelConfig c = load_model_config("distilgpt2");
  ReportBuilder b(1000, ReportOptions{});
  for (int batch = 1; batch <= 10; ++batch)
    for (int seq = 8; seq <= 800; seq += 8) b.add(predicted_tree(c, batch, seq, shipped()));
  const json data = b.data();
  EXPECT_EQ(data["sweep"].size(), 1000u);
  EXPECT_LE(data["trees"].size(), 16u);
  EXPECT_EQ(data["tree_points"].front(), 0);
  EXPECT_EQ(data["tree_points"].back(), 999);
  const std::string html = render_report(data, b.title());
  EXPECT_LT(html.size(), 5u << 20) << "a 1,000-point report is " << html.size() << " bytes";
}

TEST(Depth, TreeAndPredictTextStopAtTheDepth) {
  for (const char* cmd : {"tree gpt2 --depth 1", "predict gpt2 --depth 1"}) {
    const auto r = run_irene(cmd);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("h.11 (Block)"), std::string::npos) << cmd;
    EXPECT_EQ(r.output.find("c_attn"), std::string::npos) << cmd;
    EXPECT_NE(r.output.find("--depth -1 shows all"), std::string::npos) << cmd;
  }
  const auto all = run_irene("predict gpt2");
  EXPECT_NE(all.output.find("c_attn"), std::string::npos);
}

TEST(Normalized, PredictAndExplainPrintPerSampleTokenWhAndCarbon) {
  const auto r = run_irene("predict gpt2 --batch 4 --seq 64 --carbon-intensity 400 --depth 0");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("per sample"), std::string::npos);
  EXPECT_NE(r.output.find("per token"), std::string::npos);
  EXPECT_NE(r.output.find("Wh"), std::string::npos);
  EXPECT_NE(r.output.find("CO2e at 400 g/kWh"), std::string::npos);
  const auto j = run_irene("explain gpt2 --batch 4 --seq 64 --carbon-intensity 400 --format json");
  const json e = json::parse(j.output);
  const double total = e["total"]["j"].get<double>();
  EXPECT_NEAR(e["normalized"]["per_token_j"].get<double>(), total / 256, 1e-15);
  EXPECT_NEAR(e["normalized"]["co2e_g"].get<double>(), total / 3.6e6 * 400, 1e-15);
  const auto bad = run_irene("explain gpt2 --carbon-intensity lots");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("--carbon-intensity must be grams CO2e per kWh"), std::string::npos) << bad.output;
}

}  // namespace

TEST(OwnOperations, AreOneItemOfTheirParentSoEverythingAddsUp) {
  // The shipped predictor has an own-operations term: every parent's energy is its children's
  // weighted energies plus its own operations', and the explanation shows both.
  const Tree t = predicted("gpt2", 8, 64);
  const Explanation e = explain_tree(t);
  int with_own = 0;
  double leaves_and_own = 0;
  for (const Node& n : t.nodes) {
    const auto& x = e.nodes[t.find_id(n.id)];
    if (n.is_leaf()) {
      EXPECT_FALSE(x.own_operations) << n.id;
      leaves_and_own += x.share_of_model;
      continue;
    }
    double sum = x.own_operations ? x.own_operations->share_of_parent : 0.0;
    for (int c : n.children) {
      sum += e.nodes[c].share_of_parent;
      // No part is larger than its whole.
      EXPECT_LE(e.nodes[c].attributed.j, x.attributed.j * (1 + 1e-12)) << n.children.size() << " " << n.id;
    }
    EXPECT_NEAR(sum, 1.0, 1e-12) << n.id;
    if (!x.own_operations) continue;
    ++with_own;
    const auto& o = *x.own_operations;
    leaves_and_own += o.share_of_model;
    EXPECT_NEAR(o.energy.j, *n.predicted_own_energy_j, 1e-15) << n.id;
    EXPECT_NEAR(o.share_of_parent, o.energy.j / *n.predicted_energy_j, 1e-12) << n.id;
    EXPECT_NEAR(o.attributed.j, o.share_of_model * e.total.j, 1e-12 * e.total.j) << n.id;
    ASSERT_TRUE(o.energy.interval) << n.id;
    EXPECT_LE(o.energy.interval->low_j, o.energy.j);
    EXPECT_GE(o.energy.interval->high_j, o.energy.j);
    EXPECT_EQ(o.ops, own_operations_text(n)) << n.id;
  }
  EXPECT_GT(with_own, 12);  // every block at least (two residual adds each)
  EXPECT_NEAR(leaves_and_own, 1.0, 1e-12);
  // The block's own operations are named by kind and count.
  ASSERT_GE(t.find_id("h.0:Block"), 0);
  const auto& block = e.nodes[t.find_id("h.0:Block")];
  ASSERT_TRUE(block.own_operations);
  EXPECT_EQ(block.own_operations->ops, "add x2");
  // One group of their own among the primitive types, and in the parents' kinds: both lists add up.
  double prims = 0, kinds = 0, own_group = -1;
  for (const auto& g : e.by_primitive) {
    prims += g.attributed.j;
    if (g.name == kOwnOperationsGroup) own_group = g.attributed.j;
  }
  for (const auto& g : e.by_kind) kinds += g.attributed.j;
  EXPECT_NEAR(prims, e.total.j, 1e-9 * e.total.j);
  EXPECT_NEAR(kinds, e.total.j, 1e-9 * e.total.j);
  EXPECT_GT(own_group, 0);
  // Text, JSON.
  std::ostringstream text;
  TextOptions all;
  all.depth = -1;
  write_text(text, e, all);
  EXPECT_NE(text.str().find("own operations (add x2)  own " + format_energy(block.own_operations->energy)),
            std::string::npos)
      << text.str().substr(0, 4000);
  EXPECT_NE(text.str().find("  own operations "), std::string::npos);
  const auto j = to_json(e);
  const auto& jb = j["nodes"][t.find_id("h.0:Block")]["own_operations"];
  EXPECT_EQ(jb["ops"], "add x2");
  EXPECT_DOUBLE_EQ(jb["energy"]["j"].get<double>(), block.own_operations->energy.j);
  EXPECT_TRUE(j["nodes"][t.find_id("h.0.mlp.c_fc:Conv1D")]["own_operations"].is_null());
}

TEST(OwnOperations, MeasuredTreesShowTheParentAboveItsChildren) {
  // Measured basis: a parent measured above the sum of its measured children has the rest as
  // its own operations; one measured at or below the sum has none.
  Tree t = predicted("bert-base-uncased", 8, 32);
  for (auto& n : t.nodes) {
    n.ground_truth_energy_j = n.predicted_energy_j;
    n.predicted_energy_j.reset();
    n.predicted_interval.reset();
    n.predicted_own_energy_j.reset();
  }
  const int pooler = t.find_id("pooler:BertPooler");
  double children = 0;
  for (int c : t.nodes[pooler].children) children += *t.nodes[c].ground_truth_energy_j;
  t.nodes[pooler].ground_truth_energy_j = children * 1.25;
  ExplainOptions o;
  o.basis = Basis::measured;
  const Explanation e = explain_tree(t, o);
  const auto& x = e.nodes[pooler];
  ASSERT_TRUE(x.own_operations);
  EXPECT_NEAR(x.own_operations->energy.j, 0.25 * children, 1e-12 * children);
  EXPECT_NEAR(x.own_operations->share_of_parent, 0.2, 1e-12);
  double sum = x.own_operations->share_of_parent;
  for (int c : t.nodes[pooler].children) sum += e.nodes[c].share_of_parent;
  EXPECT_NEAR(sum, 1.0, 1e-12);
}
