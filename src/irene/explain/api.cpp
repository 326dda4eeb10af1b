#include "irene/explain/api.hpp"

#include <fmt/format.h>

#include <ostream>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/rests_on.hpp"
#include "irene/explain/units.hpp"

namespace irene::api {

using nlohmann::json;

std::vector<std::string> models() { return builtin_model_names(); }

json tree(const Source& s) {
  if (!s.config && explain::is_trees_file(s.what)) throw Error("tree builds a model's tree, not a trees file's");
  if (!s.predictor.empty()) throw Error("tree predicts nothing: the predictor applies to predict");
  if (s.generation()) throw Error("tree builds one pass: --prompt / --generate apply to generate");
  const BuildOptions pass = explain::build_options(s.pass);
  const int batch = s.batch.empty() ? kDefaultBatch : parse_positive_int(s.batch, "--batch");
  return explain::tree_summary(build_tree(explain::model_config(s), batch, pass_seq(s.seq, pass), pass));
}

json generate(const ExplainRequest& r) {
  const auto grid = explain::generation_grid(r.source, false);
  const auto p = explain::load_energy_predictor(r.source.predictor);
  explain::Generation g = explain::predict_generations(grid, *p).front();
  g.carbon_g_per_kwh = explain::parse_carbon_intensity(r.carbon_intensity);
  json j = explain::to_json(g);
  j["prefill_nodes"] = explain::node_records(g.prefill_tree);
  j["step_nodes"] = explain::node_records(g.last_step);
  return j;
}

json predict(const ExplainRequest& r) {
  if (r.source.generation()) return generate(r);
  const auto carbon = explain::parse_carbon_intensity(r.carbon_intensity);
  std::string hardware;
  std::vector<Tree> trees = explain::load_trees(r.source, false, hardware);
  json out = json::array();
  for (auto& t : trees) {
    if (!hardware.empty() && !t.provenance.count("predicted_for")) t.provenance["predicted_for"] = hardware;
    json j = explain::tree_summary(t);
    if (j["energy_j"].is_number())
      j["normalized"] = explain::to_json(explain::normalize(j["energy_j"].get<double>(), t.batch_size, t.seq_len, carbon));
    if (carbon) j["carbon_intensity_g_per_kwh"] = *carbon;
    out.push_back(std::move(j));
  }
  return out.size() == 1 ? out[0] : out;
}

Explained explain(const ExplainRequest& r) {
  if (r.top < 0 || r.top > limits::kMaxTop)
    throw Error(fmt::format("--top must be in 0..{}, got {}", limits::kMaxTop, r.top));
  Explained e;
  e.carbon_g_per_kwh = explain::parse_carbon_intensity(r.carbon_intensity);
  explain::ExplainOptions eo;
  eo.top = r.top;
  if (r.source.generation()) {
    const auto grid = explain::generation_grid(r.source, false);
    const auto p = explain::load_energy_predictor(r.source.predictor);
    e.hardware = p->hardware();
    e.generation = explain::predict_generations(grid, *p).front();
    e.generation->carbon_g_per_kwh = e.carbon_g_per_kwh;
    e.explanations.push_back(explain::explain_tree(e.generation->prefill_tree, eo));
    e.explanations.push_back(explain::explain_tree(e.generation->last_step, eo));
    e.explanations.push_back(explain::explain_generation(*e.generation, eo));
    return e;
  }
  e.trees = explain::load_trees(r.source, false, e.hardware);
  for (const auto& t : e.trees) e.explanations.push_back(explain::explain_tree(t, eo));
  return e;
}

json to_json(const Explained& e) {
  if (e.generation) {
    json j = explain::to_json(*e.generation);
    j["prefill_explanation"] = explain::to_json(e.explanations.at(0));
    j["last_step_explanation"] = explain::to_json(e.explanations.at(1));
    j["generation_explanation"] = explain::to_json(e.explanations.at(2));
    return j;
  }
  json arr = json::array();
  for (const auto& x : e.explanations) {
    json j = explain::to_json(x);
    j["hardware"] = e.hardware;
    j["normalized"] = explain::to_json(explain::normalize(x.total.j, x.batch_size, x.seq_len, e.carbon_g_per_kwh));
    if (e.carbon_g_per_kwh) j["carbon_intensity_g_per_kwh"] = *e.carbon_g_per_kwh;
    arr.push_back(std::move(j));
  }
  return arr.size() == 1 ? arr[0] : arr;
}

Compared compare(const CompareRequest& r) {
  const Source& sa = r.a;
  const Source sb = explain::side_b(r);
  Compared c;
  c.carbon_g_per_kwh = explain::parse_carbon_intensity(r.carbon_intensity);
  if (sa.generation()) {
    const auto p = explain::load_energy_predictor(sa.predictor);
    const auto pb = sb.predictor == sa.predictor ? p : explain::load_energy_predictor(sb.predictor);
    c.hardware = p->hardware();
    c.hardware_b = pb->hardware();
    explain::Generation ga = explain::predict_generations(explain::generation_grid(sa, false), *p).front();
    explain::Generation gb = explain::predict_generations(explain::generation_grid(sb, false), *pb).front();
    c.comparison = explain::compare(ga.last_step, gb.last_step);
    c.generations = explain::compare_generations(std::move(ga), std::move(gb));
    return c;
  }
  const Tree ta = explain::load_trees(sa, false, c.hardware).front();
  const Tree tb = explain::load_trees(sb, false, c.hardware_b).front();
  c.comparison = explain::compare(ta, tb);
  return c;
}

std::optional<CompareCo2e> co2e(const Compared& c) {
  if (!c.carbon_g_per_kwh) return std::nullopt;
  const double a = c.generations ? c.generations->a.total.j : c.comparison.a.total.j;
  const double b = c.generations ? c.generations->b.total.j : c.comparison.b.total.j;
  const double g = *c.carbon_g_per_kwh / 3.6e6;  // grams per joule
  return CompareCo2e{a * g, b * g, (b - a) * g};
}

json to_json(const Compared& c) {
  json j;
  if (c.generations) {
    j = explain::to_json(*c.generations);
    j["hardware"] = c.hardware;
    j["hardware_b"] = c.hardware_b;
    j["last_step"] = explain::to_json(c.comparison);
  } else {
    j = explain::to_json(c.comparison);
    j["hardware"] = c.hardware;
    j["hardware_b"] = c.hardware_b;
  }
  if (const auto g = co2e(c)) {
    j["carbon_intensity_g_per_kwh"] = *c.carbon_g_per_kwh;
    j["co2e_g"] = {{"a", g->a_g}, {"b", g->b_g}, {"diff", g->diff_g}};
  }
  return j;
}

Swept sweep(const SweepRequest& r, const SweepHooks& hooks) {
  const Source& s = r.source;
  Swept out;
  out.carbon_g_per_kwh = explain::parse_carbon_intensity(r.carbon_intensity);
  if (s.generation()) {
    out.generation = true;
    const auto grid = explain::generation_grid(s, true);
    const auto p = explain::load_energy_predictor(s.predictor);
    out.model_name = grid.config.name;
    out.hardware = p->hardware();
    explain::for_each_generation(grid, *p, [&](explain::Generation&& g) {
      out.generation_points.push_back(explain::generation_point(g));
      explain::merge_rests_on(out.rests_on, g.rests_on);
      if (hooks.generation) hooks.generation(g);
    });
    return out;
  }
  explain::for_each_tree(
      s, true, out.hardware,
      [&](std::size_t total) {
        out.points.reserve(total);
        if (hooks.start) hooks.start(total);
      },
      [&](Tree&& t) {
        out.points.push_back(explain::sweep_point(t));
        if (out.model_name.empty()) out.model_name = out.points.back().model_name;
        explain::merge_rests_on(out.rests_on, explain::rests_on_of(t));
        if (hooks.tree) hooks.tree(t);
      },
      hooks.progress);
  return out;
}

json to_json(const Swept& s) {
  json j;
  j["model_name"] = s.model_name;
  j["hardware"] = s.hardware;
  j["rests_on"] = s.rests_on;
  j["points"] = s.generation ? explain::to_json(s.generation_points, s.carbon_g_per_kwh)
                             : explain::to_json(s.points, s.carbon_g_per_kwh);
  j["carbon_intensity_g_per_kwh"] = s.carbon_g_per_kwh ? json(*s.carbon_g_per_kwh) : json(nullptr);
  return j;
}

void write_sweep(std::ostream& os, const Swept& s, const std::string& format) {
  if (format == "json") {
    os << to_json(s).dump(1) << '\n';
  } else if (format == "csv") {
    if (s.generation) explain::write_generation_csv(os, s.generation_points, s.carbon_g_per_kwh);
    else explain::write_sweep_csv(os, s.points, s.carbon_g_per_kwh);
  } else {
    if (!s.hardware.empty()) os << "predictor: " << s.hardware << '\n';
    if (const auto line = explain::rests_on_line(s.rests_on); !line.empty()) os << line << '\n';
    if (s.generation) explain::write_generation_table(os, s.generation_points, s.carbon_g_per_kwh);
    else explain::write_sweep_table(os, s.points, s.carbon_g_per_kwh);
  }
}

}  // namespace irene::api
