// SyncBatchNorm2d against torch::nn::BatchNorm2d: without a reducer it is the
// same module; with a one-rank reducer its own forward and backward match the
// native ones on awkward sizes; keys and eval mode are unchanged. (Several
// ranks: tests/train/test_distributed.cpp trains 2 ranks against 1 process.)
#include <gtest/gtest.h>

#include "airm/model/sync_batch_norm.hpp"
#include "test_support.hpp"

namespace {

struct Pass {
  torch::Tensor y, dx, dweight, dbias, running_mean, running_var;
};

template <typename Module>
Pass run(Module& bn, const torch::Tensor& x0, const torch::Tensor& dy) {
  torch::Tensor x = x0.clone().requires_grad_(true);
  torch::Tensor y = bn->forward(x);
  y.backward(dy);
  return {y.detach(), x.grad(), bn->weight.grad().clone(), bn->bias.grad().clone(), bn->running_mean.clone(),
          bn->running_var.clone()};
}

using airm::test::kEpsFloat32;
using airm::test::tensors_close;

TEST(SyncBatchNorm2d, OneRankReducerMatchesNativeBatchNorm) {
  int calls = 0;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{1, 3, 1, 2}, {3, 5, 7, 11}, {2, 1, 13, 1}}) {
    torch::manual_seed(static_cast<uint64_t>(shape[3]));
    const int64_t C = shape[1];
    torch::nn::BatchNorm2d native(torch::nn::BatchNorm2dOptions(C).momentum(0.2));
    airm::SyncBatchNorm2d synced(torch::nn::BatchNorm2dOptions(C).momentum(0.2));
    {
      torch::NoGradGuard no_grad;
      native->weight.uniform_(0.5, 1.5);
      native->bias.uniform_(-1, 1);
      synced->weight.copy_(native->weight);
      synced->bias.copy_(native->bias);
    }
    const torch::Tensor x = torch::randn(shape) * 3 + 1;
    const torch::Tensor dy = torch::randn(shape);
    const Pass a = run(native, x, dy);
    Pass b;
    {
      airm::ScopedBatchNormReducer one_rank([&](torch::Tensor&) { ++calls; });
      b = run(synced, x, dy);
    }
    // The native module reduces in float32 (its order depends on the SIMD width and threads),
    // the synced one in float64 (forward) or float32 (backward sums): per channel, reductions
    // of N = B*H*W <= 231 terms. A float32 sum errs by a few eps times the sum of its terms'
    // magnitudes (pairwise / vector-lane summation: ~log2 N ulps at worst, not N), so:
    // normalised outputs: 64 eps of their max magnitude; dx = w/sigma (dy - mean dy - xhat
    // mean(dy xhat)), whose terms may cancel (exactly, for N = 2): 64 eps of max |w dy / sigma|;
    // dweight = sum dy*xhat, dbias = sum dy, the running mean (a momentum share of mean x):
    // 16 eps of the sum of |terms|, which may be ~sqrt(N) times the result itself.
    const torch::Tensor xd = x.to(torch::kDouble);
    const torch::Tensor invstd = (xd.var({0, 2, 3}, false, true) + 1e-5).rsqrt();
    const torch::Tensor xhat = (xd - xd.mean({0, 2, 3}, true)) * invstd;
    const double dx_scale = (native->weight.detach().view({1, C, 1, 1}) * invstd).abs().max().item<double>() *
                            dy.abs().max().item<double>();
    const double sum_dy = dy.abs().sum({0, 2, 3}).max().item<double>();
    const double sum_dy_xhat = (dy * xhat).abs().sum({0, 2, 3}).max().item<double>();
    const double mean_abs_x = xd.abs().mean().item<double>();
    EXPECT_TRUE(tensors_close(b.y, a.y, 64 * kEpsFloat32));
    EXPECT_TRUE(tensors_close(b.dx, a.dx, 64 * kEpsFloat32, 64 * kEpsFloat32 * dx_scale));
    EXPECT_TRUE(tensors_close(b.dweight, a.dweight, 0, 16 * kEpsFloat32 * sum_dy_xhat));
    EXPECT_TRUE(tensors_close(b.dbias, a.dbias, 0, 16 * kEpsFloat32 * sum_dy));
    EXPECT_TRUE(tensors_close(b.running_mean, a.running_mean, 0, 16 * kEpsFloat32 * 0.2 * mean_abs_x));
    EXPECT_TRUE(tensors_close(b.running_var, a.running_var, 64 * kEpsFloat32));
    EXPECT_EQ(synced->num_batches_tracked.item<int64_t>(), 1);
    // Eval mode uses the running statistics: identical to the native module.
    native->eval();
    synced->eval();
    const torch::Tensor probe = torch::randn(shape);
    // (The same batch_norm call, on running statistics that differ by the rounding above.)
    EXPECT_TRUE(tensors_close(synced->forward(probe), native->forward(probe), 64 * kEpsFloat32));
  }
  EXPECT_EQ(calls, 6);  // one reduction forward, one backward, per shape
}

TEST(SyncBatchNorm2d, WithoutReducerIsTheNativeModuleWithItsKeys) {
  torch::manual_seed(4);
  torch::nn::BatchNorm2d native(4);
  airm::SyncBatchNorm2d synced(torch::nn::BatchNorm2dOptions(4));
  std::vector<std::string> a, b;
  for (const auto& p : native->named_parameters()) a.push_back(p.key());
  for (const auto& p : native->named_buffers()) a.push_back(p.key());
  for (const auto& p : synced->named_parameters()) b.push_back(p.key());
  for (const auto& p : synced->named_buffers()) b.push_back(p.key());
  EXPECT_EQ(a, b);
  const torch::Tensor x = torch::randn({2, 4, 5, 3});
  EXPECT_TRUE(torch::equal(native->forward(x), synced->forward(x)));
  EXPECT_TRUE(torch::equal(native->running_var, synced->running_var));
}

TEST(SyncBatchNorm2d, OneValuePerChannelOverAllRanksIsRefused) {
  airm::SyncBatchNorm2d synced(torch::nn::BatchNorm2dOptions(2));
  airm::ScopedBatchNormReducer one_rank([](torch::Tensor&) {});
  EXPECT_THROW(synced->forward(torch::randn({1, 2, 1, 1})), c10::Error);
}

}  // namespace
