// Bounds on every size irene accepts, checked before anything is built or allocated.
//
// They keep every count exact and every allocation small: parameter counts and tensor element
// counts are 64-bit integers (products are checked, see checked_mul), FLOPs and bytes are doubles
// (checked to be finite), and a tree holds at most a few hundred thousand nodes. Each limit is far
// above any published model (Llama-3-405B: hidden 16,384, 126 layers, vocab 128,256; long-context
// configs: 10M positions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace irene::limits {

inline constexpr std::int64_t kMaxBatch = std::int64_t{1} << 27;         // 134,217,728 sequences
inline constexpr std::int64_t kMaxSeq = std::int64_t{1} << 24;           // 16,777,216 tokens
inline constexpr std::int64_t kMaxLayers = 1024;                         // blocks of a model
inline constexpr std::int64_t kMaxHidden = std::int64_t{1} << 20;        // hidden / embedding width
inline constexpr std::int64_t kMaxIntermediate = std::int64_t{1} << 22;  // feed-forward width
inline constexpr std::int64_t kMaxHeads = std::int64_t{1} << 16;         // attention heads
inline constexpr std::int64_t kMaxVocab = std::int64_t{1} << 24;         // vocabulary rows
inline constexpr std::int64_t kMaxPositions = std::int64_t{1} << 26;     // position table rows / context
inline constexpr std::int64_t kMaxCount = std::int64_t{1} << 62;         // parameters, elements

// Most tokens one generation may ask for (explain/generation.hpp: its steps are kept in memory,
// 16 bytes x 3 each).
inline constexpr std::int64_t kMaxGenerate = std::int64_t{1} << 20;
// Most values one range of a sweep or report may expand to, and most points (every combination
// of its ranges) one sweep may predict.
inline constexpr int kMaxRangePoints = 1024;

// Every command, the Python module and the HTTP API accept the same sizes: batch, seq, past and
// prompt up to kMaxBatch / kMaxSeq (checked by the library: build_tree, predict_generation), and
// generate up to kMaxGenerate. The options parsers only check that a value is a positive integer
// (core/error.hpp), so a size is accepted or refused with the same words whichever command or
// range it comes from. The HTTP API bounds a request further, by default with these (ServeOptions;
// each request builds and predicts trees while the server serves others):
inline constexpr int kMaxRequestBatch = 1024;         // sequences
inline constexpr int kMaxRequestSeq = 8192;           // tokens (seq, past, prompt)
inline constexpr int kMaxRequestLayers = 256;         // num_layers of a requested configuration
inline constexpr int kMaxRequestGenerate = 65536;     // generated tokens of /api/generate
inline constexpr std::size_t kMaxRequestBodyBytes = std::size_t{1} << 20;  // POST bodies
// Largest values `irene serve` accepts for its load settings (--connections, --max-queued,
// --request-timeout seconds, --max-body bytes).
inline constexpr int kMaxServeConnections = 4096;
inline constexpr int kMaxServeQueued = 65536;
inline constexpr double kMaxRequestTimeoutS = 3600;
inline constexpr std::size_t kMaxServeBodyBytes = std::size_t{1} << 26;

// Options of the commands: most hotspots one explanation lists (--top), most worker threads
// (--threads), largest carbon intensity (--carbon-intensity, grams CO2e per kWh).
inline constexpr int kMaxTop = 100000;
inline constexpr int kMaxThreads = 256;
inline constexpr double kMaxCarbonGPerKWh = 1e5;

// Largest nesting depth of a tree read from a file (real trees have 3 to 7 levels).
inline constexpr int kMaxTreeDepth = 64;
// Largest number of nodes in a tree read from a file (the largest tree irene builds, 1,024
// layers, has about 16,400; a node takes about 0.5 to 1 KB in memory).
inline constexpr std::int64_t kMaxTreeNodes = 1 << 17;
// Longest line of a JSONL file, bytes (that largest tree is a 7 MB line, 15 MB predicted).
inline constexpr std::int64_t kMaxLineBytes = std::int64_t{1} << 27;

// a * b when both are >= 0 and the product is <= kMaxCount; nullopt otherwise.
inline std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
  if (a < 0 || b < 0) return std::nullopt;
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r > kMaxCount) return std::nullopt;
  return r;
}

// a + b when both are >= 0 and the sum is <= kMaxCount.
inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
  if (a < 0 || b < 0) return std::nullopt;
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r) || r > kMaxCount) return std::nullopt;
  return r;
}

// Largest nesting of JSON containers in a line of a JSONL file: a tree level is two (a node
// object and its "child_nodes_obj" array), plus the record and a node's own fields ("ops" ->
// op -> "shape"). Checked as the parser opens each container, before anything is stored.
inline constexpr int kMaxJsonDepth = 2 * kMaxTreeDepth + 8;
// Largest number of values one node (or a record's own fields) keeps: fields, attrs, ops and
// their shapes (real nodes keep 10 to 60).
inline constexpr std::int64_t kMaxNodeValues = 4096;
// Largest predictor file, bytes (the shipped one is 10 KB; the largest the format allows, 64
// features at degree 4, holds 814,385 weights: about 16 MB).
inline constexpr std::uint64_t kMaxPredictorBytes = std::uint64_t{32} << 20;
// Deepest nesting of a predictor file (the format nests 4 levels).
inline constexpr int kMaxPredictorDepth = 16;

// Most work one generation, or one command's generations together, may take: layers x generated
// tokens (x points of a sweep), in layer-steps (one decode step through one layer). Refused up
// front with the estimate (about 17 s at the limit); kSecondsPerLayerStep is the measured cost of
// one on a 2-core build machine (bench/RESULTS.md, "Work bounds").
inline constexpr std::int64_t kMaxLayerSteps = std::int64_t{1} << 26;  // 1,024 layers x 65,536 tokens
inline constexpr double kSecondsPerLayerStep = 2.5e-7;
// What a sweep point costs besides its steps (its prefill and two whole step trees predicted and
// explained), in layer-steps per layer.
inline constexpr std::int64_t kLayerStepsPerPoint = 2048;

}  // namespace irene::limits
