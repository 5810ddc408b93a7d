// Photos and masks as airm reads them: our file checks (truncation, formats, the pixel guard), then OpenCV.
#include <opencv2/core.hpp>

#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cv::setNumThreads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = airm::fuzz::as_file(data, size, ".img");
  airm::fuzz::refused_or_read([&] { (void)airm::read_image_size(path); });
  airm::fuzz::refused_or_read([&] { (void)airm::read_image(path); });
  airm::fuzz::refused_or_read([&] { (void)airm::read_mask(path, airm::MaskMode::probability); });
  return 0;
}
