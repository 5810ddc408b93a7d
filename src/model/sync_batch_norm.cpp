// Synchronised BatchNorm: a custom autograd function whose forward and
// backward each reduce one small per-channel buffer over the ranks.
#include "airm/model/sync_batch_norm.hpp"

#include <mutex>

namespace airm {
namespace {

std::mutex g_mutex;
BatchNormReducer g_reducer;

BatchNormReducer current_reducer() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_reducer;
}

torch::Tensor per_channel(const torch::Tensor& v) { return v.view({1, -1, 1, 1}); }

struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  // x [N,C,H,W], weight/bias [C], mean/invstd [C] outputs for the running statistics
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                               torch::Tensor* mean_out, torch::Tensor* var_out, double* count_out) {
    const BatchNormReducer reducer = current_reducer();
    TORCH_CHECK(reducer, "SyncBatchNorm2d: expected a reducer to be installed, got none");
    const int64_t C = x.size(1);
    const torch::Tensor xd = x.to(torch::kDouble);
    torch::Tensor sums = torch::cat({xd.sum({0, 2, 3}), (xd * xd).sum({0, 2, 3}),
                                     torch::full({1}, static_cast<double>(x.numel() / C), xd.options())});
    reducer(sums);
    const double n = sums[2 * C].item<double>();
    const torch::Tensor mean = sums.narrow(0, 0, C) / n;
    const torch::Tensor var = (sums.narrow(0, C, C) / n - mean * mean).clamp_min(0);
    const torch::Tensor invstd = (var + eps).rsqrt();
    *mean_out = mean;
    *var_out = var;
    *count_out = n;
    const torch::Tensor xhat = ((xd - per_channel(mean)) * per_channel(invstd)).to(x.dtype());
    ctx->save_for_backward({xhat, weight, invstd.to(x.dtype())});
    ctx->saved_data["count"] = n;
    return xhat * per_channel(weight) + per_channel(bias);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& xhat = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& invstd = saved[2];
    const double n = ctx->saved_data["count"].toDouble();
    // The reducer installed now (training keeps one installed across forward and backward).
    const BatchNormReducer reducer = current_reducer();
    TORCH_CHECK(reducer, "SyncBatchNorm2d: the reducer was removed before the backward pass");
    const torch::Tensor& dy = grads[0];
    const int64_t C = xhat.size(1);
    const torch::Tensor sum_dy = dy.sum({0, 2, 3});
    const torch::Tensor sum_dy_xhat = (dy * xhat).sum({0, 2, 3});
    // Parameter gradients stay local: data parallelism averages them like every other gradient.
    torch::Tensor global = torch::cat({sum_dy, sum_dy_xhat}).to(torch::kDouble);
    reducer(global);
    const torch::Tensor mean_dy = (global.narrow(0, 0, C) / n).to(dy.dtype());
    const torch::Tensor mean_dy_xhat = (global.narrow(0, C, C) / n).to(dy.dtype());
    const torch::Tensor dx =
        per_channel(weight * invstd) * (dy - per_channel(mean_dy) - xhat * per_channel(mean_dy_xhat));
    return {dx, sum_dy_xhat, sum_dy, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

ScopedBatchNormReducer::ScopedBatchNormReducer(BatchNormReducer reducer) {
  std::lock_guard<std::mutex> lock(g_mutex);
  previous_ = std::move(g_reducer);
  g_reducer = std::move(reducer);
}

ScopedBatchNormReducer::~ScopedBatchNormReducer() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_reducer = std::move(previous_);
}

SyncBatchNorm2dImpl::SyncBatchNorm2dImpl(torch::nn::BatchNormOptions options_) : options(std::move(options_)) {
  reset();
}

void SyncBatchNorm2dImpl::reset() {
  TORCH_CHECK(options.affine() && options.track_running_stats(),
              "SyncBatchNorm2d: expected affine with running statistics");
  const int64_t C = options.num_features();
  weight = register_parameter("weight", torch::empty({C}));
  bias = register_parameter("bias", torch::empty({C}));
  running_mean = register_buffer("running_mean", torch::zeros({C}));
  running_var = register_buffer("running_var", torch::ones({C}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  reset_parameters();
}

void SyncBatchNorm2dImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.fill_(1.0);
  bias.zero_();
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
}

void SyncBatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "airm::SyncBatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=" << options.momentum().value_or(0.1) << ")";
}

torch::Tensor SyncBatchNorm2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "SyncBatchNorm2d: expected [N,C,H,W], got ", x.sizes());
  if (is_training() && current_reducer()) return forward_synced(x);
  // What torch::nn::BatchNorm2d computes.
  if (is_training()) num_batches_tracked.add_(1);
  return torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(),
                           options.momentum().value_or(0.1), options.eps(), at::globalContext().userEnabledCuDNN());
}

torch::Tensor SyncBatchNorm2dImpl::forward_synced(const torch::Tensor& x) {
  torch::Tensor mean, var;
  double n = 0;
  const torch::Tensor y =
      SyncBatchNormFunction::apply(x, weight, bias, options.eps(), &mean, &var, &n);
  TORCH_CHECK(n > 1, "SyncBatchNorm2d: expected more than one value per channel over all ranks, got ", n);
  {
    torch::NoGradGuard no_grad;
    const double momentum = options.momentum().value_or(0.1);
    running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype()), momentum);
    running_var.mul_(1 - momentum).add_((var * (n / (n - 1))).to(running_var.dtype()), momentum);
    num_batches_tracked.add_(1);
  }
  return y;
}

}  // namespace airm
