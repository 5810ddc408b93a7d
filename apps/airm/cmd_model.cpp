// airm model: what a configuration (or a weights file) builds: parameters
// and GFLOPs per module; and re-export (fp16) or average weights files.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "airm/model/cost.hpp"
#include "airm/model/pretrained.hpp"
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
  std::string import_tflite;
  std::string arch;
};

int run_import(const ModelArgs& args) {
  if (!args.config.empty() || !args.weights.empty() || !args.average.empty()) {
    throw UsageError("--import-tflite replaces --config, --weights and --average");
  }
  if (args.arch.empty()) throw UsageError("--import-tflite needs --arch mobilenet_v2|deeplabv3_mnv2");
  if (args.export_to.empty()) throw UsageError("--import-tflite needs --export FILE (where our weights file goes)");
  if (args.half) throw UsageError("--import-tflite writes fp32 (the dequantised weights); --half is for re-exports");
  const PretrainedInfo info = import_tflite_file(args.import_tflite, args.arch, args.export_to);  // atomic
  std::printf("wrote %s: %s, width %g, %lld classes, from %s\n", args.export_to.c_str(), info.arch.c_str(), info.width,
              static_cast<long long>(info.num_classes), info.source.c_str());
  return 0;
}

void print_rows(const std::vector<ModuleCost>& rows) {
  std::printf("%-14s %14s %10s\n", "module", "parameters", "GFLOPs");
  int64_t parameters = 0;
  double gflops = 0;
  for (const ModuleCost& m : rows) {
    std::printf("%-14s %14lld %10.3f\n", m.module.c_str(), static_cast<long long>(m.parameters), m.gflops);
    parameters += m.parameters;
    gflops += m.gflops;
  }
  std::printf("%-14s %14lld %10.3f\n", "total", static_cast<long long>(parameters), gflops);
  std::printf("GFLOPs = 2 x multiply-adds of convolutions and matrix products (LibTorch profiler)\n");
}

nlohmann::json rows_json(const std::vector<ModuleCost>& rows) {
  nlohmann::json doc;
  int64_t parameters = 0;
  double gflops = 0;
  for (const ModuleCost& m : rows) {
    doc["modules"].push_back({{"module", m.module}, {"parameters", m.parameters}, {"gflops", m.gflops}});
    parameters += m.parameters;
    gflops += m.gflops;
  }
  doc["parameters"] = parameters;
  doc["gflops_per_image"] = gflops;
  return doc;
}

// Parameters and GFLOPs of a segmenter (trained or imported): backbone (with
// the ASPP for MobileNetV2) and decoder.
int print_segmenter_cost(const ModelArgs& args, const cv::Size& size) {
  SegmenterNet net = load_segmenter_weights(args.weights);
  net->eval();
  const SegmenterConfig& config = net->config();
  const torch::Tensor x = torch::randn({1, 3, size.height, size.width});
  ModuleCost backbone = measure_module_cost("backbone", *net, [&] { net->backbone_stages(x); });
  ModuleCost decoder = measure_module_cost("decoder", *net, [&] { net->forward(x); });
  int64_t backbone_parameters = 0;
  for (const auto& item : net->named_parameters()) {
    if (item.key().rfind("backbone.", 0) == 0 || item.key().rfind("aspp.", 0) == 0) {
      backbone_parameters += item.value().numel();
    }
  }
  decoder.parameters -= backbone_parameters;
  decoder.gflops -= backbone.gflops;
  backbone.parameters = backbone_parameters;
  const std::vector<ModuleCost> rows{backbone, decoder};
  if (args.json) {
    nlohmann::json doc = rows_json(rows);
    doc["config"] = config.to_json();
    doc["input"] = {size.width, size.height};
    std::printf("%s\n", doc.dump(2).c_str());
    return 0;
  }
  std::printf("%s: segmenter, encoder %s, decoder %s, %lld classes, input %dx%d (W x H)\n", config.name.c_str(),
              config.encoder.c_str(), config.decoder.c_str(), static_cast<long long>(config.num_classes), size.width,
              size.height);
  print_rows(rows);
  return 0;
}

// Parameters and GFLOPs of an imported classifier, by part.
int print_pretrained_cost(const ModelArgs& args, const cv::Size& size) {
  const PretrainedInfo info = read_pretrained_info(args.weights);
  const torch::Tensor x = torch::randn({1, 3, size.height, size.width});
  std::vector<ModuleCost> rows;
  {
    MobileNetV2 net = load_pretrained_classifier(args.weights);
    net->eval();
    torch::Tensor last;
    rows.push_back(measure_module_cost("encoder", *net, [&] { last = net->features(x).stages.back(); }));
    ModuleCost head = measure_module_cost("head", *net->head, [&] {
      net->classifier->forward(net->head->forward(last).mean({2, 3}, true));
    });
    head.parameters += net->classifier->weight.numel() + net->classifier->bias.numel();
    rows.back().parameters -= head.parameters;  // the stem and blocks only
    rows.push_back(head);
  }
  if (args.json) {
    nlohmann::json doc = rows_json(rows);
    doc.update({{"arch", info.arch}, {"width", info.width}, {"num_classes", info.num_classes},
                {"source", info.source}, {"input", {size.width, size.height}}});
    std::printf("%s\n", doc.dump(2).c_str());
    return 0;
  }
  std::printf("%s (pretrained, width %g, %lld classes, from %s), input %dx%d (W x H)\n", info.arch.c_str(), info.width,
              static_cast<long long>(info.num_classes), info.source.c_str(), size.width, size.height);
  print_rows(rows);
  return 0;
}

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
  if (!args.import_tflite.empty()) return run_import(args);
  if (!args.arch.empty()) throw UsageError("--arch goes with --import-tflite");
  if (!args.average.empty()) return run_average(args);
  if (!args.coefficients.empty()) throw UsageError("--coefficients goes with --average");
  if (args.config.empty() == args.weights.empty()) throw UsageError("expected exactly one of --config and --weights");
  const std::string kind = args.weights.empty() ? "" : read_weights_kind(args.weights);
  if (!args.export_to.empty()) {
    if (args.weights.empty()) throw UsageError("--export needs --weights FILE");
    if (kind == "pretrained") throw UsageError("--export of an imported file: import it again with --import-tflite");
    SaveOptions options;
    options.half = args.half;
    if (kind == "segmenter") {
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
  if (kind == "pretrained") return print_pretrained_cost(args, size);
  if (kind == "segmenter") return print_segmenter_cost(args, size);
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
  sub->add_option("--import-tflite", args->import_tflite,
                  "A TensorFlow Lite file of MobileNetV2 or DeepLabV3-MobileNetV2 to import into --export");
  sub->add_option("--arch", args->arch, "With --import-tflite: mobilenet_v2 (ImageNet classifier) or deeplabv3_mnv2");
  return [args] { return run_model(*args); };
}

}  // namespace airm::cli
