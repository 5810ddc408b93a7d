// Parameters and floating-point operations of each part of an AirmNet.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "airm/model/airm_net.hpp"

namespace airm {

struct ModuleCost {
  std::string module;     // encoder, affinity_head, fusion, hyper, implicit
  int64_t parameters = 0;
  double gflops = 0;      // 2 x multiply-adds (convolutions and matrix products), one image
};

struct ModelCost {
  std::vector<ModuleCost> modules;  // in forward order
  int64_t parameters = 0;           // total
  double gflops_per_image = 0;      // everything but the implicit function's queries
  double implicit_gflops_per_million_queries = 0;
  int64_t height = 0, width = 0;
};

// Counts on a 1 x in_channels x height x width input (eval mode, CPU) with
// LibTorch's profiler; the implicit function is counted for one query per
// input pixel and reported both in its row and per million queries.
ModelCost measure_model_cost(AirmNet& net, int64_t height, int64_t width);

// One row for any module: its parameters and the GFLOPs (as above) that
// LibTorch's profiler attributes to `work` (run once, without gradients).
ModuleCost measure_module_cost(const std::string& name, const torch::nn::Module& module,
                               const std::function<void()>& work);

}  // namespace airm
