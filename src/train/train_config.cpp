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

std::vector<int64_t> TrainConfig::milestone_iterations() const {
  std::vector<int64_t> out;
  for (double m : optimizer.milestones) out.push_back(std::llround(m * static_cast<double>(iterations)));
  return out;
}

double TrainConfig::lr_at(int64_t completed) const {
  double lr = optimizer.lr;
  for (int64_t m : milestone_iterations()) {
    if (completed >= m) lr *= optimizer.gamma;
  }
  return lr;
}

void TrainConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error(source, field + ": expected " + expected + ", got " + got);
  };
  model.validate(source);
  data.validate(source);
  loss.validate(source);
  optimizer.validate(source);
  if (iterations < 1) fail("iterations", ">= 1", std::to_string(iterations));
  if (batch < 1) fail("batch", ">= 1", std::to_string(batch));
  if (checkpoint_every < 1) fail("checkpoint_every", ">= 1", std::to_string(checkpoint_every));
  if (validate_every < 0) fail("validate_every", ">= 0 (0: only at the end)", std::to_string(validate_every));
  if (val_limit < 0) fail("val_limit", ">= 0 (0: all)", std::to_string(val_limit));
  if (log_every < 1) fail("log_every", ">= 1", std::to_string(log_every));
  if (!encoder_weights.empty() && !model.uses_mit()) {
    fail("encoder_weights", "none for encoder " + model.encoder + " (MiT state dicts only)", encoder_weights);
  }
}

nlohmann::json TrainConfig::to_json() const {
  return {{"model", model.to_json()},
          {"encoder_weights", encoder_weights},
          {"init_weights", init_weights},
          {"data", data.to_json()},
          {"loss", loss.to_json()},
          {"optimizer", optimizer.to_json()},
          {"iterations", iterations},
          {"batch", batch},
          {"seed", seed},
          {"checkpoint_every", checkpoint_every},
          {"validate_every", validate_every},
          {"val_limit", val_limit},
          {"log_every", log_every},
          {"bf16", bf16}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& json, const std::string& source,
                                   const std::filesystem::path& base_dir) {
  TrainConfig config;
  json_fields::require_known_keys(json, config.to_json(), "training config", source);

  auto model = json.find("model");
  if (model == json.end()) throw Error(source, "model: expected a model config object or file, got none");
  if (model->is_string()) {
    config.model_file = model->get<std::string>();
    std::filesystem::path path = config.model_file;
    if (path.is_relative() && !base_dir.empty()) path = base_dir / path;
    config.model = ModelConfig::load(path);
  } else {
    config.model = ModelConfig::from_json(*model, source);
  }
  // Weights files named relative to the config's folder are stored absolute (a run folder's copy of the
  // config must name the same files).
  auto read_path = [&](const char* key, std::string& value) {
    json_fields::read(json, key, value, source);
    if (!value.empty() && std::filesystem::path(value).is_relative() && !base_dir.empty()) {
      value = std::filesystem::absolute(base_dir / value).lexically_normal().string();
    }
  };
  read_path("encoder_weights", config.encoder_weights);
  read_path("init_weights", config.init_weights);
  if (auto it = json.find("data"); it != json.end()) {
    config.data = DataOptions::from_json(*it, source);
  }
  if (auto it = json.find("loss"); it != json.end()) {
    config.loss = LossWeights::from_json(*it, source);
  }
  if (auto it = json.find("optimizer"); it != json.end()) config.optimizer = OptimizerOptions::from_json(*it, source);
  json_fields::read(json, "iterations", config.iterations, source);
  json_fields::read(json, "batch", config.batch, source);
  json_fields::read(json, "seed", config.seed, source);
  json_fields::read(json, "checkpoint_every", config.checkpoint_every, source);
  json_fields::read(json, "validate_every", config.validate_every, source);
  json_fields::read(json, "val_limit", config.val_limit, source);
  json_fields::read(json, "log_every", config.log_every, source);
  json_fields::read(json, "bf16", config.bf16, source);
  config.validate(source);
  return config;
}

TrainConfig TrainConfig::load(const std::filesystem::path& path) {
  return from_json(json_fields::read_file(path), path.string(), path.parent_path());
}

}  // namespace airm
