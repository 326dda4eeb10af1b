// Sensor base class, EnergyMonitor, the `none` sensor, make_sensor/auto, probing, idle power.
#include "irene/measure/sensor.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <thread>

#include "irene/measure/sensor_internal.hpp"

namespace irene::measure {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- detail helpers

namespace detail {

std::string default_read_text(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), path.string());
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw std::system_error(err, std::generic_category(), path.string());
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::function<std::string(const fs::path&)> reader(const SensorOptions& options) {
  if (options.read_text) return options.read_text;
  return default_read_text;
}

std::string trim(std::string_view text) {
  const char* ws = " \t\r\n";
  const auto b = text.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const auto e = text.find_last_not_of(ws);
  return std::string(text.substr(b, e - b + 1));
}

bool parse_double(std::string_view text, double& value) {
  if (text.empty()) return false;
  if (text.front() == '+') text.remove_prefix(1);
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), last, value);
  return ec == std::errc() && ptr == last && std::isfinite(value);
}

bool parse_u64(std::string_view text, unsigned long long& value) {
  if (text.empty()) return false;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), last, value);
  return ec == std::errc() && ptr == last;
}

bool is_permission_error(const std::error_code& ec) {
  return ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted;
}

std::string index_ranges(const std::vector<int>& indices) {
  if (indices.empty()) return "";
  std::vector<int> v = indices;
  std::sort(v.begin(), v.end());
  bool contiguous = true;
  for (size_t i = 1; i < v.size(); ++i) contiguous = contiguous && v[i] == v[i - 1] + 1;
  if (v.size() == 1) return std::to_string(v[0]);
  if (contiguous) return fmt::format("{}-{}", v.front(), v.back());
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------- Measurement

std::optional<double> Measurement::watts() const {
  if (!joules || seconds <= 0) return std::nullopt;
  return *joules / seconds;
}

std::string Measurement::to_string(std::string_view sensor_name) const {
  if (!joules) {
    if (sensor_name.empty()) return fmt::format("{:.3f} s, no energy measured", seconds);
    return fmt::format("{:.3f} s, no energy measured (sensor {})", seconds, sensor_name);
  }
  if (auto w = watts()) return fmt::format("{:.3f} s, {:.2f} J ({:.2f} W)", seconds, *joules, *w);
  return fmt::format("{:.3f} s, {:.2f} J", seconds, *joules);
}

// ---------------------------------------------------------------- Sensor

Mark Sensor::mark() {
  Mark m;
  m.joules = read_joules();
  m.steady = std::chrono::steady_clock::now();
  m.epoch_seconds =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return m;
}

Measurement Sensor::between(const Mark& begin, const Mark& end) {
  Measurement m;
  m.seconds = std::chrono::duration<double>(end.steady - begin.steady).count();
  if (!measures_energy()) return m;
  const auto names = parts();
  if (begin.joules.size() != end.joules.size() || begin.joules.size() != names.size())
    throw Error(fmt::format("{}: marks of different sensors ({} vs {} parts)", name(),
                            begin.joules.size(), end.joules.size()));
  double total = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const double j = end.joules[i] - begin.joules[i];
    m.parts.emplace_back(names[i], j);
    total += j;
  }
  m.joules = total;
  return m;
}

void Sensor::begin() {
  Mark m = mark();
  std::lock_guard lock(single_mutex_);
  single_begin_ = std::move(m);
}

Measurement Sensor::end() {
  std::optional<Mark> b;
  {
    std::lock_guard lock(single_mutex_);
    b.swap(single_begin_);
  }
  if (!b) throw Error(fmt::format("{}: end() without begin()", name()));
  return between(*b, mark());
}

// ---------------------------------------------------------------- EnergyMonitor

void EnergyMonitor::begin_window(std::string_view name) {
  {
    std::lock_guard lock(mutex_);
    if (open_.count(std::string(name)))
      throw Error(fmt::format("measurement window '{}' is already open", name));
  }
  Mark m = sensor_.mark();
  std::lock_guard lock(mutex_);
  if (!open_.emplace(std::string(name), std::move(m)).second)
    throw Error(fmt::format("measurement window '{}' is already open", name));
}

Measurement EnergyMonitor::end_window(std::string_view name) {
  Mark end = sensor_.mark();
  Mark begin;
  {
    std::lock_guard lock(mutex_);
    auto it = open_.find(std::string(name));
    if (it == open_.end())
      throw Error(fmt::format("measurement window '{}' was not begun", name));
    begin = std::move(it->second);
    open_.erase(it);
  }
  return sensor_.between(begin, end);
}

void EnergyMonitor::cancel_window(std::string_view name) {
  std::lock_guard lock(mutex_);
  open_.erase(std::string(name));
}

bool EnergyMonitor::is_open(std::string_view name) const {
  std::lock_guard lock(mutex_);
  return open_.count(std::string(name)) > 0;
}

// ---------------------------------------------------------------- none

namespace {

class NoneSensor final : public Sensor {
 public:
  std::string name() const override { return "none"; }
  std::string covers() const override { return "nothing: no energy is measured (sensor none)"; }
  bool measures_energy() const override { return false; }
};

const char* failure_word(SensorFailure f) {
  switch (f) {
    case SensorFailure::absent: return "absent";
    case SensorFailure::not_counting: return "not counting";
    case SensorFailure::no_permission: return "not readable";
    case SensorFailure::broken: return "unusable";
  }
  return "unusable";
}

}  // namespace

std::unique_ptr<Sensor> make_none_sensor() { return std::make_unique<NoneSensor>(); }

// ---------------------------------------------------------------- sums (e.g. rapl+nvml)

namespace {

class SumSensor final : public Sensor {
 public:
  explicit SumSensor(std::vector<std::unique_ptr<Sensor>> sensors) : sensors_(std::move(sensors)) {}
  std::string name() const override {
    std::string n;
    for (const auto& s : sensors_) n += (n.empty() ? "" : "+") + s->name();
    return n;
  }
  std::string covers() const override {
    std::string c;
    for (const auto& s : sensors_) c += (c.empty() ? "" : " + ") + s->covers();
    return c;
  }
  std::vector<std::string> parts() const override {
    std::vector<std::string> out;
    for (const auto& s : sensors_)
      for (auto& p : s->parts()) out.push_back(fmt::format("{}:{}", s->name(), p));
    return out;
  }

 protected:
  std::vector<double> read_joules() override {
    std::vector<double> out;
    for (const auto& s : sensors_) {
      const Mark m = s->mark();
      out.insert(out.end(), m.joules.begin(), m.joules.end());
    }
    return out;
  }

 private:
  std::vector<std::unique_ptr<Sensor>> sensors_;
};

}  // namespace

std::unique_ptr<Sensor> make_sum_sensor(std::vector<std::unique_ptr<Sensor>> sensors) {
  if (sensors.size() < 2) throw Error("a sum of sensors needs at least two sensors");
  std::string notes;
  for (const auto& s : sensors) {
    if (!s || !s->measures_energy() || s->parts().empty())
      throw Error(fmt::format("sensor '{}' cannot be summed: only rapl, perf and nvml can",
                              s ? s->name() : "null"));
    if (!s->notes().empty()) notes += (notes.empty() ? "" : "; ") + s->notes();
  }
  auto sum = std::make_unique<SumSensor>(std::move(sensors));
  sum->set_notes(std::move(notes));
  return sum;
}

// ---------------------------------------------------------------- make_sensor

std::unique_ptr<Sensor> make_sensor(std::string_view spec, const SensorOptions& options) {
  if (spec == "none") return make_none_sensor();
  if (spec == "rapl") return make_rapl_sensor(options);
  if (spec == "perf") return make_perf_sensor(options);
  if (spec == "nvml") return make_nvml_sensor(options);
  if (spec.rfind("trace:", 0) == 0) {
    const std::string_view file = spec.substr(6);
    if (file.empty()) throw Error("sensor 'trace:' needs a file: trace:FILE");
    return make_trace_sensor(fs::path(std::string(file)), options);
  }
  if (spec.find('+') != std::string_view::npos) {
    // A sum of counters over different hardware, e.g. rapl+nvml (CPU packages + GPUs).
    std::vector<std::string> names;
    for (size_t start = 0;;) {
      const size_t plus = spec.find('+', start);
      names.emplace_back(spec.substr(start, plus == std::string_view::npos ? plus : plus - start));
      if (plus == std::string_view::npos) break;
      start = plus + 1;
    }
    for (size_t i = 0; i < names.size(); ++i) {
      const auto& n = names[i];
      if (n != "rapl" && n != "perf" && n != "nvml")
        throw Error(fmt::format("sensor '{}': only rapl, perf and nvml can be summed (got '{}')",
                                spec, n));
      for (size_t j = 0; j < i; ++j)
        if (names[j] == n) throw Error(fmt::format("sensor '{}': {} appears twice", spec, n));
    }
    const auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    if (has("rapl") && has("perf"))
      throw Error(fmt::format("sensor '{}': rapl and perf read the same RAPL counters; summing them "
                              "would count the CPU twice",
                              spec));
    std::vector<std::unique_ptr<Sensor>> sensors;
    for (const auto& n : names) sensors.push_back(make_sensor(n, options));
    return make_sum_sensor(std::move(sensors));
  }
  if (spec != "auto")
    throw Error(fmt::format("unknown sensor '{}': use auto, rapl, perf, nvml, rapl+nvml, "
                            "perf+nvml, trace:FILE or none",
                            spec));

  using Factory = std::unique_ptr<Sensor> (*)(const SensorOptions&);
  const std::pair<const char*, Factory> order[] = {
      {"nvml", make_nvml_sensor}, {"rapl", make_rapl_sensor}, {"perf", make_perf_sensor}};
  std::vector<std::string> skipped;
  std::optional<SensorError> blocking;
  for (const auto& [name, factory] : order) {
    try {
      auto sensor = factory(options);
      std::string notes = fmt::format("auto: picked {} ({})", name, sensor->covers());
      for (const auto& s : skipped) notes += "; not " + s;
      if (!sensor->notes().empty()) notes += "; " + sensor->notes();
      sensor->set_notes(std::move(notes));
      return sensor;
    } catch (const SensorError& e) {
      skipped.push_back(fmt::format("{}: {}", failure_word(e.failure()), e.what()));
      if (!blocking && (e.failure() == SensorFailure::no_permission ||
                        e.failure() == SensorFailure::broken))
        blocking = e;
    }
  }
  if (blocking) {
    std::string msg = fmt::format("auto: no usable energy sensor; {}", blocking->what());
    throw SensorError(blocking->failure(), msg);
  }
  auto none = make_none_sensor();
  std::string notes = "auto: no energy sensor on this machine, so no energy is measured (sensor none)";
  for (const auto& s : skipped) notes += "; " + s;
  none->set_notes(std::move(notes));
  return none;
}

std::vector<SensorAvailability> probe_sensors(const SensorOptions& options) {
  using Factory = std::unique_ptr<Sensor> (*)(const SensorOptions&);
  const std::pair<const char*, Factory> order[] = {
      {"nvml", make_nvml_sensor}, {"rapl", make_rapl_sensor}, {"perf", make_perf_sensor}};
  std::vector<SensorAvailability> out;
  for (const auto& [name, factory] : order) {
    SensorAvailability a;
    a.name = name;
    try {
      auto sensor = factory(options);
      a.available = true;
      a.detail = sensor->covers();
    } catch (const SensorError& e) {
      a.detail = e.what();
      a.failure = e.failure();
    }
    out.push_back(std::move(a));
  }
  return out;
}

// ---------------------------------------------------------------- idle power

IdlePower measure_idle_power(Sensor& sensor, double seconds) {
  if (!(seconds > 0) || !std::isfinite(seconds))
    throw Error(fmt::format("idle power: seconds must be positive, got {}", seconds));
  const Mark begin = sensor.mark();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const Measurement m = sensor.between(begin, sensor.mark());
  IdlePower idle;
  idle.seconds = m.seconds;
  idle.joules = m.joules;
  idle.watts = m.watts();
  return idle;
}

}  // namespace irene::measure
