// Line charts of a training run (losses, validation scores) drawn with
// OpenCV: stacked panels sharing the x axis, each with its axes, grid, tick
// labels and legend.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace airm::train_detail {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;  // same length; non-finite points are skipped
  cv::Scalar colour;         // BGR
  bool dashed = false;
};

struct PlotPanel {
  std::string title;
  bool log_y = false;  // non-positive values are skipped
  std::vector<PlotSeries> series;
};

// The panels one above the other, each `panel_size`; an empty panel says "no data".
cv::Mat draw_plot(const std::vector<PlotPanel>& panels, const std::string& x_label,
                  cv::Size panel_size = cv::Size(960, 340));

// draw_plot written as a PNG, atomically.
void write_plot(const std::filesystem::path& path, const std::vector<PlotPanel>& panels, const std::string& x_label);

// Distinct line colours (BGR), cycling.
cv::Scalar plot_colour(int index);

}  // namespace airm::train_detail
