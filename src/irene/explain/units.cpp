#include "irene/explain/units.hpp"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace irene::explain {

namespace {

struct Prefix {
  double scale;
  const char* name;
};
constexpr Prefix kPrefixes[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}, {1, ""},
                                {1e-3, "m"}, {1e-6, "u"}, {1e-9, "n"}, {1e-12, "p"}};

const Prefix& prefix_for(double a) {
  for (const auto& p : kPrefixes)
    if (a >= p.scale * 0.99995) return p;  // 999.96 mJ rounds to 1.000 J, not 1000 mJ
  return kPrefixes[std::size(kPrefixes) - 1];
}

// `v` with `sig` significant digits, in fixed notation ("14.72", "306.9", "1.000").
std::string significant(double v, int sig) {
  if (v == 0) return fmt::format("{:.{}f}", 0.0, std::max(0, sig - 1));
  int digits = static_cast<int>(std::floor(std::log10(std::fabs(v)))) + 1;
  // Rounding can carry into one more digit (0.99999 -> 1.000, not 1.0000).
  if (std::fabs(std::stod(fmt::format("{:.{}f}", v, std::min(12, std::max(0, sig - digits))))) >= std::pow(10.0, digits))
    ++digits;
  const int decimals = std::min(12, std::max(0, sig - digits));
  return fmt::format("{:.{}f}", v, decimals);
}

}  // namespace

std::string fixed_significant(double value, int sig) { return significant(value, sig); }

std::string format_si(double value, const std::string& unit, int sig) {
  if (!std::isfinite(value)) return fmt::format("{} {}", value, unit);
  if (value == 0) return "0 " + unit;
  const Prefix& p = prefix_for(std::fabs(value));
  return significant(value / p.scale, sig) + " " + p.name + unit;
}

std::string joules(double j, int sig) { return format_si(j, "J", sig); }
std::string mflop_text(double mflop, int sig) { return format_si(mflop * 1e6, "FLOP", sig); }

std::string mib_text(double mib, int sig) {
  static constexpr std::pair<double, const char*> binary[] = {
      {1024.0 * 1024 * 1024, "PiB"}, {1024.0 * 1024, "TiB"}, {1024.0, "GiB"}, {1.0, "MiB"}, {1.0 / 1024, "KiB"}};
  const double a = std::fabs(mib);
  if (a == 0) return "0 MiB";
  for (const auto& [scale, name] : binary)
    if (a >= scale * 0.99995) return significant(mib / scale, sig) + " " + name;
  return significant(mib * 1024 * 1024, sig) + " B";
}

std::string count_text(double n, int sig) {
  const double a = std::fabs(n);
  if (a < 1000) return fmt::format("{:.0f}", n);
  static constexpr std::pair<double, const char*> names[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "k"}};
  for (const auto& [scale, name] : names)
    if (a >= scale * 0.99995) return significant(n / scale, sig) + " " + name;
  return fmt::format("{:.0f}", n);
}

ColumnUnit column_unit(const std::vector<double>& values, const std::string& base_unit) {
  double m = 0;
  for (double v : values)
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  if (m == 0) return {1, base_unit};
  const Prefix& p = prefix_for(m);
  return {p.scale, std::string(p.name) + base_unit};
}

Normalized normalize(double joules, int batch, int seq, std::optional<double> carbon) {
  Normalized n;
  n.per_sample_j = batch > 0 ? joules / batch : joules;
  if (batch > 0 && seq > 0) n.per_token_j = joules / (static_cast<double>(batch) * seq);
  n.wh = joules / 3600.0;
  if (carbon) n.co2e_g = joules / 3.6e6 * *carbon;
  return n;
}

nlohmann::json to_json(const Normalized& n) {
  nlohmann::json j;
  j["per_sample_j"] = n.per_sample_j;
  j["per_token_j"] = n.per_token_j ? nlohmann::json(*n.per_token_j) : nlohmann::json(nullptr);
  j["wh"] = n.wh;
  j["co2e_g"] = n.co2e_g ? nlohmann::json(*n.co2e_g) : nlohmann::json(nullptr);
  return j;
}

std::string to_text(const Normalized& n, std::optional<double> carbon) {
  std::string s = joules(n.per_sample_j) + " per sample";
  if (n.per_token_j) s += ", " + joules(*n.per_token_j) + " per token";
  s += ", " + format_si(n.wh, "Wh");
  if (n.co2e_g && carbon) s += fmt::format(", {} CO2e at {:g} g/kWh", format_si(*n.co2e_g, "g"), *carbon);
  return s;
}

}  // namespace irene::explain
