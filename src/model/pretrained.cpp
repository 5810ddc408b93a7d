// Pretrained weights files: import, describe, load.
#include "airm/model/pretrained.hpp"

#include <cmath>

#include "airm/error.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/model/tflite.hpp"
#include "airm/model/tflite_import.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/weights_file.hpp"

namespace airm {
namespace {

const char* kKind = "pretrained";

nlohmann::json info_json(const PretrainedInfo& info) {
  return {{"arch", info.arch}, {"width", info.width}, {"num_classes", info.num_classes}, {"source", info.source}};
}

PretrainedInfo info_from(const nlohmann::json& config, const std::string& source) {
  PretrainedInfo info;
  try {
    info.arch = config.at("arch").get<std::string>();
    info.width = config.at("width").get<double>();
    info.num_classes = config.at("num_classes").get<int64_t>();
    info.source = config.value("source", std::string());
  } catch (const nlohmann::json::exception& e) {
    throw Error(source, std::string("expected a pretrained config {arch, width, num_classes}, got ") + config.dump() +
                            " (" + e.what() + ")");
  }
  if (info.arch != "mobilenet_v2") {
    throw Error(source, "arch: expected mobilenet_v2, got '" + info.arch + "'");
  }
  return info;
}

WeightsFileContents read_pretrained(const std::filesystem::path& path, PretrainedInfo* info) {
  WeightsFileContents contents = read_weights_file(path, kKind, kPretrainedFormatVersion);
  *info = info_from(contents.config, path.string());
  return contents;
}

}  // namespace

PretrainedInfo import_tflite_file(const std::filesystem::path& tflite, const std::string& arch,
                                  const std::filesystem::path& out) {
  if (arch != "mobilenet_v2" && arch != "deeplabv3_mnv2") {
    throw Error(tflite.string(), "--arch: expected mobilenet_v2 or deeplabv3_mnv2, got '" + arch + "'");
  }
  const TfliteModel model = read_tflite(tflite);
  PretrainedInfo info;
  info.arch = arch;
  info.source = tflite.filename().string();
  if (arch == "mobilenet_v2") {
    MobileNetV2 net = import_mobilenet_v2_classifier(model);
    info.width = net->options().width();
    info.num_classes = net->options().num_classes();
    write_weights_file(out, *net, kKind, kPretrainedFormatVersion, info_json(info));  // atomic
  } else {
    SegmenterNet net = import_deeplabv3_mnv2(model);
    info.width = net->config().mobilenet_width();
    info.num_classes = net->config().num_classes;
    save_segmenter_weights(out, net);  // atomic
  }
  return info;
}

PretrainedInfo read_pretrained_info(const std::filesystem::path& path) {
  PretrainedInfo info;
  read_pretrained(path, &info);
  return info;
}

MobileNetV2 load_pretrained_classifier(const std::filesystem::path& path) {
  PretrainedInfo info;
  WeightsFileContents contents = read_pretrained(path, &info);
  MobileNetV2 net(MobileNetV2Options().in_channels(3).width(info.width).output_stride(32).num_classes(info.num_classes));
  load_weights_tensors(*net, std::move(contents.tensors), path.string());
  return net;
}

void load_pretrained_encoder(MobileNetV2& encoder, const std::filesystem::path& path) {
  const std::string source = path.string();
  const std::string kind = read_weights_kind(path);
  double width = 0;
  std::string prefix;
  WeightsFileContents contents;
  if (kind == "segmenter") {
    contents = read_weights_file(path, "segmenter", kSegmenterWeightsFormatVersion);
    const SegmenterConfig config = SegmenterConfig::from_json(contents.config, source);
    if (!config.uses_mobilenet()) {
      throw Error(source, "a segmenter with a MobileNetV2 backbone", "encoder " + config.encoder);
    }
    width = config.mobilenet_width();
    prefix = "backbone.";
  } else {
    PretrainedInfo info;
    contents = read_pretrained(path, &info);
    width = info.width;
  }
  if (std::abs(width - encoder->options().width()) > 1e-9) {
    throw Error(source, "a MobileNetV2 of width " + std::to_string(encoder->options().width()),
                "width " + std::to_string(width));
  }
  TensorDict dict;
  for (auto& [key, tensor] : contents.tensors) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string name = key.substr(prefix.size());
    if (name.rfind("head.", 0) == 0 || name.rfind("classifier.", 0) == 0) continue;
    dict[name] = tensor;
  }
  // The stem of a network with extra input channels: RGB weights, zeros for the rest.
  auto stem = dict.find("stem.weight");
  const int64_t in = encoder->options().in_channels();
  if (stem != dict.end() && stem->second.dim() == 4 && stem->second.size(1) == 3 && in > 3) {
    torch::Tensor wide = torch::zeros({stem->second.size(0), in, stem->second.size(2), stem->second.size(3)},
                                      stem->second.options());
    wide.narrow(1, 0, 3).copy_(stem->second);
    stem->second = wide;
  }
  // Everything the encoder has must come from the file (strides and
  // dilations are not tensors: any output stride loads).
  load_weights_tensors(*encoder, std::move(dict), source);
}

}  // namespace airm
