// Implicit representation mapping function (IRM): LIIF/CRM-style decoder
// that maps a feature map and continuous query coordinates to one logit per
// query. Used as SIRMF (shared weights, the module's own Linear layers) and
// as AIRMF (per-image weights predicted by a HyperNetwork, see
// hypernetwork.hpp).
//
// Conventions
// - Coordinates are (y, x) — row first, like tensor indexing — in the
//   normalised range (-1, 1) with align_corners=false geometry: the centre
//   of pixel i of an axis with n pixels is at -1 + (2i+1)/n. The same
//   geometry holds for the feature map (h x w cells) and for any output
//   (H x W pixels), so one coordinate addresses both.
// - The nearest feature cell of a coordinate y on an axis of h cells is
//   i = clamp(floor((y+1) h / 2), 0, h-1); queries outside (-1,1) use the
//   border cell. This equals grid_sample(mode=nearest, align_corners=false)
//   except exactly on a cell boundary, where grid_sample rounds half to even
//   and we round up; computing the index ourselves keeps the chosen feature
//   and the centre its offset is measured from consistent, on every device.
// - The MLP input of a query for one feature cell (i, j) with centre
//   (cy, cx) is, in this order:
//     feature   C values, or 9C with `unfold` (3x3 neighbourhood, zero
//               padded; channel c*9 + k holds channel c at neighbour
//               k = 3*(dy+1) + (dx+1), dy, dx in {-1,0,1})
//     rel       2 values ((y - cy) h, (x - cx) w): offset from the cell
//               centre in units of half a feature cell, in [-1,1] for the
//               nearest cell
//     coord     2 values (y, x)
//     cell      2 values (cell_y h, cell_x w) where cell = (2/H, 2/W) is the
//               output pixel size in normalised units: scaled by the feature
//               size like LIIF, so 2 means "one output pixel per feature
//               cell" whatever the absolute resolution
//     guide     guide_dim values given per query (e.g. RGB and coarse mask
//               sampled at the query); absent when guide_dim = 0
//   input_dim() = C (or 9C) + 6 + guide_dim.
// - MLP: Linear layers with widths hidden..., then 1 output; ReLU between
//   layers, none after the last (the output is a logit).
// - Local ensemble (default): the 4 cells around the query are those hit by
//   the shifted coordinates (y +- 1/h + 1e-6, x +- 1/w + 1e-6) (the small
//   shift makes a query lying exactly on a cell centre pick two distinct
//   cells); indices are clamped at the border, so near an edge the same cell
//   may appear twice. Each cell's logit is weighted by the area of the
//   diagonally opposite sub-rectangle |rel_y rel_x| divided by the total area
//   (bilinear weights away from the border). Since the rectangles form a
//   2x2 grid, this weight factorises exactly into per-axis weights
//   w_y[a] w_x[b] with w[a] = |rel[1-a]| / (|rel[0]| + |rel[1]|), which is
//   how it is computed: it also gives the right limit when both cells of an
//   axis coincide and the query sits on their centre (border cell, e.g. the
//   last row of an output as large as the feature map), where all 4 areas
//   vanish and LIIF's "+1e-9 per area" would blend the other axis 50/50
//   instead of bilinearly. Without the ensemble only the nearest cell is
//   evaluated.
// - Precision: coord must be float32 or float64; the geometry (cell index,
//   offsets, ensemble weights) is computed in coord's dtype, the MLP inputs
//   are cast to the layers' dtype, and the result has coord's dtype. Under
//   autocast (e.g. bf16) the products run in reduced precision while the
//   geometry stays exact at any output size.
//
// Implementation note: the first layer is linear in its input, so its
// feature part W_feat f is computed once per feature cell ([B, h*w, out0]),
// then gathered per query and added to W_rest [rel, coord, cell, guide] + b.
// This is exactly the concatenated MLP (tested against a naive loop) at a
// fraction of the cost, and memory per chunk does not grow with C or unfold.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace airm {

struct ImplicitFunctionOptions {
  ImplicitFunctionOptions() = default;
  explicit ImplicitFunctionOptions(int64_t feat_dim) : feat_dim_(feat_dim) {}

  // Channels C of the feature map given to forward().
  TORCH_ARG(int64_t, feat_dim) = 64;
  // Widths of the hidden layers; the last layer outputs 1 logit.
  TORCH_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{32, 32, 32, 32};
  // 4-neighbour local ensemble (true) or nearest cell only (false).
  TORCH_ARG(bool, local_ensemble) = true;
  // Use the 3x3 unfolded neighbourhood of the cell (C -> 9C features).
  TORCH_ARG(bool, unfold) = false;
  // Per-query guide values appended to the input (0 = none).
  TORCH_ARG(int64_t, guide_dim) = 0;

 public:
  // Throws airm::Error naming the offending field.
  void validate() const;
};

// Weights of one Linear layer of the implicit function for each image of a
// batch (AIRMF). weight [B,out,in], bias [B,out].
struct LayerWeights {
  torch::Tensor weight;
  torch::Tensor bias;
};

struct ImplicitFunctionImpl : torch::nn::Module {
  explicit ImplicitFunctionImpl(ImplicitFunctionOptions options = {});

  // feat [B,C,h,w], coord [B,Q,2] (y,x), cell [2] | [B,2] | [B,Q,2] (2/H, 2/W),
  // guide [B,Q,G] (undefined when guide_dim = 0), per_image null (SIRMF) or
  // one LayerWeights per layer (AIRMF) -> logits [B,Q]. All Q at once.
  torch::Tensor forward(const torch::Tensor& feat, const torch::Tensor& coord, const torch::Tensor& cell,
                        const torch::Tensor& guide = {}, const std::vector<LayerWeights>* per_image = nullptr);

  // As forward(), evaluating at most chunk_size queries at a time (per
  // image) so the working memory is bounded whatever Q: nothing of size Q is
  // allocated except the [B,Q] result. Throws airm::Error if chunk_size < 1.
  torch::Tensor query(const torch::Tensor& feat, const torch::Tensor& coord, const torch::Tensor& cell,
                      const torch::Tensor& guide, const std::vector<LayerWeights>* per_image, int64_t chunk_size);

  // (out, in) of every Linear layer, first to last.
  std::vector<std::pair<int64_t, int64_t>> layer_shapes() const;
  // Width of the (conceptual) concatenated MLP input: C or 9C, + 6 + G.
  int64_t input_dim() const;
  // Width of the feature part of the input: C, or 9C with unfold.
  int64_t feature_dim() const;
  const ImplicitFunctionOptions& options() const { return options_; }
  // The shared (SIRMF) layers, first to last; registered as mlp.0, mlp.1, ...
  const std::vector<torch::nn::Linear>& layers() const { return layers_; }

  // Re-initialises the shared layers (PyTorch's default Linear init).
  void reset_parameters();

 private:
  struct Prepared;
  Prepared prepare(const torch::Tensor& feat, const std::vector<LayerWeights>* per_image) const;
  torch::Tensor evaluate(const Prepared& prep, const torch::Tensor& coord, const torch::Tensor& cell,
                         const torch::Tensor& guide) const;
  void check_inputs(const torch::Tensor& feat, const torch::Tensor& coord, const torch::Tensor& cell,
                    const torch::Tensor& guide, const std::vector<LayerWeights>* per_image) const;

  ImplicitFunctionOptions options_;
  torch::nn::ModuleList mlp_{nullptr};
  std::vector<torch::nn::Linear> layers_;
};
TORCH_MODULE(ImplicitFunction);

// Pixel-centre coordinates (y, x) of an H x W output in row-major order:
// [count, 2] for flat pixel indices begin .. begin+count-1 (count = -1: to
// the end, i.e. [H*W - begin, 2]); pixel (i, j) is at
// (-1 + (2i+1)/H, -1 + (2j+1)/W). Use begin/count to stream huge outputs.
torch::Tensor make_pixel_grid(int64_t H, int64_t W, const torch::TensorOptions& options = {}, int64_t begin = 0,
                              int64_t count = -1);

// Cell size of an H x W output: [2] = (2/H, 2/W).
torch::Tensor cell_for(int64_t H, int64_t W, const torch::TensorOptions& options = {});

}  // namespace airm
