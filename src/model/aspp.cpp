// ASPP of the mobile DeepLabV3: image pooling and a 1x1 branch.
#include "airm/model/aspp.hpp"

namespace airm {

AsppImpl::AsppImpl(int64_t in_channels, int64_t out_channels) {
  pool = register_module("pool", TfConv(in_channels, out_channels, 1, 1, 1, 1, TfActivation::kRelu));
  branch0 = register_module("branch0", TfConv(in_channels, out_channels, 1, 1, 1, 1, TfActivation::kRelu));
  project = register_module("project", TfConv(2 * out_channels, out_channels, 1, 1, 1, 1, TfActivation::kRelu));
  for (TfConv* conv : {&pool, &branch0, &project}) (*conv)->reset_parameters();
}

torch::Tensor AsppImpl::forward(const torch::Tensor& x) {
  // x [B,in,h,w] -> [B,out,h,w]
  const torch::Tensor pooled = pool->forward(x.mean({2, 3}, /*keepdim=*/true)).expand({-1, -1, x.size(2), x.size(3)});
  return project->forward(torch::cat({pooled, branch0->forward(x)}, 1));
}

}  // namespace airm
