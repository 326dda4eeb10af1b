#include "irene/measure/profile.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <iostream>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <optional>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "irene/measure/allocator.hpp"
#include "irene/measure/blas.hpp"
#include "irene/measure/executor.hpp"

namespace irene::measure {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

double rss_mib() {
  std::ifstream in("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(in >> pages_total >> pages_resident)) return 0;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

double physical_mib() {
  return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

int online_cpus() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

// Sample standard deviation / mean (0 for fewer than 2 values or a zero mean).
double spread(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  if (m == 0) return 0;
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1)) / std::abs(m);
}

void check_stop(const ProfileOptions& o) {
  if (o.stop_requested && o.stop_requested()) throw Interrupted();
}

void pause(const ProfileOptions& o, double seconds) {
  const auto start = Clock::now();
  while (since(start) < seconds) {
    check_stop(o);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.05, seconds - since(start))));
  }
  check_stop(o);
}

std::string signature_of(const Tree& tree, int index, std::vector<std::string>& memo) {
  if (!memo[index].empty()) return memo[index];
  const Node& n = tree.nodes[index];
  // The dtype is the tree's: the same shapes in float32 and bfloat16 are different measurements.
  std::string s = tree.dtype;
  s += '|';
  s += n.class_name;
  s += '|';
  s += to_string(n.type);
  s += '|';
  for (const auto& [k, v] : n.attrs) s += fmt::format("{}={},", k, v);
  s += '|';
  for (const auto& op : n.ops) {
    s += op.kind;
    s += '[';
    for (auto d : op.shape) s += fmt::format("{},", d);
    s += ']';
  }
  s += '|';
  for (int c : n.children) {
    s += '{';
    s += signature_of(tree, c, memo);
    s += '}';
  }
  memo[index] = s;
  return s;
}

std::vector<std::string> all_signatures(const Tree& tree) {
  std::vector<std::string> memo(tree.nodes.size());
  for (int i = static_cast<int>(tree.nodes.size()) - 1; i >= 0; --i) signature_of(tree, i, memo);
  return memo;
}

NodeMeasurement measure_node(const Tree& tree, int index, Sensor& sensor, const ProfileOptions& o,
                             const std::optional<IdlePower>& idle, ProfileProgress& progress) {
  auto report = [&] {
    if (o.on_progress) o.on_progress(progress);
  };
  progress.node_id = tree.nodes[index].id;
  progress.run = 0;
  progress.node_finished = false;
  report();

  PrepareOptions prep;
  prep.seed = o.seed;
  auto node = prepare_node(tree, index, prep);

  // Warm-up: at least two passes and warmup_seconds; estimates the time of one pass.
  const auto warm_start = Clock::now();
  long warm = 0;
  do {
    node->run();
    ++warm;
    check_stop(o);
  } while (warm < 2 || since(warm_start) < o.warmup_seconds);
  const double estimate = since(warm_start) / static_cast<double>(warm);
  // Passes between two clock reads: about a millisecond of work, so reading the clock costs
  // nothing measurable even for microsecond primitives.
  const long block = std::max<long>(1, static_cast<long>(1e-3 / std::max(estimate, 1e-9)));

  // One record per run; the result is taken from the `runs` consecutive runs that agree best.
  struct Run {
    double seconds_per_pass, cpu_seconds, wall_seconds, passes;
    std::optional<double> joules_per_pass, above_idle_per_pass;
  };
  std::vector<Run> runs;
  double rss = 0;
  const std::size_t window = static_cast<std::size_t>(o.runs);
  std::size_t chosen = 0;  // first run of the chosen window
  for (int run = 1;; ++run) {
    progress.run = run;
    report();
    const double cpu0 = cpu_seconds();
    const Mark begin = sensor.mark();
    const auto start = Clock::now();
    long passes = 0;
    do {
      for (long k = 0; k < block; ++k) node->run();
      passes += block;
      check_stop(o);
    } while (since(start) < o.min_seconds);
    const double wall = since(start);
    const Mark end = sensor.mark();
    const double cpu = cpu_seconds() - cpu0;
    rss = std::max(rss, rss_mib());
    const Measurement m = sensor.between(begin, end);

    const double n = static_cast<double>(passes);
    Run rec{wall / n, cpu, wall, n, std::nullopt, std::nullopt};
    if (m.joules) {
      rec.joules_per_pass = *m.joules / n;
      if (idle && idle->watts) rec.above_idle_per_pass = (*m.joules - *idle->watts * m.seconds) / n;
    }
    runs.push_back(rec);
    std::vector<double> times;
    for (const Run& x : runs) times.push_back(x.seconds_per_pass);
    const RunChoice c = choose_runs(times, o);
    if (c.done) {
      chosen = c.first;
      break;
    }
    pause(o, o.pause_seconds);
  }

  NodeMeasurement r;
  std::vector<double> times, energies, above;
  double cpu_total = 0, wall_total = 0, passes_total = 0;
  for (std::size_t k = chosen; k < chosen + window; ++k) {
    const Run& x = runs[k];
    times.push_back(x.seconds_per_pass);
    cpu_total += x.cpu_seconds;
    wall_total += x.wall_seconds;
    passes_total += x.passes;
    if (x.joules_per_pass) energies.push_back(*x.joules_per_pass);
    if (x.above_idle_per_pass) above.push_back(*x.above_idle_per_pass);
  }
  r.seconds_per_pass = mean(times);
  r.times_spread = spread(times);
  r.runs = static_cast<int>(runs.size());
  r.passes_per_run = passes_total / static_cast<double>(window);
  r.cpu_seconds_per_pass = cpu_total / passes_total;
  r.cpu_percent = wall_total > 0 ? 100.0 * cpu_total / (wall_total * online_cpus()) : 0;
  r.rss_mib = rss;
  r.mem_percent = 100.0 * rss / physical_mib();
  r.threads = torch_threads();
  if (!energies.empty()) {
    r.joules_per_pass = mean(energies);
    r.energy_spread = spread(energies);
  }
  if (!above.empty()) r.above_idle_joules_per_pass = mean(above);
  // The pause after the last run, so that the next node starts cool as well.
  pause(o, o.pause_seconds);
  return r;
}

void fill(Node& n, const NodeMeasurement& m) {
  n.resources["times_mean"] = m.seconds_per_pass;
  n.resources["times_spread"] = m.times_spread;
  n.resources["cpu"] = m.cpu_percent;
  n.resources["cpu_time_mean"] = m.cpu_seconds_per_pass;
  n.resources["mem"] = m.mem_percent;
  n.resources["rss_mib"] = m.rss_mib;
  n.resources["threads"] = m.threads;
  n.resources["runs"] = m.runs;
  n.resources["passes"] = m.passes_per_run;
  if (m.joules_per_pass) {
    n.ground_truth_energy_j = *m.joules_per_pass;
    n.resources["energy_spread"] = m.energy_spread.value_or(0);
  }
  if (m.above_idle_joules_per_pass) n.resources["energy_above_idle"] = *m.above_idle_joules_per_pass;
}

std::string first_cpuinfo(const char* key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    return v;
  }
  return "unknown";
}

// The kernel's transparent huge page mode (the bracketed word of
// /sys/kernel/mm/transparent_hugepage/enabled: always, madvise or never), "unknown" without it.
// It decides what a call that allocates a large tensor costs: with madvise or never, glibc maps
// an allocation above its mmap threshold (32 MiB at most) afresh each time and every 4 KiB page
// faults; on a virtual machine a fault can cost 10 us or more.
std::string transparent_hugepages() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return "unknown";
  const auto open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos || close < open
             ? "unknown"
             : line.substr(open + 1, close - open - 1);
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

RunChoice choose_runs(const std::vector<double>& t, const ProfileOptions& o) {
  const std::size_t window = static_cast<std::size_t>(std::max(o.runs, 1));
  if (t.size() < window) return {};
  auto window_spread = [&](std::size_t first) {
    return spread(std::vector<double>(t.begin() + static_cast<long>(first), t.begin() + static_cast<long>(first + window)));
  };
  const std::size_t last = t.size() - window;
  if (window_spread(last) <= o.target_spread) return {true, last};
  if (static_cast<int>(t.size()) < o.max_runs) return {};
  std::size_t best = 0;
  for (std::size_t f = 1; f <= last; ++f)
    if (window_spread(f) < window_spread(best)) best = f;
  return {true, best};
}

void validate(const ProfileOptions& o) {
  if (!(o.min_seconds > 0) || !std::isfinite(o.min_seconds))
    throw Error(fmt::format("--min-seconds must be a positive number of seconds, got {}", o.min_seconds));
  if (o.runs < 2) throw Error(fmt::format("--runs must be at least 2 (a spread needs two runs), got {}", o.runs));
  if (o.max_runs < o.runs)
    throw Error(fmt::format("--max-runs ({}) must be at least --runs ({})", o.max_runs, o.runs));
  if (!(o.target_spread >= 0) || !std::isfinite(o.target_spread))
    throw Error(fmt::format("--spread must be a fraction >= 0 (0.02 = 2%), got {}", o.target_spread));
  if (!(o.pause_seconds >= 0) || !std::isfinite(o.pause_seconds))
    throw Error(fmt::format("--pause must be >= 0 seconds, got {}", o.pause_seconds));
  if (!(o.warmup_seconds >= 0) || !std::isfinite(o.warmup_seconds))
    throw Error(fmt::format("--warmup must be >= 0 seconds, got {}", o.warmup_seconds));
  if (!(o.idle_seconds > 0) || !std::isfinite(o.idle_seconds))
    throw Error(fmt::format("--idle-seconds must be a positive number of seconds, got {}", o.idle_seconds));
  if (o.threads < 0) throw Error(fmt::format("--threads must be >= 0 (0 = libtorch's default), got {}", o.threads));
}

std::string node_signature(const Tree& tree, int index) {
  if (index < 0 || index >= static_cast<int>(tree.nodes.size()))
    throw Error(fmt::format("tree {}: no node at index {}", tree.key(), index));
  std::vector<std::string> memo(tree.nodes.size());
  return signature_of(tree, index, memo);
}

int distinct_nodes(const Tree& tree) {
  auto sigs = all_signatures(tree);
  return static_cast<int>(std::set<std::string>(sigs.begin(), sigs.end()).size());
}

std::map<std::string, std::string> profile_provenance(const Sensor& sensor, const ProfileOptions& o,
                                                      const std::optional<IdlePower>& idle) {
  std::map<std::string, std::string> p;
  p["cpu_model"] = first_cpuinfo("model name");
  p["cpu_logical_cores"] = std::to_string(online_cpus());
  p["memory_gib"] = fmt::format("{:.1f}", physical_mib() / 1024.0);
  p["transparent_hugepages"] = transparent_hugepages();
  utsname u{};
  if (uname(&u) == 0) p["os"] = fmt::format("{} {} {}", u.sysname, u.release, u.machine);
  const BlasInfo b = blas_info();
  p["blas_library"] = b.library.empty() ? "none" : b.library;
  p["blas_kind"] = b.kind;
  if (!b.core.empty())
    p["blas_kernel"] = b.core + (b.coretype_env.empty() ? " (detected by OpenBLAS)"
                                 : b.core_set_by_irene ? " (OPENBLAS_CORETYPE set by irene for this CPU)"
                                                       : " (OPENBLAS_CORETYPE set by the user)");
  if (!b.config.empty()) p["blas_config"] = b.config;
  if (!b.warning.empty()) p["blas_warning"] = b.warning;
  const AllocatorInfo a = allocator_info();
  p["allocator"] = a.kind;
  if (!a.library.empty()) p["allocator_library"] = a.library;
  if (!a.warning.empty()) p["allocator_warning"] = a.warning;
  p["libtorch"] = torch_version();
  p["threads"] = std::to_string(torch_threads());
  p["device"] = "cpu";
  p["hardware"] = fmt::format("{}, {} logical CPUs (irene profile on the CPU with libtorch; sensor {})",
                              p["cpu_model"], p["cpu_logical_cores"], sensor.name());
  p["gpu"] = "none (executed on the CPU; no GPU fields)";
  p["sensor"] = sensor.name();
  p["sensor_covers"] = sensor.covers();
  if (!sensor.notes().empty()) p["sensor_notes"] = sensor.notes();
  if (sensor.measures_energy()) {
    p["energy"] = "measured: ground_truth_energy = total joules per forward pass over what the sensor covers; "
                  "energy_above_idle = the part above the idle power";
    if (idle && idle->watts) p["idle_watts"] = fmt::format("{:.3f}", *idle->watts);
  } else {
    p["energy"] = "not measured (sensor none): times and resource features only";
  }
  p["schedule"] = fmt::format(
      "warm-up >= {} s; runs of >= {} s each, {} to {} runs per distinct node until {} consecutive runs agree "
      "within a time spread <= {}% (else the {} most consistent consecutive runs), {} s pause between runs; "
      "identical nodes measured once",
      o.warmup_seconds, o.min_seconds, o.runs, o.max_runs, o.runs, o.target_spread * 100, o.runs, o.pause_seconds);
  p["irene"] = IRENE_VERSION;
  p["date"] = utc_now();
  return p;
}

ProfileSummary profile_resources(Tree& tree, const ProfileOptions& options) {
  auto none = make_sensor("none");
  return profile_tree(tree, *none, options);
}

const std::vector<std::string>& profiled_resource_names() {
  static const std::vector<std::string> names = {"times_mean", "times_spread", "cpu",     "cpu_time_mean", "mem",
                                                 "rss_mib",    "threads",      "runs",    "passes"};
  return names;
}

ProfileSummary profile_for_prediction(Tree& tree, const std::vector<std::string>& needed) {
  static const std::set<std::string> specs = {"num_parameters", "input_size", "batch_size", "seq_len", "flops",
                                              "mem_bytes"};
  const auto& provided = profiled_resource_names();
  std::vector<std::string> missing;
  for (const auto& f : needed)
    if (!specs.count(f) && std::find(provided.begin(), provided.end(), f) == provided.end()) missing.push_back(f);
  if (!missing.empty())
    throw Error(fmt::format(
        "the predictor reads {} which irene profile cannot measure here (it runs models on this machine's CPU and "
        "measures: {}); use a predictor trained on 'irene collect' data of this machine, or a model-spec predictor",
        fmt::join(missing, ", "), fmt::join(provided, ", ")));
  ProfileOptions o;
  o.min_seconds = 0.05;
  o.runs = 2;
  o.max_runs = 2;
  o.pause_seconds = 0;
  o.warmup_seconds = 0.05;
  const ProfileSummary s = profile_resources(tree, o);
  std::cerr << fmt::format("irene: profiled {} ({} distinct nodes) in {:.1f} s on this machine\n", tree.key(),
                           s.distinct, s.seconds);
  return s;
}

ProfileSummary profile_tree(Tree& tree, Sensor& sensor, const ProfileOptions& o, MeasurementCache* cache,
                            std::optional<IdlePower> idle) {
  validate(o);
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  check_executable(tree);  // every problem before anything runs
  const auto start = Clock::now();
  if (o.threads > 0) torch_threads(o.threads);

  if (sensor.measures_energy() && !idle) {
    check_stop(o);
    idle = measure_idle_power(sensor, o.idle_seconds);
  }

  const auto sigs = all_signatures(tree);
  MeasurementCache local;
  MeasurementCache& measured = cache ? *cache : local;

  ProfileSummary s;
  s.nodes = static_cast<int>(tree.nodes.size());
  s.distinct = static_cast<int>(std::set<std::string>(sigs.begin(), sigs.end()).size());
  s.energy = sensor.measures_energy();
  if (idle) s.idle_watts = idle->watts;

  ProfileProgress progress;
  progress.tree = &tree;
  progress.distinct_total = s.distinct;
  std::set<std::string> done;
  for (int i = 0; i < s.nodes; ++i) {
    const std::string& sig = sigs[i];
    if (done.count(sig)) continue;
    if (!measured.count(sig)) {
      NodeMeasurement m = measure_node(tree, i, sensor, o, idle, progress);
      ++s.measured;
      s.max_spread = std::max(s.max_spread, m.times_spread);
      if (m.runs >= o.max_runs && m.times_spread > o.target_spread) ++s.at_cap;
      measured.emplace(sig, m);
    }
    done.insert(sig);
    progress.distinct_done = static_cast<int>(done.size());
    progress.node_id = tree.nodes[i].id;
    progress.node_finished = true;
    if (o.on_progress) o.on_progress(progress);
  }
  for (int i = 0; i < s.nodes; ++i) fill(tree.nodes[i], measured.at(sigs[i]));

  for (auto& [k, v] : profile_provenance(sensor, o, idle)) tree.provenance[k] = v;
  s.seconds = since(start);
  return s;
}

}  // namespace irene::measure
