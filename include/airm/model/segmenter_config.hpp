// Hyper-parameters of the coarse segmenter (segmenter.hpp), read from and
// written to JSON (configs/segmenter_*.json, and inside every segmenter
// weights file). Unknown keys are errors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "airm/model/mit.hpp"

namespace airm {

struct SegmenterConfig {
  std::string name = "segmenter_mit_b0";
  // Backbone: "mit_b0" | "mit_b1" | "mit_b2" | "mobilenet_v2" |
  // "mobilenet_v2_050" (depth 0.5); RGB input, 3 channels. MobileNetV2 runs
  // at output stride 16 with DeepLabV3's ASPP (aspp.hpp) on its last map.
  std::string encoder = "mit_b0";
  // "srm_crm": the decoder described in segmenter.hpp; "deeplabv3" (MobileNetV2
  // only): DeepLabV3's logits straight from the ASPP, what the imported
  // PASCAL files are (the options below are then unused).
  std::string decoder = "srm_crm";
  // 1: one foreground logit (sigmoid); K > 1: K logits (softmax, class 0 =
  // background).
  int64_t num_classes = 1;
  // Width of every decoder map (lateral projections, fused maps).
  int64_t decoder_dim = 64;
  // Semantic Refinement Module at each upsampling step (else plain bilinear
  // upsampling before the fusion).
  bool srm = true;
  int64_t srm_hidden = 32;  // width of the SRM offset head
  // Contextual Refinement Module before the classifier (else the classifier
  // reads the finest fused map).
  bool contextual = true;
  int64_t context_reduction = 4;  // channel-attention MLP: 4*decoder_dim -> /reduction
  // Foreground prior (MobileNetV2 + srm_crm + num_classes 1 only): 0 (off),
  // or the class count K >= 2 of a DeepLabV3 classifier (conv1x1 ASPP -> K,
  // class 0 = background) kept beside the decoder. Its foreground logit
  // logsumexp(l_1..l_K-1) - l_0 (log p(any class) / p(background)) is added
  // to the decoder's, whose classifier then starts at zero: a network loaded
  // from an imported DeepLabV3 starts as that network run zero-shot.
  int64_t prior_classes = 0;
  // Stochastic depth of the MiT blocks (training only).
  double drop_path = 0.1;
  // The long side (pixels) an image is resized to before it is segmented: the
  // scale the network was trained at (training crops are taken at the native
  // scale of photos about this size). segment() and `airm segment` use it.
  int64_t long_side = 512;

  // The backbone's options (drop path included).
  MitOptions mit_options() const;
  bool uses_mobilenet() const { return encoder.rfind("mobilenet_v2", 0) == 0; }
  double mobilenet_width() const { return encoder == "mobilenet_v2_050" ? 0.5 : 1.0; }

  // Throws airm::Error naming the field (and `source`, if given).
  void validate(const std::string& source = "") const;

  nlohmann::json to_json() const;
  // Unknown keys are errors (a typo must not silently fall back to a default).
  static SegmenterConfig from_json(const nlohmann::json& json, const std::string& source = "");
  static SegmenterConfig load(const std::filesystem::path& path);
};

}  // namespace airm
