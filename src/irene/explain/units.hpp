// Numbers for people: fixed significant digits with SI prefixes, and normalized energies.
//
// Text outputs print every quantity through these functions, so that one table never mixes
// units in a column and no number comes out as "2.58456e+06 J":
//   joules   "14.72 J", "306.9 mJ", "2.585 MJ" (4 significant digits; pJ .. TJ)
//   flops    from MFLOP: "1.366 GFLOP", "12.50 MFLOP"
//   bytes    from MiB:   "354.8 MiB", "1.250 GiB", "512.0 KiB"
//   counts   "124.4 M", "6.738 B"
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace irene::explain {

// `sig` significant digits (default 4), SI prefix chosen for the value's magnitude.
std::string format_si(double value, const std::string& unit, int sig = 4);
// `value` in fixed notation with `sig` significant digits and no prefix ("14.72", "-0.5376").
std::string fixed_significant(double value, int sig = 4);
std::string joules(double j, int sig = 4);
std::string mflop_text(double mflop, int sig = 4);
std::string mib_text(double mib, int sig = 4);
std::string count_text(double n, int sig = 4);

// One SI prefix for a whole column: the scale (1e-3 for mJ, ...) and the unit ("mJ") that make
// the largest |value| read between 1 and 1000.
struct ColumnUnit {
  double scale = 1;
  std::string unit;
};
ColumnUnit column_unit(const std::vector<double>& values, const std::string& base_unit);

// Normalized figures of an energy for `batch` sequences of `seq` tokens (seq 0: none per token).
struct Normalized {
  double per_sample_j = 0;            // energy / batch
  std::optional<double> per_token_j;  // energy / (batch x seq)
  double wh = 0;                      // watt-hours (joules / 3600)
  std::optional<double> co2e_g;       // grams CO2e at the given carbon intensity
};
// `carbon_g_per_kwh`: grams CO2e per kWh of the electricity (e.g. 400), or none.
Normalized normalize(double joules, int batch, int seq, std::optional<double> carbon_g_per_kwh);
nlohmann::json to_json(const Normalized& n);
// "1.840 J per sample, 14.37 mJ per token, 4.088 mWh, 1.635 mg CO2e at 400 g/kWh"
std::string to_text(const Normalized& n, std::optional<double> carbon_g_per_kwh);

}  // namespace irene::explain
