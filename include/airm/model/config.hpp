// Hyper-parameters of an AIRM refiner network, read from and written to
// JSON (configs/*.json, and inside every weights file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace airm {

struct ModelConfig {
  std::string name = "airm-mit-b1";
  // Image encoder: "mit_b0" | "mit_b1" | "mit_b2" | "resnet50" (CRM-style,
  // truncated after layer3, dilated to stride 8) | "mobilenet_v2" (width 1,
  // output stride 16, the ImageNet files' network: mobilenet_v2.hpp).
  std::string encoder = "mit_b1";
  int64_t in_channels = 4;  // RGB + coarse mask
  // Affinity learning (AEE): attention-based head for MiT, L1 feature
  // affinity for ResNet and MobileNetV2; used only by the training loss.
  bool affinity = true;
  int64_t affinity_radius = 14;  // in cells of the affinity grid (see docs/DESIGN.md)
  int64_t affinity_hidden = 0;   // 0: one Linear over blocks x heads
  // Mapping function: "airmf" (per-image weights from the hypernetwork) or
  // "sirmf" (shared weights).
  std::string mapping = "airmf";
  // Fused feature map at stride 2 that the implicit function reads.
  int64_t feature_dim = 64;
  int64_t stem_channels = 32;
  // Implicit function.
  std::vector<int64_t> hidden{32, 32, 32, 32};
  bool local_ensemble = true;
  bool unfold = false;
  bool guide = true;  // the input (RGB + coarse) sampled at each query joins its features
  // The implicit function predicts a correction to a prior logit
  // s * (2m - 1), m the coarse mask sampled at the query, s learnt (starts
  // at 3): an untrained network returns the coarse mask (see docs/DESIGN.md).
  bool residual = false;
  // Hypernetwork (AIRMF only).
  int64_t rank = 20;
  int64_t hyper_conv_layers = 3;
  int64_t hyper_channels = 16;
  // Stochastic depth of the MiT blocks (training only).
  double drop_path = 0.1;

  bool uses_mit() const { return encoder.rfind("mit_", 0) == 0; }
  bool uses_mobilenet() const { return encoder == "mobilenet_v2"; }
  bool adaptive() const { return mapping == "airmf"; }

  // Throws airm::Error naming the field (and `source`, if given).
  void validate(const std::string& source = "") const;

  nlohmann::json to_json() const;
  // Unknown keys are errors (a typo must not silently fall back to a default).
  static ModelConfig from_json(const nlohmann::json& json, const std::string& source = "");
  static ModelConfig load(const std::filesystem::path& path);
};

}  // namespace airm
