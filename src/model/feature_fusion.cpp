#include "airm/model/feature_fusion.hpp"

#include "airm/error.hpp"
#include "airm/model/sync_batch_norm.hpp"

namespace airm {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {
nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Sequential(
      nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false)),
      SyncBatchNorm2d(nn::BatchNorm2dOptions(out)), nn::ReLU(nn::ReLUOptions(true)));
}
}  // namespace

FeatureFusionImpl::FeatureFusionImpl(FeatureFusionOptions options) : options_(std::move(options)) {
  if (options_.stage_channels().empty()) throw Error("", "feature fusion: expected at least one stage");
  projections_ = register_module("projections", nn::ModuleList());
  for (int64_t channels : options_.stage_channels()) {
    projections_->push_back(nn::Conv2d(nn::Conv2dOptions(channels, options_.dim(), 1)));
  }
  stem_ = register_module("stem", nn::Sequential());
  stem_->extend(*conv_bn_relu(options_.in_channels(), options_.stem_channels(), 3, 2));
  stem_->extend(*conv_bn_relu(options_.stem_channels(), options_.stem_channels(), 3, 1));
  fuse_ = register_module("fuse", nn::Sequential());
  fuse_->extend(*conv_bn_relu(options_.dim() + options_.stem_channels(), options_.dim(), 1, 1));
  fuse_->extend(*conv_bn_relu(options_.dim(), options_.dim(), 3, 1));
}

torch::Tensor FeatureFusionImpl::forward(const torch::Tensor& input, const std::vector<torch::Tensor>& stages) {
  TORCH_CHECK(stages.size() == projections_->size(), "feature fusion: expected ", projections_->size(),
              " stages, got ", stages.size());
  torch::Tensor fine = stem_->forward(input);  // [B, stem, ceil(H/2), ceil(W/2)]
  const std::vector<int64_t> size{fine.size(2), fine.size(3)};
  torch::Tensor sum;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    torch::Tensor projected = projections_[i]->as<nn::Conv2d>()->forward(stages[i]);
    if (projected.size(2) != size[0] || projected.size(3) != size[1]) {
      projected = F::interpolate(projected,
                                 F::InterpolateFuncOptions().size(size).mode(torch::kBilinear).align_corners(false));
    }
    sum = sum.defined() ? sum + projected : projected;
  }
  return fuse_->forward(torch::cat({sum, fine}, 1));
}

}  // namespace airm
