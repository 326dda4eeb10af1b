// `rapl`: Intel/AMD RAPL energy counters through Linux powercap sysfs
// (/sys/class/powercap/intel-rapl:N = package N, intel-rapl:N:M subzones, DRAM where present).
//
// Counters are microjoules that wrap at max_energy_range_uj. Every read adds the difference
// since the previous read (wrap corrected) to a 64-bit total, and a background thread reads
// every `rapl_poll_seconds` so that a window longer than one wrap period stays right.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <regex>
#include <stop_token>
#include <thread>

#include "irene/measure/sensor.hpp"
#include "irene/measure/sensor_internal.hpp"

namespace irene::measure {

namespace fs = std::filesystem;

namespace {

struct Zone {
  std::string part;          // "package-0", "dram-0"
  fs::path energy_file;      // .../energy_uj
  unsigned long long max_uj = 0;
  unsigned long long last_raw = 0;
  unsigned long long total_uj = 0;  // accumulated since creation
};

const char* kPermissionHint =
    "since Linux 5.10 energy_uj is readable only by root: run irene as root, or "
    "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj` (until reboot; a udev rule "
    "ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\" makes it permanent)";

class RaplSensor final : public Sensor {
 public:
  RaplSensor(std::vector<Zone> zones, std::function<std::string(const fs::path&)> read,
             std::string covers)
      : zones_(std::move(zones)), read_(std::move(read)), covers_(std::move(covers)) {}

  ~RaplSensor() override {
    if (poller_.joinable()) {
      poller_.request_stop();
      poller_.join();
    }
  }

  void start_polling(double seconds) {
    if (seconds <= 0) return;
    poller_ = std::jthread([this, seconds](std::stop_token stop) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      while (!stop.stop_requested()) {
        cv.wait_for(lock, stop, std::chrono::duration<double>(seconds), [] { return false; });
        if (stop.stop_requested()) break;
        try {
          read_joules();
        } catch (...) {
          // The next mark() reports the failure.
        }
      }
    });
  }

  std::string name() const override { return "rapl"; }
  std::string covers() const override { return covers_; }
  std::vector<std::string> parts() const override {
    std::vector<std::string> out;
    for (const auto& z : zones_) out.push_back(z.part);
    return out;
  }

  /// Reads one raw counter (microjoules) with classified errors.
  static unsigned long long read_raw(const std::function<std::string(const fs::path&)>& read,
                                     const fs::path& file) {
    std::string text;
    try {
      text = read(file);
    } catch (const std::system_error& e) {
      if (detail::is_permission_error(e.code()))
        throw SensorError(SensorFailure::no_permission,
                          fmt::format("rapl: cannot read {}: {}; {}", file.string(),
                                      e.code().message(), kPermissionHint));
      throw SensorError(SensorFailure::broken, fmt::format("rapl: cannot read {}: {}",
                                                           file.string(), e.code().message()));
    }
    unsigned long long v = 0;
    if (!detail::parse_u64(detail::trim(text), v))
      throw SensorError(SensorFailure::broken,
                        fmt::format("rapl: {}: expected a whole number of microjoules, got '{}'",
                                    file.string(), detail::trim(text)));
    return v;
  }

  void init_counters() {
    for (auto& z : zones_) z.last_raw = read_raw(read_, z.energy_file);
  }

 protected:
  std::vector<double> read_joules() override {
    std::lock_guard lock(mutex_);
    std::vector<double> out;
    out.reserve(zones_.size());
    for (auto& z : zones_) {
      const unsigned long long raw = read_raw(read_, z.energy_file);
      unsigned long long delta;
      if (raw >= z.last_raw) {
        delta = raw - z.last_raw;
      } else {
        // Wrapped at max_energy_range_uj (the counter runs 0..max).
        delta = (z.max_uj - std::min(z.last_raw, z.max_uj)) + raw;
      }
      z.last_raw = raw;
      z.total_uj += delta;
      out.push_back(static_cast<double>(z.total_uj) * 1e-6);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<Zone> zones_;
  std::function<std::string(const fs::path&)> read_;
  std::string covers_;
  std::jthread poller_;
};

std::string read_small(const std::function<std::string(const fs::path&)>& read, const fs::path& f) {
  try {
    return detail::trim(read(f));
  } catch (const std::system_error& e) {
    if (detail::is_permission_error(e.code()))
      throw SensorError(SensorFailure::no_permission,
                        fmt::format("rapl: cannot read {}: {}; run irene as root or make it "
                                    "readable (chmod a+r)",
                                    f.string(), e.code().message()));
    throw SensorError(SensorFailure::broken,
                      fmt::format("rapl: cannot read {}: {}", f.string(), e.code().message()));
  }
}

}  // namespace

std::unique_ptr<Sensor> make_rapl_sensor(const SensorOptions& options) {
  const auto read = detail::reader(options);
  const fs::path& root = options.powercap_root;
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw SensorError(SensorFailure::absent,
                      fmt::format("rapl: no powercap tree at {} (this kernel/machine exposes no "
                                  "RAPL; virtual machines usually do not)",
                                  root.string()));

  // Zone folders: intel-rapl:N (package or top-level dram/psys) and intel-rapl:N:M (subzones),
  // found at the root (sysfs links them there) and inside their parent zone.
  static const std::regex top_re(R"(intel-rapl:(\d+))");
  static const std::regex sub_re(R"(intel-rapl:(\d+):(\d+))");
  std::map<int, fs::path> tops;
  std::map<std::pair<int, int>, fs::path> subs;
  auto scan = [&](const fs::path& dir) {
    std::error_code e;
    for (fs::directory_iterator it(dir, e), end; !e && it != end; it.increment(e)) {
      const std::string n = it->path().filename().string();
      std::smatch m;
      if (std::regex_match(n, m, top_re))
        tops.emplace(std::stoi(m[1]), it->path());
      else if (std::regex_match(n, m, sub_re))
        subs.emplace(std::make_pair(std::stoi(m[1]), std::stoi(m[2])), it->path());
    }
  };
  scan(root);
  for (const auto& [n, dir] : std::map<int, fs::path>(tops)) scan(dir);

  std::vector<Zone> zones;
  std::vector<int> packages;
  std::vector<std::string> skipped;
  bool dram = false;
  auto add_zone = [&](const fs::path& dir, const std::string& part) {
    Zone z;
    z.part = part;
    z.energy_file = dir / "energy_uj";
    const std::string max_text = read_small(read, dir / "max_energy_range_uj");
    if (!detail::parse_u64(max_text, z.max_uj) || z.max_uj == 0)
      throw SensorError(SensorFailure::broken,
                        fmt::format("rapl: {}: expected a positive whole number of microjoules, "
                                    "got '{}'",
                                    (dir / "max_energy_range_uj").string(), max_text));
    zones.push_back(std::move(z));
  };
  for (const auto& [n, dir] : tops) {
    const std::string zname = read_small(read, dir / "name");
    if (zname.rfind("package-", 0) == 0) {
      int pkg = n;
      try {
        pkg = std::stoi(zname.substr(8));
      } catch (...) {
      }
      packages.push_back(pkg);
      add_zone(dir, fmt::format("package-{}", pkg));
      for (const auto& [key, sdir] : subs) {
        if (key.first != n) continue;
        if (read_small(read, sdir / "name") == "dram") {
          add_zone(sdir, fmt::format("dram-{}", pkg));
          dram = true;
        }
      }
    } else if (zname == "dram") {
      add_zone(dir, fmt::format("dram-{}", n));
      dram = true;
    } else {
      skipped.push_back(zname);  // psys overlaps the packages; counting it would double count
    }
  }
  if (packages.empty())
    throw SensorError(SensorFailure::absent,
                      fmt::format("rapl: no intel-rapl:N package zone under {} (no RAPL here)",
                                  root.string()));

  std::string covers = fmt::format("CPU package{} {}{} (Linux powercap RAPL{})",
                                   packages.size() > 1 ? "s" : "", detail::index_ranges(packages),
                                   dram ? " + DRAM" : "", dram ? "" : ", no DRAM zone");
  auto sensor = std::make_unique<RaplSensor>(std::move(zones), read, std::move(covers));
  sensor->init_counters();
  if (options.probe_seconds > 0) {
    const Mark a = sensor->mark();
    std::this_thread::sleep_for(std::chrono::duration<double>(options.probe_seconds));
    const Mark b = sensor->mark();
    const Measurement m = sensor->between(a, b);
    if (!(m.joules && *m.joules > 0))
      throw SensorError(SensorFailure::not_counting,
                        fmt::format("rapl: counters under {} did not advance in {} s (RAPL is "
                                    "exposed but not counting, as in some virtual machines)",
                                    root.string(), options.probe_seconds));
  }
  if (!skipped.empty()) {
    std::string note = "rapl: not counted (they overlap the packages):";
    for (const auto& s : skipped) note += " " + s;
    sensor->set_notes(note);
  }
  sensor->start_polling(options.rapl_poll_seconds);
  return sensor;
}

}  // namespace irene::measure
