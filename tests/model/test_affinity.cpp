// Affinity head, CNN affinity, labels and loss: hand-checked examples,
// symmetry, gradients, layout equivalences.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "airm/error.hpp"
#include "airm/model/affinity.hpp"
#include "airm/model/mit.hpp"
#include "test_support.hpp"

namespace {

using airm::AffinityHead;
using airm::AffinityHeadOptions;
using airm::PairDistance;
using Offsets = std::vector<std::pair<int64_t, int64_t>>;
using airm::test::kEpsFloat32;
using airm::test::tensors_close;

torch::Tensor dbl(const std::vector<double>& v) { return torch::tensor(v, torch::kDouble); }

TEST(AffinityPairs, NeighbourOffsets) {
  EXPECT_EQ(airm::neighbour_offsets(1), (Offsets{{0, 1}, {1, -1}, {1, 0}, {1, 1}}));
  EXPECT_EQ(airm::neighbour_offsets(1, PairDistance::kEuclidean), (Offsets{{0, 1}, {1, 0}}));
  EXPECT_TRUE(airm::neighbour_offsets(0).empty());
  EXPECT_EQ(airm::neighbour_offsets(14).size(), (29u * 29u - 1u) / 2u);
  // Euclidean radius 2: (0,1),(0,2),(1,-1),(1,0),(1,1),(2,0) -- (1,+-2) and (2,+-1) are sqrt(5) > 2.
  EXPECT_EQ(airm::neighbour_offsets(2, PairDistance::kEuclidean), (Offsets{{0, 1}, {0, 2}, {1, -1}, {1, 0}, {1, 1}, {2, 0}}));
  EXPECT_THROW(airm::neighbour_offsets(-1), airm::Error);
}

TEST(AffinityLabels, MaskToGridIsAreaMajority) {
  // 4x4 -> 2x2: quadrants with 3, 2, 1 and 4 foreground pixels of 4.
  const torch::Tensor gt = torch::tensor({1.f, 1.f, 1.f, 0.f,  //
                                          1.f, 0.f, 1.f, 0.f,  //
                                          1.f, 0.f, 1.f, 1.f,  //
                                          0.f, 0.f, 1.f, 1.f})
                               .view({1, 1, 4, 4});
  const torch::Tensor grid = airm::mask_to_grid(gt, 2, 2);
  EXPECT_TRUE(torch::equal(grid, torch::tensor({1.f, 0.f, 0.f, 1.f}).view({1, 2, 2})));  // 3/4, 2/4 tie, 1/4, 4/4
  // Sizes that do not divide, and integer masks.
  const torch::Tensor odd = airm::mask_to_grid(torch::ones({2, 1, 5, 7}, torch::kLong), 3, 2);
  EXPECT_EQ(odd.sizes().vec(), (std::vector<int64_t>{2, 3, 2}));
  EXPECT_EQ(odd.scalar_type(), torch::kFloat);
  EXPECT_EQ(odd.min().item<float>(), 1.0f);
  EXPECT_THROW(airm::mask_to_grid(torch::ones({1, 2, 4, 4}), 2, 2), c10::Error);
  EXPECT_THROW(airm::mask_to_grid(torch::ones({1, 1, 4, 4}), 0, 2), c10::Error);
}

// Grid (cells 0..8 in raster order), classes:
//   1 1 0
//   1 0 0
//   0 0 0
TEST(AffinityLabels, HandCheckedThreeByThreeRadiusOne) {
  const torch::Tensor gt = torch::tensor({1.f, 1.f, 0.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f}).view({1, 1, 3, 3});
  const auto out = airm::affinity_labels(gt, 3, 3, 1);
  ASSERT_EQ(out.labels.sizes().vec(), (std::vector<int64_t>{1, 9, 9}));
  ASSERT_EQ(out.valid.sizes().vec(), (std::vector<int64_t>{1, 9, 9}));
  ASSERT_EQ(out.valid.scalar_type(), torch::kBool);
  const auto valid = out.valid[0];
  const auto labels = out.labels[0];
  auto row = [](const torch::Tensor& m, int64_t i) {
    std::vector<int> v;
    for (int64_t j = 0; j < 9; ++j) v.push_back(static_cast<int>(m[i][j].item<float>()));
    return v;
  };
  const torch::Tensor valid_f = valid.to(torch::kFloat);
  // Corner 0 = (0,0): neighbours 1, 3, 4 (king moves); positives 1, 3.
  EXPECT_EQ(row(valid_f, 0), (std::vector<int>{0, 1, 0, 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(row(labels, 0), (std::vector<int>{1, 1, 0, 1, 0, 0, 0, 0, 0}));
  // Centre 4: all eight others; same class (0) as 2, 5, 6, 7, 8.
  EXPECT_EQ(row(valid_f, 4), (std::vector<int>{1, 1, 1, 1, 0, 1, 1, 1, 1}));
  EXPECT_EQ(row(labels, 4), (std::vector<int>{0, 0, 1, 0, 1, 1, 1, 1, 1}));
  // Edge 1 = (0,1): 0, 2, 3, 4, 5; positives 0, 3.
  EXPECT_EQ(row(valid_f, 1), (std::vector<int>{1, 0, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(row(labels, 1), (std::vector<int>{1, 1, 0, 1, 0, 0, 0, 0, 0}));
  // Corner 8 = (2,2): 4, 5, 7, all positive.
  EXPECT_EQ(row(valid_f, 8), (std::vector<int>{0, 0, 0, 0, 1, 1, 0, 1, 0}));
  EXPECT_EQ(row(labels, 8), (std::vector<int>{0, 0, 1, 0, 1, 1, 1, 1, 1}));
  // 20 king-move edges, both orderings; symmetric; diagonal excluded.
  EXPECT_EQ(valid.sum().item<int64_t>(), 40);
  EXPECT_TRUE(torch::equal(valid, valid.t()));
  EXPECT_TRUE(torch::equal(labels, labels.t()));
  EXPECT_EQ(valid.diagonal().sum().item<int64_t>(), 0);
  // Valid positives: 0-1, 0-3, 1-3 (class 1) and the 10 class-0 edges among
  // 2,4,5,6,7,8: 2-4, 2-5, 4-5, 4-6, 4-7, 4-8, 5-7, 5-8, 6-7, 7-8.
  EXPECT_EQ((valid & (labels > 0.5)).sum().item<int64_t>(), 2 * (3 + 10));

  // Euclidean radius 1: only the 12 rook edges.
  const auto rook = airm::affinity_labels(gt, 3, 3, 1, PairDistance::kEuclidean);
  EXPECT_EQ(rook.valid.sum().item<int64_t>(), 24);
  EXPECT_FALSE(rook.valid[0][0][4].item<bool>());
  // Radius 2 covers the whole 3x3 grid (like radius 14 on MiT's 7x7 grid).
  const auto all = airm::affinity_labels(gt, 3, 3, 2);
  EXPECT_EQ(all.valid.sum().item<int64_t>(), 9 * 8);
}

TEST(AffinityLabels, BatchAndResize) {
  // Two samples at 6x6 resized to 3x3 (2x2 blocks, all-or-nothing).
  torch::Tensor gt = torch::zeros({2, 1, 6, 6});
  gt[0][0].slice(0, 0, 2).fill_(1.0);  // sample 0: top row of cells foreground
  gt[1][0].slice(1, 4, 6).fill_(1.0);  // sample 1: right column of cells
  const auto out = airm::affinity_labels(gt, 3, 3, 14);
  EXPECT_EQ(out.valid.sum().item<int64_t>(), 2 * 72);
  EXPECT_EQ(out.labels[0][0][2].item<float>(), 1.0f);  // cells 0, 2 both top row
  EXPECT_EQ(out.labels[0][0][3].item<float>(), 0.0f);
  EXPECT_EQ(out.labels[1][2][8].item<float>(), 1.0f);  // cells 2, 8 both right column
  EXPECT_EQ(out.labels[1][0][2].item<float>(), 0.0f);
}

TEST(AffinityLabels, LocalLayoutMatchesDense) {
  torch::manual_seed(0);
  const torch::Tensor gt = (torch::rand({2, 1, 20, 24}) > 0.5).to(torch::kFloat);
  for (const auto metric : {PairDistance::kChebyshev, PairDistance::kEuclidean}) {
    for (int64_t radius : {0, 1, 2, 7}) {
      const auto dense = airm::affinity_labels(gt, 5, 6, radius, metric);
      const auto local = airm::local_affinity_labels(gt, 5, 6, radius, metric);
      const auto K = static_cast<int64_t>(airm::neighbour_offsets(radius, metric).size());
      ASSERT_EQ(local.labels.sizes().vec(), (std::vector<int64_t>{2, K, 5, 6}));
      EXPECT_TRUE(torch::equal(local.labels, airm::gather_local_pairs(dense.labels, 5, 6, radius, metric)));
      EXPECT_TRUE(torch::equal(local.valid,
                               airm::gather_local_pairs(dense.valid.to(torch::kFloat), 5, 6, radius, metric) > 0.5));
      // Each unordered pair once in the local layout, twice in the dense one.
      EXPECT_EQ(2 * local.valid.sum().item<int64_t>(), dense.valid.sum().item<int64_t>());
    }
  }
}

TEST(AffinityLoss, HandComputed) {
  // p = 0.5, 0.75 (positives), 0.25 (negative), the 4th pair excluded.
  const torch::Tensor logits = dbl({0.0, std::log(3.0), -std::log(3.0), 5.0});
  const torch::Tensor labels = dbl({1, 1, 0, 0});
  const torch::Tensor valid = torch::tensor({true, true, true, false});
  // 1/2 * ((1-0.5) + (1-0.75))/2 + 1/2 * 0.25/1 = 0.3125
  EXPECT_NEAR(airm::affinity_loss_from_logits(logits, labels, valid).item<double>(), 0.3125, 1e-12);
  EXPECT_NEAR(airm::affinity_loss_from_probabilities(torch::sigmoid(logits), labels, valid).item<double>(), 0.3125,
              1e-12);
  // Doubling the negatives (same value) leaves the loss unchanged: the two
  // sets are normalised separately.
  const torch::Tensor logits2 = dbl({0.0, std::log(3.0), -std::log(3.0), -std::log(3.0), 5.0});
  const torch::Tensor labels2 = dbl({1, 1, 0, 0, 0});
  const torch::Tensor valid2 = torch::tensor({true, true, true, true, false});
  EXPECT_NEAR(airm::affinity_loss_from_logits(logits2, labels2, valid2).item<double>(), 0.3125, 1e-12);
  // Any layout: the same numbers as [1, 2, 2].
  EXPECT_NEAR(airm::affinity_loss_from_logits(logits.view({1, 2, 2}), labels.view({1, 2, 2}), valid.view({1, 2, 2}))
                  .item<double>(),
              0.3125, 1e-12);
}

TEST(AffinityLoss, EmptySetsGiveNoNaN) {
  torch::Tensor logits = dbl({1.0, -2.0, 0.5}).requires_grad_(true);
  const torch::Tensor negatives_only = dbl({0, 0, 0});
  const torch::Tensor all = torch::tensor({true, true, true});
  // No positives: 1/2 * mean sigmoid.
  torch::Tensor loss = airm::affinity_loss_from_logits(logits, negatives_only, all);
  EXPECT_NEAR(loss.item<double>(), 0.5 * torch::sigmoid(logits).mean().item<double>(), 1e-12);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  // No negatives.
  loss = airm::affinity_loss_from_logits(logits, dbl({1, 1, 1}), all);
  EXPECT_NEAR(loss.item<double>(), 0.5 * (1.0 - torch::sigmoid(logits)).mean().item<double>(), 1e-12);
  // Nothing valid: 0, and a NaN in an excluded pair does not leak in.
  logits.grad().zero_();
  loss = airm::affinity_loss_from_logits(logits, negatives_only, torch::tensor({false, false, false}));
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_EQ(logits.grad().abs().sum().item<double>(), 0.0);
  const torch::Tensor with_nan = dbl({std::nan(""), 0.0});
  const double l = airm::affinity_loss_from_probabilities(with_nan, dbl({1, 1}), torch::tensor({false, true}))
                       .item<double>();
  EXPECT_NEAR(l, 0.5 * 1.0, 1e-12);
}

TEST(AffinityLoss, RejectsMismatchedShapes) {
  const torch::Tensor p = torch::rand({2, 3});
  EXPECT_THROW(airm::affinity_loss_from_probabilities(p, torch::zeros({2, 4}), torch::ones({2, 3}, torch::kBool)),
               c10::Error);
  EXPECT_THROW(airm::affinity_loss_from_probabilities(p, torch::zeros({2, 3}), torch::ones({2, 3})), c10::Error);
}

TEST(AffinityHead, OutputShapeAndSymmetry) {
  torch::manual_seed(1);
  for (int64_t hidden : {0, 8}) {
    AffinityHead head(AffinityHeadOptions(8).hidden_channels(hidden));
    const std::vector<torch::Tensor> att{torch::rand({2, 4, 6, 6}), torch::rand({2, 4, 6, 6})};
    const torch::Tensor logits = head->forward(att);
    EXPECT_EQ(logits.sizes().vec(), (std::vector<int64_t>{2, 6, 6}));
    const std::vector<torch::Tensor> att_t{att[0].transpose(2, 3), att[1].transpose(2, 3)};
    // Same symmetrised inputs in another memory layout / row of the product: float32 sums of
    // 8 terms of magnitude <= 2 per layer, in an order that may differ; 64 eps of max |logit|
    // plus 64 eps absolute (logits ~ 1).
    EXPECT_TRUE(tensors_close(head->forward(att_t), logits, 64 * kEpsFloat32, 64 * kEpsFloat32));
    EXPECT_TRUE(tensors_close(logits.transpose(1, 2), logits, 64 * kEpsFloat32, 64 * kEpsFloat32));
    EXPECT_TRUE(torch::allclose(head->forward_stacked(torch::cat(att, 1)), logits));
  }
  AffinityHead head(AffinityHeadOptions(16));
  EXPECT_EQ(head->parameters().size(), 2u);  // one Linear(16 -> 1)
  EXPECT_EQ(head->proj_->weight.sizes().vec(), (std::vector<int64_t>{1, 16}));
}

TEST(AffinityHead, SingleLinearIsAWeightedSumOfSymmetrisedMaps) {
  AffinityHead head(AffinityHeadOptions(2));
  {
    torch::NoGradGuard no_grad;
    head->proj_->weight.copy_(torch::tensor({{2.0f, -1.0f}}));
    head->proj_->bias.fill_(0.5f);
  }
  const torch::Tensor a = torch::rand({1, 1, 3, 3});
  const torch::Tensor b = torch::rand({1, 1, 3, 3});
  const torch::Tensor expected = 2.0 * (a + a.transpose(2, 3)) - (b + b.transpose(2, 3)) + 0.5;
  // Two products and a bias (the Linear may fuse them, the reference rounds each step) on
  // terms up to 4: a few ulps of max |expected| (~4); 32 eps of it.
  EXPECT_TRUE(tensors_close(head->forward({a, b}), expected.view({1, 3, 3}), 32 * kEpsFloat32));
}

TEST(AffinityHead, EveryParameterReceivesAGradient) {
  for (int64_t hidden : {0, 8}) {
    torch::manual_seed(2);
    AffinityHead head(AffinityHeadOptions(4).hidden_channels(hidden));
    const torch::Tensor att = torch::rand({2, 4, 6, 6});  // a 2x3 grid
    const torch::Tensor gt = (torch::rand({2, 1, 4, 6}) > 0.5).to(torch::kFloat);
    const auto labels = airm::affinity_labels(gt, 2, 3, 1);
    airm::affinity_loss_from_logits(head->forward_stacked(att), labels.labels, labels.valid).backward();
    for (const auto& item : head->named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_GT(item.value().grad().abs().max().item<double>(), 0.0) << item.key();
    }
  }
}

TEST(AffinityHead, RejectsBadOptionsAndInputs) {
  EXPECT_THROW(AffinityHead(AffinityHeadOptions(0)), airm::Error);
  EXPECT_THROW(AffinityHead(AffinityHeadOptions(4).hidden_channels(-1)), airm::Error);
  AffinityHead head(AffinityHeadOptions(4));
  EXPECT_THROW(head->forward({}), c10::Error);
  EXPECT_THROW(head->forward({torch::rand({1, 3, 5, 5})}), c10::Error);  // 3 maps, 4 expected
  EXPECT_THROW(head->forward({torch::rand({1, 2, 5, 5}), torch::rand({1, 2, 4, 4})}), c10::Error);
  EXPECT_THROW(head->forward_stacked(torch::rand({1, 4, 5, 6})), c10::Error);
}

// The whole transformer path: MiT-b0 (4 channels) last-stage attention ->
// head -> loss; the gradient reaches the backbone's last stage.
TEST(AffinityHead, TrainsWithMitAttention) {
  torch::manual_seed(3);
  airm::Mit mit(airm::MitOptions::b0(4));
  const auto& o = mit->options();
  const int64_t channels = o.depths()[3] * o.num_heads()[3];  // 2 x 8
  AffinityHead head{AffinityHeadOptions(channels)};
  const auto out = mit->forward(torch::randn({2, 4, 96, 64}), /*with_attention=*/true);
  ASSERT_EQ(out.attentions.size(), 2u);
  const int64_t h = out.stages[3].size(2);
  const int64_t w = out.stages[3].size(3);
  EXPECT_EQ(h, 3);
  EXPECT_EQ(w, 2);
  const torch::Tensor logits = head->forward(out.attentions);
  EXPECT_EQ(logits.sizes().vec(), (std::vector<int64_t>{2, h * w, h * w}));
  torch::Tensor gt = torch::zeros({2, 1, 96, 64});
  gt.slice(2, 0, 40).fill_(1.0);
  const auto labels = airm::affinity_labels(gt, h, w);
  airm::affinity_loss_from_logits(logits, labels.labels, labels.valid).backward();
  bool reached = false;
  for (const auto& item : mit->named_parameters()) {
    if (item.key().rfind("block4.", 0) == 0 && item.key().find("attn.q.") != std::string::npos &&
        item.value().grad().defined() && item.value().grad().abs().max().item<double>() > 0.0) {
      reached = true;
    }
  }
  EXPECT_TRUE(reached);
}

// exp(-mean_c |f_i - f_j|) by a plain loop.
double naive_affinity(const torch::Tensor& f, int64_t b, int64_t y0, int64_t x0, int64_t y1, int64_t x1) {
  double sum = 0.0;
  const int64_t C = f.size(1);
  for (int64_t c = 0; c < C; ++c) {
    sum += std::abs(f[b][c][y0][x0].item<double>() - f[b][c][y1][x1].item<double>());
  }
  return std::exp(-sum / static_cast<double>(C));
}

TEST(CnnAffinity, EqualsNaiveLoop) {
  torch::manual_seed(4);
  const torch::Tensor f = torch::randn({2, 3, 4, 5}, torch::kDouble);
  for (const auto metric : {PairDistance::kChebyshev, PairDistance::kEuclidean}) {
    const int64_t radius = 2;
    const auto offsets = airm::neighbour_offsets(radius, metric);
    const torch::Tensor a = airm::cnn_affinity(f, radius, metric);
    ASSERT_EQ(a.sizes().vec(), (std::vector<int64_t>{2, static_cast<int64_t>(offsets.size()), 4, 5}));
    for (int64_t b = 0; b < 2; ++b) {
      for (size_t k = 0; k < offsets.size(); ++k) {
        for (int64_t y = 0; y < 4; ++y) {
          for (int64_t x = 0; x < 5; ++x) {
            const int64_t ny = y + offsets[k].first;
            const int64_t nx = x + offsets[k].second;
            const bool inside = ny >= 0 && ny < 4 && nx >= 0 && nx < 5;
            const double expected = inside ? naive_affinity(f, b, y, x, ny, nx) : 0.0;
            EXPECT_NEAR(a[b][static_cast<int64_t>(k)][y][x].item<double>(), expected, 1e-12)
                << b << " " << k << " " << y << " " << x;
          }
        }
      }
    }
  }
  // Radius 0: no pairs.
  EXPECT_EQ(airm::cnn_affinity(f, 0).size(1), 0);
  EXPECT_THROW(airm::cnn_affinity(torch::randn({2, 3, 4})), c10::Error);
  EXPECT_THROW(airm::cnn_affinity(f, -1), airm::Error);
}

// The same affinities with ordinary autograd ops, for the gradient.
torch::Tensor reference_affinity(const torch::Tensor& f, int64_t radius, PairDistance metric) {
  const int64_t h = f.size(2);
  const int64_t w = f.size(3);
  std::vector<torch::Tensor> planes;
  for (const auto& [dy, dx] : airm::neighbour_offsets(radius, metric)) {
    std::vector<torch::Tensor> rows;
    for (int64_t y = 0; y < h; ++y) {
      std::vector<torch::Tensor> cells;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t ny = y + dy;
        const int64_t nx = x + dx;
        if (ny >= 0 && ny < h && nx >= 0 && nx < w) {
          const torch::Tensor d = (f.select(3, x).select(2, y) - f.select(3, nx).select(2, ny)).abs().mean(1);
          cells.push_back(torch::exp(-d));
        } else {
          cells.push_back(torch::zeros({f.size(0)}, f.options()));
        }
      }
      rows.push_back(torch::stack(cells, 1));  // [B,w]
    }
    planes.push_back(torch::stack(rows, 1));  // [B,h,w]
  }
  return torch::stack(planes, 1);  // [B,K,h,w]
}

TEST(CnnAffinity, GradientMatchesAutograd) {
  torch::manual_seed(5);
  for (const auto metric : {PairDistance::kChebyshev, PairDistance::kEuclidean}) {
    const torch::Tensor base = torch::randn({2, 3, 4, 5}, torch::kDouble);
    torch::Tensor f1 = base.clone().requires_grad_(true);
    torch::Tensor f2 = base.clone().requires_grad_(true);
    const torch::Tensor a1 = airm::cnn_affinity(f1, 2, metric);
    const torch::Tensor a2 = reference_affinity(f2, 2, metric);
    ASSERT_TRUE(torch::allclose(a1, a2, 1e-12, 1e-12));
    const torch::Tensor upstream = torch::randn_like(a1);
    (a1 * upstream).sum().backward();
    (a2 * upstream).sum().backward();
    EXPECT_TRUE(torch::allclose(f1.grad(), f2.grad(), 1e-10, 1e-12)) << (f1.grad() - f2.grad()).abs().max();
  }
}

// Loss over the local layout equals the loss over the dense layout.
TEST(CnnAffinity, LocalLossEqualsDenseLoss) {
  torch::manual_seed(6);
  const int64_t h = 5;
  const int64_t w = 6;
  const torch::Tensor f = torch::randn({2, 3, h, w}, torch::kDouble);
  const torch::Tensor gt = (torch::rand({2, 1, 2 * h, 2 * w}) > 0.5).to(torch::kFloat);
  // Dense affinity [B,N,N] by broadcasting.
  const torch::Tensor flat = f.flatten(2);  // [B,C,N]
  const torch::Tensor dense = torch::exp(-(flat.unsqueeze(3) - flat.unsqueeze(2)).abs().mean(1));
  for (const auto metric : {PairDistance::kChebyshev, PairDistance::kEuclidean}) {
    for (int64_t radius : {1, 3}) {
      const auto dense_labels = airm::affinity_labels(gt, h, w, radius, metric);
      const auto local_labels = airm::local_affinity_labels(gt, h, w, radius, metric);
      const double l_dense =
          airm::affinity_loss_from_probabilities(dense, dense_labels.labels, dense_labels.valid).item<double>();
      const double l_local = airm::affinity_loss_from_probabilities(airm::cnn_affinity(f, radius, metric),
                                                                    local_labels.labels, local_labels.valid)
                                 .item<double>();
      EXPECT_NEAR(l_local, l_dense, 1e-12);
      EXPECT_TRUE(torch::allclose(airm::gather_local_pairs(dense, h, w, radius, metric),
                                  airm::cnn_affinity(f, radius, metric), 1e-12, 1e-12));
    }
  }
}

}  // namespace
