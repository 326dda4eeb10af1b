// One register function per command group; main.cpp calls each of them. A command parses
// its options with CLI11, calls libirene, and prints. No logic beyond that lives in src/cli.
#pragma once

#include <CLI/CLI.hpp>

namespace irene::cli {

void register_version(CLI::App& app);
void register_sensors(CLI::App& app);
void register_tree(CLI::App& app);  // cmd_tree.cpp
void register_data(CLI::App& app);  // cmd_data.cpp
void register_explain(CLI::App& app);  // cmd_explain.cpp: explain, compare, sweep, report, serve
void register_measure(CLI::App& app);  // cmd_measure.cpp: profile, collect
void register_predict(CLI::App& app);  // cmd_predict.cpp: train, predict, evaluate, crossval

}  // namespace irene::cli
