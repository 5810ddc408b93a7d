// Multi-class refinement, label-map files and the boundary overlay.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "refiner_fixture.hpp"

namespace fs = std::filesystem;
using airm::RefineOptions;
using airm::Refiner;
using airm::test::RefinerTest;

TEST_F(RefinerTest, MultiClassRefinesEachIdAndTakesTheArgmax) {
  const airm::test::TestScene scene = airm::test::make_scene({320, 240}, 41);
  cv::Mat labels = cv::Mat::zeros(scene.image.size(), CV_8UC1);
  cv::rectangle(labels, cv::Rect(20, 20, 120, 100), 3, -1);
  cv::circle(labels, {230, 150}, 60, 7, -1);
  const cv::Mat out = refiner().refine_labels(scene.image, labels);
  ASSERT_EQ(out.type(), CV_8UC1);
  ASSERT_EQ(out.size(), labels.size());
  double hi = 0;
  cv::minMaxLoc(out, nullptr, &hi);
  EXPECT_LE(hi, 7.0);
  EXPECT_EQ(cv::countNonZero((out != 0) & (out != 3) & (out != 7)), 0);

  // One class: exactly the binary refinement thresholded at 0.5.
  cv::Mat one = cv::Mat::zeros(scene.image.size(), CV_16UC1);
  one.setTo(300, scene.coarse);
  const cv::Mat single = refiner().refine_labels(scene.image, one);
  ASSERT_EQ(single.type(), CV_16UC1);
  cv::Mat expected = cv::Mat::zeros(scene.image.size(), CV_16UC1);
  expected.setTo(300, refiner().refine(scene.image, scene.coarse) > 0.5);
  EXPECT_EQ(airm::test::count_differences(single, expected), 0);

  // No class present: all background, at the requested size.
  RefineOptions options;
  options.output_size = {64, 48};
  const cv::Mat none = refiner().refine_labels(scene.image, cv::Mat::zeros(scene.image.size(), CV_8UC1), options);
  EXPECT_EQ(none.size(), cv::Size(64, 48));
  EXPECT_EQ(cv::countNonZero(none), 0);
  EXPECT_THROW(refiner().refine_labels(scene.image, cv::Mat::zeros(10, 50, CV_8UC1)), airm::Error);
}

TEST_F(RefinerTest, LabelMapFilesAndOverlay) {
  cv::Mat labels(30, 40, CV_16UC1, cv::Scalar(0));
  labels(cv::Rect(5, 5, 10, 10)).setTo(1000);
  const fs::path file = *dir_ / "labels16.png";
  airm::write_label_map(file, labels);
  EXPECT_EQ(airm::test::count_differences(airm::read_label_map(file), labels), 0);
  // Gray stored as colour is accepted; real colour is not.
  cv::Mat small(30, 40, CV_8UC1, cv::Scalar(0)), colour;
  small(cv::Rect(1, 1, 5, 5)).setTo(4);
  cv::cvtColor(small, colour, cv::COLOR_GRAY2BGR);
  ASSERT_TRUE(cv::imwrite((*dir_ / "gray3.png").string(), colour));
  EXPECT_EQ(airm::test::count_differences(airm::read_label_map(*dir_ / "gray3.png"), small), 0);
  colour.at<cv::Vec3b>(0, 0) = {1, 2, 3};
  ASSERT_TRUE(cv::imwrite((*dir_ / "colour.png").string(), colour));
  EXPECT_THROW(airm::read_label_map(*dir_ / "colour.png"), airm::Error);
  EXPECT_THROW(airm::read_label_map(*dir_ / "missing.png"), airm::Error);

  cv::Mat image(30, 40, CV_8UC3, cv::Scalar(50, 50, 50));
  cv::Mat before = cv::Mat::zeros(30, 40, CV_8UC1), after = cv::Mat::zeros(30, 40, CV_32F);
  before(cv::Rect(5, 5, 10, 10)).setTo(255);
  after(cv::Rect(20, 5, 10, 10)).setTo(1.0f);
  const cv::Mat overlay = airm::draw_boundaries(image, before, after);
  ASSERT_EQ(overlay.size(), cv::Size(40, 30));
  EXPECT_EQ(overlay.at<cv::Vec3b>(5, 10), cv::Vec3b(0, 0, 255));   // old boundary: red
  EXPECT_EQ(overlay.at<cv::Vec3b>(5, 25), cv::Vec3b(0, 255, 0));   // new boundary: green
  EXPECT_EQ(overlay.at<cv::Vec3b>(25, 35), cv::Vec3b(50, 50, 50));  // elsewhere: the image
}
