// The assembled refiner: every configuration builds and trains, weights
// files round-trip exactly and refuse what they should.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "airm/bf16.hpp"
#include "airm/error.hpp"
#include "airm/model/airm_net.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/model/weights.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

airm::ModelConfig small_config(const std::string& encoder, bool affinity, const std::string& mapping) {
  airm::ModelConfig config;
  config.name = "test";
  config.encoder = encoder;
  config.affinity = affinity;
  config.mapping = mapping;
  config.drop_path = 0.0;  // no branch dropped by chance in gradient checks
  return config;
}

torch::Tensor random_input(int64_t batch, int64_t h, int64_t w) {
  const torch::Tensor rgb = torch::rand({batch, 3, h, w});
  const torch::Tensor mask = (torch::rand({batch, 1, h, w}) > 0.5).to(torch::kFloat);
  return airm::normalize_input(rgb, mask);
}

fs::path configs_dir() { return fs::path(AIRM_SOURCE_DIR) / "configs"; }

}  // namespace

TEST(ModelConfig, JsonRoundTripAndUnknownKeys) {
  const airm::ModelConfig config = small_config("resnet50", true, "sirmf");
  const airm::ModelConfig back = airm::ModelConfig::from_json(config.to_json());
  EXPECT_EQ(back.to_json(), config.to_json());
  nlohmann::json typo = config.to_json();
  typo["hiden"] = {8};
  try {
    airm::ModelConfig::from_json(typo, "c.json");
    FAIL() << "expected an error";
  } catch (const airm::Error& e) {
    EXPECT_STREQ(e.what(), "c.json: unknown model config key 'hiden'");
  }
  nlohmann::json bad = config.to_json();
  bad["encoder"] = "vgg";
  EXPECT_THROW(airm::ModelConfig::from_json(bad), airm::Error);
}

TEST(ModelConfig, EveryShippedConfigBuilds) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(configs_dir())) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const airm::ModelConfig config = airm::ModelConfig::load(entry.path());
    EXPECT_EQ(config.name, entry.path().stem().string());
    airm::AirmNet net(config);
    EXPECT_EQ(static_cast<bool>(net->hyper_), config.adaptive());
    EXPECT_EQ(static_cast<bool>(net->mit_), config.uses_mit());
    ++count;
  }
  EXPECT_GE(count, 8);  // R50 / MiT-b1 x affinity on/off x SIRMF/AIRMF
}

class AirmNetVariants : public ::testing::TestWithParam<std::tuple<std::string, bool, std::string>> {};

TEST_P(AirmNetVariants, ShapesAndEveryParameterGetsAGradient) {
  const auto& [encoder, affinity, mapping] = GetParam();
  torch::manual_seed(0);
  airm::AirmNet net(small_config(encoder, affinity, mapping));
  net->train();
  const torch::Tensor input = random_input(2, 67, 45);  // odd sizes
  const torch::Tensor coord = torch::rand({2, 50, 2}) * 2 - 1;
  const torch::Tensor cell = airm::cell_for(67, 45);
  const airm::Encoded encoded = net->encode(input, true);
  EXPECT_EQ(encoded.features.sizes(), (std::vector<int64_t>{2, 64, 34, 23}));
  const torch::Tensor logits = net->query(encoded, input, coord, cell, 16);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 50}));
  torch::Tensor loss = torch::binary_cross_entropy_with_logits(logits, (torch::rand({2, 50}) > 0.5).to(torch::kFloat));
  if (affinity) {
    ASSERT_TRUE(encoded.affinity.defined());
    const torch::Tensor gt = (torch::rand({2, 1, 67, 45}) > 0.5).to(torch::kFloat);
    loss = loss + net->affinity_loss(encoded, gt);
  } else {
    EXPECT_FALSE(encoded.affinity.defined());
  }
  loss.backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

INSTANTIATE_TEST_SUITE_P(TableRows, AirmNetVariants,
                         ::testing::Values(std::make_tuple("mit_b0", true, "airmf"),
                                           std::make_tuple("mit_b0", false, "sirmf"),
                                           std::make_tuple("resnet50", true, "sirmf"),
                                           std::make_tuple("resnet50", false, "airmf")));

TEST(AirmNet, ChunkedQueryEqualsForward) {
  torch::manual_seed(1);
  airm::AirmNet net(small_config("mit_b0", true, "airmf"));
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = random_input(1, 37, 53);
  const torch::Tensor coord = airm::make_pixel_grid(37, 53).unsqueeze(0);
  const torch::Tensor cell = airm::cell_for(37, 53);
  const torch::Tensor whole = net->forward(input, coord, cell);
  const airm::Encoded encoded = net->encode(input);
  // Chunks block the MLP's products differently (4 layers of width 32, 4 ensemble terms, as
  // in test_implicit_function): a few ulps of the outputs' magnitude; 64 eps of it, or of 1.
  const double bound = 64 * airm::test::kEpsFloat32;
  for (int64_t chunk : {1, 97, 37 * 53}) {
    EXPECT_TRUE(airm::test::tensors_close(net->query(encoded, input, coord, cell, chunk), whole, bound, bound))
        << chunk;
  }
}

TEST(Weights, SaveLoadRoundTripIsBitExact) {
  airm::test::TempDir dir;
  torch::manual_seed(2);
  airm::AirmNet net(small_config("mit_b0", true, "airmf"));
  // Make buffers non-trivial too (BatchNorm running statistics).
  net->train();
  {
    torch::NoGradGuard no_grad;
    net->encode(random_input(2, 64, 64));
  }
  const fs::path path = dir / "w.pt";
  airm::save_weights(path, net);
  airm::AirmNet loaded = airm::load_weights(path);
  EXPECT_EQ(loaded->config().to_json(), net->config().to_json());
  const airm::TensorDict a = airm::state_dict_of(*net);
  const airm::TensorDict b = airm::state_dict_of(*loaded);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, tensor] : a) {
    ASSERT_TRUE(b.count(key)) << key;
    EXPECT_TRUE(torch::equal(tensor, b.at(key))) << key;
  }
  net->eval();
  loaded->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = random_input(1, 40, 40);
  const torch::Tensor coord = torch::rand({1, 30, 2}) * 2 - 1;
  EXPECT_TRUE(torch::equal(net->forward(input, coord, airm::cell_for(40, 40)),
                           loaded->forward(input, coord, airm::cell_for(40, 40))));
}

TEST(Weights, HalfStorageLoadsCloseToFloat) {
  airm::test::TempDir dir;
  torch::manual_seed(3);
  airm::AirmNet net(small_config("mit_b0", false, "airmf"));
  net->eval();
  airm::SaveOptions half;
  half.half = true;
  airm::save_weights(dir / "h.pt", net, half);
  EXPECT_LT(fs::file_size(dir / "h.pt"), 0.6 * [&] {
    airm::save_weights(dir / "f.pt", net);
    return static_cast<double>(fs::file_size(dir / "f.pt"));
  }());
  airm::AirmNet loaded = airm::load_weights(dir / "h.pt");
  loaded->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = random_input(1, 32, 32);
  const torch::Tensor coord = torch::rand({1, 30, 2}) * 2 - 1;
  const torch::Tensor a = net->forward(input, coord, airm::cell_for(32, 32));
  const torch::Tensor b = loaded->forward(input, coord, airm::cell_for(32, 32));
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-2);
}

TEST(Weights, RefusesOtherArchitectureTruncatedAndBareFiles) {
  airm::test::TempDir dir;
  airm::AirmNet b0(small_config("mit_b0", true, "airmf"));
  const fs::path path = dir / "b0.pt";
  airm::save_weights(path, b0);

  airm::AirmNet sirmf(small_config("mit_b0", true, "sirmf"));
  try {
    airm::load_weights_into(sirmf, path);
    FAIL() << "expected an error";
  } catch (const airm::Error& e) {
    EXPECT_EQ(e.file(), path.string());
    EXPECT_NE(std::string(e.what()).find("\"mapping\":\"airmf\""), std::string::npos) << e.what();
  }

  const std::string bytes = airm::test::read_bytes(path);
  airm::test::write_bytes(dir / "cut.pt", bytes.substr(0, bytes.size() / 2));
  try {
    airm::load_weights(dir / "cut.pt");
    FAIL() << "expected an error";
  } catch (const airm::Error& e) {
    EXPECT_EQ(e.file(), (dir / "cut.pt").string()) << e.what();
  }

  airm::write_tensor_dict(airm::state_dict_of(*b0), dir / "bare.pt");
  try {
    airm::load_weights(dir / "bare.pt");
    FAIL() << "expected an error";
  } catch (const airm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an airm refiner weights file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(airm::load_weights(dir / "missing.pt"), airm::Error);
}

TEST(Weights, NewerFormatVersionIsRefused) {
  airm::test::TempDir dir;
  airm::AirmNet net(small_config("mit_b0", false, "sirmf"));
  airm::save_weights(dir / "w.pt", net);
  airm::TensorDict dict = airm::read_tensor_dict(dir / "w.pt");
  dict["__airm_format__"] = torch::tensor({airm::kWeightsFormatVersion + 1}, torch::kInt64);
  airm::write_tensor_dict(dict, dir / "future.pt");
  try {
    airm::load_weights(dir / "future.pt");
    FAIL() << "expected an error";
  } catch (const airm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("newer airm"), std::string::npos) << e.what();
  }
}

TEST(Weights, NonFiniteTensorIsRefusedByName) {
  airm::test::TempDir dir;
  airm::AirmNet net(small_config("mit_b0", false, "sirmf"));
  airm::save_weights(dir / "w.pt", net);
  airm::TensorDict dict = airm::read_tensor_dict(dir / "w.pt");
  const std::string key = dict.rbegin()->first.rfind("__", 0) == 0 ? dict.begin()->first : dict.rbegin()->first;
  for (const double bad : {std::nan(""), static_cast<double>(INFINITY)}) {
    airm::TensorDict broken = dict;
    torch::Tensor t = broken.at(key).clone();
    ASSERT_TRUE(t.is_floating_point()) << key;
    t.view(-1)[t.numel() / 2] = bad;
    broken[key] = t;
    airm::write_tensor_dict(broken, dir / "bad.pt");
    EXPECT_EQ(airm::test::error_message([&] { airm::load_weights(dir / "bad.pt"); }),
              (dir / "bad.pt").string() + ": expected finite weights, got NaN or infinity in " + key);
  }
}

TEST(AirmNet, ResidualAddsTheCoarsePriorAndStartsAtTheCoarseMask) {
  torch::manual_seed(2);
  airm::ModelConfig config = small_config("mit_b0", false, "sirmf");
  config.residual = true;
  airm::AirmNet net(config);
  net->eval();
  const torch::Tensor input = random_input(1, 29, 31);  // the mask channel is +-1
  const torch::Tensor coord = airm::make_pixel_grid(29, 31).unsqueeze(0);
  const torch::Tensor cell = airm::cell_for(29, 31);
  const torch::Tensor mask = input.select(1, 3).reshape({1, -1});  // [1,Q] in row-major pixel order
  {
    torch::NoGradGuard no_grad;
    // Freshly built: the correction is small, the coarse mask decides.
    const torch::Tensor logits = net->forward(input, coord, cell);
    const double agree = ((logits > 0) == (mask > 0)).to(torch::kDouble).mean().item<double>();
    EXPECT_GE(agree, 0.99);
    // Without the last layer's output, the logits are exactly s * (2m - 1), s = 3 at the start.
    net->implicit_->layers().back()->weight.zero_();
    net->implicit_->layers().back()->bias.zero_();
    EXPECT_LE((net->forward(input, coord, cell) - 3.0 * mask).abs().max().item<double>(), 1e-4);  // float sampling
  }
  // The prior's scale is learnt.
  net->train();
  net->forward(input, coord, cell).sum().backward();
  const torch::Tensor scale = net->named_parameters()["prior_scale"];
  ASSERT_TRUE(scale.grad().defined());
  EXPECT_NE(scale.grad().item<double>(), 0.0);

  // Without residual, no prior parameter exists and old weights files keep their keys.
  airm::AirmNet plain(small_config("mit_b0", false, "sirmf"));
  EXPECT_FALSE(plain->named_parameters().contains("prior_scale"));
}

TEST(AirmNet, Bf16NetworkQueriesThroughItsOwnQuery) {
  // A bf16 network needs bf16 convolutions, which oneDNN lacks below AVX-512 (airm/bf16.hpp).
  if (!airm::bf16_convolutions_supported(torch::kCPU)) GTEST_SKIP() << "no bf16 convolutions on this CPU";
  // A bf16 copy answers AirmNet::query (the guide is sampled in fp32: no bf16 grid_sample on CPU) close to fp32.
  torch::manual_seed(5);
  airm::ModelConfig config = small_config("mit_b0", false, "airmf");
  config.residual = true;
  airm::AirmNet net(config);
  net->eval();
  airm::AirmNet low(config);
  airm::load_state_dict(*low, airm::state_dict_of(*net), "test");
  low->to(torch::kBFloat16);
  low->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = random_input(1, 33, 47);
  const torch::Tensor coord = airm::make_pixel_grid(33, 47).unsqueeze(0);
  const torch::Tensor cell = airm::cell_for(33, 47);
  const torch::Tensor reference = torch::sigmoid(net->query(net->encode(input), input, coord, cell));
  const torch::Tensor input16 = input.to(torch::kBFloat16);
  const torch::Tensor p16 = torch::sigmoid(low->query(low->encode(input16), input16, coord, cell).to(torch::kFloat));
  EXPECT_LE((reference - p16).abs().max().item<double>(), 0.1);
  EXPECT_GE(((reference > 0.5) == (p16 > 0.5)).to(torch::kDouble).mean().item<double>(), 0.98);
}
