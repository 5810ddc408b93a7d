#include "airm/train/train_config.hpp"

#include <cmath>
#include <sstream>

#include "airm/error.hpp"
#include "../json_fields.hpp"

namespace airm {
namespace {

std::string to_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

void OptimizerOptions::validate(const std::string& source) const {
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error(source, "optimizer." + field + ": expected " + expected + ", got " + got);
  };
  if (!(std::isfinite(lr) && lr > 0)) fail("lr", "> 0", to_text(lr));
  if (!(std::isfinite(weight_decay) && weight_decay >= 0)) fail("weight_decay", ">= 0", to_text(weight_decay));
  double previous = 0;
  for (double m : milestones) {
    if (!(m > previous && m < 1)) fail("milestones", "increasing fractions in (0, 1)", to_text(m));
    previous = m;
  }
  if (!(gamma > 0 && gamma <= 1)) fail("gamma", "in (0, 1]", to_text(gamma));
  if (!(std::isfinite(grad_clip) && grad_clip >= 0)) fail("grad_clip", ">= 0 (0: off)", to_text(grad_clip));
}

nlohmann::json OptimizerOptions::to_json() const {
  return {{"lr", lr},
          {"weight_decay", weight_decay},
          {"milestones", milestones},
          {"gamma", gamma},
          {"grad_clip", grad_clip}};
}

OptimizerOptions OptimizerOptions::from_json(const nlohmann::json& json, const std::string& source) {
  OptimizerOptions options;
  json_fields::require_known_keys(json, options.to_json(), "optimizer", source);
  json_fields::read(json, "lr", options.lr, source);
  json_fields::read(json, "weight_decay", options.weight_decay, source);
  json_fields::read(json, "milestones", options.milestones, source);
  json_fields::read(json, "gamma", options.gamma, source);
  json_fields::read(json, "grad_clip", options.grad_clip, source);
  options.validate(source);
  return options;
}

std::vector<int64_t> TrainSchedule::milestone_iterations() const {
  std::vector<int64_t> out;
  for (double m : optimizer.milestones) out.push_back(std::llround(m * static_cast<double>(iterations)));
  return out;
}

double TrainSchedule::lr_at(int64_t completed) const {
  double lr = optimizer.lr;
  for (int64_t m : milestone_iterations()) {
    if (completed >= m) lr *= optimizer.gamma;
  }
  return lr;
}

void TrainSchedule::validate_schedule(const std::string& source) const {
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error(source, field + ": expected " + expected + ", got " + got);
  };
  data.validate(source);
  optimizer.validate(source);
  if (iterations < 1) fail("iterations", ">= 1", std::to_string(iterations));
  if (batch < 1) fail("batch", ">= 1", std::to_string(batch));
  if (checkpoint_every < 1) fail("checkpoint_every", ">= 1", std::to_string(checkpoint_every));
  if (validate_every < 0) fail("validate_every", ">= 0 (0: only at the end)", std::to_string(validate_every));
  if (val_limit < 0) fail("val_limit", ">= 0 (0: all)", std::to_string(val_limit));
  if (log_every < 1) fail("log_every", ">= 1", std::to_string(log_every));
}

void TrainSchedule::schedule_to_json(nlohmann::json& json) const {
  json["data"] = data.to_json();
  json["optimizer"] = optimizer.to_json();
  json["iterations"] = iterations;
  json["batch"] = batch;
  json["seed"] = seed;
  json["checkpoint_every"] = checkpoint_every;
  json["validate_every"] = validate_every;
  json["val_limit"] = val_limit;
  json["log_every"] = log_every;
  json["bf16"] = bf16;
}

void TrainSchedule::read_schedule(const nlohmann::json& json, const std::string& source,
                                  const std::filesystem::path& base_dir) {
  if (auto it = json.find("data"); it != json.end()) {
    data = DataOptions::from_json(*it, source);
    data.coarse_dir = json_fields::resolve_path(data.coarse_dir, base_dir);
  }
  if (auto it = json.find("optimizer"); it != json.end()) optimizer = OptimizerOptions::from_json(*it, source);
  json_fields::read(json, "iterations", iterations, source);
  json_fields::read(json, "batch", batch, source);
  json_fields::read(json, "seed", seed, source);
  json_fields::read(json, "checkpoint_every", checkpoint_every, source);
  json_fields::read(json, "validate_every", validate_every, source);
  json_fields::read(json, "val_limit", val_limit, source);
  json_fields::read(json, "log_every", log_every, source);
  json_fields::read(json, "bf16", bf16, source);
}

void TrainConfig::validate(const std::string& source) const {
  model.validate(source);
  loss.validate(source);
  validate_schedule(source);
  if (!encoder_weights.empty() && !model.uses_mit() && !model.uses_mobilenet()) {
    throw Error(source, "encoder_weights: expected none for encoder " + model.encoder +
                            " (MiT state dicts and pretrained MobileNetV2 files only), got " + encoder_weights);
  }
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json json = {{"model", model.to_json()},
                         {"encoder_weights", encoder_weights},
                         {"init_weights", init_weights},
                         {"loss", loss.to_json()}};
  schedule_to_json(json);
  return json;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& json, const std::string& source,
                                   const std::filesystem::path& base_dir) {
  TrainConfig config;
  json_fields::require_known_keys(json, config.to_json(), "training config", source);

  std::string model_source;
  const nlohmann::json model = json_fields::object_or_file(json, "model", source, base_dir, config.model_file, model_source);
  config.model = ModelConfig::from_json(model, model_source);
  json_fields::read_path(json, "encoder_weights", config.encoder_weights, source, base_dir);
  json_fields::read_path(json, "init_weights", config.init_weights, source, base_dir);
  if (auto it = json.find("loss"); it != json.end()) config.loss = LossWeights::from_json(*it, source);
  config.read_schedule(json, source, base_dir);
  config.validate(source);
  return config;
}

TrainConfig TrainConfig::load(const std::filesystem::path& path) {
  return from_json(json_fields::read_file(path), path.string(), path.parent_path());
}

}  // namespace airm
