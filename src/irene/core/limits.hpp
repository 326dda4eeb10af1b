// Bounds on every size irene accepts, checked before anything is built or allocated.
//
// They keep every count exact and every allocation small: parameter counts and tensor element
// counts are 64-bit integers (products are checked, see checked_mul), FLOPs and bytes are doubles
// (checked to be finite), and a tree holds at most a few hundred thousand nodes. Each limit is far
// above any published model (Llama-3-405B: hidden 16,384, 126 layers, vocab 128,256; long-context
// configs: 10M positions).
#pragma once

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

// Largest nesting depth of a tree read from a file (real trees have 3 to 7 levels).
inline constexpr int kMaxTreeDepth = 64;
// Largest number of nodes in a tree read from a file.
inline constexpr std::int64_t kMaxTreeNodes = 1 << 22;
// Longest line of a JSONL file, bytes.
inline constexpr std::int64_t kMaxLineBytes = std::int64_t{1} << 28;

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

}  // namespace irene::limits
