// Fuses the encoder's stages into the stride-2 feature map that the
// implicit function reads (CRM reads features at 1/2 resolution too).
//
// Each stage is projected by a 1x1 convolution to `dim` channels and
// resized bilinearly to stride 2; the projections are summed (FPN-style: the
// cost does not grow with the number of stages). A shallow stem (two 3x3
// Conv+BN+ReLU, the first with stride 2) over the network input brings back
// the detail a stride-4 transformer cannot see; it is concatenated with the
// sum and fused by 1x1 and 3x3 Conv+BN+ReLU.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace airm {

struct FeatureFusionOptions {
  FeatureFusionOptions(std::vector<int64_t> stage_channels, int64_t in_channels)
      : stage_channels_(std::move(stage_channels)), in_channels_(in_channels) {}
  TORCH_ARG(std::vector<int64_t>, stage_channels);
  TORCH_ARG(int64_t, in_channels);       // channels of the network input (the stem's input)
  TORCH_ARG(int64_t, dim) = 64;          // output channels
  TORCH_ARG(int64_t, stem_channels) = 32;
};

struct FeatureFusionImpl : torch::nn::Module {
  explicit FeatureFusionImpl(FeatureFusionOptions options);
  // input [B,Cin,H,W], stages [B,C_i,h_i,w_i] -> [B,dim,ceil(H/2),ceil(W/2)]
  torch::Tensor forward(const torch::Tensor& input, const std::vector<torch::Tensor>& stages);

  const FeatureFusionOptions& options() const { return options_; }

  torch::nn::ModuleList projections_{nullptr};  // one 1x1 conv per stage
  torch::nn::Sequential stem_{nullptr};
  torch::nn::Sequential fuse_{nullptr};

 private:
  FeatureFusionOptions options_;
};
TORCH_MODULE(FeatureFusion);

}  // namespace airm
