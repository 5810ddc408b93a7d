// The container shared by every airm weights file (refiner, segmenter): a
// PyTorch-compatible dict of tensors (Python `torch.load` reads it) holding
//   "__airm_kind__"    uint8 [n]  "refiner" | "segmenter" (absent in early refiner files: refiner)
//   "__airm_format__"  int64 [1]  format version of that kind
//   "__airm_config__"  uint8 [n]  the network's config as JSON text
// and every parameter and buffer by its module key.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "airm/model/state_dict.hpp"

namespace airm {

struct SaveOptions {
  bool half = false;  // store floating tensors as fp16 (loaded back as the module's dtype)
};

struct WeightsFileContents {
  std::string kind;
  int64_t version = 0;
  nlohmann::json config;
  TensorDict tensors;  // parameters and buffers only
};

// Writes atomically; tensors are taken to the CPU.
void write_weights_file(const std::filesystem::path& path, const torch::nn::Module& module, const std::string& kind,
                        int64_t version, const nlohmann::json& config, const SaveOptions& options = SaveOptions());

// The same, from parameters and buffers already gathered by key.
void write_weights_file(const std::filesystem::path& path, TensorDict tensors, const std::string& kind,
                        int64_t version, const nlohmann::json& config, const SaveOptions& options = SaveOptions());

// The kind of an airm weights file ("refiner" or "segmenter"). Throws
// airm::Error naming the file if it is not an airm weights file.
std::string read_weights_kind(const std::filesystem::path& path);

// Reads a file of `kind` with a version in 1..max_version. Throws
// airm::Error naming the file if it is missing, truncated, a bare state
// dict, a weights file of another kind, or of a newer version.
WeightsFileContents read_weights_file(const std::filesystem::path& path, const std::string& kind,
                                      int64_t max_version);

// load_state_dict, with floating tensors first cast to the module's dtypes
// (fp16 storage).
void load_weights_tensors(torch::nn::Module& module, TensorDict tensors, const std::string& source);

}  // namespace airm
