// The two decoder modules of "A Deep Semantic Segmentation Network with
// Semantic and Contextual Refinements" (arXiv 2412.08671), used by the coarse
// segmenter (segmenter.hpp). Not to be confused with CRM the mask refiner: here
// "contextual" always means the Contextual Refinement Module.
//
// SemanticRefinementModule (SRM), one per upsampling step of the decoder:
//   up      = bilinear(coarse -> size of high)            (align_corners=false)
//   prev    = the previous step's offset field resized the same way, its
//             values multiplied by the size ratio (w/w', h/h'; about x2) so
//             they stay in pixels of the new grid; zeros at the first step
//   offset  = head(cat[high, up, prev])                    [B,2,h,w], (dx,dy) px
//   aligned = warp(up, offset)                              [B,C,h,w]
// head = conv3x3(2C+2 -> hidden)+BN+ReLU, conv3x3(hidden -> hidden)+BN+ReLU,
// conv3x3(hidden -> 2) with bias; that last conv is zero-initialised (weights
// and bias), so a fresh module predicts zero offsets and `aligned` equals the
// plain bilinear upsampling bit for bit — training starts from the ablation
// without SRM. The neighbouring offsets enter as guidance (the 3x3
// convolutions see the offsets around each pixel), not as a residual base:
// the new offset is the head's output alone.
// warp(x, o) = x + (S(g + o) - S(g)), S(grid) = grid_sample(x, grid), bilinear,
// align_corners=false, border padding (a pixel pushed outside reads the
// edge), g = the pixel-centre grid, o converted to normalised units
// (dx * 2/w, dy * 2/h). Mathematically S(g) = x; in float, grid_sample's
// unnormalisation leaves ~1e-5 px errors on 128-wide maps, which the
// subtraction cancels, so a zero offset is exactly the identity (one extra
// sampling per step). Half/bfloat16 features are sampled in float.
//
// ContextualRefinementModule, once, on the decoder's four semantic maps
// (strides 4/8/16/32, all already at the decoder width):
//   x = cat[maps resized bilinearly to the finest map]     [B,sumC,h,w]
//   x = x * sigmoid(MLP(avgpool(x)))                        channel attention
//       (SE style: 1x1 conv sumC -> max(sumC/reduction, 8), ReLU, 1x1 conv back)
//   x = x * sigmoid(conv7x7(cat[mean_c(x), max_c(x)]))      spatial attention
//   out = conv1x1(sumC -> out_channels)+BN+ReLU             [B,out,h,w]
// Concatenating all four stages widens the channel dimension (the paper's
// "balance between channel and space") before the channel attention.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace airm {

// Bilinear resize (align_corners=false). x [B,C,h',w'] -> [B,C,h,w]; x itself when already that size.
torch::Tensor resize_bilinear(const torch::Tensor& x, int64_t h, int64_t w);

// An offset field in pixels resized to a new grid, values scaled by the size
// ratio per axis. offset [B,2,h',w'] (dx,dy) -> [B,2,h,w]
torch::Tensor resize_offset(const torch::Tensor& offset, int64_t h, int64_t w);

// Samples features at (x + dx, y + dy) for each pixel (x, y), bilinearly,
// border padding. features [B,C,H,W], offset [B,2,H,W] (dx,dy) in pixels -> [B,C,H,W]
torch::Tensor warp_by_offset(const torch::Tensor& features, const torch::Tensor& offset);

struct SemanticRefinementModuleOptions {
  explicit SemanticRefinementModuleOptions(int64_t channels) : channels_(channels) {}
  // Width of both the high-resolution and the coarse features.
  TORCH_ARG(int64_t, channels);
  // Width of the offset head's hidden 3x3 convolutions.
  TORCH_ARG(int64_t, hidden) = 32;

 public:
  // Throws airm::Error naming the field.
  void validate() const;
};

struct SemanticRefinementOutput {
  torch::Tensor features;  // the aligned upsampled features [B,C,h,w]
  torch::Tensor offset;    // the offsets used [B,2,h,w] (dx,dy) in pixels
};

struct SemanticRefinementModuleImpl : torch::nn::Module {
  explicit SemanticRefinementModuleImpl(SemanticRefinementModuleOptions options);
  // high [B,C,h,w], coarse [B,C,h',w'], prev_offset [B,2,h',w'] or undefined -> {[B,C,h,w], [B,2,h,w]}
  SemanticRefinementOutput forward(const torch::Tensor& high, const torch::Tensor& coarse,
                                   const torch::Tensor& prev_offset = {});
  // Zeroes the last offset convolution (weights and bias): offsets become zero.
  void reset_offset_head();

  const SemanticRefinementModuleOptions& options() const { return options_; }

  torch::nn::Sequential head_{nullptr};
  torch::nn::Conv2d offset_{nullptr};  // last layer of the head: hidden -> 2

 private:
  SemanticRefinementModuleOptions options_;
};
TORCH_MODULE(SemanticRefinementModule);

struct ContextualRefinementModuleOptions {
  ContextualRefinementModuleOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  // Sum of the widths of the maps it aggregates.
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  // Channel attention: hidden width = max(in_channels / reduction, 8).
  TORCH_ARG(int64_t, reduction) = 4;
  // Spatial attention kernel (odd).
  TORCH_ARG(int64_t, spatial_kernel) = 7;

 public:
  int64_t hidden_channels() const;
  // Throws airm::Error naming the field.
  void validate() const;
};

struct ContextualRefinementModuleImpl : torch::nn::Module {
  explicit ContextualRefinementModuleImpl(ContextualRefinementModuleOptions options);
  // maps: NCHW [B,C_i,h_i,w_i], finest first, sum C_i = in_channels -> [B,out_channels,h_0,w_0]
  torch::Tensor forward(const std::vector<torch::Tensor>& maps);

  const ContextualRefinementModuleOptions& options() const { return options_; }

  torch::nn::Sequential channel_mlp_{nullptr};  // 1x1 conv, ReLU, 1x1 conv
  torch::nn::Conv2d spatial_{nullptr};          // 2 -> 1, spatial_kernel x spatial_kernel
  torch::nn::Sequential project_{nullptr};      // 1x1 conv + BN + ReLU

 private:
  ContextualRefinementModuleOptions options_;
};
TORCH_MODULE(ContextualRefinementModule);

}  // namespace airm
