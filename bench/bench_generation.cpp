// Speed of building the trees of a decoder LLM and of predicting the energy of generating text:
// Llama-2-7b (the built-in config), the shipped predictor.
//
//   build/bench/bench_generation [--reps N]
//
// Prints Markdown tables of medians over N runs (default 5): build_tree of a prefill and of a
// decode step; Predictor::predict of one decode step; predict_generation of a 4096-token
// generation (prompt 1 + 4095 steps, and prompt 512 + 4096 steps past the 4096 positions with
// allow_long); and, for scale, the naive way: build and predict every step's tree (64 steps timed,
// scaled to 4096).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/explain/generation.hpp"
#include "irene/predict/predictor.hpp"

using namespace irene;

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
  int reps = 5;
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
  try {
    const ModelConfig c = load_model_config("meta-llama/Llama-2-7b-hf");
    const Predictor p = Predictor::load_default();
    BuildOptions decode;
    decode.phase = kDecode;
    decode.past = 2048;
    decode.head = "lm";
    decode.last_token_logits = true;
    const Tree step = build_tree(c, 1, 1, decode);
    fmt::print("meta-llama/Llama-2-7b-hf, batch 1, shipped predictor ({}); median of {} runs\n\n", p.hardware(), reps);
    fmt::print("| what | ms |\n| --- | --- |\n");
    fmt::print("| build_tree, prefill of 512 tokens ({} nodes) | {:.3f} |\n", build_tree(c, 1, 512).nodes.size(),
               1e3 * median_seconds(reps * 20, [&] { build_tree(c, 1, 512); }));
    fmt::print("| build_tree, one decode step at past 2048 ({} nodes) | {:.3f} |\n", step.nodes.size(),
               1e3 * median_seconds(reps * 20, [&] { build_tree(c, 1, 1, decode); }));
    fmt::print("| Predictor::predict of that step | {:.3f} |\n", 1e3 * median_seconds(reps * 20, [&] {
                 Tree t = step;
                 p.predict(t);
               }));
    auto gen = [&](int prompt, int generate, bool allow_long) {
      explain::GenerationRequest r;
      r.batch = 1;
      r.prompt = prompt;
      r.generate = generate;
      r.pass.allow_long = allow_long;
      explain::Generation g;
      const double s = median_seconds(reps, [&] { g = explain::predict_generation(c, r, p); });
      fmt::print("| predict_generation, prompt {} + generate {}{} (total {:.1f} J) | {:.1f} |\n", prompt, generate,
                 allow_long ? ", --allow-long" : "", g.total.j, 1e3 * s);
    };
    gen(1, 4095, false);
    gen(512, 4096, true);
    // The naive way: every step's tree built and predicted on its own.
    const int naive_steps = 64;
    const double naive = median_seconds(std::max(1, reps / 2), [&] {
      for (int k = 0; k < naive_steps; ++k) {
        BuildOptions o = decode;
        o.past = 512 + k;
        Tree t = build_tree(c, 1, 1, o);
        p.predict(t);
      }
    });
    fmt::print("| for scale: build + predict every step's tree, 4096 steps (64 timed x 64) | {:.1f} |\n",
               1e3 * naive * 4096 / naive_steps);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_generation: {}\n", e.what());
    return 1;
  }
  return 0;
}
