// irene <command>: a thin command line over libirene.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "commands.hpp"
#include "irene/core/error.hpp"
#include "irene/core/interrupt.hpp"
#include "irene/measure/blas.hpp"

namespace irene::cli {

void register_version(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print irene's version");
  cmd->callback([] { fmt::print("irene {}\n", IRENE_VERSION); });
}

}  // namespace irene::cli

int main(int argc, char** argv) {
  irene::measure::ensure_fast_blas(argc, argv);  // OpenBLAS kernel for this CPU (may re-exec once)
  irene::interrupt::install();                   // Ctrl-C / SIGTERM: clean exit, no temporary files
  CLI::App app{"irene: predict, measure and explain the inference energy of Transformer models",
               "irene"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("irene ") + IRENE_VERSION);
  irene::cli::register_version(app);
  irene::cli::register_sensors(app);
  irene::cli::register_tree(app);
  irene::cli::register_data(app);
  irene::cli::register_explain(app);
  irene::cli::register_measure(app);
  irene::cli::register_predict(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const irene::Error& e) {
    std::cerr << "irene: error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "irene: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
