// irene train | predict | evaluate | crossval: the IrEne predictor on the command line.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "commands.hpp"
#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/io.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/core/limits.hpp"
#include "irene/core/usable.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/units.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/prediction.hpp"
#include "irene/explain/splits.hpp"
#include "irene/predict/config.hpp"
#include "irene/predict/crossval.hpp"
#include "irene/serving/crossval.hpp"
#include "irene/predict/evaluate.hpp"
#include "irene/predict/predictor.hpp"
#include "irene/predict/target.hpp"

namespace irene::cli {

using nlohmann::json;
using namespace irene::predict;

namespace {

Config config_from_options(const std::string& name, const std::vector<std::string>& sets,
                           const std::string& target = "") {
  Config c = load_config(name);
  for (const auto& s : sets) apply_config_override(c, s);
  if (!sets.empty()) c.name += " with " + fmt::format("{}", fmt::join(sets, ", "));
  if (!target.empty()) c.target = target_from_string(target);
  return c;
}

// Measured trees of the file without the excluded models, for training: a tree without a measured
// root is skipped with a notice (or an error with --strict). An excluded model that is not there is
// an error, or a notice when it is a model irene knows.
// With target time, each node's measured value is its times_mean (predict/target.hpp).
std::vector<Tree> read_measured_trees(const std::string& path, const std::vector<std::string>& exclude, bool strict,
                                      bool quiet, Target target) {
  std::vector<Tree> all = read_jsonl(path);
  retarget(all, target);
  std::set<std::string> names;
  for (const auto& t : all) names.insert(t.model_name);
  // A model irene knows that the file does not have (`irene data import` leaves sshleifer/tiny-ctrl
  // out by default) is a notice: the same command works on both forms of an imported file. Any
  // other name is an error (a misspelt model would otherwise silently stay in).
  for (const auto& x : exclude) {
    if (names.count(x)) continue;
    bool known = false;
    try {
      load_model_config(x);
      known = !std::filesystem::exists(x);  // a built-in model's name, not a config file
    } catch (const Error&) {
    }
    if (!known) throw Error(fmt::format("--exclude {}: {} has no trees of that model", x, path));
    if (!quiet) std::cerr << fmt::format("irene: note: --exclude {}: {} has no trees of that model\n", x, path);
  }
  std::vector<Tree> kept;
  for (auto& t : all)
    if (std::find(exclude.begin(), exclude.end(), t.model_name) == exclude.end()) kept.push_back(std::move(t));
  UsablePolicy policy;
  policy.strict = strict;
  policy.source = path;
  policy.quiet = quiet;
  return keep_usable(std::move(kept), check_measured_root, policy);
}

std::string errors_text(const LevelErrors& e) {
  auto cell = [](double x) { return std::isfinite(x) ? fmt::format("{:.3f}%", x) : std::string("-"); };
  return fmt::format("ml {}  module {}  model {}", cell(e.ml), cell(e.module), cell(e.model));
}

int default_threads() { return static_cast<int>(std::max(1u, std::min(2u, std::thread::hardware_concurrency()))); }

// --target: none given keeps the predictor's; one given must be the predictor's.
void check_target(const Predictor& p, const std::string& wanted) {
  if (wanted.empty() || target_from_string(wanted) == p.target()) return;
  throw Error(fmt::format("--target {}: the predictor {} predicts {} ({}); train one with irene train --target {}",
                          wanted, p.path().empty() ? std::string("(in memory)") : p.path().string(),
                          to_string(p.target()), target_unit_words(p.target()), wanted));
}

CLI::Option* add_target_option(CLI::App* cmd, std::string& target, const std::string& what) {
  return cmd->add_option("--target", target, what)->check(CLI::IsMember({"energy", "time"}));
}

struct TrainArgs {
  std::string trees, out, config = "default", hardware, source, target;
  std::vector<std::string> sets, exclude;
  int threads = default_threads();
  bool strict = false;
};

void run_train(const TrainArgs& a) {
  const Config config = config_from_options(a.config, a.sets, a.target);
  const auto trees = read_measured_trees(a.trees, a.exclude, a.strict, false, config.target);
  Predictor::TrainOptions opt;
  opt.hardware = a.hardware;
  opt.source = a.source.empty() ? a.trees : a.source;
  opt.threads = a.threads;
  const auto start = std::chrono::steady_clock::now();
  const Predictor p = Predictor::train(trees, config, opt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  p.save(a.out);
  const auto& td = p.training_data();
  std::cerr << fmt::format("trained '{}' on {} trees of {} models in {:.2f} s\n", config.name,
                           td["trees"].get<long>(), td["models"].size(), seconds);
  if (!td["skipped_trees"].empty())
    std::cerr << fmt::format("skipped {} trees without a measured root: {}\n", td["skipped_trees"].size(),
                             fmt::join(td["skipped_trees"].get<std::vector<std::string>>(), ", "));
  std::cerr << fmt::format("target: {} ({})\nfeatures: {}\n", to_string(p.target()), target_unit_words(p.target()),
                           fmt::join(p.feature_names(), ", "));
  if (config.own_ops)
    std::cerr << fmt::format("own operations: {}\n",
                             p.model().own_names.empty()
                                 ? std::string("none of the configured own-operation features can be read from "
                                               "these trees (no own term)")
                                 : fmt::format("{}", fmt::join(p.model().own_names, ", ")));
  if (!p.dropped_features().empty())
    std::cerr << fmt::format("not used (absent from some node): {}\n", fmt::join(p.dropped_features(), ", "));
  std::cerr << fmt::format("hardware: {}\nwritten to {}\n", p.hardware(), a.out);
}

void register_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train an IrEne predictor on measured trees (JSONL) and write it as JSON");
  cmd->add_option("TREES", a->trees, "measured trees, IrEne JSONL (irene data import / irene collect)")->required();
  cmd->add_option("-o,--output", a->out, "predictor file to write (JSON)")->required();
  cmd->add_option("--config", a->config, "configuration: 'default', 'paper', or a JSON file (default: default)");
  cmd->add_option("--set", a->sets, "override one configuration key, e.g. --set epochs=20 (repeatable)");
  cmd->add_option("--hardware", a->hardware,
                  "what the measurements describe (default: from the trees' provenance, e.g. 'device_1 of the "
                  "published IrEne dataset')");
  cmd->add_option("--exclude", a->exclude, "leave this model's trees out (repeatable)");
  cmd->add_option("--source", a->source, "where the trees came from, recorded in the file (default: TREES)");
  cmd->add_option("--threads", a->threads, "threads for the cross-validation that sizes the intervals")
      ->check(CLI::Range(1, limits::kMaxThreads));
  cmd->add_flag("--strict", a->strict, "fail on a tree without a measured root instead of skipping it");
  add_target_option(cmd, a->target,
                    "what to predict: energy (joules per forward pass, the default) or time (seconds per forward "
                    "pass, the trees' times_mean; features derived from time are then not inputs)");
  cmd->callback([a] { run_train(*a); });
}

struct PredictArgs {
  std::string input, out = "-", predictor, format, batch, seq, prompt, generate, target;
  std::vector<std::string> sets;
  PassArgs pass;
  bool profile = false;  // measure resource features first (irene::measure, "run once" mode)
  bool strict = false;
  int depth = -1;
  std::string carbon;
};

// predict MODEL --prompt P --generate N: the energy of generating text.
void predict_generation_of(const PredictArgs& a, const Predictor& p) {
  if (a.prompt.empty() || a.generate.empty())
    throw Error("predict: --prompt P and --generate N go together (P prompt tokens, N generated tokens)");
  if (!a.seq.empty()) throw Error("predict: --seq does not apply with --generate (the prompt is --prompt)");
  if (!a.pass.phase.empty() || !a.pass.past.empty() || !a.pass.head.empty())
    throw Error("predict: --phase, --past and --head do not apply with --generate (it predicts the prefill and "
                "every decode step)");
  if (a.profile) throw Error("predict --profile measures one tree: it does not apply with --generate");
  if (a.format == "jsonl")
    throw Error("predict --generate writes text, json or csv (one row: the generation's totals), not jsonl");
  p.require_energy("predict --generate");
  explain::GenerationRequest req;
  req.batch = a.batch.empty() ? 1 : parse_positive_int(a.batch, "--batch");
  req.prompt = parse_positive_int(a.prompt, "--prompt");
  req.generate = parse_positive_int(a.generate, "--generate");
  req.pass = build_options(a.pass);
  explain::Generation g = explain::predict_generation(explain::load_model(a.input, a.sets), req, p);
  g.carbon_g_per_kwh = parse_carbon_intensity(a.carbon);
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "json") explain::write_json(os, g);
    else if (a.format == "csv") explain::write_generation_csv(os, {explain::generation_point(g)}, g.carbon_g_per_kwh);
    else explain::write_text(os, g);
  });
}

// predict MODEL [--batch B --seq S ...]: one tree built from the configuration.
void predict_model(const PredictArgs& a, const Predictor& p, const explain::PredictionView& view) {
  const BuildOptions pass = build_options(a.pass);
  const int batch = parse_positive_int(a.batch.empty() ? std::to_string(kDefaultBatch) : a.batch, "--batch");
  const int seq = pass_seq(a.seq, pass);
  if (p.needs_resource_features() && !a.profile) {
    std::vector<std::string> resources;
    for (const auto& f : p.feature_names())
      if (is_resource_feature(f)) resources.push_back(f);
    throw Error(fmt::format(
        "the predictor {} reads measured resource features ({}): it cannot predict a tree built from a "
        "configuration alone; add --profile to measure them here, or use a model-spec predictor (the "
        "default one, or train with --set feature_sets=model_specs)",
        p.path().string(), fmt::join(resources, ", ")));
  }
  const ModelConfig config = explain::load_model(a.input, a.sets);
  Tree tree = build_tree(config, batch, seq, pass);
  if (a.profile) {
    // The paper's "run once" mode, in irene-measure (main.cpp hands --profile to it).
    if (!profile_hook()) throw Error("predict --profile needs irene-measure (libtorch)");
    profile_hook()(tree, p);
  }
  p.predict(tree);
  if (!a.profile) explain::hold_batch_envelope(tree, config, pass, p);
  explain::stamp_prediction(tree, p);
  const std::string format = a.format.empty() ? "text" : a.format;
  write_output(a.out, [&](std::ostream& os) {
    if (format == "text") explain::write_prediction_text(os, tree, p, view);
    else if (format == "json") os << explain::prediction_json(tree).dump(1) << '\n';
    else if (format == "csv") explain::write_records_csv(os, {tree});
    else write_tree_jsonl(os, tree);
  });
}

// predict TREES.jsonl: every tree of the file, streamed.
void predict_file(const PredictArgs& a, const Predictor& p, const explain::PredictionView& view) {
  const std::string format = a.format.empty() ? "jsonl" : a.format;
  JsonlReader reader(a.input);
  long count = 0, extrapolated = 0;
  UsablePolicy policy;
  policy.strict = a.strict;
  policy.source = a.input;
  std::vector<SkippedTree> skipped;
  write_output(a.out, [&](std::ostream& os) {
    Tree t;
    json array = json::array();
    if (format == "csv") explain::write_records_csv_header(os);
    while (reader.next(t)) {
      retarget(t, p.target());  // a time predictor's "measured" column: times_mean
      if (!usable_or_skip(t, [&](const Tree& tree) { return p.cannot_predict(tree); }, policy, &skipped)) continue;
      try {
        p.predict(t);
      } catch (const Error& e) {
        throw Error(fmt::format("{}:{}: {}", reader.path().string(), reader.line(), e.what()));
      }
      explain::stamp_prediction(t, p);
      ++count;
      if (t.provenance.count("out_of_range")) ++extrapolated;
      if (format == "jsonl") write_tree_jsonl(os, t);
      else if (format == "json") array.push_back(explain::prediction_json(t));
      else if (format == "csv") explain::write_records_csv_rows(os, t);
      else explain::write_prediction_text(os, t, p, view), os << '\n';
    }
    if (count == 0 && !skipped.empty())
      throw file_error(a.input, 0, fmt::format("no tree could be predicted ({}: {})", skipped[0].key, skipped[0].reason));
    if (count == 0) throw file_error(a.input, 0, "holds no trees");
    if (format == "json") os << array.dump(1) << '\n';
  });
  std::cerr << fmt::format("predicted {} trees for {}{}\n", count, p.hardware(),
                           skipped.empty() ? "" : fmt::format(" ({} skipped)", skipped.size()));
  if (extrapolated > 0)
    std::cerr << fmt::format("{} of them leave the range of the predictor's training data somewhere (intervals "
                             "widened; each such tree's provenance \"out_of_range\" and nodes' \"out_of_range\" "
                             "say where)\n",
                             extrapolated);
}

void run_predict(const PredictArgs& a) {
  const Predictor p = a.predictor.empty() ? Predictor::load_default() : Predictor::load(a.predictor);
  check_target(p, a.target);
  explain::PredictionView view;
  view.depth = a.depth;
  view.carbon_g_per_kwh = parse_carbon_intensity(a.carbon);
  // INPUT is a model (built-in name or config .json) or a trees JSONL file. A model without
  // --batch/--seq is built for the defaults, batch 8 and seq 128.
  const auto names = builtin_model_names();
  const bool builtin = std::find(names.begin(), names.end(), a.input) != names.end();
  const bool config_file = a.input.size() > 5 && a.input.ends_with(".json");
  const bool generation = !a.prompt.empty() || !a.generate.empty();
  const bool model_mode =
      builtin || config_file || !a.batch.empty() || !a.seq.empty() || !a.sets.empty() || generation;
  if (a.profile && !model_mode)
    throw Error("predict --profile needs MODEL with --batch and --seq (trees from a file are already measured)");
  if (!model_mode && any_pass_option(a.pass))
    throw Error("--phase, --past, --dtype, --attention, --head and --allow-long build a model's tree: they do not "
                "apply to a trees file");
  if (!model_mode && a.input != "-" && !std::filesystem::exists(a.input))
    throw Error(fmt::format("{}: no such trees file, and not a built-in model ({})", a.input, fmt::join(names, ", ")));
  if (generation) predict_generation_of(a, p);
  else if (model_mode) predict_model(a, p, view);
  else predict_file(a, p, view);
}

void register_predict_command(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand(
      "predict",
      "Predict the energy of every node: of the trees of a JSONL file, or of MODEL built for --batch and --seq");
  cmd->add_option("INPUT", a->input,
                  "trees (IrEne JSONL; - = standard input), or a model: built-in name, config.json or Hugging Face id")
      ->required();
  cmd->add_option("--predictor", a->predictor,
                  "predictor file (default: the shipped device_1 model-spec predictor, or $IRENE_PREDICTOR)");
  cmd->add_option("--batch", a->batch, "batch size (builds MODEL's tree; default 8)");
  cmd->add_option("--seq", a->seq, "sequence length in tokens (builds MODEL's tree; default 128)");
  cmd->add_option("--set", a->sets, "override a model config size, e.g. --set num_layers=6 (repeatable)");
  cmd->add_option("--prompt", a->prompt,
                  "with --generate: tokens of each prompt (the prefill); predicts the energy of generating text");
  cmd->add_option("--generate", a->generate,
                  "new tokens per sequence: predicts the prefill of --prompt tokens and one decode step per token "
                  "(past = prompt ... prompt + generate - 1): prefill, decode, total and per-token joules, every "
                  "step, and where the energy goes");
  add_pass_options(cmd, a->pass);
  cmd->add_option("--format", a->format,
                  "text | jsonl | json | csv (one row per node) (default: text for MODEL, jsonl for trees)")
      ->check(CLI::IsMember({"text", "jsonl", "json", "csv"}));
  cmd->add_option("-o,--output", a->out, "output file ('-' = standard output, the default)");
  cmd->add_flag("--profile", a->profile,
                "with MODEL: first run every node once on this machine (libtorch, no energy) to measure the "
                "resource features a predictor trained on 'irene collect' data reads, then predict");
  cmd->add_flag("--strict", a->strict, "fail on a tree of the file the predictor cannot predict instead of skipping it");
  cmd->add_option("--depth", a->depth, "text: show nodes down to this depth (default -1: all)");
  cmd->add_option("--carbon-intensity", a->carbon,
                  "text: grams CO2e per kWh of the electricity (e.g. 400), to add grams CO2e");
  add_target_option(cmd, a->target,
                    "energy or time: the predictor must predict this (default: whatever it predicts; a time "
                    "predictor's outputs are seconds per forward pass)");
  cmd->callback([a] { run_predict(*a); });
}

struct EvaluateArgs {
  std::string gold, pred, format = "text", target;
  bool strict = false, by_kind = false;
};

void run_evaluate(const EvaluateArgs& a) {
  const Target target = a.target.empty() ? Target::energy : target_from_string(a.target);
  auto gold = read_jsonl(a.gold);
  retarget(gold, target);
  const auto pred = read_jsonl(a.pred);
  for (const auto& t : pred)
    if (tree_target(t) != target)
      throw file_error(a.pred, 0,
                       fmt::format("tree {} was predicted for {} (provenance \"target\"), not {}{}", t.key(),
                                   to_string(tree_target(t)), to_string(target),
                                   target == Target::energy ? "; add --target time" : ""));
  UsablePolicy policy;
  policy.strict = a.strict;
  policy.source = a.gold;
  const auto e = evaluate_trees(gold, pred, a.gold, a.pred, &policy);
  std::optional<explain::SplitComparison> splits;
  if (a.by_kind) splits = explain::compare_kind_splits(gold, pred, a.gold, a.pred);
  if (a.format == "json") {
    json j = errors_to_json(e);
    j["nodes"] = {{"ml", e.ml_nodes}, {"module", e.module_nodes}, {"model", e.model_nodes}};
    j["target"] = std::string(to_string(target));
    j["unit"] = std::string(target_unit(target)) + " per forward pass";
    if (splits) j["by_kind"] = explain::splits_json(*splits);
    std::cout << j.dump(1) << '\n';
  } else {
    std::cout << fmt::format("target: {} ({})\n% error (mean over nodes): {}\nnodes: ml {}  module {}  model {}\n",
                             to_string(target), target_unit_words(target), errors_text(e), e.ml_nodes,
                             e.module_nodes, e.model_nodes);
    if (splits) std::cout << '\n' << explain::splits_text(*splits);
  }
}

void register_evaluate_command(CLI::App& app) {
  auto a = std::make_shared<EvaluateArgs>();
  auto* cmd = app.add_subcommand(
      "evaluate", "Mean absolute percentage error per level (ml, module, model) of predicted trees vs measured ones");
  cmd->add_option("GOLD", a->gold, "measured trees (JSONL)")->required();
  cmd->add_option("PRED", a->pred, "predicted trees (JSONL, from irene predict)")->required();
  cmd->add_option("--format", a->format, "text | json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_flag("--strict", a->strict, "fail on a measured tree without a prediction instead of skipping it");
  cmd->add_flag("--by-kind", a->by_kind,
                "also compare how each tree's energy splits across module kinds (attention, feed-forward, "
                "embeddings, norm, LM head, other): measured vs predicted shares per tree, per phase and overall");
  add_target_option(cmd, a->target,
                    "energy (default) or time: GOLD's measured energy, or its times_mean; PRED must have been "
                    "predicted for the same target");
  cmd->callback([a] { run_evaluate(*a); });
}

struct CrossvalArgs {
  std::string trees, config = "default", format = "text", out = "-", predictions, target, hardware;
  std::vector<std::string> sets, exclude;
  int threads = default_threads();
  std::string intervals = "nested";
  bool no_baselines = false, quiet = false, strict = false;
};

void run_crossval(const CrossvalArgs& a) {
  if (serving::is_serving_csv(a.trees)) {  // a table of measured serving runs (serving/crossval.hpp)
    if (a.hardware.empty()) throw Error(fmt::format("{}: a serving table needs --hardware NAME (H100, B200, ...)", a.trees));
    serving::ServingCrossvalOptions opt;
    opt.threads = a.threads;
    if (!a.quiet) opt.progress = [](const std::string& line) { std::cerr << line << std::endl; };
    const json report = serving::crossval_serving_file(a.trees, a.hardware, opt);
    write_output(a.out, [&](std::ostream& os) {
      os << (a.format == "json" ? report.dump(1) + "\n" : serving::crossval_serving_text(report));
    });
    return;
  }
  if (!a.hardware.empty()) throw Error("--hardware applies to a serving table (a CSV of measured serving runs)");
  const Config config = config_from_options(a.config, a.sets, a.target);
  const auto trees = read_measured_trees(a.trees, a.exclude, a.strict, a.quiet, config.target);
  std::vector<const Tree*> ptrs;
  for (const auto& t : trees) ptrs.push_back(&t);
  if (ptrs.empty())
    throw Error(fmt::format("{}: no tree has a measured root {}", a.trees,
                            config.target == Target::time ? "time (times_mean)" : "energy"));
  std::vector<std::string> dropped;
  const auto wanted =
      features_for_target(feature_names_of_sets(config.feature_sets, config.cache_knees_mib), config.target);
  const auto features = available_features(ptrs, wanted, &dropped);
  if (features.empty()) throw Error("none of the configured features is present on every node");
  if (!dropped.empty() && !a.quiet)
    std::cerr << fmt::format("features absent from some node, not used: {}\n", fmt::join(dropped, ", "));
  const FlatTrees data = flatten(ptrs, features, own_names_for(config, features));
  CrossvalOptions opt;
  opt.threads = a.threads;
  opt.baselines = !a.no_baselines;
  opt.intervals = a.intervals == "none"       ? CrossvalOptions::Intervals::none
                  : a.intervals == "crossfit" ? CrossvalOptions::Intervals::crossfit
                                               : CrossvalOptions::Intervals::nested;
  if (!a.quiet) opt.progress = [](const std::string& line) { std::cerr << line << std::endl; };
  CrossvalReport report;
  try {
    report = crossval(data, config, opt);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find("was never seen in training") == std::string::npos) throw;
    throw Error(what + "; a model with primitives of its own cannot be left out: exclude it with --exclude MODEL");
  }
  if (!a.predictions.empty()) {
    write_output(a.predictions, [&](std::ostream& os) {
      for (int t = 0; t < data.trees(); ++t) {
        Tree tree = *ptrs[t];
        store_predictions(tree, data, t, report);
        tree.provenance["predicted_by"] =
            fmt::format("irene crossval, configuration '{}', fold leaving out {}", config.name, tree.model_name);
        write_tree_jsonl(os, tree);
      }
    });
  }
  const std::vector<BatchCurve> curves = batch_curves(ptrs, data, report);
  write_output(a.out, [&](std::ostream& os) {
    if (a.format == "json") {
      json j = crossval_to_json(report);
      j["target"] = std::string(to_string(config.target));
      j["unit"] = std::string(target_unit(config.target)) + " per forward pass";
      j["batch_curves"] = batch_curves_to_json(curves);
      os << j.dump(1) << '\n';
    } else {
      os << fmt::format("target: {} ({})\n", to_string(config.target), target_unit_words(config.target))
         << crossval_to_text(report) << batch_curves_to_text(curves);
    }
  });
}

void register_crossval_command(CLI::App& app) {
  auto a = std::make_shared<CrossvalArgs>();
  auto* cmd = app.add_subcommand("crossval",
                                 "Leave-one-model-out cross-validation: % error per level per fold and overall, "
                                 "with baselines");
  cmd->add_option("TREES", a->trees,
                  "measured trees (JSONL), or a table of measured serving runs (CSV, e.g. "
                  "../shared/llm-energy/mlenergy-v3-llm.csv; with --hardware)")
      ->required();
  cmd->add_option("--hardware", a->hardware,
                  "with a serving table: the GPU to cross-validate on, a built-in profile (" +
                      hardware::builtin_names() + ") or a JSON file");
  cmd->add_option("--config", a->config, "configuration: 'default', 'paper', or a JSON file (default: default)");
  cmd->add_option("--set", a->sets, "override one configuration key, e.g. --set epochs=20 (repeatable)");
  cmd->add_option("--exclude", a->exclude,
                  "leave this model out entirely (repeatable), e.g. --exclude sshleifer/tiny-ctrl for the six "
                  "models of the paper");
  cmd->add_option("--format", a->format, "text | json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--threads", a->threads, "folds run in parallel on this many threads (results do not change)")
      ->check(CLI::Range(1, limits::kMaxThreads));
  cmd->add_flag("--no-baselines", a->no_baselines, "skip the baselines");
  cmd->add_option("--intervals", a->intervals,
                  "how each fold's intervals are calibrated for their coverage: nested (on the fold's training "
                  "models, as irene train does; one extra fit per pair of models), crossfit (on the other folds' "
                  "held-out predictions; no extra fit) or none (default: nested)")
      ->check(CLI::IsMember({"nested", "crossfit", "none"}));
  cmd->add_flag("-q,--quiet", a->quiet, "no progress lines on standard error");
  cmd->add_flag("--strict", a->strict, "fail on a tree without a measured root instead of skipping it");
  cmd->add_option("-o,--output", a->out, "output file ('-' = standard output, the default)");
  cmd->add_option("--predictions", a->predictions,
                  "also write the held-out predictions of every fold as one JSONL of trees (measured and "
                  "predicted energy on every node)");
  add_target_option(cmd, a->target,
                    "what to predict: energy (joules per forward pass, the default) or time (seconds per forward "
                    "pass, the trees' times_mean; features derived from time are then not inputs)");
  cmd->callback([a] { run_crossval(*a); });
}

}  // namespace

void register_predict(CLI::App& app) {
  register_train_command(app);
  register_predict_command(app);
  register_evaluate_command(app);
  register_crossval_command(app);
}

}  // namespace irene::cli
