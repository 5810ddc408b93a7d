// Atrous spatial pyramid pooling as the "mobile" DeepLabV3 of TensorFlow's
// pretrained PASCAL files has it (Chen et al. 2017): only two branches, on
// MobileNetV2's last map at output stride 16.
//
//   image pooling  global mean -> conv1x1 -> out, ReLU -> broadcast to the map
//   branch 0       conv1x1 -> out, ReLU
//   projection     concat [pooling, branch 0] (2*out) -> conv1x1 -> out, ReLU
//
// Batch norm is folded into each convolution's bias (TfConv). The TFLite
// graph pools with a 33x33 VALID AVERAGE_POOL_2D: on its fixed 513² input
// (a 33x33 map) that is the global mean used here at any size.
//
// Parameter names: pool, branch0, project (.weight, .bias).
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "airm/model/mobilenet_v2.hpp"

namespace airm {

struct AsppImpl : torch::nn::Module {
  AsppImpl(int64_t in_channels, int64_t out_channels = 256);
  // x [B,in,h,w] -> [B,out,h,w]
  torch::Tensor forward(const torch::Tensor& x);

  TfConv pool{nullptr};     // image pooling branch
  TfConv branch0{nullptr};  // 1x1 branch
  TfConv project{nullptr};  // 2*out -> out
};
TORCH_MODULE(Aspp);

}  // namespace airm
