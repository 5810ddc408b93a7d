// The query side of one refinement stage: which pixels to query (adaptive
// selection) and streaming them through the implicit function in blocks.
#include <algorithm>
#include <cstring>
#include <limits>

#include <opencv2/imgproc.hpp>

#include "refine_internal.hpp"

namespace airm::refine_detail {
namespace {

// Pixel-centre coordinates (y, x) of flat indices of an H x W grid, [n,2]
// double: the arithmetic of make_pixel_grid, so that a contiguous run gives
// the same values either way.
torch::Tensor coords_of(const std::vector<int64_t>& indices, int64_t H, int64_t W) {
  const torch::Tensor flat =
      torch::from_blob(const_cast<int64_t*>(indices.data()), {static_cast<int64_t>(indices.size())}, torch::kLong);
  const torch::Tensor row = flat.div(W, "floor").to(torch::kDouble);
  const torch::Tensor col = flat.remainder(W).to(torch::kDouble);
  const torch::Tensor y = (2.0 * row + 1.0) / static_cast<double>(H) - 1.0;
  const torch::Tensor x = (2.0 * col + 1.0) / static_cast<double>(W) - 1.0;
  return torch::stack({y, x}, 1);
}

// Queries one block of flat indices and writes the probabilities into `prob`.
void query_block(AirmNet& net, const StageEncoding& enc, const cv::Mat& image, cv::Mat& prob,
                 const std::vector<int64_t>& indices, const torch::Tensor& cell, const RefineOptions& options,
                 const torch::Device& device) {
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t H = prob.rows, W = prob.cols;
  const bool contiguous = indices.back() - indices.front() + 1 == n;
  torch::Tensor grid = contiguous ? make_pixel_grid(H, W, torch::kDouble, indices.front(), n) : coords_of(indices, H, W);
  // Content coordinates -> the encoder frame (padding), in double, then float.
  grid = torch::stack({grid.select(1, 0) * enc.sy + enc.ty, grid.select(1, 1) * enc.sx + enc.tx}, 1);
  const torch::Tensor coord = grid.to(torch::kFloat).unsqueeze(0).to(device);  // [1,n,2]

  // The guide: RGB and mask at the query. Queries sit on pixel centres of the grid the image and the mask
  // have, where bilinear sampling is the pixel itself.
  torch::Tensor guide;
  if (net->config().guide || net->config().residual) {
    torch::Tensor rgb = torch::empty({1, 3, 1, n}, torch::kFloat);
    torch::Tensor mask = torch::empty({1, 1, 1, n}, torch::kFloat);
    float* r = rgb.data_ptr<float>();
    float* g = r + n;
    float* b = g + n;
    float* m = mask.data_ptr<float>();
    for (int64_t k = 0; k < n; ++k) {
      const int64_t y = indices[k] / W, x = indices[k] % W;
      const cv::Vec3b& px = image.ptr<cv::Vec3b>(static_cast<int>(y))[x];
      r[k] = static_cast<float>(px[2]) / 255.0f;
      g[k] = static_cast<float>(px[1]) / 255.0f;
      b[k] = static_cast<float>(px[0]) / 255.0f;
      m[k] = prob.ptr<float>(static_cast<int>(y))[x];
    }
    guide = normalize_input(rgb.to(device), mask.to(device)).squeeze(2).permute({0, 2, 1});  // [1,n,4]
  }

  const std::vector<LayerWeights>* weights = enc.weights.empty() ? nullptr : &enc.weights;
  const torch::Tensor logits = net->apply_prior(
      net->implicit_->query(enc.features, coord, cell, net->config().guide ? guide : torch::Tensor(), weights,
                            options.chunk_size),
      net->config().residual ? guide.select(2, 3) : torch::Tensor());  // [1,n]
  const torch::Tensor p = torch::sigmoid(logits.to(torch::kFloat)).to(torch::kCPU).contiguous();
  const float* values = p.data_ptr<float>();
  for (int64_t k = 0; k < n; ++k) {
    prob.ptr<float>(static_cast<int>(indices[k] / W))[indices[k] % W] = values[k];
  }
}

}  // namespace

cv::Mat select_queries(const cv::Mat& prob, const RefineOptions& options, int band) {
  cv::Mat selection;
  cv::inRange(prob, options.uncertain_low, options.uncertain_high, selection);  // 255 inside
  if (band > 0) {
    const cv::Mat binary = prob > 0.5;
    const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_RECT, {2 * band + 1, 2 * band + 1});
    cv::Mat dilated, eroded;
    cv::dilate(binary, dilated, kernel);
    cv::erode(binary, eroded, kernel);
    selection |= dilated != eroded;  // within `band` px (Chebyshev) of a 0/1 transition
  }
  return selection;
}

int64_t query_stage(AirmNet& net, const StageEncoding& encoding, const cv::Mat& image, cv::Mat& prob,
                    const cv::Mat& selection, const RefineOptions& options, const torch::Device& device) {
  CV_Assert(prob.type() == CV_32FC1 && image.type() == CV_8UC3 && image.size() == prob.size());
  CV_Assert(selection.empty() || (selection.type() == CV_8UC1 && selection.size() == prob.size()));
  const int64_t H = prob.rows, W = prob.cols;
  // Output pixel size in the encoder frame.
  const torch::Tensor cell =
      torch::tensor({2.0 / static_cast<double>(H) * encoding.sy, 2.0 / static_cast<double>(W) * encoding.sx},
                    torch::kDouble)
          .to(torch::kFloat)
          .to(device);
  // Every query() call projects the whole feature map once: blocks of at least about twice its cells keep
  // that below a few percent of the block's work.
  const int64_t cells = encoding.features.size(2) * encoding.features.size(3);
  const int64_t target =
      std::max({options.block_size, options.chunk_size, std::min<int64_t>(2 * cells, int64_t{1} << 22)});

  std::vector<int64_t> pending;
  pending.reserve(static_cast<size_t>(std::min(target, H * W)));
  int64_t queries = 0;
  auto flush = [&] {
    if (pending.empty()) return;
    query_block(net, encoding, image, prob, pending, cell, options, device);
    queries += static_cast<int64_t>(pending.size());
    pending.clear();
  };
  for (int64_t y = 0; y < H; ++y) {
    const unsigned char* row = selection.empty() ? nullptr : selection.ptr<unsigned char>(static_cast<int>(y));
    for (int64_t x = 0; x < W; ++x) {
      if (row != nullptr && row[x] == 0) continue;
      pending.push_back(y * W + x);
      if (static_cast<int64_t>(pending.size()) >= target) flush();
    }
  }
  flush();
  return queries;
}

double boundary_shift_px(const cv::Mat& before, const cv::Mat& after, double scale) {
  const cv::Mat inside = before > 0.5f;
  const double changed = cv::countNonZero(inside != (after > 0.5f));
  // A pixel inside with a 4-neighbour outside (the grid's edge does not count).
  cv::Mat eroded;
  cv::erode(inside, eroded, cv::getStructuringElement(cv::MORPH_CROSS, cv::Size(3, 3)), cv::Point(-1, -1), 1,
            cv::BORDER_REPLICATE);
  const double boundary = cv::countNonZero(inside != eroded);
  if (boundary == 0) return changed == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return changed / boundary / scale;
}

}  // namespace airm::refine_detail
