// Weights files: a network's tensors together with its config and a format
// version, so loading needs no flags. The file is a PyTorch-compatible dict
// of tensors (Python `torch.load` reads it too):
//   "__airm_format__"  int64 [1]  format version (kWeightsFormatVersion)
//   "__airm_config__"  uint8 [n]  the ModelConfig as JSON text
//   every parameter and buffer by its module key
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include "airm/model/airm_net.hpp"
#include "airm/model/config.hpp"

namespace airm {

constexpr int64_t kWeightsFormatVersion = 1;

struct SaveOptions {
  bool half = false;  // store floating tensors as fp16 (loaded back as fp32)
};

// Writes atomically. Tensors are taken to the CPU.
void save_weights(const std::filesystem::path& path, AirmNet& net, const SaveOptions& options = SaveOptions());

// Reads the config stored in a weights file. Throws airm::Error naming the
// file if it is missing, truncated, not an airm weights file, or of a newer
// format version.
ModelConfig read_weights_config(const std::filesystem::path& path);

// Builds the network the file describes and loads its tensors (on CPU; move
// it with ->to(device)). Throws airm::Error naming the file on any mismatch.
AirmNet load_weights(const std::filesystem::path& path);

// Loads a weights file into an existing network, which must have the same
// architecture (else airm::Error listing what differs).
void load_weights_into(AirmNet& net, const std::filesystem::path& path);

}  // namespace airm
