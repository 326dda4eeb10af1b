// What an answer rests on (explain/rests_on.hpp, predict/predictor.hpp TrainingSpan) and the
// floor of a linear leaf (predict/model.hpp LeafRegressor::predict).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/family_table.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/rests_on.hpp"
#include "irene/predict/config.hpp"
#include "irene/predict/intervals.hpp"
#include "irene/predict/model.hpp"
#include "irene/predict/predictor.hpp"
#include "test_predict_synthetic.hpp"
#include "test_util.hpp"

using namespace irene;
using nlohmann::json;
using namespace irene_test;
namespace fs = std::filesystem;

namespace {

const json* outside(const json& r, const std::string& dimension) {
  for (const auto& o : r["outside"])
    if (o["dimension"] == dimension) return &o;
  return nullptr;
}

const Predictor& shipped() {
  static const Predictor p = Predictor::load_default();
  return p;
}

}  // namespace

TEST(TrainingSpan, RecordedAtTrainingAndKeptInTheFile) {
  const auto trees = testing_predict::synthetic_dataset(3);
  predict::Config c = predict::named_config("paper");
  c.epochs = 2;
  Predictor::TrainOptions o;
  o.intervals = false;
  const Predictor p = Predictor::train(trees, c, o);
  const TrainingSpan s = p.training_span();
  EXPECT_TRUE(s.recorded);
  EXPECT_EQ(s.models, (std::vector<std::string>{"toy-0", "toy-1", "toy-2"}));
  EXPECT_EQ(s.trees, 18);
  ASSERT_TRUE(s.batch && s.tokens && s.context && s.parameters);
  EXPECT_EQ(*s.batch, (std::pair{4, 8}));
  EXPECT_EQ(*s.tokens, (std::pair{16, 64}));
  EXPECT_EQ(*s.context, (std::pair{16, 64}));
  double smallest = 1e300, largest = 0;
  for (const auto& t : trees) {
    smallest = std::min(smallest, static_cast<double>(t.root().num_parameters));
    largest = std::max(largest, static_cast<double>(t.root().num_parameters));
  }
  EXPECT_EQ(s.parameters->first, smallest);
  EXPECT_EQ(s.parameters->second, largest);
  EXPECT_LT(smallest, largest);
  EXPECT_EQ(s.phases, (std::vector<std::string>{"prefill"}));
  EXPECT_EQ(s.dtypes, (std::vector<std::string>{"float32"}));
  EXPECT_EQ(s.energy_covers, "");  // synthetic trees do not say
  const fs::path d = fresh_dir("span");
  p.save(d / "p.json");
  const TrainingSpan back = Predictor::load(d / "p.json").training_span();
  EXPECT_EQ(back.to_json(), s.to_json());
  fs::remove_all(d);
}

TEST(TrainingSpan, DecodeTreesSpanTheirContextAndPhases) {
  auto trees = testing_predict::synthetic_dataset(2);
  trees[0].phase = kDecode;
  trees[0].past_len = 300;
  trees[0].seq_len = 1;
  trees[1].dtype = "bfloat16";
  trees[1].provenance["sensor_covers"] = "the CPU package (RAPL)";
  std::vector<const Tree*> ptrs;
  for (const auto& t : trees) ptrs.push_back(&t);
  const TrainingSpan s = span_of_trees(ptrs);
  EXPECT_EQ(*s.tokens, (std::pair{1, 64}));
  EXPECT_EQ(*s.context, (std::pair{16, 301}));
  EXPECT_EQ(s.phases, (std::vector<std::string>{"decode", "prefill"}));
  EXPECT_EQ(s.dtypes, (std::vector<std::string>{"bfloat16", "float32"}));
  EXPECT_EQ(s.energy_covers, "");  // only one tree says what its sensor covers
  for (auto& t : trees) t.provenance["sensor_covers"] = "the CPU package (RAPL)";
  EXPECT_EQ(span_of_trees(ptrs).energy_covers, "the CPU package (RAPL)");
}

TEST(TrainingSpan, ShippedPredictorsSpanIsDerivedFromItsRanges) {
  const TrainingSpan s = shipped().training_span();
  EXPECT_FALSE(s.recorded);
  EXPECT_EQ(s.models.size(), 7u);
  ASSERT_TRUE(s.batch && s.tokens && s.context && s.parameters);
  EXPECT_EQ(*s.batch, (std::pair{8, 32}));  // the published dataset's grid
  EXPECT_EQ(*s.tokens, (std::pair{32, 256}));
  EXPECT_TRUE(std::isnan(s.parameters->first));  // the smallest model's size is not in the ranges
  EXPECT_GT(s.parameters->second, 1e8);          // roberta-base, gpt2: ~125M
  EXPECT_LT(s.parameters->second, 2e8);
  EXPECT_EQ(s.phases, (std::vector<std::string>{"prefill"}));
  EXPECT_NE(s.energy_covers.find("whole machine"), std::string::npos);
}

TEST(RestsOn, InsideTheTrainingDataSaysSoAndOutsideNamesEachDimension) {
  const Predictor& p = shipped();
  const ModelConfig gpt2 = load_model_config("gpt2");
  json r = explain::rests_on_of(explain::predicted_tree(gpt2, 8, 128, p));
  ASSERT_TRUE(r.is_object());
  EXPECT_TRUE(r["outside"].empty()) << r.dump(1);
  EXPECT_EQ(r["hardware"]["name"], p.hardware());
  EXPECT_EQ(r["question"]["batch"], json::array({8, 8}));
  EXPECT_NE(r["summary"].get<std::string>().find("this question is inside it"), std::string::npos);

  // Twice the largest batch: only the batch is outside, by 2x.
  r = explain::rests_on_of(explain::predicted_tree(gpt2, 64, 128, p));
  ASSERT_EQ(r["outside"].size(), 1u) << r.dump(1);
  EXPECT_EQ(r["outside"][0]["dimension"], "batch");
  EXPECT_DOUBLE_EQ(r["outside"][0]["factor"].get<double>(), 2.0);
  EXPECT_FALSE(r["within_training_data"].get<bool>());

  // A decode step of Llama-2-7b in bfloat16: size, tokens, context, phase and dtype.
  BuildOptions o;
  o.phase = kDecode;
  o.past = 767;
  o.dtype = "bfloat16";
  const Tree t = explain::predicted_tree(load_model_config("meta-llama/Llama-2-7b-hf"), 8, 1, p, o);
  r = explain::rests_on_of(t);
  const json* size = outside(r, "size");
  ASSERT_NE(size, nullptr) << r.dump(1);
  EXPECT_NEAR(size->at("factor").get<double>(), t.root().num_parameters / r["predictor"]["trained_on"]["parameters"][1].get<double>(), 1e-9);
  EXPECT_GT(size->at("factor").get<double>(), 50);
  ASSERT_NE(outside(r, "tokens"), nullptr);
  EXPECT_DOUBLE_EQ(outside(r, "tokens")->at("factor").get<double>(), 32.0);  // 1 token against 32
  ASSERT_NE(outside(r, "context"), nullptr);
  EXPECT_DOUBLE_EQ(outside(r, "context")->at("factor").get<double>(), 768.0 / 256.0);
  ASSERT_NE(outside(r, "phase"), nullptr);
  EXPECT_EQ(outside(r, "phase")->at("value"), "decode");
  ASSERT_NE(outside(r, "dtype"), nullptr);
  EXPECT_EQ(outside(r, "batch"), nullptr);  // batch 8 is inside
  EXPECT_EQ(r["dtype_applied"], "bfloat16");
  EXPECT_EQ(r["config_torch_dtype"], "float16");
  EXPECT_EQ(r["config_source"], "built-in");
  EXPECT_TRUE(r["nodes_outside"].is_string());
  EXPECT_EQ(r["stand_ins"].size(), 2u);
  const std::string line = r["summary"];
  for (const char* s : {"rests on: device_1", "size 5", "phase decode", "dtype bfloat16", "2 stand-ins",
                        "the config's float16 is not"})
    EXPECT_NE(line.find(s), std::string::npos) << s << "\n" << line;
  // The same object in the tree's JSON summary (Python, the HTTP API) and its explanation.
  EXPECT_EQ(explain::tree_summary(t)["rests_on"], r);
  EXPECT_EQ(explain::to_json(explain::explain_tree(t))["rests_on"], r);
}

TEST(RestsOn, GenerationStatesBothPhasesAndItsContextRangeInEveryOutput) {
  const fs::path d = fresh_dir("rests");
  auto res = run_irene("predict meta-llama/Llama-2-7b-hf --prompt 512 --generate 8 --format json -o " +
                       (d / "g.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json g = json::parse(std::ifstream(d / "g.json"));
  const json& r = g["rests_on"];
  ASSERT_TRUE(r.is_object()) << g.dump(1).substr(0, 2000);
  EXPECT_EQ(r["question"]["phases"], json::array({"prefill", "decode"}));
  EXPECT_EQ(r["question"]["context"], json::array({512, 520}));
  EXPECT_EQ(r["question"]["tokens"], json::array({1, 512}));
  ASSERT_NE(outside(r, "phase"), nullptr);
  ASSERT_NE(outside(r, "size"), nullptr);
  EXPECT_DOUBLE_EQ(outside(r, "context")->at("factor").get<double>(), 520.0 / 256.0);
  EXPECT_DOUBLE_EQ(outside(r, "batch")->at("factor").get<double>(), 8.0);  // batch 1 against 8
  EXPECT_FALSE(r["within_training_data"].get<bool>());
  // Text: the summary line; explain's JSON of a generation and of its parts carry it too.
  res = run_irene("predict meta-llama/Llama-2-7b-hf --prompt 512 --generate 8");
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_NE(res.output.find(r["summary"].get<std::string>()), std::string::npos) << res.output;
  res = run_irene("explain meta-llama/Llama-2-7b-hf --prompt 512 --generate 8 --format json -o " +
                  (d / "e.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json e = json::parse(std::ifstream(d / "e.json"));
  EXPECT_EQ(e["rests_on"], r);
  EXPECT_EQ(outside(e["last_step_explanation"]["rests_on"], "phase")->at("value"), "decode");
  EXPECT_EQ(outside(e["prefill_explanation"]["rests_on"], "phase"), nullptr);
  // predict --format json of one tree: the object, not a copy of its text in the provenance.
  res = run_irene("predict gpt2 --batch 64 --format json -o " + (d / "t.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json t = json::parse(std::ifstream(d / "t.json"));
  EXPECT_EQ(t["rests_on"]["outside"][0]["dimension"], "batch");
  EXPECT_FALSE(t["provenance"].contains("rests_on"));
  // compare: each side says what it rests on (the same model at another batch: b outside by 2x).
  res = run_irene("compare gpt2 --batch 8 --batch-b 64 --format json -o " + (d / "c.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json c = json::parse(std::ifstream(d / "c.json"));
  EXPECT_TRUE(c["a"]["rests_on"]["within_training_data"].get<bool>());
  EXPECT_EQ(c["b"]["rests_on"]["outside"][0]["dimension"], "batch");
  res = run_irene("compare gpt2 --batch 8 --batch-b 64");
  EXPECT_NE(res.output.find("b rests on: "), std::string::npos) << res.output;
  res = run_irene("compare gpt2 --prompt 16 --generate 4 --dtype-b bfloat16 --format json -o " + (d / "g2.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json gc = json::parse(std::ifstream(d / "g2.json"));
  EXPECT_EQ(outside(gc["b"]["rests_on"], "dtype")->at("value"), "bfloat16");
  EXPECT_EQ(outside(gc["a"]["rests_on"], "dtype"), nullptr);
  fs::remove_all(d);
}

TEST(LeafFloor, ALinearLeafThatDoesWorkNeverCostsZero) {
  predict::LeafRegressor r;
  r.kind = predict::LeafModel::linear;
  r.scaler.mean = Eigen::Vector2d(1000, 50);
  r.scaler.scale = Eigen::Vector2d(500, 20);
  r.coef = Eigen::Vector2d(0.4, 0.1);
  r.intercept = 0.5;  // value at x = 0: 0.5 - 0.8 - 0.25 < 0
  r.work = {1, 1};
  double previous = 0;
  for (double flops = 0; flops <= 4000; flops += 50) {
    const double x[2] = {flops, 10};
    const double v = r.predict(x);
    EXPECT_GT(v, 0) << flops;
    EXPECT_GE(v, previous) << flops;  // non-decreasing in the work, no jump where the regression crosses 0
    const double regression = r.intercept + 0.4 * (flops - 1000) / 500 + 0.1 * (10 - 50) / 20.0;
    if (regression > 0.05) EXPECT_DOUBLE_EQ(v, regression) << flops;  // unchanged where it is not near 0
    previous = v;
  }
  const double none[2] = {0, 0};
  EXPECT_EQ(r.predict(none), 0.0);  // no work, nothing
  // Only the columns of work raise the floor: a utilization or a clock does not.
  r.work = {1, 0};
  const double idle[2] = {0, 90};
  EXPECT_EQ(r.predict(idle), std::max(0.0, r.intercept - 0.4 * 1000 / 500 + 0.1 * (90 - 50) / 20.0));
  const double busy[2] = {10, 90};
  EXPECT_NEAR(r.predict(busy), 0.01 * 0.5 * (10.0 / 1000), 1e-15);  // 1% of the intercept x work / mean work
}

TEST(LeafFloor, NoLeafWithWorkIsZeroInADecodeStepOfABuiltInDecoder) {
  const Predictor& p = shipped();
  int checked = 0;
  for (const auto& name : builtin_model_names()) {
    const ModelConfig c = load_model_config(name);
    if (!family_of(c).causal || !family_of(c).kv_cache) continue;
    ++checked;
    BuildOptions o;
    o.phase = kDecode;
    o.past = static_cast<int>(std::min<std::int64_t>(256, c.max_positions - 1));
    const Tree t = explain::predicted_tree(c, 1, 1, p, o);
    for (const Node& n : t.nodes) {
      if (n.flops_mflop <= 0 && n.mem_mib <= 0) continue;
      ASSERT_TRUE(n.predicted_energy_j) << name << " " << n.id;
      EXPECT_GT(*n.predicted_energy_j, 0) << name << " " << n.id;
      ASSERT_TRUE(n.predicted_interval) << name << " " << n.id;
      EXPECT_GT(n.predicted_interval->high_j, n.predicted_interval->low_j) << name << " " << n.id;
    }
  }
  EXPECT_GE(checked, 15);  // every built-in decoder with a cache: GPT-2s, OPT, Pythia, Llama, Qwen, MoEs ...
}

TEST(IntervalFallback, ALevelWithoutSamplesTakesTheNextLevelDownNotZeroWidth) {
  predict::IntervalCalibration cal;
  EXPECT_EQ(cal.factors(NodeType::model, "").low, 1.0);  // nothing calibrated: 1, 1
  cal.groups["ml"] = {0.5, 2.0, 100};
  EXPECT_EQ(cal.factors(NodeType::model, "").high, 2.0);
  EXPECT_EQ(cal.factors(NodeType::module, "").high, 2.0);
  cal.groups["module"] = {0.8, 1.25, 50};
  EXPECT_EQ(cal.factors(NodeType::model, "").high, 1.25);  // the next level down first
  EXPECT_EQ(cal.factors(NodeType::ml, "Linear").high, 2.0);
  cal.groups["model"] = {0.9, 1.1, 30};
  EXPECT_EQ(cal.factors(NodeType::model, "").high, 1.1);  // its own when it has samples
  cal.groups["ml:Linear"] = {0.95, 1.05, 40};
  EXPECT_EQ(cal.factors(NodeType::ml, "Linear").high, 1.05);
}

TEST(RestsOn, ASweepMergesWhatItsPointsRestOn) {
  // Two points: gpt2 at batch 8 (inside) and 64 (2x the largest batch): the sweep is outside by 2x.
  json a = explain::rests_on_of(explain::predicted_tree(load_model_config("gpt2"), 8, 128, shipped()));
  const json b = explain::rests_on_of(explain::predicted_tree(load_model_config("gpt2"), 64, 512, shipped()));
  json merged;
  explain::merge_rests_on(merged, a);
  EXPECT_EQ(merged, a);
  explain::merge_rests_on(merged, b);
  EXPECT_EQ(merged["question"]["batch"], json::array({8, 64}));
  EXPECT_EQ(merged["question"]["tokens"], json::array({128, 512}));
  EXPECT_FALSE(merged["within_training_data"].get<bool>());
  ASSERT_NE(outside(merged, "batch"), nullptr);
  EXPECT_DOUBLE_EQ(outside(merged, "batch")->at("factor").get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(outside(merged, "context")->at("factor").get<double>(), 2.0);  // 512 against 256
  EXPECT_NE(merged["summary"].get<std::string>().find("batch 2x"), std::string::npos) << merged["summary"];
  // The command line's table and Python's object say it.
  const auto res = run_irene("sweep gpt2 --batch 8,64 --seq 128,512");
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_NE(res.output.find("rests on: "), std::string::npos) << res.output;
  EXPECT_NE(res.output.find("batch 2x"), std::string::npos) << res.output;
}

TEST(CompareCarbon, GramsOfBothSidesAndTheDifferenceFromTheTotals) {
  const fs::path d = fresh_dir("cco2");
  auto res = run_irene("compare gpt2 --batch 8 --batch-b 16 --carbon-intensity 400 --format json -o " +
                       (d / "c.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json c = json::parse(std::ifstream(d / "c.json"));
  EXPECT_EQ(c["carbon_intensity_g_per_kwh"], 400.0);
  const double a = c["total"]["a"]["j"].get<double>(), b = c["total"]["b"]["j"].get<double>();
  EXPECT_NEAR(c["co2e_g"]["a"].get<double>(), a * 400 / 3.6e6, 1e-15);
  EXPECT_NEAR(c["co2e_g"]["b"].get<double>(), b * 400 / 3.6e6, 1e-15);
  EXPECT_NEAR(c["co2e_g"]["diff"].get<double>(), (b - a) * 400 / 3.6e6, 1e-15);
  // A generation: the whole generations' grams.
  res = run_irene("compare gpt2 --prompt 16 --generate 4 --dtype-b bfloat16 --carbon-intensity 100 --format json -o " +
                  (d / "g.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json g = json::parse(std::ifstream(d / "g.json"));
  EXPECT_NEAR(g["co2e_g"]["a"].get<double>(), g["a"]["total_j"]["j"].get<double>() * 100 / 3.6e6, 1e-15);
  res = run_irene("compare gpt2 --batch 8 --batch-b 16 --carbon-intensity 400");
  EXPECT_NE(res.output.find("CO2e at 400 g/kWh: a "), std::string::npos) << res.output;
  res = run_irene("compare gpt2 --batch 8 --carbon-intensity -3 -o " + (d / "x.json").string());
  EXPECT_EQ(res.status, 1);
  EXPECT_NE(res.output.find("--carbon-intensity must be grams CO2e per kWh"), std::string::npos) << res.output;
  EXPECT_FALSE(fs::exists(d / "x.json"));
  fs::remove_all(d);
}
