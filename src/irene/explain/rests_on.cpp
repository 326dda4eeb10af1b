#include "irene/explain/rests_on.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>

#include "irene/explain/explain.hpp"
#include "irene/predict/target.hpp"

namespace irene::explain {

using nlohmann::json;

namespace {

std::string count_words(double v) {
  if (v >= 1e9) return fmt::format("{:.3g}B", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.3g}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string range_words(double lo, double hi, bool counts) {
  auto w = [&](double v) { return counts ? count_words(v) : fmt::format("{:.0f}", v); };
  if (!std::isfinite(lo)) return "up to " + w(hi);
  return lo == hi ? w(lo) : w(lo) + "-" + w(hi);
}

// A count as an integer where it is one (sizes, batches, positions), else as it is; null when not finite.
json num(double v) {
  if (!std::isfinite(v)) return nullptr;
  if (v == std::floor(v) && std::fabs(v) < 9.0e15) return static_cast<std::int64_t>(v);
  return v;
}

json range_json(double lo, double hi) { return json::array({num(lo), num(hi)}); }

// A numeric dimension: outside when [qlo, qhi] leaves [lo, hi]; the factor is the farthest ratio.
void numeric(json& outside, const char* dimension, double qlo, double qhi, std::optional<std::pair<double, double>> span,
             fmt::format_string<std::string> unit, bool counts = false) {
  if (!span) return;
  const auto [lo, hi] = *span;
  double factor = 1;
  std::string words;
  auto w = [&](double v) { return counts ? count_words(v) : fmt::format("{:.0f}", v); };
  if (std::isfinite(hi) && qhi > hi) {
    factor = qhi / hi;
    words = fmt::format(unit, w(qhi)) + fmt::format(" is {:.3g}x the largest trained ({})", factor, w(hi));
  }
  if (std::isfinite(lo) && qlo < lo && lo / std::max(qlo, 1e-300) > factor) {
    factor = lo / std::max(qlo, 1e-300);
    words = fmt::format(unit, w(qlo)) + fmt::format(" is {:.3g}x below the smallest trained ({})", factor, w(lo));
  }
  if (words.empty()) return;
  outside.push_back({{"dimension", dimension},
                     {"value", qlo == qhi ? num(qlo) : json::array({num(qlo), num(qhi)})},
                     {"trained", range_json(lo, hi)},
                     {"factor", factor},
                     {"words", words}});
}

void categorical(json& outside, const char* dimension, const std::vector<std::string>& asked,
                 const std::vector<std::string>& trained, const std::string& what) {
  if (trained.empty()) return;
  std::vector<std::string> missing;
  for (const auto& a : asked)
    if (std::find(trained.begin(), trained.end(), a) == trained.end()) missing.push_back(a);
  if (missing.empty()) return;
  outside.push_back({{"dimension", dimension},
                     {"value", missing.size() == 1 ? json(missing[0]) : json(missing)},
                     {"trained", trained},
                     {"factor", nullptr},
                     {"words", fmt::format("{} {} (trained on {} only)", what, fmt::join(missing, ", "),
                                           fmt::join(trained, ", "))}});
}

std::optional<std::pair<double, double>> as_double(const std::optional<std::pair<int, int>>& p) {
  if (!p) return std::nullopt;
  return std::pair<double, double>{p->first, p->second};
}

}  // namespace

Question question_of(const Tree& t) {
  Question q;
  q.model = t.model_name;
  q.parameters = t.nodes.empty() ? 0 : t.root().num_parameters;
  q.batch = {t.batch_size, t.batch_size};
  q.tokens = {t.seq_len, t.seq_len};
  const int context = t.is_decode() ? t.past_len + 1 : t.seq_len;
  q.context = {context, context};
  q.phases = {t.phase};
  q.dtype = t.dtype;
  q.weights = t.weights;
  q.kv_cache_dtype = t.kv_cache_dtype;
  return q;
}

json rests_on(const Question& q, const Predictor& p, const Tree& t) {
  const TrainingSpan span = p.training_span();
  json j;
  j["hardware"] = {{"name", p.hardware()},
                   {"energy_covers", span.energy_covers.empty() ? json(nullptr) : json(span.energy_covers)}};
  json trained = span.to_json();
  if (!span.recorded)
    trained["note"] = "derived from the ranges of the features the predictor reads (its file predates the recorded span)";
  j["predictor"] = {{"file", p.path().empty() ? std::string("(in memory)") : p.path().string()},
                    {"target", predict::to_string(p.target())},
                    {"trained_on", std::move(trained)}};
  std::vector<std::string> phases = q.phases;
  j["question"] = {{"model", q.model},
                   {"parameters", num(q.parameters)},
                   {"batch", json::array({q.batch.first, q.batch.second})},
                   {"tokens", json::array({q.tokens.first, q.tokens.second})},
                   {"context", json::array({q.context.first, q.context.second})},
                   {"phases", phases},
                   {"dtype", q.dtype},
                   {"weights", q.weights.empty() ? q.dtype : q.weights},
                   {"kv_cache_dtype", q.kv_cache_dtype.empty() ? q.dtype : q.kv_cache_dtype}};
  json outside = json::array();
  numeric(outside, "size", q.parameters, q.parameters, span.parameters, "{} parameters", true);
  numeric(outside, "batch", q.batch.first, q.batch.second, as_double(span.batch), "batch {}");
  numeric(outside, "tokens", q.tokens.first, q.tokens.second, as_double(span.tokens), "{} tokens per sequence per call");
  numeric(outside, "context", q.context.first, q.context.second, as_double(span.context), "a context of {} positions");
  categorical(outside, "phase", phases, span.phases, "phase");
  std::set<std::string> types = {q.dtype};
  if (!q.weights.empty() && q.weights != "same") types.insert("weights " + q.weights);
  if (!q.kv_cache_dtype.empty() && q.kv_cache_dtype != q.dtype) types.insert("kv-cache " + q.kv_cache_dtype);
  std::vector<std::string> asked(types.begin(), types.end()), dtypes = span.dtypes;
  // The training trees' weights and caches were in their dtype.
  categorical(outside, "dtype", asked, dtypes, "dtype");
  j["outside"] = outside;
  j["within_training_data"] = outside.empty() && !t.provenance.count("out_of_range");
  const auto prov = [&](const char* key) {
    const auto it = t.provenance.find(key);
    return it == t.provenance.end() ? json(nullptr) : json(it->second);
  };
  j["nodes_outside"] = prov("out_of_range");
  j["stand_ins"] = stand_ins_json(t);
  j["batch_held"] = prov("batch_held");
  j["dtype_applied"] = q.dtype;
  j["config_torch_dtype"] = prov("config_torch_dtype");
  j["config_source"] = prov("config_source");
  j["summary"] = rests_on_line(j);
  return j;
}

namespace {

// "N of M nodes ...": the note with more nodes outside speaks for both.
long nodes_outside_count(const json& v) { return v.is_string() ? std::atol(v.get_ref<const std::string&>().c_str()) : -1L; }

// [lo, hi] of two ranges' union.
json range_union(const json& a, const json& b) {
  if (!a.is_array() || !b.is_array() || a.size() != 2 || b.size() != 2) return a;
  return json::array({b[0].get<double>() < a[0].get<double>() ? b[0] : a[0],
                      b[1].get<double>() > a[1].get<double>() ? b[1] : a[1]});
}

}  // namespace

void merge_rests_on(json& into, const json& other) {
  if (!other.is_object()) return;
  if (!into.is_object()) {
    into = other;
    return;
  }
  json& q = into["question"];
  const json& oq = other["question"];
  for (const char* k : {"batch", "tokens", "context"}) q[k] = range_union(q[k], oq[k]);
  for (const auto& ph : oq.value("phases", json::array()))
    if (std::find(q["phases"].begin(), q["phases"].end(), ph) == q["phases"].end()) q["phases"].push_back(ph);
  for (const auto& o : other["outside"]) {
    bool found = false;
    for (auto& mine : into["outside"])
      if (mine["dimension"] == o["dimension"]) {
        found = true;
        if (o["factor"].is_number() && (!mine["factor"].is_number() || o["factor"].get<double>() > mine["factor"].get<double>()))
          mine = o;
      }
    if (!found) into["outside"].push_back(o);
  }
  into["within_training_data"] = into.value("within_training_data", false) && other.value("within_training_data", false);
  if (nodes_outside_count(other["nodes_outside"]) > nodes_outside_count(into["nodes_outside"]))
    into["nodes_outside"] = other["nodes_outside"];
  if (into["batch_held"].is_null() && !other["batch_held"].is_null()) into["batch_held"] = other["batch_held"];
  for (const auto& s : other["stand_ins"]) {
    bool known = false;
    for (const auto& k : into["stand_ins"]) known = known || k.value("class_name", "") == s.value("class_name", "");
    if (!known) into["stand_ins"].push_back(s);
  }
  into["summary"] = rests_on_line(into);
}

void stamp_rests_on(Tree& tree, const Predictor& predictor) {
  tree.provenance["rests_on"] = rests_on(question_of(tree), predictor, tree).dump();
}

json rests_on_of(const Tree& tree) {
  const auto it = tree.provenance.find("rests_on");
  if (it == tree.provenance.end()) return nullptr;
  json j = json::parse(it->second, nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

std::string rests_on_line(const json& r) {
  if (!r.is_object()) return "";
  const json& hw = r["hardware"];
  std::string line = "rests on: " + hw.value("name", std::string("unknown hardware"));
  if (hw["energy_covers"].is_string()) line += " (joules of " + hw["energy_covers"].get<std::string>() + ")";
  const json& s = r["predictor"]["trained_on"];
  std::vector<std::string> parts;
  if (s["models"].is_array() && !s["models"].empty()) parts.push_back(fmt::format("{} models", s["models"].size()));
  auto range = [&](const char* key, const char* unit, bool counts) {
    const json& v = s[key];
    if (!v.is_array() || v.size() != 2 || !v[1].is_number()) return;
    const double lo = v[0].is_number() ? v[0].get<double>() : std::nan("");
    parts.push_back(fmt::format("{} {}", range_words(lo, v[1].get<double>(), counts), unit));
  };
  range("parameters", "parameters", true);
  range("batch", "sequences", false);
  range("context", "positions", false);
  if (s["phases"].is_array() && !s["phases"].empty())
    parts.push_back(fmt::format("{}", fmt::join(s["phases"].get<std::vector<std::string>>(), "+")));
  if (s["dtypes"].is_array() && !s["dtypes"].empty())
    parts.push_back(fmt::format("{}", fmt::join(s["dtypes"].get<std::vector<std::string>>(), "+")));
  if (!parts.empty()) line += fmt::format("; trained on {}", fmt::join(parts, ", "));
  std::vector<std::string> out;
  for (const auto& o : r["outside"]) {
    const std::string dim = o.value("dimension", "");
    if (o["factor"].is_number())
      out.push_back(fmt::format("{} {:.3g}x", dim, o["factor"].get<double>()));
    else if (o["value"].is_string())
      out.push_back(fmt::format("{} {}", dim, o["value"].get<std::string>()));
    else
      out.push_back(dim);
  }
  if (!out.empty()) line += fmt::format("; this question is outside it: {} (intervals widened)", fmt::join(out, ", "));
  else if (r.value("within_training_data", false)) line += "; this question is inside it";
  else if (r["nodes_outside"].is_string()) line += "; some nodes are outside it (intervals widened)";
  if (r["stand_ins"].is_array() && !r["stand_ins"].empty()) line += fmt::format("; {} stand-ins", r["stand_ins"].size());
  if (r["config_torch_dtype"].is_string() && r["config_torch_dtype"] != r["dtype_applied"])
    line += fmt::format("; dtype {} applied (the config's {} is not)", r["dtype_applied"].get<std::string>(),
                        r["config_torch_dtype"].get<std::string>());
  return line;
}

}  // namespace irene::explain
