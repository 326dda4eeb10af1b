// irene <command>: the command line over irene's core. This binary never loads libtorch: the
// commands that execute models (profile, collect, predict --profile) are handed to irene-measure
// (main_measure.cpp) with the same arguments.
#include "commands.hpp"
#include "irene/core/interrupt.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // Large buffers (a cross-validation fit's feature matrix and work arrays, tens of MB each) stay
  // in the heap when freed instead of being unmapped and faulted in again by the next fit:
  // crossval --config paper spent about a quarter of its time in page faults (bench/RESULTS.md).
  // Untouched heap pages cost no memory; a small command's peak RSS is unchanged.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  irene::interrupt::install();  // Ctrl-C / SIGTERM: clean exit, no temporary files
  if (irene::cli::needs_measure_helper(argc, argv)) return irene::cli::exec_measure_helper(argc, argv);
  return irene::cli::run(argc, argv, irene::cli::register_measure_placeholders);
}
