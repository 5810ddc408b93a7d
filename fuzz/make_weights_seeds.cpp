// Small weights files for fuzz_weights' seed corpus (a real model's file is megabytes: too slow to mutate):
// refiner and segmenter files whose config is real but whose tensors are a few small ones, fp32 and fp16,
// and a bare state dict. They exercise what an attacker controls first: the zip archive, the pickle, the
// kind/format/config entries and the tensor checks.
//   fuzz_make_weights_seeds OUT_DIR SOURCE_DIR
#include <cstdio>
#include <filesystem>
#include <string>

#include <torch/torch.h>

#include "airm/model/config.hpp"
#include "airm/model/segmenter_config.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/model/weights.hpp"
#include "airm/model/weights_file.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR SOURCE_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path out = argv[1], src = argv[2];
  std::filesystem::create_directories(out);
  torch::manual_seed(0);
  airm::TensorDict small;
  small["encoder.patch_embed1.proj.weight"] = torch::randn({4, 4, 3, 3});
  small["fusion.bn.running_mean"] = torch::zeros({4});
  small["hyper.steps"] = torch::tensor({3}, torch::kInt64);
  const auto refiner = airm::ModelConfig::load(src / "configs" / "airm_mnv2_residual.json").to_json();
  const auto segmenter = airm::SegmenterConfig::load(src / "configs" / "segmenter" / "segmenter_mnv2.json").to_json();
  airm::write_weights_file(out / "refiner_small.pt", small, "refiner", airm::kWeightsFormatVersion, refiner);
  airm::SaveOptions half;
  half.half = true;
  airm::write_weights_file(out / "refiner_small_fp16.pt", small, "refiner", airm::kWeightsFormatVersion, refiner, half);
  airm::write_weights_file(out / "segmenter_small.pt", small, "segmenter", airm::kSegmenterWeightsFormatVersion,
                           segmenter);
  airm::write_tensor_dict(small, out / "bare_state_dict.pt");
  return 0;
}
