// Resumable checkpoints of a training run: a folder holding the network (a
// weights file, usable as such), the optimiser state and the run's state as
// JSON, replaced as a whole so that a crash never leaves a mixed set.
#pragma once

#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace airm::train_detail {

// Files inside a checkpoint folder.
constexpr const char* kWeightsFile = "weights.pt";
constexpr const char* kOptimizerFile = "optimizer.pt";
constexpr const char* kStateFile = "state.json";

// How the trained network is written to and read from a weights file of its
// kind (refiner or segmenter weights, with their config).
struct CheckpointWeights {
  std::function<void(const std::filesystem::path&)> save;
  std::function<void(const std::filesystem::path&)> load;
};

// Writes `dir` (e.g. OUT/checkpoint): the set is written to a temporary
// folder beside it, then the old folder is moved to DIR.old, the new one to
// DIR, and DIR.old removed. An earlier replacement interrupted between the
// two renames is completed first.
void write_checkpoint(const std::filesystem::path& dir, const CheckpointWeights& weights,
                      torch::optim::Optimizer& optimizer, const nlohmann::json& state);

// The complete checkpoint folder at `dir` (or DIR.old, if a replacement was
// interrupted); empty if there is none.
std::filesystem::path find_checkpoint(const std::filesystem::path& dir);

// Loads a checkpoint folder into the network (same architecture, through
// weights.load) and `optimizer` (built over its parameters); returns its state. Throws airm::Error
// naming the file that is missing or does not fit.
nlohmann::json read_checkpoint(const std::filesystem::path& dir, const CheckpointWeights& weights,
                               torch::optim::Optimizer& optimizer, const torch::Device& device);

// Makes `target` a copy of `source` (a hard link where possible), atomically.
void publish_file(const std::filesystem::path& source, const std::filesystem::path& target);

}  // namespace airm::train_detail
