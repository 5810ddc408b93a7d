#include "plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"

namespace airm::train_detail {
namespace {

constexpr int kLeft = 80, kRight = 190, kTop = 34, kBottom = 44;  // margins around the plot area
const cv::Scalar kBlack(0, 0, 0), kGrid(225, 225, 225), kWhite(255, 255, 255);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

// Tick values in [lo, hi] at a 1-2-5 step giving about `target` ticks.
std::vector<double> linear_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push_back(v);
  return ticks;
}

// Ticks of a log axis (values are log10): decades, plus 2 and 5 when the range is short.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  const bool fine = hi - lo < 2.0;
  for (double d = std::floor(lo); d <= std::ceil(hi); d += 1) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && !fine) continue;
      const double v = d + std::log10(m);
      if (v >= lo - 1e-9 && v <= hi + 1e-9) ticks.push_back(v);
    }
  }
  return ticks;
}

std::string tick_label(double v, bool log_y) {
  char buf[32];
  if (log_y) v = std::pow(10.0, v);
  if (std::fabs(v) < 1e-12) v = 0;  // no "-0"
  const double a = std::fabs(v);
  if (v != 0 && (a >= 1e5 || a < 1e-3)) {
    std::snprintf(buf, sizeof buf, "%.0e", v);
  } else if (a >= 1000 || v == std::round(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

void put_text(cv::Mat& image, const std::string& text, cv::Point at, double scale = 0.42, int thickness = 1,
              const cv::Scalar& colour = kBlack) {
  cv::putText(image, text, at, kFont, scale, colour, thickness, cv::LINE_AA);
}

void dashed_line(cv::Mat& image, cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int thickness) {
  const double length = std::hypot(b.x - a.x, b.y - a.y);
  const double dash = 8, gap = 6;
  for (double s = 0; s < length; s += dash + gap) {
    const double e = std::min(length, s + dash);
    const cv::Point2d p = a + (b - a) * (s / length), q = a + (b - a) * (e / length);
    cv::line(image, p, q, colour, thickness, cv::LINE_AA);
  }
}

void draw_panel(cv::Mat& image, const PlotPanel& panel, const Range& x_range, const std::string& x_label) {
  const cv::Rect area(kLeft, kTop, image.cols - kLeft - kRight, image.rows - kTop - kBottom);
  put_text(image, panel.title, {kLeft, 22}, 0.55, 1);
  cv::rectangle(image, area, kBlack, 1);

  auto value = [&](double v) { return panel.log_y ? std::log10(v) : v; };
  auto usable = [&](double v) { return std::isfinite(v) && (!panel.log_y || v > 0); };
  Range y;
  for (const PlotSeries& s : panel.series) {
    for (std::size_t i = 0; i < s.y.size() && i < s.x.size(); ++i) {
      if (usable(s.y[i]) && std::isfinite(s.x[i])) y.add(value(s.y[i]));
    }
  }
  if (y.empty() || x_range.empty()) {
    put_text(image, "no data yet", {area.x + area.width / 2 - 40, area.y + area.height / 2}, 0.5);
    return;
  }
  if (y.hi - y.lo < 1e-12) {
    y.lo -= panel.log_y ? 0.5 : std::max(1.0, std::fabs(y.lo) * 0.05);
    y.hi += panel.log_y ? 0.5 : std::max(1.0, std::fabs(y.hi) * 0.05);
  }
  const double pad = (y.hi - y.lo) * 0.05;
  y.lo -= pad;
  y.hi += pad;
  Range x = x_range;
  if (x.hi - x.lo < 1e-12) x.hi = x.lo + 1;
  const double x_pad = (x.hi - x.lo) * 0.015;  // markers at the ends stay whole
  x.lo -= x_pad;
  x.hi += x_pad;

  auto to_pixel = [&](double xv, double yv) {
    return cv::Point2d(area.x + (xv - x.lo) / (x.hi - x.lo) * area.width,
                       area.y + area.height - (yv - y.lo) / (y.hi - y.lo) * area.height);
  };
  for (double t : panel.log_y ? log_ticks(y.lo, y.hi) : linear_ticks(y.lo, y.hi, 5)) {
    const cv::Point2d p = to_pixel(x.lo, t);
    cv::line(image, {area.x + 1, static_cast<int>(p.y)}, {area.x + area.width - 1, static_cast<int>(p.y)}, kGrid, 1);
    const std::string label = tick_label(t, panel.log_y);
    int base = 0;
    const cv::Size size = cv::getTextSize(label, kFont, 0.4, 1, &base);
    put_text(image, label, {area.x - size.width - 6, static_cast<int>(p.y) + size.height / 2}, 0.4);
  }
  for (double t : linear_ticks(x.lo, x.hi, 8)) {
    const cv::Point2d p = to_pixel(t, y.lo);
    cv::line(image, {static_cast<int>(p.x), area.y + area.height}, {static_cast<int>(p.x), area.y + area.height + 4},
             kBlack, 1);
    const std::string label = tick_label(t, false);
    int base = 0;
    const cv::Size size = cv::getTextSize(label, kFont, 0.4, 1, &base);
    put_text(image, label, {static_cast<int>(p.x) - size.width / 2, area.y + area.height + 18}, 0.4);
  }
  put_text(image, x_label, {area.x + area.width / 2 - 30, image.rows - 8}, 0.45);

  cv::Mat plot_area = image(area);  // lines are clipped to the plot area
  int legend_y = kTop + 14;
  for (const PlotSeries& s : panel.series) {
    std::vector<cv::Point2d> points;
    for (std::size_t i = 0; i < s.y.size() && i < s.x.size(); ++i) {
      if (usable(s.y[i]) && std::isfinite(s.x[i])) {
        points.push_back(to_pixel(s.x[i], value(s.y[i])) - cv::Point2d(area.x, area.y));
      }
    }
    for (std::size_t i = 1; i < points.size(); ++i) {
      if (s.dashed) {
        dashed_line(plot_area, points[i - 1], points[i], s.colour, 2);
      } else {
        cv::line(plot_area, points[i - 1], points[i], s.colour, 2, cv::LINE_AA);
      }
    }
    if (points.size() <= 60 && !s.dashed) {  // markers on sparse series (validations)
      for (const cv::Point2d& p : points) cv::circle(plot_area, p, 4, s.colour, cv::FILLED, cv::LINE_AA);
    }
    if (points.empty()) continue;
    const cv::Point2d a(area.x + area.width + 12, legend_y - 4), b(a.x + 28, a.y);
    if (s.dashed) {
      dashed_line(image, a, b, s.colour, 2);
    } else {
      cv::line(image, a, b, s.colour, 2, cv::LINE_AA);
    }
    put_text(image, s.label, {static_cast<int>(b.x) + 6, legend_y}, 0.42);
    legend_y += 20;
  }
}

}  // namespace

cv::Scalar plot_colour(int index) {
  static const cv::Scalar kColours[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44}, {40, 39, 214},
                                        {189, 103, 148}, {75, 86, 140},  {194, 119, 227}, {127, 127, 127}};
  return kColours[index % 8];
}

cv::Mat draw_plot(const std::vector<PlotPanel>& panels, const std::string& x_label, cv::Size panel_size) {
  Range x;
  for (const PlotPanel& p : panels) {
    for (const PlotSeries& s : p.series) {
      for (double v : s.x) {
        if (std::isfinite(v)) x.add(v);
      }
    }
  }
  cv::Mat image(panel_size.height * static_cast<int>(std::max<std::size_t>(1, panels.size())), panel_size.width,
                CV_8UC3, kWhite);
  for (std::size_t i = 0; i < panels.size(); ++i) {
    cv::Mat strip = image(cv::Rect(0, static_cast<int>(i) * panel_size.height, panel_size.width, panel_size.height));
    draw_panel(strip, panels[i], x, x_label);
  }
  return image;
}

void write_plot(const std::filesystem::path& path, const std::vector<PlotPanel>& panels, const std::string& x_label) {
  const cv::Mat image = draw_plot(panels, x_label);
  write_atomically(path, [&](const std::filesystem::path& tmp) {
    if (!cv::imwrite(tmp.string(), image)) throw Error(path.string(), "could not be written as PNG");
  });
}

}  // namespace airm::train_detail
