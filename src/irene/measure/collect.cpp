#include "irene/measure/collect.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "irene/arch/builder.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/measure/executor.hpp"

namespace irene::measure {

namespace fs = std::filesystem;

namespace {

// Parses one line as a tree; nullopt when it is not a complete, valid tree.
std::optional<Tree> parse_line(const std::string& line, const std::string& where, std::string* problem) {
  try {
    return tree_from_json(nlohmann::json::parse(line), where);
  } catch (const nlohmann::json::exception& e) {
    *problem = fmt::format("{}: not valid JSON ({})", where, e.what());
  } catch (const Error& e) {
    *problem = e.what();
  }
  return std::nullopt;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; }

}  // namespace

ResumeState scan_for_resume(const fs::path& path) {
  ResumeState st;
  std::error_code ec;
  if (!fs::exists(path, ec)) return st;
  if (fs::is_directory(path, ec)) throw file_error(path, 0, "is a folder, expected a JSONL file");
  const std::string text = read_file(path);
  std::size_t pos = 0, good_end = 0;
  long line_no = 0;
  std::set<std::string> sensors;
  bool needs_newline = false;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    const bool terminated = nl != std::string::npos;
    const std::size_t end = terminated ? nl : text.size();
    const std::string line = text.substr(pos, end - pos);
    ++line_no;
    const bool last = !terminated || blank(text.substr(nl + 1));
    if (!blank(line)) {
      std::string problem;
      auto tree = parse_line(line, fmt::format("{}:{}", path.string(), line_no), &problem);
      if (!tree) {
        if (!last)
          throw file_error(path, line_no,
                           "not a complete tree (" + problem +
                               "); this file was not written by irene collect: move it away or fix it");
        st.dropped_partial_line = true;
        break;  // a half-written last line: cut it off below
      }
      st.keys.insert(tree->key());
      ++st.trees;
      auto s = tree->provenance.find("sensor");
      sensors.insert(s == tree->provenance.end() ? std::string() : s->second);
      needs_newline = !terminated;
    }
    good_end = terminated ? nl + 1 : text.size();
    pos = end + 1;
  }
  if (st.dropped_partial_line) {
    fs::resize_file(path, good_end, ec);
    if (ec) throw file_error(path, 0, "cannot cut off its half-written last line: " + ec.message());
  } else if (needs_newline) {
    // A complete last tree without its newline (edited by hand): end the line before appending.
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << '\n';
    if (!out) throw file_error(path, 0, "cannot append to it");
  }
  if (sensors.size() == 1) st.sensor = *sensors.begin();
  return st;
}

void append_tree_line(const fs::path& path, const Tree& tree) {
  std::string line = tree_to_json(tree).dump();
  line += '\n';
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw file_error(path, 0, fmt::format("cannot open for appending: {}", std::strerror(errno)));
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw file_error(path, 0, fmt::format("cannot write: {}", std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw file_error(path, 0, fmt::format("cannot flush to disk: {}", std::strerror(err)));
  }
  ::close(fd);
}

std::vector<CollectItem> make_grid(const std::vector<std::string>& models, const std::vector<int>& batches,
                                   const std::vector<int>& seqs, const BuildOptions& options,
                                   const std::vector<int>& pasts) {
  const bool decode = options.phase == kDecode;
  if (models.empty()) throw Error("--models: give at least one model");
  if (batches.empty()) throw Error("--batch: give at least one batch size");
  if (decode && pasts.empty()) throw Error("--phase decode: give the cached lengths with --past, e.g. --past 128,512");
  if (!decode && !pasts.empty()) throw Error("--past needs --phase decode (a prefill has no cached positions)");
  if (!decode && seqs.empty()) throw Error("--seq: give at least one sequence length");
  std::vector<CollectItem> grid;
  for (const auto& m : models) {
    ModelConfig c = load_model_config(m);
    for (int b : batches) {
      if (decode) {
        for (int p : pasts) {
          BuildOptions o = options;
          o.past = p;
          check_executable(build_tree(c, b, 1, o));  // bad sizes fail now, not hours later
          grid.push_back({c, b, 1, o});
        }
        continue;
      }
      for (int s : seqs) {
        check_executable(build_tree(c, b, s, options));
        grid.push_back({c, b, s, options});
      }
    }
  }
  return grid;
}

std::pair<int, int> parse_shard(std::string_view text) {
  const auto slash = text.find('/');
  auto bad = [&] {
    return Error(fmt::format("--shard must be K/N with 1 <= K <= N <= 10000 (e.g. 2/8), got '{}'", text));
  };
  if (slash == std::string_view::npos) throw bad();
  int k = 0, n = 0;
  try {
    k = parse_positive_int(text.substr(0, slash), "--shard K");
    n = parse_positive_int(text.substr(slash + 1), "--shard N");
  } catch (const Error&) {
    throw bad();
  }
  if (k > n || n > 10000) throw bad();
  return {k, n};
}

std::vector<CollectItem> shard_of(const std::vector<CollectItem>& grid, int k, int n) {
  std::vector<CollectItem> out;
  for (std::size_t i = static_cast<std::size_t>(k - 1); i < grid.size(); i += static_cast<std::size_t>(n))
    out.push_back(grid[i]);
  return out;
}

CollectSummary collect(const std::vector<CollectItem>& grid, const fs::path& output, Sensor& sensor,
                       const ProfileOptions& options, const std::function<void(const CollectProgress&)>& on_progress) {
  using Clock = std::chrono::steady_clock;
  validate(options);
  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  CollectSummary summary;
  summary.planned = static_cast<int>(grid.size());
  const ResumeState resume = scan_for_resume(output);
  summary.dropped_partial_line = resume.dropped_partial_line;

  std::vector<Tree> pending;
  std::map<std::string, double> units;  // distinct node -> its MFLOP per pass
  for (const auto& item : grid) {
    Tree t = build_tree(item.config, item.batch, item.seq, item.options);
    if (resume.keys.count(t.key())) {
      ++summary.skipped;
      continue;
    }
    for (int i = 0; i < static_cast<int>(t.nodes.size()); ++i)
      units.emplace(node_signature(t, i), std::max(0.0, t.nodes[i].flops_mflop));
    pending.push_back(std::move(t));
  }
  if (pending.empty()) {
    summary.seconds = elapsed();
    return summary;
  }

  CollectProgress progress;
  progress.trees_total = static_cast<int>(pending.size());
  progress.units_total = static_cast<int>(units.size());
  double total_mflop = 0;
  for (const auto& [sig, mflop] : units) total_mflop += mflop;
  MeasurementCache cache;
  // Time left: a distinct node costs a fixed schedule (warm-up, its runs' windows and pauses) plus
  // time in proportion to its FLOPs; the rate is what the finished nodes took beyond their fixed
  // part. Counting nodes alone said "30 s left" for a gpt2-large tree that took 8 minutes.
  const double fixed = options.warmup_seconds + options.runs * (options.min_seconds + options.pause_seconds);
  auto report = [&] {
    progress.elapsed_seconds = elapsed();
    if (progress.units_done > 0) {
      double done_mflop = 0;
      for (const auto& [sig, m] : cache)
        if (auto it = units.find(sig); it != units.end()) done_mflop += it->second;
      const int left_units = std::max(0, progress.units_total - progress.units_done);
      const double beyond = progress.elapsed_seconds - fixed * progress.units_done;
      if (done_mflop > 0 && beyond > 0)
        progress.seconds_left = fixed * left_units + beyond / done_mflop * std::max(0.0, total_mflop - done_mflop);
      else
        progress.seconds_left = progress.elapsed_seconds / progress.units_done * left_units;
    }
    if (on_progress) on_progress(progress);
  };

  std::optional<IdlePower> idle;
  try {
    if (sensor.measures_energy()) {
      if (options.stop_requested && options.stop_requested()) throw Interrupted();
      progress.current = fmt::format("measuring idle power for {} s", options.idle_seconds);
      report();
      idle = measure_idle_power(sensor, options.idle_seconds);
      summary.idle_watts = idle->watts;
    }
    for (Tree& tree : pending) {
      ProfileOptions o = options;
      o.on_progress = [&](const ProfileProgress& p) {
        progress.units_done = static_cast<int>(cache.size());
        progress.tree_finished = false;
        progress.current = p.run > 0 ? fmt::format("{} {} run {}", tree.key(), p.node_id, p.run)
                                     : fmt::format("{} {}", tree.key(), p.node_id);
        report();
        if (options.on_progress) options.on_progress(p);
      };
      profile_tree(tree, sensor, o, &cache, idle);
      append_tree_line(output, tree);
      ++summary.collected;
      progress.trees_done = summary.collected;
      progress.units_done = static_cast<int>(cache.size());
      progress.tree_finished = true;
      progress.current = tree.key();
      report();
    }
  } catch (const Interrupted&) {
    summary.interrupted = true;
  }
  summary.seconds = elapsed();
  return summary;
}

}  // namespace irene::measure
