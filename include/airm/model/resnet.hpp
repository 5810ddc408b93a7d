// ResNet-50 encoder as CRM uses it: the CNN baseline of AIRM (R50 rows of
// Tables 2-4).
//
// Bottleneck ResNet-50 (ResNet v1.5: the stride of a downsampling block sits
// on its 3x3 convolution) with a configurable number of input channels
// (default 4 = RGB + coarse mask) and dilated to output stride 8 by default:
// layer3 (and layer4 when present) keep stride 1 and dilate their 3x3
// convolutions instead. The first block of a dilated stage keeps the
// previous stage's dilation (it still reads the grid the stride would have
// read), the following blocks use the doubled dilation.
//
// layer4 is off by default: CRM-style R50 + SIRMF is 9.27M parameters in the
// paper (Table 4), i.e. ResNet-50 truncated after layer3 plus a small decoder.
//
// Parameter and buffer names are torchvision's ResNet-50 state-dict names
// (conv1.weight, bn1.running_mean, layer1.0.conv1.weight,
// layer1.0.downsample.0.weight, layer3.5.bn3.weight, ...), so an ImageNet
// checkpoint loads by name (load_resnet_state_dict).
//
// Parameter counts (see tests/model/test_resnet.cpp):
//   3 channels, with layer4:    23,508,032 (= torchvision 25,557,032 - fc)
//   3 channels, without layer4:  8,543,296
//   4 channels: + 64*7*7 = 3,136 each (23,511,168 / 8,546,432).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "airm/model/sync_batch_norm.hpp"

namespace airm {

struct ResNetOptions {
  // Channels of the input image (AIRM / CRM: 4 = RGB + coarse mask).
  TORCH_ARG(int64_t, in_channels) = 4;
  // Blocks per stage; ResNet-50 is {3, 4, 6, 3}.
  TORCH_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>{3, 4, 6, 3};
  // Whether layer4 (2048 channels) is built and run.
  TORCH_ARG(bool, with_layer4) = false;
  // Stride of the deepest stage: 8 (layer3 and layer4 dilated), 16 (only
  // layer4 dilated) or 32 (no dilation, the classification network).
  TORCH_ARG(int64_t, output_stride) = 8;
  // Epsilon and momentum of every BatchNorm (torchvision's defaults).
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;

 public:
  // Throws airm::Error naming the offending field.
  void validate() const;
};

// Bottleneck block: 1x1 (width) -> 3x3 (width, stride, dilation) -> 1x1
// (4*width), BatchNorm after each, ReLU after the first two and after the
// residual sum; `downsample` (1x1 conv with the stride + BatchNorm) projects
// the shortcut when the shape changes.
struct BottleneckImpl : torch::nn::Module {
  BottleneckImpl(int64_t in_channels, int64_t width, int64_t stride, int64_t dilation, bool downsample,
                 double bn_eps, double bn_momentum);
  // [B,in,H,W] -> [B,4*width,ceil(H/stride),ceil(W/stride)]
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1_{nullptr};
  SyncBatchNorm2d bn1_{nullptr};
  torch::nn::Conv2d conv2_{nullptr};
  SyncBatchNorm2d bn2_{nullptr};
  torch::nn::Conv2d conv3_{nullptr};
  SyncBatchNorm2d bn3_{nullptr};
  torch::nn::Sequential downsample_{nullptr};  // only when the shortcut needs a projection
};
TORCH_MODULE(Bottleneck);

// The features of each stage, for a decoder to fuse. Sizes are
// ceil(H/s) x ceil(W/s) for an input H x W (s = the stride).
struct ResNetFeatures {
  torch::Tensor stem;    // after conv1+bn1+relu: [B,64,H/2,W/2]
  torch::Tensor layer1;  // [B,256,H/4,W/4] (after the max-pool and layer1)
  torch::Tensor layer2;  // [B,512,H/8,W/8]
  torch::Tensor layer3;  // [B,1024,H/s3,W/s3], s3 = min(16, output_stride) (8 by default)
  torch::Tensor layer4;  // undefined unless with_layer4: [B,2048,H/os,W/os]

  // The defined maps in order stem, layer1, layer2, layer3(, layer4).
  std::vector<torch::Tensor> list() const;
};

struct ResNetEncoderImpl : torch::nn::Module {
  explicit ResNetEncoderImpl(ResNetOptions options = ResNetOptions());
  // [B,in_channels,H,W] -> stem/layer1/layer2/layer3(/layer4) at strides 2/4/8/8(/8)
  ResNetFeatures forward(const torch::Tensor& x);

  const ResNetOptions& options() const { return options_; }
  // Channels of each returned stage: {64, 256, 512, 1024(, 2048)}.
  std::vector<int64_t> stage_channels() const;
  // Strides of each returned stage: {2, 4, 8, 8(, 8)} at output stride 8.
  std::vector<int64_t> stage_strides() const;
  // He-normal (fan-out, ReLU gain) convolutions, BatchNorm weight 1 bias 0.
  // Called by the constructor.
  void reset_parameters();

  torch::nn::Conv2d conv1_{nullptr};
  SyncBatchNorm2d bn1_{nullptr};
  torch::nn::MaxPool2d maxpool_{nullptr};
  torch::nn::Sequential layer1_{nullptr};
  torch::nn::Sequential layer2_{nullptr};
  torch::nn::Sequential layer3_{nullptr};
  torch::nn::Sequential layer4_{nullptr};  // only when with_layer4

 private:
  ResNetOptions options_;
  std::vector<int64_t> strides_;
};
TORCH_MODULE(ResNetEncoder);

// Loads a torchvision-style ResNet state dict (Python torch.save of a dict
// str -> Tensor, e.g. an ImageNet ResNet-50 checkpoint) by name:
// - "fc.*" and keys starting with "__" are ignored; "layer4.*" is ignored
//   when the encoder has no layer4;
// - a conv1.weight with fewer input channels than the encoder (3 for RGB
//   into an RGB+mask encoder) fills the first channels, the others are zero;
// - "*.num_batches_tracked" may be absent (old checkpoints): the encoder's
//   own counters are kept.
// Any other missing or unexpected key or shape mismatch throws airm::Error
// naming the file and listing them; the encoder is left unchanged then.
void load_resnet_state_dict(ResNetEncoder& encoder, const std::string& path);

}  // namespace airm
