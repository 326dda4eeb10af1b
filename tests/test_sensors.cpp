// Energy sensors: trace integration, fake powercap (RAPL) trees incl. wraparound, perf and NVML
// through injected fakes, clear failures on machines without sensors, windows, idle power, CLI.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "irene/measure/sensor.hpp"
#include "irene/measure/sensor_nvml.hpp"
#include "irene/measure/sensor_trace.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace irene::measure;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "irene-sensors-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

double now_epoch() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Mark epoch_mark(double t) {
  Mark m;
  m.epoch_seconds = t;
  m.steady = std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(t)));
  return m;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

template <class F>
SensorFailure failure_of(F&& f) {
  try {
    f();
  } catch (const SensorError& e) {
    return e.failure();
  }
  ADD_FAILURE() << "expected a SensorError";
  return SensorFailure::broken;
}

SensorOptions no_hardware(const fs::path& dir) {
  SensorOptions o;
  o.powercap_root = dir / "no-powercap";
  o.perf_root = dir / "no-perf";
  o.nvml_library = "libirene-no-such-nvml.so.1";
  o.probe_seconds = 0;
  o.rapl_poll_seconds = 0;
  o.trace_wait_seconds = 0.05;
  return o;
}

// ------------------------------------------------------------------ trace

TEST(SensorTrace, ConstantPowerIntegratesExactly) {
  TempDir d;
  std::string csv = "timestamp,watts\n";
  for (int t = 1000; t <= 1010; ++t) csv += std::to_string(t) + ",100\n";
  write(d.path / "p.csv", csv);
  auto s = make_sensor("trace:" + (d.path / "p.csv").string());
  EXPECT_EQ(s->name(), "trace");
  EXPECT_TRUE(s->measures_energy());
  const Measurement m = s->between(epoch_mark(1002.25), epoch_mark(1005.25));
  ASSERT_TRUE(m.joules);
  EXPECT_DOUBLE_EQ(*m.joules, 300.0);
  EXPECT_DOUBLE_EQ(m.seconds, 3.0);
  EXPECT_DOUBLE_EQ(*m.watts(), 100.0);
}

TEST(SensorTrace, RampIntegratesExactlyWithInterpolatedEdges) {
  TempDir d;
  // p(t) = 10 (t - 1000) W, sampled each second: energy over [a, b] = 5 ((b-1000)^2 - (a-1000)^2).
  std::string csv = "timestamp , watts\r\n";
  for (int t = 1000; t <= 1008; ++t) csv += std::to_string(t) + ".0," + std::to_string(10 * (t - 1000)) + "\r\n";
  write(d.path / "ramp.csv", csv);
  auto s = make_trace_sensor(d.path / "ramp.csv");
  EXPECT_DOUBLE_EQ(*s->between(epoch_mark(1000.5), epoch_mark(1003.5)).joules, 60.0);
  EXPECT_DOUBLE_EQ(*s->between(epoch_mark(1000), epoch_mark(1008)).joules, 320.0);
  EXPECT_DOUBLE_EQ(*s->between(epoch_mark(1002.5), epoch_mark(1002.75)).joules,
                   5.0 * (2.75 * 2.75 - 2.5 * 2.5));
  EXPECT_DOUBLE_EQ(*s->between(epoch_mark(1004), epoch_mark(1004)).joules, 0.0);
  // The same through the free function, with an uneven sample spacing.
  const std::vector<PowerSample> v{{0, 0}, {1, 10}, {4, 40}};
  EXPECT_DOUBLE_EQ(integrate_power(v, 0.5, 3.0), 5.0 * (9.0 - 0.25));
}

TEST(SensorTrace, WindowOutsideTheTraceIsAClearError) {
  TempDir d;
  write(d.path / "p.csv", "timestamp,watts\n1000,5\n1001,5\n");
  SensorOptions o;
  o.trace_wait_seconds = 0.05;
  auto s = make_trace_sensor(d.path / "p.csv", o);
  const std::string early = error_of([&] { s->between(epoch_mark(999), epoch_mark(1000.5)); });
  EXPECT_NE(early.find("p.csv"), std::string::npos) << early;
  EXPECT_NE(early.find("starts at 1000.000"), std::string::npos) << early;
  const std::string late = error_of([&] { s->between(epoch_mark(1000.5), epoch_mark(1003)); });
  EXPECT_NE(late.find("ends at 1001.000"), std::string::npos) << late;
  EXPECT_NE(late.find("waited"), std::string::npos) << late;
  EXPECT_NE(error_of([&] { integrate_power(std::vector<PowerSample>{{0, 1}, {1, 1}}, 0.5, 2); })
                .find("do not cover"),
            std::string::npos);
}

TEST(SensorTrace, LiveFileIsReReadUntilItCoversTheWindowEnd) {
  TempDir d;
  const fs::path file = d.path / "live.csv";
  write(file, "timestamp,watts\n1000,20\n1001,20\n");
  SensorOptions o;
  o.trace_wait_seconds = 30;  // generous: the writer appends after ~0.1 s
  auto s = make_trace_sensor(file, o);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ofstream out(file, std::ios::app);
    out << "1002,2";  // half a line first: it must not be read as 2 W
    out.flush();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    out << "0\n1003,20\n";
  });
  const Measurement m = s->between(epoch_mark(1000), epoch_mark(1002.5));
  writer.join();
  ASSERT_TRUE(m.joules);
  EXPECT_DOUBLE_EQ(*m.joules, 50.0);
}

TEST(SensorTrace, FinalLineWithoutNewlineIsReadAfterTheWait) {
  TempDir d;
  write(d.path / "p.csv", "timestamp,watts\n1000,4\n1002,4");
  SensorOptions o;
  o.trace_wait_seconds = 0.05;
  auto s = make_trace_sensor(d.path / "p.csv", o);
  EXPECT_DOUBLE_EQ(*s->between(epoch_mark(1000), epoch_mark(1002)).joules, 8.0);
  EXPECT_EQ(read_power_trace(d.path / "p.csv").size(), 2u);
}

TEST(SensorTrace, MalformedFilesNameFileAndLine) {
  TempDir d;
  const std::map<std::string, std::pair<std::string, std::string>> cases = {
      {"header", {"time,power\n1000,1\n", ":1: expected the header 'timestamp,watts'"}},
      {"number", {"timestamp,watts\n1000,1\n1001,abc\n", ":3: watts must be a number"}},
      {"negative", {"timestamp,watts\n1000,-1\n", ":2: watts must be a number in 0..1e+07"}},
      {"absurd", {"timestamp,watts\n1000,1e308\n1001,1e308\n", ":2: watts must be a number in 0..1e+07"}},
      {"nan", {"timestamp,watts\n1000,nan\n", ":2: watts must be a number in 0..1e+07"}},
      {"infinite", {"timestamp,watts\n1000,1\n1001,inf\n", ":3: watts must be a number in 0..1e+07"}},
      {"future", {"timestamp,watts\n1e300,1\n", ":2: timestamp must be Unix epoch seconds"}},
      {"fields", {"timestamp,watts\n1000,1,2\n", ":2: expected 'timestamp,watts' (2 fields)"}},
      {"onefield", {"timestamp,watts\n\n1000\n", ":3: expected 'timestamp,watts' (2 fields)"}},
      {"stamp", {"timestamp,watts\n17e8x,1\n", ":2: timestamp must be Unix epoch seconds"}},
      {"back", {"timestamp,watts\n1000,1\n999,1\n", ":3: timestamp 999 goes back in time"}},
  };
  for (const auto& [name, c] : cases) {
    const fs::path f = d.path / (name + ".csv");
    write(f, c.first);
    const std::string e = error_of([&] { make_sensor("trace:" + f.string()); });
    EXPECT_NE(e.find(f.string() + c.second), std::string::npos) << name << ": " << e;
    const std::string e2 = error_of([&] { read_power_trace(f); });
    EXPECT_NE(e2.find(f.string() + c.second), std::string::npos) << name << ": " << e2;
  }
  write(d.path / "empty.csv", "");
  EXPECT_NE(error_of([&] { read_power_trace(d.path / "empty.csv"); }).find("empty power trace"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_sensor("trace:" + (d.path / "missing.csv").string()); })
                .find("missing.csv: no such power trace file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_sensor("trace:" + d.path.string()); }).find("is a folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_sensor("trace:"); }).find("trace:FILE"), std::string::npos);
}

TEST(SensorTrace, AppendedMalformedLineIsReportedAtMeasurement) {
  TempDir d;
  const fs::path f = d.path / "p.csv";
  write(f, "timestamp,watts\n1000,1\n");
  auto s = make_trace_sensor(f);
  std::ofstream(f, std::ios::app) << "1001,oops\n";
  const std::string e = error_of([&] { s->between(epoch_mark(1000), epoch_mark(1000.5)); });
  EXPECT_NE(e.find(f.string() + ":3: watts"), std::string::npos) << e;
}

// ------------------------------------------------------------------ RAPL (fake powercap tree)

struct FakeRapl {
  TempDir dir;
  fs::path root() const { return dir.path / "powercap"; }
  void zone(const std::string& rel, const std::string& name, unsigned long long uj,
            unsigned long long max = 262143328850ULL) {
    write(root() / rel / "name", name + "\n");
    write(root() / rel / "energy_uj", std::to_string(uj) + "\n");
    write(root() / rel / "max_energy_range_uj", std::to_string(max) + "\n");
  }
  void set(const std::string& rel, unsigned long long uj) {
    write(root() / rel / "energy_uj", std::to_string(uj) + "\n");
  }
  SensorOptions options() const {
    SensorOptions o = no_hardware(dir.path);
    o.powercap_root = root();
    return o;
  }
};

// Two packages, DRAM under each, core/uncore subzones (inside the package: not added), psys.
void two_socket_tree(FakeRapl& f) {
  f.zone("intel-rapl:0", "package-0", 1000000);
  f.zone("intel-rapl:0/intel-rapl:0:0", "core", 500000);
  f.zone("intel-rapl:0/intel-rapl:0:1", "dram", 2000000);
  f.zone("intel-rapl:1", "package-1", 3000000);
  f.zone("intel-rapl:1/intel-rapl:1:0", "dram", 4000000);
  f.zone("intel-rapl:2", "psys", 9000000);
  // sysfs also links the subzones at the root: they must not be counted twice.
  fs::create_directory_symlink(f.root() / "intel-rapl:0/intel-rapl:0:1", f.root() / "intel-rapl:0:1");
}

TEST(SensorRapl, AllPackagesPlusDramFromAFakeTree) {
  FakeRapl f;
  two_socket_tree(f);
  auto s = make_sensor("rapl", f.options());
  EXPECT_EQ(s->name(), "rapl");
  EXPECT_EQ(s->covers(), "CPU packages 0-1 + DRAM (Linux powercap RAPL)");
  EXPECT_EQ(s->parts(), (std::vector<std::string>{"package-0", "dram-0", "package-1", "dram-1"}));
  EXPECT_NE(s->notes().find("psys"), std::string::npos);
  s->begin();
  f.set("intel-rapl:0", 1000000 + 12500000);            // +12.5 J
  f.set("intel-rapl:0/intel-rapl:0:0", 9999999999);     // core: not counted
  f.set("intel-rapl:0/intel-rapl:0:1", 2000000 + 1250000);  // +1.25 J
  f.set("intel-rapl:1", 3000000 + 7000000);             // +7 J
  f.set("intel-rapl:1/intel-rapl:1:0", 4000000 + 500000);   // +0.5 J
  f.set("intel-rapl:2", 99999999);                      // psys: not counted
  const Measurement m = s->end();
  ASSERT_TRUE(m.joules);
  EXPECT_NEAR(*m.joules, 21.25, 1e-9);
  ASSERT_EQ(m.parts.size(), 4u);
  EXPECT_EQ(m.parts[0].first, "package-0");
  EXPECT_NEAR(m.parts[0].second, 12.5, 1e-9);
  EXPECT_NEAR(m.parts[1].second, 1.25, 1e-9);
  EXPECT_NEAR(m.parts[2].second, 7.0, 1e-9);
  EXPECT_NEAR(m.parts[3].second, 0.5, 1e-9);
  EXPECT_THROW(s->end(), irene::Error);  // end() without begin()
}

TEST(SensorRapl, CounterWraparoundIsCorrected) {
  FakeRapl f;
  f.zone("intel-rapl:0", "package-0", 999000, 1000000);
  auto s = make_rapl_sensor(f.options());
  EXPECT_EQ(s->covers(), "CPU package 0 (Linux powercap RAPL, no DRAM zone)");
  const Mark a = s->mark();
  f.set("intel-rapl:0", 1500);  // wrapped at 1000000 uJ: 1000 + 1500 uJ
  const Mark b = s->mark();
  f.set("intel-rapl:0", 999999);
  const Mark c = s->mark();
  f.set("intel-rapl:0", 0);  // wrapped again: 1 uJ
  const Mark e = s->mark();
  EXPECT_NEAR(*s->between(a, b).joules, 0.0025, 1e-12);
  EXPECT_NEAR(*s->between(b, c).joules, 0.998499, 1e-12);
  EXPECT_NEAR(*s->between(a, e).joules, 0.0025 + 0.998499 + 0.000001, 1e-12);
}

TEST(SensorRapl, NestedAndOverlappingWindows) {
  FakeRapl f;
  f.zone("intel-rapl:0", "package-0", 0);
  auto s = make_rapl_sensor(f.options());
  EnergyMonitor mon(*s);
  mon.begin_window("outer");
  f.set("intel-rapl:0", 1000000);
  mon.begin_window("inner");
  f.set("intel-rapl:0", 3000000);
  mon.begin_window("overlap");
  f.set("intel-rapl:0", 6000000);
  const Measurement inner = mon.end_window("inner");
  f.set("intel-rapl:0", 10000000);
  const Measurement outer = mon.end_window("outer");
  f.set("intel-rapl:0", 15000000);
  const Measurement overlap = mon.end_window("overlap");
  EXPECT_NEAR(*inner.joules, 5.0, 1e-12);
  EXPECT_NEAR(*outer.joules, 10.0, 1e-12);
  EXPECT_NEAR(*overlap.joules, 12.0, 1e-12);
  EXPECT_FALSE(mon.is_open("outer"));
  mon.begin_window("x");
  EXPECT_NE(error_of([&] { mon.begin_window("x"); }).find("'x' is already open"), std::string::npos);
  mon.cancel_window("x");
  EXPECT_NE(error_of([&] { mon.end_window("x"); }).find("'x' was not begun"), std::string::npos);
}

TEST(SensorRapl, BackgroundPollingDoesNotDoubleCount) {
  FakeRapl f;
  f.zone("intel-rapl:0", "package-0", 900000, 1000000);
  SensorOptions o = f.options();
  o.rapl_poll_seconds = 0.001;  // the poller reads concurrently with the marks below
  auto s = make_rapl_sensor(o);
  // Replace the counter file atomically so that no reader sees it half written.
  auto set = [&](unsigned long long uj) {
    write(f.root() / "intel-rapl:0/energy_uj.tmp", std::to_string(uj) + "\n");
    fs::rename(f.root() / "intel-rapl:0/energy_uj.tmp", f.root() / "intel-rapl:0/energy_uj");
  };
  const Mark a = s->mark();
  unsigned long long expected_uj = 0, raw = 900000;
  for (int i = 0; i < 200; ++i) {
    const unsigned long long step = 1000 + 37 * static_cast<unsigned long long>(i);
    raw = (raw + step) % 1000000;  // wraps several times
    expected_uj += step;
    set(raw);
    if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  const Mark b = s->mark();
  EXPECT_NEAR(*s->between(a, b).joules, static_cast<double>(expected_uj) * 1e-6, 1e-9);
}

TEST(SensorRapl, PermissionDeniedSaysHowToFix) {
  FakeRapl f;
  two_socket_tree(f);
  SensorOptions o = f.options();
  o.read_text = [](const fs::path& p) -> std::string {
    if (p.filename() == "energy_uj") throw std::system_error(EACCES, std::generic_category(), p.string());
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string e = error_of([&] { make_sensor("rapl", o); });
  EXPECT_NE(e.find("intel-rapl:0/energy_uj"), std::string::npos) << e;
  EXPECT_NE(e.find("Permission denied"), std::string::npos) << e;
  EXPECT_NE(e.find("run irene as root"), std::string::npos) << e;
  EXPECT_NE(e.find("chmod a+r"), std::string::npos) << e;
  EXPECT_EQ(failure_of([&] { make_sensor("rapl", o); }), SensorFailure::no_permission);
  // auto must not fall back to `none` silently: nothing else works here, so it is an error.
  EXPECT_EQ(failure_of([&] { make_sensor("auto", o); }), SensorFailure::no_permission);
  EXPECT_NE(error_of([&] { make_sensor("auto", o); }).find("chmod a+r"), std::string::npos);
}

TEST(SensorRapl, UnreadableOrMalformedCounterIsAnError) {
  FakeRapl f;
  f.zone("intel-rapl:0", "package-0", 5);
  fs::remove(f.root() / "intel-rapl:0/energy_uj");
  fs::create_directory(f.root() / "intel-rapl:0/energy_uj");  // reading a folder fails (EISDIR)
  const std::string e = error_of([&] { make_rapl_sensor(f.options()); });
  EXPECT_NE(e.find("rapl: cannot read " + (f.root() / "intel-rapl:0/energy_uj").string()),
            std::string::npos) << e;
  EXPECT_EQ(failure_of([&] { make_rapl_sensor(f.options()); }), SensorFailure::broken);

  FakeRapl g;
  g.zone("intel-rapl:0", "package-0", 5);
  write(g.root() / "intel-rapl:0/energy_uj", "12ab\n");
  EXPECT_NE(error_of([&] { make_rapl_sensor(g.options()); }).find("expected a whole number of microjoules, got '12ab'"),
            std::string::npos);
  write(g.root() / "intel-rapl:0/energy_uj", "12\n");
  write(g.root() / "intel-rapl:0/max_energy_range_uj", "0\n");
  EXPECT_NE(error_of([&] { make_rapl_sensor(g.options()); }).find("max_energy_range_uj: expected a positive"),
            std::string::npos);
  // A counter that became unreadable after creation fails the measurement, never returns 0.
  write(g.root() / "intel-rapl:0/max_energy_range_uj", "100000\n");
  auto s = make_rapl_sensor(g.options());
  s->begin();
  write(g.root() / "intel-rapl:0/energy_uj", "garbage\n");
  EXPECT_THROW(s->end(), SensorError);
}

TEST(SensorRapl, AbsentAndNotCountingAreClear) {
  TempDir d;
  SensorOptions o = no_hardware(d.path);
  const std::string e = error_of([&] { make_sensor("rapl", o); });
  EXPECT_NE(e.find("rapl: no powercap tree at " + (d.path / "no-powercap").string()), std::string::npos) << e;
  EXPECT_EQ(failure_of([&] { make_sensor("rapl", o); }), SensorFailure::absent);
  fs::create_directories(d.path / "no-powercap/intel-rapl-mmio:0");
  EXPECT_NE(error_of([&] { make_sensor("rapl", o); }).find("no intel-rapl:N package zone"), std::string::npos);

  FakeRapl f;
  f.zone("intel-rapl:0", "package-0", 42);  // a counter that never moves (as in some VMs)
  SensorOptions p = f.options();
  p.probe_seconds = 0.01;
  EXPECT_EQ(failure_of([&] { make_rapl_sensor(p); }), SensorFailure::not_counting);
  EXPECT_NE(error_of([&] { make_rapl_sensor(p); }).find("did not advance"), std::string::npos);
}

TEST(SensorRapl, RealMachineEitherWorksOrFailsClearly) {
  // Whatever this machine has: a usable sensor, or a one-line SensorError naming the sensor.
  for (const char* spec : {"rapl", "perf", "nvml"}) {
    try {
      auto s = make_sensor(spec);
      EXPECT_EQ(s->name(), spec);
      EXPECT_FALSE(s->covers().empty());
    } catch (const SensorError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(std::string(spec) + ": ", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

// ------------------------------------------------------------------ perf

struct FakePerf {
  TempDir dir;
  fs::path root() const { return dir.path / "devices"; }
  FakePerf(bool ram = true, const std::string& cpumask = "0,18") {
    write(root() / "power/type", "31\n");
    write(root() / "power/cpumask", cpumask + "\n");
    write(root() / "power/events/energy-pkg", "event=0x02\n");
    write(root() / "power/events/energy-pkg.scale", "0.25\n");
    write(root() / "power/events/energy-pkg.unit", "Joules\n");
    if (ram) {
      write(root() / "power/events/energy-ram", "event=0x03\n");
      write(root() / "power/events/energy-ram.scale", "0.5\n");
      write(root() / "power/events/energy-ram.unit", "Joules\n");
    }
  }
  SensorOptions options() const {
    SensorOptions o = no_hardware(dir.path);
    o.perf_root = root();
    return o;
  }
};

// A fake perf counter: a memfd holding a uint64 count, read with read() from offset 0.
struct FakeCounters {
  std::map<std::pair<unsigned long long, int>, int> fds;  // (config, cpu) -> fd
  unsigned seen_type = 0;
  ~FakeCounters() {
    for (auto& [k, fd] : fds) ::close(fd);
  }
  int open(unsigned type, unsigned long long config, int cpu) {
    seen_type = type;
    const int fd = ::memfd_create("irene-fake-perf", 0);
    if (fd < 0) return -errno;
    fds[{config, cpu}] = ::dup(fd);
    set_fd(fd, 0);
    return fd;
  }
  static void set_fd(int fd, std::uint64_t v) {
    if (::pwrite(fd, &v, sizeof v, 0) != sizeof v) throw std::runtime_error("pwrite");
    ::lseek(fd, 0, SEEK_SET);
  }
  void set(unsigned long long config, int cpu, std::uint64_t v) { set_fd(fds.at({config, cpu}), v); }
};

TEST(SensorPerf, ScalesAndSumsPackagesAndDram) {
  FakePerf f;
  FakeCounters c;
  SensorOptions o = f.options();
  o.perf_open = [&](unsigned t, unsigned long long cfg, int cpu) { return c.open(t, cfg, cpu); };
  auto s = make_sensor("perf", o);
  EXPECT_EQ(c.seen_type, 31u);
  EXPECT_EQ(s->covers(), "CPU packages 0-1 + DRAM (perf power PMU)");
  EXPECT_EQ(s->parts(), (std::vector<std::string>{"package-0", "package-1", "dram-0", "dram-1"}));
  s->begin();
  c.set(0x02, 0, 40);   // 10 J
  c.set(0x02, 18, 8);   // 2 J
  c.set(0x03, 0, 3);    // 1.5 J
  c.set(0x03, 18, 1);   // 0.5 J
  const Measurement m = s->end();
  ASSERT_TRUE(m.joules);
  EXPECT_DOUBLE_EQ(*m.joules, 14.0);
  EXPECT_DOUBLE_EQ(m.parts[1].second, 2.0);
}

TEST(SensorPerf, FailuresAreClear) {
  TempDir d;
  SensorOptions o = no_hardware(d.path);
  EXPECT_NE(error_of([&] { make_perf_sensor(o); }).find("perf: no 'power' PMU at"), std::string::npos);
  EXPECT_EQ(failure_of([&] { make_perf_sensor(o); }), SensorFailure::absent);

  {  // The real perf_event_open with a PMU type this kernel does not have.
    FakePerf f(false, "0");
    write(f.root() / "power/type", "4000000\n");
    const std::string e = error_of([&] { make_perf_sensor(f.options()); });
    EXPECT_EQ(e.rfind("perf: ", 0), 0u) << e;
    EXPECT_NE(failure_of([&] { make_perf_sensor(f.options()); }), SensorFailure::not_counting);
  }
  {  // Permission denied says how to fix it.
    FakePerf f;
    SensorOptions p = f.options();
    p.perf_open = [](unsigned, unsigned long long, int) { return -EACCES; };
    const std::string e = error_of([&] { make_perf_sensor(p); });
    EXPECT_NE(e.find("Permission denied"), std::string::npos) << e;
    EXPECT_NE(e.find("perf_event_paranoid"), std::string::npos) << e;
    EXPECT_EQ(failure_of([&] { make_perf_sensor(p); }), SensorFailure::no_permission);
  }
  {  // Counters that read 0 (as in VMs that expose the PMU) with the probe on.
    FakePerf f;
    FakeCounters c;
    SensorOptions p = f.options();
    p.probe_seconds = 0.01;
    p.perf_open = [&](unsigned t, unsigned long long cfg, int cpu) { return c.open(t, cfg, cpu); };
    EXPECT_EQ(failure_of([&] { make_perf_sensor(p); }), SensorFailure::not_counting);
  }
  {  // Malformed sysfs contents.
    FakePerf f;
    write(f.root() / "power/events/energy-pkg.scale", "abc\n");
    EXPECT_NE(error_of([&] { make_perf_sensor(f.options()); }).find("energy-pkg.scale: expected a positive scale, got 'abc'"),
              std::string::npos);
    write(f.root() / "power/events/energy-pkg.scale", "1\n");
    write(f.root() / "power/events/energy-pkg", "umask=1\n");
    EXPECT_NE(error_of([&] { make_perf_sensor(f.options()); }).find("expected 'event=0x..'"), std::string::npos);
    write(f.root() / "power/cpumask", "zero\n");
    EXPECT_NE(error_of([&] { make_perf_sensor(f.options()); }).find("expected a CPU list"), std::string::npos);
  }
}

// ------------------------------------------------------------------ NVML (fake API)

struct FakeNvml {
  static inline int init_rc = 0;
  static inline int energy_rc = 0;
  static inline unsigned count = 2;
  static inline unsigned long long mj[2] = {1000, 5000};
  static inline int shutdowns = 0;
  static inline int inits = 0;
  static int init() { ++inits; return init_rc; }
  static int shutdown() { ++shutdowns; return 0; }
  static const char* error_string(int rc) { return rc == 9 ? "Driver Not Loaded" : "Some Error"; }
  static int device_count(unsigned* n) { *n = count; return 0; }
  static int device_handle(unsigned i, void** dev) { *dev = &mj[i]; return 0; }
  static int device_name(void*, char* out, unsigned len) { std::snprintf(out, len, "Fake V100"); return 0; }
  static int energy(void* dev, unsigned long long* out) {
    *out = *static_cast<unsigned long long*>(dev);
    return energy_rc;
  }
  static NvmlApi api() {
    init_rc = energy_rc = 0;
    count = 2;
    shutdowns = inits = 0;
    NvmlApi a;
    a.init = init;
    a.shutdown = shutdown;
    a.error_string = error_string;
    a.device_count = device_count;
    a.device_handle = device_handle;
    a.device_name = device_name;
    a.total_energy_mj = energy;
    return a;
  }
};

TEST(SensorNvml, SumsAllGpusInJoules) {
  const NvmlApi api = FakeNvml::api();
  {
    auto s = make_nvml_sensor(api);
    EXPECT_EQ(s->name(), "nvml");
    EXPECT_EQ(s->covers(), "2 NVIDIA GPUs: Fake V100, Fake V100 (NVML total energy)");
    const Mark a = s->mark();
    FakeNvml::mj[0] += 2500;  // +2.5 J
    FakeNvml::mj[1] += 750;   // +0.75 J
    const Measurement m = s->between(a, s->mark());
    EXPECT_DOUBLE_EQ(*m.joules, 3.25);
    EXPECT_EQ(m.parts[1].first, "gpu1");
    EXPECT_DOUBLE_EQ(m.parts[1].second, 0.75);
  }
  EXPECT_EQ(FakeNvml::shutdowns, FakeNvml::inits);
}

TEST(SensorNvml, FailuresAreClassifiedAndClear) {
  NvmlApi api = FakeNvml::api();
  FakeNvml::init_rc = kNvmlErrorDriverNotLoaded;
  EXPECT_EQ(failure_of([&] { make_nvml_sensor(api); }), SensorFailure::absent);
  EXPECT_NE(error_of([&] { make_nvml_sensor(api); }).find("nvmlInit_v2 failed: Driver Not Loaded"),
            std::string::npos);
  api = FakeNvml::api();
  FakeNvml::init_rc = kNvmlErrorNoPermission;
  EXPECT_EQ(failure_of([&] { make_nvml_sensor(api); }), SensorFailure::no_permission);
  api = FakeNvml::api();
  FakeNvml::energy_rc = kNvmlErrorNotSupported;
  EXPECT_NE(error_of([&] { make_nvml_sensor(api); }).find("has no energy counter"), std::string::npos);
  EXPECT_EQ(FakeNvml::shutdowns, FakeNvml::inits);  // NVML shut down again after each failure
  api = FakeNvml::api();
  FakeNvml::count = 0;
  EXPECT_NE(error_of([&] { make_nvml_sensor(api); }).find("no GPU"), std::string::npos);

  TempDir d;
  const std::string e = error_of([&] { make_sensor("nvml", no_hardware(d.path)); });
  EXPECT_NE(e.find("nvml: cannot load libirene-no-such-nvml.so.1"), std::string::npos) << e;
  EXPECT_EQ(failure_of([&] { make_sensor("nvml", no_hardware(d.path)); }), SensorFailure::absent);
  SensorOptions libm = no_hardware(d.path);
  libm.nvml_library = "libm.so.6";  // loads, but is not NVML
  EXPECT_NE(error_of([&] { make_sensor("nvml", libm); }).find("nvml: libm.so.6 has no nvmlInit_v2"),
            std::string::npos);
}

TEST(SensorSum, RaplPlusNvmlAddsCpuAndGpus) {
  FakeRapl f;
  f.zone("intel-rapl:0", "package-0", 0);
  std::vector<std::unique_ptr<Sensor>> v;
  v.push_back(make_rapl_sensor(f.options()));
  v.push_back(make_nvml_sensor(FakeNvml::api()));
  auto s = make_sum_sensor(std::move(v));
  EXPECT_EQ(s->name(), "rapl+nvml");
  EXPECT_EQ(s->covers(), "CPU package 0 (Linux powercap RAPL, no DRAM zone) + 2 NVIDIA GPUs: Fake V100, Fake V100 (NVML total energy)");
  EXPECT_EQ(s->parts(), (std::vector<std::string>{"rapl:package-0", "nvml:gpu0", "nvml:gpu1"}));
  EnergyMonitor mon(*s);
  mon.begin_window("w");
  f.set("intel-rapl:0", 2000000);  // +2 J
  FakeNvml::mj[1] += 1500;         // +1.5 J
  const Measurement m = mon.end_window("w");
  EXPECT_NEAR(*m.joules, 3.5, 1e-12);
  EXPECT_NEAR(m.parts[2].second, 1.5, 1e-12);

  TempDir d;
  const SensorOptions o = no_hardware(d.path);
  EXPECT_NE(error_of([&] { make_sensor("rapl+perf", o); }).find("count the CPU twice"), std::string::npos);
  EXPECT_NE(error_of([&] { make_sensor("nvml+nvml", o); }).find("nvml appears twice"), std::string::npos);
  EXPECT_NE(error_of([&] { make_sensor("rapl+none", o); }).find("only rapl, perf and nvml can be summed"),
            std::string::npos);
  // A part that is missing here fails the whole sum (never a silent partial sum).
  EXPECT_EQ(failure_of([&] { make_sensor("rapl+nvml", f.options()); }), SensorFailure::absent);
  std::vector<std::unique_ptr<Sensor>> bad;
  bad.push_back(make_none_sensor());
  bad.push_back(make_rapl_sensor(f.options()));
  EXPECT_THROW(make_sum_sensor(std::move(bad)), irene::Error);
}

// ------------------------------------------------------------------ auto, none, idle

TEST(SensorAuto, PicksAWorkingSensorAndSaysWhy) {
  FakeRapl f;
  f.zone("intel-rapl:0", "package-0", 0);
  auto s = make_sensor("auto", f.options());
  EXPECT_EQ(s->name(), "rapl");
  EXPECT_NE(s->notes().find("auto: picked rapl"), std::string::npos) << s->notes();
  EXPECT_NE(s->notes().find("not absent: nvml: cannot load"), std::string::npos) << s->notes();
}

TEST(SensorAuto, FallsBackToNoneOnlyWhenNothingExists) {
  TempDir d;
  auto s = make_sensor("auto", no_hardware(d.path));
  EXPECT_EQ(s->name(), "none");
  EXPECT_FALSE(s->measures_energy());
  EXPECT_NE(s->notes().find("no energy is measured"), std::string::npos) << s->notes();
  EXPECT_NE(s->notes().find("rapl: no powercap tree"), std::string::npos) << s->notes();
  const auto probe = probe_sensors(no_hardware(d.path));
  ASSERT_EQ(probe.size(), 3u);
  for (const auto& p : probe) {
    EXPECT_FALSE(p.available) << p.name;
    EXPECT_EQ(p.failure, SensorFailure::absent) << p.name;
  }
  EXPECT_NE(error_of([&] { make_sensor("joulemeter"); }).find("unknown sensor 'joulemeter'"),
            std::string::npos);
}

TEST(SensorNone, MeasuresTimeButNeverInventsEnergy) {
  auto s = make_sensor("none");
  EXPECT_FALSE(s->measures_energy());
  EXPECT_NE(s->covers().find("no energy"), std::string::npos);
  EnergyMonitor mon(*s);
  mon.begin_window("w");
  const Measurement m = mon.end_window("w");
  EXPECT_FALSE(m.joules.has_value());
  EXPECT_FALSE(m.watts().has_value());
  EXPECT_TRUE(m.parts.empty());
  EXPECT_GE(m.seconds, 0.0);
  EXPECT_NE(m.to_string("none").find("no energy measured (sensor none)"), std::string::npos);
  const IdlePower idle = measure_idle_power(*s, 0.01);
  EXPECT_FALSE(idle.watts.has_value());
  EXPECT_FALSE(idle.joules.has_value());
  EXPECT_NE(error_of([&] { measure_idle_power(*s, 0); }).find("seconds must be positive"), std::string::npos);
}

TEST(SensorIdle, IdlePowerFromATraceCoveringNow) {
  TempDir d;
  const double now = std::floor(now_epoch());
  write(d.path / "idle.csv", "timestamp,watts\n" + std::to_string(now - 60) + ",42\n" +
                                 std::to_string(now + 600) + ",42\n");
  auto s = make_sensor("trace:" + (d.path / "idle.csv").string());
  const IdlePower idle = measure_idle_power(*s, 0.02);
  ASSERT_TRUE(idle.watts);
  EXPECT_NEAR(*idle.watts, 42.0, 1e-6);
  EXPECT_NEAR(*idle.joules, 42.0 * idle.seconds, 1e-9);
}

// ------------------------------------------------------------------ CLI

std::string run(const std::string& args, int* status) {
  const auto r = irene_test::run_irene(args);
  *status = r.status;
  return r.output;
}

TEST(SensorCli, ListsSensorsAndReadsWindows) {
  int rc = 0;
  const std::string list = run("sensors", &rc);
  EXPECT_EQ(rc, 0) << list;
  for (const char* name : {"nvml", "rapl", "perf", "auto"}) EXPECT_NE(list.find(name), std::string::npos) << list;

  const std::string none = run("sensors read --meter none --seconds 0.05", &rc);
  EXPECT_EQ(rc, 0) << none;
  EXPECT_NE(none.find("no energy measured"), std::string::npos) << none;

  TempDir d;
  const double now = std::floor(now_epoch());
  write(d.path / "t.csv", "timestamp,watts\n" + std::to_string(now - 60) + ",7.5\n" +
                              std::to_string(now + 600) + ",7.5\n");
  const std::string trace = run("sensors read --meter trace:" + (d.path / "t.csv").string() + " --seconds 0.05", &rc);
  EXPECT_EQ(rc, 0) << trace;
  EXPECT_NE(trace.find("7.50 W"), std::string::npos) << trace;

  write(d.path / "bad.csv", "timestamp,watts\n1,x\n");
  const std::string bad = run("sensors read --meter trace:" + (d.path / "bad.csv").string() + " --seconds 0.05", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(bad.find("irene: error: " + (d.path / "bad.csv").string() + ":2: watts"), std::string::npos) << bad;
  const std::string neg = run("sensors read --meter none --seconds -1", &rc);
  EXPECT_NE(rc, 0) << neg;
}

}  // namespace
