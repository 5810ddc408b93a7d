// Segmenter weights files: the segmenter's tensors together with its config,
// a format version and a kind marker, so loading needs no flags. The file is
// a PyTorch-compatible dict of tensors (Python `torch.load` reads it too):
//   "__airm_kind__"               uint8 [n]  "segmenter" as text
//   "__airm_segmenter_format__"   int64 [1]  kSegmenterWeightsFormatVersion
//   "__airm_segmenter_config__"   uint8 [n]  the SegmenterConfig as JSON text
//   every parameter and buffer by its module key
// The format/config keys differ from a refiner file's (__airm_format__,
// __airm_config__), so the refiner loader refuses a segmenter file as "not an
// airm weights file", and this loader refuses a refiner file by name.
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include "airm/model/segmenter.hpp"
#include "airm/model/segmenter_config.hpp"
#include "airm/model/weights.hpp"

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
// it with ->to(device)). Throws airm::Error naming the file on any mismatch.
SegmenterNet load_segmenter_weights(const std::filesystem::path& path);

// Loads a segmenter weights file into an existing network of the same
// config (else airm::Error naming the file and both configs).
void load_segmenter_weights_into(SegmenterNet& net, const std::filesystem::path& path);

// Loads an (official SegFormer) MiT checkpoint into the segmenter's backbone
// by name (load_mit_state_dict: "head.*" and "__*" keys ignored).
void load_segmenter_backbone(SegmenterNet& net, const std::filesystem::path& path);

}  // namespace airm
