// Physically consistent predictions: for every built-in model, the predicted energy of the model
// and of every ML leaf never falls as the batch grows (1 to 256) or the sequence grows (1 to
// 4096 or the model's maximum), and no node is predicted below zero; with the shipped predictor
// and with a default-configuration model-spec predictor trained here.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/arch/family_table.hpp"
#include "irene/arch/registry.hpp"
#include "irene/data/dataset.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/predict/config.hpp"
#include "irene/predict/predictor.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace irene;

namespace {

// The longest sequence the model's builder accepts, at most 4096.
int max_seq(const ModelConfig& config) {
  for (int s = static_cast<int>(std::min<std::int64_t>(4096, config.max_positions)); s > 1; --s) {
    try {
      build_tree(config, 1, s);
      return s;
    } catch (const Error&) {
    }
  }
  return 1;
}

struct Sweep {
  int violations = 0;
  std::string first;  // the first violation, described
};

// Predicts MODEL at every point of a sweep (batch or seq varying, in increasing order) and
// checks that the model's energy and every ML leaf's (matched by id) never fall, and that no
// node is below zero.
void check_sweep(const Predictor& p, const ModelConfig& config, bool vary_batch, int fixed, int last, Sweep& s) {
  std::map<std::string, double> previous;  // id -> energy at the previous point
  for (int v = 1; v <= last; ++v) {
    Tree t = build_tree(config, vary_batch ? v : fixed, vary_batch ? fixed : v);
    p.predict(t);
    std::map<std::string, double> now;
    for (const Node& n : t.nodes) {
      const double e = *n.predicted_energy_j;
      auto fail = [&](const std::string& what) {
        if (s.violations++ == 0)
          s.first = config.name + " " + (vary_batch ? "batch " : "seq ") + std::to_string(v) + " (" +
                    (vary_batch ? "seq " : "batch ") + std::to_string(fixed) + "), " + n.id + ": " + what;
      };
      if (!(e >= 0)) fail("predicted " + std::to_string(e) + " J");
      if (n.parent >= 0 && !(n.type == NodeType::ml && n.is_leaf())) continue;
      auto it = previous.find(n.id);
      if (it != previous.end() && e < it->second)
        fail("falls from " + std::to_string(it->second) + " J to " + std::to_string(e) + " J");
      now[n.id] = e;
    }
    previous = std::move(now);
  }
}

void check_every_builtin_model(const Predictor& p, const std::string& which) {
  for (const auto& name : builtin_model_names()) {
    SCOPED_TRACE(which + ": " + name);
    const ModelConfig config = load_model_config(name);
    Sweep s;
    check_sweep(p, config, /*vary_batch=*/true, 128 > max_seq(config) ? max_seq(config) : 128, 256, s);
    const int last = max_seq(config);
    check_sweep(p, config, /*vary_batch=*/false, 1, last, s);
    check_sweep(p, config, /*vary_batch=*/false, 8, last, s);
    EXPECT_EQ(s.violations, 0) << s.first;
  }
}

// Energy per generated token of every built-in dense decoder, one decode step after `past`
// cached positions (or the model's longest) as the commands predict it (explain::predicted_tree,
// which holds a batch outside the training batches at their edge), never rises with the batch:
// batch 1 to 256. Returns the violations, the first described in `first`.
int check_per_token(const Predictor& p, std::string& first) {
  int violations = 0, models = 0;
  for (const auto& name : builtin_model_names()) {
    const ModelConfig config = load_model_config(name);
    const FamilyInfo& f = family_of(config);
    if (!f.causal || !f.kv_cache) continue;
    BuildOptions o;
    o.phase = kDecode;
    o.past = static_cast<int>(std::min<std::int64_t>(512, config.max_positions - 1 - f.reserved_positions));
    o.allow_long = true;
    if (active_parameters(build_tree(config, 1, 1, o)) != build_tree(config, 1, 1, o).root().num_parameters) continue;
    ++models;
    double previous = 0;
    int previous_batch = 0;
    for (int b : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 33, 48, 64, 96, 128, 192, 256}) {
      const Tree t = explain::predicted_tree(config, b, 1, p, o);
      const double per_token = *t.root().predicted_energy_j / b;
      if (previous_batch > 0 && per_token > previous * (1 + 1e-12) && violations++ == 0)
        first = name + ": " + std::to_string(per_token) + " J per token at batch " + std::to_string(b) + " > " +
                std::to_string(previous) + " J at batch " + std::to_string(previous_batch);
      previous = per_token;
      previous_batch = b;
    }
  }
  EXPECT_GE(models, 6);  // gpt2 ... Llama, Mistral, Qwen2, TinyLlama, Qwen3, Phi-3, Gemma ...
  return violations;
}

}  // namespace

// The envelope itself, on a made-up predictor whose energy per sequence zigzags: non-increasing
// in the batch whatever the predictor says, held only where it has to be, within its call budget.
TEST(BatchEnvelope, MakesEnergyPerSequenceNonIncreasingForAnyPredictor) {
  const auto zigzag = [](int b) { return 10.0 / b + (b % 3 == 0 ? 0.5 : 0.0) + (b % 7 == 0 ? -0.3 : 0.0); };
  const std::pair<int, int> range{8, 32};
  double previous = 0;
  for (int b = 1; b <= 100; ++b) {
    int calls = 0;
    const auto counted = [&](int k) { return ++calls, zigzag(k); };
    const auto k = batch_envelope(b, range, counted);
    const double v = k ? zigzag(*k) : zigzag(b);
    if (b > 1) EXPECT_LE(v, previous) << "batch " << b;
    EXPECT_LE(calls, 26) << "batch " << b;
    if (b > 32) EXPECT_TRUE(k.has_value()) << "batch " << b;
    if (b == 8) EXPECT_FALSE(k.has_value());
    if (k) EXPECT_NE(*k, b);
    previous = v;
  }
  // A predictor that already falls with the batch is left alone inside and below the range.
  for (int b = 1; b <= 32; ++b) EXPECT_FALSE(batch_envelope(b, range, [](int k) { return 1.0 / k; })) << b;
  // Above it, the lowest of the training batches: batch 32's here.
  EXPECT_EQ(batch_envelope(64, range, [](int k) { return 1.0 / k; }), 32);
  EXPECT_EQ(batch_envelope(64, range, [](int k) { return 1.0 * k; }), 8);
}

// Issue 20: more sequences per step never cost more per token, with the shipped predictor and a
// predictor trained here; and the generation's energy per generated token follows.
TEST(PredictPerToken, ADenseDecoderNeverCostsMorePerTokenAtALargerBatch) {
  const Predictor shipped = Predictor::load_default();
  std::string first;
  EXPECT_EQ(check_per_token(shipped, first), 0) << first;
  // The raw prediction does rise beyond the training batches (what the envelope is for).
  const ModelConfig llama = load_model_config("meta-llama/Llama-2-7b-hf");
  BuildOptions o;
  o.phase = kDecode;
  o.past = 512;
  ASSERT_EQ(shipped.training_batch_range(), (std::pair<int, int>{8, 32}));
  const auto raw_per_sequence = [&](int b) {
    Tree t = build_tree(llama, b, 1, o);
    shipped.predict(t);
    return *t.root().predicted_energy_j / b;
  };
  EXPECT_GT(raw_per_sequence(128), raw_per_sequence(32));
  double lowest = raw_per_sequence(8);
  int lowest_batch = 8;
  for (int b = 9; b <= 32; ++b)
    if (const double v = raw_per_sequence(b); v <= lowest) lowest = v, lowest_batch = b;
  const Tree held = explain::predicted_tree(llama, 128, 1, shipped, o);
  EXPECT_NEAR(*held.root().predicted_energy_j, lowest * 128, 1e-9 * lowest * 128);
  EXPECT_NE(held.provenance.at("batch_held").find("batch 128 is above the batch sizes the predictor was trained on (8-32)"),
            std::string::npos);
  // Every node scaled alike: the held tree still adds up (a layer is the same share of the model).
  Tree at = build_tree(llama, lowest_batch, 1, o);
  shipped.predict(at);
  const auto share = [](const Tree& t) {
    return *t.nodes.at(t.find_id("model.layers.5:LlamaDecoderLayer")).predicted_energy_j / *t.root().predicted_energy_j;
  };
  EXPECT_NEAR(share(held), share(at), 1e-12);
  // Inside the training batches a batch keeps its own value unless a smaller one costs less per
  // sequence; at the smallest training batch always.
  for (int b : {8, 12, 16, 24, 32}) {
    const Tree t = explain::predicted_tree(llama, b, 1, shipped, o);
    double least = raw_per_sequence(b);
    for (int k = 8; k < b; ++k) least = std::min(least, raw_per_sequence(k));
    EXPECT_NEAR(*t.root().predicted_energy_j / b, least, 1e-9 * least) << "batch " << b;
    EXPECT_EQ(t.provenance.count("batch_held"), least < raw_per_sequence(b) ? 1u : 0u) << "batch " << b;
  }
  // A generation's energy per generated token.
  double previous = 0;
  for (int b : {1, 8, 32, 64, 128}) {
    explain::GenerationRequest r;
    r.batch = b;
    r.prompt = 128;
    r.generate = 4;
    const explain::Generation g = explain::predict_generation(llama, r, shipped);
    if (b > 1) EXPECT_LE(g.per_token.j, previous * (1 + 1e-12)) << "batch " << b;
    if (b > 32) EXPECT_EQ(g.batch_held.size(), 2u) << "batch " << b;  // prefill and decode, above the training batches
    // The first and last steps' trees are the steps the table lists.
    EXPECT_NEAR(*g.first_step.root().predicted_energy_j, g.steps.front().energy.j, 1e-9 * g.steps.front().energy.j)
        << "batch " << b;
    EXPECT_NEAR(*g.last_step.root().predicted_energy_j, g.steps.back().energy.j, 1e-9 * g.steps.back().energy.j)
        << "batch " << b;
    previous = g.per_token.j;
  }

  IRENE_REQUIRE_DATASET(irene_test::dataset_dir());
  const auto trees = import_device_folder(irene_test::dataset_dir() / "device_1");
  predict::Config c = predict::load_config((fs::path(IRENE_SOURCE_DIR) / "configs" / "model-specs.json").string());
  Predictor::TrainOptions t;
  t.intervals = false;
  const Predictor trained = Predictor::train(trees, c, t);
  EXPECT_EQ(check_per_token(trained, first), 0) << first;
}

TEST(PredictMonotone, ShippedPredictorNeverFallsAsTheInputGrows) {
  const Predictor p = Predictor::load_default();
  ASSERT_FALSE(p.needs_resource_features());
  check_every_builtin_model(p, "shipped predictor");
}

TEST(PredictMonotone, DefaultConfigurationModelSpecPredictorNeverFallsAsTheInputGrows) {
  const fs::path dir = irene_test::dataset_dir() / "device_2";
  IRENE_REQUIRE_DATASET(irene_test::dataset_dir());
  // Trained here on the other device, with the model-spec variant of the default
  // configuration: monotonicity is a property of the configuration, not of one file.
  const auto trees = import_device_folder(dir);
  predict::Config c = predict::load_config((fs::path(IRENE_SOURCE_DIR) / "configs" / "model-specs.json").string());
  Predictor::TrainOptions o;
  o.intervals = false;
  const Predictor p = Predictor::train(trees, c, o);
  check_every_builtin_model(p, "default-configuration model-spec predictor trained on device_2");
}
