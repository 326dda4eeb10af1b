// irene-measure: the same command line as irene plus the commands that execute models with
// libtorch (profile, collect, predict --profile). `irene` starts it in its place for those
// commands; it can also be run directly.
#include <fmt/format.h>

#include <iostream>

#include "commands.hpp"
#include "irene/core/interrupt.hpp"
#include "irene/core/tree.hpp"
#include "irene/measure/blas.hpp"
#include "irene/measure/profile.hpp"
#include "irene/predict/predictor.hpp"

int main(int argc, char** argv) {
  irene::measure::ensure_fast_blas(argc, argv);  // OpenBLAS kernel for this CPU (may re-exec once)
  irene::interrupt::install();                   // Ctrl-C / SIGTERM: clean exit, no temporary files
  irene::cli::set_profile_hook([](irene::Tree& tree, const irene::Predictor& predictor) {
    irene::measure::profile_for_prediction(tree, predictor.feature_names());
  });
  return irene::cli::run(argc, argv, irene::cli::register_measure);
}
