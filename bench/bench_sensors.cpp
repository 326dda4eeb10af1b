// Cost of reading energy sensors, i.e. what a measurement window adds to what it measures.
// Usage: bench_sensors [--reps N]   (fake RAPL tree and traces in /dev/shm or the temp folder)
#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "irene/measure/sensor.hpp"

namespace fs = std::filesystem;
using namespace irene::measure;
using Clock = std::chrono::steady_clock;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::trunc) << text;
}

template <class F>
double median_us(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 2000;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
  const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string tmpl = (base / "irene-bench-sensors-XXXXXX").string();
  const fs::path dir = ::mkdtemp(tmpl.data());

  // Fake powercap tree: 2 packages + 2 DRAM zones (the reads a real rapl mark() does).
  for (int p = 0; p < 2; ++p) {
    const fs::path z = dir / "powercap" / fmt::format("intel-rapl:{}", p);
    write(z / "name", fmt::format("package-{}\n", p));
    write(z / "energy_uj", "123456789\n");
    write(z / "max_energy_range_uj", "262143328850\n");
    const fs::path d = z / fmt::format("intel-rapl:{}:0", p);
    write(d / "name", "dram\n");
    write(d / "energy_uj", "123456789\n");
    write(d / "max_energy_range_uj", "65712999613\n");
  }
  SensorOptions o;
  o.powercap_root = dir / "powercap";
  o.probe_seconds = 0;
  o.rapl_poll_seconds = 0;
  auto none = make_sensor("none");
  auto rapl = make_sensor("rapl", o);

  // A 1-hour trace at 10 Hz (36,000 samples) ending now.
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string csv = "timestamp,watts\n";
  for (int i = 36000; i >= 0; --i) csv += fmt::format("{:.1f},{}\n", now + 600 - i * 0.1, 50 + i % 7);
  write(dir / "trace.csv", csv);
  double load_ms = 0;
  std::unique_ptr<Sensor> trace;
  {
    const auto a = Clock::now();
    trace = make_sensor("trace:" + (dir / "trace.csv").string());
    load_ms = std::chrono::duration<double, std::milli>(Clock::now() - a).count();
  }
  Mark t10 = trace->mark();
  t10.epoch_seconds -= 10;  // windows of 10 s (100 samples) and of 1 hour (36,000 samples)
  Mark t3600 = trace->mark();
  t3600.epoch_seconds = now + 600 - 3600 + 0.5;  // inside the first sample (rounded to 0.1 s)

  const double none_us = median_us(reps, [&] { none->between(none->mark(), none->mark()); });
  const double rapl_us = median_us(reps, [&] { rapl->between(rapl->mark(), rapl->mark()); });
  const double trace_us = median_us(reps, [&] { trace->between(t10, trace->mark()); });
  const double trace_h_us = median_us(std::max(1, reps / 10), [&] { trace->between(t3600, trace->mark()); });
  fmt::print("window cost (mark + mark + between), median of {} reps:\n", reps);
  fmt::print("  none                         {:8.2f} us  (1.0x)\n", none_us);
  fmt::print("  rapl (2 packages + 2 DRAM)   {:8.2f} us  ({:.0f}x)\n", rapl_us, rapl_us / none_us);
  fmt::print("  trace, 10 s window (10 Hz)   {:8.2f} us  ({:.0f}x)\n", trace_us, trace_us / none_us);
  fmt::print("  trace, 1 h window (10 Hz)    {:8.2f} us  ({:.0f}x)\n", trace_h_us, trace_h_us / none_us);
  fmt::print("trace: first read of the 36,000-sample file {:.1f} ms\n", load_ms);
  fs::remove_all(dir);
  return 0;
}
