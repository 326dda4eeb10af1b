// Profiling a model tree: every node executed in isolation and measured, as in the IrEne paper.
//
// For each distinct node (same class, attrs, ops and children: identical nodes, e.g. the 12
// layers of BERT-base, are measured once and their measurement is shared):
//   1. prepare: random weights and inputs of the node's shapes (executor.hpp);
//   2. warm-up: at least 2 passes and ProfileOptions::warmup_seconds;
//   3. runs: forward passes back to back until the window lasts >= min_seconds, one sensor
//      window per run, then a pause; runs are added until the last `runs` runs agree: the
//      run-to-run spread of their time per pass (sample standard deviation / mean) is <=
//      `target_spread`; at `max_runs` the `runs` consecutive runs with the smallest spread are
//      kept (a burst of other work on the machine falls outside them). Every figure below is
//      over those `runs` runs; `runs` in the output is the number of runs made.
// Per node it fills (units in brackets; absent is not zero):
//   resources: times_mean [s per pass], times_spread [fraction, stddev/mean over runs],
//              cpu [% of all the machine's CPUs used by this process over the windows],
//              cpu_time_mean [s of process CPU time (user + system) per pass: unlike
//              times_mean, it does not grow when other processes share the CPUs],
//              mem [% of physical memory: this process's RSS], rss_mib [MiB],
//              threads [libtorch intra-op threads], runs [made], passes [per run, mean];
//   with a sensor that measures energy:
//              ground_truth_energy_j [J per pass, total as the sensor covers it],
//              resources energy_above_idle [J per pass above the idle power measured before
//              the run], energy_spread [fraction over runs].
//   With sensor `none`: no energy fields at all (and provenance "energy" says so).
//   No GPU fields: the executor runs on the CPU.
// The tree's provenance gets the machine, BLAS, libtorch, sensor and schedule (provenance.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "irene/core/error.hpp"
#include "irene/core/tree.hpp"
#include "irene/measure/sensor.hpp"

namespace irene::measure {

// Thrown when ProfileOptions::stop_requested returns true (Ctrl-C): nothing half-measured is kept.
class Interrupted : public Error {
 public:
  Interrupted() : Error("interrupted") {}
};

struct ProfileProgress {
  const Tree* tree = nullptr;
  int distinct_done = 0;   // distinct nodes finished in this tree (measured or reused)
  int distinct_total = 0;  // distinct nodes of this tree
  std::string node_id;     // node being measured
  int run = 0;             // run being measured (1-based); 0 while preparing / warming up
  bool node_finished = false;
};

struct ProfileOptions {
  double min_seconds = 1.0;     // shortest measurement window of one run, seconds (> 0)
  int runs = 3;                 // consecutive runs that must agree (>= 2 to have a spread)
  int max_runs = 10;            // cap of the adaptive repeats (>= runs)
  double target_spread = 0.02;  // agree: stddev/mean of their time per pass <= this
  double pause_seconds = 0.5;   // pause between runs, seconds (>= 0)
  double warmup_seconds = 0.2;  // warm-up before the first run, seconds (>= 0)
  double idle_seconds = 5.0;    // idle power window before profiling (sensors with energy), s
  int threads = 0;              // libtorch intra-op threads; 0 = libtorch's default
  std::uint64_t seed = 0;       // random weights / inputs
  // Polled often (between passes); true stops with Interrupted.
  std::function<bool()> stop_requested;
  std::function<void(const ProfileProgress&)> on_progress;
};

// The stopping rule of step 3, on the times per pass of the runs made so far (in order): done
// once the last `options.runs` runs have a spread <= target_spread (first = the first of them),
// or, at max_runs runs, with the `runs` consecutive runs of smallest spread (the earliest on a
// tie). Not done while fewer than `runs` runs exist.
struct RunChoice {
  bool done = false;
  std::size_t first = 0;  // index of the first chosen run
};
RunChoice choose_runs(const std::vector<double>& seconds_per_pass, const ProfileOptions& options);

// Throws irene::Error naming the option when an option is out of range.
void validate(const ProfileOptions& options);

// What one distinct node measured.
struct NodeMeasurement {
  double seconds_per_pass = 0;
  double times_spread = 0;
  int runs = 0;
  double passes_per_run = 0;
  double cpu_seconds_per_pass = 0;
  double cpu_percent = 0;
  double mem_percent = 0;
  double rss_mib = 0;
  int threads = 0;
  std::optional<double> joules_per_pass;
  std::optional<double> above_idle_joules_per_pass;
  std::optional<double> energy_spread;
};

// Measurements by node signature, shared across the trees of a collection.
using MeasurementCache = std::map<std::string, NodeMeasurement>;

// Identity of a node for sharing: class, type, attrs, ops and (recursively) children.
std::string node_signature(const Tree& tree, int index);
// Number of distinct signatures in a tree.
int distinct_nodes(const Tree& tree);

struct ProfileSummary {
  int nodes = 0;            // nodes filled
  int distinct = 0;         // distinct nodes of the tree
  int measured = 0;         // distinct nodes measured now (others came from the cache)
  int at_cap = 0;           // measured nodes that stopped at max_runs above the target spread
  double max_spread = 0;    // largest times_spread among measured nodes (fraction)
  double seconds = 0;       // wall time of profile_tree, seconds
  std::optional<double> idle_watts;
  bool energy = false;      // the sensor measured energy
};

// Measures every node of `tree` (built by arch/, see executor.hpp) and fills the fields listed
// in the file comment plus provenance. `idle`: idle power measured earlier (collect measures it
// once); when empty and the sensor measures energy, it is measured here first for
// `idle_seconds`. `cache`: measurements to reuse and extend (may be null).
// Errors: a tree that cannot be executed (before anything runs), sensor errors, Interrupted.
// On an error the tree is left partly filled: callers write nothing.
ProfileSummary profile_tree(Tree& tree, Sensor& sensor, const ProfileOptions& options,
                            MeasurementCache* cache = nullptr, std::optional<IdlePower> idle = std::nullopt);

// The paper's "run once" mode for `irene predict --profile`: profiles the tree with sensor
// `none` (times and resource features only, no energy) so that a predictor that reads resource
// features can then predict it. For a quick run pass e.g. min_seconds 0.2, runs 2, pause 0.
ProfileSummary profile_resources(Tree& tree, const ProfileOptions& options = {});

// The resource features profile_tree fills on every node with sensor `none` (times_mean,
// times_spread, cpu, cpu_time_mean, mem, rss_mib, threads, runs, passes).
const std::vector<std::string>& profiled_resource_names();

// `irene predict --profile`: checks first, before anything runs, that every feature in `needed`
// is a model-spec feature or one that profile_resources measures here (Error naming those it
// cannot, e.g. the GPU features of the published dataset); then profiles the tree briefly (2 runs
// of >= 0.05 s per distinct node, no pause) and prints one line on standard error.
ProfileSummary profile_for_prediction(Tree& tree, const std::vector<std::string>& needed);

// Provenance of a profile: the machine (CPU model, logical CPUs, memory), BLAS library and
// kernel (with a warning line when slow), libtorch version and threads, "hardware" (one line
// for `irene train`), sensor name, what it
// covers and its notes, idle power, energy "measured ..." or "not measured (sensor none)",
// GPU "none (executed on the CPU)", the schedule, irene's version, and the UTC date.
std::map<std::string, std::string> profile_provenance(const Sensor& sensor, const ProfileOptions& options,
                                                      const std::optional<IdlePower>& idle);

}  // namespace irene::measure
