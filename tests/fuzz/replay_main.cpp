// fuzz_replay HARNESS PATH...: runs a harness over files and folders of inputs (no fuzzing), as
// CTest does with tests/fuzz/regressions/<harness>/. Exit 0 when every input is handled cleanly;
// a fault aborts (and under the sanitizer build, reports).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#define IRENE_DECLARE(name) int fuzz_##name(const std::uint8_t* data, std::size_t size);
IRENE_DECLARE(config)
IRENE_DECLARE(jsonl)
IRENE_DECLARE(csv)
IRENE_DECLARE(trace)
IRENE_DECLARE(predictor)
IRENE_DECLARE(query)
IRENE_DECLARE(generation)
IRENE_DECLARE(serve)
IRENE_DECLARE(serving)
IRENE_DECLARE(serving_csv)

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const std::map<std::string, std::function<int(const std::uint8_t*, std::size_t)>> harnesses = {
      {"config", fuzz_config}, {"jsonl", fuzz_jsonl},         {"csv", fuzz_csv},
      {"trace", fuzz_trace},   {"predictor", fuzz_predictor}, {"query", fuzz_query},
      {"generation", fuzz_generation}, {"serve", fuzz_serve}, {"serving", fuzz_serving},
      {"serving_csv", fuzz_serving_csv}};
  if (argc < 3 || !harnesses.count(argv[1])) {
    std::fprintf(stderr, "usage: fuzz_replay config|jsonl|csv|trace|predictor|query|generation|serve|serving|serving_csv PATH...\n");
    return 2;
  }
  const auto& run = harnesses.at(argv[1]);
  std::vector<fs::path> files;
  for (int i = 2; i < argc; ++i) {
    if (fs::is_directory(argv[i])) {
      for (const auto& e : fs::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(argv[i])) {
      files.push_back(argv[i]);
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    run(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  }
  std::printf("fuzz_replay %s: %zu inputs handled cleanly\n", argv[1], files.size());
  return files.empty() ? 1 : 0;
}
