// irene profile MODEL --batch B --seq S [--meter ...] [--min-seconds T] [--runs N] -o trees.jsonl
// irene collect --models a,b --batch 8,16 --seq 32,64 [--meter ...] -o dataset.jsonl
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/interrupt.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/measure/allocator.hpp"
#include "irene/measure/blas.hpp"
#include "irene/measure/collect.hpp"
#include "irene/measure/executor.hpp"
#include "irene/measure/profile.hpp"
#include "irene/measure/sensor.hpp"

namespace irene::cli {

namespace {

double parse_number(const std::string& text, const char* what) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("{} expects a number, got '{}'", what, text));
}

std::vector<int> parse_int_list(const std::string& text, const char* what) {
  std::vector<int> v;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    v.push_back(parse_positive_int(item, what));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return v;
}

std::vector<std::string> parse_name_list(const std::string& text) {
  std::vector<std::string> v;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (item.empty()) throw Error(fmt::format("--models: empty model name in '{}'", text));
    v.push_back(std::move(item));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return v;
}

std::string duration(double s) {
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return fmt::format("{}h{:02d}m", static_cast<int>(s) / 3600, (static_cast<int>(s) % 3600) / 60);
}

// Options shared by profile and collect, as strings so that bad values give irene's errors.
struct MeasureArgs {
  std::string meter = "auto";
  std::string min_seconds = "1";
  std::string runs = "3";
  std::string max_runs = "10";
  std::string spread = "0.02";
  std::string pause = "0.5";
  std::string warmup = "0.2";
  std::string idle_seconds = "5";
  std::string threads = "0";
  std::string out;
  bool quiet = false;
};

void add_measure_options(CLI::App* cmd, MeasureArgs& a) {
  cmd->add_option("--meter", a.meter, "energy sensor: auto|rapl|perf|nvml|trace:FILE|none (default auto)");
  cmd->add_option("--min-seconds", a.min_seconds, "shortest measurement window of one run, seconds (default 1)");
  cmd->add_option("--runs", a.runs, "consecutive runs that must agree within --spread (default 3, >= 2)");
  cmd->add_option("--max-runs", a.max_runs, "most runs per node; then the --runs consecutive runs that agree best are kept (default 10)");
  cmd->add_option("--spread", a.spread,
                  "target run-to-run spread of the time per pass, stddev/mean as a fraction (default 0.02)");
  cmd->add_option("--pause", a.pause, "pause between runs, seconds (default 0.5)");
  cmd->add_option("--warmup", a.warmup, "warm-up before each node's first run, seconds (default 0.2)");
  cmd->add_option("--idle-seconds", a.idle_seconds, "idle power window before measuring, seconds (default 5)");
  cmd->add_option("--threads", a.threads, "libtorch threads (default 0 = libtorch's choice)");
  cmd->add_flag("-q,--quiet", a.quiet, "no progress bar");
}

measure::ProfileOptions profile_options(const MeasureArgs& a) {
  measure::ProfileOptions o;
  o.min_seconds = parse_number(a.min_seconds, "--min-seconds");
  o.runs = parse_positive_int(a.runs, "--runs");
  o.max_runs = parse_positive_int(a.max_runs, "--max-runs");
  o.target_spread = parse_number(a.spread, "--spread");
  o.pause_seconds = parse_number(a.pause, "--pause");
  o.warmup_seconds = parse_number(a.warmup, "--warmup");
  o.idle_seconds = parse_number(a.idle_seconds, "--idle-seconds");
  o.threads = a.threads == "0" ? 0 : parse_positive_int(a.threads, "--threads");
  if (o.runs > o.max_runs && a.max_runs == "10") o.max_runs = o.runs;  // --runs 20 alone is fine
  measure::validate(o);
  o.stop_requested = [] { return interrupt::requested(); };
  return o;
}

// Says which BLAS and kernel run, and warns when it is a slow one or the allocator page-faults
// large tensors on every call.
void report_blas() {
  const auto b = measure::blas_info();
  std::cerr << fmt::format("irene: BLAS {}{} ({}); libtorch {}, {} threads\n", b.kind,
                           b.core.empty() ? "" : " kernel " + b.core, b.library.empty() ? "none" : b.library,
                           measure::torch_version(), measure::torch_threads());
  if (!b.warning.empty()) std::cerr << "irene: warning: " << b.warning << '\n';
  if (const auto a = measure::allocator_info(); !a.warning.empty()) std::cerr << "irene: warning: " << a.warning << '\n';
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (measure::torch_threads() < cpus)
    std::cerr << fmt::format("irene: note: libtorch runs {} thread(s) on this {}-CPU machine; --threads {} uses all\n",
                             measure::torch_threads(), cpus, cpus);
}

std::unique_ptr<measure::Sensor> open_sensor(const std::string& meter) {
  auto sensor = measure::make_sensor(meter);
  if (!sensor->notes().empty()) std::cerr << "irene: " << sensor->notes() << '\n';
  if (sensor->measures_energy())
    std::cerr << fmt::format("irene: sensor {}: {}\n", sensor->name(), sensor->covers());
  else
    std::cerr << "irene: sensor none: no energy is measured; the output holds times and resource features only "
                 "(no ground_truth_energy)\n";
  return sensor;
}

// A one-line progress display on a terminal (redrawn at most 5 times a second); elsewhere
// (logs, tests) one line per finished tree.
class ProgressLine {
 public:
  // `log_every`: off a terminal, milestones closer than this many seconds are not printed.
  ProgressLine(bool quiet, double log_every) : enabled_(!quiet), tty_(isatty(STDERR_FILENO)), log_every_(log_every) {}
  void draw(double fraction, const std::string& counts, double elapsed, std::optional<double> left,
            const std::string& what, bool milestone) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (tty_) {
      if (!milestone && now - last_ < std::chrono::milliseconds(200)) return;
      last_ = now;
      const int width = 24, filled = static_cast<int>(fraction * width + 0.5);
      std::cerr << fmt::format("\r\033[K[{}{}] {:3.0f}% {} | {} elapsed, {} | {}", std::string(filled, '#'),
                               std::string(width - filled, '.'), 100 * fraction, counts, duration(elapsed),
                               left ? "~" + duration(*left) + " left" : "time left: estimating", what.substr(0, 60))
                << std::flush;
      drawn_ = true;
    } else if (milestone && (logged_ == 0 || fraction >= 1 ||
                             std::chrono::duration<double>(now - last_).count() >= log_every_)) {
      last_ = now;
      ++logged_;
      std::cerr << fmt::format("irene: {:3.0f}% {} | {} elapsed{} | {}\n", 100 * fraction, counts, duration(elapsed),
                               left ? ", ~" + duration(*left) + " left" : "", what);
    }
  }
  void finish() {
    if (drawn_) std::cerr << '\n';
    drawn_ = false;
  }

 private:
  bool enabled_, tty_;
  double log_every_;
  int logged_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

[[noreturn]] void exit_interrupted(const std::string& message) {
  std::cerr << "irene: interrupted: " << message << '\n';
  std::exit(interrupt::exit_status());
}

void print_profile_summary(const Tree& t, const measure::ProfileSummary& s, const measure::ProfileOptions& o,
                           const std::string& out) {
  std::string energy = "no energy measured (sensor none)";
  if (s.energy && t.root().ground_truth_energy_j)
    energy = fmt::format("model {:.6g} J per forward pass{}", *t.root().ground_truth_energy_j,
                         s.idle_watts ? fmt::format(" (idle {:.1f} W)", *s.idle_watts) : "");
  std::cerr << fmt::format(
      "irene: profiled {}: {} nodes, {} distinct, {} measured in {}; time spread <= {:.2f}% (target {:.2f}%{}); "
      "model {:.6g} s per forward pass; {} -> {}\n",
      t.key(), s.nodes, s.distinct, s.measured, duration(s.seconds), 100 * s.max_spread, 100 * o.target_spread,
      s.at_cap ? fmt::format(", {} nodes stopped at --max-runs {}", s.at_cap, o.max_runs) : "",
      t.root().resources.at("times_mean"), energy, out);
}

// ---- irene profile ---------------------------------------------------------------------

struct ProfileArgs {
  std::string model, batch, seq;
  std::vector<std::string> sets;
  PassArgs pass;
  MeasureArgs m;
};

void run_profile(const ProfileArgs& p) {
  const int batch = parse_positive_int(p.batch, "--batch");
  const BuildOptions pass = build_options(p.pass);
  if (p.seq.empty() && pass.phase != kDecode) throw Error("profile: --seq is required (or --phase decode --past P)");
  const int seq = pass_seq(p.seq, pass);
  const ModelConfig config = explain::load_model(p.model, p.sets);
  measure::ProfileOptions o = profile_options(p.m);
  Tree tree = build_tree(config, batch, seq, pass);
  measure::check_executable(tree);
  auto sensor = open_sensor(p.m.meter);
  if (o.threads > 0) measure::torch_threads(o.threads);
  report_blas();
  interrupt::Cooperative cooperative;  // stop at the next pass; the profile is written whole at the end
  ProgressLine bar(p.m.quiet, 10);
  const auto start = std::chrono::steady_clock::now();
  o.on_progress = [&](const measure::ProfileProgress& pr) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::optional<double> left;
    if (pr.distinct_done > 0) left = elapsed / pr.distinct_done * (pr.distinct_total - pr.distinct_done);
    bar.draw(pr.distinct_total ? static_cast<double>(pr.distinct_done) / pr.distinct_total : 0,
             fmt::format("{}/{} distinct nodes", pr.distinct_done, pr.distinct_total), elapsed, left,
             pr.run > 0 && !pr.node_finished ? fmt::format("{} run {}", pr.node_id, pr.run) : pr.node_id,
             pr.node_finished);
  };
  measure::ProfileSummary s;
  try {
    s = measure::profile_tree(tree, *sensor, o);
  } catch (const measure::Interrupted&) {
    bar.finish();
    exit_interrupted("nothing written (a profile is written whole, at the end)");
  }
  bar.finish();
  write_jsonl(p.m.out, {tree});
  print_profile_summary(tree, s, o, p.m.out);
}

void register_profile(CLI::App& app) {
  auto p = std::make_shared<ProfileArgs>();
  auto* prof = app.add_subcommand(
      "profile", "Run every node of MODEL's tree with libtorch on this machine and measure time, resource use "
                 "and (with a sensor) energy per forward pass");
  prof->add_option("MODEL", p->model, "built-in model name or path to a Hugging Face config.json")->required();
  prof->add_option("--batch", p->batch, "batch size, a positive integer")->required();
  prof->add_option("--seq", p->seq, "sequence length in tokens, a positive integer (not with --phase decode)");
  prof->add_option("--set", p->sets, "override a config size, e.g. --set num_layers=6 (repeatable)");
  add_pass_options(prof, p->pass);
  add_measure_options(prof, p->m);
  prof->add_option("-o,--output", p->m.out, "output JSONL file (one tree), written atomically; '-' = stdout")
      ->required();
  prof->callback([p] { run_profile(*p); });
}

// ---- irene collect ---------------------------------------------------------------------

struct CollectArgs {
  std::string models, batches, seqs, pasts, shard;
  PassArgs pass;
  MeasureArgs m;
};

void run_collect(const CollectArgs& c) {
  if (c.m.out == "-") throw Error("collect: -o must be a file (it is appended to and resumed), not '-'");
  measure::ProfileOptions o = profile_options(c.m);
  PassArgs pass = c.pass;
  if (pass.phase == kDecode) pass.past = "1";  // the grid's pasts come from --past below
  const BuildOptions options = build_options(pass);
  if (options.phase != kDecode && !c.pasts.empty())
    throw Error("--past needs --phase decode (a prefill has no cached positions)");
  if (options.phase == kDecode && !c.seqs.empty())
    throw Error("--phase decode feeds one new token per sequence: leave --seq out");
  if (options.phase != kDecode && c.seqs.empty()) throw Error("collect: --seq is required (or --phase decode --past P,...)");
  auto grid = measure::make_grid(
      parse_name_list(c.models), parse_int_list(c.batches, "--batch"),
      c.seqs.empty() ? std::vector<int>{} : parse_int_list(c.seqs, "--seq"), options,
      c.pasts.empty() ? std::vector<int>{} : parse_int_list(c.pasts, "--past"));
  if (!c.shard.empty()) {
    const auto [k, n] = measure::parse_shard(c.shard);
    const std::size_t all = grid.size();
    grid = measure::shard_of(grid, k, n);
    std::cerr << fmt::format("irene: shard {}/{}: {} of the grid's {} trees\n", k, n, grid.size(), all);
    if (grid.empty()) throw Error(fmt::format("--shard {}: the grid has only {} trees", c.shard, all));
  }
  auto sensor = open_sensor(c.m.meter);
  if (o.threads > 0) measure::torch_threads(o.threads);
  report_blas();
  const auto resume = measure::scan_for_resume(c.m.out);
  if (resume.trees > 0)
    std::cerr << fmt::format("irene: resuming: {} trees already in {}{}\n", resume.trees, c.m.out,
                             resume.dropped_partial_line ? " (a half-written last line was cut off)" : "");
  else if (resume.dropped_partial_line)
    std::cerr << fmt::format("irene: cut off a half-written line of {}\n", c.m.out);
  if (!resume.sensor.empty() && resume.sensor != sensor->name())
    std::cerr << fmt::format("irene: warning: {} holds trees measured with sensor '{}', now '{}'\n", c.m.out,
                             resume.sensor, sensor->name());
  interrupt::Cooperative cooperative;  // finished trees are kept; the one being measured is dropped
  ProgressLine bar(c.m.quiet, 0);
  auto progress = [&](const measure::CollectProgress& pr) {
    bar.draw(pr.units_total ? static_cast<double>(pr.units_done) / pr.units_total : 0,
             fmt::format("{}/{} trees, {}/{} distinct nodes", pr.trees_done, pr.trees_total, pr.units_done,
                         pr.units_total),
             pr.elapsed_seconds, pr.seconds_left, pr.current, pr.tree_finished);
  };
  const auto s = measure::collect(grid, c.m.out, *sensor, o, progress);
  bar.finish();
  const int kept = s.skipped + s.collected;
  if (s.interrupted)
    exit_interrupted(fmt::format("{} of {} trees are in {} ({} written now); rerun the same command to resume",
                                 kept, s.planned, c.m.out, s.collected));
  std::cerr << fmt::format("irene: collected {} trees ({} already there) in {} -> {}{}\n", s.collected, s.skipped,
                           duration(s.seconds), c.m.out,
                           sensor->measures_energy() ? "" : " (no energy measured: sensor none)");
}

void register_collect(CLI::App& app) {
  auto c = std::make_shared<CollectArgs>();
  auto* col = app.add_subcommand(
      "collect", "Profile a grid of models x batch sizes x sequence lengths into one dataset (JSONL) that "
                 "'irene train' reads; interruptible, a rerun resumes");
  col->add_option("--models", c->models, "comma-separated built-in names or config.json paths")->required();
  col->add_option("--batch", c->batches, "comma-separated batch sizes, e.g. 8,16")->required();
  col->add_option("--seq", c->seqs, "comma-separated sequence lengths, e.g. 32,64 (not with --phase decode)");
  add_pass_options(col, c->pass);
  col->remove_option(col->get_option("--past"));
  col->add_option("--past", c->pasts, "with --phase decode: comma-separated cached lengths, e.g. 128,512");
  add_measure_options(col, c->m);
  col->add_option("--shard", c->shard,
                  "K/N: collect only shard K of N of the grid (every N-th tree), e.g. one shard per machine or "
                  "Slurm array task; join the parts with 'irene data merge'");
  col->add_option("-o,--output", c->m.out,
                  "output JSONL dataset; each finished tree is appended whole, a rerun skips finished trees")
      ->required();
  col->callback([c] { run_collect(*c); });
}

}  // namespace

void register_measure(CLI::App& app) {
  register_profile(app);
  register_collect(app);
}

}  // namespace irene::cli
