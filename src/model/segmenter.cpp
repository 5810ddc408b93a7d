#include "airm/model/segmenter.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"

namespace airm {
namespace nn = torch::nn;

namespace {
constexpr int64_t kStages = 4;
constexpr int64_t kAsppChannels = 256;  // DeepLabV3's

nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t kernel) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(false)),
                        nn::BatchNorm2d(out), nn::ReLU(nn::ReLUOptions(true)));
}

// DeepLabV3's logits: a conv1x1 on the ASPP map, upsampled as TensorFlow's graph does (align_corners).
// aspp [B,256,h,w] -> [B,K,H,W]
torch::Tensor deeplab_logits(nn::Conv2d classifier, const torch::Tensor& aspp, int64_t h, int64_t w) {
  namespace F = torch::nn::functional;
  return F::interpolate(classifier->forward(aspp), F::InterpolateFuncOptions()
                                                       .size(std::vector<int64_t>{h, w})
                                                       .mode(torch::kBilinear)
                                                       .align_corners(true));
}

torch::Device device_of(const torch::nn::Module& module) {
  const auto params = module.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

// Restores a module's train/eval mode when leaving a scope.
class ModeGuard {
 public:
  explicit ModeGuard(torch::nn::Module& module) : module_(module), training_(module.is_training()) {}
  ~ModeGuard() { module_.train(training_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool training_;
};
}  // namespace

torch::Tensor normalize_rgb(const torch::Tensor& rgb) {
  TORCH_CHECK(rgb.dim() == 4 && rgb.size(1) == 3, "expected rgb [B,3,H,W], got ", rgb.sizes());
  const auto opts = rgb.options();
  const torch::Tensor mean = torch::tensor({0.485, 0.456, 0.406}, opts).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor({0.229, 0.224, 0.225}, opts).view({1, 3, 1, 1});
  return (rgb - mean) / std;
}

SegmenterNetImpl::SegmenterNetImpl(SegmenterConfig config) : config_(std::move(config)) {
  config_.validate();
  std::vector<int64_t> dims;
  if (config_.uses_mobilenet()) {
    mobilenet_ = register_module(
        "backbone", MobileNetV2(MobileNetV2Options().in_channels(3).width(config_.mobilenet_width()).output_stride(16)));
    const std::vector<int64_t> all = mobilenet_->stage_channels();  // strides 2/4/8/16/16
    aspp_ = register_module("aspp", Aspp(all.back(), kAsppChannels));
    dims = {all[1], all[2], all[3], kAsppChannels};
  } else {
    backbone_ = register_module("backbone", Mit(config_.mit_options()));
    dims = backbone_->options().embed_dims();
  }
  if (config_.decoder == "deeplabv3") {
    classifier_ = register_module("classifier", nn::Conv2d(nn::Conv2dOptions(kAsppChannels, config_.num_classes, 1)));
    return;
  }
  const int64_t d = config_.decoder_dim;
  laterals_ = register_module("lateral", nn::ModuleList());
  for (int64_t i = 0; i < kStages; ++i) laterals_->push_back(conv_bn_relu(dims[i], d, 1));
  fuses_ = register_module("fuse", nn::ModuleList());
  for (int64_t i = 0; i + 1 < kStages; ++i) fuses_->push_back(conv_bn_relu(d, d, 3));
  if (config_.srm) {
    srms_ = register_module("srm", nn::ModuleList());
    for (int64_t i = 0; i + 1 < kStages; ++i) {
      srms_->push_back(SemanticRefinementModule(SemanticRefinementModuleOptions(d).hidden(config_.srm_hidden)));
    }
  }
  if (config_.contextual) {
    contextual_ = register_module(
        "contextual", ContextualRefinementModule(
                          ContextualRefinementModuleOptions(kStages * d, d).reduction(config_.context_reduction)));
  }
  classifier_ = register_module("classifier", nn::Conv2d(nn::Conv2dOptions(d, config_.num_classes, 1)));
  if (config_.prior_classes > 0) {
    prior_ = register_module("prior", nn::Conv2d(nn::Conv2dOptions(kAsppChannels, config_.prior_classes, 1)));
    torch::NoGradGuard no_grad;
    classifier_->weight.zero_();
    classifier_->bias.zero_();
  }
}

std::vector<torch::Tensor> SegmenterNetImpl::backbone_stages(const torch::Tensor& rgb_normalised) {
  // rgb_normalised [B,3,H,W] -> 4 maps (strides 4/8/16/32, or 4/8/16/16 for MobileNetV2)
  if (backbone_) return backbone_->forward(rgb_normalised).stages;
  std::vector<torch::Tensor> maps = mobilenet_->features(imagenet_to_mobilenet_input(rgb_normalised)).stages;
  return {maps[1], maps[2], maps[3], aspp_->forward(maps[4])};
}

torch::Tensor SegmenterNetImpl::forward(const torch::Tensor& rgb_normalised, std::vector<torch::Tensor>* offsets) {
  TORCH_CHECK(rgb_normalised.dim() == 4 && rgb_normalised.size(1) == 3, "segmenter: expected rgb [B,3,H,W], got ",
              rgb_normalised.sizes());
  const int64_t h = rgb_normalised.size(2), w = rgb_normalised.size(3);
  const std::vector<torch::Tensor> stages = backbone_stages(rgb_normalised);
  if (offsets) offsets->clear();
  if (config_.decoder == "deeplabv3") return deeplab_logits(classifier_, stages.back(), h, w);  // [B,K,H,W]
  std::vector<torch::Tensor> lateral;
  for (int64_t i = 0; i < kStages; ++i) lateral.push_back(laterals_[i]->as<nn::Sequential>()->forward(stages[i]));
  // pyramid[i]: the decoder map at stride 4*2^i, [B,D,h_i,w_i].
  std::vector<torch::Tensor> pyramid(kStages);
  pyramid[kStages - 1] = lateral[kStages - 1];
  torch::Tensor offset;
  for (int64_t i = kStages - 2; i >= 0; --i) {
    const torch::Tensor& high = lateral[i];
    torch::Tensor up;
    if (srms_) {
      SemanticRefinementOutput refined = srms_[i]->as<SemanticRefinementModule>()->forward(high, pyramid[i + 1], offset);
      up = refined.features;
      offset = refined.offset;
      if (offsets) offsets->push_back(offset);
    } else {
      up = resize_bilinear(pyramid[i + 1], high.size(2), high.size(3));
    }
    pyramid[i] = fuses_[i]->as<nn::Sequential>()->forward(high + up);
  }
  const torch::Tensor features = contextual_ ? contextual_->forward(pyramid) : pyramid[0];  // [B,D,h/4,w/4]
  torch::Tensor logits = resize_bilinear(classifier_->forward(features), h, w);            // [B,K,H,W]
  if (prior_) {
    const torch::Tensor prior = deeplab_logits(prior_, stages.back(), h, w);  // [B,P,H,W]
    logits = logits + (torch::logsumexp(prior.slice(1, 1), 1, true) - prior.slice(1, 0, 1));
  }
  return logits;
}

cv::Mat segment(SegmenterNet& net, const cv::Mat& image, int64_t long_side) {
  if (net.is_empty()) throw Error("", "segment: expected a network, got none");
  if (long_side == 0) long_side = net->config().long_side;
  if (image.empty()) throw Error("", "segment: expected an image, got an empty one");
  if (image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3 && image.channels() != 4)) {
    throw Error("", "segment: expected an 8-bit image with 1, 3 or 4 channels, got type " +
                        std::to_string(image.type()));
  }
  if (long_side < 32) throw Error("", "segment: long_side: expected >= 32, got " + std::to_string(long_side));
  cv::Mat rgb;
  if (image.channels() == 1) cv::cvtColor(image, rgb, cv::COLOR_GRAY2RGB);
  else if (image.channels() == 4) cv::cvtColor(image, rgb, cv::COLOR_BGRA2RGB);
  else cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
  const double scale = static_cast<double>(long_side) / std::max(image.cols, image.rows);
  const cv::Size size(std::max(1, static_cast<int>(std::lround(image.cols * scale))),
                      std::max(1, static_cast<int>(std::lround(image.rows * scale))));
  if (size != rgb.size()) {
    cv::Mat resized;
    cv::resize(rgb, resized, size, 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    rgb = resized;
  }
  if (!rgb.isContinuous()) rgb = rgb.clone();

  ModeGuard mode(*net);
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = device_of(*net);
  const torch::Tensor pixels =
      torch::from_blob(rgb.data, {1, size.height, size.width, 3}, torch::kUInt8).permute({0, 3, 1, 2});
  const torch::Tensor input = normalize_rgb(pixels.to(device, torch::kFloat).div(255.0));
  torch::Tensor logits = resize_bilinear(net->forward(input), image.rows, image.cols);  // [1,K,rows,cols]
  torch::Tensor probability = logits.size(1) == 1 ? torch::sigmoid(logits[0][0])
                                                  : 1.0 - torch::softmax(logits[0], 0)[0];  // [rows,cols]
  probability = probability.to(torch::kCPU, torch::kFloat).contiguous();
  cv::Mat out(image.rows, image.cols, CV_32F);
  std::memcpy(out.data, probability.data_ptr<float>(), sizeof(float) * out.total());
  return out;
}

cv::Mat segment_mask(SegmenterNet& net, const cv::Mat& image, int64_t long_side) {
  cv::Mat mask;
  cv::compare(segment(net, image, long_side), 0.5, mask, cv::CMP_GE);
  return mask;
}

}  // namespace airm
