// bf16 autocast for a scope (forward passes only; backward and the
// optimiser step run outside it).
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace airm::train_detail {

// Whether bf16 autocast also covers the encoder. Not with LibTorch 1.13 on
// CPU: its LayerNorm (MiT) rejects a bf16 input with fp32 weights ("expected
// scalar type BFloat16 but found Float"), since autocast leaves layer_norm
// alone there. So bf16 covers the implicit function's queries, the bulk of
// a training step at every-pixel queries; the encoder runs in fp32.
constexpr bool kAutocastEncoder = false;

class AutocastScope {
 public:
  AutocastScope(bool enabled, const torch::Device& device) : enabled_(enabled), cuda_(device.is_cuda()) {
    if (!enabled_) return;
    if (cuda_) {
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (cuda_) {
      at::autocast::set_enabled(false);
    } else {
      at::autocast::set_cpu_enabled(false);
    }
    at::autocast::clear_cache();  // cached bf16 copies of the weights are stale after a step
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool cuda_;
};

}  // namespace airm::train_detail
