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
#include "irene/core/limits.hpp"
#include "irene/core/usable.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/units.hpp"
#include "irene/explain/report.hpp"
#include "irene/explain/server.hpp"
#include "irene/explain/source.hpp"
#include "irene/explain/sweep.hpp"

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
  Source s;
  std::string format = "text", out = "-", carbon;
  int top = 10, depth = 3;
  bool expand = false;

  TextOptions text(const std::string& hardware) const {
    TextOptions to;
    to.depth = depth;
    to.expand = expand;
    to.carbon_g_per_kwh = parse_carbon_intensity(carbon);
    to.hardware = hardware;
    return to;
  }
};

// explain --prompt P --generate N: the generation, then its prefill and its last decode step.
void explain_generation(const ExplainArgs& a) {
  if (a.format == "csv")
    throw Error("--format csv lists the nodes of one tree: explain a generation as text or json, or its "
                "prefill or one decode step (--phase decode --past P) as csv");
  const auto grid = generation_grid(a.s, false);
  const auto p = load_energy_predictor(a.s.predictor);
  const Generation g = predict_generations(grid, *p).front();
  ExplainOptions eo;
  eo.top = a.top;
  const Explanation pre = explain_tree(g.prefill_tree, eo), last = explain_tree(g.last_step, eo);
  const TextOptions to = a.text(p->hardware());
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "json") {
      auto j = to_json(g);
      j["prefill_explanation"] = to_json(pre);
      j["last_step_explanation"] = to_json(last);
      os << j.dump(1) << '\n';
      return;
    }
    write_text(os, g, false);
    os << "\n" << std::string(72, '-') << "\nThe prefill:\n";
    write_text(os, pre, to);
    os << "\n" << std::string(72, '-') << "\nThe last decode step:\n";
    write_text(os, last, to);
  });
}

void run_explain(const ExplainArgs& a) {
  check_format(a.format, {"text", "json", "csv"});
  const auto carbon_g = parse_carbon_intensity(a.carbon);
  if (a.s.generation()) return explain_generation(a);
  std::string hardware;
  const auto trees = load_trees(a.s, false, hardware);
  if (a.format == "csv") return write_output(a.out, [&](std::ostream& os) { write_records_csv(os, trees); });
  ExplainOptions eo;
  eo.top = a.top;
  std::vector<Explanation> ex;
  for (const auto& t : trees) ex.push_back(explain_tree(t, eo));
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "json") {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& e : ex) {
        auto j = to_json(e);
        j["hardware"] = hardware;
        j["normalized"] = to_json(normalize(e.total.j, e.batch_size, e.seq_len, carbon_g));
        if (carbon_g) j["carbon_intensity_g_per_kwh"] = *carbon_g;
        arr.push_back(std::move(j));
      }
      os << (arr.size() == 1 ? arr[0] : arr).dump(1) << '\n';
      return;
    }
    const TextOptions to = a.text(hardware);
    for (std::size_t i = 0; i < ex.size(); ++i) {
      if (i) os << "\n" << std::string(72, '-') << "\n";
      write_text(os, ex[i], to);
    }
  });
}

void register_explain_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("explain", "Where a model's inference energy goes: per node, hotspots, by type and kind");
  auto a = std::make_shared<ExplainArgs>();
  add_source_options(cmd, a->s, false);
  cmd->add_option("--format,-f", a->format, "text, json or csv (one row per node, the columns of irene.predict)")
      ->capture_default_str();
  cmd->add_option("--top", a->top, "hotspots to list")->capture_default_str()->check(CLI::Range(0, limits::kMaxTop));
  cmd->add_option("--depth", a->depth, "tree depth shown in text (-1: all)")->capture_default_str();
  cmd->add_flag("--expand", a->expand, "list hotspots one ML primitive a line instead of grouping repeated layers");
  add_carbon_option(cmd, a->carbon);
  cmd->add_option("-o,--output", a->out, "output file ('-': standard output)")->capture_default_str();
  cmd->callback([a] { run_explain(*a); });
}

// ---- compare ----------------------------------------------------------------------------

struct CompareArgs {
  std::string a, b, batch, seq, batch_b, seq_b, predictor, format = "text", out = "-";
  std::vector<std::string> set_a, set_b;
  int top = 20;
  bool strict = false;
  PassArgs pass;
  std::string prompt, generate, past_b;
  // What-ifs on b: its dtype, weights, cache dtype, attention and predictor (hardware).
  std::string dtype_b, weights_b, kv_cache_dtype_b, attention_b, predictor_b;
};

void run_compare(const CompareArgs& o) {
  check_format(o.format, {"text", "json"});
  std::string hardware;
  Source sa{o.a, o.set_a, o.batch, o.seq, o.predictor, o.strict, o.pass, o.prompt, o.generate};
  Source sb{o.b.empty() ? o.a : o.b, o.set_b, o.batch_b.empty() ? o.batch : o.batch_b,
            o.seq_b.empty() ? o.seq : o.seq_b, o.predictor_b.empty() ? o.predictor : o.predictor_b, o.strict, o.pass,
            o.prompt, o.generate};
  if (!o.past_b.empty()) {
    if (o.pass.phase != kDecode) throw Error("--past-b needs --phase decode");
    sb.pass.past = o.past_b;
  }
  for (const auto& [value, field] : {std::pair{&o.dtype_b, &sb.pass.dtype}, std::pair{&o.weights_b, &sb.pass.weights},
                                     std::pair{&o.kv_cache_dtype_b, &sb.pass.kv_cache_dtype},
                                     std::pair{&o.attention_b, &sb.pass.attention}})
    if (!value->empty()) *field = *value;
  if (sa.generation()) {
    const auto p = load_energy_predictor(o.predictor);
    const auto pb = o.predictor_b.empty() ? p : load_energy_predictor(o.predictor_b);
    const Generation ga = predict_generations(generation_grid(sa, false), *p).front();
    const Generation gb = predict_generations(generation_grid(sb, false), *pb).front();
    const GenerationComparison c = compare_generations(ga, gb);
    const Comparison steps = compare(ga.last_step, gb.last_step);
    return write_output(o.out, [&](std::ostream& os) {
      if (o.format == "json") {
        auto j = to_json(c);
        j["hardware"] = p->hardware();
        j["hardware_b"] = pb->hardware();
        j["last_step"] = to_json(steps);
        os << j.dump(1) << '\n';
      } else {
        write_text(os, c);
        os << "\nThe last decode steps, node by node:\n";
        write_text(os, steps, o.top);
      }
    });
  }
  std::string hardware_b;
  const Tree ta = load_trees(sa, false, hardware).front();
  const Tree tb = load_trees(sb, false, hardware_b).front();
  const Comparison c = compare(ta, tb);
  write_output(o.out, [&](std::ostream& os) {
    if (o.format == "json") {
      auto j = to_json(c);
      j["hardware"] = hardware;
      j["hardware_b"] = hardware_b;
      os << j.dump(1) << '\n';
    } else {
      if (hardware_b != hardware) {
        os << "predictor of a: " << hardware << "\npredictor of b: " << hardware_b << '\n';
      } else if (!hardware.empty()) {
        os << "predictor: " << hardware << '\n';
      }
      write_text(os, c, o.top);
    }
  });
}

void register_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "What a change costs: two configurations aligned node by node (b - a)");
  auto o = std::make_shared<CompareArgs>();
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
  cmd->add_option("--dtype-b", o->dtype_b, "the dtype of b (default: --dtype)");
  cmd->add_option("--weights-b", o->weights_b, "the weights' format of b (default: --weights)");
  cmd->add_option("--kv-cache-dtype-b", o->kv_cache_dtype_b, "the key/value cache's dtype of b (default: --kv-cache-dtype)");
  cmd->add_option("--attention-b", o->attention_b, "the attention of b, eager or sdpa (default: --attention)");
  cmd->add_option("--predictor-b", o->predictor_b,
                  "the predictor of b, e.g. another machine's (default: --predictor): the same model on two hardware");
  cmd->add_option("--prompt", o->prompt, "with --generate: prompt tokens (both sides)");
  cmd->add_option("--generate", o->generate,
                  "new tokens per sequence: compare the energy of generating text (prefill, decode, total, per "
                  "token, by module kind); --batch defaults to 1");
  cmd->callback([o] { run_compare(*o); });
}

// ---- sweep ------------------------------------------------------------------------------

struct SweepArgs {
  Source s;
  std::string format = "table", out = "-", jsonl, report;
};

// sweep --prompt ... --generate ...: one generation per point.
void sweep_generations(const SweepArgs& a) {
  if (!a.jsonl.empty()) throw Error("sweep --jsonl writes trees: it does not apply with --generate");
  const auto grid = generation_grid(a.s, true);
  const auto p = load_energy_predictor(a.s.predictor);
  std::vector<GenerationPoint> points;
  std::optional<Generation> kept;  // the last point's generation, for the report
  for_each_generation(grid, *p, [&](Generation&& g) {
    points.push_back(generation_point(g));
    if (!a.report.empty()) kept = std::move(g);
  });
  if (!a.report.empty()) {
    const Generation& last = *kept;
    ReportOptions ro;
    ro.hardware = p->hardware();
    auto data = report_data({last.prefill_tree, last.first_step, last.last_step}, ro);
    data["generation"] = to_json(last);
    data["generation_sweep"] = to_json(points);
    const std::string html = render_report(data, fmt::format("irene energy report: {} generating text", last.model_name));
    write_output(a.report, [&](std::ostream& os) { os << html; });
  }
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "csv") write_generation_csv(os, points);
    else if (a.format == "json") os << to_json(points).dump(1) << '\n';
    else {
      os << "predictor: " << p->hardware() << '\n';
      write_generation_table(os, points);
    }
  });
}

void run_sweep(const SweepArgs& a) {
  check_format(a.format, {"table", "csv", "json"});
  if (a.s.generation()) return sweep_generations(a);
  std::string hardware;
  std::vector<SweepPoint> points;
  std::optional<ReportBuilder> builder;
  ReportOptions ro;
  // One tree at a time: its sweep point, the report's share of it, its JSONL line.
  auto run = [&](std::ostream* trees_out) {
    for_each_tree(
        a.s, true, hardware,
        [&](std::size_t total) {
          points.reserve(total);
          if (!a.report.empty()) builder.emplace(total, ro);
        },
        [&](Tree&& t) {
          points.push_back(sweep_point(t));
          if (builder) builder->add(t);
          if (trees_out) write_tree_jsonl(*trees_out, t);
        },
        show_progress);
  };
  if (a.jsonl.empty()) run(nullptr);
  else write_output(a.jsonl, [&](std::ostream& os) { run(&os); });
  if (builder) {
    nlohmann::json data = builder->data();
    data["hardware"] = hardware;
    const std::string html = render_report(data, builder->title());
    write_output(a.report, [&](std::ostream& os) { os << html; });
  }
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "csv") write_sweep_csv(os, points);
    else if (a.format == "json") os << to_json(points).dump(1) << '\n';
    else {
      if (!hardware.empty()) os << "predictor: " << hardware << '\n';
      write_sweep_table(os, points);
    }
  });
}

void register_sweep(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Energy against sequence length or batch size, per level and module kind");
  auto a = std::make_shared<SweepArgs>();
  add_source_options(cmd, a->s, true);
  cmd->add_option("--format,-f", a->format, "table, csv or json")->capture_default_str();
  cmd->add_option("-o,--output", a->out, "output file ('-': standard output)")->capture_default_str();
  cmd->add_option("--jsonl", a->jsonl, "also write the predicted trees (JSONL)");
  cmd->add_option("--report", a->report, "also write an HTML report with the sweep plot");
  cmd->callback([a] { run_sweep(*a); });
}

// ---- report -----------------------------------------------------------------------------

struct ReportArgs {
  Source s;
  std::string out, title;
  int top = 15;
};

void run_report(const ReportArgs& a) {
  ReportOptions ro;
  ro.title = a.title;
  ro.top = a.top;
  if (a.s.generation()) {
    const auto p = load_energy_predictor(a.s.predictor);
    const Generation g = predict_generations(generation_grid(a.s, false), *p).front();
    ro.hardware = p->hardware();
    auto data = report_data({g.prefill_tree, g.first_step, g.last_step}, ro);
    data["generation"] = to_json(g);
    const std::string html = render_report(
        data, a.title.empty() ? fmt::format("irene energy report: {} generating text", g.model_name) : a.title);
    write_output(a.out, [&](std::ostream& os) { os << html; });
    std::cerr << fmt::format("irene: wrote {} (a generation of {} steps, {} KiB)\n", a.out, g.steps.size(),
                             html.size() / 1024);
    return;
  }
  std::string hardware;
  std::optional<ReportBuilder> builder;
  for_each_tree(
      a.s, true, hardware, [&](std::size_t total) { builder.emplace(total, ro); }, [&](Tree&& t) { builder->add(t); },
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
  add_source_options(cmd, a->s, true);
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
