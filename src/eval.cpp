#include "airm/eval.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "airm/error.hpp"
#include "airm/mask_io.hpp"
#include "airm/parallel.hpp"
#include "airm/progress.hpp"

namespace airm {
namespace fs = std::filesystem;

void EvalOptions::validate() const {
  if (data.empty()) throw Error("", "expected --data DIR, got nothing");
  if (!fs::exists(data)) throw Error(data.string(), "does not exist");
  if (use_coarse == !pred_dir.empty()) {
    throw Error("", "expected exactly one of --pred DIR and --coarse");
  }
  if (!pred_dir.empty() && !fs::is_directory(pred_dir)) {
    throw Error(pred_dir.string(), "expected a directory of predictions");
  }
  if (threads < 0) throw Error("", "expected threads >= 0, got " + std::to_string(threads));
}

fs::path find_prediction(const fs::path& pred_dir, const Sample& sample) {
  static const char* const kExtensions[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"};
  for (const fs::path& dir : {pred_dir / sample.dataset, pred_dir}) {
    for (const char* ext : kExtensions) {
      fs::path candidate = dir / (sample.name + ext);
      if (fs::is_regular_file(candidate)) return candidate;
    }
  }
  return {};
}

namespace {

// A prediction must have its ground truth's aspect ratio (within 1%).
void check_prediction_shape(const cv::Mat& gt, const cv::Mat& pred, const fs::path& pred_path) {
  if (gt.size() == pred.size()) return;
  const double gt_aspect = static_cast<double>(gt.cols) / gt.rows;
  const double pred_aspect = static_cast<double>(pred.cols) / pred.rows;
  if (std::abs(pred_aspect / gt_aspect - 1.0) > 0.01) {
    std::ostringstream expected, got;
    expected << "the aspect ratio of its ground truth " << gt.cols << "x" << gt.rows;
    got << pred.cols << "x" << pred.rows;
    throw Error(pred_path.string(), expected.str(), got.str());
  }
}

// Restores OpenCV's thread count on scope exit: evaluation runs one image per
// thread and keeps OpenCV's own parallel loops out of the way.
class OpenCvThreadsGuard {
 public:
  explicit OpenCvThreadsGuard(int threads) : saved_(cv::getNumThreads()) { cv::setNumThreads(threads); }
  ~OpenCvThreadsGuard() { cv::setNumThreads(saved_); }
  OpenCvThreadsGuard(const OpenCvThreadsGuard&) = delete;
  OpenCvThreadsGuard& operator=(const OpenCvThreadsGuard&) = delete;

 private:
  int saved_;
};

}  // namespace

EvalResult evaluate(const EvalOptions& options) {
  options.validate();
  const auto start = std::chrono::steady_clock::now();
  Discovery discovery = discover_split(options.data, options.split, options.splits_file);

  const std::size_t n = discovery.samples.size();
  std::vector<ImageScore> scores(n);
  std::vector<fs::path> predictions(n);
  std::vector<std::string> errors(n);

  const int threads = resolve_threads(options.threads);
  OpenCvThreadsGuard guard(threads > 1 ? 1 : cv::getNumThreads());
  Progress progress("eval", n, options.progress);
  parallel_for(n, threads, [&](std::size_t i) {
    const Sample& sample = discovery.samples[i];
    try {
      const fs::path pred_path = options.use_coarse ? sample.coarse : find_prediction(options.pred_dir, sample);
      if (pred_path.empty()) {
        throw Error(sample.name, options.use_coarse ? "has no coarse mask" : "has no prediction in " + options.pred_dir.string());
      }
      const cv::Mat gt = read_mask_u8(sample.gt);
      const cv::Mat pred = read_mask_u8(pred_path);
      check_prediction_shape(gt, pred, pred_path);
      cv::Mat ignore;
      if (!sample.ignore.empty()) {
        ignore = read_mask_u8(sample.ignore);
        if (ignore.size() != gt.size()) {
          std::ostringstream expected, got;
          expected << "an ignore mask of its ground truth's size " << gt.cols << "x" << gt.rows;
          got << ignore.cols << "x" << ignore.rows;
          throw Error(sample.ignore.string(), expected.str(), got.str());
        }
      }
      scores[i] = score_masks(gt, pred, ignore);
      scores[i].dataset = sample.dataset;
      scores[i].name = sample.name;
      predictions[i] = pred_path;
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
    progress.advance();
  });
  progress.finish();

  EvalResult result;
  result.unmatched = std::move(discovery.unmatched);
  for (std::size_t i = 0; i < n; ++i) {
    const Sample& sample = discovery.samples[i];
    if (!errors[i].empty()) {
      result.failures.push_back({sample.dataset, sample.name, errors[i]});
      continue;
    }
    result.samples.push_back(sample);
    result.scores.push_back(std::move(scores[i]));
    result.predictions.push_back(std::move(predictions[i]));
  }
  result.summaries = summarize_by_dataset(result.scores);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

namespace {
std::string fixed(double value, int digits = 2) {
  if (!std::isfinite(value)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

nlohmann::json summary_json(const Summary& s) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"dataset", s.dataset}, {"images", s.images},       {"iou", number(s.iou)},
          {"mean_iou", number(s.mean_iou)}, {"mba", number(s.mba)}, {"mba_images", s.mba_images}};
}
}  // namespace

std::string format_summary_table(const std::vector<Summary>& summaries) {
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof line, "%-24s %7s %8s %8s %8s\n", "dataset", "images", "IoU(%)", "mIoU(%)", "mBA(%)");
  out << line;
  for (const Summary& s : summaries) {
    if (s.dataset == "all") out << std::string(59, '-') << "\n";
    std::snprintf(line, sizeof line, "%-24s %7d %8s %8s %8s\n", s.dataset.c_str(), s.images,
                  fixed(s.iou).c_str(), fixed(s.mean_iou).c_str(), fixed(s.mba).c_str());
    out << line;
  }
  return out.str();
}

std::string format_scores_csv(const EvalResult& result) {
  std::ostringstream out;
  out << "dataset,name,width,height,iou,mba";
  for (int r = 0; r < kBoundaryRadii; ++r) out << ",radius" << r << ",ba" << r;
  out << ",intersection,union,prediction\n";
  for (std::size_t i = 0; i < result.scores.size(); ++i) {
    const ImageScore& s = result.scores[i];
    const auto radii = boundary_radii(s.size);
    out << csv_field(s.dataset) << ',' << csv_field(s.name) << ',' << s.size.width << ',' << s.size.height << ','
        << fixed(s.iou, 4) << ',' << fixed(s.mba, 4);
    for (int r = 0; r < kBoundaryRadii; ++r) out << ',' << radii[r] << ',' << fixed(s.boundary_accuracy[r], 4);
    out << ',' << s.intersection << ',' << s.union_ << ',' << csv_field(result.predictions[i].string()) << '\n';
  }
  return out.str();
}

std::string format_summary_json(const EvalResult& result, const EvalOptions& options) {
  nlohmann::json doc;
  doc["data"] = options.data.string();
  doc["split"] = options.split;
  doc["source"] = options.use_coarse ? std::string("coarse") : options.pred_dir.string();
  doc["metrics"] = "IoU pooled over images (iou), mean per-image IoU (mean_iou), CascadePSP mBA (mba); percent";
  nlohmann::json rows = nlohmann::json::array();
  for (const Summary& s : result.summaries) rows.push_back(summary_json(s));
  doc["summaries"] = rows;
  nlohmann::json failures = nlohmann::json::array();
  for (const EvalFailure& f : result.failures) {
    failures.push_back({{"dataset", f.dataset}, {"name", f.name}, {"error", f.message}});
  }
  doc["failures"] = failures;
  nlohmann::json unmatched = nlohmann::json::array();
  for (const fs::path& p : result.unmatched) unmatched.push_back(p.string());
  doc["unmatched"] = unmatched;
  doc["seconds"] = result.seconds;
  return doc.dump(2) + "\n";
}

}  // namespace airm
