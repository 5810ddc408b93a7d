// The refinement losses of AIRM (Eq. 7): cross-entropy, L1, L2 and gradient
// on the refined output, plus the affinity loss (Eq. 8-11).
//
// Terms (all means over every element, computed in float32 whatever the
// logits' dtype):
//   cross_entropy  BCE with logits against the 0/1 target
//   l1             |sigmoid(logit) - target|
//   l2             (sigmoid(logit) - target)^2
//   gradient       |G(sigmoid) - G(target)| on the [B,1,S,S] images, where G
//                  is sobel_magnitude() (CascadePSP's gradient loss); only
//                  for dense queries (every pixel of an S x S crop)
//   total          sum of weight * term over the terms whose weight is not 0,
//                  + affinity weight * affinity (when given)
//
// Default weights, and why. The AIRM paper names the four terms (and shows
// in its Table 5 that dropping any one hurts) but its weights were lost from
// the text. AIRM takes CRM's implicit decoder and multi-resolution
// inference; CRM's loss, as a public re-implementation gives it (SegMe's
// "hqs_crm" loss; CRM's own code was not available to check), is
// BCE + 0.5 L1 + 0.5 L2 + 2 x gradient on the one full-resolution output.
// CascadePSP (its public training code) puts L1 1, L2 1, gradient 5 and
// BCE 0 on its final 224 output and BCE 0.5-1 on its coarser outputs, which
// an implicit decoder does not have: with a single output BCE must carry
// the classification signal, so CRM's balance is the closer precedent.
// Hence cross_entropy 1, l1 0.5, l2 0.5, gradient 2. The affinity term is
// added with weight 1 (the paper's Eq. 11 shows no factor as far as the
// extracted text tells).
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace airm {

struct LossWeights {
  double cross_entropy = 1.0;
  double l1 = 0.5;
  double l2 = 0.5;
  double gradient = 2.0;  // Sobel magnitude of the dense prediction vs the ground truth
  double affinity = 1.0;

  // Each weight finite and >= 0; throws airm::Error naming the field (and `source`).
  void validate(const std::string& source = "") const;
  nlohmann::json to_json() const;
  // Unknown keys are errors.
  static LossWeights from_json(const nlohmann::json& json, const std::string& source = "");
};

struct LossTerms {
  torch::Tensor total;
  // Undefined when not computed (gradient: not dense; affinity: none given).
  // A term whose weight is 0 is still computed for logging, without autograd.
  torch::Tensor cross_entropy, l1, l2, gradient, affinity;
};

// Added under the square root of the Sobel magnitude (CascadePSP uses 1e-4):
// keeps its derivative finite where the image is flat.
constexpr double kSobelEpsilon = 1e-4;

// Gradient magnitude of images [B,1,H,W]: sqrt(gx^2 + gy^2 + kSobelEpsilon)
// with the Sobel kernels divided by 4 ([1 0 -1; 2 0 -2; 1 0 -1] / 4 for gx,
// its transpose for gy, so a 0 -> 1 step scores 1), replicate padding (the
// border of a crop is not an edge). CascadePSP also smooths with a 3x3 box
// filter first; we do not, so a one-pixel error still changes the result.
torch::Tensor sobel_magnitude(const torch::Tensor& image);

// logits [B,Q] at the queries and their targets [B,Q] (0/1). If the queries
// are every pixel of a S x S crop in row-major order (dense = true), the
// gradient loss compares Sobel magnitudes of sigmoid(logits) and the target
// as [B,1,S,S] images; otherwise it is skipped. `affinity` is the already
// computed affinity loss (undefined: none). Throws airm::Error for
// mismatched shapes or Q != side * side when dense.
LossTerms refinement_losses(const torch::Tensor& logits, const torch::Tensor& target, bool dense, int64_t side,
                            const torch::Tensor& affinity, const LossWeights& weights);

// The segmenter's soft Dice loss: 1 - (2 sum(p g) + 1) / (sum p + sum g + 1)
// per image, p = sigmoid(logits), averaged over the batch (the +1 keeps an
// empty prediction of an empty mask at 0). logits, target [B,...] -> scalar
torch::Tensor soft_dice_loss(const torch::Tensor& logits, const torch::Tensor& target);

}  // namespace airm
