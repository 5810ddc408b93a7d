#include "airm/report.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/atomic_file.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"

namespace airm {
namespace fs = std::filesystem;

namespace {

const cv::Scalar kGroundTruthColour(80, 220, 60);   // BGR green
const cv::Scalar kPredictionColour(40, 40, 235);    // BGR red
const cv::Vec3b kFalsePositive(230, 60, 230);       // magenta: predicted, not in ground truth
const cv::Vec3b kFalseNegative(240, 200, 30);       // cyan-blue: in ground truth, missed
const cv::Vec3b kBandCorrect(150, 150, 150);

std::string base64(const std::vector<unsigned char>& bytes) {
  static const char* const kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    const unsigned v = (bytes[i] << 16) | (i + 1 < bytes.size() ? bytes[i + 1] << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string jpeg_data_uri(const cv::Mat& bgr) {
  std::vector<unsigned char> bytes;
  cv::imencode(".jpg", bgr, bytes, {cv::IMWRITE_JPEG_QUALITY, 82});
  return "data:image/jpeg;base64," + base64(bytes);
}

std::string escape_html(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string percent(double value) {
  if (!std::isfinite(value)) return "&ndash;";
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << value;
  return s.str();
}

cv::Mat binarise(const cv::Mat& mask_u8, cv::Size size) {
  cv::Mat resized = mask_u8;
  if (mask_u8.size() != size) cv::resize(mask_u8, resized, size, 0, 0, cv::INTER_LINEAR);
  return resized > 127;
}

// The image with the ground-truth (green) and predicted (red) boundaries.
cv::Mat boundary_picture(const cv::Mat& thumb, const cv::Mat& gt, const cv::Mat& pred) {
  cv::Mat picture = thumb.clone();
  const cv::Size size = thumb.size();
  const int thickness = std::max(1, std::min(size.width, size.height) / 300);
  for (const auto& [mask, colour] : {std::pair{gt, kGroundTruthColour}, std::pair{pred, kPredictionColour}}) {
    cv::Mat small;
    cv::resize(mask, small, size, 0, 0, cv::INTER_AREA);
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(small > 127, contours, cv::RETR_LIST, cv::CHAIN_APPROX_NONE);
    cv::drawContours(picture, contours, -1, colour, thickness, cv::LINE_AA);
  }
  return picture;
}

// The widest mBA band over a dimmed image: correct band pixels grey, false
// positives magenta, false negatives blue. Computed at full resolution.
cv::Mat band_error_picture(const cv::Mat& image, const cv::Mat& gt, const cv::Mat& pred, cv::Size thumb_size) {
  const int radius = boundary_radii(gt.size()).back();
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, {2 * radius + 1, 2 * radius + 1});
  cv::Mat band;
  cv::morphologyEx(gt, band, cv::MORPH_GRADIENT, kernel);
  cv::Mat picture = image * 0.35;
  for (int y = 0; y < gt.rows; ++y) {
    const auto* b = band.ptr<unsigned char>(y);
    const auto* g = gt.ptr<unsigned char>(y);
    const auto* p = pred.ptr<unsigned char>(y);
    auto* out = picture.ptr<cv::Vec3b>(y);
    for (int x = 0; x < gt.cols; ++x) {
      if (!b[x]) continue;
      out[x] = g[x] == p[x] ? kBandCorrect : (p[x] ? kFalsePositive : kFalseNegative);
    }
  }
  cv::Mat thumb;
  cv::resize(picture, thumb, thumb_size, 0, 0, cv::INTER_AREA);
  return thumb;
}

const char* const kStyle = R"(
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:1.4em}table.summary{border-collapse:collapse;margin:12px 0}
table.summary th,table.summary td{border:1px solid #bbb;padding:4px 10px;text-align:right}
table.summary td:first-child,table.summary th:first-child{text-align:left}
tr.pooled{font-weight:bold;background:#eee}
.legend span{display:inline-block;margin-right:18px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
section.sample{background:#fff;border:1px solid #ddd;margin:14px 0;padding:10px}
section.sample h3{margin:0 0 6px 0;font-size:1em}
.pictures{display:flex;gap:10px;flex-wrap:wrap}
figure{margin:0}figcaption{font-size:.85em;color:#555}
img{max-width:100%;height:auto;display:block}
.meta{font-size:.85em;color:#444}
)";

}  // namespace

std::string build_report_html(const EvalResult& result, const EvalOptions& eval_options,
                              const ReportOptions& options) {
  std::vector<std::size_t> order(result.scores.size());
  std::iota(order.begin(), order.end(), 0);
  // Worst first: lowest mBA, images without a boundary band last, then by IoU.
  auto key = [&](std::size_t i) {
    const double mba = result.scores[i].mba;
    return std::pair{std::isfinite(mba) ? mba : 1e9, result.scores[i].iou};
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
  if (options.max_images > 0 && order.size() > static_cast<std::size_t>(options.max_images)) {
    order.resize(static_cast<std::size_t>(options.max_images));
  }

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       << "<title>airm eval report</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n"
       << "<h1>airm eval report</h1>\n<p class=\"meta\">data: " << escape_html(eval_options.data.string())
       << (eval_options.split.empty() ? "" : " &middot; split: " + escape_html(eval_options.split))
       << " &middot; scored: "
       << escape_html(eval_options.use_coarse ? std::string("coarse masks") : eval_options.pred_dir.string())
       << " &middot; " << result.scores.size() << " images, " << result.failures.size() << " failed</p>\n";

  html << "<table class=\"summary\">\n<thead><tr><th>dataset</th><th>images</th><th>IoU (%)</th>"
       << "<th>mean IoU (%)</th><th>mBA (%)</th></tr></thead>\n<tbody>\n";
  for (const Summary& s : result.summaries) {
    html << "<tr" << (s.dataset == "all" ? " class=\"pooled\"" : "") << "><td>" << escape_html(s.dataset)
         << "</td><td>" << s.images << "</td><td>" << percent(s.iou) << "</td><td>" << percent(s.mean_iou)
         << "</td><td>" << percent(s.mba) << "</td></tr>\n";
  }
  html << "</tbody>\n</table>\n";

  if (!result.failures.empty()) {
    html << "<h2>Failed</h2>\n<ul class=\"failures\">\n";
    for (const EvalFailure& f : result.failures) html << "<li>" << escape_html(f.message) << "</li>\n";
    html << "</ul>\n";
  }

  auto swatch = [](const cv::Scalar& bgr) {
    std::ostringstream s;
    s << "<span class=\"swatch\" style=\"background:rgb(" << bgr[2] << "," << bgr[1] << "," << bgr[0] << ")\"></span>";
    return s.str();
  };
  html << "<h2>Images, worst mBA first (" << order.size() << " of " << result.scores.size() << ")</h2>\n"
       << "<p class=\"legend\"><span>" << swatch(kGroundTruthColour) << "ground-truth boundary</span><span>"
       << swatch(kPredictionColour) << "predicted boundary</span><span>"
       << swatch({double(kBandCorrect[0]), double(kBandCorrect[1]), double(kBandCorrect[2])})
       << "band, correct</span><span>"
       << swatch({double(kFalsePositive[0]), double(kFalsePositive[1]), double(kFalsePositive[2])})
       << "band, false positive</span><span>"
       << swatch({double(kFalseNegative[0]), double(kFalseNegative[1]), double(kFalseNegative[2])})
       << "band, false negative</span></p>\n";

  for (std::size_t rank = 0; rank < order.size(); ++rank) {
    const std::size_t i = order[rank];
    const ImageScore& score = result.scores[i];
    const Sample& sample = result.samples[i];
    html << "<section class=\"sample\" data-mba=\"" << percent(score.mba) << "\" data-iou=\""
         << percent(score.iou) << "\">\n<h3>" << rank + 1 << ". " << escape_html(sample.dataset) << " / "
         << escape_html(sample.name) << " &mdash; IoU " << percent(score.iou) << "%, mBA " << percent(score.mba)
         << "%</h3>\n";
    try {
      const cv::Mat gt = binarise(read_mask_u8(sample.gt), score.size);
      const cv::Mat pred = binarise(read_mask_u8(result.predictions[i]), score.size);
      cv::Mat image = read_image(sample.image);
      if (image.size() != gt.size()) cv::resize(image, image, gt.size(), 0, 0, cv::INTER_AREA);
      const double scale = std::min(1.0, static_cast<double>(options.thumbnail_width) / std::max(gt.cols, gt.rows));
      const cv::Size thumb_size(std::max(1, static_cast<int>(std::lround(gt.cols * scale))),
                                std::max(1, static_cast<int>(std::lround(gt.rows * scale))));
      cv::Mat thumb;
      cv::resize(image, thumb, thumb_size, 0, 0, cv::INTER_AREA);
      html << "<div class=\"pictures\">\n<figure><img alt=\"boundaries\" src=\""
           << jpeg_data_uri(boundary_picture(thumb, gt, pred))
           << "\"><figcaption>boundaries: ground truth green, prediction red</figcaption></figure>\n"
           << "<figure><img alt=\"band errors\" src=\"" << jpeg_data_uri(band_error_picture(image, gt, pred, thumb_size))
           << "\"><figcaption>widest mBA band (r=" << boundary_radii(gt.size()).back()
           << " px): errors coloured</figcaption></figure>\n</div>\n";
    } catch (const std::exception& e) {
      html << "<p class=\"error\">could not draw: " << escape_html(e.what()) << "</p>\n";
    }
    html << "</section>\n";
  }
  html << "</body>\n</html>\n";
  return html.str();
}

void write_report(const fs::path& path, const EvalResult& result, const EvalOptions& eval_options,
                  const ReportOptions& options) {
  write_text_atomically(path, build_report_html(result, eval_options, options));
}

}  // namespace airm
