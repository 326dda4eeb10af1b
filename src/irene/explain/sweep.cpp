#include "irene/explain/sweep.hpp"

#include <fmt/format.h>

#include <functional>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "irene/core/error.hpp"
#include "irene/explain/records.hpp"
#include "irene/explain/rests_on.hpp"
#include "irene/explain/units.hpp"

namespace irene::explain {

namespace {

long long parse_part(std::string_view part, std::string_view what, std::string_view text) {
  long long v = 0;
  const char* b = part.data();
  const char* e = part.data() + part.size();
  auto [p, ec] = std::from_chars(b, e, v);
  if (part.empty() || ec != std::errc() || p != e)
    throw Error(fmt::format("bad {} range '{}': '{}' is not an integer", what, text, part));
  return v;
}

void add_energy(Energy& sum, const Energy& e, bool& all) {
  sum.j += e.j;
  if (!e.interval) {
    all = false;
    return;
  }
  if (!sum.interval) sum.interval = Interval{0, 0};
  sum.interval->low_j += e.interval->low_j;
  sum.interval->high_j += e.interval->high_j;
}


nlohmann::json ejson(const Energy& e) {
  return {{"j", e.j},
          {"low_j", e.interval ? nlohmann::json(e.interval->low_j) : nlohmann::json(nullptr)},
          {"high_j", e.interval ? nlohmann::json(e.interval->high_j) : nlohmann::json(nullptr)}};
}

std::string column_name(ModuleKind k) {
  std::string s(to_string(k));
  for (auto& c : s)
    if (c == '-') c = '_';
  return s;
}

}  // namespace

std::vector<int> parse_range(std::string_view text, std::string_view what, int max_value) {
  if (text.empty()) throw Error(fmt::format("bad {} range '': empty", what));
  std::vector<long long> values;
  auto check = [&](long long v) {
    if (v < 1 || v > max_value)
      throw Error(fmt::format("bad {} range '{}': {} is outside 1..{}", what, text, v, max_value));
  };
  if (text.find(',') != std::string_view::npos) {
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = text.find(',', start);
      const auto part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      const long long v = parse_part(part, what, text);
      check(v);
      values.push_back(v);
      if (static_cast<int>(values.size()) > max_range_points)
        throw Error(fmt::format("bad {} range '{}': more than {} values", what, text, max_range_points));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  } else {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (true) {
      const std::size_t colon = text.find(':', start);
      parts.push_back(text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
    if (parts.size() > 3)
      throw Error(fmt::format("bad {} range '{}': expected N, START:STOP or START:STOP:STEP", what, text));
    const long long first = parse_part(parts[0], what, text);
    check(first);
    if (parts.size() == 1) {
      values.push_back(first);
    } else {
      const long long stop = parse_part(parts[1], what, text);
      check(stop);
      const long long step = parts.size() == 3 ? parse_part(parts[2], what, text) : 1;
      if (step < 1) throw Error(fmt::format("bad {} range '{}': step {} is not positive", what, text, step));
      if (first > stop)
        throw Error(fmt::format("bad {} range '{}': start {} > stop {}", what, text, first, stop));
      if ((stop - first) / step + 1 > max_range_points)
        throw Error(fmt::format("bad {} range '{}': more than {} values", what, text, max_range_points));
      for (long long v = first; v <= stop; v += step) values.push_back(v);
    }
  }
  return std::vector<int>(values.begin(), values.end());
}

SweepPoint sweep_point(const Tree& tree) {
  ExplainOptions opt;
  opt.top = 0;
  const Explanation e = explain_tree(tree, opt);
  SweepPoint p;
  p.model_name = e.model_name;
  p.batch_size = e.batch_size;
  p.seq_len = e.seq_len;
  p.past_len = e.past_len;
  p.model = e.total;
  p.measured_j = e.measured_total_j;
  p.rests_on = rests_on_line(e.rests_on);
  bool all_mod = true, all_ml = true;
  for (int c : tree.nodes[0].children) add_energy(p.modules, e.nodes[c].own, all_mod);
  for (const auto& x : e.nodes)
    if (tree.nodes[x.index].is_leaf() && x.index != 0) add_energy(p.ml, x.own, all_ml);
  if (!all_mod) p.modules.interval.reset();
  if (!all_ml) p.ml.interval.reset();
  for (std::size_t k = 0; k < kModuleKinds; ++k) p.kinds[k] = e.by_kind[k].attributed;
  return p;
}

std::vector<SweepPoint> sweep(const TreeMaker& make, const std::vector<int>& batches,
                              const std::vector<int>& seqs, const std::function<void(int, int)>& progress) {
  if (batches.empty() || seqs.empty()) throw Error("sweep: no batch sizes or sequence lengths");
  const long long total = static_cast<long long>(batches.size()) * static_cast<long long>(seqs.size());
  if (total > max_range_points)
    throw Error(fmt::format("sweep: {} points is more than {}", total, max_range_points));
  std::vector<SweepPoint> points;
  points.reserve(static_cast<std::size_t>(total));
  for (int b : batches)
    for (int s : seqs) {
      points.push_back(sweep_point(make(b, s)));
      if (progress) progress(static_cast<int>(points.size()), static_cast<int>(total));
    }
  return points;
}

std::optional<double> co2e_g(double joules, std::optional<double> carbon_g_per_kwh) {
  if (!carbon_g_per_kwh) return std::nullopt;
  return normalize(joules, 1, 0, carbon_g_per_kwh).co2e_g;
}

void write_sweep_csv(std::ostream& out, const std::vector<SweepPoint>& points, std::optional<double> carbon) {
  out << "model,batch,seq,model_j,model_low_j,model_high_j,modules_j,modules_low_j,modules_high_j,ml_j,ml_low_j,ml_high_j";
  for (ModuleKind k : all_module_kinds) {
    const std::string c = column_name(k);
    out << fmt::format(",{0}_j,{0}_low_j,{0}_high_j", c);
  }
  out << ",measured_j,past,co2e_g,rests_on\n";
  for (const auto& p : points) {
    out << fmt::format("{},{},{}", csv_text(p.model_name), p.batch_size, p.seq_len);
    for (const Energy* e : {&p.model, &p.modules, &p.ml}) out << ',' << csv_energy(*e);
    for (const auto& e : p.kinds) out << ',' << csv_energy(e);
    const auto g = co2e_g(p.model.j, carbon);
    out << ',' << (p.measured_j ? csv_number(*p.measured_j) : std::string()) << ',' << p.past_len << ','
        << (g ? csv_number(*g) : std::string()) << ',' << csv_text(p.rests_on) << '\n';
  }
}

void write_sweep_table(std::ostream& out, const std::vector<SweepPoint>& points, std::optional<double> carbon) {
  if (points.empty()) return;
  // One unit per column, chosen for its largest value; the model's interval beside it; the module
  // kinds (attributed energies, adding up to the model) that the model has.
  struct Column {
    std::string name;
    ColumnUnit unit;
    std::function<double(const SweepPoint&)> get;
  };
  std::vector<Column> cols;
  auto column = [&](std::string name, std::function<double(const SweepPoint&)> get, const char* unit = "J") {
    std::vector<double> v;
    for (const auto& p : points) v.push_back(get(p));
    cols.push_back({std::move(name), column_unit(v, unit), std::move(get)});
  };
  column("model", [](const SweepPoint& p) { return p.model.j; });
  column("low", [](const SweepPoint& p) { return p.model.interval ? p.model.interval->low_j : p.model.j; });
  column("high", [](const SweepPoint& p) { return p.model.interval ? p.model.interval->high_j : p.model.j; });
  for (std::size_t k = 0; k < kModuleKinds; ++k) {
    bool any = false;
    for (const auto& p : points) any = any || p.kinds[k].j != 0;
    if (any) column(std::string(to_string(all_module_kinds[k])), [k](const SweepPoint& p) { return p.kinds[k].j; });
  }
  bool measured = false;
  for (const auto& p : points) measured = measured || p.measured_j.has_value();
  if (measured) column("measured", [](const SweepPoint& p) { return p.measured_j.value_or(0.0); });
  if (carbon) column("CO2e", [carbon](const SweepPoint& p) { return co2e_g(p.model.j, carbon).value_or(0.0); }, "g");
  const bool decode = std::any_of(points.begin(), points.end(), [](const SweepPoint& p) { return p.past_len > 0; });
  out << fmt::format("{}: predicted energy per forward pass{}; low/high: the model's interval; then the module\n"
                     "kinds' attributed energies (they add up to the model){}\n",
                     points.front().model_name, decode ? " (decode steps: one new token per sequence)" : "",
                     carbon ? fmt::format("; CO2e: the model's at {:g} g/kWh", *carbon) : std::string());
  std::vector<std::string> heads;
  std::vector<std::size_t> widths;
  for (const auto& c : cols) {
    heads.push_back(fmt::format("{} ({})", c.name, c.unit.unit));
    widths.push_back(std::max<std::size_t>(8, heads.back().size()));
  }
  out << fmt::format("{:>6} {:>6}{}", "batch", "seq", decode ? fmt::format(" {:>7}", "past") : "");
  for (std::size_t i = 0; i < heads.size(); ++i) out << fmt::format("  {:>{}}", heads[i], widths[i]);
  out << '\n';
  for (const auto& p : points) {
    out << fmt::format("{:>6} {:>6}{}", p.batch_size, p.seq_len, decode ? fmt::format(" {:>7}", p.past_len) : "");
    for (std::size_t i = 0; i < cols.size(); ++i) {
      const auto& c = cols[i];
      const bool none = c.name == "measured" && !p.measured_j;
      out << fmt::format("  {:>{}}", none ? std::string("-") : fixed_significant(c.get(p) / c.unit.scale, 4), widths[i]);
    }
    out << '\n';
  }
}

nlohmann::json to_json(const std::vector<SweepPoint>& points, std::optional<double> carbon) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& p : points) {
    nlohmann::json kinds;
    for (std::size_t k = 0; k < kModuleKinds; ++k) kinds[std::string(to_string(all_module_kinds[k]))] = ejson(p.kinds[k]);
    arr.push_back({{"model_name", p.model_name},
                   {"batch_size", p.batch_size},
                   {"seq_len", p.seq_len},
                   {"past_len", p.past_len},
                   {"model", ejson(p.model)},
                   {"modules", ejson(p.modules)},
                   {"ml", ejson(p.ml)},
                   {"kinds", kinds},
                   {"measured_j", p.measured_j ? nlohmann::json(*p.measured_j) : nlohmann::json(nullptr)}});
    const auto g = co2e_g(p.model.j, carbon);
    arr.back()["co2e_g"] = g ? nlohmann::json(*g) : nlohmann::json(nullptr);
    arr.back()["rests_on"] = p.rests_on;
  }
  return arr;
}

}  // namespace irene::explain
