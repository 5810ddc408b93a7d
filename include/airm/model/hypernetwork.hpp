// HyperNetwork psi of AIRM (Sec. 4.2 / 4.3): predicts, from the encoder
// features of one image, a low-rank modulation of every Linear layer of the
// implicit function, turning the shared SIRMF into the per-image AIRMF.
//
// Architecture: conv_layers x [Conv3x3 stride 2 (no bias) + BatchNorm +
// ReLU] with `channels` channels (cheap at any input size), global average
// pooling, then ONE Linear whose output is split, layer by layer of the
// implicit function (l = 0..L-1, (out_l, in_l) = layer_shapes[l]), into
//   A_l    out_l*r values, row-major [out_l, r]
//   B_l    r*in_l values,  row-major [r, in_l]
//   bias_l out_l values
// (all of layer 0 first, then layer 1, ...). r = rank (20 in the paper).
//
// Modulation (INR-GAN's factorized multiplicative modulation, as AIRM):
//   W_l(x) = W_shared,l ⊙ (1 + tanh(A_l(x) B_l(x) / sqrt(r)))
//   b_l(x) = b_shared,l + bias_l(x)
// Both are the identity when psi outputs zeros, so AIRMF equals SIRMF at
// initialisation: the final Linear starts with weights ~ N(0, init_std^2)
// (1e-3) and zero bias, training starts from the shared function and psi
// learns per-image deviations from it. The multiplicative factor lies in
// (0, 2): a per-image reweighting of the shared connections, never a sign
// flip, which keeps the adapted functions close to what the shared layers
// learned; 1/sqrt(r) keeps A B at unit scale independent of the rank.
//
// BatchNorm in training mode needs more than one value per channel: with a
// batch of 1, the last convolution's output must be larger than 1x1, i.e.
// the input must have more than 2^conv_layers cells on one side.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "airm/model/implicit_function.hpp"

namespace airm {

struct HyperNetworkOptions {
  HyperNetworkOptions() = default;
  explicit HyperNetworkOptions(int64_t in_channels) : in_channels_(in_channels) {}

  // Channels of the encoder features given to forward().
  TORCH_ARG(int64_t, in_channels) = 64;
  // Number of Conv3x3(stride 2)+BN+ReLU layers (0: pool the input directly).
  TORCH_ARG(int64_t, conv_layers) = 3;
  // Channels of every convolution.
  TORCH_ARG(int64_t, channels) = 64;
  // Rank r of the factors A_l (out x r), B_l (r x in).
  TORCH_ARG(int64_t, rank) = 20;
  // Standard deviation of the final Linear's initial weights (bias: 0).
  TORCH_ARG(double, init_std) = 1e-3;

 public:
  // Throws airm::Error naming the offending field.
  void validate() const;
};

// Modulation of one implicit-function layer for each image of a batch.
struct LayerModulation {
  torch::Tensor A;     // [B,out,r]
  torch::Tensor B;     // [B,r,in]
  torch::Tensor bias;  // [B,out]
};

struct HyperNetworkImpl : torch::nn::Module {
  // layer_shapes: (out, in) of every layer of the implicit function to
  // modulate, i.e. ImplicitFunctionImpl::layer_shapes().
  HyperNetworkImpl(HyperNetworkOptions options, std::vector<std::pair<int64_t, int64_t>> layer_shapes);

  // feat [B,in_channels,h,w] -> one LayerModulation per layer
  std::vector<LayerModulation> forward(const torch::Tensor& feat);

  // Re-initialises all layers (convolutions: PyTorch default; BatchNorm:
  // 1/0; final Linear: N(0, init_std^2) weights, zero bias).
  void reset_parameters();

  const HyperNetworkOptions& options() const { return options_; }
  const std::vector<std::pair<int64_t, int64_t>>& layer_shapes() const { return layer_shapes_; }
  // Width of the final Linear's output: sum over layers of out*r + r*in + out.
  int64_t output_dim() const;

  torch::nn::Sequential body_{nullptr};  // registered as "body"
  torch::nn::Linear head_{nullptr};      // registered as "head"

 private:
  HyperNetworkOptions options_;
  std::vector<std::pair<int64_t, int64_t>> layer_shapes_;
};
TORCH_MODULE(HyperNetwork);

// Per-image weights of every layer of `function` from the modulations:
// W_l(x) = W_shared,l ⊙ (1 + tanh(A_l B_l / sqrt(r))), b_l(x) = b_shared,l + bias_l,
// with r = A_l.size(2). Batched over images (one bmm per layer). Throws
// c10::Error if the modulations do not match the function's layers.
std::vector<LayerWeights> modulate(const ImplicitFunction& function, const std::vector<LayerModulation>& mods);

}  // namespace airm
