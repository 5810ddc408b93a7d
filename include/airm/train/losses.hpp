// The refinement losses of AIRM (Eq. 7): cross-entropy, L1, L2 and gradient
// on the refined output, plus the affinity loss (Eq. 8-11).
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace airm {

struct LossWeights {
  double cross_entropy = 1.0;
  double l1 = 1.0;
  double l2 = 1.0;
  double gradient = 1.0;  // Sobel magnitude of the dense prediction vs the ground truth
  double affinity = 1.0;

  void validate() const;
  nlohmann::json to_json() const;
  static LossWeights from_json(const nlohmann::json& json, const std::string& source = "");
};

struct LossTerms {
  torch::Tensor total;
  torch::Tensor cross_entropy, l1, l2, gradient, affinity;  // undefined when not computed
};

// logits [B,Q] at the queries and their targets [B,Q] (0/1). If the queries
// are every pixel of a S x S crop in row-major order (dense = true), the
// gradient loss compares Sobel magnitudes of sigmoid(logits) and the target
// as [B,1,S,S] images; otherwise it is skipped. `affinity` is the already
// computed affinity loss (undefined: none).
LossTerms refinement_losses(const torch::Tensor& logits, const torch::Tensor& target, bool dense, int64_t side,
                            const torch::Tensor& affinity, const LossWeights& weights);

}  // namespace airm
