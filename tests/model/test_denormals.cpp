// Denormal weights are zeroed by the inference loaders (Refiner, load_segmenter_weights) and by nothing
// that restores a training run.
#include <gtest/gtest.h>

#include "airm/model/airm_net.hpp"
#include "airm/model/denormals.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/refiner.hpp"
#include "test_support.hpp"

namespace {

// Writes `values` into the first elements of `t` (flattened).
void set_first(torch::Tensor t, const std::vector<float>& values) {
  torch::NoGradGuard no_grad;
  t.view(-1).narrow(0, 0, static_cast<int64_t>(values.size())).copy_(torch::tensor(values));
}

torch::Tensor first(const torch::Tensor& t, int64_t n) { return t.detach().reshape(-1).narrow(0, 0, n).clone(); }

const std::vector<float> kMixed = {1e-40f, -2e-39f, 0.5f, -1e-38f, 1.2e-38f, -3.0f};
const torch::Tensor kZeroed = torch::tensor({0.0f, 0.0f, 0.5f, 0.0f, 1.2e-38f, -3.0f});  // 1e-38 < FLT_MIN

}  // namespace

TEST(ZeroDenormalWeights, DenormalsBecomeZeroAndNormalValuesStayBitExact) {
  torch::nn::Linear linear(3, 2);
  set_first(linear->weight, kMixed);
  airm::zero_denormal_weights(*linear);
  EXPECT_TRUE(torch::equal(first(linear->weight, 6), kZeroed)) << linear->weight;
}

TEST(ZeroDenormalWeights, BuffersTooIntegerOnesSkipped) {
  torch::nn::BatchNorm2d norm(6);
  set_first(norm->running_var, kMixed);
  airm::zero_denormal_weights(*norm);  // num_batches_tracked (int64) is left alone
  EXPECT_TRUE(torch::equal(first(norm->running_var, 6), kZeroed)) << norm->running_var;
}

TEST(ZeroDenormalWeights, TheRefinerZeroesItsNetwork) {
  airm::ModelConfig config;
  config.encoder = "mit_b0";
  config.affinity = false;
  config.mapping = "sirmf";
  airm::AirmNet net(config);
  torch::Tensor weight = net->parameters().front();
  set_first(weight, kMixed);
  airm::Refiner refiner(net, airm::RefinerOptions());  // shares the module; on the CPU nothing is copied
  EXPECT_TRUE(torch::equal(first(weight, 6), kZeroed)) << first(weight, 6);
}

TEST(ZeroDenormalWeights, SegmenterLoadZeroesAndLoadIntoKeepsForResume) {
  airm::test::TempDir tmp("airm-denormal");
  airm::SegmenterConfig config;
  config.name = "test";
  airm::SegmenterNet net(config);
  set_first(net->classifier_->weight, kMixed);
  airm::save_segmenter_weights(tmp / "seg.pt", net);

  airm::SegmenterNet loaded = airm::load_segmenter_weights(tmp / "seg.pt");
  EXPECT_TRUE(torch::equal(first(loaded->classifier_->weight, 6), kZeroed));

  airm::SegmenterNet resumed(config);
  airm::load_segmenter_weights_into(resumed, tmp / "seg.pt");
  EXPECT_TRUE(torch::equal(first(resumed->classifier_->weight, 6), torch::tensor(kMixed)));
}
