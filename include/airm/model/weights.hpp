// Refiner weights files: the AirmNet's tensors with its ModelConfig and a
// format version (kind "refiner" of weights_file.hpp), so loading needs no flags.
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include "airm/model/airm_net.hpp"
#include "airm/model/config.hpp"
#include "airm/model/weights_file.hpp"

namespace airm {

constexpr int64_t kWeightsFormatVersion = 1;

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
