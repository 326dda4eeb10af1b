#include "irene/explain/source.hpp"

#include <functional>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

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

ModelConfig model_config(const Source& s) {
  if (!s.config) return load_model(s.what, s.overrides);
  ModelConfig c = parse_model_config(s.config->dump(), "config", s.what);
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& kv : s.overrides) overrides.push_back(parse_config_override(kv));
  if (!overrides.empty()) set_config_values(c, overrides);
  return c;
}

std::optional<double> parse_carbon_intensity(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double g = std::strtod(text.c_str(), &end);
  if (!end || *end != '\0' || !std::isfinite(g) || g < 0 || g > limits::kMaxCarbonGPerKWh)
    throw Error(fmt::format("--carbon-intensity must be grams CO2e per kWh, a number in 0..{}, got '{}'",
                            limits::kMaxCarbonGPerKWh, text));
  return g;
}

namespace {

template <class T>
std::vector<Option<T>> joined(std::vector<Option<T>> a, const std::vector<Option<T>>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// --carbon-intensity, setting `field`; `adds` says what it adds to the command's figures.
template <class T>
Option<T> carbon_option(const std::string& adds, std::function<std::string&(T&)> field) {
  return text_option<T>("carbon_intensity", "--carbon-intensity",
                        "grams CO2e per kWh of the electricity (e.g. 400): adds " + adds, std::move(field));
}

constexpr const char* kSetHelp = "override a configuration value, KEY=VALUE (repeatable)";
constexpr const char* kPredictorHelp = "predictor file (default: the shipped device_1 predictor)";
constexpr const char* kStrictHelp = "with a trees file: fail on a tree that cannot be used instead of skipping it";
constexpr const char* kGenerateHelp =
    "new tokens per sequence: the energy of generating text (prefill + one decode step per token); --batch "
    "defaults to 1";

}  // namespace

namespace detail {

std::string option_text(const nlohmann::json& v, const std::string& key, const std::string& what) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
  if (v.is_number()) return fmt::format("{}", v.get<double>());
  const auto scalar = [](const nlohmann::json& x) { return x.is_string() || x.is_number(); };
  if (v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), scalar)) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + option_text(x, key, what);
    return out;
  }
  if (v.is_object() && !v.empty() && std::all_of(v.begin(), v.end(), [](const nlohmann::json& x) { return x.is_number(); })) {
    std::string out;  // {"100": 3, "400": 1}: a distribution of lengths (length to weight), "100:3,400:1"
    for (const auto& [k, x] : v.items()) out += (out.empty() ? "" : ",") + k + ":" + option_text(x, key, what);
    return out;
  }
  throw Error(fmt::format("{}: {} must be a string, a number, a list of them or an object of numbers, got {}", what, key,
                          v.dump().substr(0, 40)));
}

bool option_flag(const nlohmann::json& v, const std::string& key, const std::string& what) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string() || v.is_number_integer()) {
    const std::string s = option_text(v, key, what);
    if (s == "1" || s == "true") return true;
    if (s == "0" || s == "false") return false;
  }
  throw Error(fmt::format("{}: {} must be true or false, got {}", what, key, v.dump().substr(0, 40)));
}

}  // namespace detail

const std::vector<Option<PassText>>& pass_options() {
  using P = PassText;
  static const std::vector<Option<P>> options = [] {
    std::vector<Option<P>> o;
    o.push_back(text_option<P>("phase", "--phase",
                               "prefill (default: the full forward of --seq tokens) or decode (one generation step: "
                               "one new token per sequence attending to --past cached positions plus itself)",
                               [](P& p) -> std::string& { return p.phase; }));
    // (with --phase decode, --past takes ranges where --seq does; the help stays one line)
    auto past = text_option<P>("past", "--past", "with --phase decode: cached positions (the key/value cache length)",
                               [](P& p) -> std::string& { return p.past; });
    past.ranges = true;
    o.push_back(past);
    o.push_back(text_option<P>("dtype", "--dtype",
                               "float32 (default, as the dataset was measured), float16 or bfloat16: bytes of weights, "
                               "activations and the cache (a config's torch_dtype is reported, not applied)",
                               [](P& p) -> std::string& { return p.dtype; }));
    o.push_back(text_option<P>(
        "weights", "--weights",
        "the weights' format: fp8 (e4m3 + float32 block scales), mxfp4, int8 or int4 (GPTQ/AWQ groups) for the "
        "Linear weights of the layers, same (= --dtype); default: the config's quantization_config, else --dtype. "
        "Bytes include the scales; FLOPs unchanged",
        [](P& p) -> std::string& { return p.weights; }));
    o.push_back(text_option<P>("kv_cache_dtype", "--kv-cache-dtype",
                               "the key/value cache's element type: fp8, bfloat16, float16 or float32; default --dtype. "
                               "A decode step's cache reads and writes and a prefill's store of its keys and values "
                               "are counted in it",
                               [](P& p) -> std::string& { return p.kv_cache_dtype; }));
    o.push_back(text_option<P>(
        "attention", "--attention",
        "eager (default: MatMul, Softmax, MatMul) or sdpa (one fused ScaledDotProductAttention; LLM families)",
        [](P& p) -> std::string& { return p.attention; }));
    o.push_back(text_option<P>("head", "--head",
                               "root class: base (BertModel, GPT2Model, LlamaModel ...) or lm (GPT2LMHeadModel, "
                               "LlamaForCausalLM ...); default: base for the dataset's models, lm for the LLM families",
                               [](P& p) -> std::string& { return p.head; }));
    o.push_back(flag_option<P>("allow_long", "--allow-long",
                               "build past + seq beyond max_position_embeddings (rotary position models only)",
                               [](P& p) -> bool& { return p.allow_long; }));
    return o;
  }();
  return options;
}

const std::vector<Option<Source>>& source_options() {
  using S = Source;
  static const std::vector<Option<S>> options = [] {
    std::vector<Option<S>> o;
    o.push_back(text_option<S>("batch", "--batch,-b", "batch size (default 8)", [](S& s) -> std::string& { return s.batch; },
                               "batch size: N, START:STOP:STEP or a,b,c (default 8)"));
    o.push_back(text_option<S>("seq", "--seq,-s", "sequence length (default 128)",
                               [](S& s) -> std::string& { return s.seq; },
                               "sequence length: N, START:STOP:STEP or a,b,c (default 128)"));
    o.push_back(list_option<S>("overrides", {"set"}, "--set", kSetHelp,
                               [](S& s) -> std::vector<std::string>& { return s.overrides; }));
    o.push_back(text_option<S>("predictor", "--predictor,-p", kPredictorHelp,
                               [](S& s) -> std::string& { return s.predictor; }));
    o.push_back(flag_option<S>("strict", "--strict", kStrictHelp, [](S& s) -> bool& { return s.strict; }));
    o = joined(o, lift<S, PassText>(pass_options(), [](S& s) -> PassText& { return s.pass; }));
    o.push_back(text_option<S>("prompt", "--prompt", "with --generate: prompt tokens",
                               [](S& s) -> std::string& { return s.prompt; },
                               "with --generate: prompt tokens (N, START:STOP:STEP or a,b,c)"));
    o.push_back(text_option<S>("generate", "--generate", kGenerateHelp, [](S& s) -> std::string& { return s.generate; },
                               std::string(kGenerateHelp) + " (N, START:STOP:STEP or a,b,c)"));
    return o;
  }();
  return options;
}

const std::vector<Option<ExplainRequest>>& explain_options() {
  using E = ExplainRequest;
  static const std::vector<Option<E>> options = [] {
    std::vector<Option<E>> o;
    Option<E> top;
    top.keyword = "top";
    top.flags = "--top";
    top.help = "hotspots to list";
    top.kind = Option<E>::Kind::integer;
    top.integer = [](E& e) -> int& { return e.top; };
    top.min = 0;
    top.max = limits::kMaxTop;
    top.capture_default = true;
    o.push_back(top);
    o.push_back(carbon_option<E>("grams CO2e to the figures", [](E& e) -> std::string& { return e.carbon_intensity; }));
    return o;
  }();
  return options;
}

const std::vector<Option<SweepRequest>>& sweep_options() {
  using W = SweepRequest;
  static const std::vector<Option<W>> options = [] {
    auto o = lift<W, Source>(source_options(), [](W& w) -> Source& { return w.source; });
    o.push_back(carbon_option<W>("grams CO2e to every point (co2e_g; per_token_co2e_g of a generation) and to the "
                                 "report's cards",
                                 [](W& w) -> std::string& { return w.carbon_intensity; }));
    return o;
  }();
  return options;
}

Source side_b(const CompareRequest& r) {
  Source b = r.a;
  if (r.config_b) {
    b.what = r.b;
    b.config = r.config_b;
  } else if (!r.b.empty()) {
    b.what = r.b;
    b.config.reset();
  }
  b.overrides = r.set_b;
  if (!r.batch_b.empty()) b.batch = r.batch_b;
  if (!r.seq_b.empty()) b.seq = r.seq_b;
  if (!r.predictor_b.empty()) b.predictor = r.predictor_b;
  if (!r.past_b.empty()) {
    if (r.a.pass.phase != kDecode) throw Error("--past-b needs --phase decode");
    b.pass.past = r.past_b;
  }
  for (const auto& [value, field] : {std::pair{&r.dtype_b, &b.pass.dtype}, std::pair{&r.weights_b, &b.pass.weights},
                                     std::pair{&r.kv_cache_dtype_b, &b.pass.kv_cache_dtype},
                                     std::pair{&r.attention_b, &b.pass.attention}})
    if (!value->empty()) *field = *value;
  return b;
}

const std::vector<Option<CompareRequest>>& compare_options() {
  using C = CompareRequest;
  static const std::vector<Option<C>> options = [] {
    std::vector<Option<C>> o;
    o.push_back(text_option<C>("batch", "--batch,-b", "batch size of a (and of b unless --batch-b)",
                               [](C& c) -> std::string& { return c.a.batch; }));
    o.push_back(text_option<C>("seq", "--seq,-s", "sequence length of a (and of b unless --seq-b)",
                               [](C& c) -> std::string& { return c.a.seq; }));
    o.push_back(text_option<C>("batch_b", "--batch-b", "batch size of b", [](C& c) -> std::string& { return c.batch_b; }));
    o.push_back(text_option<C>("seq_b", "--seq-b", "sequence length of b", [](C& c) -> std::string& { return c.seq_b; }));
    o.push_back(list_option<C>("overrides_b", {"set"}, "--set", "override in b, KEY=VALUE (repeatable)",
                               [](C& c) -> std::vector<std::string>& { return c.set_b; }));
    o.push_back(list_option<C>("overrides_a", {"set_a"}, "--set-a", "override in a, KEY=VALUE (repeatable)",
                               [](C& c) -> std::vector<std::string>& { return c.a.overrides; }));
    o.push_back(text_option<C>("predictor", "--predictor,-p", "predictor file (default: the shipped one)",
                               [](C& c) -> std::string& { return c.a.predictor; }));
    o.push_back(flag_option<C>("strict", "--strict", kStrictHelp, [](C& c) -> bool& { return c.a.strict; }));
    o = joined(o, lift<C, PassText>(pass_options(), [](C& c) -> PassText& { return c.a.pass; }));
    o.push_back(text_option<C>("past_b", "--past-b", "with --phase decode: the cached positions of b (default: --past)",
                               [](C& c) -> std::string& { return c.past_b; }));
    o.push_back(text_option<C>("dtype_b", "--dtype-b", "the dtype of b (default: --dtype)",
                               [](C& c) -> std::string& { return c.dtype_b; }));
    o.push_back(text_option<C>("weights_b", "--weights-b", "the weights' format of b (default: --weights)",
                               [](C& c) -> std::string& { return c.weights_b; }));
    o.push_back(text_option<C>("kv_cache_dtype_b", "--kv-cache-dtype-b",
                               "the key/value cache's dtype of b (default: --kv-cache-dtype)",
                               [](C& c) -> std::string& { return c.kv_cache_dtype_b; }));
    o.push_back(text_option<C>("attention_b", "--attention-b", "the attention of b, eager or sdpa (default: --attention)",
                               [](C& c) -> std::string& { return c.attention_b; }));
    o.push_back(text_option<C>("predictor_b", "--predictor-b",
                               "the predictor of b, e.g. another machine's (default: --predictor): the same model on "
                               "two hardware",
                               [](C& c) -> std::string& { return c.predictor_b; }));
    o.push_back(text_option<C>("prompt", "--prompt", "with --generate: prompt tokens (both sides)",
                               [](C& c) -> std::string& { return c.a.prompt; }));
    o.push_back(text_option<C>("generate", "--generate",
                               "new tokens per sequence: compare the energy of generating text (prefill, decode, "
                               "total, per token, by module kind); --batch defaults to 1",
                               [](C& c) -> std::string& { return c.a.generate; }));
    o.push_back(carbon_option<C>("grams CO2e of a, b and b - a", [](C& c) -> std::string& { return c.carbon_intensity; }));
    return o;
  }();
  return options;
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
  if (!s.config && is_trees_file(s.what))
    throw Error("--prompt / --generate predict a model (a built-in name or config.json), not a trees file");
  if (s.prompt.empty() || s.generate.empty())
    throw Error("--prompt P and --generate N go together (P prompt tokens, N generated tokens)");
  if (!s.seq.empty()) throw Error("--seq does not apply with --generate (the prompt is --prompt)");
  if (!s.pass.phase.empty() || !s.pass.past.empty() || !s.pass.head.empty())
    throw Error("--phase, --past and --head do not apply with --generate (it predicts the prefill and every decode step)");
  GenerationGrid g;
  g.config = model_config(s);
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
  if (!s.config && is_trees_file(s.what)) {
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
  const ModelConfig config = model_config(s);
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
