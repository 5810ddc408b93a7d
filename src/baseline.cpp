// Guided filter and GrabCut from the coarse mask (airm/baseline.hpp).
#include "airm/baseline.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>
#include <opencv2/ximgproc/edge_filter.hpp>

#include "airm/error.hpp"

namespace airm {
namespace {

// The coarse mask as CV_32FC1 in [0, 1], checked against the photo.
cv::Mat coarse_unit(const cv::Mat& bgr, const cv::Mat& coarse, const char* who) {
  const std::string name(who);
  if (bgr.empty() || bgr.type() != CV_8UC3) {
    throw Error("", name + ": expected an 8-bit BGR photo, got " + (bgr.empty() ? "an empty one" : "type " + std::to_string(bgr.type())));
  }
  if (coarse.size() != bgr.size()) {
    throw Error("", name + ": expected a coarse mask of the photo's size " + std::to_string(bgr.cols) + "x" +
                        std::to_string(bgr.rows) + ", got " + std::to_string(coarse.cols) + "x" +
                        std::to_string(coarse.rows));
  }
  cv::Mat unit;
  if (coarse.type() == CV_32FC1) {
    if (!cv::checkRange(coarse, true, nullptr, 0.0, 1.0 + 1e-6)) {
      throw Error("", name + ": expected coarse mask values in [0, 1], got values outside (or NaN)");
    }
    unit = coarse;
  } else if (coarse.type() == CV_8UC1) {
    coarse.convertTo(unit, CV_32F, 1.0 / 255.0);
  } else {
    throw Error("", name + ": expected a CV_32FC1 or CV_8UC1 coarse mask, got type " + std::to_string(coarse.type()));
  }
  return unit;
}

// GrabCut seeds its colour models with k-means on OpenCV's thread-local
// generator: fixed while this lives, the caller's state given back after.
class FixedOpenCvRng {
 public:
  FixedOpenCvRng() : caller_(cv::theRNG()) { cv::theRNG() = cv::RNG(0x12345678); }
  ~FixedOpenCvRng() { cv::theRNG() = caller_; }
  FixedOpenCvRng(const FixedOpenCvRng&) = delete;
  FixedOpenCvRng& operator=(const FixedOpenCvRng&) = delete;

 private:
  const cv::RNG caller_;
};

cv::Mat binary(const cv::Mat& unit, double threshold) {
  cv::Mat out;
  cv::compare(unit, threshold, out, cv::CMP_GE);
  return out;
}

}  // namespace

void GuidedFilterOptions::validate() const {
  if (min_radius < 1) throw Error("", "guided filter: min_radius: expected >= 1, got " + std::to_string(min_radius));
  if (!(radius_divisor > 0)) throw Error("", "guided filter: radius_divisor: expected > 0, got " + std::to_string(radius_divisor));
  if (!(eps > 0)) throw Error("", "guided filter: eps: expected > 0, got " + std::to_string(eps));
  if (!(threshold > 0 && threshold < 1)) {
    throw Error("", "guided filter: threshold: expected in (0, 1), got " + std::to_string(threshold));
  }
}

void GrabCutOptions::validate() const {
  if (min_band < 1) throw Error("", "grabcut: min_band: expected >= 1, got " + std::to_string(min_band));
  if (!(band_divisor > 0)) throw Error("", "grabcut: band_divisor: expected > 0, got " + std::to_string(band_divisor));
  if (iterations < 1) throw Error("", "grabcut: iterations: expected >= 1, got " + std::to_string(iterations));
}

int guided_filter_radius(cv::Size size, const GuidedFilterOptions& o) {
  return std::max(o.min_radius, static_cast<int>(std::lround((size.width + size.height) / o.radius_divisor)));
}

int grabcut_band(cv::Size size, const GrabCutOptions& o) {
  return std::max(o.min_band, static_cast<int>(std::lround((size.width + size.height) / o.band_divisor)));
}

cv::Mat guided_filter_refine(const cv::Mat& bgr, const cv::Mat& coarse, const GuidedFilterOptions& options) {
  options.validate();
  const cv::Mat unit = coarse_unit(bgr, coarse, "guided filter");
  cv::Mat filtered;
  cv::ximgproc::guidedFilter(bgr, unit, filtered, guided_filter_radius(bgr.size(), options), options.eps, CV_32F);
  return binary(filtered, options.threshold);
}

cv::Mat grabcut_refine(const cv::Mat& bgr, const cv::Mat& coarse, const GrabCutOptions& options) {
  options.validate();
  const cv::Mat mask = binary(coarse_unit(bgr, coarse, "grabcut"), 0.5);
  const int b = grabcut_band(bgr.size(), options);
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, {2 * b + 1, 2 * b + 1});
  cv::Mat eroded, dilated;
  cv::erode(mask, eroded, kernel);
  cv::dilate(mask, dilated, kernel);
  // Sure regions empty: GrabCut has no model of one side; keep the coarse mask.
  if (cv::countNonZero(eroded) == 0 || cv::countNonZero(dilated) == static_cast<int>(dilated.total())) return mask;
  cv::Mat labels(bgr.size(), CV_8UC1, cv::Scalar(cv::GC_BGD));
  labels.setTo(cv::GC_PR_BGD, dilated);
  labels.setTo(cv::GC_PR_FGD, mask);
  labels.setTo(cv::GC_FGD, eroded);
  cv::Mat background_model, foreground_model;
  {
    const FixedOpenCvRng fixed;  // same mask for the same input, every run
    cv::grabCut(bgr, labels, cv::Rect(), background_model, foreground_model, options.iterations, cv::GC_INIT_WITH_MASK);
  }
  cv::Mat out = (labels == cv::GC_FGD) | (labels == cv::GC_PR_FGD);
  return out;
}

cv::Mat baseline_refine(const std::string& method, const cv::Mat& bgr, const cv::Mat& coarse) {
  if (method == "guided") return guided_filter_refine(bgr, coarse);
  if (method == "grabcut") return grabcut_refine(bgr, coarse);
  throw Error("", "baseline: method: expected guided or grabcut, got '" + method + "'");
}

}  // namespace airm
