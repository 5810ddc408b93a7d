// Refinement losses: hand-computed terms on tiny tensors, the Sobel gradient
// against a naive implementation, weighting, autograd, options JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include <torch/torch.h>

#include "airm/error.hpp"
#include "airm/train/losses.hpp"

namespace {

using airm::LossTerms;
using airm::LossWeights;

double sig(double z) { return 1.0 / (1.0 + std::exp(-z)); }
double softplus(double z) { return std::log1p(std::exp(z)); }

LossWeights all_ones() {
  LossWeights w;
  w.cross_entropy = w.l1 = w.l2 = w.gradient = w.affinity = 1.0;
  return w;
}

TEST(Losses, PointwiseTermsMatchHandComputedValues) {
  const torch::Tensor logits = torch::tensor({0.0, 2.0, -1.0, 3.0}, torch::kFloat32).view({2, 2});
  const torch::Tensor target = torch::tensor({1.0, 0.0, 0.0, 1.0}, torch::kFloat32).view({2, 2});
  const LossTerms t = airm::refinement_losses(logits, target, false, 0, {}, all_ones());
  // BCE with logits: target 1 -> softplus(-z), target 0 -> softplus(z).
  const double ce = (softplus(-0.0) + softplus(2.0) + softplus(-1.0) + softplus(-3.0)) / 4;
  const double d[4] = {1 - sig(0.0), sig(2.0), sig(-1.0), 1 - sig(3.0)};
  const double l1 = (d[0] + d[1] + d[2] + d[3]) / 4;
  const double l2 = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + d[3] * d[3]) / 4;
  EXPECT_NEAR(t.cross_entropy.item<double>(), ce, 1e-6);
  EXPECT_NEAR(t.l1.item<double>(), l1, 1e-6);
  EXPECT_NEAR(t.l2.item<double>(), l2, 1e-6);
  EXPECT_FALSE(t.gradient.defined());  // not dense
  EXPECT_FALSE(t.affinity.defined());  // none given
  EXPECT_NEAR(t.total.item<double>(), ce + l1 + l2, 1e-6);
}

// Sobel magnitude by loops: kernels / 4, replicate border, + epsilon.
torch::Tensor naive_sobel(const torch::Tensor& img) {
  const auto a = img.accessor<float, 4>();
  const int64_t B = img.size(0), H = img.size(2), W = img.size(3);
  torch::Tensor out = torch::empty_like(img);
  auto o = out.accessor<float, 4>();
  const double k[3] = {1, 2, 1};
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t y = 0; y < H; ++y) {
      for (int64_t x = 0; x < W; ++x) {
        auto at = [&](int64_t yy, int64_t xx) {
          return static_cast<double>(a[b][0][std::clamp<int64_t>(yy, 0, H - 1)][std::clamp<int64_t>(xx, 0, W - 1)]);
        };
        double gx = 0, gy = 0;
        for (int i = 0; i < 3; ++i) {
          gx += k[i] * (at(y + i - 1, x - 1) - at(y + i - 1, x + 1));
          gy += k[i] * (at(y - 1, x + i - 1) - at(y + 1, x + i - 1));
        }
        gx /= 4;
        gy /= 4;
        o[b][0][y][x] = static_cast<float>(std::sqrt(gx * gx + gy * gy + airm::kSobelEpsilon));
      }
    }
  }
  return out;
}

TEST(Losses, SobelMagnitudeMatchesNaiveLoopsOnAnAwkwardSize) {
  torch::manual_seed(3);
  const torch::Tensor img = torch::rand({2, 1, 5, 7});
  EXPECT_TRUE(torch::allclose(airm::sobel_magnitude(img), naive_sobel(img), 1e-5, 1e-6));
  // A 0 -> 1 step scores 1 (kernels divided by 4).
  const torch::Tensor step = torch::tensor({0.f, 0.f, 1.f, 1.f}).view({1, 1, 1, 4}).expand({1, 1, 3, 4}).contiguous();
  const torch::Tensor m = airm::sobel_magnitude(step);
  EXPECT_NEAR(m[0][0][1][1].item<double>(), std::sqrt(1 + airm::kSobelEpsilon), 1e-6);  // both pixels beside the step
  EXPECT_NEAR(m[0][0][1][2].item<double>(), std::sqrt(1 + airm::kSobelEpsilon), 1e-6);
  EXPECT_NEAR(m[0][0][1][0].item<double>(), std::sqrt(airm::kSobelEpsilon), 1e-7);  // flat (replicate border)
}

TEST(Losses, GradientLossHandComputedOnThreeByThree) {
  // Target: left column foreground; prediction ~0 everywhere.
  const torch::Tensor target = torch::tensor({1.f, 0.f, 0.f, 1.f, 0.f, 0.f, 1.f, 0.f, 0.f}).view({1, 9});
  const torch::Tensor logits = torch::full({1, 9}, -40.f);
  const LossTerms t = airm::refinement_losses(logits, target, true, 3, {}, all_ones());
  // With replicate padding gx = (left - right) * 4/4: 1 at columns 0 and 1, 0 at column 2; gy = 0.
  const double eps = airm::kSobelEpsilon;
  const double expected = 6 * (std::sqrt(1 + eps) - std::sqrt(eps)) / 9;
  ASSERT_TRUE(t.gradient.defined());
  EXPECT_NEAR(t.gradient.item<double>(), expected, 1e-6);
}

TEST(Losses, GradientLossIsZeroWhenPredictionEqualsTarget) {
  torch::manual_seed(5);
  const int64_t S = 11;
  const torch::Tensor target = (torch::rand({3, S * S}) > 0.5).to(torch::kFloat32);
  const torch::Tensor logits = (target * 2 - 1) * 60;
  const LossTerms t = airm::refinement_losses(logits, target, true, S, {}, all_ones());
  EXPECT_LT(t.gradient.item<double>(), 1e-9);
  EXPECT_LT(t.l1.item<double>(), 1e-9);
  EXPECT_LT(t.cross_entropy.item<double>(), 1e-9);
  // ... and clearly not zero when the prediction is flipped somewhere.
  torch::Tensor wrong = logits.clone();
  wrong[0][S * 5 + 5] = -wrong[0][S * 5 + 5];
  EXPECT_GT(airm::refinement_losses(wrong, target, true, S, {}, all_ones()).gradient.item<double>(), 1e-3);
}

TEST(Losses, TotalRespectsWeights) {
  torch::manual_seed(7);
  const int64_t S = 6;
  const torch::Tensor logits = torch::randn({2, S * S});
  const torch::Tensor target = (torch::rand({2, S * S}) > 0.5).to(torch::kFloat32);
  const torch::Tensor affinity = torch::tensor(0.3f);
  LossWeights w;
  w.cross_entropy = 1.5;
  w.l1 = 0.25;
  w.l2 = 0.75;
  w.gradient = 3.0;
  w.affinity = 2.0;
  const LossTerms t = airm::refinement_losses(logits, target, true, S, affinity, w);
  const double expected = 1.5 * t.cross_entropy.item<double>() + 0.25 * t.l1.item<double>() +
                          0.75 * t.l2.item<double>() + 3.0 * t.gradient.item<double>() + 2.0 * 0.3;
  EXPECT_NEAR(t.total.item<double>(), expected, 1e-5);
  EXPECT_NEAR(t.affinity.item<double>(), 0.3, 1e-7);

  // A zero weight removes its term (still reported for logging).
  LossWeights no_grad = w;
  no_grad.gradient = 0;
  const LossTerms u = airm::refinement_losses(logits, target, true, S, affinity, no_grad);
  EXPECT_NEAR(u.total.item<double>(), expected - 3.0 * t.gradient.item<double>(), 1e-5);
  ASSERT_TRUE(u.gradient.defined());
  EXPECT_FALSE(u.gradient.requires_grad());
  LossWeights no_aff = w;
  no_aff.affinity = 0;
  EXPECT_NEAR(airm::refinement_losses(logits, target, true, S, affinity, no_aff).total.item<double>(),
              expected - 0.6, 1e-5);
  // Not dense: no gradient term in the total.
  const LossTerms v = airm::refinement_losses(logits, target, false, 0, {}, w);
  EXPECT_NEAR(v.total.item<double>(),
              1.5 * t.cross_entropy.item<double>() + 0.25 * t.l1.item<double>() + 0.75 * t.l2.item<double>(), 1e-5);
}

TEST(Losses, GradientsFlowToLogitsThroughEveryTerm) {
  torch::manual_seed(11);
  const int64_t S = 5;
  const torch::Tensor target = (torch::rand({2, S * S}) > 0.5).to(torch::kFloat32);
  const char* names[] = {"cross_entropy", "l1", "l2", "gradient"};
  for (int only = 0; only < 4; ++only) {
    LossWeights w;
    w.cross_entropy = only == 0;
    w.l1 = only == 1;
    w.l2 = only == 2;
    w.gradient = only == 3;
    w.affinity = 0;
    torch::Tensor logits = torch::randn({2, S * S}).requires_grad_(true);
    airm::refinement_losses(logits, target, true, S, {}, w).total.backward();
    ASSERT_TRUE(logits.grad().defined()) << names[only];
    EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>()) << names[only];
    EXPECT_GT(logits.grad().abs().sum().item<double>(), 1e-4) << names[only];
  }
  // The affinity term's gradient reaches its source too.
  torch::Tensor a = torch::tensor(0.5f).requires_grad_(true);
  torch::Tensor logits = torch::randn({1, 4});
  airm::refinement_losses(logits, torch::zeros({1, 4}), false, 0, a * 2, all_ones()).total.backward();
  EXPECT_NEAR(a.grad().item<double>(), 2.0, 1e-6);
}

TEST(Losses, ReducedPrecisionLogitsGiveFloatTerms) {
  const torch::Tensor logits = torch::randn({2, 16}).to(torch::kBFloat16);
  const torch::Tensor target = torch::zeros({2, 16});
  const LossTerms t = airm::refinement_losses(logits, target, true, 4, {}, LossWeights());
  EXPECT_EQ(t.total.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(std::isfinite(t.total.item<double>()));
}

TEST(Losses, BadShapesThrow) {
  const torch::Tensor x = torch::zeros({2, 9});
  EXPECT_THROW(airm::refinement_losses(x, torch::zeros({2, 8}), false, 0, {}, LossWeights()), airm::Error);
  EXPECT_THROW(airm::refinement_losses(torch::zeros({18}), torch::zeros({18}), false, 0, {}, LossWeights()),
               airm::Error);
  EXPECT_THROW(airm::refinement_losses(x, x, true, 4, {}, LossWeights()), airm::Error);
  EXPECT_THROW(airm::refinement_losses(x, x, false, 0, torch::zeros({2}), LossWeights()), airm::Error);
  EXPECT_THROW(airm::sobel_magnitude(torch::zeros({1, 2, 3, 3})), airm::Error);
}

TEST(Losses, WeightsJsonRoundTripAndErrors) {
  LossWeights w;
  w.gradient = 5;
  w.l1 = 0;
  const LossWeights back = LossWeights::from_json(w.to_json());
  EXPECT_EQ(back.to_json(), w.to_json());
  // Defaults (see losses.hpp for the reasons).
  const LossWeights d;
  EXPECT_EQ(d.cross_entropy, 1.0);
  EXPECT_EQ(d.l1, 0.5);
  EXPECT_EQ(d.l2, 0.5);
  EXPECT_EQ(d.gradient, 2.0);
  EXPECT_EQ(d.affinity, 1.0);
  EXPECT_EQ(LossWeights::from_json(nlohmann::json::object()).to_json(), d.to_json());
  try {
    LossWeights::from_json({{"l3", 1.0}}, "cfg.json");
    FAIL() << "unknown key accepted";
  } catch (const airm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("l3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
  try {
    LossWeights::from_json({{"gradient", -1.0}});
    FAIL() << "negative weight accepted";
  } catch (const airm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LossWeights::from_json({{"l1", "big"}}), airm::Error);
  EXPECT_THROW(LossWeights::from_json(nlohmann::json::array()), airm::Error);
}

}  // namespace
