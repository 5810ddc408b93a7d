// Refines a perturbed mask of a generated scene with the installed default
// model and prints the IoU of the coarse and refined masks.
#include <cstdio>

#include <airm/degrade.hpp>
#include <airm/metrics.hpp>
#include <airm/refiner.hpp>
#include <airm/synth.hpp>

int main() {
  airm::SynthOptions options;
  options.size = cv::Size(480, 320);
  const airm::Scene scene = airm::generate_scene(options, 5);
  const cv::Mat coarse = airm::degrade_mask(scene.mask, airm::DegradeMode::perturb, 5);
  const airm::Refiner refiner(AIRM_MODEL, airm::RefinerOptions{"cpu", 2});
  cv::Mat refined;
  cv::compare(refiner.refine(scene.image, coarse), 0.5, refined, cv::CMP_GT);
  std::printf("coarse IoU %.2f refined IoU %.2f\n", airm::score_masks(scene.mask, coarse).iou,
              airm::score_masks(scene.mask, refined).iou);
  return 0;
}
