// Refinement losses: BCE, L1, L2, Sobel-gradient, and the weighted total.
#include "airm/train/losses.hpp"

#include <cmath>

#include "airm/error.hpp"

namespace airm {

namespace F = torch::nn::functional;

void LossWeights::validate(const std::string& source) const {
  auto check = [&](const char* field, double w) {
    if (!(std::isfinite(w) && w >= 0.0)) {
      throw Error(source, std::string(field) + ": expected a finite weight >= 0, got " + std::to_string(w));
    }
  };
  check("cross_entropy", cross_entropy);
  check("l1", l1);
  check("l2", l2);
  check("gradient", gradient);
  check("affinity", affinity);
}

nlohmann::json LossWeights::to_json() const {
  return {{"cross_entropy", cross_entropy}, {"l1", l1}, {"l2", l2}, {"gradient", gradient}, {"affinity", affinity}};
}

LossWeights LossWeights::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw Error(source, "loss weights: expected a JSON object, got " + std::string(json.type_name()));
  LossWeights w;
  const nlohmann::json known = w.to_json();
  for (const auto& item : json.items()) {
    if (!known.contains(item.key())) throw Error(source, "unknown loss weight key '" + item.key() + "'");
  }
  auto read = [&](const char* key, double& value) {
    auto it = json.find(key);
    if (it == json.end()) return;
    if (!it->is_number()) throw Error(source, std::string(key) + ": expected a number, got " + it->dump());
    value = it->get<double>();
  };
  read("cross_entropy", w.cross_entropy);
  read("l1", w.l1);
  read("l2", w.l2);
  read("gradient", w.gradient);
  read("affinity", w.affinity);
  w.validate(source);
  return w;
}

torch::Tensor sobel_magnitude(const torch::Tensor& image) {
  if (image.dim() != 4 || image.size(1) != 1) {
    throw Error("", "sobel_magnitude: expected images [B,1,H,W], got " + std::string(c10::str(image.sizes())));
  }
  const auto opts = image.options();
  const torch::Tensor gx = torch::tensor({1.0, 0.0, -1.0, 2.0, 0.0, -2.0, 1.0, 0.0, -1.0}, opts).view({3, 3}) / 4.0;
  const torch::Tensor kernel = torch::stack({gx, gx.t()}).unsqueeze(1);  // [2,1,3,3]
  const torch::Tensor padded = F::pad(image, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate));
  const torch::Tensor g = F::conv2d(padded, kernel);
  return torch::sqrt(g.pow(2).sum(1, true) + kSobelEpsilon);
}

LossTerms refinement_losses(const torch::Tensor& logits, const torch::Tensor& target, bool dense, int64_t side,
                            const torch::Tensor& affinity, const LossWeights& weights) {
  if (!logits.defined() || logits.dim() != 2) {
    throw Error("", "refinement_losses: expected logits [B,Q], got " +
                        (logits.defined() ? std::string(c10::str(logits.sizes())) : std::string("none")));
  }
  if (!target.defined() || target.sizes() != logits.sizes()) {
    throw Error("", "refinement_losses: expected targets of the logits' shape " + std::string(c10::str(logits.sizes())) +
                        ", got " + (target.defined() ? std::string(c10::str(target.sizes())) : std::string("none")));
  }
  if (dense && (side < 1 || side * side != logits.size(1))) {
    throw Error("", "refinement_losses: dense queries need Q = side * side, got Q = " + std::to_string(logits.size(1)) +
                        " and side " + std::to_string(side));
  }
  if (affinity.defined() && affinity.numel() != 1) {
    throw Error("", "refinement_losses: expected a scalar affinity loss, got " + std::string(c10::str(affinity.sizes())));
  }
  weights.validate();

  const torch::Tensor x = logits.to(torch::kFloat32);
  const torch::Tensor t = target.detach().to(torch::kFloat32);
  // A term with weight 0 is computed for logging only, outside autograd.
  auto term = [](double weight, const auto& fn) {
    if (weight != 0.0) return fn();
    torch::NoGradGuard no_grad;
    return fn();
  };

  LossTerms out;
  out.cross_entropy = term(weights.cross_entropy, [&] { return F::binary_cross_entropy_with_logits(x, t); });
  const torch::Tensor p = torch::sigmoid(x);
  out.l1 = term(weights.l1, [&] { return (p - t).abs().mean(); });
  out.l2 = term(weights.l2, [&] { return (p - t).pow(2).mean(); });
  if (dense) {
    const int64_t B = x.size(0);
    out.gradient = term(weights.gradient, [&] {
      return (sobel_magnitude(p.view({B, 1, side, side})) - sobel_magnitude(t.view({B, 1, side, side}))).abs().mean();
    });
  }
  if (affinity.defined()) out.affinity = affinity.reshape({}).to(torch::kFloat32);

  torch::Tensor total = torch::zeros({}, x.options());
  auto add = [&](double weight, const torch::Tensor& value) {
    if (weight != 0.0 && value.defined()) total = total + weight * value;
  };
  add(weights.cross_entropy, out.cross_entropy);
  add(weights.l1, out.l1);
  add(weights.l2, out.l2);
  add(weights.gradient, out.gradient);
  add(weights.affinity, out.affinity);
  out.total = total;
  return out;
}

torch::Tensor soft_dice_loss(const torch::Tensor& logits, const torch::Tensor& target) {
  TORCH_CHECK(logits.sizes() == target.sizes(), "expected logits and target of one shape, got ", logits.sizes(),
              " and ", target.sizes());
  const torch::Tensor p = torch::sigmoid(logits).flatten(1);
  const torch::Tensor g = target.flatten(1);
  constexpr double kSmooth = 1.0;  // an empty prediction of an empty mask scores 0, not 0/0
  const torch::Tensor dice = (2 * (p * g).sum(1) + kSmooth) / (p.sum(1) + g.sum(1) + kSmooth);
  return (1 - dice).mean();
}

}  // namespace airm
