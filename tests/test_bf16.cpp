// The bf16 probe (airm/bf16.hpp): it answers what a bf16 convolution does
// here, caches it, and use_bf16 falls back to fp32 where it cannot run. The
// suite runs this file twice: as is, and with oneDNN capped at AVX2
// (ONEDNN_MAX_CPU_ISA=AVX2), where bf16 convolutions do not exist.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <torch/torch.h>

#include "airm/bf16.hpp"

namespace {

bool convolution_runs() {
  try {
    torch::NoGradGuard no_grad;
    torch::conv2d(torch::randn({1, 3, 5, 6}).to(torch::kBFloat16), torch::randn({4, 3, 3, 3}).to(torch::kBFloat16));
    return true;
  } catch (const std::exception&) {  // oneDNN throws its own dnnl::error
    return false;
  }
}

}  // namespace

TEST(Bf16, ProbeAnswersWhatAConvolutionDoes) {
  const torch::Device cpu(torch::kCPU);
  const bool runs = convolution_runs();
  EXPECT_EQ(airm::bf16_convolutions_supported(cpu), runs);
  EXPECT_EQ(airm::bf16_convolutions_supported(cpu), runs);  // cached, same answer
  EXPECT_EQ(airm::use_bf16(true, cpu), runs);
  EXPECT_FALSE(airm::use_bf16(false, cpu));
  const char* isa = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (isa && std::string(isa) == "AVX2") EXPECT_FALSE(runs) << "oneDNN has no bf16 convolution at AVX2";
}
