#include "airm/model/refinement_modules.hpp"

#include <algorithm>
#include <string>

#include "airm/error.hpp"

namespace airm {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {
nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t kernel) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(false)),
                        nn::BatchNorm2d(out), nn::ReLU(nn::ReLUOptions(true)));
}

void check_positive(const char* module, const char* field, int64_t value) {
  if (value < 1) {
    throw Error("", std::string(module) + " " + field + ": expected >= 1, got " + std::to_string(value));
  }
}
}  // namespace

torch::Tensor resize_bilinear(const torch::Tensor& x, int64_t h, int64_t w) {
  if (x.size(2) == h && x.size(3) == w) return x;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{h, w})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

torch::Tensor resize_offset(const torch::Tensor& offset, int64_t h, int64_t w) {
  TORCH_CHECK(offset.dim() == 4 && offset.size(1) == 2, "expected an offset field [B,2,h,w], got ", offset.sizes());
  const double sx = static_cast<double>(w) / static_cast<double>(offset.size(3));
  const double sy = static_cast<double>(h) / static_cast<double>(offset.size(2));
  const torch::Tensor scale = torch::tensor({sx, sy}, offset.options()).view({1, 2, 1, 1});
  return resize_bilinear(offset, h, w) * scale;
}

torch::Tensor warp_by_offset(const torch::Tensor& features, const torch::Tensor& offset) {
  TORCH_CHECK(features.dim() == 4, "expected features [B,C,H,W], got ", features.sizes());
  const int64_t b = features.size(0), h = features.size(2), w = features.size(3);
  TORCH_CHECK(offset.dim() == 4 && offset.size(0) == b && offset.size(1) == 2 && offset.size(2) == h &&
                  offset.size(3) == w,
              "expected an offset field [", b, ",2,", h, ",", w, "], got ", offset.sizes());
  // Sampling coordinates need more than 8-11 mantissa bits: half types sample in float.
  const bool half = features.scalar_type() == torch::kHalf || features.scalar_type() == torch::kBFloat16;
  const torch::Tensor x = half ? features.to(torch::kFloat) : features;
  const auto opts = x.options();
  // Pixel centres in normalised units (align_corners=false): (2i+1)/n - 1.
  const torch::Tensor gx = (torch::arange(w, opts) * 2 + 1) / static_cast<double>(w) - 1;
  const torch::Tensor gy = (torch::arange(h, opts) * 2 + 1) / static_cast<double>(h) - 1;
  const torch::Tensor base =
      torch::stack({gx.view({1, w}).expand({h, w}), gy.view({h, 1}).expand({h, w})}, -1).unsqueeze(0).expand({b, h, w, 2});
  const torch::Tensor scale = torch::tensor({2.0 / static_cast<double>(w), 2.0 / static_cast<double>(h)}, opts);
  const torch::Tensor grid = base + offset.to(x.dtype()).permute({0, 2, 3, 1}) * scale;
  const auto sample = [&](const torch::Tensor& g) {
    return F::grid_sample(x, g, F::GridSampleFuncOptions()
                                    .mode(torch::kBilinear)
                                    .padding_mode(torch::kBorder)
                                    .align_corners(false));
  };
  // grid_sample at the pixel centres is the identity only up to float rounding of the unnormalised
  // coordinates (~1e-5 on 128-wide maps); subtracting that sampling makes a zero offset exact.
  const torch::Tensor warped = x + (sample(grid) - sample(base));
  return half ? warped.to(features.scalar_type()) : warped;
}

// --- SRM ---------------------------------------------------------------------

void SemanticRefinementModuleOptions::validate() const {
  check_positive("semantic refinement module", "channels", channels_);
  check_positive("semantic refinement module", "hidden", hidden_);
}

SemanticRefinementModuleImpl::SemanticRefinementModuleImpl(SemanticRefinementModuleOptions options)
    : options_(std::move(options)) {
  options_.validate();
  const int64_t c = options_.channels(), hidden = options_.hidden();
  head_ = register_module("head", nn::Sequential());
  head_->extend(*conv_bn_relu(2 * c + 2, hidden, 3));
  head_->extend(*conv_bn_relu(hidden, hidden, 3));
  offset_ = register_module("offset", nn::Conv2d(nn::Conv2dOptions(hidden, 2, 3).padding(1)));
  reset_offset_head();
}

void SemanticRefinementModuleImpl::reset_offset_head() {
  torch::NoGradGuard no_grad;
  offset_->weight.zero_();
  offset_->bias.zero_();
}

SemanticRefinementOutput SemanticRefinementModuleImpl::forward(const torch::Tensor& high, const torch::Tensor& coarse,
                                                               const torch::Tensor& prev_offset) {
  const int64_t c = options_.channels();
  TORCH_CHECK(high.dim() == 4 && high.size(1) == c, "SRM: expected high-resolution features [B,", c,
              ",h,w], got ", high.sizes());
  TORCH_CHECK(coarse.dim() == 4 && coarse.size(0) == high.size(0) && coarse.size(1) == c,
              "SRM: expected coarse features [", high.size(0), ",", c, ",h',w'], got ", coarse.sizes());
  const int64_t h = high.size(2), w = high.size(3);
  const torch::Tensor up = resize_bilinear(coarse, h, w);  // [B,C,h,w]
  torch::Tensor prev;
  if (prev_offset.defined()) {
    TORCH_CHECK(prev_offset.size(0) == coarse.size(0) && prev_offset.size(2) == coarse.size(2) &&
                    prev_offset.size(3) == coarse.size(3),
                "SRM: expected the previous offsets on the coarse grid, got ", prev_offset.sizes(), " for ",
                coarse.sizes());
    prev = resize_offset(prev_offset, h, w);  // [B,2,h,w]
  } else {
    prev = torch::zeros({high.size(0), 2, h, w}, high.options());
  }
  SemanticRefinementOutput out;
  out.offset = offset_->forward(head_->forward(torch::cat({high, up, prev.to(high.dtype())}, 1)));  // [B,2,h,w]
  out.features = warp_by_offset(up, out.offset);                                                   // [B,C,h,w]
  return out;
}

// --- contextual refinement ---------------------------------------------------

int64_t ContextualRefinementModuleOptions::hidden_channels() const {
  return std::max<int64_t>(in_channels_ / std::max<int64_t>(reduction_, 1), 8);
}

void ContextualRefinementModuleOptions::validate() const {
  check_positive("contextual refinement module", "in_channels", in_channels_);
  check_positive("contextual refinement module", "out_channels", out_channels_);
  check_positive("contextual refinement module", "reduction", reduction_);
  if (spatial_kernel_ < 1 || spatial_kernel_ % 2 == 0) {
    throw Error("", "contextual refinement module spatial_kernel: expected an odd size >= 1, got " +
                        std::to_string(spatial_kernel_));
  }
}

ContextualRefinementModuleImpl::ContextualRefinementModuleImpl(ContextualRefinementModuleOptions options)
    : options_(std::move(options)) {
  options_.validate();
  const int64_t c = options_.in_channels(), hidden = options_.hidden_channels(), k = options_.spatial_kernel();
  channel_mlp_ = register_module(
      "channel_mlp", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(c, hidden, 1)), nn::ReLU(nn::ReLUOptions(true)),
                                    nn::Conv2d(nn::Conv2dOptions(hidden, c, 1))));
  spatial_ = register_module("spatial", nn::Conv2d(nn::Conv2dOptions(2, 1, k).padding(k / 2)));
  project_ = register_module("project", conv_bn_relu(c, options_.out_channels(), 1));
}

torch::Tensor ContextualRefinementModuleImpl::forward(const std::vector<torch::Tensor>& maps) {
  TORCH_CHECK(!maps.empty(), "contextual refinement: expected at least one map");
  const int64_t h = maps.front().size(2), w = maps.front().size(3);
  std::vector<torch::Tensor> resized;
  resized.reserve(maps.size());
  for (const torch::Tensor& map : maps) {
    TORCH_CHECK(map.dim() == 4 && map.size(0) == maps.front().size(0), "contextual refinement: expected NCHW maps of one batch, got ",
                map.sizes());
    resized.push_back(resize_bilinear(map, h, w));
  }
  torch::Tensor x = torch::cat(resized, 1);  // [B,sumC,h,w]
  TORCH_CHECK(x.size(1) == options_.in_channels(), "contextual refinement: expected ", options_.in_channels(),
              " channels in all, got ", x.size(1));
  x = x * torch::sigmoid(channel_mlp_->forward(x.mean({2, 3}, /*keepdim=*/true)));  // channel attention
  const torch::Tensor pooled = torch::cat({x.mean(1, true), std::get<0>(x.max(1, true))}, 1);  // [B,2,h,w]
  x = x * torch::sigmoid(spatial_->forward(pooled));                                         // spatial attention
  return project_->forward(x);                                                               // [B,out,h,w]
}

}  // namespace airm
