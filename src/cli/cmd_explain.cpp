// irene explain | compare | sweep | report | serve: where the energy goes, what a change costs.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <csignal>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <thread>
#include <unistd.h>

#include "commands.hpp"
#include "irene/arch/builder.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/core/usable.hpp"
#include "irene/explain/compare.hpp"
#include "irene/core/limits.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/units.hpp"
#include "irene/explain/report.hpp"
#include "irene/explain/server.hpp"
#include "irene/explain/sweep.hpp"

namespace irene::cli {

namespace {

using namespace irene::explain;

constexpr int kMaxBatch = 4096;
constexpr int kMaxSeq = 65536;

std::shared_ptr<const Predictor> load_predictor(const std::string& path) {
  auto p = std::make_shared<const Predictor>(path.empty() ? Predictor::load_default() : Predictor::load(path));
  p->require_energy("this command");
  return p;
}

// Where the trees of a command come from: a trees/predictions JSONL file, or a model
// (built-in name or config.json) with overrides at given batch sizes and sequence lengths.
struct Source {
  std::string what;                    // positional argument
  std::vector<std::string> overrides;  // --set
  std::string batch, seq;              // numbers or ranges
  std::string predictor;               // --predictor
  bool strict = false;                 // --strict: fail on a tree of the file that cannot be used
  PassArgs pass = {};                  // --phase, --past (a range in sweep/report), --dtype, --attention, --head
  std::string prompt = {}, generate = {};  // text generation: --prompt P --generate N (ranges in sweep)

  bool generation() const { return !prompt.empty() || !generate.empty(); }
};

// The options of the pass, with --past's text left out (it may be a range); its values apart.
BuildOptions pass_of(const Source& s, bool allow_ranges, std::vector<int>* pasts) {
  PassArgs p = s.pass;
  if (!p.past.empty() && p.phase == kDecode) {
    const auto values = allow_ranges ? parse_range(p.past, "--past", limits::kMaxSeq)
                                     : std::vector<int>{parse_positive_int(p.past, "--past")};
    if (pasts) *pasts = values;
    p.past = std::to_string(values.front());
  }
  return build_options(p);
}

// A generation request of a model source: its batch, prompt and generate values (ranges where
// allowed: every combination, batch-major). Errors as the options are malformed.
struct GenerationGrid {
  ModelConfig config;
  std::vector<int> batches, prompts, generates;
  BuildOptions pass;
};

GenerationGrid generation_grid(const Source& s, bool allow_ranges) {
  if (is_trees_file(s.what))
    throw Error("--prompt / --generate predict a model (a built-in name or config.json), not a trees file");
  if (s.prompt.empty() || s.generate.empty())
    throw Error("--prompt P and --generate N go together (P prompt tokens, N generated tokens)");
  if (!s.seq.empty()) throw Error("--seq does not apply with --generate (the prompt is --prompt)");
  if (!s.pass.phase.empty() || !s.pass.past.empty() || !s.pass.head.empty())
    throw Error("--phase, --past and --head do not apply with --generate (it predicts the prefill and every decode step)");
  GenerationGrid g;
  g.config = load_config_with_overrides(s.what, s.overrides);
  const std::string batch = s.batch.empty() ? "1" : s.batch;
  if (allow_ranges) {
    g.batches = parse_range(batch, "--batch", kMaxBatch);
    g.prompts = parse_range(s.prompt, "--prompt", limits::kMaxSeq);
    g.generates = parse_range(s.generate, "--generate", kMaxGenerate);
  } else {
    g.batches = {parse_positive_int(batch, "--batch")};
    g.prompts = {parse_positive_int(s.prompt, "--prompt")};
    g.generates = {parse_positive_int(s.generate, "--generate")};
  }
  const std::size_t total = g.batches.size() * g.prompts.size() * g.generates.size();
  if (total > static_cast<std::size_t>(max_range_points))
    throw Error(fmt::format("{} points is more than {}", total, max_range_points));
  g.pass = build_options(s.pass);
  // The work of every point together, refused up front with its estimate (limits.hpp).
  double tokens = 0;
  for (int n : g.generates) tokens += static_cast<double>(n) + limits::kLayerStepsPerPoint;
  const double work = tokens * static_cast<double>(g.batches.size() * g.prompts.size()) * g.config.num_layers;
  if (work > static_cast<double>(limits::kMaxLayerSteps))
    throw Error(fmt::format("{} points of {} layers x their generated tokens (and {} per point) = {:.0f} layer-steps is more than the {} "
                            "one command may take (about {:.0f} s of work); sweep fewer points or tokens",
                            total, g.config.num_layers, limits::kLayerStepsPerPoint, work, limits::kMaxLayerSteps,
                            work * limits::kSecondsPerLayerStep));
  return g;
}

// Predicts every point of the grid, one at a time, handing each generation to `each` as it
// finishes (a sweep keeps one summary per point, never every point's trees and steps).
void for_each_generation(const GenerationGrid& grid, const Predictor& p, const std::function<void(Generation&&)>& each) {
  for (int b : grid.batches)
    for (int q : grid.prompts)
      for (int n : grid.generates) {
        GenerationRequest r;
        r.batch = b;
        r.prompt = q;
        r.generate = n;
        r.pass = grid.pass;
        each(predict_generation(grid.config, r, p));
      }
}

std::vector<Generation> predict_generations(const GenerationGrid& grid, const Predictor& p) {
  std::vector<Generation> out;
  for_each_generation(grid, p, [&](Generation&& g) { out.push_back(std::move(g)); });
  return out;
}

// Calls `start(total)` once, then `each(tree)` for every tree of the source, in order: the trees of
// a file (filtered by --batch/--seq, unusable ones skipped), or MODEL predicted at every (batch, seq)
// of the ranges, one at a time (a 1,024-point sweep never holds more than one tree).
void for_each_tree(const Source& s, bool allow_ranges, std::string& hardware,
                   const std::function<void(std::size_t)>& start, const std::function<void(Tree&&)>& each) {
  if (is_trees_file(s.what)) {
    if (!s.overrides.empty()) throw Error("--set applies to a model, not to a trees file");
    if (any_pass_option(s.pass))
      throw Error("--phase, --past, --dtype, --attention, --head and --allow-long build a model's tree: they do not "
                  "apply to a trees file");
    std::vector<Tree> trees = read_jsonl(s.what);
    if (!s.batch.empty() || !s.seq.empty()) {
      const auto batches = s.batch.empty() ? std::vector<int>{} : parse_range(s.batch, "--batch", kMaxBatch);
      const auto seqs = s.seq.empty() ? std::vector<int>{} : parse_range(s.seq, "--seq", kMaxSeq);
      std::vector<Tree> kept;
      for (auto& t : trees)
        if ((batches.empty() || std::find(batches.begin(), batches.end(), t.batch_size) != batches.end()) &&
            (seqs.empty() || std::find(seqs.begin(), seqs.end(), t.seq_len) != seqs.end()))
          kept.push_back(std::move(t));
      if (kept.empty())
        throw Error(fmt::format("{}: no tree has batch {} and seq {}", s.what, s.batch.empty() ? "any" : s.batch,
                                s.seq.empty() ? "any" : s.seq));
      trees = std::move(kept);
    }
    UsablePolicy policy;
    policy.strict = s.strict;
    policy.source = s.what;
    if (!s.predictor.empty()) {
      const auto p = load_predictor(s.predictor);
      hardware = p->hardware();
      trees = keep_usable(std::move(trees), [&](const Tree& t) { return p->cannot_predict(t); }, policy);
      for (auto& t : trees) p->predict(t);
    } else {
      trees = keep_usable(std::move(trees), check_energies, policy);
    }
    if (s.predictor.empty() && !trees.front().provenance.empty()) {
      if (auto it = trees.front().provenance.find("predicted_for"); it != trees.front().provenance.end())
        hardware = it->second;
    }
    start(trees.size());
    for (auto& t : trees) each(std::move(t));
    return;
  }
  // A model is built for kDefaultBatch / kDefaultSeq where --batch / --seq are not given (a
  // decode step: one new token per sequence).
  std::vector<int> pasts;
  const BuildOptions pass = pass_of(s, allow_ranges, &pasts);
  const bool decode = pass.phase == kDecode;
  const std::string batch = s.batch.empty() ? std::to_string(kDefaultBatch) : s.batch;
  const std::string seq = s.seq.empty() ? (decode ? std::string("1") : std::to_string(kDefaultSeq)) : s.seq;
  const ModelConfig config = load_config_with_overrides(s.what, s.overrides);
  std::vector<int> batches, seqs;
  if (allow_ranges) {
    batches = parse_range(batch, "--batch", kMaxBatch);
    seqs = parse_range(seq, "--seq", kMaxSeq);
  } else {
    batches = {parse_positive_int(batch, "--batch")};
    seqs = {parse_positive_int(seq, "--seq")};
  }
  if (decode && seqs != std::vector<int>{1})
    throw Error("--phase decode feeds one new token per sequence: --seq must be 1 or left out");
  if (pasts.empty()) pasts = {pass.past};
  const auto p = load_predictor(s.predictor);
  hardware = p->hardware();
  const bool progress = ::isatty(2);
  const std::size_t total = batches.size() * seqs.size() * pasts.size();
  if (total > static_cast<std::size_t>(max_range_points))
    throw Error(fmt::format("{} points is more than {}", total, max_range_points));
  start(total);
  std::size_t done = 0;
  for (int b : batches)
    for (int q : seqs)
      for (int past : pasts) {
        BuildOptions o = pass;
        o.past = past;
        each(predicted_tree(config, b, q, *p, o));
        ++done;
        if (total > 8 && progress) std::cerr << fmt::format("\rirene: predicted {}/{}", done, total) << std::flush;
      }
  if (total > 8 && progress) std::cerr << '\n';
}

std::vector<Tree> load_trees(const Source& s, bool allow_ranges, std::string& hardware) {
  std::vector<Tree> trees;
  for_each_tree(s, allow_ranges, hardware, [&](std::size_t n) { trees.reserve(n); },
                [&](Tree&& t) { trees.push_back(std::move(t)); });
  return trees;
}

void add_generation_options(CLI::App* cmd, Source& s, bool ranges) {
  cmd->add_option("--prompt", s.prompt,
                  ranges ? "with --generate: prompt tokens (N, START:STOP:STEP or a,b,c)" : "with --generate: prompt tokens");
  cmd->add_option("--generate", s.generate,
                  std::string("new tokens per sequence: the energy of generating text (prefill + one decode step per "
                              "token); --batch defaults to 1") +
                      (ranges ? " (N, START:STOP:STEP or a,b,c)" : ""));
}

void add_source_options(CLI::App* cmd, Source& s, bool ranges) {
  cmd->add_option("model", s.what, "built-in model name, config.json path, or a trees .jsonl file")->required();
  cmd->add_option("--batch,-b", s.batch, ranges ? "batch size: N, START:STOP:STEP or a,b,c (default 8)" : "batch size (default 8)");
  cmd->add_option("--seq,-s", s.seq, ranges ? "sequence length: N, START:STOP:STEP or a,b,c (default 128)" : "sequence length (default 128)");
  // (with --phase decode, --past takes ranges too where --seq does: past ranges)
  cmd->add_option("--set", s.overrides, "override a configuration value, KEY=VALUE (repeatable)");
  cmd->add_option("--predictor,-p", s.predictor, "predictor file (default: the shipped device_1 predictor)");
  cmd->add_flag("--strict", s.strict, "with a trees file: fail on a tree that cannot be used instead of skipping it");
  add_pass_options(cmd, s.pass);
  add_generation_options(cmd, s, ranges);
}

void add_carbon_option(CLI::App* cmd, std::string& carbon) {
  cmd->add_option("--carbon-intensity", carbon,
                  "grams CO2e per kWh of the electricity (e.g. 400): adds grams CO2e to the figures");
}

void check_format(const std::string& format, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (format == a) return;
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  throw Error(fmt::format("unknown --format '{}' (expected {})", format, list));
}

// ---- serve -------------------------------------------------------------------------------

void serve(const std::string& predictor, const std::string& host, int port, int threads) {
  auto p = load_predictor(predictor);
  ServeOptions options;
  options.host = host;
  options.port = port;
  options.threads = threads;
  EnergyServer server(make_backend(p), options);
  // SIGINT/SIGTERM stop the server from a waiting thread (blocked here first, so every
  // server thread inherits the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int bound = server.bind();
  std::atomic<int> stop_signal{0};
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!done.load()) stop_signal.store(sig);
    server.stop();
  });
  const bool ipv6 = host.find(':') != std::string::npos;
  std::cout << fmt::format("irene: serving http://{}:{}/ (predictor: {}); Ctrl-C stops\n",
                           ipv6 ? "[" + host + "]" : host, bound, p->hardware())
            << std::flush;
  server.run();
  done.store(true);
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (stop_signal.load() != 0) {
    std::cerr << "irene: interrupted: server stopped\n";
    std::exit(128 + stop_signal.load());
  }
  std::cout << "irene: server stopped\n";
}

}  // namespace

void register_explain(CLI::App& app) {
  // explain ---------------------------------------------------------------------------------
  {
    auto* cmd = app.add_subcommand("explain", "Where a model's inference energy goes: per node, hotspots, by type and kind");
    auto s = std::make_shared<Source>();
    auto format = std::make_shared<std::string>("text");
    auto out = std::make_shared<std::string>("-");
    auto top = std::make_shared<int>(10);
    auto depth = std::make_shared<int>(3);
    auto expand = std::make_shared<bool>(false);
    auto carbon = std::make_shared<std::string>();
    add_source_options(cmd, *s, false);
    cmd->add_option("--format,-f", *format, "text, json or csv (one row per node, the columns of irene.predict)")
        ->capture_default_str();
    cmd->add_option("--top", *top, "hotspots to list")->capture_default_str()->check(CLI::Range(0, 100000));
    cmd->add_option("--depth", *depth, "tree depth shown in text (-1: all)")->capture_default_str();
    cmd->add_flag("--expand", *expand, "list hotspots one ML primitive a line instead of grouping repeated layers");
    add_carbon_option(cmd, *carbon);
    cmd->add_option("-o,--output", *out, "output file ('-': standard output)")->capture_default_str();
    cmd->callback([=] {
      check_format(*format, {"text", "json", "csv"});
      const auto carbon_g = parse_carbon_intensity(*carbon);
      if (s->generation()) {
        if (*format == "csv")
          throw Error("--format csv lists the nodes of one tree: explain a generation as text or json, or its "
                      "prefill or one decode step (--phase decode --past P) as csv");
        const auto grid = generation_grid(*s, false);
        const auto p = load_predictor(s->predictor);
        const Generation g = predict_generations(grid, *p).front();
        ExplainOptions eo;
        eo.top = *top;
        const Explanation pre = explain_tree(g.prefill_tree, eo), last = explain_tree(g.last_step, eo);
        write_output(*out, [&](std::ostream& os) {
          if (*format == "json") {
            auto j = to_json(g);
            j["prefill_explanation"] = to_json(pre);
            j["last_step_explanation"] = to_json(last);
            os << j.dump(1) << '\n';
            return;
          }
          write_text(os, g, false);
          os << "\n" << std::string(72, '-') << "\nThe prefill:\n";
          TextOptions to;
          to.depth = *depth;
          to.expand = *expand;
          to.carbon_g_per_kwh = carbon_g;
          to.hardware = p->hardware();
          write_text(os, pre, to);
          os << "\n" << std::string(72, '-') << "\nThe last decode step:\n";
          write_text(os, last, to);
        });
        return;
      }
      std::string hardware;
      const auto trees = load_trees(*s, false, hardware);
      if (*format == "csv") {
        write_output(*out, [&](std::ostream& os) { write_records_csv(os, trees); });
        return;
      }
      ExplainOptions eo;
      eo.top = *top;
      std::vector<Explanation> ex;
      for (const auto& t : trees) ex.push_back(explain_tree(t, eo));
      write_output(*out, [&](std::ostream& os) {
        if (*format == "json") {
          nlohmann::json arr = nlohmann::json::array();
          for (const auto& e : ex) {
            auto j = to_json(e);
            j["hardware"] = hardware;
            j["normalized"] = to_json(normalize(e.total.j, e.batch_size, e.seq_len, carbon_g));
            if (carbon_g) j["carbon_intensity_g_per_kwh"] = *carbon_g;
            arr.push_back(std::move(j));
          }
          os << (arr.size() == 1 ? arr[0] : arr).dump(1) << '\n';
        } else {
          TextOptions to;
          to.depth = *depth;
          to.expand = *expand;
          to.carbon_g_per_kwh = carbon_g;
          to.hardware = hardware;
          for (std::size_t i = 0; i < ex.size(); ++i) {
            if (i) os << "\n" << std::string(72, '-') << "\n";
            write_text(os, ex[i], to);
          }
        }
      });
    });
  }
  // compare ---------------------------------------------------------------------------------
  {
    auto* cmd = app.add_subcommand("compare", "What a change costs: two configurations aligned node by node (b - a)");
    struct Opts {
      std::string a, b, batch, seq, batch_b, seq_b, predictor, format = "text", out = "-";
      std::vector<std::string> set_a, set_b;
      int top = 20;
      bool strict = false;
      PassArgs pass;
      std::string prompt, generate, past_b;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("a", o->a, "model a: built-in name, config.json or trees .jsonl (first tree)")->required();
    cmd->add_option("b", o->b, "model b (default: a, with --set / --batch-b / --seq-b)");
    cmd->add_option("--batch,-b", o->batch, "batch size of a (and of b unless --batch-b)");
    cmd->add_option("--seq,-s", o->seq, "sequence length of a (and of b unless --seq-b)");
    cmd->add_option("--batch-b", o->batch_b, "batch size of b");
    cmd->add_option("--seq-b", o->seq_b, "sequence length of b");
    cmd->add_option("--set", o->set_b, "override in b, KEY=VALUE (repeatable)");
    cmd->add_option("--set-a", o->set_a, "override in a, KEY=VALUE (repeatable)");
    cmd->add_option("--predictor,-p", o->predictor, "predictor file (default: the shipped one)");
    cmd->add_option("--format,-f", o->format, "text or json")->capture_default_str();
    cmd->add_option("--top", o->top, "largest node differences to list (-1: all)")->capture_default_str();
    cmd->add_flag("--strict", o->strict, "with a trees file: fail on a tree that cannot be used instead of skipping it");
    cmd->add_option("-o,--output", o->out, "output file ('-': standard output)")->capture_default_str();
    add_pass_options(cmd, o->pass);
    cmd->add_option("--past-b", o->past_b, "with --phase decode: the cached positions of b (default: --past)");
    cmd->add_option("--prompt", o->prompt, "with --generate: prompt tokens (both sides)");
    cmd->add_option("--generate", o->generate,
                    "new tokens per sequence: compare the energy of generating text (prefill, decode, total, per "
                    "token, by module kind); --batch defaults to 1");
    cmd->callback([o] {
      check_format(o->format, {"text", "json"});
      std::string hardware;
      Source sa{o->a, o->set_a, o->batch, o->seq, o->predictor, o->strict, o->pass, o->prompt, o->generate};
      Source sb{o->b.empty() ? o->a : o->b, o->set_b, o->batch_b.empty() ? o->batch : o->batch_b,
                o->seq_b.empty() ? o->seq : o->seq_b, o->predictor, o->strict, o->pass, o->prompt, o->generate};
      if (!o->past_b.empty()) {
        if (o->pass.phase != kDecode) throw Error("--past-b needs --phase decode");
        sb.pass.past = o->past_b;
      }
      if (sa.generation()) {
        const auto p = load_predictor(o->predictor);
        const Generation ga = predict_generations(generation_grid(sa, false), *p).front();
        const Generation gb = predict_generations(generation_grid(sb, false), *p).front();
        const GenerationComparison c = compare_generations(ga, gb);
        const Comparison steps = compare(ga.last_step, gb.last_step);
        write_output(o->out, [&](std::ostream& os) {
          if (o->format == "json") {
            auto j = to_json(c);
            j["hardware"] = p->hardware();
            j["last_step"] = to_json(steps);
            os << j.dump(1) << '\n';
          } else {
            write_text(os, c);
            os << "\nThe last decode steps, node by node:\n";
            write_text(os, steps, o->top);
          }
        });
        return;
      }
      const Tree ta = load_trees(sa, false, hardware).front();
      const Tree tb = load_trees(sb, false, hardware).front();
      const Comparison c = compare(ta, tb);
      write_output(o->out, [&](std::ostream& os) {
        if (o->format == "json") {
          auto j = to_json(c);
          j["hardware"] = hardware;
          os << j.dump(1) << '\n';
        } else {
          if (!hardware.empty()) os << "predictor: " << hardware << '\n';
          write_text(os, c, o->top);
        }
      });
    });
  }
  // sweep -----------------------------------------------------------------------------------
  {
    auto* cmd = app.add_subcommand("sweep", "Energy against sequence length or batch size, per level and module kind");
    auto s = std::make_shared<Source>();
    auto format = std::make_shared<std::string>("table");
    auto out = std::make_shared<std::string>("-");
    auto jsonl = std::make_shared<std::string>();
    auto report = std::make_shared<std::string>();
    add_source_options(cmd, *s, true);
    cmd->add_option("--format,-f", *format, "table, csv or json")->capture_default_str();
    cmd->add_option("-o,--output", *out, "output file ('-': standard output)")->capture_default_str();
    cmd->add_option("--jsonl", *jsonl, "also write the predicted trees (JSONL)");
    cmd->add_option("--report", *report, "also write an HTML report with the sweep plot");
    cmd->callback([=] {
      check_format(*format, {"table", "csv", "json"});
      if (s->generation()) {
        if (!jsonl->empty()) throw Error("sweep --jsonl writes trees: it does not apply with --generate");
        const auto grid = generation_grid(*s, true);
        const auto p = load_predictor(s->predictor);
        std::vector<GenerationPoint> points;
        std::optional<Generation> kept;  // the last point's generation, for the report
        for_each_generation(grid, *p, [&](Generation&& g) {
          points.push_back(generation_point(g));
          if (!report->empty()) kept = std::move(g);
        });
        if (!report->empty()) {
          const Generation& last = *kept;
          ReportOptions ro;
          ro.hardware = p->hardware();
          auto data = report_data({last.prefill_tree, last.first_step, last.last_step}, ro);
          data["generation"] = to_json(last);
          data["generation_sweep"] = to_json(points);
          const std::string html = render_report(data, fmt::format("irene energy report: {} generating text", last.model_name));
          write_output(*report, [&](std::ostream& os) { os << html; });
        }
        write_output(*out, [&](std::ostream& os) {
          if (*format == "csv") write_generation_csv(os, points);
          else if (*format == "json") os << to_json(points).dump(1) << '\n';
          else {
            os << "predictor: " << p->hardware() << '\n';
            write_generation_table(os, points);
          }
        });
        return;
      }
      std::string hardware;
      std::vector<SweepPoint> points;
      std::optional<ReportBuilder> builder;
      ReportOptions ro;
      // One tree at a time: its sweep point, the report's share of it, its JSONL line.
      auto run = [&](std::ostream* trees_out) {
        for_each_tree(
            *s, true, hardware,
            [&](std::size_t total) {
              points.reserve(total);
              if (!report->empty()) builder.emplace(total, ro);
            },
            [&](Tree&& t) {
              points.push_back(sweep_point(t));
              if (builder) builder->add(t);
              if (trees_out) write_tree_jsonl(*trees_out, t);
            });
      };
      if (jsonl->empty()) run(nullptr);
      else write_output(*jsonl, [&](std::ostream& os) { run(&os); });
      if (builder) {
        nlohmann::json data = builder->data();
        data["hardware"] = hardware;
        const std::string html = render_report(data, builder->title());
        write_output(*report, [&](std::ostream& os) { os << html; });
      }
      write_output(*out, [&](std::ostream& os) {
        if (*format == "csv") write_sweep_csv(os, points);
        else if (*format == "json") os << to_json(points).dump(1) << '\n';
        else {
          if (!hardware.empty()) os << "predictor: " << hardware << '\n';
          write_sweep_table(os, points);
        }
      });
    });
  }
  // report ----------------------------------------------------------------------------------
  {
    auto* cmd = app.add_subcommand("report", "One self-contained HTML energy report (works offline)");
    auto s = std::make_shared<Source>();
    auto out = std::make_shared<std::string>();
    auto title = std::make_shared<std::string>();
    auto top = std::make_shared<int>(15);
    add_source_options(cmd, *s, true);
    cmd->add_option("-o,--output", *out, "the HTML file to write")->required();
    cmd->add_option("--title", *title, "page title");
    cmd->add_option("--top", *top, "hotspots per tree")->capture_default_str()->check(CLI::Range(0, 100000));
    cmd->callback([=] {
      ReportOptions ro;
      if (s->generation()) {
        const auto p = load_predictor(s->predictor);
        const Generation g = predict_generations(generation_grid(*s, false), *p).front();
        ro.hardware = p->hardware();
        ro.title = *title;
        ro.top = *top;
        auto data = report_data({g.prefill_tree, g.first_step, g.last_step}, ro);
        data["generation"] = to_json(g);
        const std::string html = render_report(
            data, title->empty() ? fmt::format("irene energy report: {} generating text", g.model_name) : *title);
        write_output(*out, [&](std::ostream& os) { os << html; });
        std::cerr << fmt::format("irene: wrote {} (a generation of {} steps, {} KiB)\n", *out, g.steps.size(),
                                 html.size() / 1024);
        return;
      }
      std::string hardware;
      ro.title = *title;
      ro.top = *top;
      std::optional<ReportBuilder> builder;
      for_each_tree(
          *s, true, hardware, [&](std::size_t total) { builder.emplace(total, ro); },
          [&](Tree&& t) { builder->add(t); });
      nlohmann::json data = builder->data();
      data["hardware"] = hardware;
      const std::string html = render_report(data, builder->title());
      write_output(*out, [&](std::ostream& os) { os << html; });
      std::cerr << fmt::format("irene: wrote {} ({} tree{}, {} shown whole, {} KiB)\n", *out, builder->added(),
                               builder->added() == 1 ? "" : "s", data["trees"].size(), html.size() / 1024);
    });
  }
  // serve -----------------------------------------------------------------------------------
  {
    auto* cmd = app.add_subcommand("serve", "Serve the energy map and a JSON API (loopback unless --host)");
    auto predictor = std::make_shared<std::string>();
    auto host = std::make_shared<std::string>("127.0.0.1");
    auto port = std::make_shared<int>(8080);
    auto threads = std::make_shared<int>(8);
    cmd->add_option("--predictor,-p", *predictor, "predictor file (default: the shipped one)");
    cmd->add_option("--host", *host, "address to listen on")->capture_default_str();
    cmd->add_option("--port", *port, "port (0: any free port, printed)")->capture_default_str()->check(CLI::Range(0, 65535));
    cmd->add_option("--threads", *threads, "heavy requests (generation, comparison, large models) computed at once")->capture_default_str()->check(CLI::Range(1, 256));
    cmd->callback([=] { serve(*predictor, *host, *port, *threads); });
  }
}

}  // namespace irene::cli
