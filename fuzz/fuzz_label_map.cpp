// Label maps of class ids (palette PNG, 8/16-bit gray, gray stored as colour) as `airm refine --labels` reads them.
#include <opencv2/core.hpp>

#include "airm/refiner.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cv::setNumThreads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = airm::fuzz::as_file(data, size, ".png");
  airm::fuzz::refused_or_read([&] { (void)airm::read_label_map(path); });
  return 0;
}
