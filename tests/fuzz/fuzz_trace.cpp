// Fuzzes the power-trace reader (measure/sensor_trace.cpp) and the integration of what it accepts.
#include <cmath>

#include "fuzz.hpp"
#include "irene/measure/sensor_trace.hpp"

IRENE_FUZZ_ENTRY(trace) {
  return irene::fuzz::run([&] {
    const auto samples = irene::measure::parse_power_trace(irene::fuzz::text(data, size), "fuzz.csv");
    if (samples.size() >= 2) {
      const double t0 = samples.front().epoch_seconds, t1 = samples.back().epoch_seconds;
      const double j = irene::measure::integrate_power(samples, t0, t1);
      if (!std::isfinite(j) || j < 0) std::abort();  // accepted samples integrate to finite joules
    }
  });
}
