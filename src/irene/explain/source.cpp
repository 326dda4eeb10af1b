#include "irene/explain/source.hpp"

#include <functional>

#include <fmt/format.h>

#include <algorithm>

#include "irene/core/error.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/core/limits.hpp"
#include "irene/core/usable.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/sweep.hpp"

namespace irene::explain {

bool any_pass_option(const PassText& a) {
  return !a.phase.empty() || !a.past.empty() || !a.dtype.empty() || !a.attention.empty() || !a.head.empty() ||
         a.allow_long || !a.weights.empty() || !a.kv_cache_dtype.empty();
}

BuildOptions build_options(const PassText& a) {
  return make_build_options(a.phase, a.past, a.dtype, a.attention, a.head, a.allow_long, a.weights, a.kv_cache_dtype);
}

std::shared_ptr<const Predictor> load_energy_predictor(const std::string& path) {
  auto p = std::make_shared<const Predictor>(path.empty() ? Predictor::load_default() : Predictor::load(path));
  p->require_energy("this command");
  return p;
}

namespace {

// The options of the pass, with --past's text left out (it may be a range); its values apart.
BuildOptions pass_of(const Source& s, bool allow_ranges, std::vector<int>* pasts) {
  PassText p = s.pass;
  if (!p.past.empty() && p.phase == kDecode) {
    const auto values = allow_ranges ? parse_range(p.past, "--past")
                                     : std::vector<int>{parse_positive_int(p.past, "--past")};
    if (pasts) *pasts = values;
    p.past = std::to_string(values.front());
  }
  return build_options(p);
}

}  // namespace

GenerationGrid generation_grid(const Source& s, bool allow_ranges) {
  if (is_trees_file(s.what))
    throw Error("--prompt / --generate predict a model (a built-in name or config.json), not a trees file");
  if (s.prompt.empty() || s.generate.empty())
    throw Error("--prompt P and --generate N go together (P prompt tokens, N generated tokens)");
  if (!s.seq.empty()) throw Error("--seq does not apply with --generate (the prompt is --prompt)");
  if (!s.pass.phase.empty() || !s.pass.past.empty() || !s.pass.head.empty())
    throw Error("--phase, --past and --head do not apply with --generate (it predicts the prefill and every decode step)");
  GenerationGrid g;
  g.config = load_model(s.what, s.overrides);
  const std::string batch = s.batch.empty() ? "1" : s.batch;
  if (allow_ranges) {
    g.batches = parse_range(batch, "--batch");
    g.prompts = parse_range(s.prompt, "--prompt");
    g.generates = parse_range(s.generate, "--generate");
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
    throw Error(fmt::format("{} points of {} layers x their generated tokens (and {} per point) = {:.0f} layer-steps is "
                            "more than the {} one command may take (about {:.0f} s of work); sweep fewer points or tokens",
                            total, g.config.num_layers, limits::kLayerStepsPerPoint, work, limits::kMaxLayerSteps,
                            work * limits::kSecondsPerLayerStep));
  return g;
}

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
                   const std::function<void(std::size_t)>& start, const std::function<void(Tree&&)>& each,
                   const std::function<void(std::size_t, std::size_t)>& progress) {
  if (is_trees_file(s.what)) {
    if (!s.overrides.empty()) throw Error("--set applies to a model, not to a trees file");
    if (any_pass_option(s.pass))
      throw Error("--phase, --past, --dtype, --attention, --head and --allow-long build a model's tree: they do not "
                  "apply to a trees file");
    std::vector<Tree> trees = read_jsonl(s.what);
    if (!s.batch.empty() || !s.seq.empty()) {
      const auto batches = s.batch.empty() ? std::vector<int>{} : parse_range(s.batch, "--batch");
      const auto seqs = s.seq.empty() ? std::vector<int>{} : parse_range(s.seq, "--seq");
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
      const auto p = load_energy_predictor(s.predictor);
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
  const ModelConfig config = load_model(s.what, s.overrides);
  std::vector<int> batches, seqs;
  if (allow_ranges) {
    batches = parse_range(batch, "--batch");
    seqs = parse_range(seq, "--seq");
  } else {
    batches = {parse_positive_int(batch, "--batch")};
    seqs = {parse_positive_int(seq, "--seq")};
  }
  if (decode && seqs != std::vector<int>{1})
    throw Error("--phase decode feeds one new token per sequence: --seq must be 1 or left out");
  if (pasts.empty()) pasts = {pass.past};
  const auto p = load_energy_predictor(s.predictor);
  hardware = p->hardware();
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
        if (progress) progress(done, total);
      }
}

std::vector<Tree> load_trees(const Source& s, bool allow_ranges, std::string& hardware) {
  std::vector<Tree> trees;
  for_each_tree(s, allow_ranges, hardware, [&](std::size_t n) { trees.reserve(n); },
                [&](Tree&& t) { trees.push_back(std::move(t)); });
  return trees;
}

}  // namespace irene::explain
