#include "irene/hardware/hardware.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/json_util.hpp"

namespace irene::hardware {

namespace {

constexpr double GB = 1e9;
constexpr double TB = 1e12;
constexpr double TFLOPS = 1e12;

// The datasheet rows. Dense peaks: the datasheets print sparse figures with a footnote; the
// dense figure is half of it.
std::vector<Profile> make_profiles() {
  const std::string a100 =
      "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
      "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf";
  std::vector<Profile> v;
  v.push_back({.name = "A100-40GB",
               .description = "NVIDIA A100 SXM4 40 GB HBM2",
               .aliases = {"A100-SXM4-40GB", "A100"},
               .memory_bytes = 40 * GB,
               .memory_bandwidth = 1555 * GB,
               .peak_bf16 = 312 * TFLOPS,
               .tdp_watts = 400,
               .interconnect_bandwidth = 600 * GB / 2,
               .sources = {a100}});
  v.push_back({.name = "A100-80GB",
               .description = "NVIDIA A100 SXM4 80 GB HBM2e",
               .aliases = {"A100-SXM4-80GB"},
               .memory_bytes = 80 * GB,
               .memory_bandwidth = 2039 * GB,
               .peak_bf16 = 312 * TFLOPS,
               .tdp_watts = 400,
               .interconnect_bandwidth = 600 * GB / 2,
               .sources = {a100}});
  v.push_back({.name = "H100",
               .description = "NVIDIA H100 SXM5 80 GB HBM3",
               .aliases = {"H100-SXM", "H100-SXM5", "H100-80GB"},
               .memory_bytes = 80 * GB,
               .memory_bandwidth = 3.35 * TB,
               .peak_bf16 = 989.5 * TFLOPS,
               .peak_fp8 = 1979 * TFLOPS,
               .tdp_watts = 700,
               .interconnect_bandwidth = 900 * GB / 2,
               .sources = {"https://www.nvidia.com/en-us/data-center/h100/",
                           "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"}});
  v.push_back({.name = "H200",
               .description = "NVIDIA H200 SXM 141 GB HBM3e",
               .aliases = {"H200-SXM"},
               .memory_bytes = 141 * GB,
               .memory_bandwidth = 4.8 * TB,
               .peak_bf16 = 989.5 * TFLOPS,
               .peak_fp8 = 1979 * TFLOPS,
               .tdp_watts = 700,
               .interconnect_bandwidth = 900 * GB / 2,
               .sources = {"https://www.nvidia.com/en-us/data-center/h200/"}});
  // HGX B200 (8 GPUs): 1.4 TB of HBM3e, 62 TB/s, FP4 144 PFLOPS / FP8 72 PFLOPS / BF16 36 PFLOPS
  // with sparsity, 1.8 TB/s NVLink per GPU; per GPU: 180 GB, 7.7 TB/s, 1,000 W.
  v.push_back({.name = "B200",
               .description = "NVIDIA B200 (HGX B200) 180 GB HBM3e",
               .aliases = {"B200-SXM", "HGX-B200"},
               .memory_bytes = 180 * GB,
               .memory_bandwidth = 7.7 * TB,
               .peak_bf16 = 2250 * TFLOPS,
               .peak_fp8 = 4500 * TFLOPS,
               .peak_fp4 = 9000 * TFLOPS,
               .tdp_watts = 1000,
               .interconnect_bandwidth = 1800 * GB / 2,
               .sources = {"https://www.nvidia.com/en-us/data-center/hgx/",
                           "https://www.nvidia.com/en-us/data-center/dgx-b200/"}});
  v.push_back({.name = "L40S",
               .description = "NVIDIA L40S 48 GB GDDR6 (PCIe)",
               .memory_bytes = 48 * GB,
               .memory_bandwidth = 864 * GB,
               .peak_bf16 = 362.05 * TFLOPS,
               .peak_fp8 = 733 * TFLOPS,
               .tdp_watts = 350,
               .interconnect_bandwidth = 32 * GB,  // PCIe Gen4 x16, one direction
               .sources = {"https://www.nvidia.com/en-us/data-center/l40s/"}});
  // Ada whitepaper, GeForce RTX 4090: BF16 tensor 165.2 TFLOPS with FP32 accumulate (dense), FP8
  // 330.3 (FP32 accumulate), 1,008 GB/s, 450 W total graphics power.
  v.push_back({.name = "RTX-4090",
               .description = "NVIDIA GeForce RTX 4090 24 GB GDDR6X",
               .aliases = {"RTX4090", "4090"},
               .memory_bytes = 24 * GB,
               .memory_bandwidth = 1008 * GB,
               .peak_bf16 = 165.2 * TFLOPS,
               .peak_fp8 = 330.3 * TFLOPS,
               .tdp_watts = 450,
               .interconnect_bandwidth = 32 * GB,  // PCIe Gen4 x16, one direction
               .sources = {"https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf",
                           "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4090/"}});
  v.push_back({.name = "MI300X",
               .description = "AMD Instinct MI300X 192 GB HBM3",
               .aliases = {"MI300"},
               .memory_bytes = 192 * GB,
               .memory_bandwidth = 5.3 * TB,
               .peak_bf16 = 1307.4 * TFLOPS,
               .peak_fp8 = 2614.9 * TFLOPS,
               .tdp_watts = 750,
               .interconnect_bandwidth = 896 * GB / 2,  // 7 Infinity Fabric links, 128 GB/s each
               .sources = {"https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html",
                           "https://www.amd.com/content/dam/amd/en/documents/instinct-tech-docs/data-sheets/"
                           "amd-instinct-mi300x-data-sheet.pdf"}});
  return v;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

double positive_field(const nlohmann::json& j, const char* key, const std::string& where, std::string_view unit,
                      bool required) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (!required) return 0;
    throw Error(fmt::format("{}: hardware field '{}' is missing: must be a positive number of {}", where, key, unit));
  }
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() <= 0)
    throw Error(fmt::format("{}: hardware field '{}' is {}: must be a positive number of {}", where, key,
                            it->dump(), unit));
  return it->get<double>();
}

}  // namespace

double Profile::peak_flops(std::string_view precision) const {
  const std::string p = lower(precision);
  if (p == "bfloat16" || p == "bf16" || p == "float16" || p == "fp16" || p == "float32") return peak_bf16;
  if (p == "fp8" || p == "float8") return peak_fp8.value_or(peak_bf16);
  if (p == "fp4" || p == "mxfp4" || p == "nvfp4") return peak_fp4 ? *peak_fp4 : peak_fp8.value_or(peak_bf16);
  throw Error(fmt::format("unknown precision '{}': expected bfloat16, float16, float32, fp8, mxfp4 or fp4", precision));
}

const std::vector<Profile>& builtin_profiles() {
  static const std::vector<Profile> v = make_profiles();
  return v;
}

std::string builtin_names() {
  std::string s;
  for (const auto& p : builtin_profiles()) s += (s.empty() ? "" : ", ") + p.name;
  return s;
}

const Profile* find_builtin(std::string_view name) {
  const std::string n = lower(name);
  for (const auto& p : builtin_profiles()) {
    if (lower(p.name) == n) return &p;
    for (const auto& a : p.aliases)
      if (lower(a) == n) return &p;
  }
  return nullptr;
}

Profile profile_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(fmt::format("{}: a hardware profile must be a JSON object", where));
  Profile p;
  const auto str = [&](const char* key) -> std::string {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_string()) throw Error(fmt::format("{}: hardware field '{}' must be a string", where, key));
    return it->get<std::string>();
  };
  p.name = str("name");
  if (p.name.empty()) p.name = std::filesystem::path(where).stem().string();
  p.description = str("description");
  p.memory_bytes = positive_field(j, "memory_bytes", where, "bytes", true);
  p.memory_bandwidth = positive_field(j, "memory_bandwidth_bytes_per_s", where, "bytes/s", true);
  const nlohmann::json peaks = j.contains("peak_flops_per_s") ? j.at("peak_flops_per_s") : nlohmann::json::object();
  if (!peaks.is_object())
    throw Error(fmt::format("{}: hardware field 'peak_flops_per_s' must be an object {{\"bf16\": ..., \"fp8\": ..., "
                            "\"fp4\": ...}} of FLOP/s",
                            where));
  p.peak_bf16 = positive_field(peaks, "bf16", where + " (peak_flops_per_s)", "FLOP/s", true);
  if (const double f = positive_field(peaks, "fp8", where + " (peak_flops_per_s)", "FLOP/s", false); f > 0)
    p.peak_fp8 = f;
  if (const double f = positive_field(peaks, "fp4", where + " (peak_flops_per_s)", "FLOP/s", false); f > 0)
    p.peak_fp4 = f;
  p.tdp_watts = positive_field(j, "tdp_watts", where, "watts", true);
  if (const double w = positive_field(j, "idle_watts", where, "watts", false); w > 0) p.idle_watts = w;
  p.interconnect_bandwidth = positive_field(j, "interconnect_bytes_per_s", where, "bytes/s", false);
  if (p.interconnect_bandwidth == 0) p.interconnect_bandwidth = 32 * GB;  // PCIe Gen4 x16
  if (const auto it = j.find("sources"); it != j.end() && it->is_array())
    for (const auto& s : *it)
      if (s.is_string()) p.sources.push_back(s.get<std::string>());
  return p;
}

Profile load_profile(std::string_view name_or_path) {
  if (const Profile* p = find_builtin(name_or_path)) return *p;
  const std::filesystem::path path{std::string(name_or_path)};
  std::error_code ec;
  if (name_or_path.empty() || !std::filesystem::exists(path, ec))
    throw Error(fmt::format("unknown hardware '{}': not a built-in profile ({}) nor a JSON file", name_or_path,
                            builtin_names()));
  const std::string text = read_file(path, std::uint64_t{1} << 20);
  JsonBounds bounds;
  bounds.max_depth = 4;
  const auto j = parse_json_document(text, path.string(), "a hardware profile", bounds);
  return profile_from_json(j, path.string());
}

nlohmann::json hardware_to_json(const Profile& p) {
  nlohmann::json j;
  j["name"] = p.name;
  j["description"] = p.description;
  j["memory_bytes"] = p.memory_bytes;
  j["memory_gib"] = p.memory_gib();
  j["memory_bandwidth_bytes_per_s"] = p.memory_bandwidth;
  j["peak_flops_per_s"] = {{"bf16", p.peak_bf16},
                           {"fp8", p.peak_fp8 ? nlohmann::json(*p.peak_fp8) : nlohmann::json(nullptr)},
                           {"fp4", p.peak_fp4 ? nlohmann::json(*p.peak_fp4) : nlohmann::json(nullptr)}};
  j["tdp_watts"] = p.tdp_watts;
  j["idle_watts"] = p.idle_watts ? nlohmann::json(*p.idle_watts) : nlohmann::json(nullptr);
  j["interconnect_bytes_per_s"] = p.interconnect_bandwidth;
  j["sources"] = p.sources;
  return j;
}

double check_fit(const MemoryNeed& need, const Profile& hw, std::string_view what, bool allow) {
  const double ratio = need.total() / hw.memory_bytes;
  if (ratio > 1 && !allow) {
    constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
    throw Error(fmt::format(
        "{} does not fit on {}: {:.1f} GiB weights + {:.1f} GiB key/value cache + {:.1f} GiB activations = {:.1f} GiB "
        "per GPU, {:.1f} GiB more than its {:.1f} GiB (--allow-oversubscribe to predict it anyway)",
        what, hw.name, need.weights_bytes / GiB, need.kv_cache_bytes / GiB, need.activations_bytes / GiB,
        need.total() / GiB, (need.total() - hw.memory_bytes) / GiB, hw.memory_gib()));
  }
  return ratio;
}

}  // namespace irene::hardware
