// ResNet-50 encoder (dilated, output stride 8) and its state-dict loading.
#include "airm/model/resnet.hpp"
#include "shape_text.hpp"

#include <cmath>
#include <sstream>

#include "airm/error.hpp"
#include "airm/model/state_dict.hpp"

namespace airm {

namespace nn = torch::nn;

namespace {

void require(bool ok, const std::string& problem) {
  if (!ok) throw Error("", "ResNetOptions: " + problem);
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return nn::Conv2d(
      nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).dilation(dilation).bias(false));
}

SyncBatchNorm2d batch_norm(int64_t channels, double eps, double momentum) {
  return SyncBatchNorm2d(nn::BatchNorm2dOptions(channels).eps(eps).momentum(momentum));
}

constexpr int64_t kExpansion = 4;
constexpr int64_t kStemChannels = 64;

}  // namespace

void ResNetOptions::validate() const {
  require(in_channels_ >= 1, "in_channels must be >= 1, got " + std::to_string(in_channels_));
  require(layers_.size() == 4, "layers must have 4 entries, got " + shape_text(layers_));
  for (int64_t n : layers_) require(n >= 1, "layers entries must be >= 1, got " + shape_text(layers_));
  require(output_stride_ == 8 || output_stride_ == 16 || output_stride_ == 32,
          "output_stride must be 8, 16 or 32, got " + std::to_string(output_stride_));
  require(std::isfinite(bn_eps_) && bn_eps_ > 0.0, "bn_eps must be > 0, got " + std::to_string(bn_eps_));
  require(std::isfinite(bn_momentum_) && bn_momentum_ > 0.0 && bn_momentum_ <= 1.0,
          "bn_momentum must be in (0, 1], got " + std::to_string(bn_momentum_));
}

// ---------------------------------------------------------------------------
// Bottleneck

BottleneckImpl::BottleneckImpl(int64_t in_channels, int64_t width, int64_t stride, int64_t dilation,
                               bool downsample, double bn_eps, double bn_momentum) {
  const int64_t out_channels = width * kExpansion;
  conv1_ = register_module("conv1", conv(in_channels, width, 1, 1, 0, 1));
  bn1_ = register_module("bn1", batch_norm(width, bn_eps, bn_momentum));
  conv2_ = register_module("conv2", conv(width, width, 3, stride, dilation, dilation));
  bn2_ = register_module("bn2", batch_norm(width, bn_eps, bn_momentum));
  conv3_ = register_module("conv3", conv(width, out_channels, 1, 1, 0, 1));
  bn3_ = register_module("bn3", batch_norm(out_channels, bn_eps, bn_momentum));
  if (downsample) {
    downsample_ = register_module("downsample", nn::Sequential(conv(in_channels, out_channels, 1, stride, 0, 1),
                                                               batch_norm(out_channels, bn_eps, bn_momentum)));
  }
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  // [B,in,H,W] -> [B,4*width,ceil(H/stride),ceil(W/stride)]
  torch::Tensor y = torch::relu(bn1_->forward(conv1_->forward(x)));
  y = torch::relu(bn2_->forward(conv2_->forward(y)));
  y = bn3_->forward(conv3_->forward(y));
  const torch::Tensor shortcut = downsample_ ? downsample_->forward(x) : x;
  return torch::relu(y + shortcut);
}

// ---------------------------------------------------------------------------
// Encoder

std::vector<torch::Tensor> ResNetFeatures::list() const {
  std::vector<torch::Tensor> out{stem, layer1, layer2, layer3};
  if (layer4.defined()) out.push_back(layer4);
  return out;
}

ResNetEncoderImpl::ResNetEncoderImpl(ResNetOptions options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;
  conv1_ = register_module("conv1", conv(o.in_channels(), kStemChannels, 7, 2, 3, 1));
  bn1_ = register_module("bn1", batch_norm(kStemChannels, o.bn_eps(), o.bn_momentum()));
  maxpool_ = register_module("maxpool", nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));

  // Stages 2-4 halve the grid unless the output stride has been reached, in
  // which case they keep stride 1 and double the dilation instead.
  int64_t in = kStemChannels;
  int64_t stride_so_far = 4;
  int64_t dilation = 1;
  strides_ = {2, 4};
  const int64_t stages = o.with_layer4() ? 4 : 3;
  for (int64_t s = 0; s < stages; ++s) {
    const int64_t width = 64 << s;
    int64_t stride = s == 0 ? 1 : 2;
    const int64_t previous_dilation = dilation;
    if (stride == 2 && stride_so_far >= o.output_stride()) {
      dilation *= 2;
      stride = 1;
    }
    stride_so_far *= stride;
    if (s > 0) strides_.push_back(stride_so_far);

    nn::Sequential layer;
    const bool project = stride != 1 || in != width * kExpansion;
    // The first block still reads the finer grid: previous dilation.
    layer->push_back(Bottleneck(in, width, stride, previous_dilation, project, o.bn_eps(), o.bn_momentum()));
    in = width * kExpansion;
    for (int64_t b = 1; b < o.layers()[s]; ++b) {
      layer->push_back(Bottleneck(in, width, 1, dilation, false, o.bn_eps(), o.bn_momentum()));
    }
    const std::string name = "layer" + std::to_string(s + 1);
    auto registered = register_module(name, layer);
    if (s == 0) layer1_ = registered;
    if (s == 1) layer2_ = registered;
    if (s == 2) layer3_ = registered;
    if (s == 3) layer4_ = registered;
  }
  reset_parameters();
}

std::vector<int64_t> ResNetEncoderImpl::stage_channels() const {
  std::vector<int64_t> out{kStemChannels, 256, 512, 1024};
  if (options_.with_layer4()) out.push_back(2048);
  return out;
}

std::vector<int64_t> ResNetEncoderImpl::stage_strides() const { return strides_; }

void ResNetEncoderImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* c = module->as<nn::Conv2d>()) {
      const auto& co = c->options;
      int64_t fan_out = co.out_channels() / co.groups();
      for (int64_t k : *co.kernel_size()) fan_out *= k;
      c->weight.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_out)));
    } else if (auto* bn = module->as<SyncBatchNorm2d>()) {
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    }
  }
}

ResNetFeatures ResNetEncoderImpl::forward(const torch::Tensor& x) {
  // [B,in_channels,H,W] -> stem/layer1/layer2/layer3(/layer4) at strides 2/4/8/8(/8)
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels(), "ResNetEncoder: expected [B,",
              options_.in_channels(), ",H,W], got ", x.sizes());
  ResNetFeatures out;
  out.stem = torch::relu(bn1_->forward(conv1_->forward(x)));
  out.layer1 = layer1_->forward(maxpool_->forward(out.stem));
  out.layer2 = layer2_->forward(out.layer1);
  out.layer3 = layer3_->forward(out.layer2);
  if (layer4_) out.layer4 = layer4_->forward(out.layer3);
  return out;
}

// ---------------------------------------------------------------------------
// State dict

void load_resnet_state_dict(ResNetEncoder& encoder, const std::string& path) {
  TensorDict dict = read_tensor_dict(path);
  const bool with_layer4 = encoder->options().with_layer4();

  // conv1 with fewer input channels (RGB checkpoint into RGB+mask): the
  // file's weights fill the first channels, the extra ones are zero.
  const auto stem = dict.find("conv1.weight");
  const int64_t in_channels = encoder->options().in_channels();
  if (stem != dict.end() && stem->second.dim() == 4 && stem->second.size(1) < in_channels) {
    const torch::Tensor& src = stem->second;
    torch::Tensor widened = torch::zeros({src.size(0), in_channels, src.size(2), src.size(3)}, src.options());
    widened.narrow(1, 0, src.size(1)).copy_(src);
    stem->second = widened;
  }
  // Old checkpoints have no BatchNorm counters: keep the encoder's own.
  for (const auto& item : encoder->named_buffers(/*recurse=*/true)) {
    const std::string& key = item.key();
    const std::string suffix = "num_batches_tracked";
    if (key.size() >= suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        dict.count(key) == 0) {
      dict.emplace(key, item.value().detach().to(torch::kCPU).clone());
    }
  }
  auto ignore = [with_layer4](const std::string& key) {
    return key.rfind("__", 0) == 0 || key.rfind("fc.", 0) == 0 || (!with_layer4 && key.rfind("layer4.", 0) == 0);
  };
  load_state_dict(*encoder, dict, path, ignore);
}

}  // namespace airm
