// --target time: train, crossval, evaluate and predict on irene's own measurements (a sample of
// the dataset scripts/collect-local-dataset.sh collected on the development machine).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/predict/config.hpp"
#include "irene/predict/predictor.hpp"
#include "irene/predict/target.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace irene;
using namespace irene::predict;
using nlohmann::json;

namespace {

const fs::path kSample = fs::path(IRENE_TEST_DATA_DIR) / "local-sample.jsonl";

struct Run {
  int status;
  std::string out;
};
Run run(const std::string& args) {
  const auto r = irene_test::run_irene(args);
  return {r.status, r.output};
}

fs::path temp_dir() {
  auto d = fs::temp_directory_path() /
           ("irene_target_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

TEST(Target, RetargetMovesTimesMeanIntoTheMeasuredSlotAndRecordsIt) {
  auto trees = read_jsonl(kSample);
  ASSERT_GE(trees.size(), 4u);
  for (const auto& t : trees) EXPECT_FALSE(t.root().ground_truth_energy_j) << t.key();  // no sensor here
  EXPECT_EQ(retarget(trees, Target::energy), 0);
  EXPECT_EQ(retarget(trees, Target::time), static_cast<long>(trees.size()));
  for (const auto& t : trees) {
    EXPECT_EQ(tree_target(t), Target::time);
    for (const auto& n : t.nodes) {
      ASSERT_TRUE(n.ground_truth_energy_j) << n.id;
      EXPECT_EQ(*n.ground_truth_energy_j, n.resources.at("times_mean")) << n.id;
    }
  }
  // Features derived from time are never inputs of a time predictor; energy keeps them all.
  const auto all = feature_names_of_sets({"model_specs", "resource_utilization"});
  const auto for_time = features_for_target(all, Target::time);
  EXPECT_EQ(features_for_target(all, Target::energy), all);
  EXPECT_EQ(std::count(for_time.begin(), for_time.end(), "times_mean"), 0);
  EXPECT_EQ(for_time.size() + 1, all.size());
  EXPECT_TRUE(derived_from_time("cpu_time_mean"));
  EXPECT_TRUE(derived_from_time("own_times_mean"));
  EXPECT_FALSE(derived_from_time("flops"));
  EXPECT_THROW(target_from_string("power"), Error);
}

TEST(Target, TimePredictorIsTrainedWithoutTimeFeaturesAndStatesSeconds) {
  auto trees = read_jsonl(kSample);
  retarget(trees, Target::time);
  Config c = named_config("default");
  c.target = Target::time;
  Predictor::TrainOptions o;
  o.intervals = false;
  const Predictor p = Predictor::train(trees, c, o);
  EXPECT_EQ(p.target(), Target::time);
  for (const auto& f : p.feature_names()) EXPECT_FALSE(derived_from_time(f)) << f;
  EXPECT_FALSE(p.feature_names().empty());
  const json j = p.to_json();
  EXPECT_EQ(j["target"], "time");
  EXPECT_EQ(j["unit"], "s per forward pass");
  EXPECT_EQ(j["config"]["target"], "time");
  // Round trip, and a file that claims time but reads times_mean is refused.
  const auto back = Predictor::from_json(j, "p.json");
  EXPECT_EQ(back.target(), Target::time);
  json bad = j;
  bad["features"].push_back("times_mean");
  try {
    Predictor::from_json(bad, "bad.json");
    ADD_FAILURE() << "loaded a time predictor that reads times_mean";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("derived from time"), std::string::npos) << e.what();
  }
  EXPECT_THROW(p.require_energy("explain"), Error);
  // Its predictions are the measured seconds' order of magnitude, positive on every node.
  Tree t = trees.front();
  p.predict(t);
  for (const auto& n : t.nodes) EXPECT_GT(*n.predicted_energy_j, 0) << n.id;
  const double ratio = *t.root().predicted_energy_j / *t.root().ground_truth_energy_j;
  EXPECT_GT(ratio, 0.5);
  EXPECT_LT(ratio, 2.0);
}

TEST(TargetCli, TrainCrossvalPredictAndEvaluateTime) {
  const auto d = temp_dir();
  const std::string sample = q(kSample);
  // crossval: leave-one-model-out on time, saying so.
  auto r = run("crossval " + sample + " --target time --format json -q -o " + q(d / "cv.json"));
  ASSERT_EQ(r.status, 0) << r.out;
  const json cv = json::parse(read_file(d / "cv.json"));
  EXPECT_EQ(cv["target"], "time");
  EXPECT_EQ(cv["unit"], "s per forward pass");
  for (const char* level : {"ml", "module", "model"}) {
    const double e = cv["overall"][level].get<double>();
    EXPECT_TRUE(std::isfinite(e) && e >= 0) << level;
  }
  r = run("crossval " + sample + " --target time -q");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("target: time (seconds per forward pass)", 0), 0u) << r.out;
  // Without --target, the sample has no energy (no sensor on the machine that measured it).
  r = run("crossval " + sample + " -q");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("irene: error: "), std::string::npos) << r.out;
  // train: a model-spec time predictor.
  r = run("train " + sample + " --target time --set feature_sets=model_specs -o " + q(d / "time.json"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("target: time (seconds per forward pass)"), std::string::npos) << r.out;
  // predict the measured trees, then evaluate against their times.
  r = run("predict " + sample + " --predictor " + q(d / "time.json") + " -o " + q(d / "pred.jsonl"));
  ASSERT_EQ(r.status, 0) << r.out;
  for (const auto& t : read_jsonl(d / "pred.jsonl")) {
    EXPECT_EQ(t.provenance.at("target"), "time") << t.key();
    EXPECT_EQ(t.provenance.at("target_unit"), "s") << t.key();
  }
  r = run("evaluate " + sample + " " + q(d / "pred.jsonl") + " --target time --format json");
  ASSERT_EQ(r.status, 0) << r.out;
  const json ev = json::parse(r.out);
  EXPECT_EQ(ev["target"], "time");
  EXPECT_GT(ev["nodes"]["model"].get<int>(), 0);
  EXPECT_LT(ev["model"].get<double>(), 50.0);  // in-sample: the fit is close
  r = run("evaluate " + sample + " " + q(d / "pred.jsonl"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("add --target time"), std::string::npos) << r.out;
  // A model built from its config: seconds, never joules; time grows with the batch.
  double last = 0;
  for (int b : {1, 2, 4, 8}) {
    r = run("predict openai-gpt --batch " + std::to_string(b) + " --seq 64 --predictor " + q(d / "time.json") +
            " --format json -o " + q(d / "b.json"));
    ASSERT_EQ(r.status, 0) << r.out;
    const json t = json::parse(read_file(d / "b.json"));
    EXPECT_EQ(t["provenance"]["target"], "time");
    const double s = t["frontend_tree"]["predicted_energy"].get<double>();
    EXPECT_GT(s, last) << "batch " << b;
    last = s;
  }
  r = run("predict openai-gpt --batch 2 --seq 64 --predictor " + q(d / "time.json"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("time "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("s per forward pass"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("target: time, seconds per forward pass"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(" J "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("mJ"), std::string::npos) << r.out;
  // --target must match the predictor; explanations in joules refuse a time predictor.
  r = run("predict bert-base-uncased --predictor " + q(d / "time.json") + " --target energy -o " + q(d / "x.txt"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("irene: error: --target energy: the predictor"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(d / "x.txt"));
  r = run("explain bert-base-uncased --predictor " + q(d / "time.json"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("predicts time"), std::string::npos) << r.out;
  r = run("train " + sample + " --target watts -o " + q(d / "w.json"));
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_FALSE(fs::exists(d / "w.json"));
}

TEST(Target, ConfigurationKeyReadsEnergyOrTimeAndRefusesAnythingElse) {
  EXPECT_EQ(named_config("default").target, Target::energy);
  EXPECT_EQ(load_config(std::string(IRENE_TEST_DATA_DIR) + "/../../configs/time.json").target, Target::time);
  Config c;
  apply_config_override(c, "target=time");
  EXPECT_EQ(c.target, Target::time);
  EXPECT_EQ(config_from_json(config_to_json(c), "round trip").target, Target::time);
  for (const char* bad : {R"({"target": "power"})", R"({"target": 1})"}) {
    try {
      config_from_json(json::parse(bad), "bad.json");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.json: 'target' must be \"energy\" or \"time\""), std::string::npos)
          << e.what();
    }
  }
}
