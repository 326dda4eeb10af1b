#include "irene/explain/generation.hpp"
#include "irene/explain/prediction.hpp"
#include "irene/explain/rests_on.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_map>

#include "irene/arch/family_table.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/sweep.hpp"
#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"
#include "irene/explain/units.hpp"
#include "irene/workload/steps.hpp"

namespace irene::explain {

namespace {

Energy with_ratio(double j, double lo, double hi) {
  Energy e;
  e.j = j;
  double a = j * lo, b = j * hi;
  if (a > b) std::swap(a, b);
  e.interval = Interval{std::min(a, j), std::max(b, j)};
  return e;
}

void add_energy(Energy& sum, const Energy& e) {
  sum.j += e.j;
  if (!e.interval) return;
  if (!sum.interval) sum.interval = Interval{0, 0};
  sum.interval->low_j += e.interval->low_j;
  sum.interval->high_j += e.interval->high_j;
}

// low / j and high / j of an energy (1, 1 without an interval or at 0 J).
std::pair<double, double> ratios(const Energy& e) {
  if (!e.interval || e.j == 0) return {1.0, 1.0};
  return {e.interval->low_j / e.j, e.interval->high_j / e.j};
}

void merge_stand_ins(std::vector<StandInGroup>& into, const std::vector<StandInGroup>& from) {
  for (const auto& g : from) {
    auto it = std::find_if(into.begin(), into.end(), [&](const StandInGroup& x) {
      return x.class_name == g.class_name && x.stand_in == g.stand_in;
    });
    if (it == into.end()) into.push_back(g);
  }
}

nlohmann::json energy_json(const Energy& e) {
  return {{"j", e.j},
          {"low_j", e.interval ? nlohmann::json(e.interval->low_j) : nlohmann::json(nullptr)},
          {"high_j", e.interval ? nlohmann::json(e.interval->high_j) : nlohmann::json(nullptr)}};
}

}  // namespace

Generation predict_generation(const ModelConfig& config, const GenerationRequest& r, const Predictor& predictor) {
  const FamilyInfo& family = family_of(config);
  if (!family.causal)
    throw Error(fmt::format("--generate: {} is an encoder ({}): it does not generate text (decoders: {})",
                            config.name, config.model_type,
                            family_list([](const FamilyInfo& f) { return f.kv_cache; })));
  if (r.batch < 1 || r.batch > limits::kMaxBatch)
    throw Error(fmt::format("--batch must be an integer in 1..{}, got {}", limits::kMaxBatch, r.batch));
  if (r.prompt < 1 || r.prompt > limits::kMaxSeq)
    throw Error(fmt::format("--prompt must be an integer in 1..{} (tokens of each prompt), got {}", limits::kMaxSeq,
                            r.prompt));
  if (r.generate < 1 || r.generate > kMaxGenerate)
    throw Error(fmt::format("--generate must be an integer in 1..{} (new tokens per sequence), got {}", kMaxGenerate,
                            r.generate));
  if (predictor.needs_resource_features())
    throw Error(fmt::format("predictor {} reads measured resource features, so it cannot predict a generation from a "
                            "configuration alone; use a model-spec predictor (the default)",
                            predictor.path().empty() ? std::string("(in memory)") : predictor.path().string()));
  const std::int64_t positions = static_cast<std::int64_t>(r.prompt) + r.generate;
  if (positions - 1 > limits::kMaxSeq)  // the last step attends to prompt + generate - 1 cached positions
    throw Error(fmt::format("--prompt {} + --generate {} = {} positions: the last step would attend to {} cached "
                            "positions, more than the {} irene predicts",
                            r.prompt, r.generate, positions, positions - 1, limits::kMaxSeq));
  if (const std::int64_t work = static_cast<std::int64_t>(config.num_layers) * r.generate;
      work > limits::kMaxLayerSteps)
    throw Error(fmt::format("{} layers x {} generated tokens = {} layer-steps is more than the {} one generation may "
                            "take (about {:.0f} s of work); generate fewer tokens",
                            config.num_layers, r.generate, work, limits::kMaxLayerSteps,
                            static_cast<double>(work) * limits::kSecondsPerLayerStep));
  if (positions > config.max_positions && !(r.pass.allow_long && family.rotary()))
    throw Error(fmt::format("prompt {} + generate {} = {} positions exceeds the {} positions of {} "
                            "(max_position_embeddings){}",
                            r.prompt, r.generate, positions, config.max_positions, config.name,
                            !family.rotary() ? " (a learned position table: --allow-long cannot help)"
                                : "; --allow-long predicts it anyway"));

  Generation g;
  g.model_name = config.name;
  g.batch = r.batch;
  g.prompt = r.prompt;
  g.generate = r.generate;
  g.dtype = r.pass.dtype;
  g.attention = r.pass.attention;
  g.hardware = predictor.hardware();

  // The prefill, as generate() runs it: the LM-head class, logits of the last position.
  BuildOptions pre = r.pass;
  pre.phase = kPrefill;
  pre.past = 0;
  pre.head = "lm";
  pre.last_token_logits = true;
  g.prefill_tree = build_tree(config, r.batch, r.prompt, pre);
  g.weights = g.prefill_tree.weights;
  g.kv_cache_dtype = g.prefill_tree.kv_cache_dtype;
  predictor.predict(g.prefill_tree);
  if (hold_batch_envelope(g.prefill_tree, config, pre, predictor))
    g.batch_held.push_back("prefill: " + g.prefill_tree.provenance.at("batch_held"));
  stamp_prediction(g.prefill_tree, predictor);
  const Explanation pe = explain_tree(g.prefill_tree);
  g.prefill = pe.total;

  // The steps (workload/steps.hpp), split by module kind.
  BuildOptions step = r.pass;
  step.phase = kDecode;
  step.head = "lm";
  step.last_token_logits = true;
  const int first = r.prompt, last = r.prompt + r.generate - 1;
  const auto group_of = [](const Node& n) { return static_cast<int>(module_kind(n.scope, n.class_name)); };
  workload::DecodeSteps steps =
      workload::predict_decode_steps(config, r.batch, step, first, last, predictor, group_of, kModuleKinds);
  // The batch envelope (predict/predictor.hpp) on the sum of the steps: when another batch's
  // energy per sequence is the answer, every step and group takes it, scaled alike.
  std::optional<int> held_at;  // the batch whose energy per sequence the steps take
  if (const auto range = predictor.training_batch_range()) {
    std::map<int, workload::DecodeSteps> at;
    const auto sum = [](const workload::DecodeSteps& d) {
      double j = 0;
      for (const auto& s : d.steps) j += s.j;
      return j;
    };
    const double own = sum(steps);
    const auto per_sequence = [&](int k) {
      if (k == r.batch) return own / k;
      auto it = at.find(k);
      if (it == at.end())
        it = at.emplace(k, workload::predict_decode_steps(config, k, step, first, last, predictor, group_of,
                                                         kModuleKinds))
                 .first;
      return sum(it->second) / k;
    };
    if (const auto k = batch_envelope(r.batch, *range, per_sequence)) {
      held_at = k;
      const workload::DecodeSteps& from = at.at(*k);
      const double scale = static_cast<double>(r.batch) / *k;
      for (std::size_t i = 0; i < steps.steps.size(); ++i) {
        steps.steps[i].j = from.steps.at(i).j * scale;
        steps.steps[i].raw_j = from.steps[i].raw_j ? std::optional<double>(*from.steps[i].raw_j * scale) : std::nullopt;
      }
      for (std::size_t i = 0; i < steps.by_group.size(); ++i) steps.by_group[i] = from.by_group.at(i) * scale;
      for (std::size_t i = 0; i < steps.by_node.size(); ++i) steps.by_node[i] = from.by_node.at(i) * scale;
      steps.held = from.held;
      g.batch_held.push_back("decode: " +
                             batch_hold_reason("steps", r.batch, *k, *range, own, sum(from) * scale));
    }
  }
  // The first and last steps' trees take the steps' batch, so they are the steps the table lists.
  const auto step_tree = [&](Tree t, int past) {
    predictor.predict(t);
    if (held_at) {
      step.past = past;
      Tree at = build_tree(config, *held_at, 1, step);
      predictor.predict(at);
      hold_at_batch(t, at, g.batch_held.back());
    }
    stamp_prediction(t, predictor);
    return t;
  };
  g.decode_by_node = std::move(steps.by_node);
  g.first_step = step_tree(std::move(steps.first_tree), first);
  step.past = last;
  g.last_step = step_tree(build_tree(config, r.batch, 1, step), last);
  const Explanation fe = explain_tree(g.first_step), le = explain_tree(g.last_step);
  const auto [f_lo, f_hi] = ratios(fe.total);
  const auto [l_lo, l_hi] = ratios(le.total);
  const double lo = std::min(f_lo, l_lo), hi = std::max(f_hi, l_hi);
  g.decode_low_ratio = lo;
  g.decode_high_ratio = hi;
  g.steps.reserve(r.generate);
  g.decode.j = 0;
  for (const auto& st : steps.steps) {
    if (!std::isfinite(st.j) || (st.raw_j && !std::isfinite(*st.raw_j)))
      throw Error(fmt::format("{}: the decode step at past {}: the predicted energy is not a finite number ({} J)",
                              config.name, st.past, st.raw_j ? *st.raw_j : st.j));
    GenerationStep s;
    s.past = st.past;
    s.raw_j = st.raw_j;
    s.energy = with_ratio(st.j, lo, hi);
    add_energy(g.decode, s.energy);
    g.steps.push_back(s);
  }
  g.held = steps.held;
  for (std::size_t k = 0; k < kModuleKinds; ++k) g.decode_by_kind[k] = steps.by_group[k];
  g.total = g.prefill;
  add_energy(g.total, g.decode);
  const double tokens = static_cast<double>(r.batch) * r.generate;
  g.per_token.j = g.decode.j / tokens;
  if (g.decode.interval) g.per_token.interval = Interval{g.decode.interval->low_j / tokens, g.decode.interval->high_j / tokens};

  // By module kind over the whole generation.
  for (std::size_t k = 0; k < kModuleKinds; ++k) {
    const GroupEnergy& p = pe.by_kind[k];
    g.prefill_by_kind[k] = p.attributed.j;
    const auto [a_lo, a_hi] = ratios(fe.by_kind[k].attributed);
    const auto [b_lo, b_hi] = ratios(le.by_kind[k].attributed);
    Energy d = with_ratio(g.decode_by_kind[k], std::min(a_lo, b_lo), std::max(a_hi, b_hi));
    GroupEnergy ge;
    ge.name = p.name;
    ge.count = p.count;
    ge.attributed = p.attributed;
    add_energy(ge.attributed, d);
    ge.share = g.total.j > 0 ? ge.attributed.j / g.total.j : 0.0;
    g.by_kind.push_back(ge);
  }
  g.stand_ins = pe.stand_ins;
  merge_stand_ins(g.stand_ins, fe.stand_ins);
  merge_stand_ins(g.stand_ins, le.stand_ins);

  // What a generation's figures rest on: its prefill and every step (tokens 1 .. prompt, context
  // prompt .. prompt + generate, both phases), with the node notes of the trees predicted.
  const auto generation_rests_on = [&](const Predictor& p, const Tree& prefill, std::initializer_list<const Tree*> steps) {
    Question q = question_of(prefill);
    q.tokens = {1, r.prompt};
    q.context = {r.prompt, r.prompt + r.generate};
    q.phases = {kPrefill, kDecode};
    nlohmann::json j = rests_on(q, p, prefill);
    for (const Tree* s : steps) merge_rests_on(j, rests_on_of(*s));
    return j;
  };

  if (const auto tp = Predictor::time_companion(predictor)) {
    GenerationTime t;
    t.predictor = tp->path().string();
    // The same prefill and last step, in seconds.
    Tree pt = g.prefill_tree, lt = g.last_step;
    for (Tree* x : {&pt, &lt}) {
      tp->predict(*x);
      stamp_prediction(*x, *tp);
    }
    t.prefill.j = *pt.root().predicted_energy_j;
    if (pt.root().predicted_interval) t.prefill.interval = Interval{pt.root().predicted_interval->low_j, pt.root().predicted_interval->high_j};
    const workload::DecodeSteps ts =
        workload::predict_decode_steps(config, r.batch, step, first, last, *tp, group_of, kModuleKinds);
    double decode_s = 0;
    for (const auto& s : ts.steps) decode_s += s.j;
    Energy last_step;
    last_step.j = *lt.root().predicted_energy_j;
    if (lt.root().predicted_interval) last_step.interval = lt.root().predicted_interval;
    const auto [t_lo, t_hi] = ratios(last_step);
    t.decode = with_ratio(decode_s, t_lo, t_hi);
    t.total = t.prefill;
    add_energy(t.total, t.decode);
    const double generated = static_cast<double>(r.batch) * r.generate;
    t.time_to_first_token_s = t.prefill.j;
    t.inter_token_latency_s = t.decode.j / r.generate;
    t.decode_tokens_per_s = t.decode.j > 0 ? generated / t.decode.j : 0;
    t.tokens_per_s = t.total.j > 0 ? generated / t.total.j : 0;
    t.mean_power_w = t.total.j > 0 ? g.total.j / t.total.j : 0;
    t.decode_power_w = t.decode.j > 0 ? g.decode.j / t.decode.j : 0;
    t.rests_on = generation_rests_on(*tp, pt, {&lt});
    g.time = std::move(t);
  }

  g.rests_on = generation_rests_on(predictor, g.prefill_tree, {&g.first_step, &g.last_step});
  if (g.held > 0) g.rests_on["held_steps"] = g.held;
  return g;
}

Tree whole_generation_tree(const Generation& g) {
  const Tree& pre = g.prefill_tree;
  const Tree& first = g.first_step;
  const Tree& last = g.last_step;
  if (pre.nodes.empty() || first.nodes.empty() || last.nodes.size() != first.nodes.size())
    throw Error("the whole generation: the generation holds no predicted trees");
  if (g.decode_by_node.size() != first.nodes.size())
    throw Error("internal: the whole generation: the decode steps by node do not match the step tree");
  // Each node's part of the prefill: explain_tree's attributed split (a leaf's, a parent's own
  // operations').
  ExplainOptions eo;
  eo.top = 0;
  const Explanation pe = explain_tree(pre, eo);
  // Plain copies: clang 14 cannot capture structured bindings in a lambda.
  const auto prefill_ratios = ratios(pe.total);
  const double p_lo = prefill_ratios.first, p_hi = prefill_ratios.second;
  const auto prefill_part = [&](int i) {
    const NodeExplanation& x = pe.nodes[i];
    if (pre.nodes[i].is_leaf()) return x.attributed.j;
    return x.own_operations ? x.own_operations->attributed.j : 0.0;
  };
  const auto part = [&](double prefill_j, double decode_j) {
    Energy e;
    e.j = prefill_j + decode_j;
    e.interval = Interval{prefill_j * p_lo + decode_j * g.decode_low_ratio, prefill_j * p_hi + decode_j * g.decode_high_ratio};
    e.interval->low_j = std::min(e.interval->low_j, e.j);
    e.interval->high_j = std::max(e.interval->high_j, e.j);
    return e;
  };

  Tree t;
  t.model_name = pre.model_name;
  t.batch_size = pre.batch_size;
  t.seq_len = pre.seq_len;
  t.phase = pre.phase;
  t.dtype = pre.dtype;
  t.attention = pre.attention;
  t.weights = pre.weights;
  t.kv_cache_dtype = pre.kv_cache_dtype;
  t.provenance = pre.provenance;
  t.provenance["rests_on"] = g.rests_on.dump();
  t.provenance.erase("batch_held");
  if (!g.batch_held.empty()) {
    std::string held;
    for (const auto& h : g.batch_held) held += (held.empty() ? "" : "; ") + h;
    t.provenance["batch_held"] = held;
  }
  std::vector<Energy> own;  // each merged node's own part of the whole generation
  const double steps = g.generate;
  // The prefill node `p` and the step node `d` with the same id (-1 where one has none), under
  // `parent` of the merged tree, in pre-order.
  std::function<void(int, int, int)> merge = [&](int p, int d, int parent) {
    Node n = p >= 0 ? pre.nodes[p] : first.nodes[d];
    n.children.clear();
    n.predicted_energy_j.reset();
    n.predicted_interval.reset();
    n.predicted_own_energy_j.reset();
    n.predicted_own_interval.reset();
    n.ground_truth_energy_j.reset();
    n.resources.clear();
    n.out_of_range.clear();
    const std::string id = n.id;
    n.flops_mflop = p >= 0 ? pre.nodes[p].flops_mflop : 0.0;
    n.mem_mib = p >= 0 ? pre.nodes[p].mem_mib : 0.0;
    if (d >= 0) {
      n.flops_mflop += steps * (first.nodes[d].flops_mflop + last.nodes[d].flops_mflop) / 2;
      n.mem_mib += steps * (first.nodes[d].mem_mib + last.nodes[d].mem_mib) / 2;
    }
    const int i = t.add_node(parent, std::move(n));
    t.nodes[i].id = id;
    own.push_back(part(p >= 0 ? prefill_part(p) : 0.0, d >= 0 ? g.decode_by_node[d] : 0.0));
    std::vector<int> step_children = d >= 0 ? first.nodes[d].children : std::vector<int>{};
    if (p >= 0)
      for (int c : pre.nodes[p].children) {
        auto it = std::find_if(step_children.begin(), step_children.end(),
                               [&](int k) { return first.nodes[k].id == pre.nodes[c].id; });
        int dc = -1;
        if (it != step_children.end()) {
          dc = *it;
          step_children.erase(it);
        }
        merge(c, dc, i);
      }
    for (int dc : step_children) merge(-1, dc, i);
  };
  if (first.nodes[0].id != pre.nodes[0].id)
    throw Error(fmt::format("internal: the whole generation: the prefill's root {} is not the steps' {}",
                            pre.nodes[0].id, first.nodes[0].id));
  merge(0, 0, -1);
  // A node's energy: its own part and every part below it (pre-order: children after parents).
  std::vector<Energy> whole = own;
  for (std::size_t i = t.nodes.size(); i-- > 1;) add_energy(whole[t.nodes[i].parent], whole[i]);
  for (std::size_t i = 0; i < t.nodes.size(); ++i) {
    Node& n = t.nodes[i];
    n.predicted_energy_j = whole[i].j;
    n.predicted_interval = whole[i].interval;
    if (!n.is_leaf()) {
      n.predicted_own_energy_j = own[i].j;
      n.predicted_own_interval = own[i].interval;
    }
  }
  return t;
}

Explanation explain_generation(const Generation& g, const ExplainOptions& options) {
  Explanation e = explain_tree(whole_generation_tree(g), options);
  e.phase = kWholeGeneration;
  e.past_len = 0;
  e.generate = g.generate;
  return e;
}

nlohmann::json generation_report_data(const Generation& g, const ReportOptions& options) {
  nlohmann::json data = report_data({g.prefill_tree, g.first_step, g.last_step}, options);
  ExplainOptions eo;
  eo.top = options.top;
  data["trees"].push_back(to_json(explain_generation(g, eo)));
  data["tree_points"].push_back(data["trees"].size() - 1);
  data["trees_total"] = data["trees"].size();
  data["generation"] = to_json(g);
  data["title"] = options.title.empty() ? fmt::format("irene energy report: {} generating text", g.model_name)
                                        : options.title;
  return data;
}

namespace {

nlohmann::json step_json(const GenerationStep& s) {
  nlohmann::json step = {
      {"past", s.past},
      {"energy_j", s.energy.j},
      {"low_j", s.energy.interval ? nlohmann::json(s.energy.interval->low_j) : nlohmann::json(nullptr)},
      {"high_j", s.energy.interval ? nlohmann::json(s.energy.interval->high_j) : nlohmann::json(nullptr)}};
  if (s.raw_j) step["raw_energy_j"] = *s.raw_j;
  return step;
}

nlohmann::json to_json(const Generation& g, bool with_steps) {
  nlohmann::json j;
  j["model_name"] = g.model_name;
  j["batch"] = g.batch;
  j["prompt"] = g.prompt;
  j["generate"] = g.generate;
  j["dtype"] = g.dtype;
  j["weights"] = g.weights.empty() ? g.dtype : g.weights;
  j["kv_cache_dtype"] = g.kv_cache_dtype.empty() ? g.dtype : g.kv_cache_dtype;
  j["attention"] = g.attention;
  j["hardware"] = g.hardware;
  j["rests_on"] = g.rests_on;
  if (g.time) {
    const GenerationTime& t = *g.time;
    auto seconds = [](const Energy& e) {
      return nlohmann::json{{"s", e.j},
                            {"low_s", e.interval ? nlohmann::json(e.interval->low_j) : nlohmann::json(nullptr)},
                            {"high_s", e.interval ? nlohmann::json(e.interval->high_j) : nlohmann::json(nullptr)}};
    };
    j["time"] = {{"predictor", t.predictor},
                 {"prefill_s", seconds(t.prefill)},
                 {"decode_s", seconds(t.decode)},
                 {"total_s", seconds(t.total)},
                 {"time_to_first_token_s", t.time_to_first_token_s},
                 {"inter_token_latency_s", t.inter_token_latency_s},
                 {"decode_tokens_per_s", t.decode_tokens_per_s},
                 {"tokens_per_s", t.tokens_per_s},
                 {"mean_power_w", t.mean_power_w},
                 {"decode_power_w", t.decode_power_w},
                 {"rests_on", t.rests_on}};
  } else {
    j["time"] = nullptr;
  }
  j["units"] = {{"energy", "joules for the whole generation (per_token_j: joules per generated token)"},
                {"share", "fraction of total_j"}};
  j["parameters"] = g.prefill_tree.nodes.empty() ? 0 : g.prefill_tree.root().num_parameters;
  j["prefill_j"] = energy_json(g.prefill);
  j["decode_j"] = energy_json(g.decode);
  j["total_j"] = energy_json(g.total);
  j["per_token_j"] = energy_json(g.per_token);
  auto& steps = j["steps"] = nlohmann::json::array();
  if (with_steps)
    for (const auto& s : g.steps) steps.push_back(step_json(s));
  j["held_steps"] = g.held;
  j["batch_held"] = g.batch_held;
  auto& kinds = j["by_kind"] = nlohmann::json::array();
  for (std::size_t k = 0; k < g.by_kind.size(); ++k)
    kinds.push_back({{"name", g.by_kind[k].name},
                     {"energy", energy_json(g.by_kind[k].attributed)},
                     {"share", g.by_kind[k].share},
                     {"prefill_j", g.prefill_by_kind[k]},
                     {"decode_j", g.decode_by_kind[k]}});
  auto& si = j["stand_ins"] = nlohmann::json::array();
  for (const auto& s : g.stand_ins)
    si.push_back({{"class_name", s.class_name}, {"stand_in", s.stand_in}, {"interval_widening", 2.0}});
  const Normalized total = normalize(g.total.j, 1, 0, g.carbon_g_per_kwh);
  const Normalized token = normalize(g.per_token.j, 1, 0, g.carbon_g_per_kwh);
  auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  j["normalized"] = {{"total_wh", total.wh},
                     {"per_token_wh", token.wh},
                     {"co2e_g", opt(total.co2e_g)},
                     {"per_token_co2e_g", opt(token.co2e_g)},
                     {"carbon_intensity_g_per_kwh", opt(g.carbon_g_per_kwh)}};
  return j;
}

}  // namespace

nlohmann::json to_json(const Generation& g) { return to_json(g, true); }

void write_json(std::ostream& out, const Generation& g) {
  // The document without its steps, then the steps spliced in one at a time where its empty
  // "steps" array is (a top-level key: the only one indented by one space).
  const std::string text = to_json(g, false).dump(1, ' ', false, nlohmann::json::error_handler_t::strict);
  const std::string empty = "\n \"steps\": []";
  const auto at = text.find(empty);
  if (at == std::string::npos) throw Error("write_json: no steps array in the generation");  // cannot happen
  out << std::string_view(text).substr(0, at) << "\n \"steps\": [";
  for (std::size_t i = 0; i < g.steps.size(); ++i) {
    std::string step = step_json(g.steps[i]).dump(1);
    for (std::size_t p = step.find('\n'); p != std::string::npos; p = step.find('\n', p + 3)) step.replace(p, 1, "\n  ");
    out << (i ? ",\n  " : "\n  ") << step;
  }
  out << (g.steps.empty() ? "]" : "\n ]") << std::string_view(text).substr(at + empty.size()) << '\n';
}

void write_text(std::ostream& out, const Generation& g, bool all_steps) {
  out << fmt::format("{}  batch {}  prompt {}  generate {}  {}{}: {} in total\n", g.model_name, g.batch, g.prompt,
                     g.generate, g.dtype,
                     (g.weights.empty() ? "" : "  weights " + g.weights) +
                         (g.kv_cache_dtype.empty() ? "" : "  kv-cache " + g.kv_cache_dtype) +
                         (g.attention != "eager" ? "  " + g.attention : ""),
                     format_energy(g.total));
  if (!g.hardware.empty()) out << "predicted for: " << g.hardware << '\n';
  if (const std::string line = rests_on_line(g.rests_on); !line.empty()) out << line << '\n';
  const double total = g.total.j;
  auto pct = [&](double x) { return total > 0 ? fmt::format("{:.1f}%", 100 * x / total) : std::string("-"); };
  out << fmt::format("  {:<30} {}  {}\n", fmt::format("prefill ({} tokens x {})", g.prompt, g.batch),
                     format_energy(g.prefill), pct(g.prefill.j));
  out << fmt::format("  {:<30} {}  {}\n", fmt::format("decode ({} steps)", g.generate), format_energy(g.decode),
                     pct(g.decode.j));
  out << fmt::format("  {:<30} {}  (decode / {} tokens)\n", "per generated token", format_energy(g.per_token),
                     static_cast<long long>(g.batch) * g.generate);
  {
    const Normalized total = normalize(g.total.j, 1, 0, g.carbon_g_per_kwh);
    const Normalized token = normalize(g.per_token.j, 1, 0, g.carbon_g_per_kwh);
    std::string line = fmt::format("{} in total, {} per generated token", format_si(total.wh, "Wh"), format_si(token.wh, "Wh"));
    if (total.co2e_g)
      line += fmt::format("; {} CO2e in total, {} per generated token at {:g} g/kWh", format_si(*total.co2e_g, "g"),
                          format_si(*token.co2e_g, "g"), *g.carbon_g_per_kwh);
    out << fmt::format("  {:<30} {}\n", "in watt-hours", line);
  }
  if (g.time) {
    const GenerationTime& t = *g.time;
    auto s = [](const Energy& e) {
      return e.interval ? fmt::format("{} [{} .. {}]", format_si(e.j, "s"), format_si(e.interval->low_j, "s"),
                                      format_si(e.interval->high_j, "s"))
                        : format_si(e.j, "s");
    };
    out << fmt::format("  {:<30} {} (prefill {}, decode {})\n", "time", s(t.total), s(t.prefill), s(t.decode));
    out << fmt::format("  {:<30} first token after {}, then {} per token; {:.4g} tokens/s while decoding ({:.4g} "
                       "overall)\n",
                       "latency, throughput", format_si(t.time_to_first_token_s, "s"),
                       format_si(t.inter_token_latency_s, "s"), t.decode_tokens_per_s, t.tokens_per_s);
    out << fmt::format("  {:<30} {} on average ({} while decoding): joules / seconds\n", "mean power",
                       format_si(t.mean_power_w, "W"), format_si(t.decode_power_w, "W"));
  } else {
    out << fmt::format("  {:<30} not predicted: the predictor has no time companion (FILE-time.json beside it)\n",
                       "time");
  }
  out << "\nWhere it goes (by module kind, prefill + decode):\n";
  for (std::size_t k = 0; k < g.by_kind.size(); ++k) {
    const auto& b = g.by_kind[k];
    if (b.count == 0 && b.attributed.j == 0) continue;
    out << fmt::format("  {:<14} {:>6.2f}%  {}  (prefill {}, decode {})\n", b.name, 100 * b.share,
                       format_energy(b.attributed), format_joules(g.prefill_by_kind[k]),
                       format_joules(g.decode_by_kind[k]));
  }
  for (const auto& s : g.stand_ins)
    out << fmt::format("stand-in: {} predicted by the {} regressor (no regressor of its own; intervals widened x2 each "
                       "side)\n",
                       s.class_name, s.stand_in);
  if (g.held > 0) {
    int from = 0, to = 0;
    for (const auto& s : g.steps)
      if (s.raw_j) {
        if (!from) from = s.past;
        to = s.past;
      }
    out << fmt::format("note: at {} steps (past {} to {}) the predictor gave less energy than at the step before, which "
                       "a longer cache cannot cost; those steps keep the previous step's energy (their own values are "
                       "raw_energy_j in --format json). Such bends come from extrapolating far outside the training "
                       "data.\n",
                       g.held, from, to);
  }
  for (const auto& h : g.batch_held) out << "note: " << h << '\n';
  out << "\nDecode steps (joules per step, all sequences):\n";
  out << fmt::format("  {:>8}  {:>12}  {:>12}  {:>12}\n", "past", "energy J", "low J", "high J");
  const std::size_t n = g.steps.size();
  const std::size_t shown = all_steps ? n : std::min<std::size_t>(n, 8);
  for (std::size_t i = 0; i < shown; ++i) {
    const std::size_t k = shown <= 1 ? 0 : all_steps ? i : i * (n - 1) / (shown - 1);
    const Energy& e = g.steps[k].energy;
    out << fmt::format("  {:>8}  {:>12.6g}  {:>12.6g}  {:>12.6g}\n", g.steps[k].past, e.j,
                       e.interval ? e.interval->low_j : e.j, e.interval ? e.interval->high_j : e.j);
  }
  if (shown < n) out << fmt::format("  ({} of {} steps shown, evenly spaced)\n", shown, n);
}

}  // namespace irene::explain

namespace irene::explain {

namespace {

// b - a, with the interval of compare.hpp (both sides from one predictor: fully correlated).
Energy difference(const Energy& a, const Energy& b) {
  Energy d;
  d.j = b.j - a.j;
  if (a.interval && b.interval) {
    const double x = b.interval->low_j - a.interval->low_j, y = b.interval->high_j - a.interval->high_j;
    d.interval = Interval{std::min({x, y, d.j}), std::max({x, y, d.j})};
  }
  return d;
}

std::string signed_energy(const Energy& e) {
  auto sj = [](double j) { return (j > 0 ? "+" : "") + format_joules(j); };
  if (!e.interval) return sj(e.j);
  return fmt::format("{} [{} .. {}]", sj(e.j), sj(e.interval->low_j), sj(e.interval->high_j));
}


std::string column(ModuleKind k) {
  std::string s(to_string(k));
  for (auto& c : s)
    if (c == '-' || c == ' ') c = '_';
  return s;
}

}  // namespace

GenerationComparison compare_generations(Generation a, Generation b) {
  GenerationComparison c;
  auto row = [&](const std::string& name, const Energy& x, const Energy& y) {
    GenerationDiff d;
    d.name = name;
    d.a = x;
    d.b = y;
    d.diff = difference(x, y);
    if (x.j != 0 && std::isfinite(x.j)) d.change_pct = 100.0 * d.diff.j / x.j;
    c.rows.push_back(d);
  };
  row("prefill", a.prefill, b.prefill);
  row("decode", a.decode, b.decode);
  row("total", a.total, b.total);
  row("per token", a.per_token, b.per_token);
  for (std::size_t k = 0; k < std::min(a.by_kind.size(), b.by_kind.size()); ++k)
    row(a.by_kind[k].name, a.by_kind[k].attributed, b.by_kind[k].attributed);
  c.a = std::move(a);
  c.b = std::move(b);
  return c;
}

nlohmann::json to_json(const GenerationComparison& c) {
  nlohmann::json j;
  j["a"] = to_json(c.a);
  j["b"] = to_json(c.b);
  for (auto* side : {&j["a"], &j["b"]}) side->erase("steps");  // each side's steps: irene predict --generate
  auto& rows = j["rows"] = nlohmann::json::array();
  for (const auto& r : c.rows)
    rows.push_back({{"name", r.name},
                    {"a", energy_json(r.a)},
                    {"b", energy_json(r.b)},
                    {"diff", energy_json(r.diff)},
                    {"change_pct", r.change_pct ? nlohmann::json(*r.change_pct) : nlohmann::json(nullptr)}});
  return j;
}

void write_text(std::ostream& out, const GenerationComparison& c) {
  auto side = [](const Generation& g) {
    return fmt::format("{}  batch {}  prompt {}  generate {}  {}{}", g.model_name, g.batch, g.prompt, g.generate, g.dtype,
                       (g.weights.empty() ? "" : "  weights " + g.weights) +
                           (g.kv_cache_dtype.empty() ? "" : "  kv-cache " + g.kv_cache_dtype) +
                           (g.attention != "eager" ? "  " + g.attention : ""));
  };
  out << "a: " << side(c.a) << "\nb: " << side(c.b) << "\n";
  for (const auto& [name, g] : {std::pair{"a", &c.a}, std::pair{"b", &c.b}})
    if (const std::string line = rests_on_line(g->rests_on); !line.empty()) out << name << " " << line << '\n';
  if (!c.a.hardware.empty()) out << "predicted for: " << c.a.hardware << "\n";
  out << fmt::format("\n{:<14} {:>30}  {:>30}  {:>38}  {:>9}\n", "", "a", "b", "b - a", "change");
  for (const auto& r : c.rows)
    out << fmt::format("{:<14} {:>30}  {:>30}  {:>38}  {:>9}\n", r.name, format_energy(r.a), format_energy(r.b),
                       signed_energy(r.diff), r.change_pct ? fmt::format("{:+.2f}%", *r.change_pct) : std::string("n/a"));
  for (const auto* g : {&c.a, &c.b})
    if (g->held > 0)
      out << fmt::format("note: {}: {} steps keep the previous step's energy (the predictor bent far outside its "
                         "training data)\n",
                         g->model_name, g->held);
}

GenerationPoint generation_point(const Generation& g) {
  GenerationPoint p;
  p.model_name = g.model_name;
  p.batch = g.batch;
  p.prompt = g.prompt;
  p.generate = g.generate;
  p.prefill = g.prefill;
  p.decode = g.decode;
  p.total = g.total;
  p.per_token = g.per_token;
  for (std::size_t k = 0; k < kModuleKinds && k < g.by_kind.size(); ++k) p.kinds[k] = g.by_kind[k].attributed;
  p.held = g.held;
  p.rests_on = rests_on_line(g.rests_on);
  return p;
}

void write_generation_csv(std::ostream& out, const std::vector<GenerationPoint>& points, std::optional<double> carbon) {
  out << "model,batch,prompt,generate";
  for (const char* n : {"prefill", "decode", "total", "per_token"}) out << fmt::format(",{0}_j,{0}_low_j,{0}_high_j", n);
  for (ModuleKind k : all_module_kinds) out << fmt::format(",{0}_j,{0}_low_j,{0}_high_j", column(k));
  out << ",held_steps,co2e_g,per_token_co2e_g,rests_on\n";
  auto e3 = [](const Energy& e) { return "," + csv_energy(e); };
  const auto grams = [&](double j) {
    const auto g = co2e_g(j, carbon);
    return g ? csv_number(*g) : std::string();
  };
  for (const auto& p : points) {
    out << fmt::format("{},{},{},{}", csv_text(p.model_name), p.batch, p.prompt, p.generate) << e3(p.prefill)
        << e3(p.decode) << e3(p.total) << e3(p.per_token);
    for (const auto& k : p.kinds) out << e3(k);
    out << ',' << p.held << ',' << grams(p.total.j) << ',' << grams(p.per_token.j) << ',' << csv_text(p.rests_on)
        << '\n';
  }
}

void write_generation_table(std::ostream& out, const std::vector<GenerationPoint>& points, std::optional<double> carbon) {
  if (carbon) out << fmt::format("CO2e at {:g} g/kWh: of the whole generation and per generated token\n", *carbon);
  out << fmt::format("{:>6} {:>7} {:>8}  {:>28}  {:>28}  {:>28}  {:>28}", "batch", "prompt", "generate", "prefill",
                     "decode", "total", "per token");
  if (carbon) out << fmt::format("  {:>10}  {:>15}", "CO2e", "CO2e per token");
  out << '\n';
  for (const auto& p : points) {
    out << fmt::format("{:>6} {:>7} {:>8}  {:>28}  {:>28}  {:>28}  {:>28}", p.batch, p.prompt, p.generate,
                       format_energy_compact(p.prefill), format_energy_compact(p.decode), format_energy_compact(p.total),
                       format_energy_compact(p.per_token));
    if (carbon)
      out << fmt::format("  {:>10}  {:>15}", format_si(*co2e_g(p.total.j, carbon), "g"),
                         format_si(*co2e_g(p.per_token.j, carbon), "g"));
    out << '\n';
  }
}

nlohmann::json to_json(const std::vector<GenerationPoint>& points, std::optional<double> carbon) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : points) {
    nlohmann::json kinds = nlohmann::json::object();
    for (std::size_t k = 0; k < kModuleKinds; ++k) kinds[std::string(to_string(all_module_kinds[k]))] = energy_json(p.kinds[k]);
    a.push_back({{"model_name", p.model_name},
                 {"batch", p.batch},
                 {"prompt", p.prompt},
                 {"generate", p.generate},
                 {"prefill_j", energy_json(p.prefill)},
                 {"decode_j", energy_json(p.decode)},
                 {"total_j", energy_json(p.total)},
                 {"per_token_j", energy_json(p.per_token)},
                 {"kinds", kinds},
                 {"held_steps", p.held}});
    const auto g = co2e_g(p.total.j, carbon), t = co2e_g(p.per_token.j, carbon);
    a.back()["co2e_g"] = g ? nlohmann::json(*g) : nlohmann::json(nullptr);
    a.back()["per_token_co2e_g"] = t ? nlohmann::json(*t) : nlohmann::json(nullptr);
    a.back()["rests_on"] = p.rests_on;
  }
  return a;
}

}  // namespace irene::explain
