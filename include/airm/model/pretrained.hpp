// Imported pretrained networks. An ImageNet MobileNetV2 classifier becomes
// an airm weights file of kind "pretrained" (weights_file.hpp):
//   config {"arch": "mobilenet_v2", "width": depth multiplier,
//           "num_classes": 1001, "source": the TFLite file's name}
// with MobileNetV2Impl's tensor names; a DeepLabV3-MobileNetV2 file becomes
// a segmenter weights file (decoder "deeplabv3"), which `airm segment` runs
// as it is. Both are conversions of ../shared data: made on demand
// (scripts/import_pretrained.sh), never committed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "airm/model/mobilenet_v2.hpp"

namespace airm {

constexpr int64_t kPretrainedFormatVersion = 1;

struct PretrainedInfo {
  std::string arch;  // "mobilenet_v2" (an ImageNet classifier) or "deeplabv3_mnv2" (a segmenter)
  double width = 1.0;
  int64_t num_classes = 0;
  std::string source;
};

// Reads a TFLite file, imports it as `arch` (tflite_import.hpp) and writes
// the weights file atomically (nothing is written on any error). Throws
// airm::Error naming the file for an unknown arch or anything the importer
// rejects.
PretrainedInfo import_tflite_file(const std::filesystem::path& tflite, const std::string& arch,
                                  const std::filesystem::path& out);

// The stored description of a "pretrained" file. Throws airm::Error naming
// the file if it is not one.
PretrainedInfo read_pretrained_info(const std::filesystem::path& path);

// The classifier a "pretrained" file holds (on the CPU).
MobileNetV2 load_pretrained_classifier(const std::filesystem::path& path);

// Starts an encoder from a "pretrained" classifier file or from a segmenter
// weights file with a MobileNetV2 backbone (an imported DeepLabV3): the stem
// and blocks (a classifier's head, an ASPP are not used). The encoder may
// have more input channels than the file's 3 (the refiner's mask): their
// stem weights are set to zero, so its features equal the RGB network's.
// Throws airm::Error naming the file if the widths differ.
void load_pretrained_encoder(MobileNetV2& encoder, const std::filesystem::path& path);

}  // namespace airm
