// SyncBatchNorm2d against torch::nn::BatchNorm2d: without a reducer it is the
// same module; with a one-rank reducer its own forward and backward match the
// native ones on awkward sizes; keys and eval mode are unchanged. (Several
// ranks: tests/train/test_distributed.cpp trains 2 ranks against 1 process.)
#include <gtest/gtest.h>

#include "airm/model/sync_batch_norm.hpp"

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

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

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
    EXPECT_LE(max_diff(a.y, b.y), 1e-5);
    EXPECT_LE(max_diff(a.dx, b.dx), 1e-5);
    EXPECT_LE(max_diff(a.dweight, b.dweight), 1e-4);
    EXPECT_LE(max_diff(a.dbias, b.dbias), 1e-4);
    EXPECT_LE(max_diff(a.running_mean, b.running_mean), 1e-6);
    EXPECT_LE(max_diff(a.running_var, b.running_var), 1e-5);
    EXPECT_EQ(synced->num_batches_tracked.item<int64_t>(), 1);
    // Eval mode uses the running statistics: identical to the native module.
    native->eval();
    synced->eval();
    const torch::Tensor probe = torch::randn(shape);
    EXPECT_LE(max_diff(native->forward(probe), synced->forward(probe)), 1e-6);
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
