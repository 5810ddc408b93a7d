// Coarse-mask generators: CascadePSP-style boundary perturbation and a
// low-resolution segmenter's output.
#pragma once

#include <cstdint>
#include <string_view>

#include <opencv2/core.hpp>

namespace airm {

enum class DegradeMode { perturb, lowres, both };

// "perturb" | "lowres" | "both"; throws airm::Error otherwise.
DegradeMode parse_degrade_mode(std::string_view text);

struct PerturbOptions {
  double min_iou = 0.8;   // target IoU is drawn uniformly from [min_iou, max_iou)
  double max_iou = 1.0;
  double tolerance = 0.005;  // achieved IoU aims at target +- tolerance
};

struct LowresOptions {
  int factor = 8;     // the long side is divided by this, then upsampled back
  bool soft = false;  // keep the bilinear upsampling (0..255, rounded) instead of thresholding it
};

// A seed for one file: a fixed 64-bit mix of `seed` and `name`, the same on
// every platform and thread count.
std::uint64_t sample_seed(std::uint64_t seed, std::string_view name);

// Target IoU drawn for a sample seed, in [min_iou, max_iou).
double draw_target_iou(const PerturbOptions& options, std::uint64_t sample_seed);

// CascadePSP-style perturbation of a CV_8UC1 ground truth (binarised at > 127):
// polygon simplification of the contours, then random local dilations and
// erosions in random rectangles, until the IoU with the ground truth reaches
// target_iou (within options.tolerance where reachable). Returns CV_8UC1 0/255.
cv::Mat perturb_mask(const cv::Mat& gt, double target_iou, std::uint64_t sample_seed,
                     const PerturbOptions& options = PerturbOptions());

// A low-resolution segmenter's output: downscale (area) so the long side is
// 1/factor, upscale bilinearly back, threshold at 0.5. Returns CV_8UC1 0/255
// (with options.soft: the upsampled values, 0..255, unthresholded).
cv::Mat lowres_mask(const cv::Mat& gt, const LowresOptions& options = LowresOptions());

// The mode's coarse mask for one sample: perturb, lowres, or both (the
// low-resolution degradation applied to the perturbed mask).
cv::Mat degrade_mask(const cv::Mat& gt, DegradeMode mode, std::uint64_t sample_seed,
                     const PerturbOptions& perturb = PerturbOptions(),
                     const LowresOptions& lowres = LowresOptions());

}  // namespace airm
