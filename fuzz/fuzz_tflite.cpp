// TFLite flatbuffers: our reader (tflite.hpp), then both importers on whatever it accepts.
#include <torch/torch.h>

#include "airm/model/tflite.hpp"
#include "airm/model/tflite_import.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  airm::fuzz::refused_or_read([&] {
    const airm::TfliteModel model = airm::parse_tflite(std::vector<std::uint8_t>(data, data + size), "fuzz.tflite");
    airm::fuzz::refused_or_read([&] { (void)airm::tflite_mobilenet_width(model); });
    airm::fuzz::refused_or_read([&] { (void)airm::import_mobilenet_v2_classifier(model); });
    airm::fuzz::refused_or_read([&] { (void)airm::import_deeplabv3_mnv2(model); });
  });
  return 0;
}
