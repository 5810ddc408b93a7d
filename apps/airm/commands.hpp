// The airm subcommands: each registers itself on the CLI and returns the
// function that runs it once the command line has been parsed.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <opencv2/core.hpp>
#include <torch/torch.h>

namespace airm::cli {

using Runner = std::function<int()>;

// A command line that parsed but makes no sense: exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Runner add_eval_command(CLI::App& app);
Runner add_degrade_command(CLI::App& app);
Runner add_synth_command(CLI::App& app);
Runner add_model_command(CLI::App& app);
Runner add_train_command(CLI::App& app);
Runner add_refine_command(CLI::App& app);
Runner add_segment_command(CLI::App& app);
Runner add_baseline_command(CLI::App& app);

// "WIDTHxHEIGHT" -> size; throws UsageError.
cv::Size parse_size(const std::string& text);

// "cpu", "cuda" or "cuda:N" (available on this build and machine); throws UsageError.
torch::Device parse_device(const std::string& text);

// "auto" -> {} (the automatic schedule), else comma-separated numbers; their range and order are
// RefineOptions::validate's to check. Throws UsageError.
std::vector<double> parse_scales(const std::string& text);

}  // namespace airm::cli
