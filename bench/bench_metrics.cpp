// Cost of the foundation's per-image work at UHR sizes: scoring (IoU + mBA),
// the two coarse-mask generators, and scene generation.
#include <benchmark/benchmark.h>

#include "airm/degrade.hpp"
#include "airm/metrics.hpp"
#include "airm/synth.hpp"

namespace {

cv::Size size_for(int long_side) { return {long_side, long_side * 9 / 16}; }

airm::Scene scene_for(int long_side) {
  airm::SynthOptions options;
  options.size = size_for(long_side);
  return airm::generate_scene(options, 1);
}

void BM_ScoreMasks(benchmark::State& state) {
  const airm::Scene scene = scene_for(static_cast<int>(state.range(0)));
  const cv::Mat coarse = airm::lowres_mask(scene.mask);
  for (auto _ : state) benchmark::DoNotOptimize(airm::score_masks(scene.mask, coarse));
  state.SetItemsProcessed(state.iterations() * scene.mask.total());
}
BENCHMARK(BM_ScoreMasks)->Arg(1024)->Arg(3840)->Unit(benchmark::kMillisecond);

void BM_PerturbMask(benchmark::State& state) {
  const airm::Scene scene = scene_for(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(airm::perturb_mask(scene.mask, 0.85, 3));
}
BENCHMARK(BM_PerturbMask)->Arg(1024)->Arg(3840)->Unit(benchmark::kMillisecond);

void BM_LowresMask(benchmark::State& state) {
  const airm::Scene scene = scene_for(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(airm::lowres_mask(scene.mask));
}
BENCHMARK(BM_LowresMask)->Arg(1024)->Arg(3840)->Unit(benchmark::kMillisecond);

void BM_GenerateScene(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(scene_for(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_GenerateScene)->Arg(1024)->Arg(3840)->Arg(7680)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
