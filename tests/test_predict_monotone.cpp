// Physically consistent predictions: for every built-in model, the predicted energy of the model
// and of every ML leaf never falls as the batch grows (1 to 256) or the sequence grows (1 to
// 4096 or the model's maximum), and no node is predicted below zero; with the shipped predictor
// and with a default-configuration model-spec predictor trained here.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/data/dataset.hpp"
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

}  // namespace

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
