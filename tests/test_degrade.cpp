// Coarse-mask generators: perturbation accuracy, determinism, edge cases and
// hand-checked low-resolution outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/degrade.hpp"
#include "airm/error.hpp"
#include "airm/synth.hpp"
#include "test_support.hpp"

namespace {

using airm::DegradeMode;
using airm::LowresOptions;
using airm::PerturbOptions;

double iou(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat ba = a > 127, bb = b > 127, i, u;
  cv::bitwise_and(ba, bb, i);
  cv::bitwise_or(ba, bb, u);
  const int nu = cv::countNonZero(u);
  return nu == 0 ? 1.0 : static_cast<double>(cv::countNonZero(i)) / nu;
}

// True when every pixel is 0 or 255.
bool is_binary(const cv::Mat& m) {
  cv::Mat zero = m == 0, full = m == 255, either;
  cv::bitwise_or(zero, full, either);
  return cv::countNonZero(either) == static_cast<int>(m.total());
}

struct NamedMask {
  std::string name;
  cv::Mat mask;
};

// The first 20 masks of berkeley_iseg (sorted), or 20 generated scenes' masks.
std::vector<NamedMask> twenty_masks() {
  std::vector<NamedMask> out;
  const std::filesystem::path shared = airm::test::shared_dir();
  const std::filesystem::path dir = shared.empty() ? std::filesystem::path() : shared / "data" / "berkeley_iseg" / "masks";
  if (!dir.empty() && std::filesystem::is_directory(dir)) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() == ".png") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (std::size_t i = 0; i < files.size() && out.size() < 20; ++i) {
      cv::Mat m = cv::imread(files[i].string(), cv::IMREAD_GRAYSCALE);
      if (!m.empty()) out.push_back({files[i].filename().string(), m});
    }
  }
  if (out.size() < 20) {
    out.clear();
    airm::SynthOptions options;
    options.size = cv::Size(640, 480);
    for (int i = 0; i < 20; ++i) out.push_back({"synth" + std::to_string(i), airm::generate_scene(options, 100 + i).mask});
  }
  return out;
}

cv::Mat random_mask(cv::Size size, unsigned seed) {
  cv::Mat m(size, CV_8UC1);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

TEST(DegradeMode, ParsesTheThreeNames) {
  EXPECT_EQ(airm::parse_degrade_mode("perturb"), DegradeMode::perturb);
  EXPECT_EQ(airm::parse_degrade_mode("lowres"), DegradeMode::lowres);
  EXPECT_EQ(airm::parse_degrade_mode("both"), DegradeMode::both);
  EXPECT_THROW(airm::parse_degrade_mode("Perturb"), airm::Error);
  EXPECT_THROW(airm::parse_degrade_mode(""), airm::Error);
}

TEST(SampleSeed, FixedMixOfSeedAndName) {
  // Pinned values: the mix must never change across platforms or versions.
  // (Computed independently: splitmix64(splitmix64(seed) ^ fnv1a64(name)).)
  EXPECT_EQ(airm::sample_seed(0, ""), 0x5B21F68FFA77F14CULL);
  const std::uint64_t a = airm::sample_seed(42, "101085.png");
  EXPECT_EQ(a, 0xE4039BE2EB891F6EULL);
  EXPECT_EQ(a, airm::sample_seed(42, "101085.png"));
  EXPECT_NE(a, airm::sample_seed(43, "101085.png"));
  EXPECT_NE(a, airm::sample_seed(42, "101087.png"));
  EXPECT_NE(airm::sample_seed(0, "ab"), airm::sample_seed(0, "ba"));
}

TEST(DrawTargetIou, InRangeAndDeterministic) {
  PerturbOptions options;
  double lo = 1.0, hi = 0.0;
  for (std::uint64_t i = 0; i < 2000; ++i) {
    const double t = airm::draw_target_iou(options, airm::sample_seed(1, std::to_string(i)));
    ASSERT_GE(t, 0.8);
    ASSERT_LT(t, 1.0);
    lo = std::min(lo, t);
    hi = std::max(hi, t);
  }
  EXPECT_LT(lo, 0.81);  // spread over the whole range
  EXPECT_GT(hi, 0.99);
  EXPECT_EQ(airm::draw_target_iou(options, 5), airm::draw_target_iou(options, 5));
  // Pinned (computed independently with xoshiro256** seeded by splitmix64):
  // the same target on every platform.
  EXPECT_NEAR(airm::draw_target_iou(options, airm::sample_seed(42, "101085.png")), 0.8674876486188832, 1e-15);
  options.min_iou = options.max_iou = 0.9;
  EXPECT_DOUBLE_EQ(airm::draw_target_iou(options, 5), 0.9);
  options.min_iou = 0.95;
  options.max_iou = 0.9;
  EXPECT_THROW(airm::draw_target_iou(options, 5), airm::Error);
}

TEST(PerturbMask, AccuracyOnTwentyMasks) {
  const auto masks = twenty_masks();
  ASSERT_EQ(masks.size(), 20u);
  PerturbOptions options;
  double worst = 0.0;
  for (const auto& [name, gt] : masks) {
    const std::uint64_t seed = airm::sample_seed(2024, name);
    const double target = airm::draw_target_iou(options, seed);
    const auto t0 = std::chrono::steady_clock::now();
    const cv::Mat out = airm::perturb_mask(gt, target, seed, options);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(out.size(), gt.size());
    ASSERT_EQ(out.type(), CV_8UC1);
    EXPECT_TRUE(is_binary(out));
    const double achieved = iou(out, gt);
    worst = std::max(worst, std::abs(achieved - target));
    EXPECT_NEAR(achieved, target, 0.01) << name;
    if (target < 0.98) {
      EXPECT_GT(airm::test::count_differences(out, gt > 127), 0) << name;
    }
    std::printf("  %-14s %4dx%-4d target %.4f achieved %.4f  %.1f ms\n", name.c_str(), gt.cols, gt.rows, target,
                achieved, ms);
  }
  std::printf("  max |achieved - target| = %.5f\n", worst);
}

TEST(PerturbMask, LowTargetsAndLargeMasks) {
  airm::SynthOptions so;
  so.size = cv::Size(3840, 2160);
  const cv::Mat gt = airm::generate_scene(so, 9).mask;
  for (double target : {0.8, 0.9, 0.97}) {
    const auto t0 = std::chrono::steady_clock::now();
    const cv::Mat out = airm::perturb_mask(gt, target, 77);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double achieved = iou(out, gt);
    EXPECT_NEAR(achieved, target, 0.01);
    std::printf("  4K target %.3f achieved %.4f in %.2f s\n", target, achieved, s);
  }
  // Far below the usual range still lands and terminates.
  const cv::Mat small = airm::generate_scene(airm::SynthOptions{cv::Size(320, 240)}, 3).mask;
  EXPECT_NEAR(iou(airm::perturb_mask(small, 0.5, 1), small), 0.5, 0.01);
}

TEST(PerturbMask, SameOutputWhateverTheThreads) {
  const auto masks = twenty_masks();
  const cv::Mat& gt = masks[3].mask;
  const std::uint64_t seed = airm::sample_seed(11, masks[3].name);
  const int threads = cv::getNumThreads();
  cv::setNumThreads(1);
  const cv::Mat one = airm::degrade_mask(gt, DegradeMode::both, seed);
  const cv::Mat p1 = airm::degrade_mask(gt, DegradeMode::perturb, seed);
  cv::setNumThreads(2);
  const cv::Mat two = airm::degrade_mask(gt, DegradeMode::both, seed);
  const cv::Mat p2 = airm::degrade_mask(gt, DegradeMode::perturb, seed);
  cv::setNumThreads(threads);
  EXPECT_EQ(airm::test::count_differences(one, two), 0);
  EXPECT_EQ(airm::test::count_differences(p1, p2), 0);
  cv::Mat a, b;
  std::thread ta([&] { a = airm::degrade_mask(gt, DegradeMode::perturb, seed); });
  std::thread tb([&] { b = airm::degrade_mask(gt, DegradeMode::perturb, seed); });
  ta.join();
  tb.join();
  EXPECT_EQ(airm::test::count_differences(a, p1), 0);
  EXPECT_EQ(airm::test::count_differences(b, p1), 0);
}

TEST(PerturbMask, DifferentNamesGiveDifferentOutputs) {
  const auto masks = twenty_masks();
  const cv::Mat& gt = masks[0].mask;
  const cv::Mat a = airm::perturb_mask(gt, 0.85, airm::sample_seed(1, "a.png"));
  const cv::Mat b = airm::perturb_mask(gt, 0.85, airm::sample_seed(1, "b.png"));
  EXPECT_GT(airm::test::count_differences(a, b), 0);
  const cv::Mat c = airm::degrade_mask(gt, DegradeMode::perturb, airm::sample_seed(1, "c.png"));
  const cv::Mat d = airm::degrade_mask(gt, DegradeMode::perturb, airm::sample_seed(1, "d.png"));
  EXPECT_GT(airm::test::count_differences(c, d), 0);
}

TEST(PerturbMask, EmptyFullAndTinyMasks) {
  // Empty ground truth: empty output.
  const cv::Mat empty = cv::Mat::zeros(64, 48, CV_8UC1);
  const cv::Mat e = airm::perturb_mask(empty, 0.85, 1);
  EXPECT_EQ(e.size(), empty.size());
  EXPECT_EQ(cv::countNonZero(e), 0);
  // All foreground: degraded by erosion (holes grown from a seed pixel).
  const cv::Mat full(64, 48, CV_8UC1, cv::Scalar(255));
  const cv::Mat f = airm::perturb_mask(full, 0.85, 1);
  EXPECT_NEAR(iou(f, full), 0.85, 0.01);
  const cv::Mat big_full(600, 800, CV_8UC1, cv::Scalar(200));
  EXPECT_NEAR(iou(airm::perturb_mask(big_full, 0.9, 2), big_full), 0.9, 0.01);
  // One pixel: best effort, no hang.
  cv::Mat dot = cv::Mat::zeros(50, 70, CV_8UC1);
  dot.at<uchar>(20, 30) = 255;
  const auto t0 = std::chrono::steady_clock::now();
  const cv::Mat d = airm::perturb_mask(dot, 0.85, 3);
  EXPECT_EQ(d.size(), dot.size());
  EXPECT_TRUE(is_binary(d));
  // Tiny and odd sizes, including impossible targets.
  for (cv::Size size : {cv::Size(1, 1), cv::Size(7, 5), cv::Size(13, 17), cv::Size(1, 97), cv::Size(97, 1)}) {
    for (unsigned s = 0; s < 4; ++s) {
      cv::Mat gt = random_mask(size, s);
      if (s == 1) gt = cv::Mat(size, CV_8UC1, cv::Scalar(255));
      for (double target : {0.0, 0.5, 0.85, 0.99, 1.0}) {
        const cv::Mat out = airm::perturb_mask(gt, target, s);
        ASSERT_EQ(out.size(), size);
        ASSERT_TRUE(is_binary(out));
        for (DegradeMode mode : {DegradeMode::perturb, DegradeMode::lowres, DegradeMode::both}) {
          ASSERT_EQ(airm::degrade_mask(gt, mode, s).size(), size);
        }
      }
    }
  }
  const cv::Mat one_on(1, 1, CV_8UC1, cv::Scalar(255));
  EXPECT_EQ(airm::perturb_mask(one_on, 0.85, 4).size(), cv::Size(1, 1));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

TEST(PerturbMask, RejectsWrongInput) {
  EXPECT_THROW(airm::perturb_mask(cv::Mat(), 0.9, 1), airm::Error);
  EXPECT_THROW(airm::perturb_mask(cv::Mat::zeros(8, 8, CV_8UC3), 0.9, 1), airm::Error);
  EXPECT_THROW(airm::perturb_mask(cv::Mat::zeros(8, 8, CV_32FC1), 0.9, 1), airm::Error);
  EXPECT_THROW(airm::lowres_mask(cv::Mat()), airm::Error);
  EXPECT_THROW(airm::lowres_mask(cv::Mat::zeros(8, 8, CV_16UC1)), airm::Error);
  EXPECT_THROW(airm::lowres_mask(cv::Mat::zeros(8, 8, CV_8UC1), LowresOptions{0}), airm::Error);
  EXPECT_THROW(airm::degrade_mask(cv::Mat(), DegradeMode::both, 1), airm::Error);
}

TEST(PerturbMask, ResultIsBinarisedAtAbove127) {
  cv::Mat gt = cv::Mat::zeros(100, 100, CV_8UC1);
  gt(cv::Rect(20, 20, 60, 60)).setTo(128);
  gt(cv::Rect(0, 0, 10, 10)).setTo(127);  // background
  const cv::Mat out = airm::perturb_mask(gt, 0.9, 5);
  EXPECT_TRUE(is_binary(out));
  EXPECT_NEAR(iou(out, gt > 127), 0.9, 0.01);
}

TEST(LowresMask, SquareAtFactorEight) {
  // 64x64 with a 16x16 square at (16,16): 8x8 cells, two of them on in each
  // direction; bilinear back keeps the square's sides and cuts 6 pixels from
  // each corner (where the product of the two 1-D weights is <= 0.5).
  cv::Mat gt = cv::Mat::zeros(64, 64, CV_8UC1);
  gt(cv::Rect(16, 16, 16, 16)).setTo(255);
  const cv::Mat out = airm::lowres_mask(gt, LowresOptions{8});
  ASSERT_EQ(out.size(), gt.size());
  EXPECT_TRUE(is_binary(out));
  cv::Mat expected = gt.clone();
  for (const cv::Point p : {cv::Point(0, 0), cv::Point(1, 0), cv::Point(2, 0), cv::Point(0, 1), cv::Point(1, 1),
                            cv::Point(0, 2)}) {
    expected.at<uchar>(16 + p.y, 16 + p.x) = 0;
    expected.at<uchar>(16 + p.y, 31 - p.x) = 0;
    expected.at<uchar>(31 - p.y, 16 + p.x) = 0;
    expected.at<uchar>(31 - p.y, 31 - p.x) = 0;
  }
  EXPECT_EQ(airm::test::count_differences(out, expected), 0);
  EXPECT_EQ(cv::countNonZero(out), 256 - 24);
  // A 16x16 all-foreground input stays all foreground.
  const cv::Mat full(16, 16, CV_8UC1, cv::Scalar(255));
  EXPECT_EQ(cv::countNonZero(airm::lowres_mask(full, LowresOptions{8})), 256);
}

TEST(LowresMask, SoftIsTheUpsamplingBeforeTheThreshold) {
  cv::Mat gt = cv::Mat::zeros(64, 80, CV_8UC1);
  cv::circle(gt, {40, 30}, 17, cv::Scalar(255), cv::FILLED);
  LowresOptions soft{8};
  soft.soft = true;
  const cv::Mat s = airm::lowres_mask(gt, soft), b = airm::lowres_mask(gt, LowresOptions{8});
  ASSERT_EQ(s.type(), CV_8UC1);
  ASSERT_EQ(s.size(), gt.size());
  EXPECT_FALSE(is_binary(s));
  EXPECT_GT(cv::countNonZero((s > 0) & (s < 255)), 100);
  // Thresholding it at 127 reproduces the binary mask exactly (values of exactly one half stay below).
  EXPECT_EQ(airm::test::count_differences(s > 127, b), 0);
}

TEST(LowresMask, OnePixelWideInputs) {
  // 96x1 -> 12x1 -> 96x1. A run aligned to the cells is kept exactly.
  cv::Mat row = cv::Mat::zeros(1, 96, CV_8UC1);
  row(cv::Rect(40, 0, 16, 1)).setTo(255);
  cv::Mat out = airm::lowres_mask(row);
  ASSERT_EQ(out.size(), row.size());
  EXPECT_EQ(airm::test::count_differences(out, row), 0);
  // Pixels 42..49: cells of 191.25 and 63.75; the result is 41..47.
  row.setTo(0);
  row(cv::Rect(42, 0, 8, 1)).setTo(255);
  out = airm::lowres_mask(row);
  cv::Mat expected = cv::Mat::zeros(1, 96, CV_8UC1);
  expected(cv::Rect(41, 0, 7, 1)).setTo(255);
  EXPECT_EQ(airm::test::count_differences(out, expected), 0);
  // The same as a column.
  const cv::Mat column = airm::lowres_mask(row.t());
  EXPECT_EQ(column.size(), cv::Size(1, 96));
  EXPECT_EQ(airm::test::count_differences(column, cv::Mat(expected.t())), 0);
}

TEST(LowresMask, ThresholdIsStrictlyAboveHalf) {
  // 1x4 at factor 2: cells 127.5 and 0; the pixel at the first cell's centre
  // gets exactly 127.5, which is not above 0.5.
  cv::Mat row = (cv::Mat_<uchar>(1, 4) << 255, 0, 0, 0);
  EXPECT_EQ(cv::countNonZero(airm::lowres_mask(row, LowresOptions{2})), 0);
  // Cells 255 and 0: 255, 191.25, 63.75, 0 -> the input comes back.
  row = (cv::Mat_<uchar>(1, 4) << 255, 255, 0, 0);
  EXPECT_EQ(airm::test::count_differences(airm::lowres_mask(row, LowresOptions{2}), row), 0);
  // Binarised at > 127 first: 128 counts as foreground, 127 does not.
  row = (cv::Mat_<uchar>(1, 4) << 128, 128, 127, 127);
  const cv::Mat expected = (cv::Mat_<uchar>(1, 4) << 255, 255, 0, 0);
  EXPECT_EQ(airm::test::count_differences(airm::lowres_mask(row, LowresOptions{2}), expected), 0);
}

TEST(LowresMask, LongSideSmallerThanFactor) {
  // 5x3 at factor 8 -> one pixel holding the mean, then a constant.
  cv::Mat gt = cv::Mat::zeros(3, 5, CV_8UC1);
  gt.reshape(1, 1).colRange(0, 8).setTo(255);  // 8 of 15 on: mean 136 > 127.5
  cv::Mat out = airm::lowres_mask(gt);
  ASSERT_EQ(out.size(), gt.size());
  EXPECT_EQ(cv::countNonZero(out), 15);
  gt.setTo(0);
  gt.reshape(1, 1).colRange(0, 7).setTo(255);  // 7 of 15: 119 -> all off
  out = airm::lowres_mask(gt);
  EXPECT_EQ(cv::countNonZero(out), 0);
  // 1x1 keeps its value; factor 1 is the identity on binarised input.
  EXPECT_EQ(airm::lowres_mask(cv::Mat(1, 1, CV_8UC1, cv::Scalar(200))).at<uchar>(0, 0), 255);
  EXPECT_EQ(airm::lowres_mask(cv::Mat(1, 1, CV_8UC1, cv::Scalar(100))).at<uchar>(0, 0), 0);
  const cv::Mat noise = random_mask(cv::Size(13, 17), 9);
  EXPECT_EQ(airm::test::count_differences(airm::lowres_mask(noise, LowresOptions{1}), noise > 127), 0);
}

TEST(LowresMask, OddSizesKeepTheirSizeAndAreBinary) {
  for (cv::Size size : {cv::Size(7, 5), cv::Size(13, 17), cv::Size(1, 97), cv::Size(641, 479), cv::Size(1000, 3)}) {
    for (int factor : {1, 2, 3, 8, 16, 1000}) {
      const cv::Mat out = airm::lowres_mask(random_mask(size, factor), LowresOptions{factor});
      ASSERT_EQ(out.size(), size);
      ASSERT_EQ(out.type(), CV_8UC1);
      ASSERT_TRUE(is_binary(out));
    }
  }
  // A smooth shape comes back close to itself at factor 8.
  cv::Mat disc = cv::Mat::zeros(480, 640, CV_8UC1);
  cv::circle(disc, cv::Point(320, 240), 150, cv::Scalar(255), cv::FILLED);
  const cv::Mat back = airm::lowres_mask(disc);
  EXPECT_GT(iou(back, disc), 0.98);
  EXPECT_LT(iou(back, disc), 1.0);
}

TEST(DegradeMask, BothIsLowresOfPerturb) {
  const auto masks = twenty_masks();
  const cv::Mat& gt = masks[5].mask;
  const std::uint64_t seed = airm::sample_seed(3, masks[5].name);
  const cv::Mat perturbed = airm::degrade_mask(gt, DegradeMode::perturb, seed);
  const cv::Mat both = airm::degrade_mask(gt, DegradeMode::both, seed);
  EXPECT_EQ(airm::test::count_differences(both, airm::lowres_mask(perturbed)), 0);
  EXPECT_EQ(airm::test::count_differences(airm::degrade_mask(gt, DegradeMode::lowres, seed), airm::lowres_mask(gt)), 0);
  const double target = airm::draw_target_iou(PerturbOptions(), seed);
  EXPECT_NEAR(iou(perturbed, gt), target, 0.01);
}

}  // namespace
