// average_weights_files: the coefficient-weighted mean of weights files of one network, checked
// against the mean computed by hand, and every mismatch refused with the file named.
#include <gtest/gtest.h>

#include "airm/error.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/weight_averaging.hpp"
#include "airm/model/weights.hpp"
#include "test_support.hpp"

namespace {

airm::ModelConfig small_refiner_config() {
  airm::ModelConfig config;
  config.name = "test";
  config.encoder = "mit_b0";
  config.affinity = false;
  config.mapping = "airmf";
  return config;
}

// A refiner with its own random weights (seeded), saved to `path`.
airm::AirmNet save_refiner(const std::filesystem::path& path, uint64_t seed,
                           const airm::ModelConfig& config = small_refiner_config(),
                           const airm::SaveOptions& options = airm::SaveOptions()) {
  torch::manual_seed(seed);
  airm::AirmNet net(config);
  airm::save_weights(path, net, options);
  return net;
}

using airm::test::error_message;

}  // namespace

TEST(AverageWeightsFiles, WeightedMeanOfEveryFloatingTensor) {
  airm::test::TempDir tmp("airm-average");
  airm::AirmNet a = save_refiner(tmp / "a.pt", 1);
  airm::AirmNet b = save_refiner(tmp / "b.pt", 2);
  airm::AirmNet c = save_refiner(tmp / "c.pt", 3);
  airm::average_weights_files({tmp / "a.pt", tmp / "b.pt", tmp / "c.pt"}, {0.2, 0.5, 0.3}, tmp / "mean.pt");

  airm::AirmNet mean = airm::load_weights(tmp / "mean.pt");
  EXPECT_EQ(mean->config().to_json(), a->config().to_json());
  const auto pa = a->named_parameters();
  const auto pb = b->named_parameters();
  const auto pc = c->named_parameters();
  int64_t checked = 0;
  for (const auto& item : mean->named_parameters()) {
    const torch::Tensor want = pa[item.key()] * 0.2 + pb[item.key()] * 0.5 + pc[item.key()] * 0.3;
    ASSERT_TRUE(torch::allclose(item.value(), want, 1e-6, 1e-7)) << item.key();
    ++checked;
  }
  EXPECT_GT(checked, 50);
}

TEST(AverageWeightsFiles, DefaultIsThePlainMeanAndOneFileIsItself) {
  airm::test::TempDir tmp("airm-average");
  airm::AirmNet a = save_refiner(tmp / "a.pt", 4);
  airm::AirmNet b = save_refiner(tmp / "b.pt", 5);
  airm::average_weights_files({tmp / "a.pt", tmp / "b.pt"}, {}, tmp / "mean.pt");
  airm::average_weights_files({tmp / "a.pt"}, {}, tmp / "same.pt");
  airm::average_weights_files({tmp / "a.pt", tmp / "b.pt"}, {1.0, 0.0}, tmp / "first.pt");

  airm::AirmNet mean = airm::load_weights(tmp / "mean.pt");
  airm::AirmNet same = airm::load_weights(tmp / "same.pt");
  airm::AirmNet first = airm::load_weights(tmp / "first.pt");
  const auto pa = a->named_parameters();
  const auto pb = b->named_parameters();
  for (const auto& item : mean->named_parameters()) {
    ASSERT_TRUE(torch::allclose(item.value(), (pa[item.key()] + pb[item.key()]) / 2, 1e-6, 1e-7)) << item.key();
    ASSERT_TRUE(torch::equal(same->named_parameters()[item.key()], pa[item.key()])) << item.key();
    ASSERT_TRUE(torch::equal(first->named_parameters()[item.key()], pa[item.key()])) << item.key();
  }
}

TEST(AverageWeightsFiles, HalfStorageInAndOut) {
  airm::test::TempDir tmp("airm-average");
  airm::SaveOptions half;
  half.half = true;
  save_refiner(tmp / "a16.pt", 6, small_refiner_config(), half);
  save_refiner(tmp / "b.pt", 7);
  airm::average_weights_files({tmp / "a16.pt", tmp / "b.pt"}, {}, tmp / "mean16.pt");  // first file's fp16
  airm::average_weights_files({tmp / "b.pt", tmp / "a16.pt"}, {}, tmp / "mean32.pt");  // first file's fp32
  airm::average_weights_files({tmp / "b.pt", tmp / "a16.pt"}, {}, tmp / "half.pt", half);

  const airm::WeightsFileContents m16 = airm::read_weights_file(tmp / "mean16.pt", "refiner", 1);
  const airm::WeightsFileContents m32 = airm::read_weights_file(tmp / "mean32.pt", "refiner", 1);
  const airm::WeightsFileContents h = airm::read_weights_file(tmp / "half.pt", "refiner", 1);
  for (const auto& [key, t32] : m32.tensors) {
    if (!t32.is_floating_point()) continue;
    EXPECT_EQ(t32.scalar_type(), torch::kFloat) << key;
    EXPECT_EQ(m16.tensors.at(key).scalar_type(), torch::kHalf) << key;
    EXPECT_EQ(h.tensors.at(key).scalar_type(), torch::kHalf) << key;
    ASSERT_TRUE(torch::allclose(m16.tensors.at(key).to(torch::kFloat), t32, 1e-2, 1e-3)) << key;
  }
}

TEST(AverageWeightsFiles, SegmenterFilesToo) {
  airm::test::TempDir tmp("airm-average");
  airm::SegmenterConfig config;
  config.name = "test";
  torch::manual_seed(8);
  airm::SegmenterNet a(config);
  torch::manual_seed(9);
  airm::SegmenterNet b(config);
  airm::save_segmenter_weights(tmp / "a.pt", a);
  airm::save_segmenter_weights(tmp / "b.pt", b);
  airm::average_weights_files({tmp / "a.pt", tmp / "b.pt"}, {0.25, 0.75}, tmp / "mean.pt");

  airm::SegmenterNet mean(config);
  airm::load_segmenter_weights_into(mean, tmp / "mean.pt");  // bit-exact loader
  const torch::Tensor want = a->classifier_->weight * 0.25 + b->classifier_->weight * 0.75;
  EXPECT_TRUE(torch::allclose(mean->classifier_->weight, want, 1e-6, 1e-7));
}

TEST(AverageWeightsFiles, MismatchesAreRefusedNamingTheFile) {
  airm::test::TempDir tmp("airm-average");
  save_refiner(tmp / "a.pt", 10);
  airm::ModelConfig other = small_refiner_config();
  other.mapping = "sirmf";
  save_refiner(tmp / "sirmf.pt", 11, other);
  airm::SegmenterConfig seg_config;
  seg_config.name = "test";
  airm::SegmenterNet seg(seg_config);
  airm::save_segmenter_weights(tmp / "seg.pt", seg);
  airm::test::write_bytes(tmp / "junk.pt", "not a weights file");
  const std::filesystem::path out = tmp / "out.pt";

  EXPECT_NE(error_message([&] { airm::average_weights_files({tmp / "a.pt", tmp / "sirmf.pt"}, {}, out); })
                .find("sirmf.pt: expected the network config"),
            std::string::npos);
  EXPECT_NE(error_message([&] { airm::average_weights_files({tmp / "a.pt", tmp / "seg.pt"}, {}, out); })
                .find("seg.pt: expected a refiner weights file"),
            std::string::npos);
  EXPECT_NE(error_message([&] { airm::average_weights_files({tmp / "a.pt", tmp / "junk.pt"}, {}, out); }).find("junk.pt"),
            std::string::npos);
  EXPECT_NE(error_message([&] { airm::average_weights_files({tmp / "a.pt", tmp / "a.pt"}, {0.5, 0.6}, out); })
                .find("expected coefficients summing to 1, got a sum of 1.1"),
            std::string::npos);
  EXPECT_NE(error_message([&] { airm::average_weights_files({tmp / "a.pt", tmp / "a.pt"}, {1.5, -0.5}, out); })
                .find("expected non-negative finite coefficients, got -0.5"),
            std::string::npos);
  EXPECT_NE(error_message([&] { airm::average_weights_files({tmp / "a.pt"}, {0.5, 0.5}, out); })
                .find("expected one coefficient per weights file (1), got 2 coefficients"),
            std::string::npos);
  EXPECT_NE(error_message([&] { airm::average_weights_files({}, {}, out); }).find("at least one weights file"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out));  // nothing written on any refusal
}
