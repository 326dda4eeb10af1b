// Shared by the fuzz harnesses (tests/fuzz/fuzz_*.cpp).
//
// Each harness feeds one input to one parser of irene and checks the one rule every parser keeps:
// an input is either accepted or refused with one irene::Error whose message is one line. Any
// other exception, a crash, a sanitizer report, a leak or a hang is a fault.
//
// Built two ways (tests/fuzz/fuzz.cmake): with -DIRENE_FUZZ=ON each harness is a libFuzzer
// binary (IRENE_FUZZ_ENTRY defines LLVMFuzzerTestOneInput); in every build the harnesses are
// also linked into `fuzz_replay`, which CTest runs over the committed regression inputs
// (tests/fuzz/regressions/<harness>/), so a fixed fault stays fixed.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "irene/core/error.hpp"

namespace irene::fuzz {

// Aborts (a finding) unless `e`'s message is one non-empty line.
inline void check_message(const irene::Error& e) {
  const std::string_view m = e.what();
  if (m.empty() || m.find('\n') != std::string_view::npos) {
    std::fprintf(stderr, "fuzz: an irene::Error that is not one line: [%s]\n", e.what());
    std::abort();
  }
}

// Runs `body` on the input: irene::Error is a clean refusal; anything else escapes (a finding).
template <typename F>
int run(F&& body) {
  try {
    body();
  } catch (const irene::Error& e) {
    check_message(e);
  }
  return 0;
}

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// For the readers that take a path: `bytes` written to a file of this process
// (TMPDIR/irene-fuzz-PID-NAME), rewritten for every input. Aborts when it cannot be written.
inline std::filesystem::path temp_file(const std::string& name, std::string_view bytes) {
  const std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("irene-fuzz-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", p.c_str());
    std::abort();
  }
  return p;
}

// Whether every number in `j` is finite (nlohmann keeps NaN and infinities and writes them as null).
inline bool all_finite(const nlohmann::json& j) {
  if (j.is_number_float()) return std::isfinite(j.get<double>());
  if (j.is_structured())
    for (const auto& v : j)
      if (!all_finite(v)) return false;
  return true;
}

}  // namespace irene::fuzz

#ifdef IRENE_FUZZ_LIBFUZZER
#define IRENE_FUZZ_ENTRY(name) extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
#else
#define IRENE_FUZZ_ENTRY(name) int fuzz_##name(const std::uint8_t* data, std::size_t size)
#endif
