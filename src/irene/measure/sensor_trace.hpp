// `trace:FILE`: a power-meter log, for users with a wall meter (as the IrEne paper used).
//
// The file is CSV with the header `timestamp,watts`, then one sample per line: Unix epoch
// seconds (fractions allowed, non-decreasing) and watts (>= 0). Blank lines are skipped.
// Power between samples is linear, so the energy of a window is the trapezoid rule over the
// samples inside it plus the interpolated power at both window edges.
//
// The file may be live (a meter logger appending to it): each measurement re-reads what was
// appended and waits, up to SensorOptions::trace_wait_seconds, until a sample at or after the
// window's end exists. Only lines ending in '\n' count while waiting (a line may be half
// written); after the wait a final unterminated line is read too.
#pragma once

#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "irene/measure/sensor.hpp"

namespace irene::measure {

/// One power sample.
struct PowerSample {
  double epoch_seconds = 0;  ///< Unix epoch seconds
  double watts = 0;          ///< power, watts
};

/// Energy in joules of the piecewise-linear power `samples` (sorted by time) over
/// [t0, t1] (epoch seconds). Error when t1 < t0 or the samples do not cover [t0, t1].
double integrate_power(std::span<const PowerSample> samples, double t0, double t1);

/// Parses a whole trace held in memory; `name` labels errors ("NAME:LINE: problem").
std::vector<PowerSample> parse_power_trace(std::string_view text, const std::filesystem::path& name);

/// Reads a whole trace file (not live). Malformed content is an Error "FILE:LINE: problem".
std::vector<PowerSample> read_power_trace(const std::filesystem::path& file);

}  // namespace irene::measure
