// The classical peers (airm/baseline.hpp): their parameter rules, that each
// moves a wrong boundary towards the photo's edge on a scene where the answer
// is known, the cases where GrabCut must keep the coarse mask, and refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include <opencv2/imgproc.hpp>

#include "airm/baseline.hpp"
#include "airm/error.hpp"
#include "test_support.hpp"

using airm::test::error_message;

namespace {

// A red disk on a blue, noisy background (awkward size), its truth, and a
// coarse mask that is the disk grown by `grow` px and shifted right by `shift`.
struct Scene {
  cv::Mat bgr, truth, coarse;
};

Scene disk_scene(int grow, int shift, cv::Size size = {157, 119}) {
  Scene s;
  const cv::Point centre(size.width / 2, size.height / 2);
  const int radius = std::min(size.width, size.height) / 3;
  s.truth = cv::Mat::zeros(size, CV_8UC1);
  cv::circle(s.truth, centre, radius, 255, cv::FILLED);
  s.bgr = cv::Mat(size, CV_8UC3, cv::Scalar(200, 60, 40));
  s.bgr.setTo(cv::Scalar(40, 50, 210), s.truth);
  cv::Mat noise(size, CV_8UC3);
  cv::randu(noise, 0, 20);
  s.bgr += noise;
  s.coarse = cv::Mat::zeros(size, CV_8UC1);
  cv::circle(s.coarse, centre + cv::Point(shift, 0), radius + grow, 255, cv::FILLED);
  return s;
}

double iou(const cv::Mat& a, const cv::Mat& b) {
  return static_cast<double>(cv::countNonZero(a & b)) / cv::countNonZero(a | b);
}

void expect_binary_of_size(const cv::Mat& m, cv::Size size) {
  ASSERT_EQ(m.type(), CV_8UC1);
  ASSERT_EQ(m.size(), size);
  EXPECT_EQ(cv::countNonZero((m != 0) & (m != 255)), 0);
}

}  // namespace

TEST(Baseline, RadiusAndBandScaleWithTheImage) {
  const airm::GuidedFilterOptions g;
  const airm::GrabCutOptions c;
  EXPECT_EQ(airm::guided_filter_radius({157, 119}, g), 4);     // minimum
  EXPECT_EQ(airm::guided_filter_radius({1348, 900}, g), 7);    // 2248 / 300 = 7.49
  EXPECT_EQ(airm::guided_filter_radius({3840, 2160}, g), 20);
  EXPECT_EQ(airm::grabcut_band({157, 119}, c), 3);             // minimum
  EXPECT_EQ(airm::grabcut_band({640, 480}, c), 6);             // 1120 / 200 = 5.6
  EXPECT_EQ(airm::grabcut_band({3840, 2160}, c), 30);
}

TEST(Baseline, GuidedFilterSnapsASoftBoundaryToTheEdge) {
  // A low-resolution mask: the truth at 1/8 and back up bilinearly (soft, blocky boundary).
  Scene s = disk_scene(0, 0);
  cv::Mat small, soft;
  cv::resize(s.truth, small, {s.truth.cols / 8, s.truth.rows / 8}, 0, 0, cv::INTER_AREA);
  cv::resize(small, soft, s.truth.size(), 0, 0, cv::INTER_LINEAR);
  cv::Mat coarse_binary;
  cv::compare(soft, 127, coarse_binary, cv::CMP_GT);
  const cv::Mat out = airm::guided_filter_refine(s.bgr, soft);
  expect_binary_of_size(out, s.bgr.size());
  EXPECT_GT(iou(out, s.truth), iou(coarse_binary, s.truth) + 0.005);
  // The same mask as floats in [0, 1] gives the same answer.
  cv::Mat unit;
  soft.convertTo(unit, CV_32F, 1.0 / 255.0);
  EXPECT_EQ(cv::countNonZero(airm::guided_filter_refine(s.bgr, unit) != out), 0);
}

TEST(Baseline, GrabCutPullsAGrownMaskBackToTheObject) {
  const Scene s = disk_scene(3, 2);
  const cv::Mat out = airm::grabcut_refine(s.bgr, s.coarse);
  expect_binary_of_size(out, s.bgr.size());
  const double before = iou(s.coarse, s.truth), after = iou(out, s.truth);
  EXPECT_LT(before, 0.93);
  EXPECT_GT(after, before + 0.02);
  // Deterministic: the same mask again.
  EXPECT_EQ(cv::countNonZero(airm::grabcut_refine(s.bgr, s.coarse) != out), 0);
}

TEST(Baseline, GrabCutKeepsTheCoarseMaskWithoutBothSureRegions) {
  const Scene s = disk_scene(0, 0);
  // No sure foreground: a blob thinner than the band's kernel (2*3+1 = 7 px).
  cv::Mat thin = cv::Mat::zeros(s.bgr.size(), CV_8UC1);
  cv::rectangle(thin, {20, 20, 40, 5}, 255, cv::FILLED);
  EXPECT_EQ(cv::countNonZero(airm::grabcut_refine(s.bgr, thin) != thin), 0);
  // No sure background: everything foreground, and an empty mask.
  const cv::Mat full(s.bgr.size(), CV_8UC1, cv::Scalar(255)), empty = cv::Mat::zeros(s.bgr.size(), CV_8UC1);
  EXPECT_EQ(cv::countNonZero(airm::grabcut_refine(s.bgr, full) != full), 0);
  EXPECT_EQ(cv::countNonZero(airm::grabcut_refine(s.bgr, empty)), 0);
}

TEST(Baseline, MethodsByName) {
  const Scene s = disk_scene(3, 2);
  EXPECT_EQ(cv::countNonZero(airm::baseline_refine("guided", s.bgr, s.coarse) != airm::guided_filter_refine(s.bgr, s.coarse)), 0);
  EXPECT_EQ(cv::countNonZero(airm::baseline_refine("grabcut", s.bgr, s.coarse) != airm::grabcut_refine(s.bgr, s.coarse)), 0);
  EXPECT_NE(error_message([&] { airm::baseline_refine("blur", s.bgr, s.coarse); })
                .find("method: expected guided or grabcut, got 'blur'"),
            std::string::npos);
}

TEST(Baseline, RefusesBadInputs) {
  const Scene s = disk_scene(0, 0);
  const cv::Mat smaller = s.coarse(cv::Rect(0, 0, 100, 100)).clone();
  EXPECT_NE(error_message([&] { airm::guided_filter_refine(s.bgr, smaller); })
                .find("expected a coarse mask of the photo's size 157x119, got 100x100"),
            std::string::npos);
  cv::Mat gray;
  cv::cvtColor(s.bgr, gray, cv::COLOR_BGR2GRAY);
  EXPECT_NE(error_message([&] { airm::grabcut_refine(gray, s.coarse); }).find("expected an 8-bit BGR photo"),
            std::string::npos);
  EXPECT_NE(error_message([&] { airm::grabcut_refine(cv::Mat(), s.coarse); }).find("got an empty one"),
            std::string::npos);
  cv::Mat unit;
  s.coarse.convertTo(unit, CV_32F, 1.0 / 255.0);
  unit.at<float>(5, 5) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_message([&] { airm::guided_filter_refine(s.bgr, unit); }).find("values in [0, 1]"),
            std::string::npos);
  unit.at<float>(5, 5) = 2.0f;
  EXPECT_NE(error_message([&] { airm::grabcut_refine(s.bgr, unit); }).find("values in [0, 1]"), std::string::npos);
  cv::Mat wide;
  s.coarse.convertTo(wide, CV_16U);
  EXPECT_NE(error_message([&] { airm::guided_filter_refine(s.bgr, wide); }).find("CV_32FC1 or CV_8UC1"),
            std::string::npos);
  airm::GuidedFilterOptions g;
  g.eps = 0;
  EXPECT_NE(error_message([&] { airm::guided_filter_refine(s.bgr, s.coarse, g); }).find("eps: expected > 0, got 0"),
            std::string::npos);
  airm::GrabCutOptions c;
  c.iterations = 0;
  EXPECT_NE(error_message([&] { airm::grabcut_refine(s.bgr, s.coarse, c); }).find("iterations: expected >= 1, got 0"),
            std::string::npos);
}
