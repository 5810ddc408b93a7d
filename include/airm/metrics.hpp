// IoU and mBA exactly as CascadePSP defines them (see docs/METRICS.md).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace airm {

constexpr int kBoundaryRadii = 5;

// CascadePSP's radii for an image W x H: r_max = (W + H) / 300,
// r_i = 1 + floor((r_max - 1) / 5 * i) for i = 0..4.
std::array<int, kBoundaryRadii> boundary_radii(cv::Size size);

// Scores of one prediction against its ground truth. Percentages.
struct ImageScore {
  std::string dataset;
  std::string name;
  cv::Size size;
  std::int64_t intersection = 0;  // pixels foreground in both (ignored excluded)
  std::int64_t union_ = 0;        // pixels foreground in either (ignored excluded)
  double iou = 0;                 // 100 * intersection / union; 100 when union is 0
  std::array<double, kBoundaryRadii> boundary_accuracy{};  // %, NaN where the band is empty
  std::array<std::int64_t, kBoundaryRadii> band_pixels{};
  double mba = 0;                 // mean of boundary_accuracy; NaN if any band is empty
};

// Scores `pred` against `gt`. Both CV_8UC1 0..255 and binarised at > 127;
// `pred` of another size is first resized bilinearly to `gt`'s size.
// `ignore` (optional, CV_8UC1, non-zero = ignored, same size as gt) removes
// pixels from both metrics. Throws airm::Error on a type or size mismatch.
ImageScore score_masks(const cv::Mat& gt, const cv::Mat& pred, const cv::Mat& ignore = cv::Mat());

// Aggregate over a set of images.
struct Summary {
  std::string dataset;          // dataset name, or "all" for the pooled row
  int images = 0;
  double iou = 0;               // pooled: 100 * sum(intersection) / sum(union)
  double mean_iou = 0;          // mean of per-image IoU
  double mba = 0;               // mean of per-image mBA over images with a boundary
  int mba_images = 0;           // images that count toward mba
};

Summary summarize(const std::vector<ImageScore>& scores, const std::string& dataset);

// One summary per dataset (sorted by name), then the pooled "all" row.
std::vector<Summary> summarize_by_dataset(const std::vector<ImageScore>& scores);

}  // namespace airm
