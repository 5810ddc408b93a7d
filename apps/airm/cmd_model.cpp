// airm model: what a configuration (or a weights file) builds: parameters
// and GFLOPs per module; and re-export (fp16) or average weights files.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "airm/model/cost.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/weight_averaging.hpp"
#include "airm/model/weights.hpp"
#include "airm/model/weights_file.hpp"
#include "commands.hpp"

namespace airm::cli {
namespace {

struct ModelArgs {
  std::string config;
  std::string weights;
  std::string size = "224x224";
  bool json = false;
  std::string export_to;
  bool half = false;
  std::vector<std::string> average;
  std::vector<double> coefficients;
};

int run_average(const ModelArgs& args) {
  if (!args.config.empty() || !args.weights.empty()) throw UsageError("--average replaces --config and --weights");
  if (args.export_to.empty()) throw UsageError("--average needs --export FILE (where the mean is written)");
  if (!args.coefficients.empty() && args.coefficients.size() != args.average.size()) {
    throw UsageError("expected one --coefficients value per --average file (" + std::to_string(args.average.size()) +
                     "), got " + std::to_string(args.coefficients.size()));
  }
  SaveOptions options;
  options.half = args.half;
  const std::vector<std::filesystem::path> inputs(args.average.begin(), args.average.end());
  average_weights_files(inputs, args.coefficients, args.export_to, options);  // atomic
  std::printf("wrote %s: the mean of %zu weights files (%s storage)\n", args.export_to.c_str(), inputs.size(),
              args.half ? "fp16" : "as the first file's");
  return 0;
}

int run_model(const ModelArgs& args) {
  if (!args.average.empty()) return run_average(args);
  if (!args.coefficients.empty()) throw UsageError("--coefficients goes with --average");
  if (args.config.empty() == args.weights.empty()) throw UsageError("expected exactly one of --config and --weights");
  if (!args.export_to.empty()) {
    if (args.weights.empty()) throw UsageError("--export needs --weights FILE");
    SaveOptions options;
    options.half = args.half;
    if (read_weights_kind(args.weights) == "segmenter") {
      SegmenterNet net = load_segmenter_weights(args.weights);
      save_segmenter_weights(args.export_to, net, options);  // atomic
    } else {
      AirmNet net = load_weights(args.weights);
      save_weights(args.export_to, net, options);  // atomic
    }
    std::printf("wrote %s (%s storage)\n", args.export_to.c_str(), args.half ? "fp16" : "fp32");
    return 0;
  }
  if (args.half) throw UsageError("--half goes with --export");
  const cv::Size size = parse_size(args.size);
  const ModelConfig config = args.config.empty() ? read_weights_config(args.weights) : ModelConfig::load(args.config);
  AirmNet net(config);
  const ModelCost cost = measure_model_cost(net, size.height, size.width);
  if (args.json) {
    nlohmann::json doc = {{"config", config.to_json()},
                          {"input", {size.width, size.height}},
                          {"parameters", cost.parameters},
                          {"gflops_per_image", cost.gflops_per_image},
                          {"implicit_gflops_per_million_queries", cost.implicit_gflops_per_million_queries}};
    for (const ModuleCost& m : cost.modules) {
      doc["modules"].push_back({{"module", m.module}, {"parameters", m.parameters}, {"gflops", m.gflops}});
    }
    std::printf("%s\n", doc.dump(2).c_str());
    return 0;
  }
  std::printf("%s: encoder %s, %s%s, input %dx%d (W x H)\n", config.name.c_str(), config.encoder.c_str(),
              config.mapping.c_str(), config.affinity ? " + affinity" : "", size.width, size.height);
  std::printf("%-14s %14s %10s\n", "module", "parameters", "GFLOPs");
  for (const ModuleCost& m : cost.modules) {
    std::printf("%-14s %14lld %10.3f%s\n", m.module.c_str(), static_cast<long long>(m.parameters), m.gflops,
                m.module == "implicit" ? "  (one query per pixel)" : "");
  }
  std::printf("%-14s %14lld %10.3f  (without queries)\n", "total", static_cast<long long>(cost.parameters),
              cost.gflops_per_image);
  std::printf("implicit function: %.3f GFLOPs per million queries\n", cost.implicit_gflops_per_million_queries);
  std::printf("GFLOPs = 2 x multiply-adds of convolutions and matrix products (LibTorch profiler)\n");
  return 0;
}

}  // namespace

Runner add_model_command(CLI::App& app) {
  auto args = std::make_shared<ModelArgs>();
  CLI::App* sub = app.add_subcommand("model", "Parameters and GFLOPs per module of a config or weights file");
  sub->add_option("--config", args->config, "Model config (configs/*.json)");
  sub->add_option("--weights", args->weights, "Or a weights file (its stored config)");
  sub->add_option("--size", args->size, "Input WIDTHxHEIGHT")->capture_default_str();
  sub->add_flag("--json", args->json, "Print JSON");
  sub->add_option("--export", args->export_to,
                  "Write the --weights file (refiner or segmenter) again to this path (e.g. for shipping)");
  sub->add_flag("--half", args->half, "With --export: fp16 storage (loaded back as fp32)");
  sub->add_option("--average", args->average,
                  "Weights files of one network (same config) to average into --export (checkpoint averaging)")
      ->expected(1, -1);
  sub->add_option("--coefficients", args->coefficients,
                  "With --average: one non-negative weight per file, summing to 1 (default: equal)")
      ->delimiter(',');
  return [args] { return run_model(*args); };
}

}  // namespace airm::cli
