#include "airm/model/cost.hpp"

#include <functional>

#include <torch/csrc/autograd/profiler_legacy.h>

namespace airm {
namespace {

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

// Floating-point operations LibTorch's profiler attributes to `work`.
double profile_flops(const std::function<void()>& work) {
  using namespace torch::autograd::profiler;
  enableProfilerLegacy(ProfilerConfig(ProfilerState::CPU, /*report_input_shapes=*/true, /*profile_memory=*/false,
                                      /*with_stack=*/false, /*with_flops=*/true));
  try {
    work();
  } catch (...) {
    disableProfilerLegacy();
    throw;
  }
  double flops = 0;
  auto events = disableProfilerLegacy();
  for (auto& thread_events : events) {
    for (auto& event : thread_events) flops += static_cast<double>(event.flops());
  }
  return flops;
}

}  // namespace

ModuleCost measure_module_cost(const std::string& name, const torch::nn::Module& module,
                               const std::function<void()>& work) {
  torch::NoGradGuard no_grad;
  return {name, count_parameters(module), profile_flops(work) / 1e9};
}

ModelCost measure_model_cost(AirmNet& net, int64_t height, int64_t width) {
  torch::NoGradGuard no_grad;
  net->eval();
  ModelCost cost;
  cost.height = height;
  cost.width = width;
  const torch::Tensor input = torch::randn({1, net->config().in_channels, height, width});
  std::vector<torch::Tensor> stages;
  std::vector<torch::Tensor> attentions;
  torch::Tensor affinity_features;

  ModuleCost encoder{"encoder", 0, 0};
  if (net->mit_) {
    encoder.parameters = count_parameters(*net->mit_);
    encoder.gflops = profile_flops([&] {
      MitOutput out = net->mit_->forward(input, net->affinity_head_ ? true : false);
      stages = out.stages;
      attentions = out.attentions;
    });
  } else if (net->mobilenet_) {
    encoder.parameters = count_parameters(*net->mobilenet_);
    encoder.gflops = profile_flops([&] { stages = net->mobilenet_stages(input); });
  } else {
    encoder.parameters = count_parameters(*net->resnet_);
    encoder.gflops = profile_flops([&] {
      ResNetFeatures out = net->resnet_->forward(input);
      stages = out.list();
      affinity_features = out.layer3;
    });
  }
  cost.modules.push_back(encoder);

  if (net->affinity_head_) {
    ModuleCost head{"affinity_head", count_parameters(*net->affinity_head_), 0};
    head.gflops = profile_flops([&] { net->affinity_head_->forward(attentions); });
    cost.modules.push_back(head);
  }

  torch::Tensor features;
  ModuleCost fusion{"fusion", count_parameters(*net->fusion_), 0};
  fusion.gflops = profile_flops([&] { features = net->fusion_->forward(input, stages); });
  cost.modules.push_back(fusion);

  std::vector<LayerWeights> weights;
  if (net->hyper_) {
    ModuleCost hyper{"hyper", count_parameters(*net->hyper_), 0};
    hyper.gflops = profile_flops([&] { weights = modulate(net->implicit_, net->hyper_->forward(features)); });
    cost.modules.push_back(hyper);
  }

  ModuleCost implicit{"implicit", count_parameters(*net->implicit_), 0};
  const torch::Tensor coord = make_pixel_grid(height, width).unsqueeze(0);
  const torch::Tensor cell = cell_for(height, width);
  const torch::Tensor guide =
      net->config().guide ? AirmNetImpl::sample_guide(input, coord) : torch::Tensor();
  implicit.gflops = profile_flops([&] {
    net->implicit_->query(features, coord, cell, guide, weights.empty() ? nullptr : &weights, 1 << 16);
  });
  cost.modules.push_back(implicit);

  for (ModuleCost& m : cost.modules) {
    m.gflops /= 1e9;
    cost.parameters += m.parameters;
    if (m.module != "implicit") cost.gflops_per_image += m.gflops;
  }
  cost.implicit_gflops_per_million_queries = implicit.gflops / 1e9 * 1e6 / static_cast<double>(height * width);
  return cost;
}

}  // namespace airm
