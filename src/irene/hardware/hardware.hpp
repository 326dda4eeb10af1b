// Hardware profiles: the datasheet facts of an accelerator that the serving predictor
// (serving/) reads, one profile per GPU model.
//
// A profile says how much memory one GPU has (bytes), how fast it streams it (bytes/s), its dense
// peak tensor throughput per data type (FLOP/s, without structured sparsity), its board power limit
// (TDP, watts), its idle power where the vendor publishes one (watts; none of the built-in
// datasheets does), and the bandwidth one GPU has to its peers (bytes/s, one direction, NVLink /
// Infinity Fabric / PCIe) for the all-reduces of tensor parallelism. Every built-in row carries the
// URLs of the datasheets its figures come from (docs: README.md, "Serving energy on current
// GPUs"). Decimal units as the datasheets print them: 80 GB = 80e9 bytes, 3.35 TB/s = 3.35e12 bytes/s.
//
// Built-in: A100-40GB, A100-80GB (SXM), H100 (SXM, 80 GB HBM3), H200 (SXM), B200 (HGX), L40S,
// RTX-4090, MI300X. Names match case-insensitively, and a few aliases (H100-SXM, RTX4090) too;
// any other accelerator is a JSON file with the fields of hardware_to_json.
//
// Layering: core only; workload/, serving/, explain/ and the command line read profiles.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace irene::hardware {

struct Profile {
  std::string name;                   // "H100"
  std::string description;            // "NVIDIA H100 SXM5 80 GB HBM3"
  std::vector<std::string> aliases = {};  // other names it answers to ("H100-SXM")
  double memory_bytes = 0;            // memory of one GPU, bytes
  double memory_bandwidth = 0;        // bytes/s of one GPU's memory
  double peak_bf16 = 0;               // dense FLOP/s, bfloat16 (and float16) tensor cores
  std::optional<double> peak_fp8 = {};   // dense FLOP/s, fp8; none: no fp8 tensor cores
  std::optional<double> peak_fp4 = {};   // dense FLOP/s, fp4; none: no fp4 tensor cores
  double tdp_watts = 0;               // board power limit of one GPU, watts
  std::optional<double> idle_watts = {}; // published idle power of one GPU, watts (none: not published)
  double interconnect_bandwidth = 0;  // bytes/s from one GPU to its peers, one direction
  std::vector<std::string> sources = {};  // URLs of the datasheets the figures come from

  double memory_gib() const { return memory_bytes / (1024.0 * 1024.0 * 1024.0); }
  // Dense peak FLOP/s for a weight precision ("bfloat16", "float16", "fp8", "mxfp4", "fp4",
  // "float32" = the bf16 tensor peak, as float32 matmuls run in TF32 or are not served). A
  // precision the GPU has no tensor cores for runs at the next wider one it has (fp4 -> fp8 ->
  // bf16), as inference engines dequantize. Unknown precision: irene::Error naming the accepted ones.
  double peak_flops(std::string_view precision) const;
};

// The built-in profiles, in the order above.
const std::vector<Profile>& builtin_profiles();
// Their names, for option help and errors: "A100-40GB, A100-80GB, H100, ...".
std::string builtin_names();

// A built-in profile by name or alias (case-insensitive), else nullptr.
const Profile* find_builtin(std::string_view name);

// `--hardware NAME|FILE`: a built-in name or alias, else a JSON file of one profile (the fields of
// hardware_to_json; memory_bytes, memory_bandwidth, peak_bf16 and tdp_watts required and positive).
// Errors (irene::Error, one line): "unknown hardware 'X': not a built-in profile (A100-40GB, ...)
// nor a JSON file"; "FILE: not valid JSON ..."; "FILE: hardware field 'K' ...: must be a positive
// number of UNIT" for a missing, non-numeric or non-positive required field.
Profile load_profile(std::string_view name_or_path);

// Parses one profile from JSON (`where` names its origin in errors, as load_profile's).
Profile profile_from_json(const nlohmann::json& j, const std::string& where);
// Every field, with units in the key names' docs: name, description, memory_bytes, memory_gib,
// memory_bandwidth_bytes_per_s, peak_flops_per_s {bf16, fp8, fp4 (null: none)}, tdp_watts,
// idle_watts (null: not published), interconnect_bytes_per_s, sources.
nlohmann::json hardware_to_json(const Profile& p);

// Whether a serving configuration fits in the memory of its GPUs (bytes per GPU).
struct MemoryNeed {
  double weights_bytes = 0;      // the model's weights on one GPU
  double kv_cache_bytes = 0;     // key/value cache of every sequence in flight, on one GPU
  double activations_bytes = 0;  // the largest activations of one step, on one GPU
  double total() const { return weights_bytes + kv_cache_bytes + activations_bytes; }
};
// Throws irene::Error "<what> does not fit on HW: W weights + K key/value cache + A activations =
// T GiB per GPU, X GiB more than its M GiB (--allow-oversubscribe to predict it anyway)" when the
// need exceeds the memory of one GPU and `allow` is false; otherwise returns need / memory.
double check_fit(const MemoryNeed& need, const Profile& hw, std::string_view what, bool allow);

}  // namespace irene::hardware
