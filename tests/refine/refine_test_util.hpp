// Helpers of the refinement tests: a random network saved like a trained
// one, the trained weights when present, generated scenes.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <opencv2/core.hpp>

#include "airm/degrade.hpp"
#include "airm/model/weights.hpp"
#include "airm/refiner.hpp"
#include "airm/synth.hpp"
#include "follower_net.hpp"
#include "test_support.hpp"

namespace airm::test {

inline std::filesystem::path source_dir() { return AIRM_SOURCE_DIR; }

// A randomly initialised configs/airm_mit_b0.json network written as a weights file (seeded: the same
// file every run).
inline std::filesystem::path random_weights(const TempDir& dir) {
  const std::filesystem::path path = dir / "random_mit_b0.pt";
  if (!std::filesystem::exists(path)) {
    torch::manual_seed(0);
    AirmNet net(ModelConfig::load(source_dir() / "configs" / "airm_mit_b0.json"));
    save_weights(path, net);
  }
  return path;
}

// The same random network made to follow the coarse mask (follower_net.hpp), as a weights file.
inline std::filesystem::path follower_weights(const TempDir& dir) {
  const std::filesystem::path path = dir / "follower_mit_b0.pt";
  if (std::filesystem::exists(path)) return path;
  AirmNet net = load_weights(random_weights(dir));
  make_mask_following(net);
  save_weights(path, net);
  return path;
}

// Trained weights: $AIRM_MODEL, else models/airm.pt, else the first models/*.pt; empty when none.
inline std::filesystem::path trained_weights() {
  if (const char* env = std::getenv("AIRM_MODEL"); env != nullptr && *env != '\0' && std::filesystem::exists(env)) {
    return env;
  }
  const std::filesystem::path models = source_dir() / "models";
  if (std::filesystem::exists(models / "airm.pt")) return models / "airm.pt";
  std::filesystem::path first;
  if (std::filesystem::is_directory(models)) {
    for (const auto& entry : std::filesystem::directory_iterator(models)) {
      if (entry.path().extension() == ".pt" && (first.empty() || entry.path() < first)) first = entry.path();
    }
  }
  return first;
}

struct TestScene {
  cv::Mat image;   // CV_8UC3
  cv::Mat gt;      // CV_8UC1 0/255
  cv::Mat coarse;  // CV_8UC1 0/255, perturbed to IoU ~0.9
};

inline TestScene make_scene(cv::Size size, std::uint64_t seed) {
  SynthOptions options;
  options.size = size;
  const Scene scene = generate_scene(options, seed);
  TestScene out{scene.image, scene.mask, {}};
  out.coarse = perturb_mask(scene.mask, 0.9, seed);
  return out;
}

// Fraction of pixels where two probability maps agree after thresholding at 0.5.
inline double agreement(const cv::Mat& a, const cv::Mat& b) {
  return 1.0 - static_cast<double>(count_differences(a > 0.5, b > 0.5)) / static_cast<double>(a.total());
}

// IoU of two probability maps thresholded at 0.5 (1 when both are empty).
inline double binary_iou(const cv::Mat& a, const cv::Mat& b) {
  const cv::Mat ba = a > 0.5, bb = b > 0.5;
  const double inter = cv::countNonZero(ba & bb);
  const double uni = cv::countNonZero(ba | bb);
  return uni == 0 ? 1.0 : inter / uni;
}

}  // namespace airm::test
