// explain/ on real trees (arch/ builder + the shipped predictor) and the irene explain,
// compare, sweep, report commands, including every bad-input path.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/wait.h>

#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/report.hpp"
#include "test_explain_util.hpp"

namespace fs = std::filesystem;
using namespace irene;
using namespace irene::explain;

namespace {

const Predictor& predictor() {
  static const Predictor p = Predictor::load_default();
  return p;
}

Tree bert(int batch, int seq, const std::vector<std::string>& overrides = {}) {
  return predicted_tree(load_config_with_overrides("bert-base-uncased", overrides), batch, seq, predictor());
}

struct CliRun {
  int status = -1;
  std::string out, err;
};

fs::path temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto d = fs::temp_directory_path() / (std::string("irene_explain_cli_") + info->name() + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Runs the irene binary with `args` (shell-quoted by the caller where needed).
CliRun irene_cli(const std::string& args, const fs::path& dir) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = std::string("'") + IRENE_BINARY + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
  CliRun r;
  const int rc = std::system(cmd.c_str());
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  std::ifstream o(out), e(err);
  std::stringstream so, se;
  so << o.rdbuf();
  se << e.rdbuf();
  r.out = so.str();
  r.err = se.str();
  return r;
}

void expect_failure(const CliRun& r, const std::string& fragment) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err.rfind("irene: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
}

}  // namespace

TEST(ExplainReal, OverrideOfLayersChangesExactlyTheRemovedLayersAndTheirAncestors) {
  const Tree a = bert(8, 128);
  const Tree b = bert(8, 128, {"num_hidden_layers=6"});
  const Comparison c = compare(a, b);
  int removed = 0;
  for (const auto& d : c.nodes) {
    ASSERT_NE(d.status, DiffStatus::added) << d.id;
    if (d.status == DiffStatus::removed) {
      ++removed;
      int layer = -1;
      ASSERT_EQ(std::sscanf(d.scope.c_str(), "encoder.layer.%d", &layer), 1) << d.id;
      EXPECT_GE(layer, 6) << d.id;
      continue;
    }
    const bool ancestor = d.scope.empty() || d.scope == "encoder";
    if (ancestor) EXPECT_LT(d.diff.j, 0) << d.id;                 // fewer layers, less energy
    else EXPECT_EQ(d.diff.j, 0.0) << d.id << " changed by " << d.diff.j;  // untouched: exactly zero
  }
  EXPECT_EQ(removed, static_cast<int>(a.nodes.size() - b.nodes.size()));
  for (const auto& g : c.by_kind) {
    if (g.name == "embeddings" || g.name == "other" || g.name == "lm head") {
      EXPECT_EQ(g.diff.j, 0.0) << g.name;
    } else if (g.name == "norm") {  // the layers' norms halve, the embeddings' LayerNorm stays
      EXPECT_LT(*g.change_pct, 0.0);
      EXPECT_GT(*g.change_pct, -50.0);
    } else {
      EXPECT_NEAR(*g.change_pct, -50.0, 1e-9) << g.name;  // half the layers
    }
  }
  EXPECT_GT(removed, 6 * 10);
}

TEST(ExplainReal, OverrideOfFeedForwardWidthChangesOnlyFeedForwardAndAncestors) {
  const Tree a = bert(8, 128);
  const Tree b = bert(8, 128, {"intermediate_size=1024"});
  const Comparison c = compare(a, b);
  std::set<std::string> ancestors = {"", "encoder"};
  for (int l = 0; l < 12; ++l) ancestors.insert("encoder.layer." + std::to_string(l));
  int ff_linear_changed = 0;
  for (const auto& d : c.nodes) {
    ASSERT_EQ(d.status, DiffStatus::both) << d.id;
    if (d.diff.j == 0) continue;
    const bool ff = d.kind == ModuleKind::feed_forward;
    EXPECT_TRUE(ff || ancestors.count(d.scope)) << d.id << " changed";
    EXPECT_LT(d.diff.j, 0) << d.id;  // a narrower feed-forward costs less
    if (ff && d.class_name == "Linear") ++ff_linear_changed;
  }
  EXPECT_EQ(ff_linear_changed, 24);  // intermediate.dense and output.dense of 12 layers
  for (const auto& g : c.by_kind) {
    if (g.name == "feed-forward") EXPECT_LT(g.diff.j, 0);
    else EXPECT_EQ(g.diff.j, 0.0) << g.name;  // attention, embeddings, other: untouched
  }
}

// Issue 22: two families compare module by module (by role), not class name against class name.
TEST(ExplainReal, DifferentFamiliesAlignModuleByModule) {
  BuildOptions o;
  o.phase = kDecode;
  o.past = 512;
  const Tree a = predicted_tree(load_model_config("meta-llama/Llama-2-7b-hf"), 1, 1, predictor(), o);
  const Tree b = predicted_tree(load_model_config("mistralai/Mistral-7B-v0.1"), 1, 1, predictor(), o);
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  const Comparison c = compare(a, b);
  ASSERT_EQ(c.nodes.size(), a.nodes.size());
  int renamed = 0;
  for (const auto& d : c.nodes) {
    EXPECT_EQ(d.status, DiffStatus::both) << d.id;
    if (!d.a_id.empty()) ++renamed;
  }
  EXPECT_GT(renamed, 32 * 4);  // the layers, attentions, MLPs and norms of every layer at least
  const auto it = std::find_if(c.nodes.begin(), c.nodes.end(),
                               [](const NodeDiff& d) { return d.id == "model.layers.3.self_attn:MistralAttention"; });
  ASSERT_NE(it, c.nodes.end());
  EXPECT_EQ(it->a_id, "model.layers.3.self_attn:LlamaAttention");
  EXPECT_EQ(it->kind, ModuleKind::attention);
  // Same family: the role alignment is the id alignment (no a_id anywhere).
  for (const auto& d : compare(a, a).nodes) EXPECT_TRUE(d.a_id.empty()) << d.id;
}

TEST(ExplainReal, ModelComparedWithItselfIsZeroEverywhere) {
  const Comparison c = compare(bert(8, 64), bert(8, 64));
  for (const auto& d : c.nodes) {
    EXPECT_EQ(d.diff.j, 0.0) << d.id;
    EXPECT_EQ(d.diff.interval->low_j, 0.0) << d.id;
    EXPECT_EQ(d.diff.interval->high_j, 0.0) << d.id;
  }
  for (const auto& g : c.by_primitive) EXPECT_EQ(g.diff.j, 0.0) << g.name;
}

TEST(ExplainReal, EveryIntervalContainsItsEstimateAndSharesSumToTheirParent) {
  for (const char* model : {"bert-base-uncased", "gpt2", "distilbert-base-uncased"}) {
    const Tree t = predicted_tree(load_model_config(model), 8, 64, predictor());
    const Explanation e = explain_tree(t);
    EXPECT_EQ(e.basis, Basis::predicted);
    irene::test::expect_contains(e.total, model);
    for (const auto& x : e.nodes) {
      irene::test::expect_contains(x.own, x.id);
      irene::test::expect_contains(x.attributed, x.id);
    }
    for (const auto& g : e.by_primitive) irene::test::expect_contains(g.attributed, g.name);
    for (const Node& n : t.nodes) {
      if (n.is_leaf()) continue;
      // The children and the parent's own operations (explain.hpp) make the whole parent.
      const auto& own = e.nodes[t.find_id(n.id)].own_operations;
      double sum = own ? own->share_of_parent : 0.0;
      for (int c : n.children) sum += e.nodes[c].share_of_parent;
      EXPECT_NEAR(sum, 1.0, 1e-9) << model << " " << n.id;
    }
    double kinds = 0;
    for (const auto& g : e.by_kind) kinds += g.share;
    EXPECT_NEAR(kinds, 1.0, 1e-9) << model;
  }
}

// Issue 22: the intervals of a decode step's parts are consistent with their whole. Every parent's
// own operations and every group (by primitive, by kind, repeated leaves) have an upper bound no
// higher than their whole's; a node above its parent's upper bound is counted, with its reason,
// in the text and the JSON.
TEST(ExplainReal, PartsOfADecodeStepStayInsideTheirWholesInterval) {
  for (const char* model : {"meta-llama/Llama-2-7b-hf", "Qwen/Qwen2-0.5B", "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
                            "mistralai/Mistral-7B-v0.1", "gpt2"}) {
    BuildOptions o;
    o.phase = kDecode;
    o.past = 767;
    const Tree t = predicted_tree(load_model_config(model), 8, 1, predictor(), o);
    const Explanation e = explain_tree(t);
    ASSERT_TRUE(e.total.interval) << model;
    const double whole = e.total.interval->high_j;
    int above = 0;
    for (const auto& x : e.nodes) {
      irene::test::expect_contains(x.own, x.id);
      if (x.own_operations && x.own_operations->energy.interval)
        EXPECT_LE(x.own_operations->energy.interval->high_j, x.own.interval->high_j * (1 + 1e-12)) << model << " " << x.id;
      if (x.parent >= 0) {
        const auto& p = e.nodes[static_cast<std::size_t>(x.parent)];
        if (x.own.interval->high_j > p.own.interval->high_j * (1 + 1e-9)) ++above;
        // Counted at its weight, a part stays inside its parent.
        EXPECT_LE(x.attributed.interval->high_j, p.attributed.interval->high_j * (1 + 1e-9)) << model << " " << x.id;
      }
    }
    EXPECT_EQ(e.parts_above_whole, above) << model;
    for (const auto* groups : {&e.by_primitive, &e.by_kind})
      for (const auto& g : *groups)
        if (g.attributed.interval) EXPECT_LE(g.attributed.interval->high_j, whole * (1 + 1e-12)) << model << " " << g.name;
    for (const auto& g : e.hotspot_groups)
      if (g.attributed.interval) EXPECT_LE(g.attributed.interval->high_j, whole * (1 + 1e-12)) << model << " " << g.pattern;
    const nlohmann::json j = to_json(e);
    EXPECT_EQ(j.at("intervals").at("parts_above_whole"), above) << model;
    EXPECT_EQ(j.at("intervals").at("parts_above_whole_reason").is_null(), above == 0) << model;
    std::ostringstream text;
    write_text(text, e, {});
    EXPECT_NE(text.str().find("  intervals: a sum adds its parts' ends"), std::string::npos) << model;
    EXPECT_EQ(text.str().find("reach above their parent's upper bound") != std::string::npos, above > 0) << model;
  }
}

TEST(ExplainReal, BadOverridesAndModelsAreErrors) {
  EXPECT_THROW(load_config_with_overrides("no-such-model", {}), Error);
  EXPECT_THROW(load_config_with_overrides("bert-base-uncased", {"num_hidden_layers"}), Error);
  EXPECT_THROW(load_config_with_overrides("bert-base-uncased", {"=6"}), Error);
  EXPECT_THROW(load_config_with_overrides("bert-base-uncased", {"num_hidden_layers=-1"}), Error);
  EXPECT_THROW(load_config_with_overrides("bert-base-uncased", {"no_such_key=3"}), Error);
}

// ---- the commands ----------------------------------------------------------------------------

TEST(ExplainCli, ExplainPrintsTextAndJson) {
  const auto dir = temp_dir();
  const CliRun text = irene_cli("explain bert-base-uncased --batch 8 --seq 64 --top 3", dir);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("Hotspots"), std::string::npos);
  EXPECT_NE(text.out.find("Linear"), std::string::npos);
  EXPECT_NE(text.out.find("feed-forward"), std::string::npos);
  EXPECT_NE(text.out.find(" .. "), std::string::npos);  // intervals shown
  const CliRun json = irene_cli("explain bert-base-uncased --batch 8 --seq 64 --format json -o " + (dir / "e.json").string(), dir);
  ASSERT_EQ(json.status, 0) << json.err;
  const auto j = nlohmann::json::parse(irene::read_file(dir / "e.json"));
  EXPECT_EQ(j["model_name"], "bert-base-uncased");
  EXPECT_FALSE(j["total"]["low_j"].is_null());
  EXPECT_FALSE(j["hardware"].get<std::string>().empty());
  EXPECT_EQ(j["seq_len"], 64);
  // Without --batch / --seq a model is built for the defaults, batch 8 and seq 128.
  const CliRun defaults = irene_cli("explain distilgpt2 --seq 32 --format json -o " + (dir / "d.json").string(), dir);
  ASSERT_EQ(defaults.status, 0) << defaults.err;
  const auto d = nlohmann::json::parse(irene::read_file(dir / "d.json"));
  EXPECT_EQ(d["batch_size"], 8);
  EXPECT_EQ(d["seq_len"], 32);
  const CliRun both = irene_cli("explain distilgpt2 --format json -o " + (dir / "b.json").string(), dir);
  ASSERT_EQ(both.status, 0) << both.err;
  const auto b = nlohmann::json::parse(irene::read_file(dir / "b.json"));
  EXPECT_EQ(b["batch_size"], 8);
  EXPECT_EQ(b["seq_len"], 128);
}

TEST(ExplainCli, ExplainReadsATreesFileWithMeasuredEnergy) {
  const auto dir = temp_dir();
  Tree t = irene::test::synthetic(1, 3);
  for (auto& n : t.nodes) {
    n.ground_truth_energy_j = n.predicted_energy_j;
    n.predicted_energy_j.reset();
    n.predicted_interval.reset();
  }
  write_jsonl(dir / "m.jsonl", {t});
  const CliRun r = irene_cli("explain " + (dir / "m.jsonl").string(), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("measured energy"), std::string::npos) << r.out;
}

TEST(ExplainCli, CompareShowsTheChange) {
  const auto dir = temp_dir();
  const CliRun r = irene_cli("compare bert-base-uncased --batch 8 --seq 128 --set num_hidden_layers=6 --format json -o " +
                              (dir / "c.json").string(),
                          dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(irene::read_file(dir / "c.json"));
  EXPECT_LT(j["total"]["change_pct"].get<double>(), -30.0);
  const CliRun s = irene_cli("compare bert-base-uncased --batch 8 --seq 128 --seq-b 256", dir);
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_NE(s.out.find("b - a = +"), std::string::npos) << s.out;
}

// What-ifs on one model: b's dtype, weights, cache dtype, attention or predictor.
TEST(ExplainCli, CompareWhatIfsOnB) {
  const auto dir = temp_dir();
  const std::string base = "compare meta-llama/Llama-2-7b-hf --batch 1 --phase decode --past 512 --format json ";
  CliRun r = irene_cli(base + "--dtype-b bfloat16 --predictor-b " + Predictor::default_path().string() + " -o " +
                           (dir / "d.json").string(),
                       dir);
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(irene::read_file(dir / "d.json"));
  EXPECT_EQ(j["a"]["dtype"], "float32");
  EXPECT_EQ(j["b"]["dtype"], "bfloat16");
  EXPECT_EQ(j["hardware_b"], j["hardware"]);
  EXPECT_LT(j["total"]["diff"]["j"].get<double>(), 0);  // half the bytes
  for (const auto& n : j["nodes"]) EXPECT_EQ(n["status"], "both") << n["id"];
  r = irene_cli(base + "--kv-cache-dtype-b fp8 --weights-b int4 --attention-b sdpa -o " + (dir / "k.json").string(), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  j = nlohmann::json::parse(irene::read_file(dir / "k.json"));
  EXPECT_EQ(j["b"]["kv_cache_dtype"], "fp8");
  EXPECT_EQ(j["b"]["weights"], "int4");
  EXPECT_LT(j["total"]["diff"]["j"].get<double>(), 0);
  expect_failure(irene_cli(base + "--dtype-b float8 -o " + (dir / "bad.json").string(), dir), "--dtype must be");
  EXPECT_FALSE(fs::exists(dir / "bad.json"));
  expect_failure(irene_cli(base + "--predictor-b " + (dir / "nopred.json").string() + " -o " + (dir / "bad.json").string(),
                           dir),
                 "nopred.json");
  EXPECT_FALSE(fs::exists(dir / "bad.json"));
}

TEST(ExplainCli, SweepWritesTableCsvTreesAndReport) {
  const auto dir = temp_dir();
  const CliRun r = irene_cli("sweep bert-base-uncased --batch 8 --seq 32:128:32 --format csv -o " + (dir / "s.csv").string() +
                              " --jsonl " + (dir / "s.jsonl").string() + " --report " + (dir / "s.html").string(),
                          dir);
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream csv(irene::read_file(dir / "s.csv"));
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(csv, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[1].rfind("bert-base-uncased,8,32,", 0), 0u);
  EXPECT_EQ(lines[4].rfind("bert-base-uncased,8,128,", 0), 0u);
  EXPECT_EQ(read_jsonl(dir / "s.jsonl").size(), 4u);
  const std::string html = irene::read_file(dir / "s.html");
  EXPECT_NE(html.find("\"sweep\":[{"), std::string::npos);
  const CliRun table = irene_cli("sweep bert-base-uncased --batch 1,8 --seq 64", dir);
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_NE(table.out.find("attention"), std::string::npos);
}

namespace {

// The records of a CSV file (RFC 4180: quoted fields may hold commas, quotes and line breaks).
std::vector<std::vector<std::string>> csv_records(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += text[++i];
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      rows.back().push_back(std::move(field));
      field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  if (!rows.back().empty() || !field.empty()) rows.back().push_back(field);
  else rows.pop_back();
  return rows;
}

}  // namespace

// Every CSV irene writes has the header's number of fields on every row and ends with the column
// rests_on, the one-line summary of what the answer rests on, on every row (pandas.read_csv reads
// the file as it is: no comment lines).
TEST(ExplainCli, EveryCsvEndsWithWhatItRestsOnOnEveryRow) {
  const auto dir = temp_dir();
  const fs::path csv = dir / "out.csv";
  for (const std::string args : {"sweep gpt2 --batch 8 --seq 32,64 --carbon-intensity 400",
                                 "sweep gpt2 --prompt 16 --generate 4,8 --carbon-intensity 400",
                                 "sweep gpt2 --batch 2 --phase decode --past 16,32", "predict gpt2 --batch 2 --seq 16",
                                 "explain gpt2 --batch 2 --seq 16", "tree gpt2 --batch 2 --seq 16"}) {
    SCOPED_TRACE(args);
    const CliRun r = irene_cli(args + " --format csv -o " + csv.string(), dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string text = irene::read_file(csv);
    ASSERT_NE(text.front(), '#');
    const auto rows = csv_records(text);
    ASSERT_GE(rows.size(), 3u);
    const auto& header = rows.front();
    EXPECT_EQ(header.back(), "rests_on");
    const bool predicted = args.rfind("tree", 0) != 0;
    for (std::size_t i = 1; i < rows.size(); ++i) {
      ASSERT_EQ(rows[i].size(), header.size()) << "row " << i;
      if (predicted) EXPECT_EQ(rows[i].back().rfind("rests on: device_1", 0), 0u) << rows[i].back();
      else EXPECT_EQ(rows[i].back(), "");  // a tree without energies rests on nothing
    }
    // Grams CO2e of the point's joules at 400 g/kWh (empty without a carbon intensity).
    const auto col = [&](const std::string& name) {
      return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
    };
    if (args.rfind("sweep", 0) == 0) {
      ASSERT_LT(col("co2e_g"), header.size());
      const bool carbon = args.find("--carbon-intensity") != std::string::npos;
      const std::size_t joules = col(args.find("--generate") != std::string::npos ? "total_j" : "model_j");
      for (std::size_t i = 1; i < rows.size(); ++i) {
        if (!carbon) {
          EXPECT_EQ(rows[i][col("co2e_g")], "");
          continue;
        }
        EXPECT_NEAR(std::stod(rows[i][col("co2e_g")]), std::stod(rows[i][joules]) * 400 / 3.6e6,
                    1e-7 * std::stod(rows[i][col("co2e_g")]));
        if (args.find("--generate") != std::string::npos)
          EXPECT_NEAR(std::stod(rows[i][col("per_token_co2e_g")]), std::stod(rows[i][col("per_token_j")]) * 400 / 3.6e6,
                      1e-7 * std::stod(rows[i][col("per_token_co2e_g")]));
      }
    }
  }
}

// sweep --format json prints one object, the one Python's irene.sweep returns.
TEST(ExplainCli, SweepJsonIsOneObjectWithWhatItRestsOnAndCo2e) {
  const auto dir = temp_dir();
  const fs::path out = dir / "s.json";
  CliRun r = irene_cli("sweep gpt2 --batch 8,64 --seq 128 --carbon-intensity 250 --format json -o " + out.string(), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(irene::read_file(out));
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["model_name"], "gpt2");
  EXPECT_NE(j["hardware"].get<std::string>().find("device_1"), std::string::npos);
  EXPECT_EQ(j["carbon_intensity_g_per_kwh"], 250.0);
  EXPECT_EQ(j["rests_on"]["outside"][0]["dimension"], "batch");  // batch 64: 2x the largest trained
  ASSERT_EQ(j["points"].size(), 2u);
  for (const auto& p : j["points"]) {
    EXPECT_NEAR(p["co2e_g"].get<double>(), p["model"]["j"].get<double>() * 250 / 3.6e6, 1e-12);
    EXPECT_EQ(p["rests_on"].get<std::string>().rfind("rests on: ", 0), 0u);
  }
  EXPECT_NE(j["points"][0]["rests_on"], j["points"][1]["rests_on"]);  // batch 8 is inside, 64 is not
  // The table says the same, with a CO2e column.
  r = irene_cli("sweep gpt2 --batch 8,64 --seq 128 --carbon-intensity 250", dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("CO2e ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("at 250 g/kWh"), std::string::npos) << r.out;
  // A bad carbon intensity: one line, no output.
  for (const std::string cmd : {"sweep gpt2 --carbon-intensity x", "sweep gpt2 --prompt 8 --generate 4 --carbon-intensity -1",
                                "report gpt2 --carbon-intensity 1e9", "report gpt2 --prompt 8 --generate 4 --carbon-intensity x"}) {
    fs::remove(out);
    expect_failure(irene_cli(cmd + " -o " + out.string(), dir), "--carbon-intensity must be grams CO2e per kWh");
    EXPECT_FALSE(fs::exists(out)) << cmd;
  }
}

TEST(ExplainCli, ReportIsOneSelfContainedFile) {
  const auto dir = temp_dir();
  Tree t = irene::test::synthetic(2, 4);
  for (auto& n : t.nodes) n.ground_truth_energy_j = *n.predicted_energy_j * 1.1;
  write_jsonl(dir / "p.jsonl", {t});
  const CliRun r = irene_cli("report " + (dir / "p.jsonl").string() + " -o " + (dir / "r.html").string(), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string html = irene::read_file(dir / "r.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("<script src"), std::string::npos);  // nothing fetched
  EXPECT_EQ(html.find("<link rel=\"stylesheet\""), std::string::npos);
  EXPECT_EQ(html.find("{{IRENE_"), std::string::npos);     // every placeholder filled
  EXPECT_NE(html.find("toy-bert"), std::string::npos);
  // The embedded data is the explanation, measured energies included.
  const auto begin = html.find("<script id=\"irene-data\" type=\"application/json\">");
  ASSERT_NE(begin, std::string::npos);
  const auto start = html.find('>', begin) + 1;
  const auto data = nlohmann::json::parse(html.substr(start, html.find("</script>", start) - start));
  EXPECT_EQ(data["trees"][0]["nodes"].size(), t.nodes.size());
  EXPECT_FALSE(data["trees"][0]["measured_total_j"].is_null());
}

TEST(ExplainCli, BadModelInputsFailWithOneClearLineAndNoOutput) {
  const auto dir = temp_dir();
  const std::string out = (dir / "out.txt").string();
  expect_failure(irene_cli("explain no-such-model --batch 8 --seq 64 -o " + out, dir), "unknown model 'no-such-model'");
  expect_failure(irene_cli("explain bert-base-uncased --batch 8 --seq 64 --set num_hidden_layers -o " + out, dir),
                 "bad --set 'num_hidden_layers'");
  expect_failure(irene_cli("explain bert-base-uncased --batch 8 --seq 64 --set warp_factor=9 -o " + out, dir),
                 "warp_factor");
  expect_failure(irene_cli("explain bert-base-uncased --batch 0 --seq 64 -o " + out, dir), "--batch");
  expect_failure(irene_cli("explain bert-base-uncased --seq 0 -o " + out, dir), "--seq");
  expect_failure(irene_cli("explain bert-base-uncased --batch 8 --seq 64 --format xml -o " + out, dir), "--format 'xml'");
  EXPECT_FALSE(fs::exists(out));
}

TEST(ExplainCli, BadFilesFailWithOneClearLineAndNoOutput) {
  const auto dir = temp_dir();
  const std::string out = (dir / "out.txt").string();
  expect_failure(irene_cli("explain " + (dir / "missing.jsonl").string() + " -o " + out, dir), "missing.jsonl");
  expect_failure(irene_cli("report " + (dir / "missing.jsonl").string() + " -o " + (dir / "r.html").string(), dir),
                 "missing.jsonl");
  expect_failure(irene_cli("sweep bert-base-uncased --batch 8 --seq 512:32:32 -o " + out, dir),
                 "bad --seq range '512:32:32'");
  expect_failure(irene_cli("sweep bert-base-uncased --batch x --seq 64 -o " + out, dir), "bad --batch range 'x'");
  expect_failure(irene_cli("compare bert-base-uncased nope --batch 8 --seq 64 -o " + out, dir), "unknown model 'nope'");
  expect_failure(irene_cli("explain bert-base-uncased --batch 8 --seq 64 --predictor " + (dir / "nopred.json").string() +
                               " -o " + out,
                           dir),
                 "nopred.json");
  // A trees file without energies, and a malformed one.
  Tree bare = irene::test::synthetic(1, 1);
  for (auto& n : bare.nodes) {
    n.predicted_energy_j.reset();
    n.predicted_interval.reset();
  }
  write_jsonl(dir / "bare.jsonl", {bare});
  expect_failure(irene_cli("report " + (dir / "bare.jsonl").string() + " -o " + (dir / "r.html").string(), dir),
                 "neither a predicted nor a measured energy");
  {
    std::ofstream f(dir / "broken.jsonl");
    f << "{\"model_name\": \"x\", \n";
  }
  expect_failure(irene_cli("explain " + (dir / "broken.jsonl").string() + " -o " + out, dir), "broken.jsonl:1");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(dir / "r.html"));
}

// Every command takes the library's sizes (core/limits.hpp): a size sweep accepts is one predict
// accepts, and one both refuse is refused with the same words, whichever command parses it.
TEST(ExplainCli, SweepAndPredictAcceptTheSameSizesWithTheSameErrors) {
  const auto dir = temp_dir();
  const std::string out = (dir / "out.txt").string();
  for (const std::string sizes : {"--batch 5000 --seq 128", "--batch 200000000 --seq 128", "--batch 8 --seq 70000"}) {
    const CliRun predict = irene_cli("predict gpt2 " + sizes + " --format json -o " + out, dir);
    const bool predicted = fs::exists(out);
    fs::remove(out);
    const CliRun sweep = irene_cli("sweep gpt2 " + sizes + " --format json -o " + out, dir);
    EXPECT_EQ(predict.status, sweep.status) << sizes << "\npredict: " << predict.err << "\nsweep: " << sweep.err;
    EXPECT_EQ(predicted, fs::exists(out)) << sizes;
    fs::remove(out);
    if (sizes == "--batch 5000 --seq 128") {
      EXPECT_EQ(sweep.status, 0) << sweep.err;
      continue;
    }
    expect_failure(predict, sizes.find("200000000") != std::string::npos ? "1..134217728" : "positions");
    EXPECT_EQ(predict.err, sweep.err) << sizes;
  }
  // Generations too: --prompt takes the limit --seq takes.
  const CliRun predict = irene_cli("predict gpt2 --prompt 70000 --generate 2 --format json -o " + out, dir);
  const CliRun sweep = irene_cli("sweep gpt2 --prompt 70000 --generate 2 --format json -o " + out, dir);
  expect_failure(predict, "positions");
  EXPECT_EQ(predict.err, sweep.err);
  EXPECT_FALSE(fs::exists(out));
}
