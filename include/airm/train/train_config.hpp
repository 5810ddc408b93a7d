// What a training run learns and how: the network, the data pipeline, the
// loss weights, the optimiser and its schedule (configs/train/*.json).
// Run-time choices that do not change the result (threads, workers, output
// folder, resuming) are command-line flags, not part of this.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "airm/model/config.hpp"
#include "airm/train/data_loader.hpp"
#include "airm/train/losses.hpp"

namespace airm {

// Adam (CascadePSP's recipe, which AIRM follows): lr 2.25e-4, weight decay
// 1e-4 (L2, added to the gradient), lr x gamma at each milestone.
struct OptimizerOptions {
  double lr = 2.25e-4;
  double weight_decay = 1e-4;
  // Milestones as fractions of the run's iterations: 22.5k and 37.5k of 45k.
  std::vector<double> milestones{0.5, 5.0 / 6.0};
  double gamma = 0.1;
  // Gradients are rescaled so their global L2 norm is at most this (0: off).
  double grad_clip = 0.0;

  void validate(const std::string& source = "") const;
  nlohmann::json to_json() const;
  static OptimizerOptions from_json(const nlohmann::json& json, const std::string& source = "");
};

// What every training run shares, whatever network it trains: the data
// pipeline, the optimiser and its schedule, and how often the run is
// checkpointed, validated and logged.
struct TrainSchedule {
  DataOptions data;
  OptimizerOptions optimizer;
  int64_t iterations = 45000;
  int batch = 12;
  std::uint64_t seed = 0;  // model init, data order and augmentation, dropout
  int64_t checkpoint_every = 1000;
  int64_t validate_every = 2500;  // 0: only at the end
  int val_limit = 0;              // validation images (evenly spaced over the split), 0: all
  int64_t log_every = 1;          // log.csv rows: every this many iterations
  bool bf16 = false;              // bf16 autocast for the forward pass

  // The iterations at which the lr is multiplied by gamma (rounded).
  std::vector<int64_t> milestone_iterations() const;
  // The lr of the step that follows `completed` steps.
  double lr_at(int64_t completed) const;

  // Throws airm::Error naming the field (and `source`).
  void validate_schedule(const std::string& source = "") const;
  // Adds the schedule's keys to `json`.
  void schedule_to_json(nlohmann::json& json) const;
  // Reads the schedule's keys present in `json` (unknown keys are the caller's
  // check); a relative data.coarse_dir is resolved against `base_dir`.
  void read_schedule(const nlohmann::json& json, const std::string& source,
                     const std::filesystem::path& base_dir = {});
};

// Training the refiner (AirmNet).
struct TrainConfig : TrainSchedule {
  ModelConfig model;
  // Where `model` came from, as written in the file ("" when inline). A
  // relative path is resolved against the training config's folder.
  std::string model_file;
  // Optional encoder starting point ("": random): a SegFormer MiT state dict
  // (MiT encoders), or a pretrained file of `airm model --import-tflite`
  // (mobilenet_v2; the mask channel's stem weights start at zero).
  std::string encoder_weights;
  // Optional weights file (airm refiner, same architecture) to start the
  // whole network from ("": random; encoder_weights then applies on top).
  std::string init_weights;
  LossWeights loss;

  // Throws airm::Error naming the field (and `source`).
  void validate(const std::string& source = "") const;
  // The model always inline, so the result is self-contained.
  nlohmann::json to_json() const;
  // Unknown keys are errors at every level. "model" is an object or a path
  // to a model config (relative to `base_dir`).
  static TrainConfig from_json(const nlohmann::json& json, const std::string& source = "",
                               const std::filesystem::path& base_dir = {});
  static TrainConfig load(const std::filesystem::path& path);
};

}  // namespace airm
