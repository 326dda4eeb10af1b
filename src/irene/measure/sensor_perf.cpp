// `perf`: the kernel's `power` PMU (RAPL through perf_event_open), events energy-pkg and
// energy-ram, one system-wide counter per package (the PMU's cpumask names one CPU per package).
// Counts are 64-bit and scaled to joules by events/<name>.scale.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>

#include "irene/measure/sensor.hpp"
#include "irene/measure/sensor_internal.hpp"

namespace irene::measure {

namespace fs = std::filesystem;

namespace {

int system_perf_open(unsigned type, unsigned long long config, int cpu) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.type = type;
  attr.size = sizeof attr;
  attr.config = config;
  const long fd = ::syscall(SYS_perf_event_open, &attr, -1 /*all processes*/, cpu,
                            -1 /*no group*/, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) return -errno;
  return static_cast<int>(fd);
}

struct Counter {
  std::string part;  // "package-0", "dram-0"
  int fd = -1;
  double scale = 1;  // joules per count
};

class PerfSensor final : public Sensor {
 public:
  PerfSensor(std::vector<Counter> counters, std::string covers)
      : counters_(std::move(counters)), covers_(std::move(covers)) {}
  ~PerfSensor() override {
    for (auto& c : counters_)
      if (c.fd >= 0) ::close(c.fd);
  }
  std::string name() const override { return "perf"; }
  std::string covers() const override { return covers_; }
  std::vector<std::string> parts() const override {
    std::vector<std::string> out;
    for (const auto& c : counters_) out.push_back(c.part);
    return out;
  }

 protected:
  std::vector<double> read_joules() override {
    std::lock_guard lock(mutex_);
    std::vector<double> out;
    for (const auto& c : counters_) {
      std::uint64_t count = 0;
      // perf fds ignore the offset (lseek fails with ESPIPE, harmlessly); an injected fake
      // counter may be a plain file holding the count, read from its start each time.
      (void)::lseek(c.fd, 0, SEEK_SET);
      const ssize_t n = ::read(c.fd, &count, sizeof count);
      if (n != static_cast<ssize_t>(sizeof count))
        throw SensorError(SensorFailure::broken,
                          fmt::format("perf: reading the {} counter failed: {}", c.part,
                                      n < 0 ? std::strerror(errno) : "short read"));
      out.push_back(static_cast<double>(count) * c.scale);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<Counter> counters_;
  std::string covers_;
};

// "0", "0,18", "0-3,8" -> CPU numbers.
std::vector<int> parse_cpu_list(const std::string& text, const fs::path& file) {
  std::vector<int> cpus;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item =
        detail::trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    const size_t dash = item.find('-');
    unsigned long long a = 0, b = 0;
    bool ok = dash == std::string::npos ? detail::parse_u64(item, a) && (b = a, true)
                                        : detail::parse_u64(item.substr(0, dash), a) &&
                                              detail::parse_u64(item.substr(dash + 1), b) && a <= b;
    if (!ok || b > 1u << 20)
      throw SensorError(SensorFailure::broken,
                        fmt::format("perf: {}: expected a CPU list like 0,18, got '{}'",
                                    file.string(), text));
    for (auto c = a; c <= b; ++c) cpus.push_back(static_cast<int>(c));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return cpus;
}

}  // namespace

std::unique_ptr<Sensor> make_perf_sensor(const SensorOptions& options) {
  const auto read = detail::reader(options);
  const fs::path pmu = options.perf_root / "power";
  std::error_code ec;
  if (!fs::is_directory(pmu, ec))
    throw SensorError(SensorFailure::absent,
                      fmt::format("perf: no 'power' PMU at {} (the kernel exposes no RAPL energy "
                                  "events; virtual machines usually do not)",
                                  pmu.string()));
  auto text = [&](const fs::path& f) -> std::string {
    try {
      return detail::trim(read(f));
    } catch (const std::system_error& e) {
      throw SensorError(detail::is_permission_error(e.code()) ? SensorFailure::no_permission
                                                              : SensorFailure::broken,
                        fmt::format("perf: cannot read {}: {}", f.string(), e.code().message()));
    }
  };
  unsigned long long type = 0;
  const std::string type_text = text(pmu / "type");
  if (!detail::parse_u64(type_text, type) || type > 0xffffffffu)
    throw SensorError(SensorFailure::broken,
                      fmt::format("perf: {}: expected a PMU type number, got '{}'",
                                  (pmu / "type").string(), type_text));
  std::vector<int> cpus{0};
  if (fs::exists(pmu / "cpumask", ec)) cpus = parse_cpu_list(text(pmu / "cpumask"), pmu / "cpumask");
  if (cpus.empty()) cpus = {0};

  const auto open = options.perf_open ? options.perf_open : system_perf_open;
  std::vector<Counter> counters;
  bool have_ram = false;
  struct CloseOnError {
    std::vector<Counter>& c;
    bool armed = true;
    ~CloseOnError() {
      if (armed)
        for (auto& x : c)
          if (x.fd >= 0) ::close(x.fd);
    }
  } guard{counters};

  for (const char* event : {"energy-pkg", "energy-ram"}) {
    const fs::path ev = pmu / "events" / event;
    if (!fs::exists(ev, ec)) {
      if (std::string(event) == "energy-pkg")
        throw SensorError(SensorFailure::absent,
                          fmt::format("perf: the power PMU has no energy-pkg event ({} missing)",
                                      ev.string()));
      continue;
    }
    // "event=0x02"
    const std::string spec = text(ev);
    unsigned long long config = 0;
    bool ok = spec.rfind("event=", 0) == 0;
    if (ok) {
      std::string v = spec.substr(6);
      int base = 10;
      if (v.rfind("0x", 0) == 0) {
        v = v.substr(2);
        base = 16;
      }
      const char* last = v.data() + v.size();
      auto [ptr, e] = std::from_chars(v.data(), last, config, base);
      ok = !v.empty() && e == std::errc() && ptr == last;
    }
    if (!ok)
      throw SensorError(SensorFailure::broken,
                        fmt::format("perf: {}: expected 'event=0x..', got '{}'", ev.string(), spec));
    double scale = 1;
    const fs::path scale_file = pmu / "events" / (std::string(event) + ".scale");
    const std::string scale_text = text(scale_file);
    if (!detail::parse_double(scale_text, scale) || scale <= 0)
      throw SensorError(SensorFailure::broken,
                        fmt::format("perf: {}: expected a positive scale, got '{}'",
                                    scale_file.string(), scale_text));
    const fs::path unit_file = pmu / "events" / (std::string(event) + ".unit");
    if (fs::exists(unit_file, ec)) {
      const std::string unit = text(unit_file);
      if (unit != "Joules")
        throw SensorError(SensorFailure::broken,
                          fmt::format("perf: {}: unit '{}', expected Joules", unit_file.string(), unit));
    }
    const bool ram = std::string(event) == "energy-ram";
    for (size_t i = 0; i < cpus.size(); ++i) {
      const int fd = open(static_cast<unsigned>(type), config, cpus[i]);
      if (fd < 0) {
        const std::error_code err(-fd, std::generic_category());
        if (detail::is_permission_error(err))
          throw SensorError(
              SensorFailure::no_permission,
              fmt::format("perf: perf_event_open(power/{} on CPU {}): {}; system-wide power "
                          "events need root or CAP_PERFMON, or `sudo sysctl "
                          "kernel.perf_event_paranoid=0`",
                          event, cpus[i], err.message()));
        throw SensorError(SensorFailure::absent,
                          fmt::format("perf: the kernel refused power/{} (type {}, config {:#x}) on "
                                      "CPU {}: {}",
                                      event, type, config, cpus[i], err.message()));
      }
      counters.push_back(Counter{fmt::format("{}-{}", ram ? "dram" : "package", i), fd, scale});
    }
    have_ram = have_ram || ram;
  }
  std::vector<int> pk;
  for (size_t i = 0; i < cpus.size(); ++i) pk.push_back(static_cast<int>(i));
  std::string covers = fmt::format("CPU package{} {}{} (perf power PMU{})", cpus.size() > 1 ? "s" : "",
                                   detail::index_ranges(pk), have_ram ? " + DRAM" : "",
                                   have_ram ? "" : ", no energy-ram event");
  guard.armed = false;
  auto sensor = std::make_unique<PerfSensor>(std::move(counters), std::move(covers));
  if (options.probe_seconds > 0) {
    const Mark a = sensor->mark();
    std::this_thread::sleep_for(std::chrono::duration<double>(options.probe_seconds));
    const Measurement m = sensor->between(a, sensor->mark());
    if (!(m.joules && *m.joules > 0))
      throw SensorError(SensorFailure::not_counting,
                        fmt::format("perf: power/energy-pkg did not advance in {} s (the PMU is "
                                    "exposed but reads 0, as in some virtual machines)",
                                    options.probe_seconds));
  }
  return sensor;
}

}  // namespace irene::measure
