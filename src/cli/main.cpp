// irene <command>: the command line over irene's core. This binary never loads libtorch: the
// commands that execute models (profile, collect, predict --profile) are handed to irene-measure
// (main_measure.cpp) with the same arguments.
#include "commands.hpp"
#include "irene/core/interrupt.hpp"

int main(int argc, char** argv) {
  irene::interrupt::install();  // Ctrl-C / SIGTERM: clean exit, no temporary files
  if (irene::cli::needs_measure_helper(argc, argv)) return irene::cli::exec_measure_helper(argc, argv);
  return irene::cli::run(argc, argv, irene::cli::register_measure_placeholders);
}
