#include "airm/model/config.hpp"

#include <fstream>
#include <set>

#include "airm/error.hpp"

namespace airm {

void ModelConfig::validate(const std::string& source) const {
  static const std::set<std::string> kEncoders{"mit_b0", "mit_b1", "mit_b2", "resnet50"};
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error(source, field + ": expected " + expected + ", got " + got);
  };
  if (!kEncoders.count(encoder)) fail("encoder", "mit_b0, mit_b1, mit_b2 or resnet50", "'" + encoder + "'");
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
          {"rank", rank},
          {"hyper_conv_layers", hyper_conv_layers},
          {"hyper_channels", hyper_channels},
          {"drop_path", drop_path}};
}

namespace {
template <typename T>
void read_field(const nlohmann::json& json, const char* key, T& value, const std::string& source) {
  auto it = json.find(key);
  if (it == json.end()) return;
  try {
    value = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(source, std::string(key) + ": expected a value of the right type, got " + it->dump());
  }
}
}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw Error(source, "expected a JSON object, got " + std::string(json.type_name()));
  ModelConfig config;
  const nlohmann::json known = config.to_json();
  for (const auto& item : json.items()) {
    if (!known.contains(item.key())) throw Error(source, "unknown model config key '" + item.key() + "'");
  }
  read_field(json, "name", config.name, source);
  read_field(json, "encoder", config.encoder, source);
  read_field(json, "in_channels", config.in_channels, source);
  read_field(json, "affinity", config.affinity, source);
  read_field(json, "affinity_radius", config.affinity_radius, source);
  read_field(json, "affinity_hidden", config.affinity_hidden, source);
  read_field(json, "mapping", config.mapping, source);
  read_field(json, "feature_dim", config.feature_dim, source);
  read_field(json, "stem_channels", config.stem_channels, source);
  read_field(json, "hidden", config.hidden, source);
  read_field(json, "local_ensemble", config.local_ensemble, source);
  read_field(json, "unfold", config.unfold, source);
  read_field(json, "guide", config.guide, source);
  read_field(json, "rank", config.rank, source);
  read_field(json, "hyper_conv_layers", config.hyper_conv_layers, source);
  read_field(json, "hyper_channels", config.hyper_channels, source);
  read_field(json, "drop_path", config.drop_path, source);
  config.validate(source);
  return config;
}

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string(), "cannot be opened");
  nlohmann::json json;
  try {
    in >> json;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string(), std::string("not valid JSON (") + e.what() + ")");
  }
  return from_json(json, path.string());
}

}  // namespace airm
