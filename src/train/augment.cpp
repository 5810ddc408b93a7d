// One training sample: read, cover, crop, flip, copy-paste, colour, coarse
// mask. See include/airm/train/data_loader.hpp for the rules.
#include "augment.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "airm/degrade.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"

namespace airm::detail {
namespace {

// 0/1 mask -> 0/255, resized bilinearly (area when shrinking), back to 0/1 at half.
cv::Mat resize_mask01(const cv::Mat& m01, cv::Size size) {
  cv::Mat m255 = m01 * 255, resized, out;
  const bool shrink = size.width < m01.cols || size.height < m01.rows;
  cv::resize(m255, resized, size, 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  cv::threshold(resized, out, 127, 1, cv::THRESH_BINARY);
  return out;
}

// Stage 1b: the long side to `long_side` (aspect kept).
void rescale(LoadedSample& s, int long_side) {
  const int w = s.bgr.cols, h = s.bgr.rows;
  const double scale = static_cast<double>(long_side) / std::max(w, h);
  const cv::Size size(std::max(1, static_cast<int>(std::lround(w * scale))),
                      std::max(1, static_cast<int>(std::lround(h * scale))));
  if (size == s.bgr.size()) return;
  cv::Mat bgr;
  cv::resize(s.bgr, bgr, size, 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  s.gt = resize_mask01(s.gt, size);
  if (!s.coarse.empty()) s.coarse = resize_mask01(s.coarse, size);
  s.bgr = bgr;
}

// Stage 2: scale up so the short side reaches `crop` (nothing when it already does).
void cover(LoadedSample& s, int crop) {
  const int w = s.bgr.cols, h = s.bgr.rows;
  if (std::min(w, h) >= crop) return;
  const double scale = static_cast<double>(crop) / std::min(w, h);
  const int nw = std::max(crop, static_cast<int>(std::lround(w * scale)));
  const int nh = std::max(crop, static_cast<int>(std::lround(h * scale)));
  cv::Mat bgr;
  cv::resize(s.bgr, bgr, cv::Size(nw, nh), 0, 0, cv::INTER_LINEAR);
  s.gt = resize_mask01(s.gt, cv::Size(nw, nh));
  if (!s.coarse.empty()) s.coarse = resize_mask01(s.coarse, cv::Size(nw, nh));
  s.bgr = bgr;
}

// Stage 4: pastes the donor's object (bounding box of its foreground) into the crop.
void paste_object(cv::Mat& bgr, cv::Mat& gt, const LoadedSample& donor, Rng& rng) {
  const cv::Rect box = cv::boundingRect(donor.gt);
  if (box.empty()) return;
  const int crop = bgr.cols;
  const double scale = rng.uniform(0.3, 0.8) * crop / std::max(box.width, box.height);
  const int nw = std::clamp(static_cast<int>(std::lround(box.width * scale)), 1, crop);
  const int nh = std::clamp(static_cast<int>(std::lround(box.height * scale)), 1, crop);
  const int x = rng.range(0, crop - nw);
  const int y = rng.range(0, crop - nh);
  cv::Mat patch;
  cv::resize(donor.bgr(box), patch, cv::Size(nw, nh), 0, 0, scale < 1.0 ? cv::INTER_AREA : cv::INTER_LINEAR);
  const cv::Mat mask = resize_mask01(donor.gt(box), cv::Size(nw, nh));
  const cv::Rect roi(x, y, nw, nh);
  cv::Mat target_bgr = bgr(roi), target_gt = gt(roi);
  patch.copyTo(target_bgr, mask);
  target_gt.setTo(1, mask);
}

void clamp01(cv::Mat& m) {
  cv::max(m, 0.0, m);
  cv::min(m, 1.0, m);
}

cv::Mat gray3(const cv::Mat& rgb) {
  cv::Mat g, g3;
  cv::cvtColor(rgb, g, cv::COLOR_RGB2GRAY);
  cv::cvtColor(g, g3, cv::COLOR_GRAY2RGB);
  return g3;
}

// Stage 6: CV_8UC1 0/255 (both degradations' own output), or the soft low-res mask.
cv::Mat coarse_mask(const cv::Mat& gt01, const DataOptions& o, Rng& rng) {
  const cv::Mat gt255 = gt01 * 255;
  if (rng.chance(o.perturb_share)) {
    const double target = o.perturb.min_iou + (o.perturb.max_iou - o.perturb.min_iou) * rng.uniform();
    return perturb_mask(gt255, target, rng.next(), o.perturb);
  }
  LowresOptions lowres;
  lowres.factor = rng.range(o.lowres_min, o.lowres_max);
  // Drawn only when asked for, so recipes without it keep their random streams (and their results).
  lowres.soft = o.soft_share > 0 && rng.chance(o.soft_share);
  return lowres_mask(gt255, lowres);
}

// A mask file as CV_8UC1 0/1 at `size` (> 127 is foreground).
cv::Mat read_mask01(const std::filesystem::path& path, cv::Size size) {
  cv::Mat mask = fit_mask_to(read_mask_u8(path), size, path), out;
  cv::threshold(mask, out, 127, 1, cv::THRESH_BINARY);
  return out;
}

}  // namespace

LoadedSample load_sample(const Sample& sample) {
  LoadedSample s;
  s.bgr = read_image(sample.image);
  s.gt = read_mask01(sample.gt, s.bgr.size());
  return s;
}

void colour_jitter(cv::Mat& rgb, double strength, Rng& rng) {
  if (strength <= 0) return;
  const double factor[3] = {rng.uniform(1 - strength, 1 + strength), rng.uniform(1 - strength, 1 + strength),
                            rng.uniform(1 - strength, 1 + strength)};
  const double hue = rng.uniform(-strength / 4, strength / 4);  // fraction of the colour circle
  int order[4] = {0, 1, 2, 3};
  for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<std::uint64_t>(i) + 1)]);
  for (const int op : order) {
    switch (op) {
      case 0:  // brightness
        rgb *= factor[0];
        break;
      case 1: {  // contrast: towards the mean gray level
        cv::Mat g;
        cv::cvtColor(rgb, g, cv::COLOR_RGB2GRAY);
        const double mean = cv::mean(g)[0];
        rgb.convertTo(rgb, CV_32F, factor[1], mean * (1 - factor[1]));
        break;
      }
      case 2:  // saturation: towards each pixel's gray level
        cv::addWeighted(rgb, factor[2], gray3(rgb), 1 - factor[2], 0.0, rgb);
        break;
      default: {  // hue
        cv::Mat hsv;
        cv::cvtColor(rgb, hsv, cv::COLOR_RGB2HSV);  // float: H in [0, 360)
        const float shift = static_cast<float>(hue * 360.0);
        for (int y = 0; y < hsv.rows; ++y) {
          auto* p = hsv.ptr<cv::Vec3f>(y);
          for (int x = 0; x < hsv.cols; ++x) {
            float h = p[x][0] + shift;
            if (h < 0) h += 360.f;
            if (h >= 360.f) h -= 360.f;
            p[x][0] = h;
          }
        }
        cv::cvtColor(hsv, rgb, cv::COLOR_HSV2RGB);
        break;
      }
    }
    clamp01(rgb);
  }
}

Crop make_crop(const std::vector<Sample>& samples, std::size_t index, const DataOptions& o, Rng rng) {
  // One generator per stage, split in a fixed order.
  Rng crop_rng = rng.split();
  Rng paste_rng = rng.split();
  Rng colour_rng = rng.split();
  Rng coarse_rng = rng.split();

  LoadedSample s = load_sample(samples[index]);
  if (o.stored_share > 0 && !samples[index].coarse.empty()) {
    Rng stored_rng = rng.split();
    if (stored_rng.chance(o.stored_share)) s.coarse = read_mask01(samples[index].coarse, s.bgr.size());
  }
  if (o.long_side_max > 0) rescale(s, crop_rng.range(o.long_side_min, o.long_side_max));
  cover(s, o.crop);
  int x0 = crop_rng.range(0, s.bgr.cols - o.crop);
  int y0 = crop_rng.range(0, s.bgr.rows - o.crop);
  if (o.boundary_crop > 0 && crop_rng.chance(o.boundary_crop)) {
    cv::Mat eroded;
    cv::erode(s.gt, eroded, cv::getStructuringElement(cv::MORPH_RECT, {3, 3}));
    std::vector<cv::Point> boundary;
    cv::findNonZero(s.gt != eroded, boundary);
    if (!boundary.empty()) {
      const cv::Point c = boundary[crop_rng.below(boundary.size())];
      x0 = std::clamp(c.x - o.crop / 2, 0, s.bgr.cols - o.crop);
      y0 = std::clamp(c.y - o.crop / 2, 0, s.bgr.rows - o.crop);
    }
  }
  const cv::Rect window(x0, y0, o.crop, o.crop);
  cv::Mat bgr = s.bgr(window).clone();
  cv::Mat gt = s.gt(window).clone();
  cv::Mat coarse;
  if (!s.coarse.empty()) {
    coarse = s.coarse(window) * 255;  // the stored mask, 0/1 -> 0/255
  } else if (o.coarse_from == "image") {
    coarse = coarse_mask(s.gt, o, coarse_rng)(window).clone();
  }
  if (o.flips && crop_rng.chance(0.5)) {
    cv::flip(bgr, bgr, 1);
    cv::flip(gt, gt, 1);
    if (!coarse.empty()) cv::flip(coarse, coarse, 1);
  }

  if (o.copy_paste > 0 && paste_rng.chance(o.copy_paste)) {
    std::size_t donor = index;
    if (samples.size() > 1) {
      donor = paste_rng.below(samples.size() - 1);
      if (donor >= index) ++donor;
    }
    paste_object(bgr, gt, load_sample(samples[donor]), paste_rng);
  }

  Crop out;
  cv::cvtColor(bgr, out.rgb, cv::COLOR_BGR2RGB);
  out.rgb.convertTo(out.rgb, CV_32F, 1.0 / 255.0);
  colour_jitter(out.rgb, o.jitter, colour_rng);
  if (o.grayscale > 0 && colour_rng.chance(o.grayscale)) out.rgb = gray3(out.rgb);
  out.gt = gt;
  out.coarse = coarse.empty() ? coarse_mask(gt, o, coarse_rng) : coarse;
  return out;
}

}  // namespace airm::detail
