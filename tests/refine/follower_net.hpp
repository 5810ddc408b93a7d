// A stand-in for trained weights in tests and benchmarks: a random network
// whose implicit function also reads the guide's mask strongly.
#pragma once

#include <string>

#include <torch/torch.h>

#include "airm/model/airm_net.hpp"

namespace airm::test {

// Two hidden units of the implicit function carry relu(+-4 m') (m' = 2m - 1,
// the coarse mask at the query) through the hidden layers to a logit of
// 8 m' + (the other, random units at half weight). The probabilities are
// then confident away from the coarse boundary and depend on the image near
// it, like a trained refiner's, so adaptive-vs-dense and bf16-vs-fp32
// comparisons mean something without trained weights (a purely random
// network gives p ~ 0.5 everywhere: every pixel is "uncertain"). Needs a
// config with the guide (RGB + mask last in the input).
inline void make_mask_following(AirmNet& net) {
  torch::NoGradGuard no_grad;
  auto params = net->named_parameters();
  const size_t layers = net->implicit_->layers().size();
  for (size_t l = 0; l < layers; ++l) {
    torch::Tensor w = params["implicit.mlp." + std::to_string(l) + ".weight"];
    torch::Tensor b = params["implicit.mlp." + std::to_string(l) + ".bias"];
    if (l == 0) {
      const int64_t mask_column = w.size(1) - 1;  // the guide is RGB then mask, last in the input
      w.narrow(0, 0, 2).zero_();
      w[0][mask_column] = 4.0;
      w[1][mask_column] = -4.0;
      b.narrow(0, 0, 2).zero_();
    } else if (l + 1 < layers) {
      w.narrow(0, 0, 2).zero_();
      w[0][0] = 1.0;
      w[1][1] = 1.0;
      b.narrow(0, 0, 2).zero_();
    } else {
      w.mul_(0.5);
      w[0][0] = 2.0;
      w[0][1] = -2.0;
      b.zero_();
    }
  }
}

}  // namespace airm::test
