#include "airm/model/segmenter_config.hpp"


#include "airm/error.hpp"
#include "../json_fields.hpp"

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
  if (encoder != "mit_b0" && encoder != "mit_b1" && encoder != "mit_b2" && encoder != "mobilenet_v2" &&
      encoder != "mobilenet_v2_050") {
    fail("encoder", "mit_b0, mit_b1, mit_b2, mobilenet_v2 or mobilenet_v2_050", "'" + encoder + "'");
  }
  if (decoder != "srm_crm" && decoder != "deeplabv3") fail("decoder", "srm_crm or deeplabv3", "'" + decoder + "'");
  if (decoder == "deeplabv3" && !uses_mobilenet()) {
    fail("decoder", "srm_crm with a MiT encoder (deeplabv3 needs mobilenet_v2)", "deeplabv3 with " + encoder);
  }
  if (num_classes < 1) fail("num_classes", ">= 1", std::to_string(num_classes));
  if (decoder_dim < 1) fail("decoder_dim", ">= 1", std::to_string(decoder_dim));
  if (srm_hidden < 1) fail("srm_hidden", ">= 1", std::to_string(srm_hidden));
  if (context_reduction < 1) fail("context_reduction", ">= 1", std::to_string(context_reduction));
  if (prior_classes != 0) {
    if (prior_classes < 2) fail("prior_classes", "0 or >= 2", std::to_string(prior_classes));
    if (!uses_mobilenet() || decoder != "srm_crm" || num_classes != 1) {
      fail("prior_classes", "0 unless encoder mobilenet_v2(_050), decoder srm_crm and num_classes 1",
           std::to_string(prior_classes) + " with " + encoder + ", " + decoder + ", num_classes " +
               std::to_string(num_classes));
    }
  }
  if (!(drop_path >= 0 && drop_path < 1)) fail("drop_path", "in [0, 1)", std::to_string(drop_path));
  if (long_side < 32) fail("long_side", ">= 32", std::to_string(long_side));
}

nlohmann::json SegmenterConfig::to_json() const {
  return {{"name", name},
          {"encoder", encoder},
          {"decoder", decoder},
          {"num_classes", num_classes},
          {"decoder_dim", decoder_dim},
          {"srm", srm},
          {"srm_hidden", srm_hidden},
          {"contextual", contextual},
          {"context_reduction", context_reduction},
          {"prior_classes", prior_classes},
          {"drop_path", drop_path},
          {"long_side", long_side}};
}

SegmenterConfig SegmenterConfig::from_json(const nlohmann::json& json, const std::string& source) {
  SegmenterConfig config;
  json_fields::require_known_keys(json, config.to_json(), "segmenter config", source);
  json_fields::read(json, "name", config.name, source);
  json_fields::read(json, "encoder", config.encoder, source);
  json_fields::read(json, "decoder", config.decoder, source);
  json_fields::read(json, "num_classes", config.num_classes, source);
  json_fields::read(json, "decoder_dim", config.decoder_dim, source);
  json_fields::read(json, "srm", config.srm, source);
  json_fields::read(json, "srm_hidden", config.srm_hidden, source);
  json_fields::read(json, "contextual", config.contextual, source);
  json_fields::read(json, "context_reduction", config.context_reduction, source);
  json_fields::read(json, "prior_classes", config.prior_classes, source);
  json_fields::read(json, "drop_path", config.drop_path, source);
  json_fields::read(json, "long_side", config.long_side, source);
  config.validate(source);
  return config;
}

SegmenterConfig SegmenterConfig::load(const std::filesystem::path& path) {
  return from_json(json_fields::read_file(path), path.string());
}

}  // namespace airm
