#include "validation.hpp"

#include <chrono>
#include <string>

#include <opencv2/imgproc.hpp>

#include "airm/degrade.hpp"
#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"
#include "airm/model/implicit_function.hpp"
#include "airm/parallel.hpp"
#include "autocast.hpp"

namespace airm::train_detail {
namespace {

// BGR CV_8UC3 -> RGB [1,3,H,W] in [0,1]
torch::Tensor image_tensor(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const torch::Tensor bytes = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
  return bytes.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat).div(255.0);
}

// CV_8UC1 0..255 -> [1,1,H,W] 0/1
torch::Tensor mask_tensor(const cv::Mat& mask) {
  cv::Mat contiguous = mask.isContinuous() ? mask : mask.clone();
  const torch::Tensor bytes = torch::from_blob(contiguous.data, {1, 1, mask.rows, mask.cols}, torch::kUInt8);
  return bytes.gt(127).to(torch::kFloat);
}

}  // namespace

std::vector<Sample> evenly_spaced(const std::vector<Sample>& samples, int limit) {
  const std::size_t n = samples.size();
  const std::size_t take = (limit <= 0 || static_cast<std::size_t>(limit) >= n) ? n : static_cast<std::size_t>(limit);
  std::vector<Sample> out;
  for (std::size_t i = 0; i < take; ++i) out.push_back(samples[i * n / take]);
  return out;
}

ValidationSet prepare_validation(const std::vector<Sample>& samples, int limit, int threads) {
  ValidationSet set;
  set.samples = evenly_spaced(samples, limit);
  const std::size_t take = set.samples.size();

  set.coarse.resize(take);
  std::vector<ImageScore> scores(take);
  std::vector<std::string> errors(take);
  parallel_for(take, threads, [&](std::size_t i) {
    const Sample& s = set.samples[i];
    try {
      const cv::Mat gt = read_mask_u8(s.gt);
      set.coarse[i] = degrade_mask(gt, DegradeMode::perturb, sample_seed(kValidationCoarseSeed, s.name));
      const cv::Mat ignore = s.ignore.empty() ? cv::Mat() : read_mask_u8(s.ignore);
      scores[i] = score_masks(gt, set.coarse[i], ignore);
      scores[i].dataset = s.dataset;
      scores[i].name = s.name;
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });
  for (const std::string& e : errors) {
    if (!e.empty()) throw Error("", "validation set: " + e);
  }
  set.coarse_summaries = summarize_by_dataset(scores);
  return set;
}

cv::Mat refine_single_scale(AirmNet& net, const cv::Mat& bgr, const cv::Mat& coarse, const torch::Device& device,
                            bool bf16, int64_t chunk) {
  if (bgr.size() != coarse.size()) {
    throw Error("", "a coarse mask of the image's size " + std::to_string(bgr.cols) + "x" + std::to_string(bgr.rows),
                std::to_string(coarse.cols) + "x" + std::to_string(coarse.rows));
  }
  torch::NoGradGuard no_grad;
  const int64_t H = bgr.rows, W = bgr.cols;
  const torch::Tensor input = normalize_input(image_tensor(bgr), mask_tensor(coarse)).to(device);
  const torch::Tensor coord = make_pixel_grid(H, W, torch::TensorOptions().device(device)).unsqueeze(0);
  const torch::Tensor cell = cell_for(H, W, torch::TensorOptions().device(device));
  torch::Tensor logits;
  Encoded encoded;
  {
    AutocastScope autocast(bf16 && kAutocastEncoder, device);
    encoded = net->encode(input);
  }
  {
    AutocastScope autocast(bf16, device);
    logits = net->query(encoded, input, coord, cell, chunk);  // [1, H*W]
  }
  const torch::Tensor pred = logits.to(torch::kFloat).gt(0.0).to(torch::kUInt8).mul(255).view({H, W}).to(torch::kCPU);
  return cv::Mat(static_cast<int>(H), static_cast<int>(W), CV_8UC1, pred.data_ptr<uint8_t>()).clone();
}

ValidationResult score_predictions(const std::vector<Sample>& samples, const Predictor& predict,
                                   const std::function<bool()>& should_stop) {
  const auto start = std::chrono::steady_clock::now();
  ValidationResult result;
  std::vector<ImageScore> scores;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (should_stop && should_stop()) {
      result.stopped = true;
      return result;
    }
    const Sample& s = samples[i];
    const cv::Mat gt = read_mask_u8(s.gt);
    const cv::Mat image = read_image(s.image);
    if (image.size() != gt.size()) {
      throw Error(s.image.string(), "an image of its mask's size " + std::to_string(gt.cols) + "x" +
                                        std::to_string(gt.rows),
                  std::to_string(image.cols) + "x" + std::to_string(image.rows));
    }
    const cv::Mat pred = predict(image, i);
    const cv::Mat ignore = s.ignore.empty() ? cv::Mat() : read_mask_u8(s.ignore);
    ImageScore score = score_masks(gt, pred, ignore);
    score.dataset = s.dataset;
    score.name = s.name;
    scores.push_back(std::move(score));
  }
  result.summaries = summarize_by_dataset(scores);
  result.images = static_cast<int>(scores.size());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

ValidationResult run_validation(AirmNet& net, const ValidationSet& set, const torch::Device& device, bool bf16,
                                const std::function<bool()>& should_stop) {
  EvalModeScope mode(*net);
  return score_predictions(
      set.samples,
      [&](const cv::Mat& image, std::size_t i) { return refine_single_scale(net, image, set.coarse[i], device, bf16); },
      should_stop);
}

}  // namespace airm::train_detail
