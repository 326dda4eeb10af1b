// Energy sensors: one interface over RAPL (powercap sysfs), perf's power PMU, NVIDIA's NVML
// energy counter, a power-meter trace file, and "none".
//
// A sensor answers one question: how many joules were used between two instants, and what
// hardware those joules cover. Measurements are windows between two marks, so any number of
// windows may be open at once, nested or overlapping (as Zeus's named windows):
//
//     auto sensor = irene::measure::make_sensor("auto");      // or rapl, perf, nvml, trace:FILE, none
//     fmt::print("sensor {} covers {}\n", sensor->name(), sensor->covers());
//     irene::measure::EnergyMonitor monitor(*sensor);
//     monitor.begin_window("model");
//     monitor.begin_window("layer0");
//     ... run ...
//     irene::measure::Measurement layer = monitor.end_window("layer0");
//     irene::measure::Measurement model = monitor.end_window("model");
//     if (model.joules) use(*model.joules); else say("no energy was measured");
//
// Energy is never invented: a sensor that measures no energy (`none`) returns measurements
// whose `joules` is empty. Every failure is an irene::SensorError (an irene::Error) whose message
// is one line that names the sensor, what failed, and how to fix it where a fix is known
// (e.g. "run as root or chmod a+r ...energy_uj").
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "irene/core/error.hpp"

namespace irene::measure {

/// Why a sensor could not be used. `auto` skips sensors that are `absent` or `not_counting`
/// and stops with the error for `no_permission` and `broken` (those need the user to act).
enum class SensorFailure {
  absent,         ///< not on this machine (no powercap tree, no power PMU, no libnvidia-ml, no GPU)
  not_counting,   ///< present but its counter does not advance (typical in a VM)
  no_permission,  ///< present but not readable by this process; the message says how to fix it
  broken,         ///< present but malformed/unusable (bad file contents, bad trace line, NVML error)
};

/// The error of every sensor. what() is one line "sensor: problem[; how to fix]".
class SensorError : public Error {
 public:
  SensorError(SensorFailure failure, const std::string& message)
      : Error(message), failure_(failure) {}
  SensorFailure failure() const { return failure_; }

 private:
  SensorFailure failure_;
};

/// The state of a sensor at one instant: both clocks and the cumulative joules of each part
/// (since the sensor was created). Marks are plain values: copy and keep them freely.
struct Mark {
  std::chrono::steady_clock::time_point steady{};  ///< monotonic time, for elapsed seconds
  double epoch_seconds = 0;                        ///< Unix epoch seconds (system clock)
  std::vector<double> joules;  ///< cumulative joules per part (Sensor::parts() order); empty for trace/none
};

/// The result of one window.
struct Measurement {
  /// Elapsed time of the window in seconds: steady clock, except for trace sensors, where it is
  /// the span of the system (epoch) clock the trace's timestamps use, so joules / seconds is
  /// exactly the trace's mean power.
  double seconds = 0;
  std::optional<double> joules;  ///< total energy of the window in joules; empty: no energy measured
  /// Joules per part, e.g. {"package-0", 40.1}, {"dram-0", 3.2}, {"gpu0", 120.0}; empty when
  /// `joules` is empty or the sensor has a single undivided part (trace).
  std::vector<std::pair<std::string, double>> parts;

  /// Mean power over the window in watts; empty when no energy was measured or seconds == 0.
  std::optional<double> watts() const;
  /// One line for people, e.g. "1.503 s, 61.20 J (40.72 W)" or
  /// "1.503 s, no energy measured (sensor none)".
  std::string to_string(std::string_view sensor_name = "") const;
};

/// An energy sensor. All built-in sensors are safe to use from several threads.
class Sensor {
 public:
  virtual ~Sensor() = default;

  /// Short name as in the spec: "rapl", "perf", "nvml", "trace", "none".
  virtual std::string name() const = 0;
  /// What the joules cover, for people and for provenance, e.g. "CPU packages 0-1 + DRAM
  /// (Linux powercap RAPL)", "2 NVIDIA GPUs (NVML total energy)", "wall meter trace /path",
  /// "nothing (no energy sensor)".
  virtual std::string covers() const = 0;
  /// False only for `none`.
  virtual bool measures_energy() const { return true; }
  /// Names of the parts whose joules a Mark holds, e.g. {"package-0", "dram-0"}; empty for
  /// trace and none.
  virtual std::vector<std::string> parts() const { return {}; }

  /// How this sensor was chosen and anything a user should know (for `auto`: which sensor was
  /// picked and why each other one was not). Empty when nothing to say.
  const std::string& notes() const { return notes_; }
  void set_notes(std::string notes) { notes_ = std::move(notes); }

  /// Reads the sensor now. Throws SensorError if the hardware cannot be read.
  Mark mark();

  /// The measurement of the window [begin, end] (two marks of this sensor, begin first).
  /// For a trace sensor this may wait (up to its timeout) until the trace covers `end`.
  /// Throws SensorError when the energy cannot be determined.
  virtual Measurement between(const Mark& begin, const Mark& end);

  /// Single-window convenience: begin() marks, end() measures since the last begin().
  /// end() without begin() is an Error. For nested windows use EnergyMonitor (or marks).
  void begin();
  Measurement end();

 protected:
  /// Cumulative joules per part now (parts() order). Default: empty (no counters).
  virtual std::vector<double> read_joules() { return {}; }

 private:
  std::string notes_;
  std::mutex single_mutex_;
  std::optional<Mark> single_begin_;
};

/// Named windows over one sensor, nested or overlapping freely (like Zeus's ZeusMonitor).
/// Thread-safe.
class EnergyMonitor {
 public:
  explicit EnergyMonitor(Sensor& sensor) : sensor_(sensor) {}
  Sensor& sensor() { return sensor_; }

  /// Opens window `name`. Error if a window of that name is already open.
  void begin_window(std::string_view name);
  /// Closes window `name` and returns its measurement. Error if it is not open.
  Measurement end_window(std::string_view name);
  /// Closes window `name` without measuring (e.g. after an exception). No-op if not open.
  void cancel_window(std::string_view name);
  bool is_open(std::string_view name) const;

 private:
  Sensor& sensor_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Mark> open_;
};

/// Options for the sensor factories; defaults are the real machine. Tests inject roots,
/// library names and file readers so that they run the same on any machine.
struct SensorOptions {
  /// Root of the powercap tree (holds intel-rapl:N folders).
  std::filesystem::path powercap_root = "/sys/class/powercap";
  /// Root of the perf PMU folders (holds power/type, power/events/energy-pkg ...).
  std::filesystem::path perf_root = "/sys/bus/event_source/devices";
  /// The NVML library that nvml dlopens.
  std::string nvml_library = "libnvidia-ml.so.1";
  /// Reads a small text file (sysfs). Default: reads it, and on failure throws
  /// std::system_error with the errno (EACCES, EISDIR, ENOENT...). Tests inject failures.
  std::function<std::string(const std::filesystem::path&)> read_text;
  /// perf: opens one counting event system-wide on `cpu`; returns a file descriptor whose
  /// read() gives the 64-bit count, or -errno. Default: perf_event_open(2). Tests inject fakes.
  std::function<int(unsigned type, unsigned long long config, int cpu)> perf_open;
  /// On creation, check that the counters advance over this many seconds (a VM may expose
  /// RAPL/perf counters that stay at 0). 0 disables the check (tests of fake trees).
  double probe_seconds = 0.05;
  /// RAPL: a background thread reads the counters at this period (seconds) so that a window
  /// longer than one counter wraparound is still right. 0 disables it.
  double rapl_poll_seconds = 10.0;
  /// trace: how long between() waits for a live trace to cover a window's end, seconds.
  double trace_wait_seconds = 5.0;
};

/// Creates the sensor named by `spec`: "auto", "rapl", "perf", "nvml", "trace:FILE", "none",
/// or a sum of counters over different hardware, "rapl+nvml" / "perf+nvml" (CPU + GPUs; parts
/// are prefixed "rapl:package-0", "nvml:gpu0"; rapl+perf is an Error: same counters twice).
/// - a named sensor that cannot be used throws SensorError (never falls back);
/// - "auto" tries nvml, rapl, perf in that order and returns the first that works; its notes()
///   say which one was picked and why each other one was not. If none works and every failure
///   was `absent`/`not_counting`, it returns `none` with a notice in notes(); a `no_permission`
///   or `broken` failure with nothing usable is thrown (the user can fix it).
/// An unknown spec is an Error listing the valid ones.
std::unique_ptr<Sensor> make_sensor(std::string_view spec, const SensorOptions& options = {});

/// The individual factories (each throws SensorError as described above).
std::unique_ptr<Sensor> make_rapl_sensor(const SensorOptions& options = {});
std::unique_ptr<Sensor> make_perf_sensor(const SensorOptions& options = {});
std::unique_ptr<Sensor> make_nvml_sensor(const SensorOptions& options = {});
std::unique_ptr<Sensor> make_trace_sensor(const std::filesystem::path& file,
                                          const SensorOptions& options = {});
std::unique_ptr<Sensor> make_none_sensor();
/// The sum of two or more counter sensors (rapl, perf, nvml); Error for trace/none.
std::unique_ptr<Sensor> make_sum_sensor(std::vector<std::unique_ptr<Sensor>> sensors);

/// One line per sensor kind: whether it works here, what it covers, or why not. For
/// `irene sensors`.
struct SensorAvailability {
  std::string name;                      ///< "nvml", "rapl", "perf"
  bool available = false;
  std::string detail;                    ///< covers() when available, else the error message
  std::optional<SensorFailure> failure;  ///< set when not available
};
std::vector<SensorAvailability> probe_sensors(const SensorOptions& options = {});

/// Idle power: the machine's power while irene does nothing, measured before a run.
struct IdlePower {
  double seconds = 0;            ///< length of the idle window, seconds
  std::optional<double> joules;  ///< energy over the window; empty when no energy measured
  std::optional<double> watts;   ///< mean idle power in watts; empty when no energy measured
};
/// Sleeps `seconds` (> 0, else Error) in one window of `sensor` and returns its mean power.
IdlePower measure_idle_power(Sensor& sensor, double seconds);

}  // namespace irene::measure
