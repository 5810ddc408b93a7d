// Generated scenes with exact ground truth: a textured, cluttered background,
// foreground objects (smooth blobs, Bezier shapes, stars, polygons, rings,
// cut-outs) with thin attachments, free-standing wires, and camera-like
// degradations of the image only. The mask is the rasterised geometry itself
// (cv::LINE_8 polygons and strokes), so it is exact; the image blends each
// shape in with an alpha that is >= 1/2 exactly on the shape's mask pixels.
#include "airm/synth.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "random.hpp"
#include "synth_geometry.hpp"

namespace airm {
namespace {

using namespace synth_detail;


// ---------------------------------------------------------------- painting

// How a layer's pixels are coloured: a base colour, value-noise texture,
// stripes and a linear shading across it.
struct Paint {
  cv::Vec3f base;
  cv::Mat noise;  // roi-sized CV_32F, or empty
  float noise_amp = 0;
  float stripe_amp = 0, stripe_period = 8, stripe_cos = 1, stripe_sin = 0;
  float shade_x = 0, shade_y = 0;  // per pixel, relative to the roi centre
};

// Blends a rasterised layer m (0/255 over roi) into the image with an alpha
// that is >= 1/2 exactly on m's pixels (anti-aliased edges), and adds it to or
// removes it from the mask.
void composite(cv::Mat& image, cv::Mat& mask, const cv::Rect& roi, const cv::Mat& m, const Paint& paint,
               bool foreground, double aa_sigma) {
  cv::Mat blurred;
  cv::GaussianBlur(m, blurred, cv::Size(5, 5), aa_sigma, aa_sigma, cv::BORDER_CONSTANT);
  const float cx = roi.width * 0.5f, cy = roi.height * 0.5f;
  const float period = std::max(paint.stripe_period, 1.0f);
  for (int y = 0; y < roi.height; ++y) {
    const uchar* pm = m.ptr<uchar>(y);
    const uchar* pb = blurred.ptr<uchar>(y);
    const float* pn = paint.noise.empty() ? nullptr : paint.noise.ptr<float>(y);
    cv::Vec3b* pi = image.ptr<cv::Vec3b>(roi.y + y) + roi.x;
    for (int x = 0; x < roi.width; ++x) {
      const int a = pm[x] ? 128 + (pb[x] >> 1) : (pb[x] >> 1);
      if (a == 0) continue;
      float lum = paint.shade_x * (x - cx) + paint.shade_y * (y - cy);
      if (pn) lum += paint.noise_amp * pn[x];
      if (paint.stripe_amp != 0) {
        const float u = (paint.stripe_cos * x + paint.stripe_sin * y) / period;
        lum += (u - std::floor(u) < 0.5f) ? paint.stripe_amp : -paint.stripe_amp;
      }
      const float w = a / 255.0f;
      for (int k = 0; k < 3; ++k) {
        const float c = paint.base[k] + lum;
        pi[x][k] = cv::saturate_cast<uchar>(w * c + (1 - w) * pi[x][k]);
      }
    }
  }
  cv::Mat mroi = mask(roi);
  if (foreground) {
    cv::bitwise_or(mroi, m, mroi);
  } else {
    cv::Mat inv;
    cv::bitwise_not(m, inv);
    cv::bitwise_and(mroi, inv, mroi);
  }
}

// Rasterises and paints one layer; the paint's texture is drawn by this call.
void draw_layer(cv::Mat& image, cv::Mat& mask, const Shape& shape, Paint paint, bool textured, bool foreground,
                double aa_sigma, Rng& rng) {
  const cv::Rect roi = bounds(shape) & cv::Rect(0, 0, image.cols, image.rows);
  if (roi.empty()) return;
  if (textured) {
    const double extent = std::max(roi.width, roi.height);
    if (rng.chance(0.8)) {
      paint.noise = value_noise(roi.size(), rng.uniform(2.0, std::max(3.0, 0.15 * extent)), rng.range(1, 4),
                                rng.uniform(0.4, 0.7), rng);
      paint.noise_amp = static_cast<float>(rng.uniform(4.0, 40.0));
    }
    if (rng.chance(0.3)) {
      const double a = rng.uniform(0.0, kPi);
      paint.stripe_amp = static_cast<float>(rng.uniform(6.0, 35.0));
      paint.stripe_period = static_cast<float>(rng.uniform(3.0, std::max(4.0, 0.1 * extent)));
      paint.stripe_cos = static_cast<float>(std::cos(a));
      paint.stripe_sin = static_cast<float>(std::sin(a));
    }
    if (rng.chance(0.6)) {
      const double a = rng.uniform(0.0, 2 * kPi), s = rng.uniform(10.0, 70.0) / std::max(1.0, extent);
      paint.shade_x = static_cast<float>(s * std::cos(a));
      paint.shade_y = static_cast<float>(s * std::sin(a));
    }
  }
  composite(image, mask, roi, rasterise(shape, roi), paint, foreground, aa_sigma);
}

// A soft shadow of a shape, offset from it, darkening what lies under it
// (the shadow is not foreground).
void cast_shadow(cv::Mat& image, const Shape& shape, Rng& rng) {
  const cv::Rect box = bounds(shape);
  if (box.empty()) return;
  const double extent = std::max(box.width, box.height);
  const double soft = std::max(1.0, extent * rng.uniform(0.01, 0.06));
  const cv::Point2d off = polar(cv::Point2d(0, 0), extent * rng.uniform(0.02, 0.08), rng.uniform(0.0, 2 * kPi));
  const float strength = static_cast<float>(rng.uniform(0.2, 0.6));
  Shape moved = shape;
  for (auto* group : {&moved.fills, &moved.holes, &moved.tips}) {
    for (auto& poly : *group) {
      for (auto& p : poly) p += off;
    }
  }
  for (auto& st : moved.strokes) {
    for (auto& p : st.points) p += off;
  }
  const int margin = static_cast<int>(std::ceil(3 * soft));
  const cv::Rect moved_box = bounds(moved);
  const cv::Rect roi = cv::Rect(moved_box.x - margin, moved_box.y - margin, moved_box.width + 2 * margin,
                                moved_box.height + 2 * margin) &
                       cv::Rect(0, 0, image.cols, image.rows);
  if (roi.empty()) return;
  const cv::Mat m = rasterise(moved, roi);
  // Blurred at a reduced resolution: a shadow has no fine detail.
  const int f = std::max(1, static_cast<int>(soft / 2));
  cv::Mat small, shade;
  cv::resize(m, small, cv::Size(std::max(1, roi.width / f), std::max(1, roi.height / f)), 0, 0, cv::INTER_AREA);
  const double sigma = std::max(0.5, soft / f);
  cv::GaussianBlur(small, small, cv::Size(0, 0), sigma, sigma, cv::BORDER_CONSTANT);
  cv::resize(small, shade, roi.size(), 0, 0, cv::INTER_LINEAR);
  for (int y = 0; y < roi.height; ++y) {
    const uchar* ps = shade.ptr<uchar>(y);
    cv::Vec3b* pi = image.ptr<cv::Vec3b>(roi.y + y) + roi.x;
    for (int x = 0; x < roi.width; ++x) {
      if (!ps[x]) continue;
      const float k = 1.0f - strength * ps[x] / 255.0f;
      for (int c = 0; c < 3; ++c) pi[x][c] = cv::saturate_cast<uchar>(pi[x][c] * k);
    }
  }
}

// ---------------------------------------------------------------- background

void paint_background(cv::Mat& image, Rng& rng) {
  const cv::Size size = image.size();
  const double long_side = std::max(size.width, size.height), short_side = std::min(size.width, size.height);
  const cv::Vec3f a = random_colour(rng);
  const cv::Vec3f b = rng.chance(0.5) ? near_colour(a, 60, rng) : random_colour(rng);
  const double angle = rng.uniform(0.0, 2 * kPi), strength = rng.uniform(0.0, 1.2);
  const float gx = static_cast<float>(strength * std::cos(angle) / size.width);
  const float gy = static_cast<float>(strength * std::sin(angle) / size.height);
  const cv::Mat mix = value_noise(size, rng.uniform(0.25, 0.8) * long_side, 2, 0.5, rng);
  const cv::Mat detail = value_noise(size, rng.uniform(0.02, 0.2) * short_side + 2, rng.range(3, 7), rng.uniform(0.45, 0.7), rng);
  // Sometimes a fine grain (fabric, sand, foliage at a distance).
  const bool grainy = rng.chance(0.4);
  const cv::Mat grain = grainy ? value_noise(size, rng.uniform(1.5, 6.0), 2, 0.5, rng) : cv::Mat();
  const float grain_amp = grainy ? static_cast<float>(rng.uniform(5.0, 22.0)) : 0.0f;
  const float mix_amp = static_cast<float>(rng.uniform(0.3, 0.9));
  const float lum_amp = static_cast<float>(rng.uniform(8.0, 45.0));
  cv::Vec3f tint;  // colour of the detail texture
  for (int k = 0; k < 3; ++k) tint[k] = static_cast<float>(rng.uniform(-0.4, 0.4));
  for (int y = 0; y < size.height; ++y) {
    const float* pm = mix.ptr<float>(y);
    const float* pd = detail.ptr<float>(y);
    const float* pg = grainy ? grain.ptr<float>(y) : nullptr;
    cv::Vec3b* pi = image.ptr<cv::Vec3b>(y);
    const float ty = 0.5f + gy * (y - size.height * 0.5f);
    for (int x = 0; x < size.width; ++x) {
      const float t = std::clamp(ty + gx * (x - size.width * 0.5f) + mix_amp * pm[x], 0.0f, 1.0f);
      const float lum = lum_amp * pd[x] + (pg ? grain_amp * pg[x] : 0.0f);
      for (int k = 0; k < 3; ++k) {
        pi[x][k] = cv::saturate_cast<uchar>(a[k] + t * (b[k] - a[k]) + lum * (1.0f + tint[k]));
      }
    }
  }
}

// Stripe / checker patches with anti-aliased borders.
void paint_patches(cv::Mat& image, Rng& rng) {
  const double short_side = std::min(image.cols, image.rows);
  const int n = rng.range(1, 5);
  for (int i = 0; i < n; ++i) {
    const cv::Point2d c(rng.uniform(0.0, image.cols), rng.uniform(0.0, image.rows));
    const double ra = short_side * rng.uniform(0.05, 0.3), rb = ra * rng.uniform(0.3, 1.0), ang = rng.uniform(0.0, kPi);
    Poly region = rng.chance(0.5) ? ellipse(c, ra, rb, ang) : Poly{polar(c, ra, ang), polar(c, rb, ang + kPi / 2),
                                                                      polar(c, ra, ang + kPi), polar(c, rb, ang + 1.5 * kPi)};
    const cv::Vec3f c1 = random_colour(rng), c2 = rng.chance(0.5) ? near_colour(c1, 50, rng) : random_colour(rng);
    const bool checker = rng.chance(0.5);
    const float period = static_cast<float>(rng.uniform(3.0, std::max(4.0, 0.05 * short_side)));
    const float pc = static_cast<float>(std::cos(ang + 0.3)), ps = static_cast<float>(std::sin(ang + 0.3));
    const float opacity = static_cast<float>(rng.uniform(0.4, 1.0));
    Shape s;
    s.fills.push_back(region);
    const cv::Rect roi = bounds(s) & cv::Rect(0, 0, image.cols, image.rows);
    if (roi.empty()) continue;
    cv::Mat cover = cv::Mat::zeros(roi.size(), CV_8UC1);
    const std::vector<cv::Point> pts = to_fixed(region, cv::Point2d(roi.x, roi.y));
    const cv::Point* data = pts.data();
    const int np = static_cast<int>(pts.size());
    cv::fillPoly(cover, &data, &np, 1, cv::Scalar(255), cv::LINE_AA, kShift);
    for (int y = 0; y < roi.height; ++y) {
      const uchar* pc8 = cover.ptr<uchar>(y);
      cv::Vec3b* pi = image.ptr<cv::Vec3b>(roi.y + y) + roi.x;
      for (int x = 0; x < roi.width; ++x) {
        if (!pc8[x]) continue;
        const float u = (pc * x + ps * y) / period, v = (-ps * x + pc * y) / period;
        const bool on = checker ? ((static_cast<long>(std::floor(u)) + static_cast<long>(std::floor(v))) & 1) != 0
                                : (u - std::floor(u)) < 0.5f;
        const cv::Vec3f& col = on ? c1 : c2;
        const float w = opacity * pc8[x] / 255.0f;
        for (int k = 0; k < 3; ++k) pi[x][k] = cv::saturate_cast<uchar>(w * col[k] + (1 - w) * pi[x][k]);
      }
    }
  }
}

// Background clutter: shapes like the foreground's, lines and cracks, none of
// them foreground.
void paint_clutter(cv::Mat& image, Rng& rng, const std::vector<cv::Vec3f>& fg_colours) {
  const double short_side = std::min(image.cols, image.rows);
  const int n = rng.range(4, 14);
  for (int i = 0; i < n; ++i) {
    const cv::Point2d c(rng.uniform(0.0, image.cols), rng.uniform(0.0, image.rows));
    const double R = std::max(1.5, short_side * rng.uniform(0.01, 0.1));
    cv::Vec3f col = random_colour(rng);
    if (!fg_colours.empty() && rng.chance(0.4)) col = near_colour(fg_colours[rng.below(fg_colours.size())], 25, rng);
    const cv::Scalar colour(col[0], col[1], col[2]);
    if (rng.chance(0.3)) {  // a line or a thin crack
      const cv::Point2d e = polar(c, R * rng.uniform(2.0, 8.0), rng.uniform(0.0, 2 * kPi));
      const Poly p = quadratic(c, polar((c + e) * 0.5, R * rng.uniform(-1.0, 1.0), rng.uniform(0.0, 2 * kPi)), e);
      const std::vector<cv::Point> pts = to_fixed(p, cv::Point2d(0, 0));
      const cv::Point* data = pts.data();
      const int np = static_cast<int>(pts.size());
      cv::polylines(image, &data, &np, 1, false, colour, rng.range(1, 4), cv::LINE_AA, kShift);
    } else {
      const std::vector<cv::Point> pts = to_fixed(outline(rng.range(0, 4), c, R, rng), cv::Point2d(0, 0));
      const cv::Point* data = pts.data();
      const int np = static_cast<int>(pts.size());
      cv::fillPoly(image, &data, &np, 1, colour, cv::LINE_AA, kShift);
    }
  }
}

// ---------------------------------------------------------------- foreground

// Thin strokes growing out of a shape: antennae (sometimes with a ball at the
// tip) and hair along part of its outline.
void add_attachments(Shape& s, const Poly& body, const cv::Point2d& c, double R, double safe, Rng& rng) {
  if (rng.chance(0.6)) {
    const int n = rng.range(1, 3);
    for (int i = 0; i < n; ++i) {
      const double a = rng.uniform(0.0, 2 * kPi);
      // Rooted in the body: outside any ring hole or cut-out (which stay
      // within 0.9 x safe of the centre), inside the outline.
      const cv::Point2d start = polar(c, 0.95 * safe, a);
      const cv::Point2d end = polar(c, R * rng.uniform(1.2, 2.2), a + rng.uniform(-0.4, 0.4));
      const cv::Point2d mid = polar((start + end) * 0.5, R * rng.uniform(-0.3, 0.3), a + kPi / 2);
      s.strokes.push_back({quadratic(start, mid, end), rng.range(1, 3), false});
      if (rng.chance(0.4)) s.tips.push_back(ellipse(end, std::max(1.5, R * rng.uniform(0.02, 0.06)), std::max(1.5, R * 0.03), 0));
    }
  }
  if (rng.chance(0.5) && body.size() >= 8) {
    const std::size_t first = rng.below(body.size());
    const std::size_t span = body.size() / 8 + rng.below(body.size() / 2 + 1);
    const int n = std::clamp(static_cast<int>(span / std::max(1.0, rng.uniform(1.0, 6.0))), 5, 500);
    for (int i = 0; i < n; ++i) {
      const cv::Point2d p = body[(first + rng.below(span + 1)) % body.size()];
      cv::Point2d dir = p - c;
      const double len = std::sqrt(dir.dot(dir));
      if (len < 1e-9) continue;
      dir *= 1.0 / len;
      const cv::Point2d side(-dir.y, dir.x);
      const double L = std::max(6.0, R * rng.uniform(0.04, 0.25));
      const cv::Point2d start = p - dir * 2.0, end = p + dir * L + side * (L * rng.uniform(-0.6, 0.6));
      s.strokes.push_back({quadratic(start, p + dir * (L * 0.5) + side * (L * rng.uniform(-0.4, 0.4)), end), 1, false});
    }
  }
}

// Cut-outs inside a body whose inscribed disc about c has radius `safe`.
void add_cutouts(Shape& s, const cv::Point2d& c, double safe, Rng& rng) {
  const int n = rng.range(1, 3);
  for (int i = 0; i < n; ++i) {
    Poly hole = outline(rng.range(0, 4), c, safe * rng.uniform(0.12, 0.35), rng);
    // Kept within 0.85 x safe of the centre, so the cut-out never opens onto
    // the outside.
    double extent = 0;
    for (const auto& p : hole) extent = std::max(extent, std::hypot(p.x - c.x, p.y - c.y));
    if (extent > 0.6 * safe) {
      for (auto& p : hole) p = c + (p - c) * (0.6 * safe / extent);
      extent = 0.6 * safe;
    }
    const cv::Point2d shift = polar(cv::Point2d(0, 0), rng.uniform(0.0, 0.85 * safe - extent), rng.uniform(0.0, 2 * kPi));
    for (auto& p : hole) p += shift;
    s.holes.push_back(std::move(hole));
  }
}

Shape make_object(const cv::Point2d& c, double R, bool force_hole, const SynthOptions& options, Rng& rng) {
  Shape s;
  const bool ring = options.holes && (force_hole ? rng.chance(0.5) : rng.chance(0.15));
  Poly body;
  if (ring) {
    body = fourier_blob(c, R, rng, rng.uniform(0.1, 0.5));
  } else {
    body = outline(rng.range(0, 4), c, R, rng);
  }
  const double safe = inscribed(body, c);
  s.fills.push_back(body);
  if (ring && safe > 2) {
    Poly inner = fourier_blob(c, 1.0, rng, rng.uniform(0.1, 0.4));
    double extent = 0;
    for (const auto& p : inner) extent = std::max(extent, std::hypot(p.x - c.x, p.y - c.y));
    const double scale = 0.9 * safe * rng.uniform(0.4, 0.97) / std::max(extent, 1e-9);
    for (auto& p : inner) p = c + (p - c) * scale;
    s.holes.push_back(inner);
  } else if (options.holes && safe > 4 && (force_hole || rng.chance(0.3))) {
    add_cutouts(s, c, safe, rng);
  }
  if (options.thin_structures) add_attachments(s, body, c, R, safe, rng);
  return s;
}

// Free-standing thin structures: wires across the scene, thin loops, tufts.
std::vector<Shape> make_thin(cv::Size size, const SynthOptions& options, Rng& rng) {
  std::vector<Shape> out;
  const double W = size.width, H = size.height, diag = std::hypot(W, H);
  const int wires = rng.range(1, 3);
  for (int i = 0; i < wires; ++i) {
    // Through a point well inside the image, so that each wire is seen.
    const cv::Point2d through(rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H);
    const double angle = rng.uniform(0.0, 2 * kPi);
    const cv::Point2d a = polar(through, diag * rng.uniform(0.15, 0.5), angle);
    const cv::Point2d b = polar(through, diag * rng.uniform(0.15, 0.5), angle + kPi);
    const double sag = diag * rng.uniform(-0.15, 0.15);
    const cv::Point2d b1 = a + (b - a) * (1.0 / 3) + cv::Point2d(0, sag), b2 = a + (b - a) * (2.0 / 3) + cv::Point2d(0, sag);
    Shape s;
    s.strokes.push_back({cubic(a, b1, b2, b), rng.range(1, 3), false});
    out.push_back(std::move(s));
  }
  if (options.holes && rng.chance(0.4)) {  // a thin loop: a hole and a thin structure at once
    const double r = std::min(W, H) * rng.uniform(0.03, 0.1) + 3;
    Shape s;
    s.strokes.push_back({ellipse(cv::Point2d(rng.uniform(0.0, W), rng.uniform(0.0, H)), r, r * rng.uniform(0.5, 1.0),
                                 rng.uniform(0.0, kPi)),
                         rng.range(1, 3), true});
    out.push_back(std::move(s));
  }
  if (rng.chance(0.4)) {  // a tuft of hair-like curves from one base
    const cv::Point2d base(rng.uniform(0.0, W), rng.uniform(0.0, H));
    const double L = std::min(W, H) * rng.uniform(0.05, 0.2) + 4;
    const double up = rng.uniform(0.0, 2 * kPi);
    Shape s;
    const int n = rng.range(5, 30);
    for (int i = 0; i < n; ++i) {
      const double a = up + rng.uniform(-0.6, 0.6);
      const cv::Point2d end = polar(base, L * rng.uniform(0.5, 1.0), a);
      s.strokes.push_back({quadratic(base, polar(base, L * 0.5, a + rng.uniform(-0.5, 0.5)), end), rng.range(1, 2), false});
    }
    out.push_back(std::move(s));
  }
  return out;
}

void validate(const SynthOptions& o) {
  const int w = o.size.width, h = o.size.height;
  const bool fits = w >= 1 && h >= 1 && ((w <= 7680 && h <= 4320) || (w <= 4320 && h <= 7680));
  if (!fits) {
    throw Error("", "scene size within 1x1..7680x4320 (or 4320x7680)", std::to_string(w) + "x" + std::to_string(h));
  }
  if (o.min_objects < 0 || o.max_objects < o.min_objects || o.max_objects > 64) {
    throw Error("", "object counts with 0 <= min_objects <= max_objects <= 64",
                std::to_string(o.min_objects) + ".." + std::to_string(o.max_objects));
  }
}

// Camera-like degradations of the image: blur, sensor noise, JPEG.
void camera(cv::Mat& image, Rng& rng) {
  if (rng.chance(0.7)) {
    const double sigma = rng.uniform(0.35, 0.9);
    cv::GaussianBlur(image, image, cv::Size(5, 5), sigma, sigma, cv::BORDER_REFLECT_101);
  }
  if (rng.chance(0.85)) {
    // Triangular noise from 10-bit uniforms, three channels per 64-bit draw.
    const float amp = static_cast<float>(rng.uniform(1.5, 7.0)) / 1023.0f;
    for (int y = 0; y < image.rows; ++y) {
      cv::Vec3b* p = image.ptr<cv::Vec3b>(y);
      for (int x = 0; x < image.cols; ++x) {
        const std::uint64_t r = rng.next();
        for (int k = 0; k < 3; ++k) {
          const int u = static_cast<int>((r >> (20 * k)) & 1023), v = static_cast<int>((r >> (20 * k + 10)) & 1023);
          p[x][k] = cv::saturate_cast<uchar>(p[x][k] + amp * static_cast<float>(u + v - 1023));
        }
      }
    }
  }
  if (rng.chance(0.6)) {
    std::vector<uchar> bytes;
    const int quality = rng.range(70, 95);
    if (cv::imencode(".jpg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, quality})) {
      cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_COLOR);
      if (decoded.size() == image.size() && decoded.type() == image.type()) image = decoded;
    }
  }
}

// The R x R square about an object's centre c, inside the image: what lies
// under the object's core (for camouflage and for contrast).
cv::Rect core_of(const cv::Point2d& c, double R, cv::Size size) {
  return cv::Rect(static_cast<int>(c.x - R / 2), static_cast<int>(c.y - R / 2), std::max(1, static_cast<int>(R)),
                  std::max(1, static_cast<int>(R))) &
         cv::Rect(0, 0, size.width, size.height);
}

// The colour, among a few random ones, farthest from the mean colour of what
// lies under the object's core: the object stands apart from its background.
cv::Vec3f contrasting_colour(const cv::Mat& image, const cv::Rect& core, Rng& rng) {
  const cv::Scalar m = core.empty() ? cv::Scalar(128, 128, 128) : cv::mean(image(core));
  cv::Vec3f best;
  double best_d = -1;
  for (int i = 0; i < 8; ++i) {
    const cv::Vec3f c = random_colour(rng);
    const double d = std::hypot(std::hypot(c[0] - m[0], c[1] - m[1]), c[2] - m[2]);
    if (d > best_d) best = c, best_d = d;
  }
  return best;
}

// SynthOptions::main_object: the textured background alone (no patches or
// clutter shaped like objects: the segmenter fine-tuned on salient objects
// marked clutter shapes as often as the main object), then one large object
// near the centre.
Scene main_object_scene(const SynthOptions& options, Rng& root) {
  const cv::Size size = options.size;
  const double W = size.width, H = size.height;
  Rng layout = root.split(), bg_rng = root.split(), fg_rng = root.split(), cam_rng = root.split();
  Scene scene;
  scene.image.create(size, CV_8UC3);
  scene.mask = cv::Mat::zeros(size, CV_8UC1);
  const double aa_sigma = layout.uniform(0.5, 0.9);
  paint_background(scene.image, bg_rng);
  const cv::Point2d c(W * (0.5 + layout.uniform(-0.08, 0.08)), H * (0.5 + layout.uniform(-0.08, 0.08)));
  const double R = 0.5 * std::min(W, H) * layout.uniform(0.6, 0.85);
  const Shape shape = make_object(c, std::max(R, 0.5), options.holes && layout.chance(0.5), options, fg_rng);
  Paint paint;
  paint.base = contrasting_colour(scene.image, core_of(c, R, size), fg_rng);
  if (fg_rng.chance(0.5)) cast_shadow(scene.image, shape, fg_rng);
  draw_layer(scene.image, scene.mask, shape, paint, true, true, aa_sigma, fg_rng);
  camera(scene.image, cam_rng);
  return scene;
}

}  // namespace

Scene generate_scene(const SynthOptions& options, std::uint64_t seed) {
  validate(options);
  const cv::Size size = options.size;
  const double W = size.width, H = size.height;
  Rng root(detail::splitmix64(seed ^ 0x5EED5CE4E0000001ULL));
  if (options.main_object) return main_object_scene(options, root);
  Rng layout = root.split(), bg_rng = root.split(), fg_rng = root.split(), thin_rng = root.split(),
      cam_rng = root.split();

  Scene scene;
  scene.image.create(size, CV_8UC3);
  scene.mask = cv::Mat::zeros(size, CV_8UC1);
  const double aa_sigma = layout.uniform(0.5, 0.9);

  // Layout: one object per cell of a jittered grid, so objects rarely hide
  // each other's holes; some are larger and overlap.
  const int n = layout.range(options.min_objects, options.max_objects);
  std::vector<cv::Vec3f> colours(n);
  for (auto& c : colours) c = random_colour(layout);
  const int cols = n > 0 ? std::max(1, static_cast<int>(std::ceil(std::sqrt(n * W / H)))) : 1;
  const int rows = n > 0 ? std::max(1, (n + cols - 1) / cols) : 1;
  std::vector<int> cells(cols * rows);
  for (int i = 0; i < cols * rows; ++i) cells[i] = i;
  for (int i = cols * rows - 1; i > 0; --i) std::swap(cells[i], cells[layout.below(i + 1)]);
  const int forced_hole = options.holes && n > 0 ? static_cast<int>(layout.below(n)) : -1;

  paint_background(scene.image, bg_rng);
  paint_patches(scene.image, bg_rng);
  paint_clutter(scene.image, bg_rng, colours);

  const double cw = W / cols, ch = H / rows;
  struct Placed {
    Shape shape;
    Paint paint;
  };
  std::vector<Placed> objects;
  for (int i = 0; i < n; ++i) {
    Rng rng = fg_rng.split();
    const int cell = cells[i];
    const cv::Point2d c((cell % cols + 0.5 + rng.uniform(-0.2, 0.2)) * cw, (cell / cols + 0.5 + rng.uniform(-0.2, 0.2)) * ch);
    double R = 0.5 * std::min(cw, ch) * rng.uniform(0.45, 0.85);
    if (i != forced_hole && rng.chance(0.25)) R *= 1.35;
    Placed p{make_object(c, std::max(R, 0.5), i == forced_hole, options, rng), Paint()};
    p.paint.base = colours[i];
    if (rng.chance(0.35)) {  // camouflage: close to the background under it
      const cv::Rect core = core_of(c, R, size);
      if (!core.empty()) {
        const cv::Scalar m = cv::mean(scene.image(core));
        p.paint.base = near_colour(cv::Vec3f(static_cast<float>(m[0]), static_cast<float>(m[1]), static_cast<float>(m[2])),
                                   rng.uniform(8.0, 30.0), rng);
      }
    }
    objects.push_back(std::move(p));
  }
  // Draw: the other objects, maybe an occluding bar (background in front),
  // the object with a guaranteed hole, then free-standing thin structures.
  for (int i = 0; i < n; ++i) {
    if (i == forced_hole) continue;
    if (fg_rng.chance(0.35)) cast_shadow(scene.image, objects[i].shape, fg_rng);
    draw_layer(scene.image, scene.mask, objects[i].shape, objects[i].paint, true, true, aa_sigma, fg_rng);
  }
  if (fg_rng.chance(0.3)) {
    const cv::Point2d a(fg_rng.uniform(0.0, W), -0.05 * H), b(fg_rng.uniform(0.0, W), 1.05 * H);
    Shape bar;
    bar.strokes.push_back({quadratic(a, (a + b) * 0.5 + cv::Point2d(fg_rng.uniform(-0.2, 0.2) * W, 0), b),
                           std::max(4, static_cast<int>(std::min(W, H) * fg_rng.uniform(0.005, 0.03))), false});
    Paint paint;
    paint.base = random_colour(fg_rng);
    draw_layer(scene.image, scene.mask, bar, paint, true, false, aa_sigma, fg_rng);
  }
  if (forced_hole >= 0) {
    if (fg_rng.chance(0.35)) cast_shadow(scene.image, objects[forced_hole].shape, fg_rng);
    draw_layer(scene.image, scene.mask, objects[forced_hole].shape, objects[forced_hole].paint, true, true, aa_sigma,
               fg_rng);
  }
  if (options.thin_structures) {
    for (const Shape& s : make_thin(size, options, thin_rng)) {
      Paint paint;
      paint.base = thin_rng.chance(0.3) ? near_colour(colours.empty() ? random_colour(thin_rng) : colours[0], 30, thin_rng)
                                        : random_colour(thin_rng);
      draw_layer(scene.image, scene.mask, s, paint, false, true, aa_sigma, thin_rng);
    }
  }
  camera(scene.image, cam_rng);
  return scene;
}

}  // namespace airm
