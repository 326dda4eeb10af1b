// bench_exec: irene's executor running a whole model (the tree's root: every child and op,
// as built by arch/) against the same model written in plain libtorch code (the Hugging Face
// BertModel forward: views, permutes and all), same batch, sequence length and threads.
//
//   build/bench/bench_exec [--model bert-base-uncased] [--batch 8] [--seq 32] [--threads 0]
//                          [--seconds 2] [--rounds 5]
//
// Each round times a window of >= --seconds of back-to-back forward passes of each, alternating
// (executor, plain, executor, plain, ...) so that both see the same machine state; prints the
// median seconds per forward pass of each, wall clock and process CPU time (the latter barely
// moves when other processes share the CPUs), and their ratios (the executor's overhead).
// Only BERT-family models (bert, roberta configs) have a plain-libtorch version here.
#include <fmt/format.h>
#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/measure/blas.hpp"
#include "irene/measure/executor.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Linear {
  torch::Tensor w, b;
  Linear(std::int64_t in, std::int64_t out) : w(torch::randn({out, in}) * 0.02), b(torch::randn({out}) * 0.02) {}
  torch::Tensor operator()(const torch::Tensor& x) const { return torch::linear(x, w, b); }
};

struct LayerNorm {
  torch::Tensor w, b;
  std::int64_t h;
  explicit LayerNorm(std::int64_t h_) : w(torch::ones({h_})), b(torch::zeros({h_})), h(h_) {}
  torch::Tensor operator()(const torch::Tensor& x) const { return torch::layer_norm(x, {h}, w, b, 1e-12); }
};

struct Layer {
  Linear q, k, v, ao, inter, out;
  LayerNorm ln1, ln2;
  Layer(std::int64_t h, std::int64_t f) : q(h, h), k(h, h), v(h, h), ao(h, h), inter(h, f), out(f, h), ln1(h), ln2(h) {}
};

// BertModel.forward of Hugging Face transformers 4.x, eval mode, in libtorch.
struct PlainBert {
  std::int64_t H, heads, d;
  torch::Tensor word, pos, type;
  LayerNorm emb_ln;
  std::vector<Layer> layers;
  Linear pool;
  torch::Tensor ids, pos_ids, type_ids, mask;

  PlainBert(const irene::ModelConfig& c, std::int64_t b, std::int64_t s)
      : H(c.hidden_size), heads(c.num_heads), d(c.hidden_size / c.num_heads),
        word(torch::randn({c.vocab_size, H}) * 0.02), pos(torch::randn({c.max_positions, H}) * 0.02),
        type(torch::randn({std::max<std::int64_t>(c.type_vocab_size, 1), H}) * 0.02), emb_ln(H), pool(H, H) {
    for (std::int64_t i = 0; i < c.num_layers; ++i) layers.emplace_back(H, c.intermediate_size);
    ids = torch::randint(0, c.vocab_size, {b, s}, torch::kLong);
    pos_ids = torch::arange(s, torch::kLong).unsqueeze(0);
    type_ids = torch::zeros({b, s}, torch::kLong);
    mask = torch::ones({b, s});
  }

  torch::Tensor heads_view(const torch::Tensor& x) const {
    return x.view({x.size(0), x.size(1), heads, d}).permute({0, 2, 1, 3});
  }

  torch::Tensor forward() const {
    const auto b = ids.size(0), s = ids.size(1);
    auto ext = (1.0 - mask.view({b, 1, 1, s})) * -10000.0;
    auto x = torch::embedding(word, ids) + torch::embedding(pos, pos_ids);
    x = x + torch::embedding(type, type_ids);
    x = emb_ln(x);
    const double scale = std::sqrt(static_cast<double>(d));
    for (const auto& l : layers) {
      auto q = heads_view(l.q(x)), k = heads_view(l.k(x)), v = heads_view(l.v(x));
      auto scores = torch::matmul(q, k.transpose(-1, -2)) / scale;
      scores = scores + ext;
      auto probs = torch::softmax(scores, -1);
      auto ctx = torch::matmul(probs, v).permute({0, 2, 1, 3}).contiguous().view({b, s, H});
      auto a = l.ln1(l.ao(ctx) + x);
      auto i = torch::gelu(l.inter(a));
      x = l.ln2(l.out(i) + a);
    }
    return torch::tanh(pool(x.select(1, 0)));
  }
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

struct PerPass {
  double wall = 0;  // seconds per pass, wall clock
  double cpu = 0;   // seconds of process CPU time per pass (robust to other processes on the CPUs)
};

template <typename F>
PerPass per_pass(F&& f, double min_seconds) {
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  long n = 0;
  double elapsed = 0;
  do {
    f();
    ++n;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < min_seconds);
  return {elapsed / static_cast<double>(n), (cpu_seconds() - cpu0) / static_cast<double>(n)};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  irene::measure::ensure_fast_blas(argc, argv);
  std::string model = "bert-base-uncased";
  int batch = 8, seq = 32, threads = 0, rounds = 5;
  double seconds = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--batch") batch = std::stoi(v);
    else if (k == "--seq") seq = std::stoi(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--seconds") seconds = std::stod(v);
    else if (k == "--rounds") rounds = std::stoi(v);
    else {
      fmt::print(stderr, "unknown option {}\n", k);
      return 2;
    }
  }
  const auto config = irene::load_model_config(model);
  if (config.model_type != "bert" && config.model_type != "roberta") {
    fmt::print(stderr, "bench_exec: the plain-libtorch baseline exists for bert/roberta configs only\n");
    return 2;
  }
  irene::measure::torch_threads(threads);
  const auto blas = irene::measure::blas_info();
  fmt::print("{} batch {} seq {}; libtorch {} with {} threads; BLAS {} {} ({})\n", model, batch, seq,
             irene::measure::torch_version(), irene::measure::torch_threads(), blas.kind, blas.core, blas.library);

  const irene::Tree tree = irene::build_tree(config, batch, seq);
  auto executor = irene::measure::prepare_node(tree, 0);
  torch::manual_seed(0);
  c10::InferenceMode guard;
  PlainBert plain(config, batch, seq);
  fmt::print("executor: {} operations per forward pass ({} tree nodes)\n", executor->operation_count(),
             tree.nodes.size());

  // Warm-up both.
  for (int i = 0; i < 3; ++i) {
    executor->run();
    plain.forward();
  }
  std::vector<double> ex, pl, ex_cpu, pl_cpu;
  for (int r = 0; r < rounds; ++r) {
    const PerPass e = per_pass([&] { executor->run(); }, seconds);
    const PerPass p = per_pass([&] { plain.forward(); }, seconds);
    ex.push_back(e.wall);
    pl.push_back(p.wall);
    ex_cpu.push_back(e.cpu);
    pl_cpu.push_back(p.cpu);
    fmt::print("round {}: executor {:.6f} s ({:.6f} CPU s), plain libtorch {:.6f} s ({:.6f} CPU s) per forward pass\n",
               r + 1, e.wall, e.cpu, p.wall, p.cpu);
  }
  fmt::print("median wall: executor {:.6f} s, plain libtorch {:.6f} s per forward pass; ratio executor/plain {:.3f}\n",
             median(ex), median(pl), median(ex) / median(pl));
  fmt::print("median CPU:  executor {:.6f} s, plain libtorch {:.6f} s per forward pass; ratio executor/plain {:.3f}\n",
             median(ex_cpu), median(pl_cpu), median(ex_cpu) / median(pl_cpu));
  return 0;
}
