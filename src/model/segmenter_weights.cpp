#include "airm/model/segmenter_weights.hpp"

#include "airm/error.hpp"
#include "airm/model/denormals.hpp"
#include "airm/model/pretrained.hpp"

namespace airm {
namespace {
constexpr const char* kKind = "segmenter";

WeightsFileContents read_segmenter_file(const std::filesystem::path& path) {
  return read_weights_file(path, kKind, kSegmenterWeightsFormatVersion);
}
}  // namespace

void save_segmenter_weights(const std::filesystem::path& path, SegmenterNet& net, const SaveOptions& options) {
  if (net.is_empty()) throw Error(path.string(), "save_segmenter_weights: expected a network, got none");
  write_weights_file(path, *net, kKind, kSegmenterWeightsFormatVersion, net->config().to_json(), options);
}

SegmenterConfig read_segmenter_weights_config(const std::filesystem::path& path) {
  return SegmenterConfig::from_json(read_segmenter_file(path).config, path.string());
}

SegmenterNet load_segmenter_weights(const std::filesystem::path& path) {
  WeightsFileContents file = read_segmenter_file(path);
  SegmenterNet net(SegmenterConfig::from_json(file.config, path.string()));
  load_weights_tensors(*net, std::move(file.tensors), path.string());
  zero_denormal_weights(*net);  // a new network is for inference or an init: no resume to keep bit-exact
  return net;
}

void load_segmenter_weights_into(SegmenterNet& net, const std::filesystem::path& path) {
  WeightsFileContents file = read_segmenter_file(path);
  const SegmenterConfig config = SegmenterConfig::from_json(file.config, path.string());
  if (config.to_json() != net->config().to_json()) {
    throw Error(path.string(), "weights for the segmenter " + net->config().to_json().dump(),
                "weights for " + config.to_json().dump());
  }
  load_weights_tensors(*net, std::move(file.tensors), path.string());
}

void load_segmenter_backbone(SegmenterNet& net, const std::filesystem::path& path) {
  if (net->backbone_) {
    load_mit_state_dict(net->backbone_, path);
    return;
  }
  load_pretrained_encoder(net->mobilenet_, path);
  // An imported DeepLabV3 also brings its ASPP (the decoder's deepest map).
  if (read_weights_kind(path) != "segmenter") return;
  const WeightsFileContents contents = read_weights_file(path, "segmenter", kSegmenterWeightsFormatVersion);
  TensorDict aspp, classifier;
  for (const auto& [key, tensor] : contents.tensors) {
    if (key.rfind("aspp.", 0) == 0) aspp[key.substr(5)] = tensor;
    if (key.rfind("classifier.", 0) == 0) classifier[key.substr(11)] = tensor;
  }
  if (!aspp.empty()) load_weights_tensors(*net->aspp_, std::move(aspp), path.string());
  if (!net->prior_) return;
  // The prior is DeepLabV3's own classifier: only a deeplabv3 file has one that reads the ASPP.
  const SegmenterConfig source = SegmenterConfig::from_json(contents.config, path.string());
  if (source.decoder != "deeplabv3" || source.num_classes != net->config().prior_classes) {
    throw Error(path.string(),
                "a DeepLabV3 segmenter (decoder deeplabv3) with " + std::to_string(net->config().prior_classes) +
                    " classes for the foreground prior",
                "decoder " + source.decoder + " with " + std::to_string(source.num_classes) + " classes");
  }
  load_weights_tensors(*net->prior_, std::move(classifier), path.string());
}

}  // namespace airm
