#include "airm/model/segmenter_config.hpp"

#include <fstream>

#include "airm/error.hpp"

namespace airm {

MitOptions SegmenterConfig::mit_options() const {
  MitOptions options = encoder == "mit_b0"   ? MitOptions::b0(3)
                       : encoder == "mit_b1" ? MitOptions::b1(3)
                                             : MitOptions::b2(3);
  options.drop_path_rate(drop_path);
  return options;
}

void SegmenterConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error(source, field + ": expected " + expected + ", got " + got);
  };
  if (encoder != "mit_b0" && encoder != "mit_b1" && encoder != "mit_b2") {
    fail("encoder", "mit_b0, mit_b1 or mit_b2", "'" + encoder + "'");
  }
  if (num_classes < 1) fail("num_classes", ">= 1", std::to_string(num_classes));
  if (decoder_dim < 1) fail("decoder_dim", ">= 1", std::to_string(decoder_dim));
  if (srm_hidden < 1) fail("srm_hidden", ">= 1", std::to_string(srm_hidden));
  if (context_reduction < 1) fail("context_reduction", ">= 1", std::to_string(context_reduction));
  if (!(drop_path >= 0 && drop_path < 1)) fail("drop_path", "in [0, 1)", std::to_string(drop_path));
}

nlohmann::json SegmenterConfig::to_json() const {
  return {{"name", name},
          {"encoder", encoder},
          {"num_classes", num_classes},
          {"decoder_dim", decoder_dim},
          {"srm", srm},
          {"srm_hidden", srm_hidden},
          {"contextual", contextual},
          {"context_reduction", context_reduction},
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

SegmenterConfig SegmenterConfig::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw Error(source, "expected a JSON object, got " + std::string(json.type_name()));
  SegmenterConfig config;
  const nlohmann::json known = config.to_json();
  for (const auto& item : json.items()) {
    if (!known.contains(item.key())) throw Error(source, "unknown segmenter config key '" + item.key() + "'");
  }
  read_field(json, "name", config.name, source);
  read_field(json, "encoder", config.encoder, source);
  read_field(json, "num_classes", config.num_classes, source);
  read_field(json, "decoder_dim", config.decoder_dim, source);
  read_field(json, "srm", config.srm, source);
  read_field(json, "srm_hidden", config.srm_hidden, source);
  read_field(json, "contextual", config.contextual, source);
  read_field(json, "context_reduction", config.context_reduction, source);
  read_field(json, "drop_path", config.drop_path, source);
  config.validate(source);
  return config;
}

SegmenterConfig SegmenterConfig::load(const std::filesystem::path& path) {
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
