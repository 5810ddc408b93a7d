// What a run of `airm train --task segment` learns and how: the coarse
// segmenter (segmenter_config.hpp), its loss weights, and the schedule every
// training run shares (data pipeline, optimiser, checkpoints, validation).
// The data pipeline is the refiner's (data_loader.hpp): the segmenter reads
// the RGB channels of its crops and their ground truth, and ignores the
// coarse masks and queries made for the refiner.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "airm/model/segmenter_config.hpp"
#include "airm/train/train_config.hpp"

namespace airm {

// Per-pixel binary cross-entropy on the logits plus the soft Dice loss
// (1 - 2|p.g| / (|p| + |g|), per image, averaged over the batch).
struct SegmentLossWeights {
  double cross_entropy = 1.0;
  double dice = 1.0;

  void validate(const std::string& source = "") const;
  nlohmann::json to_json() const;
  static SegmentLossWeights from_json(const nlohmann::json& json, const std::string& source = "");
};

struct SegmenterTrainConfig : TrainSchedule {
  SegmenterTrainConfig();  // the schedule's defaults for a segmenter (see the .cpp)

  SegmenterConfig model;
  std::string model_file;       // where `model` came from ("" when inline)
  std::string encoder_weights;  // optional SegFormer MiT state dict for the backbone
  std::string init_weights;     // optional segmenter weights file of the same architecture
  SegmentLossWeights loss;

  void validate(const std::string& source = "") const;
  // Always has "task": "segment", which tells it from a refiner's config.
  nlohmann::json to_json() const;
  static SegmenterTrainConfig from_json(const nlohmann::json& json, const std::string& source = "",
                                        const std::filesystem::path& base_dir = {});
  static SegmenterTrainConfig load(const std::filesystem::path& path);
};

// The task a training config is for: its "task" ("segment"), else "refine".
std::string training_task_of(const nlohmann::json& config);
// The same for a config file; throws airm::Error naming it if it is not JSON.
std::string read_training_task(const std::filesystem::path& config_file);

}  // namespace airm
