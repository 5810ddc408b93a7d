// IoU and CascadePSP's mBA. Definitions: docs/METRICS.md.
#include "airm/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>

#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"

namespace airm {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string describe(const cv::Mat& m) {
  if (m.empty()) return "an empty image";
  return "type " + cv::typeToString(m.type()) + " " + std::to_string(m.cols) + "x" +
         std::to_string(m.rows);
}

std::string size_text(cv::Size s) { return std::to_string(s.width) + "x" + std::to_string(s.height); }

// 0/1 image of `m > 127`.
cv::Mat binarise(const cv::Mat& m) {
  cv::Mat b;
  cv::threshold(m, b, 127, 1, cv::THRESH_BINARY);
  return b;
}

// Largest radius the packed band test below handles; larger radii (images
// with W + H above ~38000) fall back to cv::morphologyEx.
constexpr int kPackedMaxRadius = 126;

// Half-widths of the rows of OpenCV's elliptical (2r+1)x(2r+1) structuring
// element, -1 for an empty row. Returns false if a row is not one run
// centred on the middle column (then the caller uses cv::morphologyEx).
bool ellipse_half_widths(int r, std::vector<int>& half) {
  const cv::Mat k = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1));
  half.assign(2 * r + 1, -1);
  for (int i = 0; i < k.rows; ++i) {
    const uchar* row = k.ptr<uchar>(i);
    int first = -1, last = -1;
    for (int j = 0; j < k.cols; ++j) {
      if (row[j]) {
        if (first < 0) first = j;
        last = j;
      }
    }
    if (first < 0) continue;
    for (int j = first; j <= last; ++j) {
      if (!row[j]) return false;
    }
    if (r - first != last - r) return false;
    half[i] = r - first;
  }
  return true;
}

// Per pixel, one byte: bit 7 = the pixel's class (gt foreground), bits 0..6 =
// horizontal distance to the nearest pixel of the other class in the same
// row, capped at 127 (127 also means "none in this row"). Built run by run:
// long runs of one class are skipped 8 bytes at a time.
cv::Mat pack_row_distances(const cv::Mat& gt01) {
  cv::Mat packed(gt01.size(), CV_8UC1);
  const int w = gt01.cols;
  for (int y = 0; y < gt01.rows; ++y) {
    const uchar* g = gt01.ptr<uchar>(y);
    uchar* out = packed.ptr<uchar>(y);
    int x = 0;
    while (x < w) {
      const uchar c = g[x];
      const std::uint64_t pattern = c ? 0x0101010101010101ull : 0ull;
      int b = x + 1;
      while (b + 8 <= w) {
        std::uint64_t word;
        std::memcpy(&word, g + b, 8);
        if (word != pattern) break;
        b += 8;
      }
      while (b < w && g[b] == c) ++b;
      // Run [x, b) of class c.
      const int len = b - x;
      const uchar bit = c ? 0x80 : 0;
      std::memset(out + x, bit | 127, len);
      const int edge = std::min(len, 127);
      if (x > 0) {  // the other class just left of the run
        for (int i = 0; i < edge; ++i) out[x + i] = static_cast<uchar>(bit | (i + 1));
      }
      if (b < w) {  // the other class just right of the run
        for (int i = 0; i < edge; ++i) {
          uchar& o = out[b - 1 - i];
          o = static_cast<uchar>(bit | std::min<int>(o & 0x7F, i + 1));
        }
      }
      x = b;
    }
  }
  return packed;
}

struct BandCount {
  std::int64_t band = 0;
  std::int64_t correct = 0;
};

// Reference path: exactly the definition, with cv::morphologyEx.
BandCount band_accuracy_opencv(const cv::Mat& gt01, const cv::Mat& pred01, const cv::Mat& ignore,
                               int r) {
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1));
  cv::Mat grad;
  cv::morphologyEx(gt01, grad, cv::MORPH_GRADIENT, kernel);
  BandCount c;
  for (int y = 0; y < gt01.rows; ++y) {
    const uchar* b = grad.ptr<uchar>(y);
    const uchar* g = gt01.ptr<uchar>(y);
    const uchar* p = pred01.ptr<uchar>(y);
    const uchar* ig = ignore.empty() ? nullptr : ignore.ptr<uchar>(y);
    for (int x = 0; x < gt01.cols; ++x) {
      if (!b[x] || (ig && ig[x])) continue;
      ++c.band;
      c.correct += (g[x] == p[x]);
    }
  }
  return c;
}

// The elliptical window of one radius, as half-widths per row offset.
struct Window {
  int r = 0;
  std::vector<int> half;  // index dy + r; -1 for an empty row
};

// True if every row of `small` lies inside the same row of `big`.
bool nested(const Window& small, const Window& big) {
  for (int dy = -small.r; dy <= small.r; ++dy) {
    if (small.half[dy + small.r] > big.half[dy + big.r]) return false;
  }
  return true;
}

// Same counts as band_accuracy_opencv for each of `windows` (ascending
// radii), faster: a pixel is in the gradient band iff its elliptical window,
// clipped to the image (OpenCV's default border leaves dilation and erosion
// unaffected by outside pixels), holds both classes. Candidates are the
// pixels whose square window of the largest radius holds both (a superset
// of every band: each ellipse lies inside that square), found with OpenCV's
// fast separable square morphology. Each candidate then checks the ellipse
// row by row with the packed row distances: a window row holds both classes
// iff the distance to the other class is within its half-width.
std::vector<BandCount> band_accuracy_fast(const cv::Mat& gt01, const cv::Mat& pred01,
                                          const cv::Mat& ignore, const std::vector<Window>& windows) {
  const int n = static_cast<int>(windows.size());
  const int r_big = windows.back().r;
  bool all_nested = true;
  for (int i = 0; i + 1 < n; ++i) all_nested = all_nested && nested(windows[i], windows[i + 1]);

  const cv::Mat packed = pack_row_distances(gt01);
  cv::Mat square;
  cv::morphologyEx(gt01, square, cv::MORPH_GRADIENT,
                   cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * r_big + 1, 2 * r_big + 1)));
  const int rows = gt01.rows;
  const std::ptrdiff_t step = static_cast<std::ptrdiff_t>(packed.step[0]);
  std::vector<BandCount> counts(n);

  for (int y = 0; y < rows; ++y) {
    const uchar* cand = square.ptr<uchar>(y);
    const uchar* g = gt01.ptr<uchar>(y);
    const uchar* p = pred01.ptr<uchar>(y);
    const uchar* ig = ignore.empty() ? nullptr : ignore.ptr<uchar>(y);
    const uchar* prow = packed.ptr<uchar>(y);
    for (int x = 0; x < gt01.cols; ++x) {
      if (!cand[x] || (ig && ig[x])) continue;
      const uchar* col = prow + x;
      const auto in_band = [&](const Window& win) {
        const int r = win.r;
        const int dy0 = std::max(-r, -y);
        const int dy1 = std::min(r, rows - 1 - y);
        unsigned seen = 0;  // bit 0: background met, bit 1: foreground met
        for (int dy = dy0; dy <= dy1; ++dy) {
          const int hw = win.half[dy + r];
          if (hw < 0) continue;
          const uchar v = col[dy * step];
          if ((v & 0x7F) <= hw) return true;  // this window row holds both classes
          seen |= 1u << (v >> 7);
          if (seen == 3u) return true;
        }
        return false;
      };
      const int correct = g[x] == p[x];
      if (all_nested) {
        // Bands grow with the radius: find the smallest radius whose band
        // holds the pixel; it is in that band and every larger one.
        if (!in_band(windows[n - 1])) continue;
        int k = 0;
        while (k < n - 1 && !in_band(windows[k])) ++k;
        for (int i = k; i < n; ++i) {
          ++counts[i].band;
          counts[i].correct += correct;
        }
      } else {
        for (int i = 0; i < n; ++i) {
          if (in_band(windows[i])) {
            ++counts[i].band;
            counts[i].correct += correct;
          }
        }
      }
    }
  }
  return counts;
}

void check_mask(const cv::Mat& m, const char* what) {
  if (m.empty() || m.type() != CV_8UC1) {
    throw Error("", std::string(what) + ": expected a non-empty CV_8UC1 mask, got " + describe(m));
  }
}

}  // namespace

std::array<int, kBoundaryRadii> boundary_radii(cv::Size size) {
  // CascadePSP: min_radius + int((max_radius - min_radius) / num_steps * i),
  // int() truncating toward zero; same double operations in the same order.
  const double min_radius = 1.0;
  const double max_radius = (static_cast<double>(size.width) + static_cast<double>(size.height)) / 300.0;
  std::array<int, kBoundaryRadii> radii{};
  for (int i = 0; i < kBoundaryRadii; ++i) {
    const double offset = (max_radius - min_radius) / kBoundaryRadii * i;
    const int r = 1 + static_cast<int>(std::trunc(offset));
    radii[i] = std::max(1, r);
  }
  return radii;
}

ImageScore score_masks(const cv::Mat& gt, const cv::Mat& pred, const cv::Mat& ignore) {
  check_mask(gt, "ground truth");
  check_mask(pred, "prediction");
  if (!ignore.empty()) {
    if (ignore.type() != CV_8UC1) {
      throw Error("", "ignore mask: expected type CV_8UC1, got " + describe(ignore));
    }
    if (ignore.size() != gt.size()) {
      throw Error("", "ignore mask: expected size " + size_text(gt.size()) + " (the ground truth's), got " +
                          size_text(ignore.size()));
    }
  }

  const cv::Mat gt01 = binarise(gt);
  cv::Mat pred01;
  if (pred.size() != gt.size()) {
    cv::Mat resized;
    cv::resize(pred, resized, gt.size(), 0, 0, cv::INTER_LINEAR);
    pred01 = binarise(resized);
  } else {
    pred01 = binarise(pred);
  }

  ImageScore s;
  s.size = gt.size();

  // IoU over non-ignored pixels.
  std::int64_t inter = 0, uni = 0;
  for (int y = 0; y < gt01.rows; ++y) {
    const uchar* g = gt01.ptr<uchar>(y);
    const uchar* p = pred01.ptr<uchar>(y);
    const uchar* ig = ignore.empty() ? nullptr : ignore.ptr<uchar>(y);
    int ri = 0, ru = 0;  // per row: lets the compiler vectorise
    if (ig) {
      for (int x = 0; x < gt01.cols; ++x) {
        const int keep = ig[x] == 0;
        ri += (g[x] & p[x]) & keep;
        ru += (g[x] | p[x]) & keep;
      }
    } else {
      for (int x = 0; x < gt01.cols; ++x) {
        ri += g[x] & p[x];
        ru += g[x] | p[x];
      }
    }
    inter += ri;
    uni += ru;
  }
  s.intersection = inter;
  s.union_ = uni;
  s.iou = uni == 0 ? 100.0 : 100.0 * static_cast<double>(inter) / static_cast<double>(uni);

  // mBA. Each distinct radius is computed once (small images repeat radius 1).
  const auto radii = boundary_radii(gt.size());
  const std::set<int> radius_set(radii.begin(), radii.end());
  const std::vector<int> distinct(radius_set.begin(), radius_set.end());  // ascending
  std::vector<Window> windows;
  bool fast = distinct.back() <= kPackedMaxRadius;
  for (int r : distinct) {
    Window win;
    win.r = r;
    fast = fast && ellipse_half_widths(r, win.half);
    windows.push_back(std::move(win));
  }
  std::map<int, BandCount> by_radius;
  const int fg = cv::countNonZero(gt01);
  if (fg == 0 || fg == gt01.rows * gt01.cols) {
    for (int r : distinct) by_radius[r] = BandCount{};  // no boundary: empty bands
  } else if (fast) {
    const std::vector<BandCount> counts = band_accuracy_fast(gt01, pred01, ignore, windows);
    for (size_t i = 0; i < distinct.size(); ++i) by_radius[distinct[i]] = counts[i];
  } else {
    for (int r : distinct) by_radius[r] = band_accuracy_opencv(gt01, pred01, ignore, r);
  }
  double sum = 0;
  bool any_empty = false;
  for (int i = 0; i < kBoundaryRadii; ++i) {
    const BandCount& c = by_radius[radii[i]];
    s.band_pixels[i] = c.band;
    if (c.band == 0) {
      s.boundary_accuracy[i] = kNaN;
      any_empty = true;
    } else {
      s.boundary_accuracy[i] = 100.0 * static_cast<double>(c.correct) / static_cast<double>(c.band);
      sum += s.boundary_accuracy[i];
    }
  }
  s.mba = any_empty ? kNaN : sum / kBoundaryRadii;
  return s;
}

Summary summarize(const std::vector<ImageScore>& scores, const std::string& dataset) {
  Summary out;
  out.dataset = dataset;
  out.images = static_cast<int>(scores.size());
  std::int64_t inter = 0, uni = 0;
  double iou_sum = 0, mba_sum = 0;
  for (const ImageScore& s : scores) {
    inter += s.intersection;
    uni += s.union_;
    iou_sum += s.iou;
    if (!std::isnan(s.mba)) {
      mba_sum += s.mba;
      ++out.mba_images;
    }
  }
  if (scores.empty()) {
    out.iou = out.mean_iou = kNaN;
  } else {
    out.iou = uni == 0 ? 100.0 : 100.0 * static_cast<double>(inter) / static_cast<double>(uni);
    out.mean_iou = iou_sum / static_cast<double>(scores.size());
  }
  out.mba = out.mba_images == 0 ? kNaN : mba_sum / out.mba_images;
  return out;
}

std::vector<Summary> summarize_by_dataset(const std::vector<ImageScore>& scores) {
  std::map<std::string, std::vector<ImageScore>> groups;
  for (const ImageScore& s : scores) groups[s.dataset].push_back(s);
  std::vector<Summary> out;
  out.reserve(groups.size() + 1);
  for (const auto& [name, group] : groups) out.push_back(summarize(group, name));
  out.push_back(summarize(scores, "all"));
  return out;
}

}  // namespace airm
