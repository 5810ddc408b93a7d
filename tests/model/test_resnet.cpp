// ResNet-50 encoder: strides and channels, parameter counts, torchvision key
// names, state-dict loading (3 -> 4 channels, errors), gradients, timing.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <torch/csrc/jit/serialization/pickle.h>

#include "airm/error.hpp"
#include "airm/model/resnet.hpp"
#include "test_support.hpp"

namespace {

using airm::ResNetEncoder;
using airm::ResNetOptions;

int64_t count_parameters(ResNetEncoder& encoder) {
  int64_t n = 0;
  for (const auto& p : encoder->parameters()) n += p.numel();
  return n;
}

std::vector<int64_t> shape(int64_t b, int64_t c, int64_t h, int64_t w) { return {b, c, h, w}; }

// Writes name -> tensor with torch::pickle_save of a c10::Dict, the format
// Python's torch.save(dict) produces for a plain dict of tensors.
void save_dict(const std::map<std::string, torch::Tensor>& entries, const std::filesystem::path& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [key, value] : entries) dict.insert(key, value.detach().clone());
  const std::vector<char> bytes = torch::pickle_save(torch::IValue(dict));
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::map<std::string, torch::Tensor> state_of(ResNetEncoder& encoder) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : encoder->named_parameters()) out[item.key()] = item.value().detach().clone();
  for (const auto& item : encoder->named_buffers()) out[item.key()] = item.value().detach().clone();
  return out;
}

// Moves the BatchNorm statistics away from their initial values.
void run_in_training(ResNetEncoder& encoder, int64_t in_channels) {
  torch::NoGradGuard no_grad;
  encoder->train();
  encoder->forward(torch::randn({2, in_channels, 32, 32}));
  encoder->eval();
}

using airm::test::error_message;

TEST(ResNet, OutputStridesAndChannelsOnOddInput) {
  torch::manual_seed(0);
  ResNetEncoder encoder{ResNetOptions()};
  encoder->eval();
  torch::NoGradGuard no_grad;
  const auto f = encoder->forward(torch::randn({1, 4, 67, 45}));
  EXPECT_EQ(f.stem.sizes().vec(), shape(1, 64, 34, 23));
  EXPECT_EQ(f.layer1.sizes().vec(), shape(1, 256, 17, 12));
  EXPECT_EQ(f.layer2.sizes().vec(), shape(1, 512, 9, 6));
  EXPECT_EQ(f.layer3.sizes().vec(), shape(1, 1024, 9, 6));
  EXPECT_FALSE(f.layer4.defined());
  EXPECT_EQ(f.list().size(), 4u);
  EXPECT_EQ(encoder->stage_strides(), (std::vector<int64_t>{2, 4, 8, 8}));
  EXPECT_EQ(encoder->stage_channels(), (std::vector<int64_t>{64, 256, 512, 1024}));
}

TEST(ResNet, Layer4AndOtherOutputStrides) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({1, 3, 67, 45});
  {
    ResNetEncoder encoder(ResNetOptions().in_channels(3).with_layer4(true));
    encoder->eval();
    const auto f = encoder->forward(x);
    EXPECT_EQ(f.layer3.sizes().vec(), shape(1, 1024, 9, 6));
    EXPECT_EQ(f.layer4.sizes().vec(), shape(1, 2048, 9, 6));
    EXPECT_EQ(encoder->stage_strides(), (std::vector<int64_t>{2, 4, 8, 8, 8}));
    EXPECT_EQ(encoder->stage_channels().back(), 2048);
    // Dilation: layer3's first block keeps dilation 1, the others use 2;
    // layer4's first uses 2, the others 4.
    auto dilation_of = [&](const std::string& name) {
      for (const auto& item : encoder->named_modules()) {
        if (item.key() == name) return (*item.value()->as<torch::nn::Conv2d>()->options.dilation())[0];
      }
      return int64_t{-1};
    };
    EXPECT_EQ(dilation_of("layer2.1.conv2"), 1);
    EXPECT_EQ(dilation_of("layer3.0.conv2"), 1);
    EXPECT_EQ(dilation_of("layer3.1.conv2"), 2);
    EXPECT_EQ(dilation_of("layer3.5.conv2"), 2);
    EXPECT_EQ(dilation_of("layer4.0.conv2"), 2);
    EXPECT_EQ(dilation_of("layer4.2.conv2"), 4);
  }
  {
    ResNetEncoder encoder(ResNetOptions().in_channels(3).with_layer4(true).output_stride(16));
    encoder->eval();
    const auto f = encoder->forward(x);
    EXPECT_EQ(f.layer3.sizes().vec(), shape(1, 1024, 5, 3));
    EXPECT_EQ(f.layer4.sizes().vec(), shape(1, 2048, 5, 3));
    EXPECT_EQ(encoder->stage_strides(), (std::vector<int64_t>{2, 4, 8, 16, 16}));
  }
  {
    ResNetEncoder encoder(ResNetOptions().in_channels(3).with_layer4(true).output_stride(32));
    encoder->eval();
    const auto f = encoder->forward(x);
    EXPECT_EQ(f.layer4.sizes().vec(), shape(1, 2048, 3, 2));
    EXPECT_EQ(encoder->stage_strides(), (std::vector<int64_t>{2, 4, 8, 16, 32}));
  }
}

TEST(ResNet, ParameterCounts) {
  ResNetEncoder full3(ResNetOptions().in_channels(3).with_layer4(true));
  ResNetEncoder full4(ResNetOptions().in_channels(4).with_layer4(true));
  ResNetEncoder trunc3(ResNetOptions().in_channels(3));
  ResNetEncoder trunc4(ResNetOptions().in_channels(4));
  // torchvision ResNet-50: 25,557,032 parameters, of which fc 2048*1000+1000.
  EXPECT_EQ(count_parameters(full3), 25557032 - (2048 * 1000 + 1000));
  EXPECT_EQ(count_parameters(full3), 23508032);
  EXPECT_EQ(count_parameters(full4), 23508032 + 64 * 7 * 7);
  EXPECT_EQ(count_parameters(trunc3), 8543296);
  EXPECT_EQ(count_parameters(trunc4), 8543296 + 64 * 7 * 7);
  // The dilation changes no shape.
  ResNetEncoder os32(ResNetOptions().in_channels(3).with_layer4(true).output_stride(32));
  EXPECT_EQ(count_parameters(os32), 23508032);
  std::cout << "[ counts   ] 3ch+layer4 " << count_parameters(full3) << ", 4ch+layer4 " << count_parameters(full4)
            << ", 3ch no layer4 " << count_parameters(trunc3) << ", 4ch no layer4 " << count_parameters(trunc4)
            << std::endl;
}

TEST(ResNet, TorchvisionKeyNames) {
  ResNetEncoder full(ResNetOptions().in_channels(3).with_layer4(true));
  const auto state = state_of(full);
  // torchvision's resnet50().state_dict() has 320 keys, fc.weight and
  // fc.bias among them.
  EXPECT_EQ(state.size(), 318u);
  EXPECT_EQ(full->named_parameters().size(), 159u);
  const std::map<std::string, std::vector<int64_t>> expected{
      {"conv1.weight", {64, 3, 7, 7}},
      {"bn1.weight", {64}},
      {"bn1.bias", {64}},
      {"bn1.running_mean", {64}},
      {"bn1.running_var", {64}},
      {"bn1.num_batches_tracked", {}},
      {"layer1.0.conv1.weight", {64, 64, 1, 1}},
      {"layer1.0.conv2.weight", {64, 64, 3, 3}},
      {"layer1.0.conv3.weight", {256, 64, 1, 1}},
      {"layer1.0.downsample.0.weight", {256, 64, 1, 1}},
      {"layer1.0.downsample.1.running_var", {256}},
      {"layer2.0.conv2.weight", {128, 128, 3, 3}},
      {"layer2.3.conv3.weight", {512, 128, 1, 1}},
      {"layer3.0.downsample.0.weight", {1024, 512, 1, 1}},
      {"layer3.5.bn3.weight", {1024}},
      {"layer4.2.bn3.running_mean", {2048}},
  };
  for (const auto& [key, dims] : expected) {
    const auto it = state.find(key);
    ASSERT_NE(it, state.end()) << key;
    EXPECT_EQ(it->second.sizes().vec(), dims) << key;
  }
  EXPECT_EQ(state.count("layer1.1.downsample.0.weight"), 0u);
  EXPECT_EQ(state.count("layer3.1.downsample.0.weight"), 0u);
  for (const auto& [key, value] : state) {
    EXPECT_TRUE(key.rfind("conv1.", 0) == 0 || key.rfind("bn1.", 0) == 0 || key.rfind("layer", 0) == 0) << key;
  }

  ResNetEncoder truncated{ResNetOptions()};
  const auto small = state_of(truncated);
  EXPECT_EQ(small.size(), 318u - 3 * 18 - 6);  // 3 blocks of 18 keys, downsample 6
  for (const auto& [key, value] : small) EXPECT_NE(key.rfind("layer4.", 0), 0u) << key;
}

TEST(ResNet, StateDictRoundTrip) {
  torch::manual_seed(1);
  airm::test::TempDir dir;
  ResNetEncoder source{ResNetOptions()};
  run_in_training(source, 4);
  const auto saved = state_of(source);
  save_dict(saved, dir / "r50.pt");

  torch::manual_seed(2);
  ResNetEncoder target{ResNetOptions()};
  target->eval();
  airm::load_resnet_state_dict(target, (dir / "r50.pt").string());
  const auto loaded = state_of(target);
  ASSERT_EQ(loaded.size(), saved.size());
  for (const auto& [key, value] : saved) {
    EXPECT_TRUE(torch::equal(loaded.at(key), value)) << key;
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({1, 4, 40, 40});
  const auto a = source->forward(x).list();
  const auto b = target->forward(x).list();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
}

TEST(ResNet, LoadsThreeChannelCheckpointIntoFourChannels) {
  torch::manual_seed(3);
  airm::test::TempDir dir;
  // An "ImageNet" network: 3 channels, layer4, a classifier, and (like old
  // torchvision checkpoints) no num_batches_tracked entries.
  ResNetEncoder rgb(ResNetOptions().in_channels(3).with_layer4(true));
  run_in_training(rgb, 3);
  auto entries = state_of(rgb);
  for (auto it = entries.begin(); it != entries.end();) {
    it = it->first.find("num_batches_tracked") != std::string::npos ? entries.erase(it) : std::next(it);
  }
  entries["fc.weight"] = torch::randn({1000, 2048});
  entries["fc.bias"] = torch::randn({1000});
  save_dict(entries, dir / "imagenet.pt");

  ResNetEncoder rgbm(ResNetOptions().in_channels(4));  // no layer4: its keys are skipped
  rgbm->eval();
  airm::load_resnet_state_dict(rgbm, (dir / "imagenet.pt").string());
  const torch::Tensor w = rgbm->conv1_->weight;
  EXPECT_EQ(w.sizes().vec(), shape(64, 4, 7, 7));
  EXPECT_TRUE(torch::equal(w.narrow(1, 0, 3), rgb->conv1_->weight));
  EXPECT_EQ(w.select(1, 3).abs().max().item<float>(), 0.0f);

  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 3, 37, 29});
  const auto a = rgb->forward(x);
  const auto b = rgbm->forward(torch::cat({x, torch::zeros({2, 1, 37, 29})}, 1));
  // The zero weights add exact zeros; only the stem's summation order may differ (7x7x3 vs
  // 7x7x4 terms, blocked by channel), a few ulps of the stem's magnitude, which the following
  // float32 layers carry on (not amplify much: BatchNorm, residual sums). 64 eps of max |a|.
  using airm::test::kEpsFloat32;
  EXPECT_TRUE(airm::test::tensors_close(b.stem, a.stem, 64 * kEpsFloat32));
  EXPECT_TRUE(airm::test::tensors_close(b.layer1, a.layer1, 64 * kEpsFloat32));
  EXPECT_TRUE(airm::test::tensors_close(b.layer2, a.layer2, 64 * kEpsFloat32));
  EXPECT_TRUE(airm::test::tensors_close(b.layer3, a.layer3, 64 * kEpsFloat32));
}

TEST(ResNet, LoadErrorsNameTheKeysAndLeaveTheModelUnchanged) {
  torch::manual_seed(4);
  airm::test::TempDir dir;
  ResNetEncoder source{ResNetOptions()};
  const auto good = state_of(source);

  ResNetEncoder target{ResNetOptions()};
  const auto before = state_of(target);
  auto expect_unchanged = [&] {
    const auto now = state_of(target);
    for (const auto& [key, value] : before) EXPECT_TRUE(torch::equal(now.at(key), value)) << key;
  };

  auto missing = good;
  missing.erase("layer2.1.conv2.weight");
  save_dict(missing, dir / "missing.pt");
  std::string msg = error_message([&] { airm::load_resnet_state_dict(target, (dir / "missing.pt").string()); });
  EXPECT_NE(msg.find("missing keys: layer2.1.conv2.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing.pt"), std::string::npos) << msg;
  expect_unchanged();

  auto unexpected = good;
  unexpected["layer3.6.conv1.weight"] = torch::zeros({256, 1024, 1, 1});
  save_dict(unexpected, dir / "unexpected.pt");
  msg = error_message([&] { airm::load_resnet_state_dict(target, (dir / "unexpected.pt").string()); });
  EXPECT_NE(msg.find("unexpected keys: layer3.6.conv1.weight"), std::string::npos) << msg;
  expect_unchanged();

  auto mismatched = good;
  mismatched["layer1.0.conv2.weight"] = torch::zeros({64, 64, 1, 1});
  save_dict(mismatched, dir / "shape.pt");
  msg = error_message([&] { airm::load_resnet_state_dict(target, (dir / "shape.pt").string()); });
  EXPECT_NE(msg.find("shape mismatches: layer1.0.conv2.weight"), std::string::npos) << msg;
  expect_unchanged();

  // More input channels in the file than in the model is a mismatch too.
  auto wide = good;
  wide["conv1.weight"] = torch::zeros({64, 5, 7, 7});
  save_dict(wide, dir / "wide.pt");
  msg = error_message([&] { airm::load_resnet_state_dict(target, (dir / "wide.pt").string()); });
  EXPECT_NE(msg.find("conv1.weight"), std::string::npos) << msg;
  expect_unchanged();

  msg = error_message([&] { airm::load_resnet_state_dict(target, (dir / "absent.pt").string()); });
  EXPECT_NE(msg.find("absent.pt"), std::string::npos) << msg;
  airm::test::write_bytes(dir / "garbage.pt", "not a pickle");
  msg = error_message([&] { airm::load_resnet_state_dict(target, (dir / "garbage.pt").string()); });
  EXPECT_NE(msg.find("garbage.pt"), std::string::npos) << msg;
  expect_unchanged();
}

TEST(ResNet, EveryParameterReceivesAGradient) {
  for (bool layer4 : {false, true}) {
    torch::manual_seed(5);
    ResNetEncoder encoder(ResNetOptions().with_layer4(layer4));
    encoder->train();
    const auto f = encoder->forward(torch::randn({2, 4, 33, 31}));
    torch::Tensor loss = torch::zeros({});
    // Weighted so that BatchNorm biases see a non-zero gradient too.
    for (const auto& t : f.list()) loss = loss + (t * torch::randn_like(t)).mean();
    loss.backward();
    for (const auto& item : encoder->named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_GT(item.value().grad().abs().max().item<double>(), 0.0) << item.key() << " layer4=" << layer4;
    }
  }
}

TEST(ResNet, RejectsBadOptionsAndInputs) {
  EXPECT_THROW(ResNetEncoder(ResNetOptions().in_channels(0)), airm::Error);
  EXPECT_THROW(ResNetEncoder(ResNetOptions().output_stride(4)), airm::Error);
  EXPECT_THROW(ResNetEncoder(ResNetOptions().layers({3, 4, 6})), airm::Error);
  EXPECT_THROW(ResNetEncoder(ResNetOptions().layers({3, 0, 6, 3})), airm::Error);
  EXPECT_THROW(ResNetEncoder(ResNetOptions().bn_eps(0.0)), airm::Error);
  ResNetEncoder encoder{ResNetOptions()};
  EXPECT_THROW(encoder->forward(torch::randn({1, 3, 32, 32})), c10::Error);
  EXPECT_THROW(encoder->forward(torch::randn({4, 32, 32})), c10::Error);
}

TEST(ResNet, ForwardTime224SingleThread) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  torch::manual_seed(6);
  ResNetEncoder encoder{ResNetOptions()};
  encoder->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 4, 224, 224});
  encoder->forward(x);  // warm-up
  const int runs = 3;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) encoder->forward(x);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / runs;
  std::cout << "[ timing   ] ResNet-50 encoder (OS 8, no layer4) forward 2x4x224x224, 1 thread: " << ms << " ms"
            << std::endl;
  torch::set_num_threads(threads);
  EXPECT_GT(ms, 0.0);
}

}  // namespace
