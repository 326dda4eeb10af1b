// Helpers shared by the test files: running the irene CLI, temporary folders, the dataset.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "irene/core/error.hpp"
#include "irene/data/dataset.hpp"

namespace irene_test {

namespace fs = std::filesystem;

struct CliResult {
  int status = -1;     // exit status of the irene CLI
  std::string output;  // standard output and standard error together
};

// Runs `irene <args>` (args are passed to the shell as written); `env` is an optional prefix of
// shell variable assignments ("IRENE_PREDICTOR=/x ").
// Runs a shell command line; its standard output (and whatever it redirects there) and status.
inline CliResult run_shell(const std::string& cmd) {
  CliResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline CliResult run_irene(const std::string& args, const std::string& env = "") {
  return run_shell(env + "'" + IRENE_BINARY + "' " + args + " 2>&1");
}

// A fresh folder for the current test.
inline fs::path fresh_dir(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path d = fs::temp_directory_path() /
               ("irene_" + tag + "_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The message of the irene::Error that `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const irene::Error& e) {
    return e.what();
  }
  return "";
}

inline void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// The published dataset, found as the library finds it (env IRENE_DATA, else
// <repo>/../shared/irene-data). When it is missing, IRENE_REQUIRE_DATASET fails the test if
// env CI is set, and skips it otherwise.
inline fs::path dataset_dir() { return irene::default_data_dir(); }

#define IRENE_REQUIRE_DATASET(dir)                                                            \
  do {                                                                                        \
    if (!std::filesystem::is_directory((dir) / "device_1")) {                                 \
      if (std::getenv("CI")) FAIL() << "IrEne dataset missing at " << (dir) << " (set IRENE_DATA)"; \
      GTEST_SKIP() << "IrEne dataset missing at " << (dir) << " (set IRENE_DATA)";            \
    }                                                                                         \
  } while (0)

}  // namespace irene_test
