// MiT (Mix Transformer), the SegFormer backbone used by AIRM's encoder.
//
// Four stages; stage i embeds its input with an overlapping strided
// convolution (7x7/4 then 3x3/2), runs depths[i] transformer blocks
// (efficient self-attention with spatial reduction on keys/values, then a
// Mix-FFN with a 3x3 depthwise convolution) and a final LayerNorm, and is
// returned in NCHW layout at strides 4/8/16/32 of the input.
//
// Parameter names follow the official SegFormer state dicts exactly
// (patch_embed1.proj.weight, block1.0.attn.q.weight, norm1.weight, ...), so
// `named_parameters()` of a Mit gives those keys.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace airm {

struct MitOptions {
  // Channels of the input image (AIRM: 4 = RGB + coarse mask).
  TORCH_ARG(int64_t, in_channels) = 3;
  // Per stage (exactly four entries each).
  TORCH_ARG(std::vector<int64_t>, embed_dims) = std::vector<int64_t>{32, 64, 160, 256};
  TORCH_ARG(std::vector<int64_t>, num_heads) = std::vector<int64_t>{1, 2, 5, 8};
  TORCH_ARG(std::vector<int64_t>, depths) = std::vector<int64_t>{2, 2, 2, 2};
  TORCH_ARG(std::vector<int64_t>, sr_ratios) = std::vector<int64_t>{8, 4, 2, 1};
  // Kernel size and stride of each stage's overlapping patch embedding
  // (padding is kernel/2, so with odd kernels a stage's size is
  // ceil(input/stride)).
  TORCH_ARG(std::vector<int64_t>, patch_sizes) = std::vector<int64_t>{7, 3, 3, 3};
  TORCH_ARG(std::vector<int64_t>, patch_strides) = std::vector<int64_t>{4, 2, 2, 2};
  // Hidden width of the Mix-FFN = mlp_ratio * stage dim.
  TORCH_ARG(int64_t, mlp_ratio) = 4;
  // Largest stochastic-depth rate (the last block's); rates grow linearly
  // from 0 over all blocks. Active only in training mode.
  TORCH_ARG(double, drop_path_rate) = 0.1;
  // Epsilon of the LayerNorms in the transformer blocks (norm1, norm2) and
  // of the stage norms (norm1..4).
  TORCH_ARG(double, norm_eps) = 1e-6;
  // Epsilon of the LayerNorms that follow a strided convolution: the patch
  // embeddings' and the attention's spatial reduction. The official code
  // leaves these at PyTorch's default 1e-5 (the reference outputs in
  // shared/reference confirm it: 1e-6 there costs ~1e-4 of accuracy).
  TORCH_ARG(double, conv_norm_eps) = 1e-5;

 public:
  static MitOptions b0(int64_t in_channels = 3);
  static MitOptions b1(int64_t in_channels = 3);
  static MitOptions b2(int64_t in_channels = 3);

  // Throws airm::Error naming the offending field.
  void validate() const;
};

// Stochastic depth: in training, zeroes whole samples of a residual branch
// with probability p and rescales the rest by 1/(1-p); identity otherwise.
torch::Tensor drop_path(const torch::Tensor& x, double p, bool training);

// Overlapping patch embedding: Conv2d(k, stride, padding k/2) + LayerNorm.
struct OverlapPatchEmbedImpl : torch::nn::Module {
  OverlapPatchEmbedImpl(int64_t in_channels, int64_t dim, int64_t kernel, int64_t stride, double eps);
  // [B,Cin,H,W] -> [B, h*w, dim]; h, w receive the output grid size.
  torch::Tensor forward(const torch::Tensor& x, int64_t& h, int64_t& w);

  torch::nn::Conv2d proj_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(OverlapPatchEmbed);

// Multi-head self-attention whose keys/values come from a copy of the
// tokens downsampled by a sr x sr strided convolution (+ LayerNorm).
struct EfficientSelfAttentionImpl : torch::nn::Module {
  EfficientSelfAttentionImpl(int64_t dim, int64_t heads, int64_t sr_ratio, double eps);
  // [B,N,C] (N = h*w) -> [B,N,C]; if attention is non-null it receives the
  // softmax map [B, heads, N, N'] with N' = (h/sr)*(w/sr).
  torch::Tensor forward(const torch::Tensor& x, int64_t h, int64_t w, torch::Tensor* attention = nullptr);

  int64_t dim_;
  int64_t heads_;
  int64_t sr_ratio_;
  double scale_;
  torch::nn::Linear q_{nullptr};
  torch::nn::Linear kv_{nullptr};
  torch::nn::Linear proj_{nullptr};
  torch::nn::Conv2d sr_{nullptr};       // only when sr_ratio > 1
  torch::nn::LayerNorm norm_{nullptr};  // only when sr_ratio > 1
};
TORCH_MODULE(EfficientSelfAttention);

// 3x3 depthwise convolution on a token sequence (registered as
// `dwconv.dwconv` inside the Mix-FFN, as in the official key names).
struct DepthwiseConvImpl : torch::nn::Module {
  explicit DepthwiseConvImpl(int64_t channels);
  // [B,N,C] (N = h*w) -> [B,N,C]
  torch::Tensor forward(const torch::Tensor& x, int64_t h, int64_t w);

  torch::nn::Conv2d dwconv_{nullptr};
};
TORCH_MODULE(DepthwiseConv);

// Mix-FFN: fc1 -> depthwise 3x3 conv -> exact GELU -> fc2.
struct MixFfnImpl : torch::nn::Module {
  MixFfnImpl(int64_t dim, int64_t hidden);
  // [B,N,C] (N = h*w) -> [B,N,C]
  torch::Tensor forward(const torch::Tensor& x, int64_t h, int64_t w);

  torch::nn::Linear fc1_{nullptr};
  DepthwiseConv dwconv_{nullptr};
  torch::nn::Linear fc2_{nullptr};
};
TORCH_MODULE(MixFfn);

// Pre-norm transformer block with stochastic depth on both residuals.
struct MitBlockImpl : torch::nn::Module {
  MitBlockImpl(int64_t dim, int64_t heads, int64_t mlp_ratio, int64_t sr_ratio, double drop_path_rate,
               double eps, double sr_norm_eps);
  // [B,N,C] (N = h*w) -> [B,N,C]; attention as in EfficientSelfAttention.
  torch::Tensor forward(const torch::Tensor& x, int64_t h, int64_t w, torch::Tensor* attention = nullptr);

  double drop_path_rate_;
  torch::nn::LayerNorm norm1_{nullptr};
  EfficientSelfAttention attn_{nullptr};
  torch::nn::LayerNorm norm2_{nullptr};
  MixFfn mlp_{nullptr};
};
TORCH_MODULE(MitBlock);

struct MitOutput {
  // Four NCHW maps [B, embed_dims[i], ceil(H/4·2^i), ceil(W/4·2^i)].
  std::vector<torch::Tensor> stages;
  // Only when requested: one softmax attention map per block of the LAST
  // stage, [B, heads, N, N] with N = h4*w4 (sr ratio 1 there).
  std::vector<torch::Tensor> attentions;
};

struct MitImpl : torch::nn::Module {
  explicit MitImpl(MitOptions options = MitOptions());
  // [B,in_channels,H,W] -> 4 stages NCHW (strides 4/8/16/32) (+ last-stage attention maps)
  MitOutput forward(const torch::Tensor& x, bool with_attention = false);

  const MitOptions& options() const { return options_; }
  int64_t num_stages() const { return static_cast<int64_t>(patch_embeds_.size()); }
  // Re-draws every parameter the way the SegFormer recipe initialises it
  // (truncated normal std 0.02 for Linear, He-normal by fan-out for Conv2d,
  // zero biases, LayerNorm 1/0). Called by the constructor.
  void reset_parameters();

 private:
  MitOptions options_;
  std::vector<OverlapPatchEmbed> patch_embeds_;      // patch_embed1..4
  std::vector<std::vector<MitBlock>> blocks_;        // block1..4 (ModuleLists)
  std::vector<torch::nn::LayerNorm> norms_;          // norm1..4
};
TORCH_MODULE(Mit);

}  // namespace airm
