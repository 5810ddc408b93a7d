// Coarse-mask generators: a CascadePSP-style boundary perturbation that lands
// on its target IoU, and a low-resolution segmenter's output.
#include "airm/degrade.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "random.hpp"

namespace airm {
namespace {

using detail::Rng;
using detail::splitmix64;

void check_mask(const cv::Mat& gt, const char* what) {
  if (gt.empty()) throw Error("", std::string(what) + ": empty mask");
  if (gt.type() != CV_8UC1) {
    throw Error("", std::string(what) + ": expected a CV_8UC1 mask, got type " + std::to_string(gt.type()) +
                        " with " + std::to_string(gt.channels()) + " channel(s)");
  }
}

// 0/1 copy of a mask binarised at > 127.
cv::Mat binarise01(const cv::Mat& gt) {
  cv::Mat out;
  cv::threshold(gt, out, 127, 1, cv::THRESH_BINARY);
  return out;
}

cv::Mat to255(const cv::Mat& m01) {
  cv::Mat out;
  cv::threshold(m01, out, 0, 255, cv::THRESH_BINARY);
  return out;
}

// Intersection and union of two 0/1 masks.
void overlap(const cv::Mat& a, const cv::Mat& b, long& inter, long& uni) {
  inter = 0;
  uni = 0;
  for (int y = 0; y < a.rows; ++y) {
    const uchar* pa = a.ptr<uchar>(y);
    const uchar* pb = b.ptr<uchar>(y);
    long i = 0, u = 0;
    for (int x = 0; x < a.cols; ++x) {
      i += pa[x] & pb[x];
      u += pa[x] | pb[x];
    }
    inter += i;
    uni += u;
  }
}

double ratio(long inter, long uni) { return uni > 0 ? static_cast<double>(inter) / static_cast<double>(uni) : 1.0; }

// The contours of a 0/1 mask with their nesting depth (0: outer boundary,
// 1: hole, 2: island in a hole, ...).
struct Contours {
  std::vector<std::vector<cv::Point>> points;
  std::vector<int> depth;
  std::vector<int> order;  // indices by increasing depth
};

Contours find_contours(const cv::Mat& g01) {
  Contours c;
  std::vector<cv::Vec4i> hierarchy;
  cv::Mat work = g01.clone();
  cv::findContours(work, c.points, hierarchy, cv::RETR_TREE, cv::CHAIN_APPROX_NONE);
  const int n = static_cast<int>(c.points.size());
  c.depth.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    int d = 0;
    for (int p = hierarchy[i][3]; p >= 0 && d <= n; p = hierarchy[p][3]) ++d;
    c.depth[i] = d;
  }
  c.order.resize(n);
  for (int i = 0; i < n; ++i) c.order[i] = i;
  std::stable_sort(c.order.begin(), c.order.end(), [&](int a, int b) { return c.depth[a] < c.depth[b]; });
  return c;
}

constexpr int kShift = 4;  // drawing with 1/16-pixel vertex precision
constexpr double kScale = 1 << kShift;

// Redraws the contours simplified with approxPolyDP(epsilon), vertices moved by
// up to `jitter` pixels: outer boundaries filled with 1, holes cleared (their
// boundary pixels kept), islands in holes filled again, by increasing depth.
cv::Mat simplified(const Contours& c, cv::Size size, double epsilon, double jitter, Rng& rng) {
  cv::Mat out = cv::Mat::zeros(size, CV_8UC1);
  std::vector<cv::Point> approx;
  for (int i : c.order) {
    const auto& pts = c.points[i];
    if (epsilon > 0) {
      cv::approxPolyDP(pts, approx, epsilon, true);
    } else {
      approx = pts;
    }
    std::vector<cv::Point> poly(approx.size());
    const bool move = jitter > 0 && approx.size() >= 3;
    for (std::size_t k = 0; k < approx.size(); ++k) {
      double x = approx[k].x, y = approx[k].y;
      if (move) {
        x += rng.uniform(-jitter, jitter);
        y += rng.uniform(-jitter, jitter);
      }
      poly[k] = cv::Point(static_cast<int>(std::lround(x * kScale)), static_cast<int>(std::lround(y * kScale)));
    }
    const cv::Point* data = poly.data();
    const int count = static_cast<int>(poly.size());
    if (c.depth[i] % 2 == 0) {
      cv::fillPoly(out, &data, &count, 1, cv::Scalar(1), cv::LINE_8, kShift);
    } else {
      cv::fillPoly(out, &data, &count, 1, cv::Scalar(0), cv::LINE_8, kShift);
      cv::polylines(out, &data, &count, 1, true, cv::Scalar(1), 1, cv::LINE_8, kShift);
    }
  }
  return out;
}

// Random local dilations and erosions until the IoU with g is within
// [target - tol, target + tol], never accepting a step that goes below.
void local_morphology(cv::Mat& cur, const cv::Mat& g, const std::vector<cv::Point>& boundary, double target,
                      double tol, long& inter, long& uni, Rng& rng) {
  const int W = cur.cols, H = cur.rows;
  const int long_side = std::max(W, H);
  // Repetitions of a kernel grow with the resolution so that one step moves
  // the boundary by a similar fraction of the image at 500 px and at 8K.
  const double unit = std::max(1.0, std::round(long_side / 800.0));
  const double s_min = 1.0 / long_side;
  double scale = 1.0;
  int no_change = 0;
  const int max_attempts = 6000;
  // A bound on the work (pixels times repetitions) as well, for 8K masks.
  double work_left = 100.0 * W * H + 1e7;
  // Centres of accepted steps: stepping there again grows the holes and
  // islands they made (and is how an all-foreground mask gets degraded).
  std::vector<cv::Point> hotspots;
  cv::Mat src, dst;
  for (int attempt = 0; attempt < max_attempts && work_left > 0; ++attempt) {
    if (ratio(inter, uni) <= target + tol) break;
    // The rectangle.
    const int rw = std::max(1, static_cast<int>(std::lround(W * scale * rng.uniform(0.03, 0.5))));
    const int rh = std::max(1, static_cast<int>(std::lround(H * scale * rng.uniform(0.03, 0.5))));
    int cx, cy;
    const double pick = rng.uniform();
    if (!hotspots.empty() && pick < 0.25) {
      const cv::Point& p = hotspots[rng.below(hotspots.size())];
      cx = p.x + rng.range(-rw / 4, rw / 4);
      cy = p.y + rng.range(-rh / 4, rh / 4);
    } else if (!boundary.empty() && pick < 0.8) {
      const cv::Point& p = boundary[rng.below(boundary.size())];
      cx = p.x + rng.range(-rw / 4, rw / 4);
      cy = p.y + rng.range(-rh / 4, rh / 4);
    } else {
      cx = rng.range(0, W - 1);
      cy = rng.range(0, H - 1);
    }
    cv::Rect rect = cv::Rect(cx - rw / 2, cy - rh / 2, rw, rh) & cv::Rect(0, 0, W, H);
    if (rect.empty()) continue;
    // The operation.
    const bool dilate = rng.chance(0.5);
    const int ksize = 3 + 2 * rng.range(0, 3);
    const int shape = rng.chance(0.5) ? cv::MORPH_RECT : cv::MORPH_ELLIPSE;
    const int max_iter = std::max(1, static_cast<int>(std::lround(unit * std::min(1.0, scale * 2.0))));
    const int iterations = rng.range(1, max_iter);
    const bool seed_pixel = rng.chance(0.25) || no_change >= 4;
    const int halo = (ksize / 2) * iterations;
    const cv::Rect image_rect(0, 0, W, H);
    auto pad = [&](const cv::Rect& r) {
      return cv::Rect(r.x - halo, r.y - halo, r.width + 2 * halo, r.height + 2 * halo) & image_rect;
    };
    cv::Rect padded = pad(rect);
    const cv::Point seed_at(rect.x + rect.width / 2, rect.y + rect.height / 2);
    // Only pixels within `halo` of a pixel the operation spreads (1 for a
    // dilation, 0 for an erosion, the seed pixel included) and of the other
    // value can change: process just that part of the rectangle (the result
    // is the same, and a large, mostly uniform rectangle costs little).
    work_left -= 0.05 * padded.area();
    {
      const cv::Mat view = cur(padded);
      cv::Mat zeros;
      cv::compare(view, 0, zeros, cv::CMP_EQ);
      cv::Rect spread = cv::boundingRect(dilate ? view : zeros);
      const cv::Rect receive = cv::boundingRect(dilate ? zeros : view) + padded.tl();
      spread += padded.tl();
      if (seed_pixel) spread = spread.empty() ? cv::Rect(seed_at, cv::Size(1, 1)) : (spread | cv::Rect(seed_at, cv::Size(1, 1)));
      if (!spread.empty()) {
        rect &= cv::Rect(spread.x - halo, spread.y - halo, spread.width + 2 * halo, spread.height + 2 * halo);
        rect &= receive;
      }
      if (spread.empty() || rect.empty()) {
        ++no_change;
        continue;
      }
      padded = pad(rect);
    }
    work_left -= static_cast<double>(padded.area()) * iterations;
    cur(padded).copyTo(src);
    if (seed_pixel && padded.contains(seed_at)) {
      // A single pixel set first lets a dilation grow an island or an
      // erosion grow a hole.
      src.at<uchar>(seed_at.y - padded.y, seed_at.x - padded.x) = dilate ? 1 : 0;
    }
    const cv::Mat kernel = cv::getStructuringElement(shape, cv::Size(ksize, ksize));
    if (dilate) {
      cv::dilate(src, dst, kernel, cv::Point(-1, -1), iterations, cv::BORDER_REPLICATE);
    } else {
      cv::erode(src, dst, kernel, cv::Point(-1, -1), iterations, cv::BORDER_REPLICATE);
    }
    // Intersection and union change, from the rectangle only.
    const cv::Rect inner(rect.x - padded.x, rect.y - padded.y, rect.width, rect.height);
    long d_inter = 0, d_uni = 0;
    bool changed = false;
    for (int y = 0; y < rect.height; ++y) {
      const uchar* po = cur.ptr<uchar>(rect.y + y) + rect.x;
      const uchar* pg = g.ptr<uchar>(rect.y + y) + rect.x;
      const uchar* pn = dst.ptr<uchar>(inner.y + y) + inner.x;
      for (int x = 0; x < rect.width; ++x) {
        if (po[x] != pn[x]) {
          changed = true;
          const int sign = pn[x] ? 1 : -1;
          if (pg[x]) {
            d_inter += sign;
          } else {
            d_uni += sign;
          }
        }
      }
    }
    if (!changed) {
      ++no_change;
      continue;
    }
    no_change = 0;
    const double next = ratio(inter + d_inter, uni + d_uni);
    if (next < target - tol) {
      scale = std::max(s_min, scale * 0.5);  // too far: smaller steps
      continue;
    }
    // Steps back towards the ground truth are kept only sometimes, so the
    // walk drifts to the target (an all-foreground mask would not otherwise).
    if (next > ratio(inter, uni) && !rng.chance(0.35)) continue;
    dst(inner).copyTo(cur(rect));
    if (hotspots.size() < 4096) {
      hotspots.push_back(seed_at);
    } else {
      hotspots[rng.below(hotspots.size())] = seed_at;
    }
    inter += d_inter;
    uni += d_uni;
    scale = std::min(1.0, scale * 1.25);
  }
}

}  // namespace

DegradeMode parse_degrade_mode(std::string_view text) {
  if (text == "perturb") return DegradeMode::perturb;
  if (text == "lowres") return DegradeMode::lowres;
  if (text == "both") return DegradeMode::both;
  throw Error("", "degrade mode perturb, lowres or both", "'" + std::string(text) + "'");
}

std::uint64_t sample_seed(std::uint64_t seed, std::string_view name) {
  std::uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a, 64 bit
  for (const char ch : name) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001B3ULL;
  }
  return splitmix64(splitmix64(seed) ^ h);
}

double draw_target_iou(const PerturbOptions& options, std::uint64_t sample_seed) {
  if (!std::isfinite(options.min_iou) || !std::isfinite(options.max_iou) || options.min_iou > options.max_iou ||
      options.min_iou < 0.0 || options.max_iou > 1.0) {
    throw Error("", "IoU range must satisfy 0 <= min_iou <= max_iou <= 1, got [" + std::to_string(options.min_iou) +
                        ", " + std::to_string(options.max_iou) + ")");
  }
  Rng rng(splitmix64(sample_seed ^ 0x7A72C3E1B6E5A4F1ULL));
  return options.min_iou + (options.max_iou - options.min_iou) * rng.uniform();
}

cv::Mat perturb_mask(const cv::Mat& gt, double target_iou, std::uint64_t sample_seed, const PerturbOptions& options) {
  check_mask(gt, "perturb_mask");
  if (!std::isfinite(target_iou)) throw Error("", "perturb_mask: target IoU must be finite");
  if (!std::isfinite(options.tolerance) || options.tolerance < 0.0) {
    throw Error("", "perturb_mask: tolerance must be finite and >= 0, got " + std::to_string(options.tolerance));
  }
  const double target = std::clamp(target_iou, 0.0, 1.0);
  const double tol = options.tolerance;
  const cv::Mat g = binarise01(gt);
  const long g_count = cv::countNonZero(g);
  if (g_count == 0 || target + tol >= 1.0) return to255(g);

  Rng rng(splitmix64(sample_seed ^ 0x3C6EF372FE94F82BULL));
  const Contours contours = find_contours(g);
  std::vector<cv::Point> boundary;
  for (const auto& c : contours.points) boundary.insert(boundary.end(), c.begin(), c.end());

  // (a) Polygon simplification, with a smaller epsilon while it overshoots.
  const int long_side = std::max(g.cols, g.rows);
  const double u = rng.uniform();
  double epsilon = 0.5 + u * u * std::max(1.0, 0.006 * long_side);
  const double jitter_fraction = rng.chance(0.5) ? rng.uniform(0.0, 0.5) : 0.0;
  cv::Mat cur;
  long inter = g_count, uni = g_count;
  for (int attempt = 0; attempt < 5; ++attempt, epsilon *= 0.5) {
    Rng draw = rng.split();
    cv::Mat candidate = simplified(contours, g.size(), epsilon, epsilon * jitter_fraction, draw);
    long i = 0, un = 0;
    overlap(candidate, g, i, un);
    if (ratio(i, un) >= target - tol) {
      cur = candidate;
      inter = i;
      uni = un;
      break;
    }
  }
  if (cur.empty()) cur = g.clone();  // none: start from the ground truth itself

  // (b) Local dilations and erosions down to the target.
  local_morphology(cur, g, boundary, target, tol, inter, uni, rng);
  return to255(cur);
}

cv::Mat lowres_mask(const cv::Mat& gt, const LowresOptions& options) {
  check_mask(gt, "lowres_mask");
  if (options.factor < 1) throw Error("", "lowres factor must be >= 1, got " + std::to_string(options.factor));
  const int W = gt.cols, H = gt.rows;
  const int long_side = std::max(W, H), short_side = std::min(W, H);
  const int small_long =
      std::max(1, static_cast<int>(std::lround(static_cast<double>(long_side) / options.factor)));
  const int small_short = std::max(
      1, static_cast<int>(std::lround(static_cast<double>(short_side) * small_long / long_side)));
  const cv::Size small_size = W >= H ? cv::Size(small_long, small_short) : cv::Size(small_short, small_long);

  cv::Mat binary, f, small, up, out;
  cv::threshold(gt, binary, 127, 255, cv::THRESH_BINARY);
  binary.convertTo(f, CV_32F);
  cv::resize(f, small, small_size, 0, 0, cv::INTER_AREA);
  cv::resize(small, up, gt.size(), 0, 0, cv::INTER_LINEAR);
  if (options.soft) {
    up.convertTo(out, CV_8U);  // rounds and saturates,
    out.setTo(127, (up <= 127.5f) & (out > 127));  // keeping the threshold's side: > 127 where the binary mask is on
  } else {
    cv::compare(up, 127.5, out, cv::CMP_GT);
  }
  return out;
}

cv::Mat degrade_mask(const cv::Mat& gt, DegradeMode mode, std::uint64_t sample_seed, const PerturbOptions& perturb,
                     const LowresOptions& lowres) {
  switch (mode) {
    case DegradeMode::perturb:
      return perturb_mask(gt, draw_target_iou(perturb, sample_seed), sample_seed, perturb);
    case DegradeMode::lowres:
      return lowres_mask(gt, lowres);
    case DegradeMode::both:
      return lowres_mask(perturb_mask(gt, draw_target_iou(perturb, sample_seed), sample_seed, perturb), lowres);
  }
  throw Error("", "unknown degrade mode");
}

}  // namespace airm
