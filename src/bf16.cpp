// bfloat16 support probe (airm/bf16.hpp).
#include "airm/bf16.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace airm {

bool bf16_convolutions_supported(const torch::Device& device) {
  static std::mutex mutex;
  static int cpu = -1, cuda = -1;  // -1: not probed yet
  std::lock_guard<std::mutex> lock(mutex);
  int& known = device.is_cuda() ? cuda : cpu;
  if (known < 0) {
    try {
      torch::NoGradGuard no_grad;
      const auto options = torch::TensorOptions().dtype(torch::kBFloat16).device(device);
      torch::conv2d(torch::ones({1, 2, 3, 3}, options), torch::ones({2, 2, 3, 3}, options));
      known = 1;
    } catch (const std::exception&) {  // c10::Error, or oneDNN's own dnnl::error
      known = 0;
    }
  }
  return known == 1;
}

bool use_bf16(bool requested, const torch::Device& device) {
  if (!requested) return false;
  if (bf16_convolutions_supported(device)) return true;
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    std::fprintf(stderr,
                 "note: bf16 requested, but this machine's oneDNN has no bf16 convolutions (it needs AVX-512); "
                 "running in fp32\n");
  }
  return false;
}

}  // namespace airm
