#include "airm/model/config.hpp"

#include <set>

#include "airm/error.hpp"
#include "../json_fields.hpp"

namespace airm {

void ModelConfig::validate(const std::string& source) const {
  static const std::set<std::string> kEncoders{"mit_b0", "mit_b1", "mit_b2", "resnet50", "mobilenet_v2"};
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error(source, field + ": expected " + expected + ", got " + got);
  };
  if (!kEncoders.count(encoder)) fail("encoder", "mit_b0, mit_b1, mit_b2, resnet50 or mobilenet_v2", "'" + encoder + "'");
  if (mapping != "airmf" && mapping != "sirmf") fail("mapping", "airmf or sirmf", "'" + mapping + "'");
  if (in_channels < 1) fail("in_channels", ">= 1", std::to_string(in_channels));
  if (affinity_radius < 1) fail("affinity_radius", ">= 1", std::to_string(affinity_radius));
  if (affinity_hidden < 0) fail("affinity_hidden", ">= 0", std::to_string(affinity_hidden));
  if (feature_dim < 1) fail("feature_dim", ">= 1", std::to_string(feature_dim));
  if (stem_channels < 1) fail("stem_channels", ">= 1", std::to_string(stem_channels));
  if (hidden.empty()) fail("hidden", "at least one layer width", "none");
  for (int64_t width : hidden) {
    if (width < 1) fail("hidden", "widths >= 1", std::to_string(width));
  }
  if (rank < 1) fail("rank", ">= 1", std::to_string(rank));
  if (hyper_conv_layers < 0) fail("hyper_conv_layers", ">= 0", std::to_string(hyper_conv_layers));
  if (hyper_channels < 1) fail("hyper_channels", ">= 1", std::to_string(hyper_channels));
  if (!(drop_path >= 0 && drop_path < 1)) fail("drop_path", "in [0, 1)", std::to_string(drop_path));
}

nlohmann::json ModelConfig::to_json() const {
  return {{"name", name},
          {"encoder", encoder},
          {"in_channels", in_channels},
          {"affinity", affinity},
          {"affinity_radius", affinity_radius},
          {"affinity_hidden", affinity_hidden},
          {"mapping", mapping},
          {"feature_dim", feature_dim},
          {"stem_channels", stem_channels},
          {"hidden", hidden},
          {"local_ensemble", local_ensemble},
          {"unfold", unfold},
          {"guide", guide},
          {"residual", residual},
          {"rank", rank},
          {"hyper_conv_layers", hyper_conv_layers},
          {"hyper_channels", hyper_channels},
          {"drop_path", drop_path}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& json, const std::string& source) {
  ModelConfig config;
  json_fields::require_known_keys(json, config.to_json(), "model config", source);
  json_fields::read(json, "name", config.name, source);
  json_fields::read(json, "encoder", config.encoder, source);
  json_fields::read(json, "in_channels", config.in_channels, source);
  json_fields::read(json, "affinity", config.affinity, source);
  json_fields::read(json, "affinity_radius", config.affinity_radius, source);
  json_fields::read(json, "affinity_hidden", config.affinity_hidden, source);
  json_fields::read(json, "mapping", config.mapping, source);
  json_fields::read(json, "feature_dim", config.feature_dim, source);
  json_fields::read(json, "stem_channels", config.stem_channels, source);
  json_fields::read(json, "hidden", config.hidden, source);
  json_fields::read(json, "local_ensemble", config.local_ensemble, source);
  json_fields::read(json, "unfold", config.unfold, source);
  json_fields::read(json, "guide", config.guide, source);
  json_fields::read(json, "residual", config.residual, source);
  json_fields::read(json, "rank", config.rank, source);
  json_fields::read(json, "hyper_conv_layers", config.hyper_conv_layers, source);
  json_fields::read(json, "hyper_channels", config.hyper_channels, source);
  json_fields::read(json, "drop_path", config.drop_path, source);
  config.validate(source);
  return config;
}

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
  return from_json(json_fields::read_file(path), path.string());
}

}  // namespace airm
