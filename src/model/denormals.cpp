#include "airm/model/denormals.hpp"

#include <limits>
#include <vector>

namespace airm {

void zero_denormal_weights(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  const double smallest_normal = std::numeric_limits<float>::min();
  for (const std::vector<torch::Tensor>& tensors : {module.parameters(), module.buffers()}) {
    for (const torch::Tensor& t : tensors) {
      if (t.is_floating_point()) t.masked_fill_(t.abs() < smallest_normal, 0);
    }
  }
}

}  // namespace airm
