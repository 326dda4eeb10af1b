// Speed of the IrEne predictor: 6-fold leave-one-model-out cross-validation of device_1 (the
// reference implementation needs about 133 s for it) and prediction of one tree.
//
//   build/bench/bench_predict [DATA_DIR] [--reps N]
//
// DATA_DIR defaults to the dataset folder (IRENE_DATA or ../shared/irene-data). Prints a
// Markdown table of medians over N runs (default 5).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/data/dataset.hpp"
#include "irene/predict/crossval.hpp"
#include "irene/predict/predictor.hpp"
#include "irene/predict/upper.hpp"

using namespace irene;
using namespace irene::predict;

namespace {

double median_seconds(int reps, const std::function<void()>& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path data = default_data_dir();
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else data = argv[i];
  }
  try {
    auto all = import_device_folder(data / "device_1");
    std::vector<Tree> six;
    for (auto& t : all)
      if (t.model_name != "sshleifer/tiny-ctrl") six.push_back(std::move(t));
    const auto measured = measured_trees(six, nullptr);
    std::vector<const Tree*> ptrs;
    for (auto i : measured) ptrs.push_back(&six[i]);
    const auto features = available_features(ptrs, feature_names_of_sets(named_config("paper").feature_sets), nullptr);
    const FlatTrees flat = flatten(ptrs, features);
    const FlatTrees flat_default = flatten(ptrs, features, own_names_for(named_config("default"), features));
    fmt::print("device_1: {} trees, {} nodes, 6 folds; median of {} runs\n\n", flat.trees(), flat.rows(), reps);
    fmt::print("| what | seconds | vs reference (133 s) |\n| --- | --- | --- |\n");
    auto cv = [&](const char* config, int threads, bool baselines, bool simd, bool intervals = false) {
      set_training_simd(simd);
      CrossvalOptions o;
      o.threads = threads;
      o.baselines = baselines;
      o.intervals = intervals ? CrossvalOptions::Intervals::nested : CrossvalOptions::Intervals::none;
      LevelErrors overall;
      const Config c = named_config(config);
      const FlatTrees& data = own_names_for(c, features).empty() ? flat : flat_default;
      const double s = median_seconds(reps, [&] { overall = crossval(data, c, o).main.overall; });
      fmt::print("| crossval `{}`, {} thread{}{}{}{} | {:.3f} | {:.0f}x faster |\n", config, threads,
                 threads > 1 ? "s" : "", baselines ? ", with the 4 baselines" : "",
                 intervals ? ", nested interval calibration (15 more fits)" : "",
                 simd ? "" : ", portable kernels (no AVX2)", s, 133.0 / s);
      return s;
    };
    cv("paper", 1, false, true);
    cv("paper", 2, false, true);
    cv("paper", 1, false, false);
    cv("paper", 2, true, true);
    cv("paper", 2, true, true, true);  // what `irene crossval --config paper` runs
    cv("default", 1, false, true);
    cv("default", 2, false, true);
    cv("default", 2, true, true, true);  // what `irene crossval` runs
    set_training_simd(true);

    // Prediction of one tree: bert-base-uncased, batch 8, seq 128, built from its config, with
    // the shipped predictor; and an imported tree with a full-feature predictor.
    const Predictor shipped = Predictor::load_default();
    const Tree bert = build_tree(load_model_config("bert-base-uncased"), 8, 128);
    Tree work = bert;
    const int n = 2000;
    const double one = median_seconds(5, [&] {
      for (int i = 0; i < n; ++i) {
        work = bert;
        shipped.predict(work);
      }
    }) / n;
    Predictor::TrainOptions to;
    to.intervals = false;
    const Predictor full = Predictor::train(six, named_config("paper"), to);
    const Tree& imported = six.front();
    const double one_full = median_seconds(5, [&] {
      for (int i = 0; i < n; ++i) {
        work = imported;
        full.predict(work);
      }
    }) / n;
    fmt::print("\n| predict one tree | ms |\n| --- | --- |\n");
    fmt::print("| bert-base-uncased 8x128 ({} nodes), shipped model-spec predictor ({} terms, own operations, range "
               "checks) | {:.3f} |\n",
               bert.nodes.size(), shipped.model().upper.poly.outputs(), one * 1e3);
    fmt::print("| {} ({} nodes), paper predictor, all 14 features (680 terms) | {:.3f} |\n", imported.key(),
               imported.nodes.size(), one_full * 1e3);
  } catch (const std::exception& e) {
    std::cerr << "bench_predict: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
