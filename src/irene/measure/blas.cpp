#include "irene/measure/blas.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace irene::measure {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool has(const std::vector<std::string>& flags, const char* f) {
  return std::find(flags.begin(), flags.end(), f) != flags.end();
}

const char* env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The object that serves sgemm_ in this process, its dlopen handle (no new load), or none.
std::string sgemm_library(void** handle) {
  *handle = nullptr;
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  if (!sym) return "";
  Dl_info info{};
  if (!dladdr(sym, &info) || !info.dli_fname) return "";
  std::error_code ec;
  auto real = std::filesystem::canonical(info.dli_fname, ec);
  *handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  return ec ? std::string(info.dli_fname) : real.string();
}

std::string call_string_fn(void* handle, const char* name) {
  if (!handle) return "";
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (!fn) return "";
  const char* s = fn();
  return s ? s : "";
}

}  // namespace

std::vector<std::string> cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    std::vector<std::string> flags;
    for (std::string w; words >> w;) flags.push_back(w);
    return flags;
  }
  return {};
}

int cpu_simd_tier(const std::vector<std::string>& f) {
  if (has(f, "avx512f") && has(f, "avx512bw") && has(f, "avx512vl") && has(f, "avx512dq")) return 3;
  if (has(f, "avx2") && has(f, "fma")) return 2;
  if (has(f, "avx")) return 1;
  return 0;
}

int openblas_core_tier(const std::string& core) {
  const std::string c = lower(core);
  for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"})
    if (c == n) return 3;
  for (const char* n : {"haswell", "zen", "skylake"})
    if (c == n) return 2;
  for (const char* n : {"sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"})
    if (c == n) return 1;
  return 0;
}

std::string openblas_core_for_tier(int tier) {
  switch (tier) {
    case 3: return "SkylakeX";
    case 2: return "Haswell";
    case 1: return "Sandybridge";
    default: return "";
  }
}

std::string openblas_core_to_force(const std::string& detected_core, const std::vector<std::string>& flags) {
  if (detected_core.empty()) return "";
  const int cpu = cpu_simd_tier(flags);
  if (openblas_core_tier(detected_core) >= cpu) return "";
  return openblas_core_for_tier(cpu);
}

BlasInfo blas_info() {
  BlasInfo b;
  void* handle = nullptr;
  b.library = sgemm_library(&handle);
  b.coretype_env = env_or_empty("OPENBLAS_CORETYPE");
  b.core_set_by_irene = !b.coretype_env.empty() && std::string(env_or_empty("IRENE_BLAS_REEXEC")) == b.coretype_env;
  if (b.library.empty()) {
    b.kind = "none";
    b.warning = "no BLAS library serves sgemm_ in this process";
    if (handle) dlclose(handle);
    return b;
  }
  b.config = call_string_fn(handle, "openblas_get_config");
  b.core = call_string_fn(handle, "openblas_get_corename");
  const std::string lib = lower(b.library);
  if (!b.config.empty() || lib.find("openblas") != std::string::npos) {
    b.kind = "openblas";
  } else if (lib.find("mkl") != std::string::npos) {
    b.kind = "mkl";
  } else if (lib.find("blis") != std::string::npos) {
    b.kind = "blis";
  } else if (lib.find("/blas/libblas") != std::string::npos || lib.find("refblas") != std::string::npos) {
    b.kind = "reference";
  } else {
    b.kind = "other";
  }
  if (b.kind == "reference") {
    b.warning = fmt::format(
        "libtorch runs the slow reference BLAS ({}): a BERT forward is ~30x slower than with OpenBLAS; install "
        "libopenblas0-openmp (scripts/install-deps.sh) or select it with update-alternatives --config "
        "libblas.so.3-x86_64-linux-gnu",
        b.library);
  } else if (b.kind == "openblas") {
    const int cpu = cpu_simd_tier(cpu_flags());
    const int core = openblas_core_tier(b.core);
    if (core < cpu)
      b.warning = fmt::format(
          "OpenBLAS runs its '{}' kernel, slower than this CPU allows; set OPENBLAS_CORETYPE={} before starting "
          "irene",
          b.core.empty() ? "unknown" : b.core, openblas_core_for_tier(cpu));
  }
  if (handle) dlclose(handle);
  return b;
}

void ensure_fast_blas(int /*argc*/, char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("IRENE_BLAS_REEXEC")) return;
  void* handle = nullptr;
  const std::string lib = sgemm_library(&handle);
  const std::string core = call_string_fn(handle, "openblas_get_corename");
  if (handle) dlclose(handle);
  if (lib.empty() || core.empty()) return;  // not OpenBLAS
  const std::string want = openblas_core_to_force(core, cpu_flags());
  if (want.empty()) return;
  setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
  setenv("IRENE_BLAS_REEXEC", want.c_str(), 1);
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the slow kernel; blas_info() warns about it.
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace irene::measure
