// airm: refine coarse masks of ultra-high-resolution photos (and the tools
// around it). Exit codes: 0 success, 1 bad input or failure, 2 usage error.
#include <cstdio>
#include <exception>
#include <map>

#include <torch/torch.h>

#include "airm/error.hpp"
#include "commands.hpp"
#include "local_workers.hpp"

namespace airm::cli {

}  // namespace airm::cli

int main(int argc, char** argv) {
  // Denormal floats (trained weights that weight decay shrank toward zero, and activations built from them)
  // cost about 5x per operation on x86: flush them to zero. Set here, before LibTorch starts its thread pool,
  // so that every worker thread inherits the mode (docs/DESIGN.md, "Denormals").
  at::globalContext().setFlushDenormal(true);
  airm::cli::set_command_line(argc, argv);
  CLI::App app("airm: adaptive implicit representation mapping for ultra-high-resolution mask refinement");
  app.require_subcommand(1);
  std::map<CLI::App*, airm::cli::Runner> runners;
  for (auto add : {airm::cli::add_eval_command, airm::cli::add_degrade_command, airm::cli::add_synth_command,
                   airm::cli::add_train_command,
                   airm::cli::add_refine_command, airm::cli::add_segment_command, airm::cli::add_baseline_command,
                   airm::cli::add_model_command}) {
    airm::cli::Runner runner = add(app);
    runners[app.get_subcommands({}).back()] = std::move(runner);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "error: %s\nrun 'airm --help' for usage\n", e.what());
    return 2;
  }
  try {
    for (auto& [sub, run] : runners) {
      if (sub->parsed()) return run();
    }
    return 2;
  } catch (const airm::cli::UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
