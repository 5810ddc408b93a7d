// Building blocks of the MiT backbone: patch embedding, efficient
// self-attention, Mix-FFN, transformer block, stochastic depth.
#include "airm/model/mit.hpp"

#include <cmath>

namespace airm {

namespace nn = torch::nn;

torch::Tensor drop_path(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  const double keep = 1.0 - p;
  // One Bernoulli draw per sample, broadcast over the remaining dims.
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  const torch::Tensor mask = torch::empty(shape, x.options()).bernoulli_(keep);
  return x * mask / keep;
}

// ---------------------------------------------------------------------------

OverlapPatchEmbedImpl::OverlapPatchEmbedImpl(int64_t in_channels, int64_t dim, int64_t kernel, int64_t stride,
                                             double eps) {
  proj_ = register_module(
      "proj", nn::Conv2d(nn::Conv2dOptions(in_channels, dim, kernel).stride(stride).padding(kernel / 2).bias(true)));
  norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps)));
}

torch::Tensor OverlapPatchEmbedImpl::forward(const torch::Tensor& x, int64_t& h, int64_t& w) {
  // [B,Cin,H,W] -> [B,dim,h,w] -> [B,h*w,dim]
  torch::Tensor y = proj_->forward(x);
  h = y.size(2);
  w = y.size(3);
  y = y.flatten(2).transpose(1, 2);
  return norm_->forward(y);
}

// ---------------------------------------------------------------------------

EfficientSelfAttentionImpl::EfficientSelfAttentionImpl(int64_t dim, int64_t heads, int64_t sr_ratio, double eps)
    : dim_(dim), heads_(heads), sr_ratio_(sr_ratio), scale_(1.0 / std::sqrt(static_cast<double>(dim / heads))) {
  q_ = register_module("q", nn::Linear(nn::LinearOptions(dim, dim).bias(true)));
  kv_ = register_module("kv", nn::Linear(nn::LinearOptions(dim, 2 * dim).bias(true)));
  proj_ = register_module("proj", nn::Linear(nn::LinearOptions(dim, dim).bias(true)));
  if (sr_ratio > 1) {
    sr_ = register_module("sr", nn::Conv2d(nn::Conv2dOptions(dim, dim, sr_ratio).stride(sr_ratio).bias(true)));
    norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps)));
  }
}

torch::Tensor EfficientSelfAttentionImpl::forward(const torch::Tensor& x, int64_t h, int64_t w,
                                                  torch::Tensor* attention) {
  // [B,N,C] -> [B,N,C]
  const int64_t b = x.size(0);
  const int64_t n = x.size(1);
  const int64_t c = x.size(2);
  const int64_t head_dim = c / heads_;

  // Queries from every token: [B, heads, N, head_dim].
  const torch::Tensor q = q_->forward(x).reshape({b, n, heads_, head_dim}).permute({0, 2, 1, 3});

  // Keys/values from the spatially reduced tokens.
  torch::Tensor kv_src = x;
  if (sr_ratio_ > 1) {
    torch::Tensor grid = x.transpose(1, 2).reshape({b, c, h, w});
    grid = sr_->forward(grid);                       // [B, C, h/sr, w/sr]
    kv_src = norm_->forward(grid.flatten(2).transpose(1, 2));  // [B, N', C]
  }
  const int64_t n_kv = kv_src.size(1);
  // [B, N', 2C] -> [2, B, heads, N', head_dim]
  const torch::Tensor kv = kv_->forward(kv_src).reshape({b, n_kv, 2, heads_, head_dim}).permute({2, 0, 3, 1, 4});
  const torch::Tensor k = kv[0];
  const torch::Tensor v = kv[1];

  torch::Tensor attn = torch::matmul(q, k.transpose(-2, -1)) * scale_;  // [B, heads, N, N']
  attn = attn.softmax(-1);
  if (attention != nullptr) *attention = attn;

  torch::Tensor out = torch::matmul(attn, v);  // [B, heads, N, head_dim]
  out = out.transpose(1, 2).reshape({b, n, c});
  return proj_->forward(out);
}

// ---------------------------------------------------------------------------

DepthwiseConvImpl::DepthwiseConvImpl(int64_t channels) {
  dwconv_ = register_module(
      "dwconv", nn::Conv2d(nn::Conv2dOptions(channels, channels, 3).stride(1).padding(1).groups(channels).bias(true)));
}

torch::Tensor DepthwiseConvImpl::forward(const torch::Tensor& x, int64_t h, int64_t w) {
  // [B,N,C] -> [B,C,h,w] -> conv -> [B,N,C]
  const int64_t b = x.size(0);
  const int64_t c = x.size(2);
  torch::Tensor grid = x.transpose(1, 2).reshape({b, c, h, w});
  return dwconv_->forward(grid).flatten(2).transpose(1, 2);
}

// ---------------------------------------------------------------------------

MixFfnImpl::MixFfnImpl(int64_t dim, int64_t hidden) {
  fc1_ = register_module("fc1", nn::Linear(nn::LinearOptions(dim, hidden).bias(true)));
  dwconv_ = register_module("dwconv", DepthwiseConv(hidden));
  fc2_ = register_module("fc2", nn::Linear(nn::LinearOptions(hidden, dim).bias(true)));
}

torch::Tensor MixFfnImpl::forward(const torch::Tensor& x, int64_t h, int64_t w) {
  // [B,N,C] -> [B,N,hidden] -> [B,N,C]
  torch::Tensor y = fc1_->forward(x);
  y = dwconv_->forward(y, h, w);
  y = torch::gelu(y);  // exact (erf) GELU
  return fc2_->forward(y);
}

// ---------------------------------------------------------------------------

MitBlockImpl::MitBlockImpl(int64_t dim, int64_t heads, int64_t mlp_ratio, int64_t sr_ratio, double drop_path_rate,
                           double eps, double sr_norm_eps)
    : drop_path_rate_(drop_path_rate) {
  norm1_ = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps)));
  attn_ = register_module("attn", EfficientSelfAttention(dim, heads, sr_ratio, sr_norm_eps));
  norm2_ = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps)));
  mlp_ = register_module("mlp", MixFfn(dim, dim * mlp_ratio));
}

torch::Tensor MitBlockImpl::forward(const torch::Tensor& x, int64_t h, int64_t w, torch::Tensor* attention) {
  // [B,N,C] -> [B,N,C]
  torch::Tensor y = x + drop_path(attn_->forward(norm1_->forward(x), h, w, attention), drop_path_rate_, is_training());
  return y + drop_path(mlp_->forward(norm2_->forward(y), h, w), drop_path_rate_, is_training());
}

}  // namespace airm
