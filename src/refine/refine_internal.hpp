// Pieces of the Refiner shared by src/refine/*.cpp (not installed).
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "airm/model/airm_net.hpp"
#include "airm/refiner.hpp"

namespace airm::refine_detail {

// Throws airm::Error unless `mask` is `image` or another size of its aspect ratio (within 1%).
void check_same_aspect(cv::Size mask, cv::Size image, const char* what);

// Resizes with INTER_AREA when shrinking both sides, else INTER_LINEAR; returns `src` itself at its own size.
cv::Mat resize_to(const cv::Mat& src, cv::Size size);

// Encoder content size of a stage: the grid, or the grid capped to max_encoder_side (no cap when tiling).
cv::Size encoder_content(cv::Size grid, const RefineOptions& options);

// Reflect padding of a stage's encoder input: `pad` full-resolution px scaled by content / output (long sides).
int stage_pad(cv::Size content, cv::Size output, int pad);

// Tile origins along one axis of `length` (multiple of 32) for tiles of `tile` with at least about `overlap`
// shared: multiples of 32, first 0, last length - tile; {0} when length <= tile.
std::vector<int64_t> tile_starts(int64_t length, int64_t tile, int64_t overlap);

// What the implicit function reads for one stage.
struct StageEncoding {
  torch::Tensor features;             // [1, C, Hp/2, Wp/2]
  std::vector<LayerWeights> weights;  // AIRMF per-image layers; empty for SIRMF
  // Query grid coordinates (content in (-1,1)) -> encoder-frame coordinates: y' = y * sy + ty.
  double sy = 1, ty = 0, sx = 1, tx = 0;
  cv::Size padded;                    // encoder input W x H
  int tiles = 1;
};

// Encodes `image` (CV_8UC3 BGR) and `mask` (CV_32FC1 [0,1]), both of the content size: reflect padding by
// `pad` and up to a multiple of 32, then one pass or (options.tile_size > 0 and larger) blended tiles, then
// the hypernetwork on the whole feature map. Runs in the dtype of the network's parameters, the encoder's
// input in `format` (channels-last: see RefinerOptions::channels_last); the features come back contiguous.
StageEncoding encode_stage(AirmNet& net, const cv::Mat& image, const cv::Mat& mask, int pad,
                           const RefineOptions& options, const torch::Device& device,
                           torch::MemoryFormat format = torch::MemoryFormat::Contiguous);

// Stores every 4-D parameter and buffer of `module` (convolution weights) in channels-last memory; values
// unchanged.
void to_channels_last(torch::nn::Module& module);

// Adaptive selection on a stage's input probabilities: CV_8UC1, non-zero = query: p uncertain
// ([uncertain_low, uncertain_high]) or within `band` px (Chebyshev) of the p > 0.5 boundary.
cv::Mat select_queries(const cv::Mat& prob, const RefineOptions& options, int band);

// How far a stage moved the mask, in output pixels: the pixels whose side of 0.5 differs between `before`
// and `after` (CV_32FC1, one grid) over the 4-connected boundary pixels of `before` > 0.5 (a mean boundary
// displacement, in grid pixels), divided by the grid's `scale`. No boundary: 0 if nothing changed, else +inf.
double boundary_shift_px(const cv::Mat& before, const cv::Mat& after, double scale);

// Queries the selected pixels (empty selection: all) of the grid of `prob` (CV_32FC1, updated in place with
// the refined probabilities; its values are also the guide's mask), with `image` (CV_8UC3 BGR, the grid's
// size) as the guide's RGB. Returns the number of queries.
int64_t query_stage(AirmNet& net, const StageEncoding& encoding, const cv::Mat& image, cv::Mat& prob,
                    const cv::Mat& selection, const RefineOptions& options, const torch::Device& device);

// A copy of `net` with every parameter and buffer in bfloat16, on `device`, in eval mode (contiguous NCHW).
AirmNet bf16_copy(AirmNet& net, const torch::Device& device);

}  // namespace airm::refine_detail
