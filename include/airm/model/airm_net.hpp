// The AIRM refiner network (ECCV 2024, Sec. 4): an encoder over RGB + coarse
// mask (MiT with its affinity head — the Affinity Empowered Encoder — or the
// CRM-style ResNet-50 baseline, or the ImageNet MobileNetV2), a stride-2 feature fusion, and the implicit
// function, with its weights predicted per image by the hypernetwork
// (AIRMF) or shared (SIRMF). Every row of the paper's Tables 2-4 is a
// ModelConfig.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "airm/model/affinity.hpp"
#include "airm/model/config.hpp"
#include "airm/model/feature_fusion.hpp"
#include "airm/model/hypernetwork.hpp"
#include "airm/model/implicit_function.hpp"
#include "airm/model/mit.hpp"
#include "airm/model/mobilenet_v2.hpp"
#include "airm/model/resnet.hpp"

namespace airm {

// Network input from an RGB image and a coarse mask, both in [0, 1]:
// ImageNet-normalised RGB and the mask as (m - 0.5) * 2 (CRM's convention).
// rgb [B,3,H,W], mask [B,1,H,W] -> [B,4,H,W]
torch::Tensor normalize_input(const torch::Tensor& rgb, const torch::Tensor& mask);

// What the encoder side computes once per image.
struct Encoded {
  torch::Tensor features;             // [B, feature_dim, ceil(H/2), ceil(W/2)]
  std::vector<LayerWeights> weights;  // AIRMF: per-image layers of f; empty for SIRMF
  // Only when asked (training with affinity): MiT: logits [B, N, N] over the
  // last-stage grid; ResNet: affinities in (0,1] [B, K, h, w] (local layout).
  torch::Tensor affinity;
  int64_t affinity_h = 0;
  int64_t affinity_w = 0;
};

struct AirmNetImpl : torch::nn::Module {
  explicit AirmNetImpl(ModelConfig config);

  // input [B,in_channels,H,W] (normalize_input) -> Encoded
  Encoded encode(const torch::Tensor& input, bool with_affinity = false);
  // The input sampled bilinearly at the queries: input [B,C,H,W], coord [B,Q,2] (y,x) -> [B,Q,C]
  static torch::Tensor sample_guide(const torch::Tensor& input, const torch::Tensor& coord);
  // Logits of the refined mask at the queries, at most chunk_size at a time.
  // coord [B,Q,2] (y,x) in (-1,1), cell [2]|[B,2] (2/H_out, 2/W_out) -> [B,Q]
  torch::Tensor query(const Encoded& encoded, const torch::Tensor& input, const torch::Tensor& coord,
                      const torch::Tensor& cell, int64_t chunk_size = 1 << 16);
  // encode + query: input [B,C,H,W], coord [B,Q,2], cell -> logits [B,Q]
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& coord, const torch::Tensor& cell);
  // Affinity loss of an encode(..., true) result against gt [B,1,H,W] in {0,1}.
  torch::Tensor affinity_loss(const Encoded& encoded, const torch::Tensor& gt) const;

  // residual: logits [B,Q] + s * mask [B,Q] (the normalised mask channel at
  // the queries, in [-1,1]); otherwise logits unchanged. For callers that
  // sample the mask themselves (the refiner's query stage).
  torch::Tensor apply_prior(const torch::Tensor& logits, const torch::Tensor& mask) const;

  const ModelConfig& config() const { return config_; }

  // The MobileNetV2 encoder's maps (strides 4, 8, 16, 16) and its input:
  // input [B,C,H,W] (normalize_input) -> RGB as 2*rgb-1, other channels as given.
  std::vector<torch::Tensor> mobilenet_stages(const torch::Tensor& input);
  // input [B,C,H,W] -> the encoder's maps that the fusion takes (any encoder; no affinity)
  std::vector<torch::Tensor> encoder_stages(const torch::Tensor& input);
  static torch::Tensor mobilenet_input(const torch::Tensor& input);

  // One encoder is set, the others stay null.
  Mit mit_{nullptr};
  ResNetEncoder resnet_{nullptr};
  MobileNetV2 mobilenet_{nullptr};
  AffinityHead affinity_head_{nullptr};  // MiT with affinity only
  FeatureFusion fusion_{nullptr};
  HyperNetwork hyper_{nullptr};          // AIRMF only
  ImplicitFunction implicit_{nullptr};
  torch::Tensor prior_scale_;            // residual only: s of the coarse prior, a scalar

 private:
  // The encoder (whichever is set) on input; with `affinity`, its affinity logits and grid go to *out.
  std::vector<torch::Tensor> run_encoder(const torch::Tensor& input, bool affinity, Encoded* out);
  // residual: logits [B,Q] + s * (mask channel of input sampled at coord)
  torch::Tensor add_coarse_prior(const torch::Tensor& logits, const torch::Tensor& input,
                                 const torch::Tensor& coord) const;
  ModelConfig config_;
};
TORCH_MODULE(AirmNet);

}  // namespace airm
