// MobileNetV2 (Sandler et al., CVPR 2018) as TensorFlow's pretrained files
// build it (tflite_import.hpp imports them): batch norm folded into each
// convolution's bias, ReLU6 after the stem, the expansions and the
// depthwise convolutions, linear projections, and TensorFlow's SAME padding,
// which puts the extra row and column of a stride-2 convolution on an
// even-sized input at the bottom and right (reproduced exactly here).
//
//   stem     conv3x3 s2 -> c(32)
//   blocks   17 inverted residuals (expansion t, output c, repeats n, stride s):
//            (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1)
//            each: [conv1x1 -> t*in, ReLU6] (t > 1), depthwise 3x3 (stride,
//            dilation), ReLU6, conv1x1 -> c (linear), + input when stride 1 and in == c
//   head     (num_classes > 0 only) conv1x1 -> 1280, ReLU6, global mean,
//            conv1x1 -> num_classes logits (ImageNet files: 1001, 0 = background)
//
// c(x) = max(8, round(width * x)) (the DeepLab depth-0.5 file's rounding; at
// width 1 every channel count is the paper's). Output stride 16 or 8 dilates
// the later blocks as DeepLab does: a block whose stride would pass the
// output stride keeps stride 1, it still uses the previous dilation, and
// the blocks after it double it.
//
// Input: RGB as 2 * rgb - 1 (rgb in [0, 1]; TensorFlow's MobileNet input)
// plus any extra channels (the refiner's coarse mask); the stem's weights
// for extra channels start at zero when RGB weights are loaded.
//
// Parameter names: stem.{weight,bias}, blocks.<i>.{expand,depthwise,project}.{weight,bias},
// head.{weight,bias}, classifier.{weight,bias}.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace airm {

struct MobileNetV2Options {
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(double, width) = 1.0;          // depth multiplier
  TORCH_ARG(int64_t, output_stride) = 32;  // 8, 16 or 32
  TORCH_ARG(int64_t, num_classes) = 0;     // 0: no head (an encoder)

 public:
  // Throws airm::Error naming the offending field.
  void validate() const;
  // max(8, round(width * channels))
  int64_t channels(int64_t base) const;
};

// The activation fused into a TensorFlow convolution (TFLite's codes).
enum class TfActivation : int64_t { kNone = 0, kRelu = 1, kRelu6 = 3 };

// A convolution with bias (batch norm folded), TensorFlow SAME padding, and
// a fused activation. The constructor allocates the weight without drawing
// it: its owner calls reset_parameters() (in the owner's order, so one
// generator stream per network) or imports weights.
struct TfConvImpl : torch::nn::Module {
  TfConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t dilation, int64_t groups,
             TfActivation activation);
  // [B,in,H,W] -> [B,out,ceil(H/stride),ceil(W/stride)]
  torch::Tensor forward(const torch::Tensor& x);
  // He normal over the fan-out (MobileNetV2's initialisation), bias zero.
  void reset_parameters();

  int64_t in_channels, out_channels, kernel, stride, dilation, groups;
  TfActivation activation;
  torch::Tensor weight;  // [out, in/groups, k, k]
  torch::Tensor bias;    // [out]
};
TORCH_MODULE(TfConv);

struct InvertedResidualImpl : torch::nn::Module {
  InvertedResidualImpl(int64_t in, int64_t out, int64_t expansion, int64_t stride, int64_t dilation);
  // [B,in,H,W] -> [B,out,ceil(H/stride),ceil(W/stride)]
  torch::Tensor forward(const torch::Tensor& x);

  TfConv expand{nullptr};  // only when expansion > 1
  TfConv depthwise{nullptr};
  TfConv project{nullptr};
  bool residual = false;
};
TORCH_MODULE(InvertedResidual);

// The maps a decoder reads: after blocks 0, 2, 5, 12 and 16.
struct MobileNetV2Features {
  std::vector<torch::Tensor> stages;  // strides 2, 4, 8, 16, 32 (at output stride 32; else capped)
};

struct MobileNetV2Impl : torch::nn::Module {
  explicit MobileNetV2Impl(MobileNetV2Options options = MobileNetV2Options());

  // x [B,in_channels,H,W] (2*rgb-1, extra channels) -> 5 maps (strides 2/4/8/16/min(32,os))
  MobileNetV2Features features(const torch::Tensor& x);
  // x [B,in_channels,H,W] -> logits [B,num_classes] (needs num_classes > 0)
  torch::Tensor forward(const torch::Tensor& x);

  const MobileNetV2Options& options() const { return options_; }
  // Channels and strides of features().stages.
  std::vector<int64_t> stage_channels() const;
  std::vector<int64_t> stage_strides() const;
  // Every convolution in graph order (stem, each block's expand/depthwise/
  // project, head, classifier) with its parameter prefix: what an importer
  // walks.
  std::vector<std::pair<std::string, TfConv>> convolutions() const;
  // He-normal (fan-out) weights, zero biases. Called by the constructor.
  void reset_parameters();

  TfConv stem{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  TfConv head{nullptr};        // num_classes > 0 only
  TfConv classifier{nullptr};  // num_classes > 0 only

 private:
  MobileNetV2Options options_;
  std::vector<int64_t> strides_;  // of each block's output
};
TORCH_MODULE(MobileNetV2);

// The block indices whose outputs MobileNetV2Features holds.
const std::vector<int64_t>& mobilenet_v2_taps();

// ImageNet-normalised RGB (what the refiner and segmenter feed their
// encoders) to MobileNet's 2*rgb-1, exactly: x*2*std + (2*mean - 1).
// x [B,3,H,W] -> [B,3,H,W]
torch::Tensor imagenet_to_mobilenet_input(const torch::Tensor& x);

}  // namespace airm
