// Shapes, colours and noise of the generated scenes (see synth.cpp).
#include "synth_geometry.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace airm::synth_detail {

// ---------------------------------------------------------------- colours

cv::Vec3f hsv_colour(double h, double s, double v) {  // h in [0,1); BGR 0..255
  const double hh = (h - std::floor(h)) * 6.0;
  const int i = static_cast<int>(hh) % 6;
  const double f = hh - std::floor(hh);
  const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r = v, g = t, b = p;
  switch (i) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
  }
  return cv::Vec3f(static_cast<float>(b * 255), static_cast<float>(g * 255), static_cast<float>(r * 255));
}

cv::Vec3f random_colour(Rng& rng) {
  return hsv_colour(rng.uniform(), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.95));
}

cv::Vec3f near_colour(const cv::Vec3f& c, double spread, Rng& rng) {
  cv::Vec3f out;
  for (int k = 0; k < 3; ++k) out[k] = static_cast<float>(std::clamp(c[k] + rng.uniform(-spread, spread), 0.0, 255.0));
  return out;
}

// ---------------------------------------------------------------- noise

cv::Mat random_grid(cv::Size size, Rng& rng) {
  cv::Mat g(size, CV_32F);
  for (int y = 0; y < size.height; ++y) {
    float* p = g.ptr<float>(y);
    for (int x = 0; x < size.width; ++x) p[x] = static_cast<float>(rng.uniform(-1.0, 1.0));
  }
  return g;
}

// Multi-octave value noise: random grids refined coarse to fine (each octave
// upsampled to the next and added), then one bicubic upsampling to `size`.
// Roughly zero-mean with a standard deviation near 0.6.
cv::Mat value_noise(cv::Size size, double cell, int octaves, double persistence, Rng& rng) {
  std::vector<cv::Size> levels;
  for (int o = 0; o < octaves; ++o) {
    const double c = std::max(cell / std::pow(2.0, o), 1.0);
    levels.emplace_back(std::max(2, static_cast<int>(std::ceil(size.width / c)) + 1),
                        std::max(2, static_cast<int>(std::ceil(size.height / c)) + 1));
    if (c <= 1.0) break;
  }
  cv::Mat acc = random_grid(levels[0], rng);
  double amp = 1.0, sumsq = 1.0;
  for (std::size_t i = 1; i < levels.size(); ++i) {
    cv::Mat up;
    cv::resize(acc, up, levels[i], 0, 0, cv::INTER_CUBIC);
    amp *= persistence;
    sumsq += amp * amp;
    up += amp * random_grid(levels[i], rng);
    acc = up;
  }
  cv::Mat out;
  cv::resize(acc, out, size, 0, 0, cv::INTER_CUBIC);
  out *= 1.0 / std::sqrt(sumsq);
  return out;
}

// ---------------------------------------------------------------- geometry


double segment_distance(const cv::Point2d& p, const cv::Point2d& a, const cv::Point2d& b) {
  const cv::Point2d ab = b - a, ap = p - a;
  const double len2 = ab.dot(ab);
  const double t = len2 > 0 ? std::clamp(ap.dot(ab) / len2, 0.0, 1.0) : 0.0;
  const cv::Point2d d = ap - t * ab;
  return std::sqrt(d.dot(d));
}

// Radius of the largest disc about c that stays inside the closed polygon
// (c is inside by construction: every outline here is radial about c).
double inscribed(const Poly& poly, const cv::Point2d& c) {
  double r = 1e18;
  for (std::size_t i = 0; i < poly.size(); ++i) r = std::min(r, segment_distance(c, poly[i], poly[(i + 1) % poly.size()]));
  return poly.size() >= 3 ? r : 0.0;
}

int samples_for(double length, int lo, int hi) {
  return std::clamp(static_cast<int>(std::ceil(length / 1.5)), lo, hi);
}

// A radius function r(a) = R (1 + sum_k a_k cos(k a + phi_k)); smooth, with
// fine wiggles from the high harmonics.
Poly fourier_blob(const cv::Point2d& c, double R, Rng& rng, double roughness) {
  const int K = rng.range(3, 40);
  const double decay = rng.uniform(1.2, 2.2);
  std::vector<double> amp(K + 1, 0.0), phase(K + 1, 0.0);
  double total = 0.0;
  for (int k = 2; k <= K; ++k) {
    amp[k] = rng.uniform(-1.0, 1.0) * roughness / std::pow(k - 1, decay);
    phase[k] = rng.uniform(0.0, 2 * kPi);
    total += std::abs(amp[k]);
  }
  if (total > 0.55) for (double& a : amp) a *= 0.55 / total;
  const int n = samples_for(2 * kPi * R * 1.3, 24, 8000);
  Poly poly(n);
  for (int i = 0; i < n; ++i) {
    const double a = 2 * kPi * i / n;
    double r = 1.0;
    for (int k = 2; k <= K; ++k) r += amp[k] * std::cos(k * a + phase[k]);
    poly[i] = polar(c, R * r, a);
  }
  return poly;
}

// A closed Catmull-Rom spline (as cubic Bezier segments) through anchors at
// increasing angles.
Poly bezier_shape(const cv::Point2d& c, double R, Rng& rng) {
  const int m = rng.range(4, 9);
  const double a0 = rng.uniform(0.0, 2 * kPi);
  std::vector<cv::Point2d> anchor(m);
  for (int i = 0; i < m; ++i) {
    anchor[i] = polar(c, R * rng.uniform(0.45, 1.0), a0 + 2 * kPi * (i + rng.uniform(-0.3, 0.3)) / m);
  }
  Poly poly;
  for (int i = 0; i < m; ++i) {
    const cv::Point2d p0 = anchor[(i + m - 1) % m], p1 = anchor[i], p2 = anchor[(i + 1) % m], p3 = anchor[(i + 2) % m];
    const cv::Point2d b1 = p1 + (p2 - p0) * (1.0 / 6), b2 = p2 - (p3 - p1) * (1.0 / 6);
    const cv::Point2d d = p2 - p1;
    const int n = samples_for(std::sqrt(d.dot(d)) * 1.3, 4, 3000);
    for (int j = 0; j < n; ++j) {
      const double t = static_cast<double>(j) / n, u = 1 - t;
      poly.push_back(u * u * u * p1 + 3 * u * u * t * b1 + 3 * u * t * t * b2 + t * t * t * p2);
    }
  }
  return poly;
}

Poly star(const cv::Point2d& c, double R, Rng& rng) {
  const int n = rng.range(4, 12);
  const double inner = R * rng.uniform(0.3, 0.65), a0 = rng.uniform(0.0, 2 * kPi);
  Poly poly;
  for (int i = 0; i < 2 * n; ++i) poly.push_back(polar(c, i % 2 ? inner : R * rng.uniform(0.8, 1.0), a0 + kPi * i / n));
  return poly;
}

Poly polygon(const cv::Point2d& c, double R, Rng& rng) {
  const int m = rng.range(3, 8);
  const double a0 = rng.uniform(0.0, 2 * kPi);
  Poly poly;
  for (int i = 0; i < m; ++i) poly.push_back(polar(c, R * rng.uniform(0.55, 1.0), a0 + 2 * kPi * (i + rng.uniform(-0.25, 0.25)) / m));
  return poly;
}

Poly ellipse(const cv::Point2d& c, double a, double b, double angle) {
  const int n = samples_for(2 * kPi * std::max(a, b), 8, 4000);
  Poly poly(n);
  const double ca = std::cos(angle), sa = std::sin(angle);
  for (int i = 0; i < n; ++i) {
    const double t = 2 * kPi * i / n, x = a * std::cos(t), y = b * std::sin(t);
    poly[i] = {c.x + x * ca - y * sa, c.y + x * sa + y * ca};
  }
  return poly;
}

// An outline of a random kind about c whose extent is about R.
Poly outline(int kind, const cv::Point2d& c, double R, Rng& rng) {
  switch (kind) {
    case 0: return fourier_blob(c, R, rng, rng.uniform(0.2, 0.8));
    case 1: return bezier_shape(c, R, rng);
    case 2: return star(c, R, rng);
    case 3: return polygon(c, R, rng);
    default: return ellipse(c, R, R * rng.uniform(0.4, 1.0), rng.uniform(0.0, kPi));
  }
}

Poly quadratic(const cv::Point2d& a, const cv::Point2d& ctrl, const cv::Point2d& b) {
  const cv::Point2d d = b - a;
  const int n = samples_for(std::sqrt(d.dot(d)) * 1.2, 3, 4000);
  Poly p(n + 1);
  for (int i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / n, u = 1 - t;
    p[i] = u * u * a + 2 * u * t * ctrl + t * t * b;
  }
  return p;
}

Poly cubic(const cv::Point2d& a, const cv::Point2d& b1, const cv::Point2d& b2, const cv::Point2d& b) {
  const cv::Point2d d1 = b1 - a, d2 = b2 - b1, d3 = b - b2;
  const double len = std::sqrt(d1.dot(d1)) + std::sqrt(d2.dot(d2)) + std::sqrt(d3.dot(d3));
  const int n = samples_for(len, 3, 12000);
  Poly p(n + 1);
  for (int i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / n, u = 1 - t;
    p[i] = u * u * u * a + 3 * u * u * t * b1 + 3 * u * t * t * b2 + t * t * t * b;
  }
  return p;
}


std::vector<cv::Point> to_fixed(const Poly& poly, cv::Point2d origin) {
  std::vector<cv::Point> out(poly.size());
  for (std::size_t i = 0; i < poly.size(); ++i) {
    out[i] = cv::Point(static_cast<int>(std::lround((poly[i].x - origin.x) * kSub)),
                       static_cast<int>(std::lround((poly[i].y - origin.y) * kSub)));
  }
  return out;
}

cv::Rect bounds(const Shape& s) {
  double x0 = 1e18, y0 = 1e18, x1 = -1e18, y1 = -1e18;
  auto add = [&](const Poly& p, double pad) {
    for (const auto& q : p) {
      x0 = std::min(x0, q.x - pad); y0 = std::min(y0, q.y - pad);
      x1 = std::max(x1, q.x + pad); y1 = std::max(y1, q.y + pad);
    }
  };
  for (const auto& p : s.fills) add(p, 0);
  for (const auto& p : s.tips) add(p, 0);
  for (const auto& st : s.strokes) add(st.points, st.thickness);
  if (x1 < x0) return {};
  const double pad = 4;  // anti-aliasing spill
  x0 = std::clamp(x0 - pad, -1e6, 1e6); y0 = std::clamp(y0 - pad, -1e6, 1e6);
  x1 = std::clamp(x1 + pad, -1e6, 1e6); y1 = std::clamp(y1 + pad, -1e6, 1e6);
  return cv::Rect(cv::Point(static_cast<int>(std::floor(x0)), static_cast<int>(std::floor(y0))),
                  cv::Point(static_cast<int>(std::ceil(x1)) + 1, static_cast<int>(std::ceil(y1)) + 1));
}

// The shape's exact pixels inside roi (0/255).
cv::Mat rasterise(const Shape& s, const cv::Rect& roi) {
  cv::Mat m = cv::Mat::zeros(roi.size(), CV_8UC1);
  const cv::Point2d o(roi.x, roi.y);
  auto fill = [&](const Poly& p, int value) {
    const std::vector<cv::Point> pts = to_fixed(p, o);
    const cv::Point* data = pts.data();
    const int n = static_cast<int>(pts.size());
    if (n > 0) cv::fillPoly(m, &data, &n, 1, cv::Scalar(value), cv::LINE_8, kShift);
  };
  for (const auto& p : s.fills) fill(p, 255);
  for (const auto& p : s.holes) fill(p, 0);
  for (const auto& st : s.strokes) {
    const std::vector<cv::Point> pts = to_fixed(st.points, o);
    const cv::Point* data = pts.data();
    const int n = static_cast<int>(pts.size());
    if (n == 0) continue;
    if (st.thickness <= 1 || st.thickness > 3) {
      cv::polylines(m, &data, &n, 1, st.closed, cv::Scalar(255), st.thickness, cv::LINE_8, kShift);
      continue;
    }
    // OpenCV's thick lines are wider than their thickness (2 -> 3 px, 3 -> 5
    // px): a 2 or 3 px wide stroke is 2 or 3 one-pixel lines side by side,
    // offset across each segment's main direction.
    const int segments = st.closed ? n : n - 1;
    for (int i = 0; i < std::max(segments, 1); ++i) {
      const cv::Point a = pts[i], b = pts[(i + 1) % n];
      const bool mostly_horizontal = std::abs(b.x - a.x) >= std::abs(b.y - a.y);
      for (int k = 0; k < st.thickness; ++k) {
        const int d = (k - (st.thickness - 1) / 2) * static_cast<int>(kSub);
        const cv::Point off = mostly_horizontal ? cv::Point(0, d) : cv::Point(d, 0);
        cv::line(m, a + off, b + off, cv::Scalar(255), 1, cv::LINE_8, kShift);
      }
    }
  }
  for (const auto& p : s.tips) fill(p, 255);
  return m;
}
}  // namespace airm::synth_detail
