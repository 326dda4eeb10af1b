// irene explain | compare | sweep | report | serve: where the energy goes, what a change costs.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <stdexcept>
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
#include "irene/core/limits.hpp"
#include "irene/core/usable.hpp"
#include "irene/explain/api.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/units.hpp"
#include "irene/explain/report.hpp"
#include "irene/explain/rests_on.hpp"
#include "irene/explain/server.hpp"
#include "irene/explain/source.hpp"
#include "irene/explain/sweep.hpp"
#include "irene/serving/request.hpp"

namespace irene::cli {

namespace {

using namespace irene::explain;

// "irene: predicted 5/24" on standard error, when it is a terminal and there are more than 8 points.
void show_progress(std::size_t done, std::size_t total) {
  static const bool terminal = ::isatty(2);
  if (total <= 8 || !terminal) return;
  std::cerr << fmt::format("\rirene: predicted {}/{}", done, total) << std::flush;
  if (done == total) std::cerr << '\n';
}

// The model, then every option of a Source (explain/source.hpp's table, which Python reads too).
void add_source_options(CLI::App* cmd, Source& s, bool ranges) {
  cmd->add_option("model", s.what, "built-in model name, config.json path, or a trees .jsonl file")->required();
  add_options(cmd, s, source_options(), ranges);
}

void check_format(const std::string& format, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (format == a) return;
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  throw Error(fmt::format("unknown --format '{}' (expected {})", format, list));
}

// ---- serve -------------------------------------------------------------------------------

void serve(const std::string& predictor, const ServeOptions& options) {
  auto p = load_energy_predictor(predictor);
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
  const std::string& host = options.host;
  const bool ipv6 = host.find(':') != std::string::npos;
  std::cout << fmt::format("irene: serving http://{}:{}/ (predictor: {}); Ctrl-C stops\n",
                           ipv6 ? "[" + host + "]" : host, bound, p->hardware())
            << fmt::format("irene: {} connection threads, {} more may wait; a request must arrive within {:g} s; "
                           "{} heavy requests at once; at most {} layer-steps, batch {}, seq {}, {} layers, {} "
                           "generated tokens, {} bytes of body per request\n",
                           options.connections, options.max_queued, options.request_timeout_s, options.threads,
                           options.max_work, options.max_batch, options.max_seq, options.max_layers,
                           options.max_generate, options.max_body_bytes)
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

// ---- explain ----------------------------------------------------------------------------

struct ExplainArgs {
  ExplainRequest r;
  std::string format = "text", out = "-";
  int depth = 3;
  bool expand = false;
  bool serving = false;          // --serving: where the joules of a serving step go
  serving::ServingRequest sr;    // its options (serving/request.hpp's table)
  std::vector<std::string> serving_flags;  // the names they were registered under
};

// The options of explain's own that do not apply with --serving (it takes the serving table's).
constexpr const char* kNotServing[] = {"--batch", "--seq", "--set", "--predictor", "--strict", "--phase",
                                       "--past", "--dtype", "--weights", "--attention", "--head", "--allow-long",
                                       "--generate", "--top", "--depth", "--expand"};

// irene explain MODEL --serving --hardware H100 --max-num-seqs 8,256 [--prompt 180,1200 ...]
void run_explain_serving(const ExplainArgs& a, const CLI::App& cmd) {
  check_format(a.format, {"text", "json", "html"});
  for (const char* f : kNotServing)
    if (cmd.count(f)) throw Error(fmt::format("{} does not apply with --serving (its options: --hardware, "
                                              "--max-num-seqs, --prompt, --output-tokens, --task ...)", f));
  serving::ServingRequest sr = a.sr;
  // explain's own options stand for the serving table's of the same names
  sr.model = a.r.source.what;
  sr.prompt = a.r.source.prompt;
  sr.kv_cache_dtype = a.r.source.pass.kv_cache_dtype;
  sr.carbon_intensity = a.r.carbon_intensity;
  const nlohmann::json e = serving::serving_explanation(sr);
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "json") os << e.dump(1) << '\n';
    else if (a.format == "html") os << render_serving_report(e);
    else os << serving::serving_explanation_text(e);
  });
}

void run_explain(const ExplainArgs& a, const CLI::App& cmd) {
  if (a.serving) return run_explain_serving(a, cmd);
  for (const auto& f : a.serving_flags)
    if (cmd.count(f)) throw Error(fmt::format("{} applies with --serving only", f));
  check_format(a.format, {"text", "json", "csv"});
  if (a.format == "csv" && a.r.source.generation())
    throw Error("--format csv lists the nodes of one tree: explain a generation as text or json, or its "
                "prefill or one decode step (--phase decode --past P) as csv");
  const api::Explained e = api::explain(a.r);
  if (a.format == "csv") return write_output(a.out, [&](std::ostream& os) { write_records_csv(os, e.trees); });
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "json") {
      os << api::to_json(e).dump(1) << '\n';
      return;
    }
    TextOptions to;
    to.depth = a.depth;
    to.expand = a.expand;
    to.carbon_g_per_kwh = e.carbon_g_per_kwh;
    to.hardware = e.hardware;
    if (e.generation) {
      write_text(os, *e.generation, false);
      os << "\n" << std::string(72, '-') << "\nThe whole generation, node by node (the prefill and every decode step):\n";
      write_text(os, e.explanations.at(2), to);
      os << "\n" << std::string(72, '-') << "\nThe prefill:\n";
      write_text(os, e.explanations.at(0), to);
      os << "\n" << std::string(72, '-') << "\nThe last decode step:\n";
      write_text(os, e.explanations.at(1), to);
      return;
    }
    for (std::size_t i = 0; i < e.explanations.size(); ++i) {
      if (i) os << "\n" << std::string(72, '-') << "\n";
      write_text(os, e.explanations[i], to);
    }
  });
}

void register_explain_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("explain", "Where a model's inference energy goes: per node, hotspots, by type and kind");
  auto a = std::make_shared<ExplainArgs>();
  add_source_options(cmd, a->r.source, false);
  cmd->add_option("--format,-f", a->format, "text, json or csv (one row per node, the columns of irene.predict)")
      ->capture_default_str();
  add_option(cmd, a->r, option_named(explain_options(), "top"), false);
  cmd->add_option("--depth", a->depth, "tree depth shown in text (-1: all)")->capture_default_str();
  cmd->add_flag("--expand", a->expand, "list hotspots one ML primitive a line instead of grouping repeated layers");
  add_option(cmd, a->r, option_named(explain_options(), "carbon_intensity"), false);
  cmd->add_option("-o,--output", a->out, "output file ('-': standard output)")->capture_default_str();
  cmd->add_flag("--serving", a->serving,
                "where the joules of a step of serving MODEL with continuous batching on --hardware go (by part: "
                "weights streaming, key/value-cache reads, attention math, LM head, all-reduce, fixed time, "
                "prefills); --format text, json or html; --max-num-seqs and --prompt take lists (8,256)");
  // The serving table's options; model, --prompt, --kv-cache-dtype and --carbon-intensity are explain's own.
  const auto skipped = add_options_not_taken(cmd, a->sr, serving::serving_options());
  for (const auto& k : skipped)
    if (k != "model" && k != "prompt" && k != "kv_cache_dtype" && k != "carbon_intensity")
      throw std::logic_error("explain --serving: option " + k + " has no name of its own");
  for (const auto& o : serving::serving_options())
    if (std::find(skipped.begin(), skipped.end(), o.keyword) == skipped.end())
      a->serving_flags.push_back(o.flags.substr(0, o.flags.find(',')));
  cmd->callback([a, cmd] { run_explain(*a, *cmd); });
}

// ---- compare ----------------------------------------------------------------------------

struct CompareArgs {
  CompareRequest r;
  std::string format = "text", out = "-";
  int top = 20;
};

void run_compare(const CompareArgs& o) {
  check_format(o.format, {"text", "json", "csv"});
  const api::Compared c = api::compare(o.r);
  write_output(o.out, [&](std::ostream& os) {
    if (o.format == "json") {
      os << api::to_json(c).dump(1) << '\n';
    } else if (o.format == "csv") {
      if (c.generations) {
        explain::write_generation_csv(os, {explain::generation_point(c.generations->a), explain::generation_point(c.generations->b)},
                                      c.carbon_g_per_kwh);
      } else {
        explain::write_csv(os, c.comparison);
      }
    } else if (c.generations) {
      write_text(os, *c.generations);
      os << "\nThe last decode steps, node by node:\n";
      write_text(os, c.comparison, o.top);
    } else {
      if (c.hardware_b != c.hardware) {
        os << "predictor of a: " << c.hardware << "\npredictor of b: " << c.hardware_b << '\n';
      } else if (!c.hardware.empty()) {
        os << "predictor: " << c.hardware << '\n';
      }
      write_text(os, c.comparison, o.top);
    }
    if (o.format != "json")
      if (const auto g = api::co2e(c))
        os << fmt::format("\nCO2e at {:g} g/kWh{}: a {}, b {}, b - a {}{}\n", *c.carbon_g_per_kwh,
                          c.generations ? " (the whole generations)" : "", format_si(g->a_g, "g"),
                          format_si(g->b_g, "g"), g->diff_g > 0 ? "+" : "", format_si(g->diff_g, "g"));
  });
}

void register_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "What a change costs: two configurations aligned node by node (b - a)");
  auto o = std::make_shared<CompareArgs>();
  cmd->add_option("a", o->r.a.what, "model a: built-in name, config.json or trees .jsonl (first tree)")->required();
  cmd->add_option("b", o->r.b, "model b (default: a, with --set / --batch-b / --seq-b)");
  // The table's options, with the output options where the help has always listed them.
  for (const auto& option : compare_options()) {
    add_option(cmd, o->r, option, false);
    if (option.keyword == "predictor") {
      cmd->add_option("--format,-f", o->format,
                      "text, json or csv (csv: one row per node of a and b; of generations, one row of totals each)")
          ->capture_default_str();
      cmd->add_option("--top", o->top, "largest node differences to list (-1: all)")->capture_default_str();
    } else if (option.keyword == "strict") {
      cmd->add_option("-o,--output", o->out, "output file ('-': standard output)")->capture_default_str();
    }
  }
  cmd->callback([o] { run_compare(*o); });
}

// ---- sweep ------------------------------------------------------------------------------

struct SweepArgs {
  SweepRequest r;
  std::string format = "table", out = "-", jsonl, report;
};

void run_sweep(const SweepArgs& a) {
  check_format(a.format, {"table", "csv", "json"});
  if (a.r.source.generation() && !a.jsonl.empty())
    throw Error("sweep --jsonl writes trees: it does not apply with --generate");
  std::optional<ReportBuilder> builder;
  std::optional<Generation> kept;  // the last generation, for the report
  ReportOptions ro;
  ro.carbon_g_per_kwh = parse_carbon_intensity(a.r.carbon_intensity);
  api::SweepHooks hooks;
  if (!a.report.empty()) {
    hooks.start = [&](std::size_t total) { builder.emplace(total, ro); };
    hooks.generation = [&](Generation& g) { kept = std::move(g); };
  }
  hooks.progress = show_progress;
  // One tree at a time: its sweep point, the report's share of it, its JSONL line.
  auto run = [&](std::ostream* trees_out) {
    hooks.tree = [&](Tree& t) {
      if (builder) builder->add(t);
      if (trees_out) write_tree_jsonl(*trees_out, t);
    };
    return api::sweep(a.r, hooks);
  };
  api::Swept swept;
  if (a.jsonl.empty()) swept = run(nullptr);
  else write_output(a.jsonl, [&](std::ostream& os) { swept = run(&os); });
  if (swept.generation && kept) {
    ro.hardware = swept.hardware;
    kept->carbon_g_per_kwh = ro.carbon_g_per_kwh;
    auto data = generation_report_data(*kept, ro);
    data["generation_sweep"] = to_json(swept.generation_points, swept.carbon_g_per_kwh);
    const std::string html = render_report(data, data["title"].get<std::string>());
    write_output(a.report, [&](std::ostream& os) { os << html; });
  } else if (builder) {
    nlohmann::json data = builder->data();
    data["hardware"] = swept.hardware;
    const std::string html = render_report(data, builder->title());
    write_output(a.report, [&](std::ostream& os) { os << html; });
  }
  write_output(a.out, [&](std::ostream& os) { api::write_sweep(os, swept, a.format); });
}

// The model and the options of sweep and report (explain/source.hpp's sweep_options).
void add_sweep_options(CLI::App* cmd, SweepRequest& r) {
  cmd->add_option("model", r.source.what, "built-in model name, config.json path, or a trees .jsonl file")->required();
  add_options(cmd, r, sweep_options(), true);
}

void register_sweep(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Energy against sequence length or batch size, per level and module kind");
  auto a = std::make_shared<SweepArgs>();
  add_sweep_options(cmd, a->r);
  cmd->add_option("--format,-f", a->format, "table, csv or json")->capture_default_str();
  cmd->add_option("-o,--output", a->out, "output file ('-': standard output)")->capture_default_str();
  cmd->add_option("--jsonl", a->jsonl, "also write the predicted trees (JSONL)");
  cmd->add_option("--report", a->report, "also write an HTML report with the sweep plot");
  cmd->callback([a] { run_sweep(*a); });
}

// ---- report -----------------------------------------------------------------------------

struct ReportArgs {
  SweepRequest r;
  std::string out, title;
  int top = 15;
};

void run_report(const ReportArgs& a) {
  ReportOptions ro;
  ro.title = a.title;
  ro.top = a.top;
  ro.carbon_g_per_kwh = parse_carbon_intensity(a.r.carbon_intensity);
  const Source& s = a.r.source;
  if (s.generation()) {
    const auto p = load_energy_predictor(s.predictor);
    Generation g = predict_generations(generation_grid(s, false), *p).front();
    g.carbon_g_per_kwh = ro.carbon_g_per_kwh;
    ro.hardware = p->hardware();
    const auto data = generation_report_data(g, ro);
    const std::string html = render_report(data, data["title"].get<std::string>());
    write_output(a.out, [&](std::ostream& os) { os << html; });
    std::cerr << fmt::format("irene: wrote {} (a generation of {} steps, {} KiB)\n", a.out, g.steps.size(),
                             html.size() / 1024);
    return;
  }
  std::string hardware;
  std::optional<ReportBuilder> builder;
  for_each_tree(
      s, true, hardware, [&](std::size_t total) { builder.emplace(total, ro); }, [&](Tree&& t) { builder->add(t); },
      show_progress);
  nlohmann::json data = builder->data();
  data["hardware"] = hardware;
  const std::string html = render_report(data, builder->title());
  write_output(a.out, [&](std::ostream& os) { os << html; });
  std::cerr << fmt::format("irene: wrote {} ({} tree{}, {} shown whole, {} KiB)\n", a.out, builder->added(),
                           builder->added() == 1 ? "" : "s", data["trees"].size(), html.size() / 1024);
}

void register_report(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "One self-contained HTML energy report (works offline)");
  auto a = std::make_shared<ReportArgs>();
  add_sweep_options(cmd, a->r);
  cmd->add_option("-o,--output", a->out, "the HTML file to write")->required();
  cmd->add_option("--title", a->title, "page title");
  cmd->add_option("--top", a->top, "hotspots per tree")->capture_default_str()->check(CLI::Range(0, limits::kMaxTop));
  cmd->callback([a] { run_report(*a); });
}

// ---- serve ------------------------------------------------------------------------------

struct ServeArgs {
  std::string predictor;
  ServeOptions o;  // ServeOptions' defaults (explain/server.hpp, core/limits.hpp)
};

void register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve the energy map and a JSON API (loopback unless --host)");
  auto a = std::make_shared<ServeArgs>();
  auto& o = a->o;
  cmd->add_option("--predictor,-p", a->predictor, "predictor file (default: the shipped one)");
  cmd->add_option("--host", o.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o.port, "port (0: any free port, printed)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--threads", o.threads, "heavy requests (generation, comparison, large models) computed at once")->capture_default_str()->check(CLI::Range(1, limits::kMaxThreads));
  // Load settings (explain/server.hpp, "Load").
  cmd->add_option("--connections", o.connections, "connection threads (each serves one connection at a time)")
      ->capture_default_str()->check(CLI::Range(1, limits::kMaxServeConnections));
  cmd->add_option("--max-queued", o.max_queued, "connections waiting for a thread; past it: 503 at once")
      ->capture_default_str()->check(CLI::Range(0, limits::kMaxServeQueued));
  cmd->add_option("--request-timeout", o.request_timeout_s, "seconds a whole request (headers and body) may take to arrive; past it: 408")
      ->capture_default_str()->check(CLI::Range(0.001, limits::kMaxRequestTimeoutS));
  cmd->add_option("--max-work", o.max_work, "layer-steps (layers x generated tokens) one generation request may take")
      ->capture_default_str()->check(CLI::Range(std::int64_t{1}, limits::kMaxLayerSteps));
  cmd->add_option("--max-body", o.max_body_bytes, "bytes of a POST body (a config.json); past it: 413")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, limits::kMaxServeBodyBytes));
  cmd->add_option("--max-batch", o.max_batch, "sequences of one request")
      ->capture_default_str()->check(CLI::Range(1, static_cast<int>(limits::kMaxBatch)));
  cmd->add_option("--max-seq", o.max_seq, "tokens of one request (seq, past, prompt)")
      ->capture_default_str()->check(CLI::Range(1, static_cast<int>(limits::kMaxSeq)));
  cmd->add_option("--max-layers", o.max_layers, "layers of a requested configuration")
      ->capture_default_str()->check(CLI::Range(1, static_cast<int>(limits::kMaxLayers)));
  cmd->add_option("--max-generate", o.max_generate, "generated tokens of one /api/generate request")
      ->capture_default_str()->check(CLI::Range(1, static_cast<int>(limits::kMaxGenerate)));
  cmd->callback([a] { serve(a->predictor, a->o); });
}

}  // namespace

void register_explain(CLI::App& app) {
  register_explain_command(app);
  register_compare(app);
  register_sweep(app);
  register_report(app);
  register_serve(app);
}

}  // namespace irene::cli
