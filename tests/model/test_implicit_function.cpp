// Implicit function (SIRMF/AIRMF) and hypernetwork: chunking, agreement with
// a naive per-point implementation written here from the documented
// conventions, modulation, per-image independence, gradients, input layout,
// error messages.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "airm/bf16.hpp"
#include "airm/error.hpp"
#include "airm/model/hypernetwork.hpp"
#include "airm/model/implicit_function.hpp"
#include "test_support.hpp"

namespace {

using airm::HyperNetwork;
using airm::HyperNetworkOptions;
using airm::ImplicitFunction;
using airm::ImplicitFunctionOptions;
using airm::LayerModulation;
using airm::LayerWeights;
using airm::test::kEpsFloat32;
using airm::test::tensors_close;

// Two float32 evaluations of the implicit function that differ only in how
// the matrix products are blocked (chunks, batch size, bmm vs addmm): 4-5
// layers of width <= 32 (inputs <= 61 wide) and 4 ensemble terms. Each
// output's rounding error is a few ulps of the largest magnitude on its path
// (3-4 eps of max |output| seen); 64 eps of max |output| plus 64 eps absolute
// (for small outputs) leaves ~20x margin and is still ~1e3 below a real change
// of the function. The float64 naive loop is held to the same bound.
constexpr double kReorderRtol = 64 * kEpsFloat32;
constexpr double kReorderAtol = 64 * kEpsFloat32;

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// ---------------------------------------------------------------------------
// Naive reference: one query at a time, plain loops in double precision.

// Dense layers as nested vectors: W[l][o][i], b[l][o].
struct NaiveNet {
  std::vector<std::vector<std::vector<double>>> W;
  std::vector<std::vector<double>> b;
};

NaiveNet net_from_tensors(const std::vector<torch::Tensor>& weights, const std::vector<torch::Tensor>& biases) {
  NaiveNet net;
  for (size_t l = 0; l < weights.size(); ++l) {
    torch::Tensor w = weights[l].detach().to(torch::kDouble).contiguous();
    torch::Tensor b = biases[l].detach().to(torch::kDouble).contiguous();
    auto wa = w.accessor<double, 2>();
    auto ba = b.accessor<double, 1>();
    std::vector<std::vector<double>> W(w.size(0), std::vector<double>(w.size(1)));
    std::vector<double> B(w.size(0));
    for (int64_t o = 0; o < w.size(0); ++o) {
      for (int64_t i = 0; i < w.size(1); ++i) W[o][i] = wa[o][i];
      B[o] = ba[o];
    }
    net.W.push_back(W);
    net.b.push_back(B);
  }
  return net;
}

NaiveNet net_shared(const ImplicitFunction& f) {
  std::vector<torch::Tensor> w, b;
  for (const auto& layer : f->layers()) {
    w.push_back(layer->weight);
    b.push_back(layer->bias);
  }
  return net_from_tensors(w, b);
}

NaiveNet net_per_image(const std::vector<LayerWeights>& lw, int64_t image) {
  std::vector<torch::Tensor> w, b;
  for (const auto& l : lw) {
    w.push_back(l.weight[image]);
    b.push_back(l.bias[image]);
  }
  return net_from_tensors(w, b);
}

double naive_mlp(const NaiveNet& net, std::vector<double> v) {
  for (size_t l = 0; l < net.W.size(); ++l) {
    std::vector<double> out(net.W[l].size());
    for (size_t o = 0; o < out.size(); ++o) {
      EXPECT_EQ(net.W[l][o].size(), v.size());
      double s = net.b[l][o];
      for (size_t i = 0; i < v.size(); ++i) s += net.W[l][o][i] * v[i];
      out[o] = (l + 1 < net.W.size()) ? std::max(s, 0.0) : s;
    }
    v = out;
  }
  return v.at(0);
}

struct NaiveSetup {
  bool ensemble = true;
  bool unfold = false;
};

// One logit for query (y, x) of image `image`; cell = (2/H, 2/W).
double naive_query(const torch::Tensor& feat_d, int64_t image, double y, double x, double cell_y, double cell_x,
                   const std::vector<double>& guide, const NaiveSetup& setup, const NaiveNet& net) {
  auto fa = feat_d.accessor<double, 4>();
  const int64_t C = feat_d.size(1);
  const int64_t h = feat_d.size(2);
  const int64_t w = feat_d.size(3);
  auto cell_index = [](double t, int64_t n) {
    t = std::min(std::max(t, -1.0 + 1e-6), 1.0 - 1e-6);
    int64_t i = static_cast<int64_t>(std::floor((t + 1.0) / 2.0 * static_cast<double>(n)));
    return std::min(std::max<int64_t>(i, 0), n - 1);
  };
  auto feature_at = [&](int64_t i, int64_t j) {
    std::vector<double> v;
    for (int64_t c = 0; c < C; ++c) {
      if (!setup.unfold) {
        v.push_back(fa[image][c][i][j]);
        continue;
      }
      for (int64_t dy = -1; dy <= 1; ++dy) {
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t ii = i + dy;
          const int64_t jj = j + dx;
          v.push_back(ii >= 0 && ii < h && jj >= 0 && jj < w ? fa[image][c][ii][jj] : 0.0);
        }
      }
    }
    return v;
  };
  auto evaluate = [&](int64_t i, int64_t j, double& ry, double& rx) {
    const double cy = -1.0 + (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(h);
    const double cx = -1.0 + (2.0 * static_cast<double>(j) + 1.0) / static_cast<double>(w);
    ry = (y - cy) * static_cast<double>(h);
    rx = (x - cx) * static_cast<double>(w);
    std::vector<double> in = feature_at(i, j);
    for (double v : {ry, rx, y, x, cell_y * static_cast<double>(h), cell_x * static_cast<double>(w)}) in.push_back(v);
    for (double g : guide) in.push_back(g);
    return naive_mlp(net, in);
  };

  if (!setup.ensemble) {
    double ry = 0, rx = 0;
    return evaluate(cell_index(y, h), cell_index(x, w), ry, rx);
  }
  // Two cells per axis (by floor of the shifted coordinate), four corners.
  // Corner (a,b) is weighted by the area of corner (1-a,1-b) over the total
  // area; when the two cells of an axis coincide (border) they hold the same
  // value, the query may sit on their centre (all areas zero), and that
  // axis is split 1/2 + 1/2.
  int64_t iy[2], ix[2];
  for (int a = 0; a < 2; ++a) {
    iy[a] = cell_index(y + (a ? 1.0 : -1.0) / static_cast<double>(h) + 1e-6, h);
    ix[a] = cell_index(x + (a ? 1.0 : -1.0) / static_cast<double>(w) + 1e-6, w);
  }
  double pred[2][2], ry[2][2], rx[2][2];
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) pred[a][b] = evaluate(iy[a], ix[b], ry[a][b], rx[a][b]);
  }
  double out = 0;
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      const double opposite = std::abs(ry[1 - a][1 - b] * rx[1 - a][1 - b]);
      double total = 0;
      for (int c = 0; c < 2; ++c) {
        for (int d = 0; d < 2; ++d) total += std::abs(ry[c][d] * rx[c][d]);
      }
      double weight = 0;
      if (iy[0] != iy[1] && ix[0] != ix[1]) {
        weight = opposite / total;
      } else if (iy[0] == iy[1] && ix[0] != ix[1]) {
        weight = 0.5 * std::abs(rx[1 - a][1 - b]) / (std::abs(rx[0][0]) + std::abs(rx[0][1]));
      } else if (iy[0] != iy[1]) {
        weight = 0.5 * std::abs(ry[1 - a][1 - b]) / (std::abs(ry[0][0]) + std::abs(ry[1][0]));
      } else {
        weight = 0.25;
      }
      out += pred[a][b] * weight;
    }
  }
  return out;
}

// Pixel centres of an H x W output, computed here independently: [H*W,2] (y,x).
torch::Tensor centres(int64_t H, int64_t W) {
  std::vector<float> v;
  for (int64_t i = 0; i < H; ++i) {
    for (int64_t j = 0; j < W; ++j) {
      v.push_back(static_cast<float>(-1.0 + (2.0 * i + 1.0) / H));
      v.push_back(static_cast<float>(-1.0 + (2.0 * j + 1.0) / W));
    }
  }
  return torch::tensor(v).view({H * W, 2});
}

// Model vs naive loop at the pixel centres of an H x W output (B = 2 images
// with different features; guide_dim random guides; optionally AIRMF).
void check_against_naive(int64_t h, int64_t w, int64_t H, int64_t W, NaiveSetup setup, int64_t guide_dim,
                         bool per_image_mode) {
  SCOPED_TRACE("feature " + std::to_string(h) + "x" + std::to_string(w) + " -> output " + std::to_string(H) + "x" +
               std::to_string(W) + " ensemble=" + std::to_string(setup.ensemble) +
               " unfold=" + std::to_string(setup.unfold) + " guide=" + std::to_string(guide_dim) +
               " per_image=" + std::to_string(per_image_mode));
  torch::manual_seed(7 + h * 100 + w * 10 + H + W);
  const int64_t B = 2;
  const int64_t C = 5;
  ImplicitFunction f(ImplicitFunctionOptions(C)
                         .hidden({16, 12, 9})
                         .local_ensemble(setup.ensemble)
                         .unfold(setup.unfold)
                         .guide_dim(guide_dim));
  torch::Tensor feat = torch::randn({B, C, h, w}) * 2.0;
  torch::Tensor coord = centres(H, W).unsqueeze(0).expand({B, H * W, 2}).contiguous();
  torch::Tensor cell = torch::tensor({static_cast<float>(2.0 / H), static_cast<float>(2.0 / W)});
  torch::Tensor guide = guide_dim > 0 ? torch::randn({B, H * W, guide_dim}) : torch::Tensor();

  std::vector<LayerWeights> pw;
  if (per_image_mode) {
    for (auto [out, in] : f->layer_shapes()) {
      pw.push_back(
          LayerWeights{torch::randn({B, out, in}) / std::sqrt(static_cast<double>(in)), torch::randn({B, out}) * 0.1});
    }
  }
  torch::NoGradGuard no_grad;
  torch::Tensor got = f->forward(feat, coord, cell, guide, per_image_mode ? &pw : nullptr);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{B, H * W}));

  torch::Tensor feat_d = feat.to(torch::kDouble).contiguous();
  torch::Tensor coord_d = coord.to(torch::kDouble).contiguous();
  auto ca = coord_d.accessor<double, 3>();
  std::vector<double> wants;
  double spread = 0;
  for (int64_t b = 0; b < B; ++b) {
    NaiveNet net = per_image_mode ? net_per_image(pw, b) : net_shared(f);
    for (int64_t q = 0; q < H * W; ++q) {
      std::vector<double> g;
      for (int64_t k = 0; k < guide_dim; ++k) g.push_back(guide[b][q][k].item<double>());
      const double want = naive_query(feat_d, b, ca[b][q][0], ca[b][q][1], 2.0 / H, 2.0 / W, g, setup, net);
      const double have = got[b][q].item<double>();
      wants.push_back(want);
      spread = std::max(spread, std::abs(have - got[0][0].item<double>()));
    }
  }
  // float32 model against a float64 loop: the model's own rounding, as above
  // but with inputs up to ~7 (features 2*randn) and geometry in float32.
  EXPECT_TRUE(tensors_close(got, torch::tensor(wants, torch::kDouble).view({B, H * W}), kReorderRtol, kReorderAtol));
  // The outputs are not all the same value (the comparison means something).
  EXPECT_GT(spread, 1e-3);
}

// ---------------------------------------------------------------------------

TEST(ImplicitFunction, MatchesNaiveLoopAtPixelCentres) {
  for (bool per_image : {false, true}) {
    check_against_naive(5, 3, 13, 7, {}, 0, per_image);  // odd upsampling, centres coincide at (0,0)
    check_against_naive(5, 3, 1, 1, {}, 0, per_image);   // 1x1 output
    check_against_naive(1, 1, 13, 7, {}, 0, per_image);  // 1x1 feature map
    check_against_naive(1, 1, 1, 1, {}, 0, per_image);   // both 1x1: all ensemble areas are zero
    check_against_naive(6, 4, 3, 5, {}, 0, per_image);   // output coarser than the features (ties)
    check_against_naive(4, 2, 8, 4, {}, 0, per_image);   // exact 2x upsampling
    check_against_naive(5, 3, 5, 3, {}, 0, per_image);   // same size: every query on a cell centre
    check_against_naive(5, 3, 11, 9, {}, 0, per_image);  // a query on the centre of a border cell
  }
}

TEST(ImplicitFunction, MatchesNaiveLoopWithoutEnsemble) {
  NaiveSetup s;
  s.ensemble = false;
  for (bool per_image : {false, true}) {
    check_against_naive(5, 3, 13, 7, s, 0, per_image);
    check_against_naive(1, 1, 3, 3, s, 0, per_image);
    check_against_naive(5, 3, 1, 1, s, 0, per_image);
  }
}

TEST(ImplicitFunction, MatchesNaiveLoopWithUnfoldAndGuide) {
  NaiveSetup s;
  s.unfold = true;
  for (bool per_image : {false, true}) {
    check_against_naive(5, 3, 13, 7, s, 0, per_image);
    check_against_naive(5, 3, 11, 9, {}, 4, per_image);
    check_against_naive(5, 3, 11, 9, s, 2, per_image);
    check_against_naive(1, 1, 3, 5, s, 1, per_image);
  }
  s.ensemble = false;
  check_against_naive(4, 7, 9, 5, s, 3, true);
}

TEST(ImplicitFunction, ChunkedEqualsUnchunked) {
  torch::manual_seed(11);
  const int64_t B = 2, C = 6, G = 3, Q = 103;
  ImplicitFunction f(ImplicitFunctionOptions(C).guide_dim(G));
  torch::Tensor feat = torch::randn({B, C, 7, 5});
  torch::Tensor coord = torch::rand({B, Q, 2}) * 1.98 - 0.99;
  torch::Tensor cell = torch::rand({B, Q, 2}) * 0.2 + 0.01;  // per-query cells
  torch::Tensor guide = torch::randn({B, Q, G});
  std::vector<LayerWeights> pw;
  for (auto [out, in] : f->layer_shapes()) {
    pw.push_back(LayerWeights{torch::randn({B, out, in}) * 0.3, torch::randn({B, out}) * 0.1});
  }
  for (bool per_image : {false, true}) {
    const auto* weights = per_image ? &pw : nullptr;
    torch::Tensor full = f->forward(feat, coord, cell, guide, weights);
    for (bool grad : {true, false}) {  // two code paths: concatenation / preallocated output
      torch::AutoGradMode mode(grad);
      for (int64_t chunk : {int64_t{1}, int64_t{7}, Q - 1, Q, Q + 50}) {
        SCOPED_TRACE("per_image=" + std::to_string(per_image) + " grad=" + std::to_string(grad) +
                     " chunk=" + std::to_string(chunk));
        torch::Tensor part = f->query(feat, coord, cell, guide, weights, chunk);
        ASSERT_EQ(part.sizes(), full.sizes());
        // Chunking changes how the matrix products are blocked, so the sums are
        // associated differently (1.43e-6 absolute was seen on a Zen 4 machine
        // for outputs ~ 3, over a former 1e-6 bound).
        EXPECT_TRUE(tensors_close(part, full, kReorderRtol, kReorderAtol));
      }
    }
  }
  // Cell given as [2] and [B,2] equals the expanded per-query cell.
  torch::Tensor c2 = torch::tensor({0.1f, 0.25f});
  torch::Tensor a = f->query(feat, coord, c2, guide, nullptr, 10);
  torch::Tensor b = f->forward(feat, coord, c2.view({1, 2}).expand({B, 2}), guide);
  torch::Tensor c = f->forward(feat, coord, c2.view({1, 1, 2}).expand({B, Q, 2}).contiguous(), guide);
  EXPECT_TRUE(tensors_close(a, c, kReorderRtol, kReorderAtol));  // chunks of 10: blocked differently
  EXPECT_TRUE(tensors_close(b, c, kReorderRtol, kReorderAtol));
  // No queries: an empty result.
  EXPECT_EQ(f->query(feat, coord.narrow(1, 0, 0), c2, guide.narrow(1, 0, 0), nullptr, 4).sizes(),
            (std::vector<int64_t>{B, 0}));
}

// Geometry in the coordinates' dtype, MLP in the layers' (or autocast's).
TEST(ImplicitFunction, CoordinatePrecisionAndAutocast) {
  // A bf16 network needs bf16 convolutions, which oneDNN lacks below AVX-512 (airm/bf16.hpp).
  if (!airm::bf16_convolutions_supported(torch::kCPU)) GTEST_SKIP() << "no bf16 convolutions on this CPU";
  torch::manual_seed(19);
  const int64_t B = 2, C = 6, Q = 57;
  ImplicitFunction f(ImplicitFunctionOptions(C).guide_dim(2).unfold(true));
  HyperNetwork psi(HyperNetworkOptions(C).channels(8).init_std(0.2), f->layer_shapes());
  psi->eval();
  torch::Tensor feat = torch::randn({B, C, 9, 8});
  torch::Tensor coord = torch::rand({B, Q, 2}) * 2 - 1;
  torch::Tensor guide = torch::randn({B, Q, 2});
  torch::Tensor cell = airm::cell_for(33, 29);
  auto pw = airm::modulate(f, psi->forward(feat));
  for (bool adaptive : {false, true}) {
    SCOPED_TRACE("adaptive=" + std::to_string(adaptive));
    const auto* weights = adaptive ? &pw : nullptr;
    torch::Tensor ref = f->query(feat, coord, cell, guide, weights, 20);
    ASSERT_EQ(ref.scalar_type(), torch::kFloat);
    // float64 coordinates with float32 layers: a float64 result, same values.
    torch::Tensor d = f->query(feat, coord.to(torch::kDouble), cell.to(torch::kDouble), guide, weights, 20);
    EXPECT_EQ(d.scalar_type(), torch::kDouble);
    // (The geometry differs by float32 rounding of coordinates ~1 times sizes <= 33.)
    EXPECT_TRUE(tensors_close(d, ref, kReorderRtol, kReorderAtol));
    // bf16 autocast (features and modulation in bf16 too): float32 result near the fp32 one.
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
    torch::Tensor low;
    try {
      torch::Tensor feat_bf16 = feat.to(torch::kBFloat16);
      auto pw_low = airm::modulate(f, psi->forward(feat_bf16));
      low = f->query(feat_bf16, coord, cell, guide, adaptive ? &pw_low : nullptr, 20);
    } catch (...) {
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
      throw;
    }
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
    EXPECT_EQ(low.scalar_type(), torch::kFloat);
    EXPECT_LE(max_abs_diff(low, ref), 0.05 * std::max(1.0, ref.abs().max().item<double>()));
  }
}

TEST(ImplicitFunction, PixelGridAndCell) {
  torch::Tensor g = airm::make_pixel_grid(13, 7);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{91, 2}));
  EXPECT_EQ(g.scalar_type(), torch::kFloat);
  EXPECT_LE(max_abs_diff(g, centres(13, 7)), 1e-7);
  EXPECT_LE(max_abs_diff(airm::make_pixel_grid(13, 7, {}, 20, 30), centres(13, 7).narrow(0, 20, 30)), 1e-7);
  EXPECT_LE(max_abs_diff(airm::make_pixel_grid(13, 7, {}, 85), centres(13, 7).narrow(0, 85, 6)), 1e-7);
  EXPECT_LE(max_abs_diff(airm::make_pixel_grid(1, 1), torch::zeros({1, 2})), 0.0);
  EXPECT_EQ(airm::make_pixel_grid(4, 4, torch::kDouble).scalar_type(), torch::kDouble);
  torch::Tensor c = airm::cell_for(13, 7);
  EXPECT_LE(max_abs_diff(c, torch::tensor({2.0 / 13, 2.0 / 7})), 1e-7);
  EXPECT_THROW(airm::make_pixel_grid(13, 7, {}, 90, 2), airm::Error);
  EXPECT_THROW(airm::make_pixel_grid(0, 7), airm::Error);
  EXPECT_THROW(airm::cell_for(3, 0), airm::Error);
}

// ---------------------------------------------------------------------------
// AIRMF

// W' = W (1 + tanh(A B / sqrt r)), b' = b + db, by hand for image `image`.
void modulated_by_hand(const ImplicitFunction& f, const std::vector<LayerModulation>& mods, int64_t image,
                       ImplicitFunction& target) {
  torch::NoGradGuard no_grad;
  for (size_t l = 0; l < f->layers().size(); ++l) {
    torch::Tensor W = f->layers()[l]->weight.to(torch::kDouble);
    torch::Tensor b = f->layers()[l]->bias.to(torch::kDouble);
    torch::Tensor A = mods[l].A[image].to(torch::kDouble);
    torch::Tensor Bm = mods[l].B[image].to(torch::kDouble);
    const int64_t r = A.size(1);
    torch::Tensor Wn = torch::empty_like(W);
    for (int64_t o = 0; o < W.size(0); ++o) {
      for (int64_t i = 0; i < W.size(1); ++i) {
        double s = 0;
        for (int64_t k = 0; k < r; ++k) s += A[o][k].item<double>() * Bm[k][i].item<double>();
        Wn[o][i] = W[o][i].item<double>() * (1.0 + std::tanh(s / std::sqrt(static_cast<double>(r))));
      }
    }
    target->layers()[l]->weight.copy_(Wn);
    target->layers()[l]->bias.copy_(b + mods[l].bias[image].to(torch::kDouble));
  }
}

TEST(HyperNetwork, ShapesAndInitialIdentity) {
  torch::manual_seed(3);
  ImplicitFunction f(ImplicitFunctionOptions(8).guide_dim(2));
  HyperNetwork psi(HyperNetworkOptions(8), f->layer_shapes());
  const auto shapes = f->layer_shapes();
  ASSERT_EQ(shapes.size(), 5u);
  EXPECT_EQ(shapes.front(), (std::pair<int64_t, int64_t>{32, 16}));
  EXPECT_EQ(shapes.back(), (std::pair<int64_t, int64_t>{1, 32}));
  int64_t expected = 0;
  for (auto [out, in] : shapes) expected += out * 20 + 20 * in + out;
  EXPECT_EQ(psi->output_dim(), expected);

  torch::Tensor feat = torch::randn({3, 8, 9, 6});
  auto mods = psi->forward(feat);
  ASSERT_EQ(mods.size(), shapes.size());
  for (size_t l = 0; l < shapes.size(); ++l) {
    EXPECT_EQ(mods[l].A.sizes(), (std::vector<int64_t>{3, shapes[l].first, 20}));
    EXPECT_EQ(mods[l].B.sizes(), (std::vector<int64_t>{3, 20, shapes[l].second}));
    EXPECT_EQ(mods[l].bias.sizes(), (std::vector<int64_t>{3, shapes[l].first}));
  }
  // Small initial output: AIRMF starts near SIRMF ...
  torch::Tensor coord = torch::rand({3, 50, 2}) * 2 - 1;
  torch::Tensor cell = airm::cell_for(20, 20);
  torch::Tensor guide = torch::randn({3, 50, 2});
  auto pw = airm::modulate(f, mods);
  torch::Tensor shared = f->forward(feat, coord, cell, guide);
  EXPECT_LE(max_abs_diff(f->forward(feat, coord, cell, guide, &pw), shared), 2e-2);
  // ... and is exactly SIRMF when psi outputs zeros.
  {
    torch::NoGradGuard no_grad;
    psi->head_->weight.zero_();
    psi->head_->bias.zero_();
  }
  auto pw0 = airm::modulate(f, psi->forward(feat));
  // (Per-image weights go through bmm, shared ones through addmm: summed in another order.)
  EXPECT_TRUE(tensors_close(f->forward(feat, coord, cell, guide, &pw0), shared, kReorderRtol, kReorderAtol));
}

TEST(HyperNetwork, ConstantModulationEqualsModulatedSharedWeights) {
  torch::manual_seed(5);
  const int64_t C = 6, B = 2;
  auto opts = ImplicitFunctionOptions(C).hidden({20, 11}).guide_dim(1);
  ImplicitFunction f(opts);
  HyperNetwork psi(HyperNetworkOptions(C).rank(7).channels(16).conv_layers(2), f->layer_shapes());
  {
    torch::NoGradGuard no_grad;
    psi->head_->weight.zero_();
    psi->head_->bias.uniform_(-1.5, 1.5);  // large enough that tanh is far from linear
  }
  torch::Tensor feat = torch::randn({B, C, 6, 9});
  auto mods = psi->forward(feat);
  for (const auto& m : mods) {
    EXPECT_LE(max_abs_diff(m.A[0], m.A[1]), 0.0);
    EXPECT_LE(max_abs_diff(m.B[0], m.B[1]), 0.0);
    EXPECT_LE(max_abs_diff(m.bias[0], m.bias[1]), 0.0);
  }
  ImplicitFunction g(opts);
  modulated_by_hand(f, mods, 0, g);

  torch::Tensor coord = torch::rand({B, 77, 2}) * 2 - 1;
  torch::Tensor cell = airm::cell_for(17, 23);
  torch::Tensor guide = torch::randn({B, 77, 1});
  auto pw = airm::modulate(f, mods);
  torch::Tensor adaptive = f->query(feat, coord, cell, guide, &pw, 13);
  torch::Tensor reference = g->forward(feat, coord, cell, guide);
  // (Weights modulated in float32 here, in float64 by hand there: a few ulps each; then bmm vs addmm.)
  EXPECT_TRUE(tensors_close(adaptive, reference, kReorderRtol, kReorderAtol));
  // The modulation did change the function.
  EXPECT_GT(max_abs_diff(adaptive, f->forward(feat, coord, cell, guide)), 1e-2);
}

TEST(HyperNetwork, EachImageGetsItsOwnWeights) {
  torch::manual_seed(9);
  const int64_t C = 6, B = 2, Q = 61;
  ImplicitFunction f(ImplicitFunctionOptions(C).unfold(true));
  HyperNetwork psi(HyperNetworkOptions(C).rank(5).channels(8).init_std(0.5), f->layer_shapes());
  psi->eval();  // BatchNorm with running statistics: an image's result must not depend on its batch
  torch::Tensor feat = torch::randn({B, C, 11, 7});
  feat[1] = feat[1] * 2.0 + torch::randn({C, 1, 1}) * 2.0;  // a different image: other global statistics
  torch::Tensor coord = torch::rand({B, Q, 2}) * 2 - 1;
  torch::Tensor cell = airm::cell_for(31, 19);

  auto mods = psi->forward(feat);
  auto pw = airm::modulate(f, mods);
  EXPECT_GT(max_abs_diff(pw[0].weight[0], pw[0].weight[1]), 1e-3);
  torch::Tensor batch = f->forward(feat, coord, cell, {}, &pw);

  for (int64_t b = 0; b < B; ++b) {
    SCOPED_TRACE("image " + std::to_string(b));
    torch::Tensor fb = feat.narrow(0, b, 1), cb = coord.narrow(0, b, 1);
    // The batch's weights of image b, applied to image b alone.
    std::vector<LayerWeights> one;
    for (const auto& l : pw) one.push_back(LayerWeights{l.weight.narrow(0, b, 1), l.bias.narrow(0, b, 1)});
    torch::Tensor alone = f->forward(fb, cb, cell, {}, &one);
    EXPECT_TRUE(tensors_close(alone, batch.narrow(0, b, 1), kReorderRtol, kReorderAtol));
    // The whole pipeline on image b alone (the hypernetwork's convolutions on a batch of 1
    // may be blocked differently too: its weights differ by a few ulps).
    auto pw_b = airm::modulate(f, psi->forward(fb));
    EXPECT_TRUE(tensors_close(f->forward(fb, cb, cell, {}, &pw_b), batch.narrow(0, b, 1), kReorderRtol, kReorderAtol));
    // The other image's weights give a different result.
    std::vector<LayerWeights> other;
    for (const auto& l : pw) other.push_back(LayerWeights{l.weight.narrow(0, 1 - b, 1), l.bias.narrow(0, 1 - b, 1)});
    EXPECT_GT(max_abs_diff(f->forward(fb, cb, cell, {}, &other), alone), 1e-3);
  }
}

TEST(HyperNetwork, EveryParameterGetsAGradientInAirmfMode) {
  torch::manual_seed(13);
  const int64_t C = 8, B = 2, Q = 300;
  for (bool unfold : {false, true}) {
    SCOPED_TRACE("unfold=" + std::to_string(unfold));
    ImplicitFunction f(ImplicitFunctionOptions(C).guide_dim(2).unfold(unfold));
    HyperNetwork psi(HyperNetworkOptions(C), f->layer_shapes());
    f->train();
    psi->train();
    torch::Tensor feat = torch::randn({B, C, 9, 11}, torch::requires_grad());
    torch::Tensor coord = torch::rand({B, Q, 2}) * 2 - 1;
    torch::Tensor guide = torch::randn({B, Q, 2});
    auto pw = airm::modulate(f, psi->forward(feat));
    torch::Tensor logits = f->query(feat, coord, airm::cell_for(40, 44), guide, &pw, 64);
    (logits * torch::randn_like(logits)).sum().backward();
    for (auto* module : {static_cast<torch::nn::Module*>(f.get()), static_cast<torch::nn::Module*>(psi.get())}) {
      for (const auto& p : module->named_parameters()) {
        SCOPED_TRACE(module->name() + "." + p.key());
        ASSERT_TRUE(p.value().grad().defined());
        EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>());
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0);
      }
    }
    ASSERT_TRUE(feat.grad().defined());
    EXPECT_GT(feat.grad().abs().sum().item<double>(), 0.0);
  }
}

// Gradients through the in-place, chunked, gathered computation are the true
// derivatives: central differences in double precision.
TEST(HyperNetwork, GradientsMatchFiniteDifferences) {
  torch::manual_seed(21);
  const int64_t C = 3, B = 2, Q = 40;
  ImplicitFunction f(ImplicitFunctionOptions(C).hidden({6, 5}).unfold(true).guide_dim(1));
  HyperNetwork psi(HyperNetworkOptions(C).conv_layers(1).channels(4).rank(3).init_std(0.3), f->layer_shapes());
  f->to(torch::kDouble);
  psi->to(torch::kDouble);
  const auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor feat = torch::randn({B, C, 5, 4}, dbl).requires_grad_();
  torch::Tensor coord = torch::rand({B, Q, 2}, dbl) * 2 - 1;
  torch::Tensor guide = torch::randn({B, Q, 1}, dbl);
  torch::Tensor cell = airm::cell_for(9, 7, dbl);
  torch::Tensor r = torch::randn({B, Q}, dbl);
  auto loss = [&] {
    auto pw = airm::modulate(f, psi->forward(feat));
    return (f->query(feat, coord, cell, guide, &pw, 9) * r).sum();
  };
  loss().backward();

  std::vector<std::pair<std::string, torch::Tensor>> checked{{"feat", feat}};
  for (const auto& p : f->named_parameters()) checked.emplace_back("f." + p.key(), p.value());
  for (const auto& p : psi->named_parameters()) checked.emplace_back("psi." + p.key(), p.value());
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : checked) {
    torch::Tensor flat = t.view({-1});
    torch::Tensor grad = t.grad().view({-1});
    for (int64_t k : {int64_t{0}, t.numel() / 2, t.numel() - 1}) {
      SCOPED_TRACE(name + "[" + std::to_string(k) + "]");
      const double eps = 1e-6;
      const double x0 = flat[k].item<double>();
      flat[k] = x0 + eps;
      const double up = loss().item<double>();
      flat[k] = x0 - eps;
      const double down = loss().item<double>();
      flat[k] = x0;
      const double numeric = (up - down) / (2 * eps);
      EXPECT_NEAR(grad[k].item<double>(), numeric, 1e-6 * std::max(1.0, std::abs(numeric)));
    }
  }
}

// ---------------------------------------------------------------------------
// Input layout and errors

TEST(ImplicitFunction, UnfoldAndGuideChangeInputDim) {
  torch::manual_seed(17);
  struct Case {
    bool unfold;
    int64_t guide;
    int64_t expected;
  };
  for (const Case& c :
       {Case{false, 0, 8 + 6}, Case{true, 0, 72 + 6}, Case{false, 4, 8 + 6 + 4}, Case{true, 4, 72 + 6 + 4}}) {
    SCOPED_TRACE("unfold=" + std::to_string(c.unfold) + " guide=" + std::to_string(c.guide));
    ImplicitFunction f(ImplicitFunctionOptions(8).unfold(c.unfold).guide_dim(c.guide));
    EXPECT_EQ(f->input_dim(), c.expected);
    EXPECT_EQ(f->feature_dim(), c.unfold ? 72 : 8);
    EXPECT_EQ(f->layer_shapes().front().second, c.expected);
    torch::Tensor feat = torch::randn({2, 8, 3, 4});
    torch::Tensor coord = torch::rand({2, 29, 2}) * 2 - 1;
    torch::Tensor guide = c.guide ? torch::randn({2, 29, c.guide}) : torch::Tensor();
    torch::Tensor out = f->query(feat, coord, airm::cell_for(9, 8), guide, nullptr, 10);
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 29}));
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
    if (c.guide) {
      torch::Tensor other = f->forward(feat, coord, airm::cell_for(9, 8), guide + 1.0);
      EXPECT_GT(max_abs_diff(out, other), 1e-4);
    }
  }
}

template <typename E>
void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one containing \"" << needle << "\"";
  } catch (const E& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << "message: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(ImplicitFunction, BadShapesRaiseClearErrors) {
  using airm::Error;
  ImplicitFunction f(ImplicitFunctionOptions(4).guide_dim(2));
  torch::Tensor feat = torch::randn({2, 4, 3, 5});
  torch::Tensor coord = torch::rand({2, 10, 2}) * 2 - 1;
  torch::Tensor cell = airm::cell_for(6, 10);
  torch::Tensor guide = torch::randn({2, 10, 2});
  EXPECT_NO_THROW(f->forward(feat, coord, cell, guide));

  expect_error<c10::Error>([&] { f->forward(feat[0], coord, cell, guide); }, "feat: expected [B,4,h,w]");
  expect_error<c10::Error>(
      [&] {
        f->forward(torch::randn({2, 5, 3, 5}), coord, cell, guide);
      },
      "feat: expected [B,4,h,w]");
  expect_error<c10::Error>([&] { f->forward(feat, torch::rand({2, 10, 3}), cell, guide); }, "coord: expected [2,Q,2]");
  expect_error<c10::Error>([&] { f->forward(feat, torch::rand({3, 10, 2}), cell, guide); }, "coord: expected [2,Q,2]");
  expect_error<c10::Error>([&] { f->forward(feat, coord.to(torch::kHalf), cell, guide); },
                           "coord: expected float32 or float64");
  expect_error<c10::Error>([&] { f->forward(feat, coord, cell.to(torch::kLong), guide); },
                           "cell: expected a floating-point tensor");
  expect_error<c10::Error>([&] { f->forward(feat, coord, torch::rand({3}), guide); }, "cell: expected [2], [2,2]");
  expect_error<c10::Error>([&] { f->forward(feat, coord, torch::rand({2, 9, 2}), guide); }, "or [2,10,2]");
  expect_error<c10::Error>([&] { f->forward(feat, coord, cell, {}); }, "guide: expected [2,10,2]");
  expect_error<c10::Error>(
      [&] {
        f->forward(feat, coord, cell, torch::randn({2, 10, 3}));
      },
      "guide: expected [2,10,2]");
  ImplicitFunction plain(ImplicitFunctionOptions(4));
  expect_error<c10::Error>([&] { plain->forward(feat, coord, cell, guide); }, "guide: expected none");

  std::vector<LayerWeights> pw;
  for (auto [out, in] : f->layer_shapes())
    pw.push_back(LayerWeights{torch::randn({2, out, in}), torch::randn({2, out})});
  EXPECT_NO_THROW(f->forward(feat, coord, cell, guide, &pw));
  auto few = std::vector<LayerWeights>(pw.begin(), pw.end() - 1);
  expect_error<c10::Error>([&] { f->forward(feat, coord, cell, guide, &few); }, "expected 5 layers, got 4");
  auto wrong = pw;
  wrong[2].weight = torch::randn({2, 32, 31});
  expect_error<c10::Error>([&] { f->forward(feat, coord, cell, guide, &wrong); },
                           "weight of layer 2: expected [2,32,32], got [2, 32, 31]");
  wrong = pw;
  wrong[4].bias = torch::randn({1, 1});
  expect_error<c10::Error>([&] { f->forward(feat, coord, cell, guide, &wrong); }, "bias of layer 4: expected [2,1]");

  expect_error<Error>([&] { f->query(feat, coord, cell, guide, nullptr, 0); }, "chunk_size must be >= 1, got 0");

  expect_error<Error>([&] { ImplicitFunction m(ImplicitFunctionOptions(0)); }, "feat_dim must be >= 1, got 0");
  expect_error<Error>(
      [&] {
        ImplicitFunction m(ImplicitFunctionOptions(4).hidden({32, 0}));
      },
      "hidden widths must be >= 1, got [32,0]");
  expect_error<Error>([&] { ImplicitFunction m(ImplicitFunctionOptions(4).guide_dim(-1)); }, "guide_dim must be >= 0");

  expect_error<Error>([&] { HyperNetwork m(HyperNetworkOptions(4).rank(0), f->layer_shapes()); },
                      "rank must be >= 1, got 0");
  expect_error<Error>([&] { HyperNetwork m(HyperNetworkOptions(4), std::vector<std::pair<int64_t, int64_t>>{}); },
                      "at least one layer");
  HyperNetwork psi(HyperNetworkOptions(4).rank(3), f->layer_shapes());
  expect_error<c10::Error>([&] { psi->forward(torch::randn({2, 5, 8, 8})); }, "feat: expected [B,4,h,w]");
  auto mods = psi->forward(torch::randn({2, 4, 8, 8}));
  auto fewer = std::vector<LayerModulation>(mods.begin(), mods.end() - 1);
  expect_error<c10::Error>([&] { airm::modulate(f, fewer); }, "expected 5 layer modulations, got 4");
  auto bad = mods;
  bad[1].B = torch::randn({2, 3, 7});
  expect_error<c10::Error>([&] { airm::modulate(f, bad); }, "layer 1 B: expected [2,3,32]");
}

// Timing: run with --gtest_also_run_disabled_tests.
TEST(ImplicitFunction, DISABLED_TimePerMillionQueries) {
  torch::set_num_threads(1);
  torch::manual_seed(1);
  const int64_t C = 64, Q = 1 << 20;
  ImplicitFunction f{ImplicitFunctionOptions(C)};
  HyperNetwork psi(HyperNetworkOptions(C), f->layer_shapes());
  psi->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor feat = torch::randn({1, C, 256, 256});
  torch::Tensor coord = torch::rand({1, Q, 2}) * 2 - 1;
  torch::Tensor cell = airm::cell_for(1024, 1024);
  auto pw = airm::modulate(f, psi->forward(feat));
  for (int64_t chunk : {int64_t{65536}, int64_t{8192}}) {
    for (bool adaptive : {false, true}) {
      f->query(feat, coord.narrow(1, 0, chunk), cell, {}, adaptive ? &pw : nullptr, chunk);  // warm-up
      const auto t0 = std::chrono::steady_clock::now();
      const std::clock_t c0 = std::clock();
      torch::Tensor out = f->query(feat, coord, cell, {}, adaptive ? &pw : nullptr, chunk);
      const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double per_million = 1e6 / static_cast<double>(Q);
      std::printf("%s: %.3f s wall, %.3f s CPU per 1M queries (B=1, C=64, 256x256 features, 1 thread, chunk %ld)\n",
                  adaptive ? "AIRMF" : "SIRMF", wall * per_million, cpu * per_million, static_cast<long>(chunk));
    }
  }
}

}  // namespace
