// The coarse segmenter: shapes, gradients, the SRM's zero-offset identity,
// the ablation configs, weights files and MiT loading, segment().
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include <opencv2/core.hpp>

#include "airm/error.hpp"
#include "airm/model/airm_net.hpp"
#include "airm/model/refinement_modules.hpp"
#include "airm/model/segmenter.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/model/weights.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using airm::SegmenterConfig;
using airm::SegmenterNet;

namespace {

SegmenterConfig test_config(bool srm = true, bool contextual = true, int64_t classes = 1) {
  SegmenterConfig config;
  config.name = "test";
  config.srm = srm;
  config.contextual = contextual;
  config.num_classes = classes;
  config.drop_path = 0.0;  // no branch dropped by chance in gradient checks
  return config;
}

torch::Tensor random_input(int64_t batch, int64_t h, int64_t w) {
  return airm::normalize_rgb(torch::rand({batch, 3, h, w}));
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

fs::path configs_dir() { return fs::path(AIRM_SOURCE_DIR) / "configs" / "segmenter"; }

// Gives the zero-initialised SRM offset convolutions small random weights.
void randomize_offsets(SegmenterNet& net) {
  torch::NoGradGuard no_grad;
  if (!net->srms_) return;
  for (const auto& module : *net->srms_) {
    auto srm = module->as<airm::SemanticRefinementModule>();
    srm->offset_->weight.normal_(0.0, 0.05);
    srm->offset_->bias.normal_(0.0, 0.5);
  }
}

using airm::test::error_message;

}  // namespace

// --- config ------------------------------------------------------------------

TEST(SegmenterConfig, JsonRoundTripAndUnknownKeys) {
  const SegmenterConfig config = test_config(false, true, 3);
  EXPECT_EQ(SegmenterConfig::from_json(config.to_json()).to_json(), config.to_json());
  nlohmann::json typo = config.to_json();
  typo["sr"] = true;
  EXPECT_EQ(error_message([&] { SegmenterConfig::from_json(typo, "s.json"); }), "s.json: unknown segmenter config key 'sr'");
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"encoder", "resnet50"}, {"num_classes", 0}, {"decoder_dim", -1}, {"drop_path", 1.0}, {"srm", "yes"}}) {
    nlohmann::json bad = config.to_json();
    bad[key] = value;
    EXPECT_NE(error_message([&] { SegmenterConfig::from_json(bad, "s.json"); }).find(key), std::string::npos) << key;
  }
}

TEST(SegmenterConfig, AblationConfigsBuildAndRun) {
  std::set<std::pair<bool, bool>> seen;
  for (const auto& entry : fs::directory_iterator(configs_dir())) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const SegmenterConfig config = SegmenterConfig::load(entry.path());
    EXPECT_EQ(config.name, entry.path().stem().string());
    SegmenterNet net(config);
    EXPECT_EQ(static_cast<bool>(net->srms_), config.srm);
    EXPECT_EQ(static_cast<bool>(net->contextual_), config.contextual);
    net->eval();
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> offsets;
    const torch::Tensor logits = net->forward(random_input(1, 70, 50), &offsets);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{1, config.num_classes, 70, 50}));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    EXPECT_EQ(offsets.size(), config.srm ? 3u : 0u);
    seen.insert({config.srm, config.contextual});
  }
  EXPECT_EQ(seen.size(), 4u);  // neither / SRM only / contextual only / both
}

// --- network -----------------------------------------------------------------

TEST(SegmenterNet, ShapesOnOddAndSquareSizes) {
  torch::manual_seed(0);
  for (int64_t classes : {1, 3}) {
    SegmenterNet net(test_config(true, true, classes));
    net->eval();
    torch::NoGradGuard no_grad;
    for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{67, 45}, {224, 224}}) {
      std::vector<torch::Tensor> offsets;
      const torch::Tensor logits = net->forward(random_input(2, h, w), &offsets);
      EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, classes, h, w}));
      ASSERT_EQ(offsets.size(), 3u);
      for (std::size_t k = 0; k < 3; ++k) {  // strides 16, 8, 4 = ceil sizes of the MiT stages
        const int64_t stride = 16 >> k;
        EXPECT_EQ(offsets[k].sizes(), (std::vector<int64_t>{2, 2, (h + stride - 1) / stride, (w + stride - 1) / stride}));
        EXPECT_EQ(offsets[k].abs().max().item<double>(), 0.0);  // zero-initialised offset heads
      }
    }
  }
  EXPECT_THROW(SegmenterNet(test_config())->forward(torch::zeros({1, 4, 32, 32})), c10::Error);
}

TEST(SegmenterNet, EveryParameterGetsAGradient) {
  for (auto [srm, contextual] : std::vector<std::pair<bool, bool>>{{true, true}, {false, false}}) {
    SCOPED_TRACE(std::to_string(srm) + std::to_string(contextual));
    torch::manual_seed(1);
    SegmenterNet net(test_config(srm, contextual, 2));
    net->train();
    // At initialisation the zeroed offset convolutions still get a gradient (training can leave zero).
    net->forward(random_input(2, 67, 45)).pow(2).mean().backward();
    if (srm) {
      for (const auto& module : *net->srms_) {
        const auto& grad = module->as<airm::SemanticRefinementModule>()->offset_->weight.grad();
        ASSERT_TRUE(grad.defined());
        EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
      }
    }
    // With non-zero offset heads every parameter gets a non-zero gradient.
    net->zero_grad();
    randomize_offsets(net);
    net->forward(random_input(2, 67, 45)).pow(2).mean().backward();
    for (const auto& item : net->named_parameters()) {
      const torch::Tensor& grad = item.value().grad();
      ASSERT_TRUE(grad.defined()) << item.key();
      EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
      EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key();
    }
  }
}

// --- SRM ---------------------------------------------------------------------

TEST(SemanticRefinement, ZeroOffsetsReproducePlainBilinearUpsampling) {
  torch::manual_seed(2);
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{17, 12}, {128, 128}, {67, 45}}) {
    const torch::Tensor x = torch::randn({2, 5, h, w});
    EXPECT_TRUE(airm::warp_by_offset(x, torch::zeros({2, 2, h, w})).equal(x)) << h << "x" << w;
  }
  airm::SemanticRefinementModule srm(airm::SemanticRefinementModuleOptions(8).hidden(4));
  srm->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor high = torch::randn({2, 8, 34, 23});
  const torch::Tensor coarse = torch::randn({2, 8, 17, 12});
  const auto out = srm->forward(high, coarse, torch::randn({2, 2, 17, 12}));
  EXPECT_EQ(out.offset.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(out.features.equal(airm::resize_bilinear(coarse, 34, 23)));
}

TEST(SemanticRefinement, FreshNetworkEqualsTheNoSrmAblation) {
  torch::manual_seed(3);
  SegmenterNet with(test_config(true, true));
  SegmenterNet without(test_config(false, true));
  airm::load_state_dict(*without, airm::state_dict_of(*with), "with-srm",
                        [](const std::string& key) { return key.rfind("srm.", 0) == 0; });
  with->eval();
  without->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = random_input(1, 67, 45);
  EXPECT_TRUE(with->forward(input).equal(without->forward(input)));
}

TEST(SemanticRefinement, OffsetsArePixelsInXYOrder) {
  const torch::Tensor x = torch::arange(6 * 7, torch::kFloat).view({1, 1, 6, 7});
  torch::Tensor offset = torch::zeros({1, 2, 6, 7});
  offset[0][0].fill_(1.0);  // dx = +1: each pixel reads its right neighbour (the last column the border)
  torch::Tensor warped = airm::warp_by_offset(x, offset);
  EXPECT_LE(max_abs(warped.narrow(3, 0, 6), x.narrow(3, 1, 6)), 1e-4);
  EXPECT_LE(max_abs(warped.narrow(3, 6, 1), x.narrow(3, 6, 1)), 1e-4);
  offset.zero_();
  offset[0][1].fill_(-0.5);  // dy = -1/2: halfway to the row above
  warped = airm::warp_by_offset(x, offset);
  EXPECT_LE(max_abs(warped.narrow(2, 1, 5), x.narrow(2, 1, 5) - 3.5), 1e-4);
  // Resizing an offset field scales its values with the grid.
  const torch::Tensor resized = airm::resize_offset(torch::ones({1, 2, 5, 4}), 10, 12);
  // Bilinear weights of a constant field sum to 1 up to a few roundings (FMA or not, by SIMD
  // path), then the scale: 16 eps relative.
  EXPECT_TRUE(airm::test::tensors_close(resized[0][0], torch::full({10, 12}, 3.0), 16 * airm::test::kEpsFloat32));
  EXPECT_TRUE(airm::test::tensors_close(resized[0][1], torch::full({10, 12}, 2.0), 16 * airm::test::kEpsFloat32));
  EXPECT_THROW(airm::SemanticRefinementModule(airm::SemanticRefinementModuleOptions(0)), airm::Error);
}

// --- contextual refinement ---------------------------------------------------

TEST(ContextualRefinement, AggregatesFourMapsAtTheFinestSize) {
  airm::ContextualRefinementModule module(airm::ContextualRefinementModuleOptions(4 * 6, 6));
  EXPECT_EQ(module->options().hidden_channels(), 8);
  const torch::Tensor out = module->forward(
      {torch::randn({2, 6, 17, 12}), torch::randn({2, 6, 9, 6}), torch::randn({2, 6, 5, 3}), torch::randn({2, 6, 3, 2})});
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 6, 17, 12}));
  EXPECT_THROW(module->forward({torch::randn({2, 6, 17, 12})}), c10::Error);  // 6 channels, 24 expected
  EXPECT_THROW(airm::ContextualRefinementModule(airm::ContextualRefinementModuleOptions(8, 8).spatial_kernel(4)),
               airm::Error);
}

// --- weights files -----------------------------------------------------------

TEST(SegmenterWeights, RoundTripIsBitExact) {
  airm::test::TempDir tmp("airm-seg");
  torch::manual_seed(4);
  SegmenterNet net(test_config(true, true, 2));
  randomize_offsets(net);
  net->train();
  net->forward(random_input(2, 40, 40));  // moves the BatchNorm running statistics
  airm::save_segmenter_weights(tmp / "seg.pt", net);
  EXPECT_EQ(airm::read_segmenter_weights_config(tmp / "seg.pt").to_json(), net->config().to_json());
  SegmenterNet back = airm::load_segmenter_weights(tmp / "seg.pt");
  const airm::TensorDict a = airm::state_dict_of(*net), b = airm::state_dict_of(*back);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, tensor] : a) {
    ASSERT_TRUE(b.count(key)) << key;
    EXPECT_TRUE(tensor.equal(b.at(key))) << key;
  }
  net->eval();
  back->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = random_input(1, 45, 67);
  EXPECT_TRUE(net->forward(input).equal(back->forward(input)));
  // Into an existing network of the same config; another config is refused.
  SegmenterNet same(test_config(true, true, 2));
  airm::load_segmenter_weights_into(same, tmp / "seg.pt");
  same->eval();
  EXPECT_TRUE(same->forward(input).equal(net->forward(input)));
  SegmenterNet other(test_config(false, true, 2));
  EXPECT_NE(error_message([&] { airm::load_segmenter_weights_into(other, tmp / "seg.pt"); }).find("seg.pt"),
            std::string::npos);
}

TEST(SegmenterWeights, RefinerAndSegmenterFilesRefuseEachOther) {
  airm::test::TempDir tmp("airm-seg");
  airm::ModelConfig refiner_config;
  refiner_config.encoder = "mit_b0";
  refiner_config.affinity = false;
  refiner_config.mapping = "sirmf";
  airm::AirmNet refiner(refiner_config);
  const fs::path refiner_file = tmp / "refiner.pt";
  airm::save_weights(refiner_file, refiner);
  const std::string message = error_message([&] { airm::load_segmenter_weights(refiner_file); });
  EXPECT_NE(message.find(refiner_file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("refiner weights file"), std::string::npos) << message;
  EXPECT_THROW(airm::read_segmenter_weights_config(refiner_file), airm::Error);

  SegmenterNet net(test_config());
  const fs::path segmenter_file = tmp / "segmenter.pt";
  airm::save_segmenter_weights(segmenter_file, net);
  EXPECT_THROW(airm::load_weights(segmenter_file), airm::Error);

  // A bare state dict, a newer format version, a missing file.
  airm::write_tensor_dict(airm::state_dict_of(*net), tmp / "bare.pt");
  EXPECT_NE(error_message([&] { airm::load_segmenter_weights(tmp / "bare.pt"); }).find("not an airm segmenter weights file"),
            std::string::npos);
  airm::TensorDict newer = airm::read_tensor_dict(segmenter_file);
  newer["__airm_format__"] = torch::tensor({int64_t{99}});
  airm::write_tensor_dict(newer, tmp / "newer.pt");
  EXPECT_NE(error_message([&] { airm::load_segmenter_weights(tmp / "newer.pt"); }).find("version 99"), std::string::npos);
  EXPECT_THROW(airm::load_segmenter_weights(tmp / "missing.pt"), airm::Error);
}

TEST(SegmenterWeights, HalfPrecisionLoadsAsFloat) {
  airm::test::TempDir tmp("airm-seg");
  SegmenterNet net(test_config(false, false));
  airm::SaveOptions half;
  half.half = true;
  airm::save_segmenter_weights(tmp / "half.pt", net, half);
  SegmenterNet back = airm::load_segmenter_weights(tmp / "half.pt");
  const auto weight = back->classifier_->weight;
  EXPECT_EQ(weight.scalar_type(), torch::kFloat);
  EXPECT_LE(max_abs(weight, net->classifier_->weight.detach()), 1e-3);
}

// --- MiT weights into the backbone -------------------------------------------

TEST(SegmenterBackbone, LoadsMitWeightsByName) {
  airm::test::TempDir tmp("airm-seg");
  torch::manual_seed(5);
  airm::Mit mit(airm::MitOptions::b0(3));
  airm::TensorDict dict = airm::state_dict_of(*mit);
  dict["head.weight"] = torch::zeros({1000, 256});  // a classification head is ignored
  airm::write_tensor_dict(dict, tmp / "mit.pt");
  SegmenterNet net(test_config());
  airm::load_segmenter_backbone(net, tmp / "mit.pt");
  const auto params = net->named_parameters();
  for (const auto& item : mit->named_parameters()) {
    ASSERT_TRUE(params.contains("backbone." + item.key())) << item.key();
    EXPECT_TRUE(params["backbone." + item.key()].equal(item.value())) << item.key();
  }
}

TEST(SegmenterBackbone, LoadsTheOfficialB0Reference) {
  const fs::path shared = airm::test::shared_dir();
  const fs::path file = shared.empty() ? fs::path() : shared / "reference" / "mit_b0_official_random.pt";
  if (file.empty() || !fs::exists(file)) GTEST_SKIP() << "shared reference file absent";
  SegmenterNet net(test_config());
  airm::load_segmenter_backbone(net, file);
  const airm::TensorDict dict = airm::read_tensor_dict(file);
  const auto params = net->backbone_->named_parameters();
  int matched = 0;
  for (const auto& item : params) {
    ASSERT_TRUE(dict.count(item.key())) << item.key();
    EXPECT_TRUE(item.value().equal(dict.at(item.key()).to(torch::kFloat))) << item.key();
    ++matched;
  }
  EXPECT_GT(matched, 100);
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = dict.at("__input__").to(torch::kFloat);
  EXPECT_LE(max_abs(net->backbone_->forward(input).stages[3], dict.at("__stage4__")), 1e-4);
}

// --- segment() ---------------------------------------------------------------

TEST(Segment, ProbabilityAtTheImageSize) {
  torch::manual_seed(6);
  cv::Mat image(37, 61, CV_8UC3);
  cv::randu(image, 0, 255);
  for (int64_t classes : {1, 3}) {
    SegmenterNet net(test_config(true, true, classes));
    net->train();
    const cv::Mat probability = airm::segment(net, image, 96);
    EXPECT_TRUE(net->is_training());  // mode restored
    ASSERT_EQ(probability.type(), CV_32F);
    ASSERT_EQ(probability.size(), image.size());
    double lo = 0, hi = 0;
    cv::minMaxLoc(probability, &lo, &hi);
    EXPECT_GE(lo, 0.0);
    EXPECT_LE(hi, 1.0);
    // Gray and BGRA images work too; a larger long side than the image enlarges it.
    cv::Mat gray(20, 10, CV_8UC1, cv::Scalar(128));
    EXPECT_EQ(airm::segment(net, gray, 64).size(), gray.size());
  }
  SegmenterNet net(test_config());
  EXPECT_THROW(airm::segment(net, cv::Mat(), 512), airm::Error);
  EXPECT_THROW(airm::segment(net, cv::Mat(8, 8, CV_32FC3), 512), airm::Error);
  EXPECT_THROW(airm::segment(net, image, 8), airm::Error);
}
// Regression: the ASPP's convolutions were left uninitialised (torch::empty) until an import filled them,
// so a MobileNetV2 segmenter built from random weights gave NaN or 1e22 logits (seeds 1-10 all did).
TEST(SegmenterNet, MobileNetV2FromRandomWeightsIsFinite) {
  const SegmenterConfig config = SegmenterConfig::load(configs_dir() / "segmenter_mnv2.json");
  for (int seed = 1; seed <= 5; ++seed) {
    torch::manual_seed(seed);
    SegmenterNet net(config);
    net->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor logits = net->forward(random_input(1, 70, 50));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>()) << "seed " << seed;
    EXPECT_LT(logits.abs().max().item<double>(), 1e3) << "seed " << seed;
  }
}

// --- foreground prior (a DeepLabV3 start) ---------------------------------------

namespace {
SegmenterConfig deeplab_config(int64_t classes) {
  SegmenterConfig config;
  config.name = "deeplab";
  config.encoder = "mobilenet_v2_050";
  config.decoder = "deeplabv3";
  config.num_classes = classes;
  return config;
}

SegmenterConfig prior_config(int64_t prior_classes) {
  SegmenterConfig config;
  config.name = "prior";
  config.encoder = "mobilenet_v2_050";
  config.prior_classes = prior_classes;
  return config;
}
}  // namespace

TEST(SegmenterPrior, StartsAsTheDeepLabNetworkZeroShot) {
  airm::test::TempDir tmp("airm-seg");
  torch::manual_seed(11);
  SegmenterNet deeplab(deeplab_config(5));
  {
    torch::NoGradGuard no_grad;  // logits of a few units, so that neither class dominates everywhere
    deeplab->classifier_->weight.normal_(0.0, 0.2);
    deeplab->classifier_->bias.normal_(0.0, 1.0);
  }
  airm::save_segmenter_weights(tmp / "deeplab.pt", deeplab);
  SegmenterNet net(prior_config(5));
  airm::load_segmenter_backbone(net, tmp / "deeplab.pt");
  EXPECT_TRUE(torch::equal(net->prior_->weight, deeplab->classifier_->weight));
  EXPECT_TRUE(torch::equal(net->classifier_->weight, torch::zeros_like(net->classifier_->weight)));
  deeplab->eval();
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input = random_input(2, 61, 94);  // odd sizes: both upsamplings must agree
  const torch::Tensor logits = net->forward(input);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 1, 61, 94}));
  const torch::Tensor zero_shot = 1.0 - torch::softmax(deeplab->forward(input), 1).select(1, 0);  // [2,61,94]
  const torch::Tensor ours = torch::sigmoid(logits.select(1, 0));
  const double spread = (zero_shot.max() - zero_shot.min()).item<double>();
  EXPECT_GT(spread, 0.1) << "a test whose zero-shot map is constant could not tell the prior from a constant";
  // fp32 softmax against sigmoid(logsumexp - l0): a few ulps of probabilities in [0, 1].
  EXPECT_LT(max_abs(ours, zero_shot), 1e-5);
}

TEST(SegmenterPrior, GradientsReachTheDecoderAfterOneStep) {
  torch::manual_seed(12);
  SegmenterNet net(prior_config(3));
  net->train();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
  const torch::Tensor input = random_input(2, 48, 48);
  const torch::Tensor target = (torch::rand({2, 1, 48, 48}) > 0.5).to(torch::kFloat);
  for (int step = 0; step < 2; ++step) {
    sgd.zero_grad();
    torch::binary_cross_entropy_with_logits(net->forward(input), target).backward();
    sgd.step();
  }
  // The classifier moved off zero at step 1, so step 2 reached the laterals behind it.
  EXPECT_GT(net->classifier_->weight.abs().max().item<double>(), 0.0);
  const torch::Tensor lateral_grad = net->laterals_[0]->as<torch::nn::Sequential>()->ptr(0)
                                         ->as<torch::nn::Conv2d>()->weight.grad();
  ASSERT_TRUE(lateral_grad.defined());
  EXPECT_GT(lateral_grad.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(net->prior_->weight.grad().defined());
}

TEST(SegmenterPrior, RefusesWhatItCannotStartFrom) {
  airm::test::TempDir tmp("airm-seg");
  SegmenterConfig mit = test_config();
  mit.prior_classes = 21;
  std::string message = error_message([&] { mit.validate("m.json"); });
  EXPECT_NE(message.find("prior_classes"), std::string::npos) << message;
  EXPECT_NE(message.find("mit_b0"), std::string::npos) << message;
  SegmenterConfig one = prior_config(1);
  EXPECT_NE(error_message([&] { one.validate(); }).find("0 or >= 2"), std::string::npos);
  SegmenterConfig multi = prior_config(21);
  multi.num_classes = 3;
  EXPECT_NE(error_message([&] { multi.validate(); }).find("num_classes 3"), std::string::npos);
  // A DeepLabV3 of another class count, and a file with no DeepLabV3 classifier.
  SegmenterNet deeplab(deeplab_config(4));
  airm::save_segmenter_weights(tmp / "four.pt", deeplab);
  SegmenterNet net(prior_config(21));
  message = error_message([&] { airm::load_segmenter_backbone(net, tmp / "four.pt"); });
  EXPECT_NE(message.find("four.pt"), std::string::npos) << message;
  EXPECT_NE(message.find("21 classes"), std::string::npos) << message;
  SegmenterConfig plain = prior_config(0);
  SegmenterNet decoder_only(plain);
  airm::save_segmenter_weights(tmp / "srm.pt", decoder_only);
  message = error_message([&] { airm::load_segmenter_backbone(net, tmp / "srm.pt"); });
  EXPECT_NE(message.find("decoder srm_crm"), std::string::npos) << message;
  // The key survives the config's JSON, and a file without it reads as off.
  EXPECT_EQ(SegmenterConfig::from_json(prior_config(21).to_json()).prior_classes, 21);
  nlohmann::json old = prior_config(0).to_json();
  old.erase("prior_classes");
  EXPECT_EQ(SegmenterConfig::from_json(old).prior_classes, 0);
}
