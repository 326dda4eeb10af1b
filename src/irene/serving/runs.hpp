// Measured serving runs: the ML.ENERGY leaderboard's table of LLM serving configurations
// (../shared/llm-energy/mlenergy-v3-llm.csv and its README.md), read as one MeasuredRun per row.
//
// Each row is one configuration (model, task, GPU model, number of GPUs and how the model was
// spread, vLLM's max_num_seqs) served with continuous batching and measured with NVML over the
// GPUs only. Its labels are model-level: energy per generated token (joules, all GPUs, prefills
// included), mean power (watts, all GPUs) and inter-token latency (seconds); nothing is measured
// per module. serving/predictor.hpp learns per-primitive regressors from them.
//
// Reading is bounded and strict: the header must name every column below (in any order; other
// columns are ignored); each row must have as many fields as the header, every number finite and
// in range (counts positive integers, energies, powers, latencies and lengths positive); the
// file at most 64 MiB, 1,000,000 rows and 64 KiB per line. The first bad row is one irene::Error
// "FILE:LINE: column 'avg_batch_size': 'abc' is not a number" (the line counted from 1 = header).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace irene::serving {

struct MeasuredRun {
  long line = 0;                // line of the file (1 = the header)
  std::string model_id;         // Hugging Face id: "meta-llama/Llama-3.1-8B-Instruct"
  std::string task;             // lm-arena-chat | gpqa | sourcegraph-fim
  std::string architecture;     // "Dense Transformer", "MoE", "Mamba-Transformer Hybrid"
  std::string precision;        // weight precision: bfloat16 | fp8 | mxfp4
  std::string gpu;              // GPU model as the table names it: "H100", "B200"
  int num_gpus = 1;
  int tensor_parallel = 1;
  int expert_parallel = 1;
  int data_parallel = 1;
  int max_num_seqs = 1;          // vLLM's limit of sequences in flight
  double avg_batch = 0;          // sequences actually in flight, mean
  double avg_output_tokens = 0;  // generated tokens per request, mean
  double energy_per_token_j = 0;    // joules per generated token, all GPUs
  double energy_per_request_j = 0;  // joules per request, all GPUs
  double power_w = 0;               // mean power of all GPUs together, watts
  double median_itl_s = 0;          // inter-token latency, seconds (median)
  double p90_itl_s = 0;             // seconds (90th percentile)
  double throughput_tokens_per_s = 0;

  // The energy of one decode step of the whole batch, joules: energy per token x sequences in
  // flight (every step generates one token per sequence; the prefills are inside it).
  double step_energy_j() const { return energy_per_token_j * avg_batch; }
  bool dense() const { return architecture == "Dense Transformer"; }
};

struct ServingTable {
  std::string file;
  std::vector<MeasuredRun> runs;
};

// Reads the table (see the file comment for its checks and errors).
ServingTable read_serving_csv(const std::filesystem::path& path);

// Whether a file looks like such a table: its first line names model_id and
// energy_per_token_joules (so commands that take trees files can also take it).
bool is_serving_csv(const std::filesystem::path& path);

// One run as JSON, with the units in the keys (energy_per_token_j, median_itl_s ...).
nlohmann::json run_to_json(const MeasuredRun& run);

}  // namespace irene::serving
