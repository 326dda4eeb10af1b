// Times of the tree part: reading a device folder, importing it (to memory and to JSONL),
// reading that JSONL back, and building one tree per built-in model.
//
//   build-tree/bench/bench_tree [DATA_DIR] [--reps N]
//
// DATA_DIR defaults to IRENE_DATA or <repo>/../shared/irene-data. Prints the median and the
// minimum wall time of N repetitions (default 5) per step, in milliseconds.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/serving/predictor.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/data/dataset.hpp"

namespace fs = std::filesystem;

namespace {

void timed(const std::string& what, int reps, const std::function<void()>& f) {
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  fmt::print("{:<52} median {:>9.3f} ms   min {:>9.3f} ms   ({} reps)\n", what, ms[ms.size() / 2], ms.front(), reps);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path data = irene::default_data_dir();
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--reps" && i + 1 < argc)
        reps = irene::parse_positive_int(argv[++i], "--reps");
      else
        data = a;
    }
    const fs::path tmp = fs::temp_directory_path() / fmt::format("bench_tree_{}.jsonl", ::getpid());
    for (const char* device : {"device_1", "device_2"}) {
      const fs::path dir = data / device;
      if (!fs::is_directory(dir)) {
        fmt::print("{}: missing, skipped\n", dir.string());
        continue;
      }
      timed(fmt::format("read CSVs of {}", device), reps, [&] { irene::read_device_folder(dir); });
      std::size_t trees = 0;
      timed(fmt::format("import {} to memory", device), reps, [&] { trees = irene::import_device_folder(dir).size(); });
      timed(fmt::format("import {} to JSONL ({} trees)", device, trees), reps,
            [&] { irene::import_device_folder_to_jsonl(dir, tmp); });
      fmt::print("  JSONL size: {:.1f} MiB\n", static_cast<double>(fs::file_size(tmp)) / 1048576.0);
      timed(fmt::format("read the JSONL of {} back (read_jsonl)", device), reps, [&] { irene::read_jsonl(tmp); });
      fs::remove(tmp);
    }
    for (const auto& m : irene::builtin_model_names()) {
      const irene::ModelConfig c = irene::load_model_config(m);
      std::size_t nodes = 0;
      timed(fmt::format("build_tree {} b8 s128", m), reps * 20, [&] { nodes = irene::build_tree(c, 8, 128).nodes.size(); });
      (void)nodes;
    }
    // The largest built-in model, through the serving loader (built-in or configs/serving-models).
    for (const char* m : {"deepseek-ai/DeepSeek-V3"}) {
      const irene::ModelConfig c = irene::serving::load_serving_model(m);
      std::size_t nodes = 0;
      timed(fmt::format("build_tree {} b8 s128", m), reps * 20, [&] { nodes = irene::build_tree(c, 8, 128).nodes.size(); });
      fmt::print("  {} nodes\n", nodes);
    }
  } catch (const irene::Error& e) {
    fmt::print(stderr, "bench_tree: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
