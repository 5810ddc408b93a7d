// JSON configs: the refiner's and the segmenter's model configs, and both training configs, from files.
#include <torch/torch.h>

#include "airm/model/config.hpp"
#include "airm/model/segmenter_config.hpp"
#include "airm/train/segmenter_train_config.hpp"
#include "airm/train/train_config.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = airm::fuzz::as_file(data, size, ".json");
  airm::fuzz::refused_or_read([&] { airm::ModelConfig::load(path).validate(); });
  airm::fuzz::refused_or_read([&] { airm::SegmenterConfig::load(path).validate(); });
  airm::fuzz::refused_or_read([&] { airm::TrainConfig::load(path).validate(path.string()); });
  airm::fuzz::refused_or_read([&] { airm::SegmenterTrainConfig::load(path).validate(path.string()); });
  return 0;
}
