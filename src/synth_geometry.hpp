// Internal to synth.cpp: colours, value noise and the shapes of generated
// scenes, with their exact rasterisation.
#pragma once

#include <cmath>
#include <vector>

#include <opencv2/core.hpp>

#include "random.hpp"

namespace airm::synth_detail {

using detail::Rng;
using Poly = std::vector<cv::Point2d>;

constexpr double kPi = 3.14159265358979323846;
constexpr int kShift = 4;  // vertices at 1/16 pixel
constexpr double kSub = 1 << kShift;

// Colours, BGR 0..255.
cv::Vec3f hsv_colour(double h, double s, double v);  // h in [0,1)
cv::Vec3f random_colour(Rng& rng);
cv::Vec3f near_colour(const cv::Vec3f& c, double spread, Rng& rng);

// Multi-octave value noise of `size`, roughly zero-mean, std near 0.6.
cv::Mat value_noise(cv::Size size, double cell, int octaves, double persistence, Rng& rng);

inline cv::Point2d polar(const cv::Point2d& c, double r, double a) {
  return {c.x + r * std::cos(a), c.y + r * std::sin(a)};
}
double segment_distance(const cv::Point2d& p, const cv::Point2d& a, const cv::Point2d& b);
// Radius of the largest disc about c inside the closed polygon (c inside).
double inscribed(const Poly& poly, const cv::Point2d& c);
int samples_for(double length, int lo, int hi);

// Outlines about a centre c with extent about R.
Poly fourier_blob(const cv::Point2d& c, double R, Rng& rng, double roughness);
Poly bezier_shape(const cv::Point2d& c, double R, Rng& rng);
Poly star(const cv::Point2d& c, double R, Rng& rng);
Poly polygon(const cv::Point2d& c, double R, Rng& rng);
Poly ellipse(const cv::Point2d& c, double a, double b, double angle);
Poly outline(int kind, const cv::Point2d& c, double R, Rng& rng);  // a random kind
Poly quadratic(const cv::Point2d& a, const cv::Point2d& ctrl, const cv::Point2d& b);
Poly cubic(const cv::Point2d& a, const cv::Point2d& b1, const cv::Point2d& b2, const cv::Point2d& b);

struct Stroke {
  Poly points;
  int thickness = 1;  // 1..3: the width in pixels; larger: OpenCV's thick line
  bool closed = false;
};

// Geometry of one layer: filled outlines, then holes cleared, then strokes
// and tip fills added, all with cv::LINE_8.
struct Shape {
  std::vector<Poly> fills, holes, tips;
  std::vector<Stroke> strokes;
};

std::vector<cv::Point> to_fixed(const Poly& poly, cv::Point2d origin);
cv::Rect bounds(const Shape& s);
// The shape's exact pixels inside roi (0/255).
cv::Mat rasterise(const Shape& s, const cv::Rect& roi);

}  // namespace airm::synth_detail
