// BatchNorm2d whose training-mode statistics can span processes: with a
// reducer installed (data-parallel training installs an all-reduce), the
// batch mean and variance are those of the global batch of all ranks, and
// the backward pass reduces its two per-channel sums the same way — so N
// ranks of batch b compute what one process of batch N*b computes. Without
// a reducer, or in eval mode, it is torch::nn::BatchNorm2d exactly (same
// parameters, buffers and state-dict keys).
#pragma once

#include <functional>

#include <torch/torch.h>

namespace airm {

// Sums a tensor over all ranks, in place (every rank calls it in the same order).
using BatchNormReducer = std::function<void(torch::Tensor& sums)>;

// Installs `reducer` for every SyncBatchNorm2d in the process while alive
// (restores the previous one after).
class ScopedBatchNormReducer {
 public:
  explicit ScopedBatchNormReducer(BatchNormReducer reducer);
  ~ScopedBatchNormReducer();
  ScopedBatchNormReducer(const ScopedBatchNormReducer&) = delete;
  ScopedBatchNormReducer& operator=(const ScopedBatchNormReducer&) = delete;

 private:
  BatchNormReducer previous_;
};

// Parameters weight/bias [C], buffers running_mean/running_var [C] and
// num_batches_tracked: torch::nn::BatchNorm2d's keys, so weights files are
// interchangeable. Affine with running statistics only.
class SyncBatchNorm2dImpl : public torch::nn::Cloneable<SyncBatchNorm2dImpl> {
 public:
  explicit SyncBatchNorm2dImpl(torch::nn::BatchNormOptions options);
  void reset() override;
  // weight 1, bias 0, running statistics (0, 1), count 0.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  // x [N,C,H,W] -> [N,C,H,W]
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  torch::Tensor forward_synced(const torch::Tensor& x);
};
TORCH_MODULE(SyncBatchNorm2d);

}  // namespace airm
