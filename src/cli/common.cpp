// The parts of the command line both entry points share: building and running the app, and
// handing model execution to irene-measure.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "irene/arch/builder.hpp"
#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"

namespace irene::cli {

namespace fs = std::filesystem;

namespace {
ProfileHook& hook_slot() {
  static ProfileHook hook;
  return hook;
}

constexpr const char* kNoTorch =
    "'irene {}' executes models with libtorch, which this build does not include: install libtorch-dev "
    "(scripts/install-deps.sh) and build with -DIRENE_WITH_TORCH=ON, which adds the helper irene-measure "
    "beside irene";
}  // namespace

std::optional<double> parse_carbon_intensity(const std::string& text) { return explain::parse_carbon_intensity(text); }

void set_profile_hook(ProfileHook hook) { hook_slot() = std::move(hook); }
const ProfileHook& profile_hook() { return hook_slot(); }

void add_pass_options(CLI::App* cmd, PassArgs& a, bool with_head) {
  for (const auto& o : explain::pass_options())
    if (with_head || o.keyword != "head") add_option(cmd, a, o, false);
}

void register_version(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print irene's version");
  cmd->callback([] { fmt::print("irene {}\n", IRENE_VERSION); });
}

void register_measure_placeholders(CLI::App& app) {
  for (auto [name, what] : {std::pair{"profile", "Run every node of a model's tree with libtorch on this machine and "
                                                 "measure time, resource use and (with a sensor) energy per forward pass"},
                            std::pair{"collect", "Profile a grid of models x batch sizes x sequence lengths into one "
                                                 "dataset (JSONL) that 'irene train' reads; interruptible, a rerun resumes"}}) {
    auto* cmd = app.add_subcommand(name, what);
    cmd->allow_extras();
    cmd->callback([n = std::string(name)] { throw Error(fmt::format(kNoTorch, n)); });
  }
}

int run(int argc, char** argv, const std::function<void(CLI::App&)>& register_measure_commands) {
  CLI::App app{"irene: predict, measure and explain the inference energy of Transformer models", "irene"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("irene ") + IRENE_VERSION);
  register_version(app);
  register_sensors(app);
  register_tree(app);
  register_data(app);
  register_explain(app);
  register_measure_commands(app);
  register_predict(app);
  register_serving(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print and succeed; every other parse error (an unknown option, a value
    // out of its range, a missing argument) is one line like any other bad input, exit 1.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    bool known = false;
    for (const auto* sub : app.get_subcommands({}))
      if (argc > 1 && sub->get_name() == argv[1]) known = true;
    std::cerr << "irene: error: " << e.what()
              << (known ? fmt::format(" (irene {} --help lists its options)", argv[1])
                        : std::string(" (irene --help lists the commands)"))
              << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "irene: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

bool needs_measure_helper(int argc, char** argv) {
  if (argc < 2) return false;
  const std::string cmd = argv[1];
  if (cmd == "profile" || cmd == "collect") return true;
  if (cmd == "predict")
    for (int i = 2; i < argc; ++i)
      if (std::strcmp(argv[i], "--profile") == 0) return true;
  return false;
}

int exec_measure_helper(int argc, char** argv) {
  (void)argc;
  fs::path helper;
  if (const char* env = std::getenv("IRENE_MEASURE"); env && *env) {
    helper = env;
  } else {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    helper = (ec ? fs::path(argv[0]).parent_path() : self.parent_path()) / "irene-measure";
  }
  if (::access(helper.c_str(), X_OK) == 0) {
    ::execv(helper.c_str(), argv);
    std::cerr << fmt::format("irene: error: cannot start {}: {}\n", helper.string(), std::strerror(errno));
    return 1;
  }
  std::cerr << "irene: error: " << fmt::format(kNoTorch, argv[1]) << " (" << helper.string() << " is missing)\n";
  return 1;
}

}  // namespace irene::cli
