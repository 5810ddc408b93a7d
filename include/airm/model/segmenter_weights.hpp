// Segmenter weights files: the SegmenterNet's tensors with its config and a
// format version (kind "segmenter" of weights_file.hpp). A refiner weights
// file is refused here, and a segmenter file by the refiner's loader.
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include "airm/model/segmenter.hpp"
#include "airm/model/segmenter_config.hpp"
#include "airm/model/weights_file.hpp"

namespace airm {

constexpr int64_t kSegmenterWeightsFormatVersion = 1;

// Writes atomically. Tensors are taken to the CPU (fp16 with options.half,
// loaded back as fp32).
void save_segmenter_weights(const std::filesystem::path& path, SegmenterNet& net,
                            const SaveOptions& options = SaveOptions());

// Reads the config stored in a segmenter weights file. Throws airm::Error
// naming the file if it is missing, truncated, not a segmenter weights file
// (a refiner weights file included), or of a newer format version.
SegmenterConfig read_segmenter_weights_config(const std::filesystem::path& path);

// Builds the segmenter the file describes and loads its tensors (on CPU; move
// it with ->to(device)), with denormal weights zeroed (denormals.hpp). Throws
// airm::Error naming the file on any mismatch.
SegmenterNet load_segmenter_weights(const std::filesystem::path& path);

// Loads a segmenter weights file into an existing network of the same
// config (else airm::Error naming the file and both configs), bit-exact
// (denormals kept: this is how a training run resumes).
void load_segmenter_weights_into(SegmenterNet& net, const std::filesystem::path& path);

// Starts the segmenter's backbone from pretrained weights: MiT from an
// (official SegFormer) checkpoint by name (load_mit_state_dict: "head.*" and
// "__*" keys ignored); MobileNetV2 from an imported file (pretrained.hpp's
// load_pretrained_encoder), with the ASPP too when the file is an imported
// DeepLabV3, and its classifier as the foreground prior of a network with
// prior_classes > 0 (then the file must be a deeplabv3 segmenter with that
// many classes). The decoder after them starts as initialised.
void load_segmenter_backbone(SegmenterNet& net, const std::filesystem::path& path);

}  // namespace airm
