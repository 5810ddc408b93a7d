// MobileNetV2 with folded batch norm and TensorFlow SAME padding.
#include "airm/model/mobilenet_v2.hpp"

#include <cmath>

#include "airm/error.hpp"

namespace airm {
namespace F = torch::nn::functional;

namespace {

struct BlockSpec {
  int64_t expansion, channels, repeats, stride;
};
const BlockSpec kBlocks[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                             {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
constexpr int64_t kStemChannels = 32;
constexpr int64_t kHeadChannels = 1280;

// TensorFlow SAME: out = ceil(n / s); the padding the window needs goes half before, the rest after.
std::pair<int64_t, int64_t> same_padding(int64_t n, int64_t kernel, int64_t stride, int64_t dilation) {
  const int64_t effective = (kernel - 1) * dilation + 1;
  const int64_t out = (n + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + effective - n, 0);
  return {total / 2, total - total / 2};
}

}  // namespace

void MobileNetV2Options::validate() const {
  auto fail = [](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error("", "MobileNetV2Options: " + field + ": expected " + expected + ", got " + got);
  };
  if (in_channels_ < 1) fail("in_channels", ">= 1", std::to_string(in_channels_));
  if (!(width_ > 0 && width_ <= 4)) fail("width", "in (0, 4]", std::to_string(width_));
  if (output_stride_ != 8 && output_stride_ != 16 && output_stride_ != 32) {
    fail("output_stride", "8, 16 or 32", std::to_string(output_stride_));
  }
  if (num_classes_ < 0) fail("num_classes", ">= 0", std::to_string(num_classes_));
}

int64_t MobileNetV2Options::channels(int64_t base) const {
  return std::max<int64_t>(8, std::llround(width_ * static_cast<double>(base)));
}

TfConvImpl::TfConvImpl(int64_t in, int64_t out, int64_t kernel_, int64_t stride_, int64_t dilation_, int64_t groups_,
                       TfActivation activation_)
    : in_channels(in), out_channels(out), kernel(kernel_), stride(stride_), dilation(dilation_), groups(groups_),
      activation(activation_) {
  weight = register_parameter("weight", torch::empty({out, in / groups, kernel, kernel}));
  bias = register_parameter("bias", torch::zeros({out}));
}

void TfConvImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double fan_out = static_cast<double>(out_channels / groups * kernel * kernel);
  weight.normal_(0.0, std::sqrt(2.0 / fan_out));
  bias.zero_();
}

torch::Tensor TfConvImpl::forward(const torch::Tensor& x) {
  // [B,in,H,W] -> [B,out,ceil(H/stride),ceil(W/stride)]
  TORCH_CHECK(x.dim() == 4 && x.size(1) == in_channels, "TfConv: expected [B,", in_channels, ",H,W], got ",
              x.sizes());
  torch::Tensor input = x;
  int64_t padding = 0;
  if (kernel > 1) {
    const auto [top, bottom] = same_padding(x.size(2), kernel, stride, dilation);
    const auto [left, right] = same_padding(x.size(3), kernel, stride, dilation);
    if (top == bottom && left == right && top == left) {
      padding = top;  // symmetric: the convolution pads (no copy)
    } else {
      input = F::pad(x, F::PadFuncOptions({left, right, top, bottom}));
    }
  }
  torch::Tensor y = F::conv2d(input, weight.to(x.dtype()), F::Conv2dFuncOptions()
                                                               .bias(bias.to(x.dtype()))
                                                               .stride(stride)
                                                               .padding(padding)
                                                               .dilation(dilation)
                                                               .groups(groups));
  switch (activation) {
    case TfActivation::kRelu: return torch::relu(y);
    case TfActivation::kRelu6: return torch::clamp(y, 0.0, 6.0);
    case TfActivation::kNone: break;
  }
  return y;
}

InvertedResidualImpl::InvertedResidualImpl(int64_t in, int64_t out, int64_t expansion, int64_t stride,
                                           int64_t dilation) {
  const int64_t hidden = in * expansion;
  if (expansion > 1) expand = register_module("expand", TfConv(in, hidden, 1, 1, 1, 1, TfActivation::kRelu6));
  depthwise = register_module("depthwise", TfConv(hidden, hidden, 3, stride, dilation, hidden, TfActivation::kRelu6));
  project = register_module("project", TfConv(hidden, out, 1, 1, 1, 1, TfActivation::kNone));
  residual = stride == 1 && in == out;
}

torch::Tensor InvertedResidualImpl::forward(const torch::Tensor& x) {
  // [B,in,H,W] -> [B,out,ceil(H/stride),ceil(W/stride)]
  torch::Tensor y = expand ? expand->forward(x) : x;
  y = project->forward(depthwise->forward(y));
  return residual ? x + y : y;
}

const std::vector<int64_t>& mobilenet_v2_taps() {
  static const std::vector<int64_t> taps{0, 2, 5, 12, 16};
  return taps;
}

MobileNetV2Impl::MobileNetV2Impl(MobileNetV2Options options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;
  int64_t in = o.channels(kStemChannels);
  stem = register_module("stem", TfConv(o.in_channels(), in, 3, 2, 1, 1, TfActivation::kRelu6));
  blocks = register_module("blocks", torch::nn::ModuleList());
  int64_t stride_so_far = 2, dilation = 1;
  for (const BlockSpec& spec : kBlocks) {
    const int64_t out = o.channels(spec.channels);
    for (int64_t r = 0; r < spec.repeats; ++r) {
      int64_t stride = r == 0 ? spec.stride : 1;
      const int64_t block_dilation = dilation;  // the first block of a dilated stage keeps the previous one
      if (stride > 1 && stride_so_far >= o.output_stride()) {
        stride = 1;
        dilation *= spec.stride;
      }
      stride_so_far *= stride;
      blocks->push_back(InvertedResidual(in, out, spec.expansion, stride, r == 0 ? block_dilation : dilation));
      strides_.push_back(stride_so_far);
      in = out;
    }
  }
  if (o.num_classes() > 0) {
    head = register_module("head", TfConv(in, kHeadChannels, 1, 1, 1, 1, TfActivation::kRelu6));
    classifier = register_module("classifier", TfConv(kHeadChannels, o.num_classes(), 1, 1, 1, 1, TfActivation::kNone));
  }
  reset_parameters();
}

std::vector<int64_t> MobileNetV2Impl::stage_channels() const {
  std::vector<int64_t> out;
  for (int64_t tap : mobilenet_v2_taps()) out.push_back(blocks->ptr(static_cast<size_t>(tap))->as<InvertedResidualImpl>()->project->out_channels);
  return out;
}

std::vector<int64_t> MobileNetV2Impl::stage_strides() const {
  std::vector<int64_t> out;
  for (int64_t tap : mobilenet_v2_taps()) out.push_back(strides_[static_cast<size_t>(tap)]);
  return out;
}

std::vector<std::pair<std::string, TfConv>> MobileNetV2Impl::convolutions() const {
  std::vector<std::pair<std::string, TfConv>> out{{"stem", stem}};
  for (size_t i = 0; i < blocks->size(); ++i) {
    const auto* block = blocks->ptr(i)->as<InvertedResidualImpl>();
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    if (block->expand) out.emplace_back(prefix + "expand", block->expand);
    out.emplace_back(prefix + "depthwise", block->depthwise);
    out.emplace_back(prefix + "project", block->project);
  }
  if (head) {
    out.emplace_back("head", head);
    out.emplace_back("classifier", classifier);
  }
  return out;
}

void MobileNetV2Impl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& [name, conv] : convolutions()) {
    (void)name;
    conv->reset_parameters();
  }
}

MobileNetV2Features MobileNetV2Impl::features(const torch::Tensor& x) {
  // x [B,in_channels,H,W] -> 5 maps (strides 2/4/8/16/min(32,os))
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels(), "MobileNetV2: expected [B,",
              options_.in_channels(), ",H,W], got ", x.sizes());
  MobileNetV2Features out;
  torch::Tensor y = stem->forward(x);
  size_t next_tap = 0;
  const auto& taps = mobilenet_v2_taps();
  for (size_t i = 0; i < blocks->size(); ++i) {
    y = blocks[i]->as<InvertedResidual>()->forward(y);
    if (next_tap < taps.size() && static_cast<int64_t>(i) == taps[next_tap]) {
      out.stages.push_back(y);
      ++next_tap;
    }
  }
  return out;
}

torch::Tensor MobileNetV2Impl::forward(const torch::Tensor& x) {
  // x [B,in_channels,H,W] -> logits [B,num_classes]
  TORCH_CHECK(head, "MobileNetV2: expected a network with a classifier (num_classes > 0), got an encoder");
  torch::Tensor y = head->forward(features(x).stages.back());
  y = y.mean({2, 3}, /*keepdim=*/true);
  return classifier->forward(y).flatten(1);
}

torch::Tensor imagenet_to_mobilenet_input(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "expected rgb [B,3,H,W], got ", x.sizes());
  const auto opts = x.options();
  const torch::Tensor mean = torch::tensor({0.485, 0.456, 0.406}, opts).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor({0.229, 0.224, 0.225}, opts).view({1, 3, 1, 1});
  return x * (2.0 * std) + (2.0 * mean - 1.0);
}

}  // namespace airm
