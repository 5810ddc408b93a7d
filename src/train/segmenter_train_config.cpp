#include "airm/train/segmenter_train_config.hpp"

#include <cmath>

#include "airm/error.hpp"
#include "../json_fields.hpp"

namespace airm {

void SegmentLossWeights::validate(const std::string& source) const {
  for (const auto& [name, value] : {std::pair<const char*, double>{"cross_entropy", cross_entropy}, {"dice", dice}}) {
    if (!(std::isfinite(value) && value >= 0)) {
      throw Error(source, std::string("loss.") + name + ": expected >= 0, got " + std::to_string(value));
    }
  }
  if (cross_entropy + dice <= 0) throw Error(source, "loss: expected a positive weight, got all zero");
}

nlohmann::json SegmentLossWeights::to_json() const { return {{"cross_entropy", cross_entropy}, {"dice", dice}}; }

SegmentLossWeights SegmentLossWeights::from_json(const nlohmann::json& json, const std::string& source) {
  SegmentLossWeights weights;
  json_fields::require_known_keys(json, weights.to_json(), "segmenter loss", source);
  json_fields::read(json, "cross_entropy", weights.cross_entropy, source, "loss.");
  json_fields::read(json, "dice", weights.dice, source, "loss.");
  weights.validate(source);
  return weights;
}

// A segmenter sees whole objects: larger crops, every crop placed uniformly,
// and none of the refiner's costly coarse masks (the cheapest degradation is
// still made by the shared pipeline; the segmenter does not read it).
SegmenterTrainConfig::SegmenterTrainConfig() {
  data.crop = 256;
  data.perturb_share = 0.0;
  data.query_mode = "boundary";
  data.queries = 1;
  iterations = 2000;
  batch = 8;
  checkpoint_every = 100;
  validate_every = 500;
  val_limit = 100;
  optimizer.lr = 2e-4;
}

void SegmenterTrainConfig::validate(const std::string& source) const {
  model.validate(source);
  if (model.num_classes != 1) {
    throw Error(source, "model.num_classes: expected 1 for training (the training masks are binary), got " +
                            std::to_string(model.num_classes));
  }
  loss.validate(source);
  validate_schedule(source);
}

nlohmann::json SegmenterTrainConfig::to_json() const {
  nlohmann::json json = {{"task", "segment"},
                         {"model", model.to_json()},
                         {"encoder_weights", encoder_weights},
                         {"init_weights", init_weights},
                         {"loss", loss.to_json()}};
  schedule_to_json(json);
  return json;
}

SegmenterTrainConfig SegmenterTrainConfig::from_json(const nlohmann::json& json, const std::string& source,
                                                     const std::filesystem::path& base_dir) {
  SegmenterTrainConfig config;
  json_fields::require_known_keys(json, config.to_json(), "segmenter training config", source);
  if (training_task_of(json) != "segment") {
    throw Error(source, "task: expected \"segment\", got " + json.at("task").dump());
  }
  std::string model_source;
  const nlohmann::json model = json_fields::object_or_file(json, "model", source, base_dir, config.model_file, model_source);
  config.model = SegmenterConfig::from_json(model, model_source);
  json_fields::read_path(json, "encoder_weights", config.encoder_weights, source, base_dir);
  json_fields::read_path(json, "init_weights", config.init_weights, source, base_dir);
  if (auto it = json.find("loss"); it != json.end()) config.loss = SegmentLossWeights::from_json(*it, source);
  config.read_schedule(json, source, base_dir);
  config.validate(source);
  return config;
}

SegmenterTrainConfig SegmenterTrainConfig::load(const std::filesystem::path& path) {
  return from_json(json_fields::read_file(path), path.string(), path.parent_path());
}

std::string training_task_of(const nlohmann::json& config) {
  if (!config.is_object()) return "refine";
  auto it = config.find("task");
  if (it == config.end()) return "refine";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string read_training_task(const std::filesystem::path& config_file) {
  return training_task_of(json_fields::read_file(config_file));
}

}  // namespace airm
