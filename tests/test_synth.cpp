// Generated scenes: sizes, determinism, and the hard parts they must contain
// (thin structures, holes, a textured background, camouflage-free exactness).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "airm/synth.hpp"
#include "test_support.hpp"

namespace {

using airm::Scene;
using airm::SynthOptions;

SynthOptions sized(int w, int h) {
  SynthOptions o;
  o.size = cv::Size(w, h);
  return o;
}

long image_differences(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  return cv::countNonZero(diff.reshape(1));
}

bool is_binary(const cv::Mat& m) {
  cv::Mat zero = m == 0, full = m == 255, either;
  cv::bitwise_or(zero, full, either);
  return cv::countNonZero(either) == static_cast<int>(m.total());
}

// Largest connected group of foreground pixels that a 5x5 opening removes:
// parts of the mask narrower than 5 px (wires, hair, thin rings), as opposed
// to the few pixels an opening shaves off a corner.
int largest_thin_part(const cv::Mat& mask) {
  cv::Mat opened, thin, labels, stats, centroids;
  cv::morphologyEx(mask, opened, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(5, 5)));
  cv::subtract(mask, opened, thin);
  const int n = cv::connectedComponentsWithStats(thin, labels, stats, centroids, 8);
  int best = 0;
  for (int i = 1; i < n; ++i) best = std::max(best, stats.at<int>(i, cv::CC_STAT_AREA));
  return best;
}

bool has_hole(const cv::Mat& mask) {
  std::vector<std::vector<cv::Point>> contours;
  std::vector<cv::Vec4i> hierarchy;
  cv::findContours(mask.clone(), contours, hierarchy, cv::RETR_CCOMP, cv::CHAIN_APPROX_SIMPLE);
  for (const auto& h : hierarchy) {
    if (h[2] >= 0) return true;
  }
  return false;
}

TEST(GenerateScene, ExactSizesIncludingTinyOnes) {
  for (cv::Size size : {cv::Size(1, 1), cv::Size(7, 5), cv::Size(5, 7), cv::Size(1, 97), cv::Size(97, 1),
                        cv::Size(13, 17), cv::Size(641, 479), cv::Size(4320, 64)}) {
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
      const Scene s = airm::generate_scene(sized(size.width, size.height), seed);
      ASSERT_EQ(s.image.size(), size);
      ASSERT_EQ(s.mask.size(), size);
      ASSERT_EQ(s.image.type(), CV_8UC3);
      ASSERT_EQ(s.mask.type(), CV_8UC1);
      ASSERT_TRUE(is_binary(s.mask));
    }
  }
}

TEST(GenerateScene, RejectsBadSizesAndCounts) {
  EXPECT_THROW(airm::generate_scene(sized(0, 10), 1), airm::Error);
  EXPECT_THROW(airm::generate_scene(sized(10, -1), 1), airm::Error);
  EXPECT_THROW(airm::generate_scene(sized(7681, 4320), 1), airm::Error);
  EXPECT_THROW(airm::generate_scene(sized(7680, 4321), 1), airm::Error);
  EXPECT_THROW(airm::generate_scene(sized(4321, 7680), 1), airm::Error);
  EXPECT_THROW(airm::generate_scene(sized(5000, 5000), 1), airm::Error);
  SynthOptions o = sized(64, 64);
  o.min_objects = 3;
  o.max_objects = 2;
  EXPECT_THROW(airm::generate_scene(o, 1), airm::Error);
  o.min_objects = -1;
  EXPECT_THROW(airm::generate_scene(o, 1), airm::Error);
  o.min_objects = 0;
  o.max_objects = 0;  // no objects is allowed
  EXPECT_EQ(airm::generate_scene(o, 1).mask.size(), cv::Size(64, 64));
}

TEST(GenerateScene, DeterministicPerSeedAndThreadCount) {
  const SynthOptions o = sized(800, 600);
  const int threads = cv::getNumThreads();
  cv::setNumThreads(1);
  const Scene a = airm::generate_scene(o, 42);
  cv::setNumThreads(2);
  const Scene b = airm::generate_scene(o, 42);
  cv::setNumThreads(threads);
  EXPECT_EQ(image_differences(a.image, b.image), 0);
  EXPECT_EQ(airm::test::count_differences(a.mask, b.mask), 0);
  Scene c, d;
  std::thread tc([&] { c = airm::generate_scene(o, 42); });
  std::thread td([&] { d = airm::generate_scene(o, 42); });
  tc.join();
  td.join();
  EXPECT_EQ(image_differences(a.image, c.image), 0);
  EXPECT_EQ(image_differences(a.image, d.image), 0);
  EXPECT_EQ(airm::test::count_differences(a.mask, d.mask), 0);
  const Scene e = airm::generate_scene(o, 43);
  EXPECT_GT(airm::test::count_differences(a.mask, e.mask), 1000);
  EXPECT_GT(image_differences(a.image, e.image), 100000);
}

TEST(GenerateScene, ForegroundBackgroundThinPartsAndHoles) {
  for (std::uint64_t seed = 0; seed < 12; ++seed) {
    const Scene s = airm::generate_scene(sized(640, 480), seed);
    const double fg = cv::countNonZero(s.mask) / static_cast<double>(s.mask.total());
    EXPECT_GT(fg, 0.02) << seed;
    EXPECT_LT(fg, 0.8) << seed;
    // A wire or hair of at least 100 pixels that a 5x5 opening removes.
    EXPECT_GE(largest_thin_part(s.mask), 100) << seed;
    EXPECT_TRUE(has_hole(s.mask)) << seed;
  }
  // The same at 4K: thin parts stay 1-3 px wide at full resolution.
  const Scene big = airm::generate_scene(sized(3840, 2160), 5);
  EXPECT_GE(largest_thin_part(big.mask), 300);
  EXPECT_TRUE(has_hole(big.mask));
}

TEST(GenerateScene, OptionsTurnThinStructuresAndHolesOff) {
  SynthOptions o = sized(640, 480);
  o.thin_structures = false;
  o.holes = false;
  int with_holes = 0;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    const Scene s = airm::generate_scene(o, seed);
    EXPECT_GT(cv::countNonZero(s.mask), 0);
    with_holes += has_hole(s.mask) ? 1 : 0;
    // Nothing 1-3 px wide and long: only corners are shaved by the opening.
    EXPECT_LT(largest_thin_part(s.mask), 200) << seed;
  }
  EXPECT_LE(with_holes, 4);  // only where objects happen to overlap
}

TEST(GenerateScene, MainObjectIsOneLargeCentredObjectApartFromItsBackground) {
  SynthOptions o = sized(640, 360);
  o.main_object = true;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    const Scene s = airm::generate_scene(o, seed);
    ASSERT_TRUE(is_binary(s.mask));
    // Deterministic, and not the default scene of the same seed.
    EXPECT_EQ(airm::test::count_differences(s.mask, airm::generate_scene(o, seed).mask), 0) << seed;
    EXPECT_GT(airm::test::count_differences(s.mask, airm::generate_scene(sized(640, 360), seed).mask), 1000) << seed;
    // One object: its largest 8-connected part holds nearly all the foreground
    // (its own attachments are connected to it; no free-standing wires).
    cv::Mat labels, stats, centroids;
    const int n = cv::connectedComponentsWithStats(s.mask, labels, stats, centroids, 8);
    ASSERT_GE(n, 2) << seed;
    int best = 1;
    for (int i = 2; i < n; ++i) {
      if (stats.at<int>(i, cv::CC_STAT_AREA) > stats.at<int>(best, cv::CC_STAT_AREA)) best = i;
    }
    const double fg = cv::countNonZero(s.mask);
    EXPECT_GE(stats.at<int>(best, cv::CC_STAT_AREA), 0.97 * fg) << seed;
    // Large and near the centre.
    EXPECT_GT(fg / s.mask.total(), 0.03) << seed;
    EXPECT_LT(fg / s.mask.total(), 0.6) << seed;
    EXPECT_NEAR(centroids.at<double>(best, 0), 320, 0.15 * 640) << seed;
    EXPECT_NEAR(centroids.at<double>(best, 1), 180, 0.15 * 360) << seed;
    // Apart from its background: the mean colour inside differs from that of
    // a ring around it.
    cv::Mat body, ring, grown;
    cv::morphologyEx(s.mask, body, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(7, 7)));
    cv::dilate(s.mask, grown, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(41, 41)));
    cv::subtract(grown, s.mask, ring);
    cv::dilate(s.mask, grown, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(9, 9)));
    ring.setTo(0, grown);
    const cv::Scalar in = cv::mean(s.image, body), out = cv::mean(s.image, ring);
    EXPECT_GT(cv::norm(in - out), 40.0) << seed;
  }
}

TEST(GenerateScene, ImageIsTexturedAndConsistentWithTheMask) {
  const Scene s = airm::generate_scene(sized(1024, 768), 7);
  // Textured: a wide range of values and plenty of local variation.
  cv::Mat grey, lap;
  cv::cvtColor(s.image, grey, cv::COLOR_BGR2GRAY);
  cv::Scalar mean, stddev;
  cv::meanStdDev(grey, mean, stddev);
  EXPECT_GT(stddev[0], 8.0);
  cv::Laplacian(grey, lap, CV_32F);
  cv::meanStdDev(lap, mean, stddev);
  EXPECT_GT(stddev[0], 2.0);
  // Consistent: image edges sit on the mask's boundary (edge strength on the
  // boundary band is well above the image's average).
  cv::Mat gx, gy, mag, band;
  cv::Sobel(grey, gx, CV_32F, 1, 0);
  cv::Sobel(grey, gy, CV_32F, 0, 1);
  cv::magnitude(gx, gy, mag);
  cv::morphologyEx(s.mask, band, cv::MORPH_GRADIENT, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3)));
  ASSERT_GT(cv::countNonZero(band), 0);
  const double on_band = cv::mean(mag, band)[0], overall = cv::mean(mag)[0];
  std::printf("  edge strength on the mask boundary %.1f, overall %.1f\n", on_band, overall);
  EXPECT_GT(on_band, 1.5 * overall);
}

TEST(GenerateScene, EightKInTime) {
  for (cv::Size size : {cv::Size(3840, 2160), cv::Size(7680, 4320)}) {
    const auto t0 = std::chrono::steady_clock::now();
    const Scene s = airm::generate_scene(sized(size.width, size.height), 2024);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  %dx%d scene in %.2f s\n", size.width, size.height, secs);
    ASSERT_EQ(s.image.size(), size);
    ASSERT_EQ(s.mask.size(), size);
    EXPECT_GT(cv::countNonZero(s.mask), 0);
    EXPECT_LT(cv::countNonZero(s.mask), static_cast<int>(s.mask.total()));
    EXPECT_LT(secs, 15.0);
  }
  // The transpose is accepted too.
  EXPECT_EQ(airm::generate_scene(sized(2160, 3840), 1).mask.size(), cv::Size(2160, 3840));
}

}  // namespace
