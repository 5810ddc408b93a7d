// Validation during training: each image at its native size, encoded once
// and every pixel queried, from a fixed coarse mask; pooled IoU and mBA.
#pragma once

#include <functional>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "airm/dataset.hpp"
#include "airm/metrics.hpp"
#include "airm/model/airm_net.hpp"

namespace airm::train_detail {

// The seed of the validation coarse masks: the masks are exactly those of
// `airm degrade --mode perturb --seed 0` (default perturbation options).
constexpr std::uint64_t kValidationCoarseSeed = 0;

struct ValidationSet {
  std::vector<Sample> samples;            // the images used, sorted like the split
  std::vector<cv::Mat> coarse;            // CV_8UC1 0/255, one per sample
  std::vector<Summary> coarse_summaries;  // the coarse masks' own scores: per dataset, then "all"
};

// `limit` samples evenly spaced over `samples` (0 or more than there are: all).
std::vector<Sample> evenly_spaced(const std::vector<Sample>& samples, int limit);

// `limit` samples evenly spaced over `samples` (0: all), with their coarse
// masks made on `threads` threads. Throws airm::Error for an unreadable mask.
ValidationSet prepare_validation(const std::vector<Sample>& samples, int limit, int threads);

struct ValidationResult {
  std::vector<Summary> summaries;  // per dataset, then "all"
  int images = 0;
  double seconds = 0;
  bool stopped = false;  // should_stop() returned true before the end: no result
};

// The refined mask (CV_8UC1 0/255) of a BGR image at its own size:
// encode once, query every pixel in chunks, threshold the probability at 0.5.
cv::Mat refine_single_scale(AirmNet& net, const cv::Mat& bgr, const cv::Mat& coarse, const torch::Device& device,
                            bool bf16, int64_t chunk = 1 << 16);

// Puts a module in eval mode while alive; its mode comes back afterwards.
class EvalModeScope {
 public:
  explicit EvalModeScope(torch::nn::Module& module) : module_(module), training_(module.is_training()) {
    module_.eval();
  }
  ~EvalModeScope() { module_.train(training_); }
  EvalModeScope(const EvalModeScope&) = delete;
  EvalModeScope& operator=(const EvalModeScope&) = delete;

 private:
  torch::nn::Module& module_;
  bool training_;
};

// A predicted mask (CV_8UC1 0/255, the image's size) of sample `index` from its BGR image.
using Predictor = std::function<cv::Mat(const cv::Mat& bgr, std::size_t index)>;

// Scores `predict` on the samples (their ground truth and ignore masks,
// pooled per dataset, then "all"). `should_stop` is asked between images.
ValidationResult score_predictions(const std::vector<Sample>& samples, const Predictor& predict,
                                   const std::function<bool()>& should_stop = {});

// Scores the refiner on the set from its coarse masks (eval mode, no
// gradients; the module's train/eval mode is restored).
ValidationResult run_validation(AirmNet& net, const ValidationSet& set, const torch::Device& device, bool bf16,
                                const std::function<bool()>& should_stop = {});

}  // namespace airm::train_detail
