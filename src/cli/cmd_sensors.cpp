// irene sensors: which energy sensors work on this machine (and why not), and reading one.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "commands.hpp"
#include "irene/measure/sensor.hpp"

namespace irene::cli {

namespace {

const char* failure_name(measure::SensorFailure f) {
  switch (f) {
    case measure::SensorFailure::absent: return "absent";
    case measure::SensorFailure::not_counting: return "not counting";
    case measure::SensorFailure::no_permission: return "no permission";
    case measure::SensorFailure::broken: return "error";
  }
  return "error";
}

void list_sensors() {
  fmt::print("{:<12} {:<14} {}\n", "sensor", "status", "covers / why not");
  for (const auto& a : measure::probe_sensors()) {
    fmt::print("{:<12} {:<14} {}\n", a.name,
               a.available ? "available" : failure_name(*a.failure), a.detail);
  }
  fmt::print("{:<12} {:<14} {}\n", "trace:FILE", "on request",
             "a power-meter log: CSV 'timestamp,watts' (Unix epoch seconds), may be live");
  fmt::print("{:<12} {:<14} {}\n", "none", "always", "no energy is measured (times and features only)");
  try {
    auto s = measure::make_sensor("auto");
    fmt::print("{:<12} {:<14} {}\n", "auto", fmt::format("-> {}", s->name()),
               s->measures_energy() ? s->covers() : "no energy sensor here: no energy is measured");
  } catch (const measure::SensorError& e) {
    fmt::print("{:<12} {:<14} {}\n", "auto", "-> error", e.what());
  }
}

}  // namespace

void register_sensors(CLI::App& app) {
  auto* cmd = app.add_subcommand("sensors", "List the energy sensors usable here, or read one");
  cmd->require_subcommand(0, 1);

  auto* read = cmd->add_subcommand("read", "Measure energy over a window of idle seconds");
  auto meter = std::make_shared<std::string>("auto");
  auto seconds = std::make_shared<double>(1.0);
  read->add_option("--meter", *meter, "auto|rapl|perf|nvml|rapl+nvml|perf+nvml|trace:FILE|none")->capture_default_str();
  read->add_option("--seconds", *seconds, "window length, seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  read->callback([meter, seconds] {
    auto sensor = measure::make_sensor(*meter);
    if (!sensor->notes().empty()) std::cerr << sensor->notes() << '\n';
    fmt::print("sensor {}: {}\n", sensor->name(), sensor->covers());
    const measure::IdlePower idle = measure::measure_idle_power(*sensor, *seconds);
    measure::Measurement m;
    m.seconds = idle.seconds;
    m.joules = idle.joules;
    fmt::print("{}\n", m.to_string(sensor->name()));
  });

  cmd->callback([cmd] {
    if (cmd->get_subcommands().empty()) list_sensors();
  });
}

}  // namespace irene::cli
