// IoU and mBA against hand-computed values (definitions: docs/METRICS.md).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "airm/metrics.hpp"
#include "test_support.hpp"

namespace {

using airm::boundary_radii;
using airm::ImageScore;
using airm::score_masks;
using airm::Summary;

cv::Mat zeros(int w, int h) { return cv::Mat::zeros(h, w, CV_8UC1); }

// Band of radius r by the literal definition, for checking the fast path.
cv::Mat reference_band(const cv::Mat& gt255, int r) {
  cv::Mat bin = gt255 > 127, grad;
  cv::morphologyEx(bin, grad, cv::MORPH_GRADIENT,
                   cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1)));
  return grad > 0;
}

// Accuracy in % over `band` (minus ignored) where pred and gt agree.
double reference_accuracy(const cv::Mat& gt255, const cv::Mat& pred255, const cv::Mat& band,
                          std::int64_t* pixels = nullptr) {
  std::int64_t n = 0, ok = 0;
  for (int y = 0; y < gt255.rows; ++y)
    for (int x = 0; x < gt255.cols; ++x) {
      if (!band.at<uchar>(y, x)) continue;
      ++n;
      ok += (gt255.at<uchar>(y, x) > 127) == (pred255.at<uchar>(y, x) > 127);
    }
  if (pixels) *pixels = n;
  return n ? 100.0 * ok / n : std::nan("");
}

cv::Mat random_blobs(cv::Size size, std::mt19937& rng, int blobs) {
  cv::Mat m = cv::Mat::zeros(size, CV_8UC1);
  std::uniform_int_distribution<int> X(0, size.width - 1), Y(0, size.height - 1);
  std::uniform_int_distribution<int> R(1, std::max(2, std::min(size.width, size.height) / 3));
  for (int i = 0; i < blobs; ++i) {
    cv::ellipse(m, cv::Point(X(rng), Y(rng)), cv::Size(R(rng), R(rng)), X(rng) % 180, 0, 360,
                cv::Scalar(i % 4 == 3 ? 0 : 255), cv::FILLED);
  }
  return m;
}

// ---------------------------------------------------------------- radii

TEST(BoundaryRadii, SmallImagesAreAllOne) {
  // (100+100)/300 = 0.667: (0.667-1)/5*i is in (-0.27, 0]; int() truncates to 0.
  for (cv::Size s : {cv::Size(100, 100), cv::Size(1, 1), cv::Size(7, 5), cv::Size(31, 1),
                     cv::Size(13, 17), cv::Size(149, 150)}) {
    const auto r = boundary_radii(s);
    for (int v : r) EXPECT_EQ(v, 1) << s;
  }
}

TEST(BoundaryRadii, HandComputedSequences) {
  using R = std::array<int, 5>;
  // 481x321: 802/300 = 2.6733; step 0.33467; 0, .33, .67, 1.004, 1.339 -> 1,1,1,2,2
  EXPECT_EQ(boundary_radii({481, 321}), (R{1, 1, 1, 2, 2}));
  // 854x480: 1334/300 = 4.4467; step 0.68933; 0, .69, 1.38, 2.07, 2.76 -> 1,1,2,3,3
  EXPECT_EQ(boundary_radii({854, 480}), (R{1, 1, 2, 3, 3}));
  // 1920x1080: 10; step 1.8; 0, 1.8, 3.6, 5.4, 7.2 -> 1,2,4,6,8
  EXPECT_EQ(boundary_radii({1920, 1080}), (R{1, 2, 4, 6, 8}));
  // 3840x2160: 20; step 3.8; 0, 3.8, 7.6, 11.4, 15.2 -> 1,4,8,12,16
  EXPECT_EQ(boundary_radii({3840, 2160}), (R{1, 4, 8, 12, 16}));
  // 7680x4320: 40; step 7.8; 0, 7.8, 15.6, 23.4, 31.2 -> 1,8,16,24,32
  EXPECT_EQ(boundary_radii({7680, 4320}), (R{1, 8, 16, 24, 32}));
  // 300x300: 2; step 0.2; 0, .2, .4, .6, .8 -> all 1
  EXPECT_EQ(boundary_radii({300, 300}), (R{1, 1, 1, 1, 1}));
  // 1348x1070: 8.06; step 1.412; 0, 1.41, 2.82, 4.24, 5.65 -> 1,2,3,5,6
  EXPECT_EQ(boundary_radii({1348, 1070}), (R{1, 2, 3, 5, 6}));
}

// ---------------------------------------------------------------- IoU / mBA by hand

TEST(ScoreMasks, EmptyGtAndEmptyPred) {
  const ImageScore s = score_masks(zeros(7, 5), zeros(7, 5));
  EXPECT_EQ(s.intersection, 0);
  EXPECT_EQ(s.union_, 0);
  EXPECT_DOUBLE_EQ(s.iou, 100.0);  // documented convention for an empty union
  EXPECT_TRUE(std::isnan(s.mba));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(s.band_pixels[i], 0);
    EXPECT_TRUE(std::isnan(s.boundary_accuracy[i]));
  }
  EXPECT_EQ(s.size, cv::Size(7, 5));
}

TEST(ScoreMasks, EmptyGtWithPrediction) {
  cv::Mat pred = zeros(7, 5);
  pred.at<uchar>(2, 3) = 255;
  const ImageScore s = score_masks(zeros(7, 5), pred);
  EXPECT_EQ(s.intersection, 0);
  EXPECT_EQ(s.union_, 1);
  EXPECT_DOUBLE_EQ(s.iou, 0.0);
  EXPECT_TRUE(std::isnan(s.mba));
}

TEST(ScoreMasks, FullMask) {
  const cv::Mat full(17, 13, CV_8UC1, cv::Scalar(255));
  const ImageScore s = score_masks(full, full);
  EXPECT_EQ(s.intersection, 13 * 17);
  EXPECT_EQ(s.union_, 13 * 17);
  EXPECT_DOUBLE_EQ(s.iou, 100.0);
  // A full gt has no boundary (the image border does not count).
  EXPECT_EQ(s.band_pixels[0], 0);
  EXPECT_TRUE(std::isnan(s.mba));

  cv::Mat half = full.clone();
  half.colRange(0, 6).setTo(0);
  const ImageScore h = score_masks(full, half);
  EXPECT_EQ(h.intersection, 7 * 17);
  EXPECT_EQ(h.union_, 13 * 17);
  EXPECT_NEAR(h.iou, 100.0 * 7 / 13, 1e-12);
  EXPECT_TRUE(std::isnan(h.mba));
}

TEST(ScoreMasks, OnePixelObject) {
  // 7x5 image, gt = one pixel at (x=3, y=2). Radius 1 (all radii are 1 here),
  // 3x3 ellipse = the plus-shaped cross. Dilation = the pixel and its 4
  // neighbours; erosion = nothing. Band = 5 pixels: (3,2),(2,2),(4,2),(3,1),(3,3).
  cv::Mat gt = zeros(7, 5);
  gt.at<uchar>(2, 3) = 255;
  const ImageScore perfect = score_masks(gt, gt);
  EXPECT_DOUBLE_EQ(perfect.iou, 100.0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(perfect.band_pixels[i], 5);
    EXPECT_DOUBLE_EQ(perfect.boundary_accuracy[i], 100.0);
  }
  EXPECT_DOUBLE_EQ(perfect.mba, 100.0);

  // Empty prediction: right on the 4 background band pixels, wrong on the object.
  const ImageScore empty = score_masks(gt, zeros(7, 5));
  EXPECT_DOUBLE_EQ(empty.iou, 0.0);
  EXPECT_DOUBLE_EQ(empty.mba, 80.0);

  // Prediction one pixel to the right: band pixels (3,2) wrong (gt 1, pred 0)
  // and (4,2) wrong (gt 0, pred 1); 3 of 5 right. IoU = 0/2.
  cv::Mat shifted = zeros(7, 5);
  shifted.at<uchar>(2, 4) = 255;
  const ImageScore sh = score_masks(gt, shifted);
  EXPECT_EQ(sh.intersection, 0);
  EXPECT_EQ(sh.union_, 2);
  EXPECT_DOUBLE_EQ(sh.mba, 60.0);
}

TEST(ScoreMasks, PixelInCornerIsClippedByTheBorder) {
  // 31x1 image, object pixel at x=0: band = x=0 and x=1 only (vertical
  // neighbours are outside the image, and outside pixels never count).
  cv::Mat gt = zeros(31, 1);
  gt.at<uchar>(0, 0) = 255;
  const ImageScore s = score_masks(gt, zeros(31, 1));
  EXPECT_EQ(s.band_pixels[0], 2);
  EXPECT_DOUBLE_EQ(s.mba, 50.0);
  EXPECT_DOUBLE_EQ(s.iou, 0.0);
}

TEST(ScoreMasks, ShiftedRectangle) {
  // 13x17 image, gt = columns 4..8 (5 wide) of rows 5..11 (7 tall) = 35 px.
  // pred = gt shifted right by one: columns 5..9.
  cv::Mat gt = zeros(13, 17), pred = zeros(13, 17);
  gt(cv::Rect(4, 5, 5, 7)).setTo(255);
  pred(cv::Rect(5, 5, 5, 7)).setTo(255);
  const ImageScore s = score_masks(gt, pred);
  // Intersection: columns 5..8 x 7 rows = 28; union: columns 4..9 x 7 = 42.
  EXPECT_EQ(s.intersection, 28);
  EXPECT_EQ(s.union_, 42);
  EXPECT_NEAR(s.iou, 100.0 * 28 / 42, 1e-12);
  // Radius 1 (cross kernel). Band = outer ring (bg pixels 4-adjacent to the
  // object) + inner ring (object pixels 4-adjacent to bg).
  //   outer: 7 left + 7 right + 5 top + 5 bottom = 24
  //   inner: the object's border pixels: 35 - 3*5 interior = 20
  // Band = 44. Wrong where pred != gt: inner left column x=4 (7 px, gt 1 pred 0)
  // and outer right column x=9 (7 px, gt 0 pred 1). Right: 44 - 14 = 30.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(s.band_pixels[i], 44);
    EXPECT_NEAR(s.boundary_accuracy[i], 100.0 * 30 / 44, 1e-12);
  }
  EXPECT_NEAR(s.mba, 100.0 * 30 / 44, 1e-12);
}

TEST(ScoreMasks, BinarisesAbove127) {
  cv::Mat gt = zeros(7, 5), pred = zeros(7, 5);
  gt.at<uchar>(1, 1) = 128;    // foreground
  gt.at<uchar>(1, 2) = 127;    // background
  pred.at<uchar>(1, 1) = 200;  // foreground
  pred.at<uchar>(1, 2) = 127;  // background
  const ImageScore s = score_masks(gt, pred);
  EXPECT_EQ(s.intersection, 1);
  EXPECT_EQ(s.union_, 1);
}

TEST(ScoreMasks, PredictionOfAnotherSizeIsResizedFirst) {
  // gt 8x6 with the left half foreground; pred 4x3 with its left half on.
  // Bilinear 4->8 of columns [255,255,0,0] gives exactly 255 for dst columns
  // 0..2, 191 for 3 (>127), 64 for 4, 0 for 5..7: pred columns 0..3 on.
  cv::Mat gt = zeros(8, 6);
  gt.colRange(0, 4).setTo(255);
  cv::Mat small = zeros(4, 3);
  small.colRange(0, 2).setTo(255);
  const ImageScore s = score_masks(gt, small);
  EXPECT_EQ(s.intersection, 24);
  EXPECT_EQ(s.union_, 24);
  EXPECT_DOUBLE_EQ(s.iou, 100.0);
  EXPECT_DOUBLE_EQ(s.mba, 100.0);

  // The same through an explicit cv::resize.
  cv::Mat big;
  cv::resize(small, big, gt.size(), 0, 0, cv::INTER_LINEAR);
  const ImageScore e = score_masks(gt, big);
  EXPECT_EQ(e.intersection, s.intersection);
  EXPECT_EQ(e.union_, s.union_);
}

TEST(ScoreMasks, IgnoreMaskRemovesPixelsFromBoth) {
  // Shifted rectangle as above, with column 9 (the 7 wrong outer pixels and
  // 7 pred-only pixels) ignored.
  cv::Mat gt = zeros(13, 17), pred = zeros(13, 17), ignore = zeros(13, 17);
  gt(cv::Rect(4, 5, 5, 7)).setTo(255);
  pred(cv::Rect(5, 5, 5, 7)).setTo(255);
  ignore.col(9).setTo(1);
  const ImageScore s = score_masks(gt, pred, ignore);
  EXPECT_EQ(s.intersection, 28);
  EXPECT_EQ(s.union_, 35);  // column 9 gone
  EXPECT_NEAR(s.iou, 80.0, 1e-12);
  // Band 44 - 7 ignored = 37; wrong: only the 7 of column 4. Right 30.
  EXPECT_EQ(s.band_pixels[0], 37);
  EXPECT_NEAR(s.mba, 100.0 * 30 / 37, 1e-12);

  // Ignoring everything: union 0 -> 100, bands empty -> NaN.
  const ImageScore all = score_masks(gt, pred, cv::Mat(17, 13, CV_8UC1, cv::Scalar(255)));
  EXPECT_DOUBLE_EQ(all.iou, 100.0);
  EXPECT_TRUE(std::isnan(all.mba));
}

TEST(ScoreMasks, RejectsBadInputs) {
  const cv::Mat gt = zeros(7, 5);
  EXPECT_THROW(score_masks(cv::Mat(), gt), airm::Error);
  EXPECT_THROW(score_masks(gt, cv::Mat()), airm::Error);
  EXPECT_THROW(score_masks(cv::Mat::zeros(5, 7, CV_8UC3), gt), airm::Error);
  EXPECT_THROW(score_masks(gt, cv::Mat::zeros(5, 7, CV_32FC1)), airm::Error);
  EXPECT_THROW(score_masks(gt, gt, zeros(6, 5)), airm::Error);
  EXPECT_THROW(score_masks(gt, gt, cv::Mat::zeros(5, 7, CV_16UC1)), airm::Error);
  EXPECT_NO_THROW(score_masks(gt, zeros(3, 2)));  // other size: resized, not an error
}

// ---------------------------------------------------------------- fast band == definition

TEST(ScoreMasks, BandsMatchMorphologyExOnRandomBlobs) {
  std::mt19937 rng(12345);
  const cv::Size sizes[] = {{7, 5},     {13, 17},  {31, 1},   {1, 31},  {1, 1},    {2, 3},
                            {97, 61},   {481, 321}, {321, 481}, {854, 480}, {1348, 1070},
                            {1920, 1080}, {2500, 1499}};
  for (cv::Size size : sizes) {
    for (int rep = 0; rep < 2; ++rep) {
      const cv::Mat gt = random_blobs(size, rng, 6);
      cv::Mat pred = random_blobs(size, rng, 2);
      cv::bitwise_xor(pred, gt, pred);  // a noisy version of gt
      cv::Mat ignore;
      if (rep == 1) {
        ignore = random_blobs(size, rng, 2);
      }
      const ImageScore s = score_masks(gt, pred, ignore);
      const auto radii = boundary_radii(size);
      for (int i = 0; i < 5; ++i) {
        cv::Mat band = reference_band(gt, radii[i]);
        if (!ignore.empty()) band.setTo(0, ignore);
        std::int64_t n = 0;
        const double acc = reference_accuracy(gt, pred, band, &n);
        EXPECT_EQ(s.band_pixels[i], n) << size << " r=" << radii[i];
        if (n) {
          EXPECT_NEAR(s.boundary_accuracy[i], acc, 1e-9) << size;
        } else {
          EXPECT_TRUE(std::isnan(s.boundary_accuracy[i]));
        }
      }
    }
  }
}

TEST(ScoreMasks, BandsMatchMorphologyExOnNoise) {
  // Many short runs, single pixels and thin lines.
  std::mt19937 rng(99);
  for (cv::Size size : {cv::Size(37, 23), cv::Size(300, 200), cv::Size(1200, 700)}) {
    cv::Mat gt(size, CV_8UC1), pred(size, CV_8UC1);
    cv::randu(gt, 0, 256);
    cv::randu(pred, 0, 256);
    if (size.width > 100) {
      cv::Mat low;
      cv::resize(gt(cv::Rect(0, 0, size.width / 10, size.height / 10)), low, size, 0, 0, cv::INTER_NEAREST);
      gt = low;
      cv::line(gt, {0, 0}, {size.width - 1, size.height - 1}, cv::Scalar(255), 1);
    }
    const ImageScore s = score_masks(gt, pred);
    const auto radii = boundary_radii(size);
    for (int i = 0; i < 5; ++i) {
      std::int64_t n = 0;
      const double acc = reference_accuracy(gt, pred, reference_band(gt, radii[i]), &n);
      EXPECT_EQ(s.band_pixels[i], n) << size;
      EXPECT_NEAR(s.boundary_accuracy[i], acc, 1e-9) << size;
    }
  }
}

TEST(ScoreMasks, LargeRadiusBandMatchesMorphologyEx) {
  // Radii well above those of the real sets, checked against the definition.
  std::mt19937 rng(7);
  const cv::Mat gt = random_blobs({600, 400}, rng, 8);
  cv::Mat pred = random_blobs({600, 400}, rng, 3);
  // Scale the image up so the radii grow: 4500x3000: r_max 25, step 4.8
  // -> offsets 0, 4.8, 9.6, 14.4, 19.2 -> r = 1,5,10,15,20.
  cv::Mat big_gt, big_pred;
  cv::resize(gt, big_gt, {4500, 3000}, 0, 0, cv::INTER_NEAREST);
  cv::resize(pred, big_pred, {4500, 3000}, 0, 0, cv::INTER_NEAREST);
  const ImageScore s = score_masks(big_gt, big_pred);
  const auto radii = boundary_radii(big_gt.size());
  EXPECT_EQ(radii, (std::array<int, 5>{1, 5, 10, 15, 20}));
  for (int i = 0; i < 5; ++i) {
    std::int64_t n = 0;
    const double acc = reference_accuracy(big_gt, big_pred, reference_band(big_gt, radii[i]), &n);
    EXPECT_EQ(s.band_pixels[i], n) << radii[i];
    EXPECT_NEAR(s.boundary_accuracy[i], acc, 1e-9) << radii[i];
  }
}

// ---------------------------------------------------------------- summaries

ImageScore fake(const std::string& dataset, std::int64_t inter, std::int64_t uni, double mba) {
  ImageScore s;
  s.dataset = dataset;
  s.intersection = inter;
  s.union_ = uni;
  s.iou = uni == 0 ? 100.0 : 100.0 * inter / uni;
  s.mba = mba;
  return s;
}

TEST(Summarize, PooledAndMeanIoUDiffer) {
  // Image A: 90/100 (90%); image B: 1/10 (10%). Pooled 91/110, mean 50.
  const std::vector<ImageScore> scores = {fake("d", 90, 100, 80.0), fake("d", 1, 10, 40.0)};
  const Summary s = airm::summarize(scores, "d");
  EXPECT_EQ(s.dataset, "d");
  EXPECT_EQ(s.images, 2);
  EXPECT_NEAR(s.iou, 100.0 * 91 / 110, 1e-12);
  EXPECT_NEAR(s.mean_iou, 50.0, 1e-12);
  EXPECT_NEAR(s.mba, 60.0, 1e-12);
  EXPECT_EQ(s.mba_images, 2);
}

TEST(Summarize, PooledIoUFromRealMasks) {
  cv::Mat gt1 = zeros(10, 10), pr1 = zeros(10, 10);
  gt1(cv::Rect(0, 0, 10, 5)).setTo(255);  // 50 px
  pr1(cv::Rect(0, 0, 10, 4)).setTo(255);  // 40 px inside: IoU 80%
  cv::Mat gt2 = zeros(5, 2), pr2 = zeros(5, 2);
  gt2.at<uchar>(0, 0) = 255;
  pr2.at<uchar>(1, 1) = 255;  // IoU 0, union 2
  const std::vector<ImageScore> scores = {score_masks(gt1, pr1), score_masks(gt2, pr2)};
  const Summary s = airm::summarize(scores, "x");
  EXPECT_NEAR(s.iou, 100.0 * 40 / 52, 1e-12);
  EXPECT_NEAR(s.mean_iou, 40.0, 1e-12);
}

TEST(Summarize, ExcludesImagesWithoutBoundaryFromMBA) {
  const double nan = std::nan("");
  const std::vector<ImageScore> scores = {fake("b", 5, 10, 70.0), fake("a", 0, 0, nan),
                                          fake("a", 3, 4, 90.0), fake("b", 2, 2, nan)};
  const auto rows = airm::summarize_by_dataset(scores);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].dataset, "a");
  EXPECT_EQ(rows[0].images, 2);
  EXPECT_EQ(rows[0].mba_images, 1);
  EXPECT_NEAR(rows[0].mba, 90.0, 1e-12);
  EXPECT_NEAR(rows[0].iou, 75.0, 1e-12);            // 3 / 4
  EXPECT_NEAR(rows[0].mean_iou, 87.5, 1e-12);       // (100 + 75) / 2
  EXPECT_EQ(rows[1].dataset, "b");
  EXPECT_NEAR(rows[1].iou, 100.0 * 7 / 12, 1e-12);
  EXPECT_NEAR(rows[1].mean_iou, 75.0, 1e-12);       // (50 + 100) / 2
  EXPECT_NEAR(rows[1].mba, 70.0, 1e-12);
  EXPECT_EQ(rows[2].dataset, "all");
  EXPECT_EQ(rows[2].images, 4);
  EXPECT_EQ(rows[2].mba_images, 2);
  EXPECT_NEAR(rows[2].mba, 80.0, 1e-12);
  EXPECT_NEAR(rows[2].iou, 100.0 * 10 / 16, 1e-12);
  EXPECT_NEAR(rows[2].mean_iou, 81.25, 1e-12);
}

TEST(Summarize, EmptyAndAllNaN) {
  const Summary e = airm::summarize({}, "none");
  EXPECT_EQ(e.images, 0);
  EXPECT_TRUE(std::isnan(e.iou));
  EXPECT_TRUE(std::isnan(e.mean_iou));
  EXPECT_TRUE(std::isnan(e.mba));
  const Summary n = airm::summarize({fake("a", 0, 0, std::nan(""))}, "a");
  EXPECT_DOUBLE_EQ(n.iou, 100.0);
  EXPECT_EQ(n.mba_images, 0);
  EXPECT_TRUE(std::isnan(n.mba));
  const auto rows = airm::summarize_by_dataset({});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].dataset, "all");
}

// ---------------------------------------------------------------- speed

TEST(ScoreMasks, EightKIsQuick) {
  std::mt19937 rng(3);
  cv::Mat small = random_blobs({768, 432}, rng, 10), gt, pred;
  cv::resize(small, gt, {7680, 4320}, 0, 0, cv::INTER_LINEAR);
  cv::threshold(gt, gt, 127, 255, cv::THRESH_BINARY);
  const cv::Mat shift = (cv::Mat_<double>(2, 3) << 1, 0, 5, 0, 1, -3);
  cv::warpAffine(gt, pred, shift, gt.size());
  const auto t0 = std::chrono::steady_clock::now();
  const ImageScore s = score_masks(gt, pred);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("seconds_8k", std::to_string(seconds));
  std::printf("8K score_masks: %.3f s, mBA %.3f, IoU %.3f\n", seconds, s.mba, s.iou);
  EXPECT_FALSE(std::isnan(s.mba));
  EXPECT_LT(seconds, 20.0);  // generous: shared, loaded machines
}

// ---------------------------------------------------------------- cross-check

// The same pairs scored by tools/check_metrics.py, an independent Python
// implementation of the definitions (skipped where /usr/bin/python3 lacks
// cv2 or numpy).
TEST(CrossCheck, AgreesWithPythonTool) {
  namespace fs = std::filesystem;
  const fs::path tool = fs::path(__FILE__).parent_path().parent_path() / "tools" / "check_metrics.py";
  if (!fs::exists(tool)) GTEST_SKIP() << "no " << tool;
  if (std::system("/usr/bin/python3 -c 'import cv2, numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 has no cv2/numpy (apt-get install python3-opencv python3-numpy)";
  }
  airm::test::TempDir tmp("airm-xcheck");
  for (const char* sub : {"gt", "pred", "ignore"}) fs::create_directories(tmp / sub);

  const cv::Size sizes[] = {{7, 5},      {31, 1},     {13, 17},   {64, 64},     {150, 149},
                            {300, 300},  {481, 321},  {321, 481}, {500, 375},   {640, 427},
                            {854, 480},  {997, 613},  {1024, 768}, {1348, 1070}, {1500, 1001},
                            {1920, 1080}, {2048, 1152}, {401, 1203}, {120, 90},  {2500, 1700}};
  std::mt19937 rng(2024);
  std::vector<ImageScore> scores;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    const cv::Size size = sizes[i];
    const std::string name = "img" + std::to_string(100 + i);
    cv::Mat gt = random_blobs(size, rng, 5);
    if (i == 3) gt.setTo(0);    // no object: mBA excluded
    if (i == 4) gt.setTo(255);  // full: mBA excluded
    cv::Mat noise = random_blobs(size, rng, 3), pred;
    cv::bitwise_xor(gt, noise, pred);
    if (i % 4 == 1 && size.width > 40) {  // a prediction at a lower resolution
      cv::Mat low;
      cv::resize(pred, low, cv::Size(size.width / 3 + 1, size.height / 2 + 1), 0, 0, cv::INTER_AREA);
      pred = low;
    }
    cv::Mat ignore;
    if (i % 3 == 2) {
      ignore = random_blobs(size, rng, 1);
      ASSERT_TRUE(cv::imwrite((tmp / "ignore" / (name + ".png")).string(), ignore));
    }
    ASSERT_TRUE(cv::imwrite((tmp / "gt" / (name + ".png")).string(), gt));
    ASSERT_TRUE(cv::imwrite((tmp / "pred" / (name + ".png")).string(), pred));
    ImageScore s = score_masks(gt, pred, ignore);
    s.name = name;
    scores.push_back(s);
  }
  const Summary cpp = airm::summarize(scores, "all");

  const fs::path out = tmp / "out.txt", csv = tmp / "scores.csv";
  const std::string cmd = "/usr/bin/python3 '" + tool.string() + "' --gt-dir '" + (tmp / "gt").string() +
                          "' --pred-dir '" + (tmp / "pred").string() + "' --ignore-dir '" +
                          (tmp / "ignore").string() + "' --csv '" + csv.string() + "' > '" + out.string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  std::map<std::string, double> py;
  std::istringstream lines(airm::test::read_bytes(out));
  for (std::string line; std::getline(lines, line);) {
    const auto colon = line.find(':');
    if (colon != std::string::npos) py[line.substr(0, colon)] = std::strtod(line.c_str() + colon + 1, nullptr);
  }
  const double d_pooled = std::abs(py["pooled IoU"] - cpp.iou);
  const double d_mean = std::abs(py["mean IoU"] - cpp.mean_iou);
  const double d_mba = std::abs(py["mBA"] - cpp.mba);
  std::printf("C++   pooled IoU %.6f mean IoU %.6f mBA %.6f (%d of %d images)\n", cpp.iou, cpp.mean_iou,
              cpp.mba, cpp.mba_images, cpp.images);
  std::printf("|C++ - Python|: pooled IoU %.2g, mean IoU %.2g, mBA %.2g\n", d_pooled, d_mean, d_mba);
  EXPECT_LT(d_pooled, 0.01);
  EXPECT_LT(d_mean, 0.01);
  EXPECT_LT(d_mba, 0.01);
  EXPECT_EQ(cpp.mba_images, static_cast<int>(std::size(sizes)) - 2);
  EXPECT_EQ(py["images"], static_cast<double>(std::size(sizes)));

  // Per image: name,width,height,intersection,union,iou,mba,...
  std::istringstream rows(airm::test::read_bytes(csv));
  std::string row;
  std::getline(rows, row);  // header
  size_t n = 0;
  for (; std::getline(rows, row); ++n) {
    std::vector<std::string> f;
    std::istringstream cells(row);
    for (std::string c; std::getline(cells, c, ',');) f.push_back(c);
    ASSERT_GE(f.size(), 7u);
    ASSERT_LT(n, scores.size());
    const ImageScore& s = scores[n];
    EXPECT_EQ(f[0], s.name);
    EXPECT_EQ(std::stoll(f[3]), s.intersection) << s.name;
    EXPECT_EQ(std::stoll(f[4]), s.union_) << s.name;
    const double mba = std::strtod(f[6].c_str(), nullptr);
    if (std::isnan(s.mba)) {
      EXPECT_TRUE(std::isnan(mba)) << s.name;
    } else {
      EXPECT_NEAR(mba, s.mba, 1e-5) << s.name;
    }
  }
  EXPECT_EQ(n, scores.size());
}

}  // namespace
