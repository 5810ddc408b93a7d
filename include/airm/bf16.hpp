// Whether bfloat16 runs here. LibTorch's CPU bf16 convolutions go through
// oneDNN, which has no bf16 convolution below AVX-512 (an AVX2-only CPU, or
// ONEDNN_MAX_CPU_ISA=AVX2): there they throw "could not create a primitive
// descriptor iterator". Matrix products still run. We probe instead of
// reading CPU flags, since the ISA oneDNN uses can be capped at run time.
#pragma once

#include <torch/torch.h>

namespace airm {

// True when a bf16 convolution runs on `device` (probed once per device type, then cached).
bool bf16_convolutions_supported(const torch::Device& device);

// `requested && bf16_convolutions_supported(device)`; when it falls back to
// fp32 it says so once per process on stderr ("note: ...").
bool use_bf16(bool requested, const torch::Device& device);

}  // namespace airm
