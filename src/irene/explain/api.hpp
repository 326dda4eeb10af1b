// irene's whole job as plain function calls returning JSON values: what the Python module
// (python/irene_module.cpp) exposes, with the same results as the command line.
//
// A model is a built-in name, a path to a config.json (or a folder holding one), a Hugging Face
// name found in the local cache (arch/config.hpp), or a config given as a JSON object; overrides
// are (key, value) pairs as `--set key=value`. The predictor is a file path, or "" for the shipped
// one ($IRENE_PREDICTOR); loaded predictors are cached by path. Every problem is an irene::Error.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::api {

struct ModelSpec {
  std::string name_or_path;                 // used when `config` is empty
  std::optional<nlohmann::json> config;     // a config.json given as an object
  std::vector<std::pair<std::string, std::string>> overrides;
};

// The configuration a spec names, overrides applied.
ModelConfig load(const ModelSpec& spec);

// The predictor at `path` ("" = the shipped one), loaded once per process.
std::shared_ptr<const Predictor> predictor(const std::string& path);

// Built-in model names.
std::vector<std::string> models();

// tree_summary (records.hpp) of the built tree: parameters, MFLOP, MiB per node, no energies.
// `pass`: a decode step, dtype, attention, head (arch/builder.hpp); default a prefill in float32.
nlohmann::json tree(const ModelSpec& spec, int batch, int seq, const BuildOptions& pass = {});
// tree_summary of the predicted tree: energy_j, low_j, high_j per node and in total, "hardware".
nlohmann::json predict(const ModelSpec& spec, int batch, int seq, const std::string& predictor_path = "",
                       const BuildOptions& pass = {});
// generation.hpp's to_json: the energy of generating `generate` tokens after a `prompt`-token
// prompt, for `batch` sequences (pass: dtype, attention, allow_long).
nlohmann::json generate(const ModelSpec& spec, int batch, int prompt, int generate,
                        const std::string& predictor_path = "", const BuildOptions& pass = {});
// explain.hpp's to_json of the predicted tree (+ "hardware").
nlohmann::json explain(const ModelSpec& spec, int batch, int seq, const std::string& predictor_path = "", int top = 10);
// compare.hpp's to_json of b against a (+ "hardware").
nlohmann::json compare(const ModelSpec& a, const ModelSpec& b, int batch, int seq, int batch_b, int seq_b,
                       const std::string& predictor_path = "");
// sweep.hpp's to_json over every (batch, seq) pair, batch-major (at most max_range_points).
nlohmann::json sweep(const ModelSpec& spec, const std::vector<int>& batches, const std::vector<int>& seqs,
                     const std::string& predictor_path = "");

}  // namespace irene::api
