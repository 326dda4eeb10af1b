// Hardware profiles, measured serving runs, the serving predictor and its cross-validation
// (src/irene/hardware, src/irene/serving).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "irene/arch/config.hpp"
#include "irene/arch/family_table.hpp"
#include "irene/arch/module_kind.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/hardware/hardware.hpp"
#include "irene/explain/server.hpp"
#include "irene/explain/source.hpp"
#include "irene/serving/crossval.hpp"
#include "irene/serving/predictor.hpp"
#include "irene/serving/request.hpp"
#include "irene/serving/runs.hpp"
#include "test_util.hpp"

using namespace irene;
using namespace irene_test;

namespace {

const char* kHeader =
    "model_id,task,architecture,weight_precision,total_params_billions,activated_params_billions,gpu_model,num_gpus,"
    "tensor_parallel,expert_parallel,data_parallel,max_num_seqs,avg_batch_size,avg_output_len,energy_per_token_"
    "joules,energy_per_request_joules,avg_power_watts,median_itl_ms,p90_itl_ms,output_throughput_tokens_per_sec\n";

std::string row(const std::string& model, const std::string& gpu, int gpus, int seqs, double batch, double out,
                double ept, double power, double itl_ms) {
  std::ostringstream s;
  s << model << ",lm-arena-chat,Dense Transformer,bfloat16,8,8," << gpu << ',' << gpus << ',' << gpus << ",1,1," << seqs
    << ',' << batch << ',' << out << ',' << ept << ',' << ept * out << ',' << power << ',' << itl_ms << ','
    << itl_ms * 1.5 << ',' << batch / itl_ms * 1000 << '\n';
  return s.str();
}

std::string source(const std::string& rel) { return std::string(IRENE_SOURCE_DIR) + "/" + rel; }

// A predictor with the same coefficients for every regressor (the truth of the synthetic table).
serving::ServingPredictor truth() {
  serving::ServingPredictor p;
  p.itl.tau0 = 0.002;
  p.itl.tau_seq = 2e-5;
  p.itl.tau_allreduce = 1e-5;
  p.itl.alpha_shared = 1.3;
  p.itl.beta_shared = 0.4;
  p.itl.gamma = 1.0;
  p.itl.delta = 1.5;
  p.wall = p.itl;
  p.s_step = 0.001;
  p.s_seq = 1e-5;
  p.rho_shared = 0.5;
  p.a_shared = 0.3;
  p.b = 0.6;
  p.g = 0.1;
  p.d = 0.2;
  p.e_ar = 1e-6;
  return p;
}

// A chat workload (prompt 180, output 400 tokens) at `batch` sequences over `gpus` GPUs.
serving::Workload chat_workload(double batch, int gpus) {
  serving::Workload w;
  w.batch = batch;
  w.prompt_tokens = 180;
  w.output_tokens = 400;
  w.gpus = gpus;
  return w;
}

// A table whose labels are `t`'s predictions (truth()'s by default) for three Llama
// configurations on H100 and B200.
std::string synthetic_table(const fs::path& dir, const serving::ServingPredictor& t = truth()) {
  const std::vector<std::pair<std::string, int>> models = {
      {source("tests/data/llm/Meta-Llama-3-8B.json"), 1},
      {source("configs/serving-models/meta-llama/Llama-3.1-70B-Instruct"), 4},
      {source("models/meta-llama/Llama-2-7b-hf"), 1}};
  std::string csv = kHeader;
  for (const char* gpu : {"H100", "B200"}) {
    const auto& hw = *hardware::find_builtin(gpu);
    for (const auto& [m, g] : models) {
      const ModelConfig c = load_model_config(m);
      for (int b : {8, 32, 128, 256}) {
        serving::Workload w;
        w.gpus = g;
        w.batch = b;
        w.prompt_tokens = serving::task_prompt_tokens("lm-arena-chat");
        w.output_tokens = 400;
        w.output_distribution = serving::task_output_distribution("lm-arena-chat", 400);  // as prepare_table reads a row
        const auto sp = serving::predict_step(t, serving::step_work(c, w, hw));
        csv += row(m, gpu, g, b, b, 400, sp.energy_j / b, sp.energy_j / sp.time_s, 1000 * sp.time_s);
      }
    }
  }
  csv += row("org/not-a-model", "H100", 1, 8, 8, 400, 0.5, 500, 7);
  const fs::path p = dir / "table.csv";
  write_text(p, csv);
  return p.string();
}

}  // namespace

TEST(Hardware, BuiltinProfilesCarryDatasheetFactsAndSources) {
  for (const char* n : {"A100-40GB", "A100-80GB", "H100", "H200", "B200", "L40S", "RTX-4090", "MI300X"}) {
    const hardware::Profile* p = hardware::find_builtin(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_GT(p->memory_bytes, 0) << n;
    EXPECT_GT(p->memory_bandwidth, 0) << n;
    EXPECT_GT(p->peak_bf16, 0) << n;
    EXPECT_GT(p->tdp_watts, 0) << n;
    ASSERT_FALSE(p->sources.empty()) << n;
    EXPECT_EQ(p->sources.front().rfind("https://", 0), 0u) << n;
  }
  const auto& h100 = *hardware::find_builtin("h100-sxm");  // aliases, any case
  EXPECT_EQ(h100.name, "H100");
  EXPECT_DOUBLE_EQ(h100.memory_bandwidth, 3.35e12);
  EXPECT_DOUBLE_EQ(h100.peak_flops("fp8"), 1979e12);
  EXPECT_DOUBLE_EQ(hardware::find_builtin("B200")->peak_flops("mxfp4"), 9e15);
  // no fp8 tensor cores on the A100: it runs at the bf16 peak
  EXPECT_DOUBLE_EQ(hardware::find_builtin("A100-80GB")->peak_flops("fp8"), 312e12);
  EXPECT_DOUBLE_EQ(h100.peak_flops("mxfp4"), 1979e12);
  EXPECT_NE(error_of([&] { h100.peak_flops("int3"); }).find("unknown precision 'int3'"), std::string::npos);
  EXPECT_EQ(hardware::find_builtin("nope"), nullptr);
}

TEST(Hardware, JsonProfileAndItsErrors) {
  const fs::path d = fresh_dir("hw");
  write_text(d / "x.json",
             R"({"name": "X1", "memory_bytes": 1e10, "memory_bandwidth_bytes_per_s": 1e12,
                 "peak_flops_per_s": {"bf16": 1e14, "fp8": 2e14}, "tdp_watts": 300, "sources": ["https://x"]})");
  const auto p = hardware::load_profile((d / "x.json").string());
  EXPECT_EQ(p.name, "X1");
  EXPECT_DOUBLE_EQ(p.peak_flops("fp8"), 2e14);
  EXPECT_FALSE(p.peak_fp4.has_value());
  EXPECT_EQ(hardware::hardware_to_json(p)["peak_flops_per_s"]["fp4"], nullptr);
  write_text(d / "bad.json", R"({"memory_bytes": 1e10, "peak_flops_per_s": {"bf16": 1e14}, "tdp_watts": 300})");
  const std::string e = error_of([&] { hardware::load_profile((d / "bad.json").string()); });
  EXPECT_NE(e.find("bad.json: hardware field 'memory_bandwidth_bytes_per_s' is missing"), std::string::npos) << e;
  write_text(d / "neg.json",
             R"({"memory_bytes": -1, "memory_bandwidth_bytes_per_s": 1, "peak_flops_per_s": {"bf16": 1}, "tdp_watts": 1})");
  EXPECT_NE(error_of([&] { hardware::load_profile((d / "neg.json").string()); }).find("'memory_bytes' is -1"),
            std::string::npos);
  const std::string u = error_of([] { hardware::load_profile("H900"); });
  EXPECT_NE(u.find("unknown hardware 'H900': not a built-in profile (A100-40GB"), std::string::npos) << u;
  fs::remove_all(d);
}

TEST(Hardware, FitCheckRefusesWhatDoesNotFitSayingByHowMuch) {
  const auto& hw = *hardware::find_builtin("RTX-4090");
  hardware::MemoryNeed need{.weights_bytes = 16e9, .kv_cache_bytes = 10e9, .activations_bytes = 1e9};
  const std::string e = error_of([&] { hardware::check_fit(need, hw, "the thing", false); });
  EXPECT_NE(e.find("the thing does not fit on RTX-4090"), std::string::npos) << e;
  EXPECT_NE(e.find(fmt::format("{:.1f} GiB more than its 22.4 GiB", (27e9 - 24e9) / (1 << 30))), std::string::npos) << e;
  EXPECT_NEAR(hardware::check_fit(need, hw, "x", true), 27.0 / 24.0, 1e-12);
  need.kv_cache_bytes = 1e9;
  EXPECT_LT(hardware::check_fit(need, hw, "x", false), 1.0);
}

TEST(ServingRuns, ReadsTheTableAndRefusesBadRowsByLine) {
  const fs::path d = fresh_dir("runs");
  write_text(d / "ok.csv", std::string(kHeader) + row("m/a", "H100", 1, 8, 7.99, 400, 0.45, 486, 7.32));
  const auto t = serving::read_serving_csv(d / "ok.csv");
  ASSERT_EQ(t.runs.size(), 1u);
  EXPECT_EQ(t.runs[0].line, 2);
  EXPECT_DOUBLE_EQ(t.runs[0].median_itl_s, 0.00732);
  EXPECT_DOUBLE_EQ(t.runs[0].step_energy_j(), 0.45 * 7.99);
  EXPECT_TRUE(serving::is_serving_csv(d / "ok.csv"));
  const auto bad = [&](const std::string& text) {
    write_text(d / "bad.csv", text);
    return error_of([&] { serving::read_serving_csv(d / "bad.csv"); });
  };
  std::string r = row("m/a", "H100", 1, 8, 8, 400, 0.45, 486, 7.32);
  std::string e = bad(std::string(kHeader) + r + r.substr(0, r.find(",8,400")) + ",abc,400,1,1,1,1,1,1\n");
  EXPECT_NE(e.find("bad.csv:3: column 'avg_batch_size': 'abc' is not a number"), std::string::npos) << e;
  e = bad(std::string(kHeader) + "m/a,chat\n");
  EXPECT_NE(e.find("bad.csv:2: 2 fields where the header has 20"), std::string::npos) << e;
  e = bad("model_id,task\nm,t\n");
  EXPECT_NE(e.find("bad.csv:1: the header has no column 'architecture'"), std::string::npos) << e;
  e = bad(std::string(kHeader) + row("m/a", "H100", 1, 8, 9, 400, 0.45, 486, 7.32));
  EXPECT_NE(e.find("bad.csv:2: avg_batch_size 9 is above max_num_seqs 8"), std::string::npos) << e;
  e = bad(std::string(kHeader) + row("m/a", "H100", 1, 8, 8, 400, -0.45, 486, 7.32));
  EXPECT_NE(e.find("column 'energy_per_token_joules': -0.45 must be positive"), std::string::npos) << e;
  e = bad(std::string(kHeader));
  EXPECT_NE(e.find("no rows after the header"), std::string::npos) << e;
  fs::remove_all(d);
}

TEST(ServingStep, CountsWhatAServingEngineRuns) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  const auto& hw = *hardware::find_builtin("H100");
  serving::Workload w;
  w.batch = 8;
  w.prompt_tokens = 180;
  w.output_tokens = 400;
  const auto s = serving::step_work(c, w, hw);
  EXPECT_EQ(s.tree.past_len, 380);
  EXPECT_DOUBLE_EQ(s.weight_bytes, 8030261248.0 * 2);
  EXPECT_EQ(s.allreduces, 0);
  double sdpa_bytes = 0, decode_bytes = 0;
  for (const auto& u : s.units) {
    if (u.prefill) continue;
    decode_bytes += u.bytes;
    if (u.key == "ScaledDotProductAttention") sdpa_bytes += u.bytes;
    EXPECT_NE(u.key, "op:repeat_kv");
  }
  // the cache read once per key/value head (8 of them, not the 32 query heads)
  const double cache = 8.0 * 32 * (8 * 2 * 381 * 128) * 2;
  EXPECT_GT(sdpa_bytes, cache);
  EXPECT_LT(sdpa_bytes, cache * 1.02);
  // every weight once (the embedding table only for the rows gathered)
  EXPECT_GT(decode_bytes, s.weight_bytes - 128256.0 * 4096 * 2);
  EXPECT_LT(decode_bytes, s.weight_bytes);
  // Launches as the engine fuses them (32 layers): a normalization is one kernel (its bytes as
  // the registry counts them); the residual adds (fused into the norms),
  // the gate's product (silu_and_mul) and the rotary table launch nothing; the rotary embedding
  // is one kernel per rotated tensor; every Linear, attention and activation one.
  std::map<std::string, double> kernels;
  for (const auto& u : s.units) {
    if (u.prefill) continue;
    kernels[u.key] += u.kernels;
    if (u.key == "RMSNorm") EXPECT_DOUBLE_EQ(u.bytes, primitive_traffic(s.tree.nodes[u.node], 2));
  }
  EXPECT_EQ(kernels["RMSNorm"], 2 * 32 + 1);
  EXPECT_EQ(kernels["op:add"], 0);
  EXPECT_EQ(kernels["op:mul"], 0);
  EXPECT_EQ(kernels["op:rotary_cos_sin"], 0);
  EXPECT_EQ(kernels["op:rotary"], 2 * 32);
  EXPECT_EQ(kernels["Linear"], 7 * 32 + 1);
  EXPECT_EQ(kernels["ScaledDotProductAttention"], 32);
  EXPECT_EQ(kernels["SiLU"], 32);
  // fp8 weights: half the Linear weight traffic; tensor parallelism: two all-reduces per layer
  w.precision = "fp8";
  w.gpus = 2;
  const auto f = serving::step_work(c, w, hw);
  EXPECT_DOUBLE_EQ(f.weight_bytes, 8030261248.0 * (1 + 4.0 / (128 * 128)));  // + block scales
  EXPECT_EQ(f.allreduces, 64);
  EXPECT_GT(f.allreduce_s, 0);
  EXPECT_NEAR(f.memory.weights_bytes, 8030261248.0 * (1 + 4.0 / (128 * 128)) / 2, 1);
  w.gpus = 3;
  EXPECT_NE(error_of([&] { serving::step_work(c, w, hw); }).find("32 attention heads cannot be split across 3 GPUs"),
            std::string::npos);
}

// Lengths as distributions: a sequence in flight is a request weighted by its output length, so a
// spread of output lengths raises the mean context by Var(O) / (2 E[O]) and the cache the memory
// check counts by Var(O) / E[O]; a spread of prompt lengths carries one prefill per length, whose
// attention costs more than that of their mean; a distribution of one length is the mean itself.
TEST(ServingStep, LengthDistributionsWeightSequencesInFlightByTheirOutput) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  const auto& hw = *hardware::find_builtin("H100");
  const serving::Workload mean = chat_workload(8, 1);  // prompt 180, output 400
  const auto plain = serving::step_work(c, mean, hw);
  const auto flops = [](const serving::StepWork& s, bool prefill) {
    double f = 0;
    for (const auto& u : s.units)
      if (u.prefill == prefill) f += u.flops;
    return f;
  };
  // outputs of 100 and 700 tokens, half each: E[O] 400, E[O^2] 250,000
  serving::Workload spread = mean;
  spread.output_distribution = {{100, 0.5}, {700, 0.5}};
  EXPECT_DOUBLE_EQ(serving::mean_context_in_flight(spread), 180 + 250000.0 / 800);
  EXPECT_DOUBLE_EQ(serving::mean_final_length_in_flight(spread), 180 + 250000.0 / 400);
  const auto out = serving::step_work(c, spread, hw);
  EXPECT_EQ(out.tree.past_len, 493);
  EXPECT_EQ(plain.tree.past_len, 380);
  EXPECT_NEAR(out.memory.kv_cache_bytes / plain.memory.kv_cache_bytes, 805.0 / 580, 1e-12);
  EXPECT_DOUBLE_EQ(flops(out, true), flops(plain, true));  // the same prompts, the same requests per step
  EXPECT_GT(flops(out, false), flops(plain, false));       // longer contexts in flight
  // prompts of 40 and 320 tokens, half each (mean 180): two prefills, the same tokens per step
  serving::Workload prompts = mean;
  prompts.prompt_distribution = {{40, 0.5}, {320, 0.5}};
  const auto pre = serving::step_work(c, prompts, hw);
  EXPECT_EQ(pre.tree.past_len, 380);
  EXPECT_GT(flops(pre, true), flops(plain, true));  // attention over 320 costs more than twice 180's half
  EXPECT_LT(flops(pre, true), 1.05 * flops(plain, true));  // the Linear work is the same tokens'
  // one length is the mean; more work never costs less
  serving::Workload one = mean;
  one.output_distribution = {{400, 1}};
  one.prompt_distribution = {{180, 1}};
  const auto same = serving::step_work(c, one, hw);
  EXPECT_EQ(same.units.size(), plain.units.size());
  EXPECT_DOUBLE_EQ(flops(same, false) + flops(same, true), flops(plain, false) + flops(plain, true));
  const auto p = truth();
  EXPECT_GT(serving::predict_step(p, out).energy_j, serving::predict_step(p, plain).energy_j);
  EXPECT_GT(serving::predict_step(p, pre).energy_j, serving::predict_step(p, plain).energy_j);
  // a distribution that is not one
  serving::Workload bad = mean;
  bad.output_distribution = {{100, 0.5}, {700, 0.6}};
  EXPECT_NE(error_of([&] { serving::step_work(c, bad, hw); }).find("output distribution: shares sum to 1.1"),
            std::string::npos);
  bad.output_distribution = {{100, 0.5}, {600, 0.5}};
  EXPECT_NE(error_of([&] { serving::step_work(c, bad, hw); }).find("its mean 350 is not the workload's 400"),
            std::string::npos);
  bad = mean;
  bad.prompt_distribution = {{-1, 0.5}, {361, 0.5}};
  EXPECT_NE(error_of([&] { serving::step_work(c, bad, hw); }).find("prompt distribution: length -1"), std::string::npos);
  bad.prompt_distribution = {{40, 0}, {180, 1}};
  EXPECT_NE(error_of([&] { serving::step_work(c, bad, hw); }).find("prompt distribution: share 0 of length 40 is not positive"),
            std::string::npos);
  bad = mean;
  for (int i = 0; i < 65; ++i) bad.output_distribution.emplace_back(400, 1.0 / 65);
  EXPECT_NE(error_of([&] { serving::step_work(c, bad, hw); }).find("output distribution: 65 lengths, more than 64"),
            std::string::npos);
}

TEST(ServingStep, TasksSpreadTheirOutputsAsTheirPublishedLengths) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  const auto& hw = *hardware::find_builtin("H100");
  std::map<std::string, double> dispersion;
  for (const char* task : {"lm-arena-chat", "gpqa", "sourcegraph-fim"}) {
    const auto& shape = serving::task_output_shape(task);
    ASSERT_EQ(shape.size(), 24u) << task;
    double shares = 0;
    for (const auto& [x, share] : shape) shares += share;
    EXPECT_NEAR(shares, 1, 1e-12) << task;
    EXPECT_TRUE(std::is_sorted(shape.begin(), shape.end())) << task;  // groups by length
    // scaled to a mean: exactly that mean, and the step builds with it
    serving::Workload w = chat_workload(8, 1);
    w.prompt_tokens = serving::task_prompt_tokens(task);
    w.output_tokens = 333;
    w.output_distribution = serving::task_output_distribution(task, 333);
    double m1 = 0, m2 = 0;
    for (const auto& [x, share] : w.output_distribution) m1 += share * x, m2 += share * x * x;
    EXPECT_NEAR(m1, 333, 1e-9) << task;
    dispersion[task] = m2 / (m1 * m1);
    const auto step = serving::step_work(c, w, hw);
    // longer answers stay in flight for more steps: the contexts in flight are longer than at
    // the mean, by E[O^2] / (2 E[O]) - E[O] / 2
    EXPECT_EQ(step.tree.past_len, std::lround(w.prompt_tokens + 333 * dispersion[task] / 2)) << task;
    EXPECT_GT(step.tree.past_len, w.prompt_tokens + 333 / 2.0 + 50) << task;
  }
  // code completions: mostly short, a long tail; reasoning: the least spread
  EXPECT_GT(dispersion["sourcegraph-fim"], dispersion["lm-arena-chat"]);
  EXPECT_GT(dispersion["lm-arena-chat"], dispersion["gpqa"]);
  EXPECT_GT(dispersion["gpqa"], 1.2);
  // one table of tasks: the names --task takes, their prompts and shapes
  ASSERT_EQ(serving::serving_tasks().size(), 3u);
  for (const auto& t : serving::serving_tasks()) {
    EXPECT_EQ(serving::find_serving_task(t.name), &t);
    EXPECT_EQ(serving::task_prompt_tokens(t.name), t.prompt_tokens);
    EXPECT_EQ(&serving::task_output_shape(t.name), t.output_shape);
  }
  EXPECT_EQ(serving::find_serving_task("translation"), nullptr);
  EXPECT_EQ(serving::task_prompt_tokens("translation"), 256);
  EXPECT_TRUE(serving::task_output_shape("translation").empty());
  EXPECT_TRUE(serving::task_output_distribution("", 400).empty());
}

// A served mixture of experts reads the weights of the experts its step's tokens choose (uniform
// routing): Qwen3-30B-A3B (128 experts, top 8) at batch 1 reads 8 experts' weights per layer, at
// batch 512 nearly all 128; spread over GPUs (expert parallel, attention data-parallel), every
// rank reads the attention weights and only one collective per layer remains.
TEST(ServingStep, MixtureOfExpertsReadsTheExpertsItsTokensChoose) {
  const ModelConfig c = serving::load_serving_model("Qwen/Qwen3-30B-A3B-Instruct-2507");
  const auto& hw = *hardware::find_builtin("H100");
  serving::Workload w;
  w.prompt_tokens = 0;
  w.output_tokens = 400;
  const auto expert_weight_bytes = [&](double batch, int gpus, int dp, std::string_view key) {
    w.batch = batch;
    w.gpus = gpus;
    w.data_parallel = dp;
    const auto s = serving::step_work(c, w, hw);
    double bytes = 0;
    for (const auto& u : s.units)
      if (!u.prefill && u.key.rfind(key, 0) == 0) {
        const Node& n = s.tree.nodes[u.node];
        const double rows = static_cast<double>(attr(n, "batch"));
        bytes += u.bytes - 2 * rows * (attr(n, "in_features") + attr(n, "out_features"));
      }
    return std::pair{bytes, s};
  };
  // per layer: gate_proj, up_proj, down_proj of one expert = 3 x 2048 x 768 weights, bfloat16
  const double one_expert_all_layers = 48.0 * 3 * 2048 * 768 * 2;
  const auto [b1, s1] = expert_weight_bytes(1, 1, 1, "Linear:experts");
  EXPECT_NEAR(b1 / one_expert_all_layers, 8.0, 1e-6);
  const auto [b512, s512] = expert_weight_bytes(512, 1, 1, "Linear:experts");
  EXPECT_NEAR(b512 / one_expert_all_layers, 128.0 * (1 - std::pow(1 - 8.0 / 128, 512)), 1e-6);
  EXPECT_GT(b512 / one_expert_all_layers, 127.9);
  // the parameters count every expert
  EXPECT_DOUBLE_EQ(s1.weight_bytes, static_cast<double>(s1.tree.root().num_parameters) * 2);
  EXPECT_GT(s1.weight_bytes, 30e9 * 2);
  // two GPUs: one all-reduce pair per layer with attention tensor-parallel, one collective with
  // attention data-parallel, whose ranks each read the attention projections
  const auto [tp_attn, tp] = expert_weight_bytes(64, 2, 1, "Linear");
  const auto [dp_attn, dp] = expert_weight_bytes(64, 2, 2, "Linear");
  EXPECT_EQ(tp.allreduces, 2.0 * 48);
  EXPECT_EQ(dp.allreduces, 48.0);
  const double attention_weights = 48.0 * (2048.0 * 4096 * 2 + 2048.0 * 512 * 2) * 2;
  EXPECT_NEAR(dp_attn - tp_attn, attention_weights, 1e-6 * attention_weights);
  w.data_parallel = 3;
  EXPECT_NE(error_of([&] { serving::step_work(c, w, hw); }).find("data-parallel ranks (3) must divide the 2 GPUs"),
            std::string::npos);
}

// Issue 19's energy checks with the serving predictor fitted on the ML.ENERGY table: per-token
// energy of a mixture of experts falls with batch less steeply than a dense model's of its
// active size (its steps read more experts' weights as the batch grows), and its prefill costs
// less than a dense model's of its total size (the FLOPs of k of E experts per token).
TEST(ServingPredictor, MixtureOfExpertsAgainstDenseModelsOfItsActiveAndTotalSize) {
  const auto table = serving::default_table();
  std::error_code ec;
  if (table.empty() || !std::filesystem::is_regular_file(table, ec)) GTEST_SKIP() << "no serving table";
  const ModelConfig moe = load_model_config("mistralai/Mixtral-8x7B-v0.1");
  ModelConfig active = load_model_config("mistralai/Mistral-7B-v0.1");  // 2 experts wide
  set_config_value(active, "intermediate_size", "28672");
  ModelConfig total = load_model_config("mistralai/Mistral-7B-v0.1");  // 8 experts wide
  set_config_value(total, "intermediate_size", "114688");
  const auto hw = hardware::load_profile("B200");
  const auto report = [&](const ModelConfig& c, double batch) {
    serving::Workload w;
    w.batch = batch;
    w.prompt_tokens = 512;
    w.output_tokens = 256;
    return serving::serving_report(c, w, hw, table, false);
  };
  const auto per_token = [](const nlohmann::json& r) { return r["energy_per_token_j"]["value"].get<double>(); };
  const auto prefill_j = [](const nlohmann::json& r) {
    return r["step_j"]["value"].get<double>() * r["prefill_share_pct"].get<double>() / 100;
  };
  const double moe_fall = per_token(report(moe, 1)) / per_token(report(moe, 64));
  const double dense_fall = per_token(report(active, 1)) / per_token(report(active, 64));
  EXPECT_GT(moe_fall, 1.0);
  EXPECT_LT(moe_fall, dense_fall) << "Mixtral falls " << moe_fall << "x from batch 1 to 64, its active size "
                                  << dense_fall << "x";
  EXPECT_LT(prefill_j(report(moe, 8)), prefill_j(report(total, 8)));
}

// gpt-oss (attention with sinks) and DeepSeek-V3 (latent attention) have no sdpa form: their
// steps are built eager and each attention module runs as one fused kernel (FlashAttention with
// sinks, FlashMLA): one unit per layer, queries and outputs once, the cache read once.
TEST(ServingStep, EagerAttentionFamiliesRunOneFusedAttentionPerLayer) {
  const auto& hw = *hardware::find_builtin("B200");
  serving::Workload w;
  w.batch = 4;
  w.prompt_tokens = 0;
  w.output_tokens = 400;  // the mean step attends to 200 + 1 positions
  const auto attention_units = [](const serving::StepWork& s) {
    std::vector<const serving::Unit*> fused;
    const auto kinds = module_kinds_of(s.tree);
    for (const auto& u : s.units) {
      EXPECT_TRUE(u.key != "MatMul" && u.key != "Softmax" && u.key != "AttentionSinks") << u.key;
      if (u.key == "ScaledDotProductAttention") fused.push_back(&u);
      // the attention's own operations on the scores (scaling, mask, sinks) are inside the fused
      // kernel, which never writes the scores: only the rotation and the cache write are left
      if (kinds[static_cast<std::size_t>(u.node)] == ModuleKind::attention && u.key.rfind("op:", 0) == 0)
        EXPECT_TRUE(u.key == "op:rotary" || u.key == "op:cache_cat") << u.key << " " << s.tree.nodes[u.node].id;
    }
    return fused;
  };
  const ModelConfig oss = serving::load_serving_model("openai/gpt-oss-20b");
  const auto s = serving::step_work(oss, w, hw);
  const auto fused = attention_units(s);
  ASSERT_EQ(fused.size(), 24u);
  // 64 query heads of 64, 8 key/value heads; layer 0 slides over 128 keys, layer 1 reads 201.
  const auto bytes = [](double keys) { return 4.0 * 64 * 2 * 64 * 2 + 4.0 * 8 * 2 * keys * 64 * 2; };
  std::map<std::string, double> by_layer;
  for (const auto* u : fused) by_layer[s.tree.nodes[u->node].scope] = u->bytes;
  EXPECT_DOUBLE_EQ(by_layer.at("model.layers.0.self_attn"), bytes(128));
  EXPECT_DOUBLE_EQ(by_layer.at("model.layers.1.self_attn"), bytes(201));
  for (const auto* u : fused) EXPECT_GT(u->flops, 0);

  const ModelConfig ds = serving::load_serving_model("deepseek-ai/DeepSeek-V3.1");
  w.gpus = 8;
  w.precision = "fp8";
  const auto d = serving::step_work(ds, w, hw);
  const auto mla = attention_units(d);
  ASSERT_EQ(mla.size(), 61u);
  // 128 heads' absorbed queries (512 + 64) and latent outputs (512), the 576-element latent cache once.
  EXPECT_DOUBLE_EQ(mla.front()->bytes, 4.0 * 128 * (2 * 512 + 64) * 2 + 4.0 * 201 * 576 * 2);
  // The key/value memory is the latent's: 61 layers x 576 elements x 2 bytes per token.
  EXPECT_DOUBLE_EQ(d.memory.kv_cache_bytes, 4.0 * 400 * 61 * 576 * 2 / 8);

  // gpt2 (and ctrl): eager, and its attention modules record no head_dim or kv_heads: every one
  // of the 12 heads is a key/value head of 768 / 12 = 64 (was refused: "missing attr 'head_dim'").
  const ModelConfig g2 = serving::load_serving_model("gpt2");
  w.gpus = 1;
  w.precision = "bfloat16";
  const auto g = serving::step_work(g2, w, hw);
  const auto mha = attention_units(g);
  ASSERT_EQ(mha.size(), 12u);
  EXPECT_DOUBLE_EQ(mha.front()->bytes, 4.0 * 12 * 2 * 64 * 2 + 4.0 * 12 * 2 * 201 * 64 * 2);
}

TEST(ServingPredictor, NodesAddUpToTheStepAndTheFitRecoversItsTruth) {
  const fs::path d = fresh_dir("fit");
  const auto prepared = serving::prepare_table(serving::read_serving_csv(synthetic_table(d)));
  ASSERT_EQ(prepared.runs.size(), 24u);
  ASSERT_EQ(prepared.skipped.size(), 1u);
  EXPECT_EQ(prepared.skipped[0].model_id, "org/not-a-model");
  std::vector<const serving::PreparedRun*> all;
  for (const auto& r : prepared.runs) all.push_back(&r);
  const auto p = serving::fit_serving(all);
  EXPECT_EQ(p.span.data_parallel_lo, 1);  // every run of the table has attention tensor-parallel
  EXPECT_EQ(p.span.data_parallel_hi, 1);
  for (const auto* r : all) {
    const auto sp = serving::predict_step(p, r->work);
    EXPECT_NEAR(sp.energy_j / r->run->step_energy_j(), 1, 0.02) << r->run->model_id << " " << r->run->avg_batch;
    EXPECT_NEAR(sp.time_s / r->run->median_itl_s, 1, 0.02);
    // the root's units plus the all-reduces and the fixed time are the step
    EXPECT_NEAR(sp.node_j[0] + sp.allreduce_j + sp.overhead_j, sp.energy_j, 1e-9 * sp.energy_j);
    for (std::size_t i = 0; i < r->work.tree.nodes.size(); ++i) {
      double children = 0;
      for (int c : r->work.tree.nodes[i].children) children += sp.node_j[c];
      EXPECT_GE(sp.node_j[i] + 1e-12, children);
    }
  }
  // the library entry for a named profile predicts every node of the step's tree
  Tree tree;
  serving::Workload w;
  w.batch = 16;
  w.prompt_tokens = 100;
  w.output_tokens = 200;
  const auto h200 = serving::predict_decode_step_nodes(p, serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct"), w,
                                                       "H200", &tree);
  ASSERT_EQ(h200.node_j.size(), tree.nodes.size());
  EXPECT_EQ(tree.provenance.at("hardware"), "H200");
  EXPECT_NEAR(h200.node_j[0] + h200.overhead_j + h200.allreduce_j, h200.energy_j, 1e-9 * h200.energy_j);
  // The energy pull: chosen among the tried ones when none is given, taken as given otherwise,
  // and a given pull is the fit's (the same rows and pull give the same coefficients).
  const std::set<double> tried = {0.001, 0.003, 0.01, 0.03, 0.1};
  EXPECT_TRUE(tried.count(p.energy_pull)) << p.energy_pull;
  const auto fixed = serving::fit_serving(all, p.energy_pull);
  EXPECT_EQ(fixed.energy_pull, p.energy_pull);
  EXPECT_DOUBLE_EQ(fixed.a_shared, p.a_shared);
  const auto strong = serving::fit_serving(all, 1e3);
  EXPECT_EQ(strong.energy_pull, 1e3);
  for (const auto& [k, v] : strong.a) EXPECT_NEAR(v, strong.a_shared, 0.05 * strong.a_shared + 1e-9) << k;
  fs::remove_all(d);
}

TEST(ServingCrossval, LeavesOneModelOutWithTheBaselineAndSaysWhatWasSkipped) {
  const fs::path d = fresh_dir("cv");
  const std::string table = synthetic_table(d);
  const auto r = serving::crossval_serving_file(table, "H100");
  EXPECT_EQ(r["hardware"]["name"], "H100");
  EXPECT_EQ(r["rows"]["usable_on_hardware"], 12);
  ASSERT_EQ(r["per_model"].size(), 3u);
  const double mape = r["overall"]["energy_per_token"]["mape"].get<double>();
  EXPECT_TRUE(std::isfinite(mape));
  EXPECT_GE(mape, 0);
  EXPECT_TRUE(r["settings"]["leave_one_model_out"]["baseline_four_totals"]["all"]["mape"].is_number());
  EXPECT_EQ(r["settings"]["few_shot"]["results"].size(), 4u);
  EXPECT_EQ(r["skipped"][0]["model"], "org/not-a-model");
  EXPECT_EQ(r["skipped"][0]["rows"], 1);
  // each model's error is its rows' mean, each row's error |predicted - measured| / measured
  for (const auto& m : r["per_model"]) {
    double s = 0;
    for (const auto& x : m["runs"])
      s += 100 * std::abs(x["predicted_j"].get<double>() - x["measured_j"].get<double>()) / x["measured_j"].get<double>();
    EXPECT_NEAR(m["energy_per_token"]["mape"].get<double>(), s / m["runs"].size(), 1e-9);
  }
  // every row here is dense bfloat16 chat: each carries its prediction fitted on those rows only,
  // whose errors are the protocol's figure
  std::vector<double> own_errors;
  for (const auto& m : r["per_model"]) {
    double s = 0;
    for (const auto& x : m["runs"]) {
      ASSERT_TRUE(x.contains("own_rows_j")) << x;
      s += 100 * std::abs(x["own_rows_j"].get<double>() - x["measured_j"].get<double>()) / x["measured_j"].get<double>();
    }
    own_errors.push_back(s / m["runs"].size());
  }
  EXPECT_NEAR(r["settings"]["leave_one_model_out"]["dense_bfloat16_chat_fitted_on_its_rows"]["per_gpu"]["mape"].get<double>(),
              (own_errors[0] + own_errors[1] + own_errors[2]) / 3, 1e-9);
  // One batch curve per series of a model's runs that differ in batch only: here one per model,
  // from its batch-8 run to its batch-256 run, the ratios those runs' energies per token give.
  EXPECT_EQ(r["overall"]["batch_ratio"]["curves"], 3);
  for (const auto& m : r["per_model"]) {
    ASSERT_EQ(m["batch_ratios"].size(), 1u) << m["model"];
    const auto& br = m["batch_ratio"];
    EXPECT_EQ(br, m["batch_ratios"][0]);
    EXPECT_EQ(br["series"].get<std::string>().rfind("lm-arena-chat, ", 0), 0u) << br["series"];
    EXPECT_EQ(br["runs"], 4);
    double at8 = 0, at256 = 0, pred8 = 0, pred256 = 0;
    for (const auto& x : m["runs"]) {
      if (x["avg_batch"] == 8) at8 = x["measured_j"], pred8 = x["predicted_j"];
      if (x["avg_batch"] == 256) at256 = x["measured_j"], pred256 = x["predicted_j"];
    }
    EXPECT_EQ(br["from_batch"], 8);
    EXPECT_EQ(br["to_batch"], 256);
    EXPECT_DOUBLE_EQ(br["measured"].get<double>(), at256 / at8);
    EXPECT_DOUBLE_EQ(br["predicted"].get<double>(), pred256 / pred8);
  }
  EXPECT_NE(serving::crossval_serving_text(r).find("leave one model out"), std::string::npos);
  EXPECT_NE(serving::crossval_serving_text(r).find("batch curves"), std::string::npos);
  EXPECT_NE(error_of([&] { serving::crossval_serving_file(table, "L40S"); }).find("no usable row for hardware L40S"),
            std::string::npos);
  fs::remove_all(d);
}

TEST(ServingCrossval, ThreadsChangeNoFigureAndEveryFoldReportsProgress) {
  const fs::path d = fresh_dir("cv_threads");
  // the synthetic table with Llama-2-7b's H100 rows moved to a second task, so that leaving one
  // task out runs too
  std::string csv = read_file(synthetic_table(d)), moved;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) {
    if (line.find("Llama-2-7b-hf,") != std::string::npos && line.find(",H100,") != std::string::npos)
      line.replace(line.find(",lm-arena-chat,"), 15, ",gpqa,");
    moved += line + "\n";
  }
  write_text(d / "two-tasks.csv", moved);
  const serving::PreparedTable t = serving::prepare_table(serving::read_serving_csv(d / "two-tasks.csv"));
  const auto& h100 = *hardware::find_builtin("H100");
  std::map<int, std::vector<std::string>> lines;
  std::map<int, nlohmann::json> reports;
  for (int threads : {1, 3}) {
    serving::ServingCrossvalOptions o;
    o.threads = threads;
    o.progress = [&lines, threads](const std::string& line) { lines[threads].push_back(line); };
    reports[threads] = serving::crossval_serving(t, h100, o);
  }
  EXPECT_EQ(reports[1].dump(), reports[3].dump());
  ASSERT_EQ(reports[1]["settings"]["leave_one_task_out"].size(), 2u) << reports[1]["settings"]["leave_one_task_out"];
  EXPECT_EQ(reports[1], serving::crossval_serving(t, h100));  // no options: one thread, no progress
  for (int threads : {1, 3}) {
    // one line per fold (each model once), per task left out and per few-shot k
    std::map<std::string, int> folds;
    int tasks = 0, shots = 0;
    for (const std::string& line : lines[threads]) {
      if (line.rfind("fold ", 0) == 0) ++folds[line.substr(line.find(" left out ") + 10, line.find(':') - line.find(" left out ") - 10)];
      if (line.rfind("leave task ", 0) == 0) ++tasks;
      if (line.rfind("few-shot k = ", 0) == 0) ++shots;
    }
    ASSERT_EQ(folds.size(), reports[1]["per_model"].size()) << threads;
    for (std::size_t k = 0; k < folds.size(); ++k)  // the folds count up in the order they end
      EXPECT_EQ(lines[threads][k].rfind(fmt::format("fold {}/{} left out ", k + 1, folds.size()), 0), 0u)
          << lines[threads][k];
    for (const auto& m : reports[1]["per_model"]) EXPECT_EQ(folds[m["model"].get<std::string>()], 1) << m["model"];
    EXPECT_EQ(tasks, 2);
    EXPECT_EQ(shots, 4);
    EXPECT_EQ(lines[threads].size(), folds.size() + 6) << fmt::format("{}", fmt::join(lines[threads], "\n"));
  }
  fs::remove_all(d);
}

TEST(ServingCli, CommandsAndTheirOneLineErrors) {
  const fs::path d = fresh_dir("cli");
  const std::string table = synthetic_table(d);
  auto r = run_irene("crossval '" + table + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("irene: error: " + table + ": a serving table needs --hardware NAME"), std::string::npos)
      << r.output;
  r = run_irene("crossval '" + table + "' --hardware B200 --format json -o '" + (d / "cv.json").string() + "'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(d / "cv.json"));
  EXPECT_NE(r.output.find("fold 3/3 left out "), std::string::npos) << r.output;  // progress on standard error
  r = run_irene("crossval '" + table + "' --hardware B200 -q --threads 2 --format json -o '" + (d / "cv2.json").string() + "'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "");
  EXPECT_EQ(read_file(d / "cv2.json"), read_file(d / "cv.json"));
  r = run_irene("data import '" + table + "' -o '" + (d / "runs.jsonl").string() + "'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("25 runs of 4 models; 24 usable"), std::string::npos) << r.output;
  r = run_irene("serving meta-llama/Llama-3.1-70B-Instruct --hardware H100 --max-num-seqs 256 --table '" + table +
                "' -o '" + (d / "out.txt").string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("irene: error: meta-llama/Llama-3.1-70B-Instruct with 256 sequences in flight on 1 GPU "
                          "does not fit on H100"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(d / "out.txt"));
  r = run_irene("serving meta-llama/Llama-3.1-8B-Instruct --hardware H100 --max-num-seqs 8 --format json --table '" +
                table + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["serving"]["hardware"]["name"], "H100");
  EXPECT_EQ(j["serving"]["predictor"]["kind"], "per-GPU");
  double share = 0;
  for (const auto& k : j["by_kind"]) share += k["share_pct"].get<double>();
  EXPECT_NEAR(share, 100, 1e-9);
  // --carbon-intensity: grams CO2e per token and per request from the joules (and their intervals).
  r = run_irene("serving meta-llama/Llama-3.1-8B-Instruct --hardware H100 --max-num-seqs 8 --carbon-intensity 400 "
                "--format json --table '" + table + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto c = nlohmann::json::parse(r.output);
  EXPECT_EQ(c["carbon_intensity_g_per_kwh"], 400.0);
  for (const char* k : {"value", "low", "high"}) {
    EXPECT_NEAR(c["co2e_per_token_g"][k].get<double>(), c["energy_per_token_j"][k].get<double>() * 400 / 3.6e6, 1e-15) << k;
    EXPECT_NEAR(c["co2e_per_request_g"][k].get<double>(), c["energy_per_request_j"][k].get<double>() * 400 / 3.6e6,
                1e-12) << k;
  }
  EXPECT_FALSE(j.contains("co2e_per_token_g"));
  r = run_irene("serving meta-llama/Llama-3.1-8B-Instruct --hardware H100 --carbon-intensity 400 --table '" + table + "'");
  EXPECT_NE(r.output.find("CO2e at 400 g/kWh: "), std::string::npos) << r.output;
  r = run_irene("serving meta-llama/Llama-3.1-8B-Instruct --hardware H100 --carbon-intensity lots --table '" + table +
                "' -o '" + (d / "co2.txt").string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("irene: error: --carbon-intensity must be grams CO2e per kWh"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "co2.txt"));
  // lengths as a distribution: the text says so; a bad pair is one line and no output
  r = run_irene("serving meta-llama/Llama-3.1-8B-Instruct --hardware H100 --output 100:1,700:1 --table '" + table + "'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("output 400 (mean of 2 lengths) tokens, 493 cached on average"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("output tokens: given as a distribution of 2 lengths"), std::string::npos) << r.output;
  r = run_irene("serving meta-llama/Llama-3.1-8B-Instruct --hardware H100 --prompt 100:1,700 --table '" + table +
                "' -o '" + (d / "dist.txt").string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("irene: error: --prompt as a distribution takes LEN:WEIGHT pairs"), std::string::npos)
      << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(d / "dist.txt"));
  r = run_irene("hardware H900");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("irene: error: unknown hardware 'H900'"), std::string::npos) << r.output;
  fs::remove_all(d);
}

// Attention run data-parallel: each of the D ranks holds the attention weights (split over its
// G / D GPUs), so the memory check counts D copies of them; the experts stay split over all G.
TEST(ServingStep, MemoryCheckCountsTheDataParallelCopiesOfTheAttentionWeights) {
  const ModelConfig c = serving::load_serving_model("Qwen/Qwen3-30B-A3B-Instruct-2507");
  const auto& hw = *hardware::find_builtin("H100");
  serving::Workload w;
  w.batch = 8;
  w.prompt_tokens = 180;
  w.output_tokens = 400;
  w.gpus = 4;
  const auto tp = serving::step_work(c, w, hw);
  w.data_parallel = 4;
  const auto dp = serving::step_work(c, w, hw);
  EXPECT_DOUBLE_EQ(tp.memory.weights_bytes, tp.weight_bytes / 4);
  // per layer: q (2048 -> 32 x 128), o, k and v (2048 -> 4 x 128), and the q/k norms (128 each)
  const double attention_bytes = 48.0 * (2048.0 * 4096 * 2 + 2048.0 * 512 * 2 + 2 * 128) * 2;
  EXPECT_NEAR(dp.memory.weights_bytes - tp.memory.weights_bytes, attention_bytes * 3 / 4, 1e-9 * attention_bytes);
  EXPECT_DOUBLE_EQ(dp.weight_bytes, tp.weight_bytes);  // the model's bytes are the same
}

namespace {

serving::ServingRequest request_of(const std::string& table, const nlohmann::json& fields) {
  serving::ServingRequest q;
  explain::apply_json(q, serving::serving_options(), fields, "test");
  q.table = table;
  return q;
}

}  // namespace

// One table of options: JSON fields (the HTTP API's), lists and flags, and the request's checks.
TEST(ServingRequest, OneTableOfOptionsAndItsOneLineErrors) {
  const fs::path d = fresh_dir("request");
  const std::string table = synthetic_table(d);
  auto q = request_of(table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"},
                              {"max_num_seqs", {8, 256}}, {"prompt", "180, 1200"}, {"allow_oversubscribe", "1"}});
  EXPECT_EQ(q.max_num_seqs, "8,256");
  EXPECT_TRUE(q.allow_oversubscribe);
  auto r = serving::resolve(q);
  ASSERT_EQ(r.points.size(), 4u);  // batch-major
  EXPECT_EQ(r.points[1].batch, 8);
  EXPECT_EQ(r.points[1].prompt_tokens, 1200);
  EXPECT_EQ(r.points[2].batch, 256);
  EXPECT_EQ(r.points[2].output_tokens, 400);  // the default
  EXPECT_EQ(r.sources["prompt_tokens"], "given");
  // a task: its assumed prompt and the median output length of its rows in the table
  q = request_of(table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}, {"task", "lm-arena-chat"}});
  r = serving::resolve(q);
  EXPECT_EQ(r.points[0].prompt_tokens, serving::task_prompt_tokens("lm-arena-chat"));
  EXPECT_EQ(r.points[0].output_tokens, 400);  // every row of the synthetic table: 400
  EXPECT_NE(r.sources["prompt_tokens"].get<std::string>().find("assumed"), std::string::npos);
  EXPECT_NE(r.sources["output_tokens"].get<std::string>().find("median"), std::string::npos);
  // ... spread as the task's published output lengths are, around that mean
  EXPECT_EQ(r.points[0].output_distribution, serving::task_output_distribution("lm-arena-chat", 400));
  EXPECT_NE(r.sources["output_distribution"].get<std::string>().find("published shape"), std::string::npos);
  // around each given mean too; a given distribution is the user's own
  q = request_of(table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}, {"task", "lm-arena-chat"},
                         {"output_tokens", "200,800"}});
  r = serving::resolve(q);
  ASSERT_EQ(r.points.size(), 2u);
  EXPECT_EQ(r.points[1].output_distribution, serving::task_output_distribution("lm-arena-chat", 800));
  q = request_of(table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}, {"task", "lm-arena-chat"},
                         {"output_tokens", "200:1,600:1"}});
  r = serving::resolve(q);
  EXPECT_EQ(r.points[0].output_distribution, (std::vector<std::pair<double, double>>{{200, 0.5}, {600, 0.5}}));
  EXPECT_FALSE(r.sources.contains("output_distribution"));
  const auto err = [&](const nlohmann::json& extra) {
    nlohmann::json f = {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}};
    f.update(extra);
    return error_of([&] { serving::resolve(request_of(table, f)); });
  };
  EXPECT_NE(err({{"task", "chat"}}).find("unknown --task 'chat'"), std::string::npos);
  EXPECT_NE(err({{"task", "gpqa"}}).find("no row of task gpqa"), std::string::npos);
  EXPECT_NE(err({{"max_num_seqs", 0}}).find("--max-num-seqs must be a positive number"), std::string::npos);
  EXPECT_NE(err({{"max_num_seqs", "8,,16"}}).find("got '8,,16'"), std::string::npos);
  EXPECT_NE(err({{"max_num_seqs", "8,x"}}).find("--max-num-seqs must be"), std::string::npos);
  EXPECT_NE(err({{"prompt", -1}}).find("--prompt must be"), std::string::npos);
  EXPECT_NE(err({{"output", 0}}).find("--output-tokens must be"), std::string::npos);
  EXPECT_NE(err({{"max_num_seqs", "1,2,3,4,5,6,7,8,9"}, {"prompt", "1,2,3,4,5,6,7,8"}}).find("72 points"),
            std::string::npos);
  // a distribution: LEN:WEIGHT pairs (relative request counts) make one point at their mean
  q = request_of(table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"},
                         {"max_num_seqs", {8, 256}}, {"prompt", "100:3, 400:1"}, {"output_tokens", "200:1,600:1,200:2"}});
  r = serving::resolve(q);
  ASSERT_EQ(r.points.size(), 2u);
  EXPECT_DOUBLE_EQ(r.points[0].prompt_tokens, 175);
  EXPECT_EQ(r.points[1].prompt_distribution, (std::vector<std::pair<double, double>>{{100, 0.75}, {400, 0.25}}));
  EXPECT_DOUBLE_EQ(r.points[0].output_tokens, 300);  // 200 x 3/4 + 600 x 1/4 (the same length's weights add up)
  EXPECT_EQ(r.points[0].output_distribution.size(), 2u);
  EXPECT_EQ(r.sources["prompt_tokens"], "given as a distribution of 2 lengths");
  EXPECT_NO_THROW(serving::step_work(r.config, r.points[1], r.hw));
  // the same as a JSON object of length: weight (the HTTP API's and Python's dict form)
  q = request_of(table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"},
                         {"prompt", {{"100", 3}, {"400", 1}}}});
  EXPECT_EQ(q.prompt, "100:3,400:1");
  EXPECT_DOUBLE_EQ(serving::resolve(q).points[0].prompt_tokens, 175);
  EXPECT_NE(err({{"prompt", "100:3,400"}}).find("'400' has no weight"), std::string::npos);
  EXPECT_NE(err({{"prompt", "100:0,400:1"}}).find("'0' is not a positive weight"), std::string::npos);
  EXPECT_NE(err({{"output_tokens", "0:1,400:1"}}).find("--output-tokens as a distribution takes LEN:WEIGHT pairs"),
            std::string::npos);
  EXPECT_NE(err({{"prompt", "x:1"}}).find("'x' is not a length"), std::string::npos);
  {
    std::string many;
    for (int i = 1; i <= 65; ++i) many += (i > 1 ? "," : "") + std::to_string(i) + ":1";
    EXPECT_NE(err({{"prompt", many}}).find("more than 64 pairs"), std::string::npos);
  }
  EXPECT_NE(err({{"tensor_parallel", "two"}}).find("--tensor-parallel must be a whole number"), std::string::npos);
  EXPECT_NE(err({{"expert_parallel", 2}}).find("is not a mixture of experts"), std::string::npos);
  EXPECT_NE(err({{"tensor_parallel", 2}, {"data_parallel", 4}}).find("--data-parallel 4 must divide the 2 GPUs"),
            std::string::npos);
  EXPECT_NE(err({{"model", "Qwen/Qwen3-30B-A3B-Instruct-2507"}, {"expert_parallel", 3}})
                .find("--expert-parallel 3 does not divide the 128 experts"),
            std::string::npos);
  EXPECT_NE(err({{"model", "Qwen/Qwen3-30B-A3B-Instruct-2507"}, {"expert_parallel", 4}, {"tensor_parallel", 2}})
                .find("give --tensor-parallel 1 or 4"),
            std::string::npos);
  // expert parallel: the GPUs are E, attention data-parallel over D of them
  q = request_of(table, {{"model", "Qwen/Qwen3-30B-A3B-Instruct-2507"}, {"hardware", "H100"}, {"expert_parallel", 4},
                         {"data_parallel", 2}});
  r = serving::resolve(q);
  EXPECT_EQ(r.points[0].gpus, 4);
  EXPECT_EQ(r.points[0].data_parallel, 2);
  EXPECT_NE(error_of([&] { request_of(table, {{"batch", 8}}); }).find("unknown option 'batch'"), std::string::npos);
  EXPECT_NE(error_of([&] { request_of(table, {{"max_num_seqs", {{"a", "x"}}}}); }).find("max_num_seqs must be"),
            std::string::npos);
  EXPECT_NE(error_of([&] { request_of(table, {{"allow_oversubscribe", "maybe"}}); }).find("true or false"),
            std::string::npos);
  // the HTTP API names no file
  q = request_of(table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}});
  EXPECT_NE(error_of([&] { serving::check_network_request(q); }).find("'table' does not apply"), std::string::npos);
  q.table.clear();
  EXPECT_NO_THROW(serving::check_network_request(q));
  q.model = "/etc/passwd";
  EXPECT_NE(error_of([&] { serving::check_network_request(q); }).find("unknown model"), std::string::npos);
  q.model = "meta-llama/../../x";
  EXPECT_NE(error_of([&] { serving::check_network_request(q); }).find("unknown model"), std::string::npos);
  q.model = "gpt2";
  q.hardware = (d / "table.csv").string();
  EXPECT_NE(error_of([&] { serving::check_network_request(q); }).find("unknown hardware"), std::string::npos);
  fs::remove_all(d);
}

// Where the joules go: the parts of each point add up to its step (the same step as `irene
// serving`'s), and they move with batch and context as the physics says they must.
TEST(ServingExplain, PartsAddUpToTheStepAndMoveWithBatchAndContext) {
  const fs::path d = fresh_dir("explain");
  const std::string table = synthetic_table(d);
  const auto e = serving::serving_explanation(request_of(
      table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}, {"max_num_seqs", "8,256"},
              {"prompt", "180,1200"}, {"tensor_parallel", 2}}));
  ASSERT_EQ(e["points"].size(), 4u);
  ASSERT_EQ(e["parts"].size(), 10u);
  for (const auto& p : e["points"]) {
    double j = 0, share = 0;
    for (const auto& x : p["by_part"]) {
      EXPECT_GE(x["step_j"].get<double>(), 0) << x["part"];
      j += x["step_j"].get<double>();
      share += x["share_pct"].get<double>();
    }
    EXPECT_NEAR(j, p["step_j"].get<double>(), 1e-9 * j);
    EXPECT_NEAR(share, 100, 1e-9);
    EXPECT_GT(p["by_part"][7]["step_j"].get<double>(), 0);  // all-reduce, two GPUs
  }
  const auto share = [&](const char* part, int i) { return e["shares"][part][i].get<double>(); };
  // points: (8, 180), (8, 1200), (256, 180), (256, 1200)
  EXPECT_GT(share("mlp_weights", 0), share("mlp_weights", 2));       // the weights are read once per step
  EXPECT_GT(share("attention_weights", 0), share("attention_weights", 2));
  EXPECT_LT(share("matmul_math", 0), share("matmul_math", 2));       // arithmetic grows with the tokens
  EXPECT_LT(share("kv_cache_reads", 0), share("kv_cache_reads", 1));  // a longer context, more cache
  EXPECT_LT(share("prefills", 0), share("prefills", 1));              // longer prompts to prefill
  // the same step as irene serving's
  const auto a = serving::serving_answer(request_of(
      table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}, {"max_num_seqs", 256},
              {"prompt", 180}, {"tensor_parallel", 2}}));
  EXPECT_NEAR(a["step_j"]["value"].get<double>(), e["points"][2]["step_j"].get<double>(),
              1e-12 * a["step_j"]["value"].get<double>());
  EXPECT_NE(serving::serving_explanation_text(e).find("key/value-cache reads"), std::string::npos);
  fs::remove_all(d);
}

// The units' energies split by term add up to predict_step's, unit by unit and for the step.
TEST(ServingPredictor, UnitEnergiesSplitTheStepByTerm) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  serving::Workload w = chat_workload(32, 2);
  const auto work = serving::step_work(c, w, *hardware::find_builtin("H100"));
  const auto p = truth();
  const auto sp = serving::predict_step(p, work);
  const auto& ue = sp.units;
  ASSERT_EQ(ue.size(), work.units.size());
  double units = 0, time = 0;
  bool memory = false, compute = false;
  for (std::size_t i = 0; i < ue.size(); ++i) {
    units += ue[i].total_j();
    time += ue[i].time_s;
    memory |= ue[i].memory_j > 0;
    compute |= ue[i].compute_j > 0;
    if (work.units[i].key == "ScaledDotProductAttention" && !work.units[i].prefill) {
      EXPECT_GT(work.units[i].cache_bytes, 0.9 * work.units[i].bytes);  // a decode step's attention reads the cache
      EXPECT_LE(work.units[i].cache_bytes, work.units[i].bytes);
    }
  }
  EXPECT_TRUE(memory && compute);
  EXPECT_NEAR(units + sp.allreduce_j + sp.overhead_j, sp.energy_j, 1e-9 * sp.energy_j);
  EXPECT_NEAR(units, sp.node_j[0], 1e-9 * units);
  EXPECT_GT(sp.time_s, time);  // plus the fixed and all-reduce time
}

// No step draws more than its GPUs' power limit over its slowest plausible wall time: where the
// terms add up to more, every entry is scaled alike and still adds up to the step.
TEST(ServingPredictor, NoStepDrawsMoreThanItsGpusPowerLimit) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  serving::Workload w = chat_workload(64, 2);
  const auto work = serving::step_work(c, w, *hardware::find_builtin("H100"));
  auto p = truth();
  const auto plain = serving::predict_step(p, work);
  EXPECT_EQ(plain.power_scale, 1);
  EXPECT_LT(plain.power_w, 2 * 700);
  p.a_shared = 1e3;  // a byte streamed at a thousand times the power an H100 can draw
  p.wall_slow_rel = 0.5;
  const auto capped = serving::predict_step(p, work);
  EXPECT_LT(capped.power_scale, 1);
  EXPECT_NEAR(capped.energy_j, 2 * 700 * capped.wall_s * 1.5, 1e-9 * capped.energy_j);
  EXPECT_NEAR(capped.power_w, 2 * 700 * 1.5, 1e-6);
  EXPECT_NEAR(capped.node_j[0] + capped.allreduce_j + capped.overhead_j, capped.energy_j, 1e-9 * capped.energy_j);
  double units = 0;
  for (const auto& e : capped.units) units += e.total_j();
  EXPECT_NEAR(units, capped.node_j[0], 1e-9 * units);
  // the ITL and the wall time are the time models' own, whatever the energy
  EXPECT_EQ(capped.time_s, plain.time_s);
  EXPECT_EQ(capped.wall_s, plain.wall_s);
}

// The ITL model is a least-absolute-relative-error fit: one run three times slower than the
// physics (a host-side floor under its ITL) leaves the others' predictions where the table's
// truth puts them, and its own at a third of its measurement; the energy fit is not moved by it.
TEST(ServingPredictor, TheItlFitIsNotBentByOneRunFarOffThePhysics) {
  const fs::path d = fresh_dir("itl-l1");
  const auto prepared = serving::prepare_table(serving::read_serving_csv(synthetic_table(d)));
  ASSERT_EQ(prepared.runs.size(), 24u);
  serving::MeasuredRun slow = *prepared.runs[5].run;
  slow.median_itl_s *= 3;
  const serving::PreparedRun floored{&slow, prepared.runs[5].work};
  std::vector<const serving::PreparedRun*> all;
  for (std::size_t i = 0; i < prepared.runs.size(); ++i) all.push_back(i == 5 ? &floored : &prepared.runs[i]);
  const auto p = serving::fit_serving(all, 0.01);
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto sp = serving::predict_step(p, all[i]->work);
    const double rel = sp.time_s / all[i]->run->median_itl_s;
    if (i == 5)
      EXPECT_NEAR(rel, 1.0 / 3, 0.02);
    else
      EXPECT_NEAR(rel, 1, 0.02) << all[i]->run->model_id << " " << all[i]->run->avg_batch;
    EXPECT_NEAR(sp.energy_j / all[i]->run->step_energy_j(), 1, 0.02);
  }
  fs::remove_all(d);
}

// A GPU moving all-reduce bytes draws at most its power limit: the fit holds d at 1 where the rows
// would want more (here a table generated with d = 3).
TEST(ServingPredictor, AllReduceEnergyIsHeldAtThePowerLimit) {
  const fs::path d = fresh_dir("allreduce");
  auto t = truth();
  t.d = 3;
  const auto prepared = serving::prepare_table(serving::read_serving_csv(synthetic_table(d, t)));
  std::vector<const serving::PreparedRun*> all;
  for (const auto& r : prepared.runs) all.push_back(&r);
  EXPECT_EQ(serving::fit_serving(all, 0.01).d, 1);
  t.d = 0.5;  // within the limit: the fit recovers it
  const auto within = serving::prepare_table(serving::read_serving_csv(synthetic_table(d, t)));
  std::vector<const serving::PreparedRun*> all2;
  for (const auto& r : within.runs) all2.push_back(&r);
  EXPECT_NEAR(serving::fit_serving(all2, 0.01).d, 0.5, 0.1);
  fs::remove_all(d);
}

// Attention run data-parallel adds its own time and energy per sequence in flight, learned from
// such runs; a run without it is not touched by them.
TEST(ServingPredictor, DataParallelAttentionHasItsOwnPerSequenceTerms) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  serving::Workload w = chat_workload(32, 2);
  const auto& hw = *hardware::find_builtin("H100");
  const auto tp = serving::step_work(c, w, hw);
  w.data_parallel = 2;
  const auto dp = serving::step_work(c, w, hw);
  auto p = truth();
  const auto tp0 = serving::predict_step(p, tp), dp0 = serving::predict_step(p, dp);
  p.s_dp_seq = 1e-4;
  p.itl.tau_dp_seq = 1e-4;
  const auto tp1 = serving::predict_step(p, tp), dp1 = serving::predict_step(p, dp);
  EXPECT_EQ(tp1.energy_j, tp0.energy_j);
  EXPECT_EQ(tp1.time_s, tp0.time_s);
  EXPECT_NEAR(dp1.overhead_j - dp0.overhead_j, 700 * 2 * 1e-4 * 32, 1e-9);
  EXPECT_NEAR(dp1.time_s - dp0.time_s, 1e-4 * 32, 1e-12);
}

// The energy of streaming a byte is one coefficient for every GPU (predictor.hpp): with only the
// memory term, the same step costs the same joules on an H100 and a B200 (the same bytes), while
// a TDP-share term (the roofline's) scales with TDP / bandwidth, so it costs less on the B200.
TEST(ServingPredictor, TheEnergyPerByteStreamedIsTheSameOnEveryGpu) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  serving::Workload w;
  w.batch = 8;
  w.prompt_tokens = 180;
  w.output_tokens = 400;
  serving::ServingPredictor memory_only;
  memory_only.a_shared = 1.0;
  serving::ServingPredictor roofline_only;
  roofline_only.rho_shared = 1.0;
  const auto h100 = serving::step_work(c, w, *hardware::find_builtin("H100"));
  const auto b200 = serving::step_work(c, w, *hardware::find_builtin("B200"));
  const double m_h = serving::predict_step(memory_only, h100).energy_j;
  const double m_b = serving::predict_step(memory_only, b200).energy_j;
  EXPECT_GT(m_h, 0);
  EXPECT_NEAR(m_b, m_h, 1e-9 * m_h);
  // one unit of a_k is an H100's TDP over its bandwidth per byte: the step's traffic at that rate
  double bytes = 0;
  for (const auto& u : h100.units) bytes += u.bytes;
  EXPECT_GT(bytes, 7e9 * 2);  // the weights of 8B parameters in bfloat16, less the embedding table
  EXPECT_NEAR(m_h, bytes * 700.0 / 3.35e12, 1e-9 * m_h);
  const double r_h = serving::predict_step(roofline_only, h100).energy_j;
  const double r_b = serving::predict_step(roofline_only, b200).energy_j;
  EXPECT_LT(r_b, 0.8 * r_h);
}

// Every serving answer says what it rests on, and its intervals widen outside the training data.
TEST(ServingRestsOn, SaysWhatTheAnswerRestsOnAndWidensOutsideTheTrainingData) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  serving::ServingPredictor p = truth();
  p.hardware = {"H100"};
  p.models = {"a", "b"};
  p.runs = 10;
  p.low_rel = -0.1;
  p.high_rel = 0.2;
  p.span = {1e9, 70e9, 8, 256, 100, 2000, 1, 4, {"bfloat16"}};
  serving::Workload w;
  w.batch = 64;
  w.prompt_tokens = 180;
  w.output_tokens = 400;
  serving::FittedServing f;
  f.predictor = std::make_shared<const serving::ServingPredictor>(p);
  f.per_gpu = true;
  const auto& h100 = *hardware::find_builtin("H100");
  auto inside = serving::serving_report(c, w, h100, "t.csv", f, false);
  const auto& ri = inside["rests_on"];
  EXPECT_TRUE(ri["within_training_data"].get<bool>()) << ri.dump();
  EXPECT_DOUBLE_EQ(ri["interval_widening"].get<double>(), 1.0);
  EXPECT_EQ(ri["hardware"]["name"], "H100");
  EXPECT_NE(ri["summary"].get<std::string>().find("within its training data"), std::string::npos);
  const auto rel = [](const nlohmann::json& e) {
    const double v = e["value"].get<double>();
    return std::pair{e["low"].get<double>() / v - 1, e["high"].get<double>() / v - 1};
  };
  EXPECT_NEAR(rel(inside["energy_per_token_j"]).first, -0.1, 1e-12);
  EXPECT_NEAR(rel(inside["energy_per_token_j"]).second, 0.2, 1e-12);
  EXPECT_NE(serving::serving_report_text(inside).find("rests on: H100, GPU energy of one GPU"), std::string::npos);
  // 10x the largest batch on a GPU without runs: both named, intervals 1 + log10(10) + log10(2) wider.
  w.batch = 2560;
  const auto& h200 = *hardware::find_builtin("H200");
  auto outside = serving::serving_report(c, w, h200, "t.csv", f, true);
  const auto& ro = outside["rests_on"];
  EXPECT_FALSE(ro["within_training_data"].get<bool>());
  std::map<std::string, nlohmann::json> dims;
  for (const auto& o : ro["outside"]) dims[o["dimension"].get<std::string>()] = o;
  ASSERT_TRUE(dims.count("batch") && dims.count("hardware")) << ro.dump();
  EXPECT_NEAR(dims["batch"]["factor"].get<double>(), 10, 1e-9);
  EXPECT_FALSE(dims.count("size") || dims.count("gpus") || dims.count("precision")) << ro.dump();
  const double widen = 2 + std::log10(2.0);
  EXPECT_NEAR(ro["interval_widening"].get<double>(), widen, 1e-9);
  EXPECT_NEAR(rel(outside["energy_per_token_j"]).first, -0.1 * widen, 1e-9);
  EXPECT_NEAR(rel(outside["energy_per_token_j"]).second, 0.2 * widen, 1e-9);
  EXPECT_NEAR(rel(outside["step_j"]).second, 0.2 * widen, 1e-9);
  EXPECT_NE(ro["summary"].get<std::string>().find("sequences in flight 2560 is 10x above the largest 256"),
            std::string::npos)
      << ro["summary"];
  // a smaller model than any trained, on more GPUs than any run, in a precision no run had
  w.batch = 64;
  w.gpus = 8;
  w.precision = "fp8";
  const auto small = serving::serving_rests_on(p, true, serving::step_work(serving::load_serving_model(source("models/TinyLlama/TinyLlama-1.1B-Chat-v1.0")), w, h100));
  dims.clear();
  for (const auto& o : small["outside"]) dims[o["dimension"].get<std::string>()] = o;
  EXPECT_TRUE(dims.count("gpus") && dims.count("precision") && !dims.count("hardware")) << small.dump();
  EXPECT_NEAR(dims["gpus"]["factor"].get<double>(), 2, 1e-9);
  EXPECT_FALSE(dims.count("data_parallel")) << small.dump();
  // attention data-parallel over 4 ranks where every training run had 1
  w.data_parallel = 4;
  const auto dp = serving::serving_rests_on(p, true, serving::step_work(serving::load_serving_model(source("models/TinyLlama/TinyLlama-1.1B-Chat-v1.0")), w, h100));
  dims.clear();
  for (const auto& o : dp["outside"]) dims[o["dimension"].get<std::string>()] = o;
  ASSERT_TRUE(dims.count("data_parallel")) << dp.dump();
  EXPECT_NEAR(dims["data_parallel"]["factor"].get<double>(), 4, 1e-9);
  EXPECT_NE(dp["summary"].get<std::string>().find("data-parallel attention ranks 4 is 4x above the largest 1"),
            std::string::npos)
      << dp["summary"];
}

// `irene serving` and `irene explain --serving` on the table: lists, tasks, expert parallel, and
// every bad input one line "irene: error: ..." with a non-zero exit and no output file.
TEST(ServingCli, ExplainServingAndTheRequestErrors) {
  const fs::path d = fresh_dir("explain_cli");
  const std::string table = synthetic_table(d);
  const std::string m = "meta-llama/Llama-3.1-8B-Instruct --hardware H100 --table '" + table + "'";
  auto r = run_irene("explain " + m + " --serving --max-num-seqs 8,256 --format json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto e = nlohmann::json::parse(r.output);
  EXPECT_EQ(e["points"].size(), 2u);
  EXPECT_EQ(e["serving"]["hardware"]["name"], "H100");
  EXPECT_EQ(e["shares"]["fixed"].size(), 2u);
  r = run_irene("explain " + m + " --serving --format html -o '" + (d / "page.html").string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(read_file(d / "page.html").find("\"mode\":\"serving\""), std::string::npos);
  r = run_irene("serving " + m + " --max-num-seqs 8,16 --format json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output)["points"].size(), 2u);
  r = run_irene("serving Qwen/Qwen3-30B-A3B-Instruct-2507 --hardware H100 --expert-parallel 2 --task lm-arena-chat "
                "--format json --table '" + table + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto q = nlohmann::json::parse(r.output);
  EXPECT_EQ(q["serving"]["workload"]["gpus"], 2);
  EXPECT_EQ(q["serving"]["workload"]["expert_parallel"], 2);
  EXPECT_EQ(q["serving"]["workload"]["task"], "lm-arena-chat");
  EXPECT_EQ(q["serving"]["workload"]["output_tokens"], 400.0);
  EXPECT_EQ(q["serving"]["workload"]["output_distribution"].size(), serving::task_output_shape("lm-arena-chat").size());
  // the text says where the lengths came from, the spread included
  r = run_irene("serving Qwen/Qwen3-30B-A3B-Instruct-2507 --hardware H100 --expert-parallel 2 --task lm-arena-chat "
                "--table '" + table + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("spread as the published shape of lm-arena-chat's output lengths"), std::string::npos) << r.output;
  r = run_irene("explain Qwen/Qwen3-30B-A3B-Instruct-2507 --serving --hardware H100 --expert-parallel 2 --task gpqa --output-tokens 6000 "
                "--table '" + table + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("spread as the published shape of gpqa's output lengths"), std::string::npos) << r.output;
  r = run_irene("serving Qwen/Qwen3-30B-A3B-Instruct-2507 --hardware H100 --expert-parallel 2 --table '" + table + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("spread as"), std::string::npos) << r.output;  // no task: every request at the mean
  for (const std::string& bad :
       {"serving " + m + " --task chat", "serving " + m + " --max-num-seqs 0", "serving " + m + " --max-num-seqs 8,",
        "explain " + m + " --serving --max-num-seqs -8", "explain " + m + " --serving --prompt 1,a",
        "serving Qwen/Qwen3-30B-A3B-Instruct-2507 --hardware H100 --expert-parallel 3 --table '" + table + "'",
        "serving " + m + " --expert-parallel 2", "explain " + m + " --serving --batch 8",
        "explain " + m + " --serving --format csv", std::string("explain gpt2 --max-num-seqs 8")}) {
    r = run_irene(bad + " -o '" + (d / "bad.txt").string() + "'");
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_EQ(r.output.rfind("irene: error: ", 0), 0u) << bad << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << bad << ": " << r.output;
    EXPECT_FALSE(fs::exists(d / "bad.txt")) << bad;
  }
  fs::remove_all(d);
}

// GET and POST /api/serving (and /api/serving/explain): the same fields, the same answers as the
// library, errors as JSON with a 400.
TEST(ServingHttp, TheSameFieldsOverTheApi) {
  const fs::path d = fresh_dir("http");
  const std::string table = synthetic_table(d);
  explain::Backend b;
  b.model_names = [] { return builtin_model_names(); };
  b.serving = serving::network_answer(table);
  explain::EnergyServer s(b, explain::ServeOptions{});
  auto r = s.handle("GET", "/api/serving?model=meta-llama/Llama-3.1-8B-Instruct&hardware=H100&max_num_seqs=8");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto got = nlohmann::json::parse(r.body);
  const auto want = serving::serving_answer(request_of(
      table, {{"model", "meta-llama/Llama-3.1-8B-Instruct"}, {"hardware", "H100"}, {"max_num_seqs", 8}}));
  EXPECT_EQ(got["energy_per_token_j"], want["energy_per_token_j"]);
  r = s.handle("POST", "/api/serving/explain",
               R"({"model": "meta-llama/Llama-3.1-8B-Instruct", "hardware": "H100", "max_num_seqs": [8, 256]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["points"].size(), 2u);
  r = s.handle("GET", "/api/serving/explain?model=meta-llama/Llama-3.1-8B-Instruct&hardware=H100&max_num_seqs=8,256");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["shares"]["mlp_weights"].size(), 2u);
  for (const auto& [method, target, body, says] : std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {"GET", "/api/serving?model=meta-llama/Llama-3.1-8B-Instruct&hardware=H100&task=chat", "", "unknown --task"},
           {"GET", "/api/serving?model=meta-llama/Llama-3.1-8B-Instruct&hardware=H100&max_num_seqs=0", "", "--max-num-seqs"},
           {"GET", "/api/serving?model=gpt2&hardware=H100&table=/etc/passwd", "", "'table' does not apply"},
           {"GET", "/api/serving?model=gpt2&hardware=H100&batch=8", "", "unknown option 'batch'"},
           {"POST", "/api/serving", "[1, 2]", "JSON object"},
           {"POST", "/api/serving", "{not json", "bad JSON"},
           {"POST", "/api/serving", R"({"model": "/etc/hosts", "hardware": "H100"})", "unknown model"}}) {
    r = s.handle(method, target, body);
    EXPECT_EQ(r.status, 400) << target << " " << body;
    const auto j = nlohmann::json::parse(r.body);
    EXPECT_NE(j["error"].get<std::string>().find(says), std::string::npos) << j;
  }
  fs::remove_all(d);
}
