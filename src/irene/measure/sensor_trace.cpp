#include "irene/measure/sensor_trace.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "irene/measure/sensor_internal.hpp"

namespace irene::measure {

namespace fs = std::filesystem;

namespace {

// Bounds of a plausible trace: 10 MW is a whole data-centre hall; timestamps before the year 5138.
constexpr double kMaxWatts = 1e7;
constexpr double kMaxEpochSeconds = 1e11;

SensorError trace_error(const fs::path& file, long line, std::string_view what) {
  return SensorError(SensorFailure::broken, file_error(file, line, what).what());
}

// Incremental reader of a (possibly growing) trace file.
class TraceReader {
 public:
  explicit TraceReader(fs::path file) : file_(std::move(file)) {}

  const std::vector<PowerSample>& samples() const { return samples_; }
  const fs::path& file() const { return file_; }

  // Reads what was appended since the last call. Complete lines only, unless `tail`.
  void refresh(bool tail) {
    std::error_code ec;
    if (fs::is_directory(file_, ec)) throw trace_error(file_, 0, "is a folder, expected a power trace file");
    if (fs::exists(file_, ec) && !fs::is_regular_file(file_, ec))
      throw trace_error(file_, 0, "is not a regular file (a device or FIFO cannot be a power trace: it is re-read)");
    std::ifstream in(file_, std::ios::binary);
    if (!in) {
      const int err = errno;
      throw SensorError(fs::exists(file_, ec) ? SensorFailure::no_permission : SensorFailure::absent,
                        file_error(file_, 0,
                                   fmt::format("cannot open the power trace: {}", std::strerror(err)))
                            .what());
    }
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::uint64_t>(in.tellg());
    if (size < offset_)
      throw trace_error(file_, 0, "the power trace shrank while being read (was it rewritten?)");
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string chunk(size - offset_, '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    chunk.resize(static_cast<size_t>(in.gcount()));
    offset_ += feed(chunk, tail);
  }

  // Parses the complete lines of `chunk` (and, with `tail`, a last unterminated one); returns
  // the bytes consumed.
  std::size_t feed(std::string_view chunk, bool tail) {
    size_t pos = 0;
    for (;;) {
      const size_t nl = chunk.find('\n', pos);
      if (nl == std::string::npos) break;
      parse_line(chunk.substr(pos, nl - pos));
      pos = nl + 1;
    }
    if (tail && pos < chunk.size()) {
      parse_line(chunk.substr(pos));
      pos = chunk.size();
    }
    return pos;
  }

  bool header_seen() const { return header_seen_; }

 private:
  void parse_line(std::string_view raw) {
    ++line_;
    const std::string line = detail::trim(raw);
    if (line.empty()) return;
    const size_t comma = line.find(',');
    const std::string a = detail::trim(std::string_view(line).substr(0, comma));
    const std::string b =
        comma == std::string::npos ? "" : detail::trim(std::string_view(line).substr(comma + 1));
    if (!header_seen_) {
      if (comma == std::string::npos || a != "timestamp" || b != "watts")
        throw trace_error(file_, line_,
                          fmt::format("expected the header 'timestamp,watts', got '{}'", line));
      header_seen_ = true;
      return;
    }
    if (comma == std::string::npos || b.find(',') != std::string::npos)
      throw trace_error(file_, line_,
                        fmt::format("expected 'timestamp,watts' (2 fields), got '{}'", line));
    PowerSample s;
    if (!detail::parse_double(a, s.epoch_seconds) || !std::isfinite(s.epoch_seconds) || s.epoch_seconds <= 0 ||
        s.epoch_seconds > kMaxEpochSeconds)
      throw trace_error(file_, line_,
                        fmt::format("timestamp must be Unix epoch seconds, got '{}'", a));
    if (!detail::parse_double(b, s.watts) || !std::isfinite(s.watts) || s.watts < 0 || s.watts > kMaxWatts)
      throw trace_error(file_, line_, fmt::format("watts must be a number in 0..{:g}, got '{}'", kMaxWatts, b));
    if (!samples_.empty() && s.epoch_seconds < samples_.back().epoch_seconds)
      throw trace_error(file_, line_,
                        fmt::format("timestamp {} goes back in time (previous {})", a,
                                    samples_.back().epoch_seconds));
    samples_.push_back(s);
  }

  fs::path file_;
  std::uint64_t offset_ = 0;
  long line_ = 0;
  bool header_seen_ = false;
  std::vector<PowerSample> samples_;
};

class TraceSensor final : public Sensor {
 public:
  TraceSensor(fs::path file, double wait_seconds)
      : reader_(std::move(file)), wait_seconds_(wait_seconds) {}

  void open() {
    reader_.refresh(false);
  }

  std::string name() const override { return "trace"; }
  std::string covers() const override {
    return fmt::format("what the power meter logging to {} measures (power trace)",
                       reader_.file().string());
  }

  Measurement between(const Mark& begin, const Mark& end) override {
    // The window is the span of the epoch clock that the trace's timestamps use, so that
    // joules / seconds is exactly the trace's mean power.
    Measurement m;
    const double t0 = begin.epoch_seconds, t1 = end.epoch_seconds;
    if (t1 < t0) throw Error("trace: window ends before it begins");
    m.seconds = t1 - t0;
    std::lock_guard lock(mutex_);
    reader_.refresh(false);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds_);
    auto covered_end = [&] {
      return !reader_.samples().empty() && reader_.samples().back().epoch_seconds >= t1;
    };
    while (!covered_end() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      reader_.refresh(false);
    }
    if (!covered_end()) reader_.refresh(true);
    const auto& s = reader_.samples();
    const std::string f = reader_.file().string();
    if (s.empty())
      throw SensorError(SensorFailure::broken,
                        fmt::format("{}: the power trace has no samples (waited {} s for the meter "
                                    "to append some)",
                                    f, wait_seconds_));
    if (s.front().epoch_seconds > t0)
      throw SensorError(SensorFailure::broken,
                        fmt::format("{}: the power trace starts at {:.3f}, {:.3f} s after the "
                                    "window begins ({:.3f}); start the meter log before irene",
                                    f, s.front().epoch_seconds, s.front().epoch_seconds - t0, t0));
    if (s.back().epoch_seconds < t1)
      throw SensorError(SensorFailure::broken,
                        fmt::format("{}: the power trace ends at {:.3f}, {:.3f} s before the "
                                    "window ends ({:.3f}); waited {} s for the meter to append more",
                                    f, s.back().epoch_seconds, t1 - s.back().epoch_seconds, t1,
                                    wait_seconds_));
    m.joules = integrate_power(s, t0, t1);
    return m;
  }

 private:
  std::mutex mutex_;
  TraceReader reader_;
  double wait_seconds_;
};

}  // namespace

double integrate_power(std::span<const PowerSample> s, double t0, double t1) {
  if (t1 < t0) throw Error(fmt::format("integrate_power: window [{}, {}] ends before it begins", t0, t1));
  if (s.empty() || s.front().epoch_seconds > t0 || s.back().epoch_seconds < t1)
    throw Error(fmt::format("integrate_power: the samples do not cover [{}, {}]", t0, t1));
  if (t1 == t0) return 0;
  auto power_at = [](const PowerSample& a, const PowerSample& b, double t) {
    return a.watts + (b.watts - a.watts) * ((t - a.epoch_seconds) / (b.epoch_seconds - a.epoch_seconds));
  };
  // First segment that can overlap (t0, t1]: the last sample at or before t0.
  auto it = std::upper_bound(s.begin(), s.end(), t0,
                             [](double t, const PowerSample& p) { return t < p.epoch_seconds; });
  size_t k = static_cast<size_t>(it - s.begin());
  k = k == 0 ? 0 : k - 1;
  double joules = 0;
  for (; k + 1 < s.size() && s[k].epoch_seconds < t1; ++k) {
    const PowerSample& a = s[k];
    const PowerSample& b = s[k + 1];
    if (b.epoch_seconds <= a.epoch_seconds) continue;
    const double lo = std::max(a.epoch_seconds, t0);
    const double hi = std::min(b.epoch_seconds, t1);
    if (hi <= lo) continue;
    joules += 0.5 * (power_at(a, b, lo) + power_at(a, b, hi)) * (hi - lo);
  }
  return joules;
}

std::vector<PowerSample> parse_power_trace(std::string_view text, const fs::path& name) {
  TraceReader r(name);
  r.feed(text, true);
  if (!r.header_seen()) throw file_error(name, 0, "empty power trace: expected the header 'timestamp,watts'");
  return r.samples();
}

std::vector<PowerSample> read_power_trace(const fs::path& file) {
  TraceReader r(file);
  r.refresh(true);
  if (!r.header_seen()) throw file_error(file, 0, "empty power trace: expected the header 'timestamp,watts'");
  return r.samples();
}

std::unique_ptr<Sensor> make_trace_sensor(const fs::path& file, const SensorOptions& options) {
  std::error_code ec;
  if (!fs::exists(file, ec))
    throw SensorError(SensorFailure::absent,
                      file_error(file, 0, "no such power trace file").what());
  auto sensor = std::make_unique<TraceSensor>(file, options.trace_wait_seconds);
  sensor->open();
  return sensor;
}

}  // namespace irene::measure
