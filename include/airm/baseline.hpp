// The classical refiners a user already has, as our peers in every results
// table: OpenCV's guided filter and GrabCut initialised from the coarse mask.
// Both take the photo (8-bit BGR, like cv::imread) and a coarse mask of its
// size (CV_32FC1 in [0, 1] or CV_8UC1 0..255) and return a binary CV_8UC1
// mask 0/255. Parameters scale with the image so one setting serves 300 px
// to 8K photos; the defaults are the ones docs/RESULTS.md reports.
#pragma once

#include <string>

#include <opencv2/core.hpp>

namespace airm {

struct GuidedFilterOptions {
  // Window radius in px: max(min_radius, round((w + h) / radius_divisor)).
  int min_radius = 4;
  double radius_divisor = 300;
  double eps = 1e-3;       // regularisation, on the mask in [0, 1] (guide in 0..255)
  double threshold = 0.5;  // on the filtered mask
  void validate() const;   // throws airm::Error
};

struct GrabCutOptions {
  // Band b = max(min_band, round((w + h) / band_divisor)) px, elliptical kernel 2b+1:
  // mask eroded by it = sure foreground, rest of the mask = probable foreground,
  // the dilated ring = probable background, everything else = sure background.
  int min_band = 3;
  double band_divisor = 200;
  int iterations = 3;
  void validate() const;
};

// The radius / band the options give for an image of this size.
int guided_filter_radius(cv::Size size, const GuidedFilterOptions& options);
int grabcut_band(cv::Size size, const GrabCutOptions& options);

// guide: CV_8UC3 BGR; coarse: same size -> CV_8UC1 0/255.
cv::Mat guided_filter_refine(const cv::Mat& bgr, const cv::Mat& coarse, const GuidedFilterOptions& options = {});
// As above; the coarse mask (thresholded at ½) unchanged when either sure region is empty.
cv::Mat grabcut_refine(const cv::Mat& bgr, const cv::Mat& coarse, const GrabCutOptions& options = {});

// "guided" or "grabcut" -> the refiner with default options; throws airm::Error for another name.
cv::Mat baseline_refine(const std::string& method, const cv::Mat& bgr, const cv::Mat& coarse);

}  // namespace airm
