// Latency, throughput and power of a generation from the time companion of the energy predictor
// (predict/predictor.hpp Predictor::time_companion, explain/generation.hpp GenerationTime).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/generation.hpp"
#include "irene/predict/predictor.hpp"
#include "test_util.hpp"

using namespace irene;
using namespace irene_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const Predictor& shipped() {
  static const Predictor p = Predictor::load_default();
  return p;
}

void write_json(const fs::path& path, const json& j) { std::ofstream(path) << j.dump(); }

}  // namespace

TEST(TimeCompanion, TheShippedPredictorHasOneThatPredictsTimeOnTheSameHardware) {
  const auto t = Predictor::time_companion(shipped());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->target(), predict::Target::time);
  EXPECT_EQ(t->hardware(), shipped().hardware());
  EXPECT_EQ(t->path().filename(), "device_1-time.json");
  EXPECT_EQ(Predictor::time_companion(shipped()), t);  // loaded once
  EXPECT_FALSE(Predictor::time_companion(*t));        // a time predictor has none
}

TEST(TimeCompanion, NoneBesideAFileAndBadCompanionsAreOneClearLine) {
  const fs::path d = fresh_dir("companion");
  const json energy = shipped().to_json();
  write_json(d / "e.json", energy);
  EXPECT_FALSE(Predictor::time_companion(Predictor::load(d / "e.json")));
  // A companion that predicts energy, or another machine's.
  write_json(d / "a.json", energy);
  write_json(d / "a-time.json", energy);
  std::string e = error_of([&] { Predictor::time_companion(Predictor::load(d / "a.json")); });
  EXPECT_NE(e.find("a-time.json: the time companion of"), std::string::npos) << e;
  EXPECT_NE(e.find("predicts energy, not time"), std::string::npos) << e;
  json other = Predictor::time_companion(shipped())->to_json();
  other["hardware"] = "another machine";
  write_json(d / "b.json", energy);
  write_json(d / "b-time.json", other);
  e = error_of([&] { Predictor::time_companion(Predictor::load(d / "b.json")); });
  EXPECT_NE(e.find("describes 'another machine'"), std::string::npos) << e;
  fs::remove_all(d);
}

TEST(GenerationTime, StepsAreTheTimeOfTheirTreesAndTheRatesFollow) {
  const ModelConfig c = load_model_config("gpt2");
  explain::GenerationRequest r;
  r.batch = 8;
  r.prompt = 64;
  r.generate = 6;
  const explain::Generation g = explain::predict_generation(c, r, shipped());
  ASSERT_TRUE(g.time);
  const auto& t = *g.time;
  const auto tp = Predictor::time_companion(shipped());
  // The prefill and every step: the time predictor's prediction of its tree.
  BuildOptions pre;
  pre.head = "lm";
  pre.last_token_logits = true;
  Tree pt = build_tree(c, 8, 64, pre);
  tp->predict(pt);
  EXPECT_NEAR(t.prefill.j, *pt.root().predicted_energy_j, 1e-12);
  double steps = 0;
  for (int past = 64; past < 70; ++past) {
    BuildOptions s = pre;
    s.phase = kDecode;
    s.past = past;
    Tree st = build_tree(c, 8, 1, s);
    tp->predict(st);
    steps += *st.root().predicted_energy_j;
  }
  EXPECT_NEAR(t.decode.j, steps, 1e-9 * steps);
  EXPECT_NEAR(t.total.j, t.prefill.j + t.decode.j, 1e-12);
  ASSERT_TRUE(t.decode.interval);
  EXPECT_LT(t.decode.interval->low_j, t.decode.j);
  EXPECT_GT(t.decode.interval->high_j, t.decode.j);
  EXPECT_DOUBLE_EQ(t.time_to_first_token_s, t.prefill.j);
  EXPECT_DOUBLE_EQ(t.inter_token_latency_s, t.decode.j / 6);
  EXPECT_DOUBLE_EQ(t.decode_tokens_per_s, 48 / t.decode.j);
  EXPECT_DOUBLE_EQ(t.tokens_per_s, 48 / t.total.j);
  EXPECT_DOUBLE_EQ(t.mean_power_w, g.total.j / t.total.j);
  EXPECT_DOUBLE_EQ(t.decode_power_w, g.decode.j / t.decode.j);
  // Whole-machine watts of a 2021 GPU server, not a phone's or a datacenter's.
  EXPECT_GT(t.mean_power_w, 50);
  EXPECT_LT(t.mean_power_w, 2000);
  EXPECT_EQ(t.rests_on["predictor"]["target"], "time");
  // More tokens take longer.
  r.generate = 12;
  const explain::Generation longer = explain::predict_generation(c, r, shipped());
  EXPECT_GT(longer.time->decode.j, t.decode.j);
}

TEST(GenerationTime, EveryOutputCarriesItAndAPredictorWithoutCompanionSaysSo) {
  const fs::path d = fresh_dir("gtime");
  auto res = run_irene("predict gpt2 --batch 8 --prompt 64 --generate 6 --format json -o " + (d / "g.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  const json g = json::parse(std::ifstream(d / "g.json"));
  ASSERT_TRUE(g["time"].is_object()) << g.dump().substr(0, 500);
  EXPECT_NEAR(g["time"]["mean_power_w"].get<double>(),
              g["total_j"]["j"].get<double>() / g["time"]["total_s"]["s"].get<double>(), 1e-9);
  EXPECT_NE(g["time"]["predictor"].get<std::string>().find("device_1-time.json"), std::string::npos);
  // CSV: one row of the same totals, rests_on last; jsonl refused in one line, no file.
  res = run_irene("predict gpt2 --batch 8 --prompt 64 --generate 6 --carbon-intensity 400 --format csv -o " +
                  (d / "g.csv").string());
  ASSERT_EQ(res.status, 0) << res.output;
  {
    std::ifstream csv(d / "g.csv");
    std::string header, row, extra;
    std::getline(csv, header);
    std::getline(csv, row);
    EXPECT_FALSE(std::getline(csv, extra));
    EXPECT_EQ(header.rfind("model,batch,prompt,generate,prefill_j,", 0), 0u) << header;
    EXPECT_EQ(header.substr(header.size() - 9), ",rests_on") << header;
    const std::size_t total = header.find(",total_j,");
    ASSERT_NE(total, std::string::npos);
    const auto column = static_cast<std::size_t>(std::count(header.begin(), header.begin() + total, ',')) + 1;
    std::stringstream fields(row);
    std::string field;
    for (std::size_t i = 0; i <= column; ++i) std::getline(fields, field, ',');
    EXPECT_NEAR(std::stod(field), g["total_j"]["j"].get<double>(), 1e-9 * g["total_j"]["j"].get<double>()) << row;
    EXPECT_EQ(row.rfind("gpt2,8,64,6,", 0), 0u) << row;
  }
  res = run_irene("predict gpt2 --batch 8 --prompt 64 --generate 6 --format jsonl -o " + (d / "g.jsonl").string());
  EXPECT_NE(res.status, 0);
  EXPECT_NE(res.output.find("irene: error: predict --generate writes text, json or csv"), std::string::npos) << res.output;
  EXPECT_FALSE(fs::exists(d / "g.jsonl"));
  res = run_irene("predict gpt2 --batch 8 --prompt 64 --generate 6");
  for (const char* s : {"latency, throughput", "first token after", "tokens/s while decoding", "mean power"})
    EXPECT_NE(res.output.find(s), std::string::npos) << s << "\n" << res.output;
  // The same predictor copied where it has no companion: no time, and the output says why.
  fs::copy_file(Predictor::default_path(), d / "alone.json");
  res = run_irene("predict gpt2 --batch 8 --prompt 64 --generate 6 --predictor " + (d / "alone.json").string() +
                  " --format json -o " + (d / "n.json").string());
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_TRUE(json::parse(std::ifstream(d / "n.json"))["time"].is_null());
  res = run_irene("predict gpt2 --batch 8 --prompt 64 --generate 6 --predictor " + (d / "alone.json").string());
  EXPECT_NE(res.output.find("not predicted: the predictor has no time companion"), std::string::npos) << res.output;
  fs::remove_all(d);
}
