// Weights files (zip archives of LibTorch pickles with their config): the refiner's and the segmenter's
// loaders, which screen the archive before LibTorch's reader sees it.
#include <torch/torch.h>

#include "airm/model/segmenter_weights.hpp"
#include "airm/model/weights.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = airm::fuzz::as_file(data, size, ".pt");
  airm::fuzz::refused_or_read([&] { (void)airm::load_weights(path); });
  airm::fuzz::refused_or_read([&] { (void)airm::load_segmenter_weights(path); });
  return 0;
}
