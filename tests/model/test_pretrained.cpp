// The imported pretrained networks against the facts of
// ../shared/pretrained/README.md (measured there with an independent numpy
// forward pass), the encoders built on them, and the importer's refusals.
// Tests that need ../shared skip cleanly without it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "airm/model/airm_net.hpp"
#include "airm/model/pretrained.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/tflite.hpp"
#include "airm/model/tflite_import.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
namespace op = airm::tflite_op;
using airm::test::error_message;

namespace {

fs::path pretrained(const std::string& name) { return airm::test::pretrained_file(name); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The RGB image as the network input of a quantised file: (x - zero point) * scale.
torch::Tensor quantised_input(const cv::Mat& rgb, const airm::TfliteModel& model) {
  const airm::TfliteQuantization& q = model.tensors[static_cast<size_t>(model.inputs[0])].quantization;
  const torch::Tensor pixels =
      torch::from_blob(rgb.data, {1, rgb.rows, rgb.cols, 3}, torch::kUInt8).permute({0, 3, 1, 2}).to(torch::kFloat);
  return (pixels - static_cast<double>(q.zero_point.at(0))) * static_cast<double>(q.scale.at(0));
}

// The resize the README's facts were measured with (PIL's bilinear): a
// triangle filter whose support widens with the downscale factor
// (antialiased, unlike cv::INTER_LINEAR), horizontal pass first, each pass
// rounded to uint8. cv::INTER_LINEAR or INTER_AREA move the probabilities
// by up to 0.13 (grace_hopper: 0.807 and 0.839 for 0.718).
cv::Mat antialiased_bilinear_pass(const cv::Mat& in, int out_n, bool horizontal) {
  const int in_n = horizontal ? in.cols : in.rows;
  const double scale = static_cast<double>(in_n) / out_n, widen = std::max(scale, 1.0);
  cv::Mat out = horizontal ? cv::Mat(in.rows, out_n, CV_8UC3) : cv::Mat(out_n, in.cols, CV_8UC3);
  for (int o = 0; o < out_n; ++o) {
    const double centre = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(centre - widen + 0.5));
    const int hi = std::min(in_n, static_cast<int>(centre + widen + 0.5));
    std::vector<double> w;
    double total = 0;
    for (int i = lo; i < hi; ++i) {
      w.push_back(std::max(0.0, 1.0 - std::fabs((i - centre + 0.5) / widen)));
      total += w.back();
    }
    const int others = horizontal ? in.rows : in.cols;
    for (int r = 0; r < others; ++r) {
      cv::Vec3d sum(0, 0, 0);
      for (int i = lo; i < hi; ++i) {
        const cv::Vec3b& px = horizontal ? in.at<cv::Vec3b>(r, i) : in.at<cv::Vec3b>(i, r);
        sum += cv::Vec3d(px[0], px[1], px[2]) * (w[static_cast<size_t>(i - lo)] / total);
      }
      cv::Vec3b& dst = horizontal ? out.at<cv::Vec3b>(r, o) : out.at<cv::Vec3b>(o, r);
      for (int c = 0; c < 3; ++c) dst[c] = cv::saturate_cast<uint8_t>(sum[c]);
    }
  }
  return out;
}

cv::Mat antialiased_bilinear(const cv::Mat& rgb, int width, int height) {
  return antialiased_bilinear_pass(antialiased_bilinear_pass(rgb, width, true), height, false);
}

cv::Mat read_rgb(const fs::path& path) {
  cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR), rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

// ---------------------------------------------------------------- TF SAME padding

TEST(MobileNetV2, SamePaddingPutsTheExtraRowAndColumnAtTheEnd) {
  // A 3x3 stride-2 box filter over ones on 4x4: TensorFlow pads 1 row/column
  // at the bottom/right only, so the first output sees 9 ones, the last 4.
  airm::TfConv conv(1, 1, 3, 2, 1, 1, airm::TfActivation::kNone);
  torch::NoGradGuard no_grad;
  conv->weight.fill_(1.0);
  const torch::Tensor y = conv->forward(torch::ones({1, 1, 4, 4}));
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(y[0][0][0][0].item<float>(), 9.0f);
  EXPECT_EQ(y[0][0][0][1].item<float>(), 6.0f);
  EXPECT_EQ(y[0][0][1][1].item<float>(), 4.0f);
  // Odd 5x5: symmetric (1 each side), 3x3 out; dilation 2 on 7x7 stride 1 pads 2 each side.
  EXPECT_EQ(conv->forward(torch::ones({1, 1, 5, 5}))[0][0][0][0].item<float>(), 4.0f);
  airm::TfConv dilated(1, 1, 3, 1, 2, 1, airm::TfActivation::kNone);
  dilated->weight.fill_(1.0);
  const torch::Tensor d = dilated->forward(torch::ones({1, 1, 7, 7}));
  EXPECT_EQ(d.sizes(), (std::vector<int64_t>{1, 1, 7, 7}));
  EXPECT_EQ(d[0][0][0][0].item<float>(), 4.0f);
  EXPECT_EQ(d[0][0][3][3].item<float>(), 9.0f);
}

TEST(MobileNetV2, StridesChannelsAndDilationRule) {
  airm::MobileNetV2 net32(airm::MobileNetV2Options().output_stride(32));
  EXPECT_EQ(net32->stage_strides(), (std::vector<int64_t>{2, 4, 8, 16, 32}));
  EXPECT_EQ(net32->stage_channels(), (std::vector<int64_t>{16, 24, 32, 96, 320}));
  airm::MobileNetV2 net16(airm::MobileNetV2Options().output_stride(16));
  EXPECT_EQ(net16->stage_strides(), (std::vector<int64_t>{2, 4, 8, 16, 16}));
  // DeepLab's rule: block 13 (the stage's first) keeps dilation 1 with stride 1, 14-16 use 2.
  auto depthwise = [&](size_t i) { return net16->blocks->ptr(i)->as<airm::InvertedResidualImpl>()->depthwise; };
  EXPECT_EQ(depthwise(13)->stride, 1);
  EXPECT_EQ(depthwise(13)->dilation, 1);
  EXPECT_EQ(depthwise(14)->dilation, 2);
  EXPECT_EQ(depthwise(16)->dilation, 2);
  airm::MobileNetV2 half(airm::MobileNetV2Options().width(0.5).output_stride(8));
  EXPECT_EQ(half->stage_channels(), (std::vector<int64_t>{8, 12, 16, 48, 160}));
  EXPECT_EQ(half->stage_strides(), (std::vector<int64_t>{2, 4, 8, 8, 8}));
  // Awkward sizes: ceil at every stride-2 step.
  const auto f = net16->features(torch::randn({1, 3, 37, 50})).stages;
  EXPECT_EQ(f[1].sizes(), (std::vector<int64_t>{1, 24, 10, 13}));
  EXPECT_EQ(f[4].sizes(), (std::vector<int64_t>{1, 320, 3, 4}));
  EXPECT_NE(error_message([] { airm::MobileNetV2(airm::MobileNetV2Options().output_stride(4)); })
                .find("output_stride: expected 8, 16 or 32, got 4"),
            std::string::npos);
}

// ---------------------------------------------------------------- ImageNet facts

struct ClassificationFact {
  const char* image;
  const char* label;
  double probability;
};

void check_classifier(const std::string& file, const std::vector<ClassificationFact>& facts) {
  const fs::path path = pretrained(file);
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  std::vector<std::string> labels;
  {
    std::ifstream in(pretrained("imagenet_labels.txt"));
    for (std::string line; std::getline(in, line);) labels.push_back(line);
  }
  ASSERT_EQ(labels.size(), 1001u);
  const airm::TfliteModel model = airm::read_tflite(path);
  airm::MobileNetV2 net = airm::import_mobilenet_v2_classifier(model);
  net->eval();
  torch::NoGradGuard no_grad;
  for (const ClassificationFact& fact : facts) {
    SCOPED_TRACE(fact.image);
    const cv::Mat small = antialiased_bilinear(read_rgb(pretrained(fact.image)), 224, 224);
    const torch::Tensor p = torch::softmax(net->forward(quantised_input(small, model)), 1)[0];
    const int64_t top = p.argmax().item<int64_t>();
    const std::string& label = labels[static_cast<size_t>(top)];  // "dragonfly, darning needle, ..."
    EXPECT_EQ(label.substr(0, label.find(',')), fact.label);
    EXPECT_NEAR(p[top].item<double>(), fact.probability, 0.01);
    std::cout << file << " " << fact.image << ": " << label.substr(0, label.find(',')) << " " << p[top].item<double>()
              << "\n";
  }
}

TEST(PretrainedFacts, Tf2MobileNetV2ClassifiesTheTestImages) {
  check_classifier("tf2_mobilenet_v2_1.0_224_ptq.tflite", {{"cat.bmp", "Egyptian cat", 0.672},
                                                          {"grace_hopper.bmp", "military uniform", 0.718},
                                                          {"bird.bmp", "chickadee", 0.781},
                                                          {"dragonfly.bmp", "dragonfly", 0.895}});
}

TEST(PretrainedFacts, SlimMobileNetV2ClassifiesTheTestImages) {
  check_classifier("mobilenet_v2_1.0_224_quant.tflite", {{"cat.bmp", "Egyptian cat", 0.780},
                                                        {"grace_hopper.bmp", "military uniform", 0.927},
                                                        {"bird.bmp", "chickadee", 0.981},
                                                        {"dragonfly.bmp", "dragonfly", 0.978}});
}

// ---------------------------------------------------------------- DeepLabV3 facts

struct SegmentationFact {
  double bird_share, iou;
};

void check_deeplab(const std::string& file, const SegmentationFact& fact) {
  const fs::path path = pretrained(file);
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  airm::test::TempDir tmp;
  // Through the file our importer writes: what `airm segment` runs.
  const airm::PretrainedInfo info = airm::import_tflite_file(path, "deeplabv3_mnv2", tmp / "deeplab.pt");
  EXPECT_EQ(info.num_classes, 21);
  airm::SegmenterNet net = airm::load_segmenter_weights(tmp / "deeplab.pt");
  EXPECT_EQ(net->config().decoder, "deeplabv3");
  EXPECT_EQ(net->config().long_side, 513);
  net->eval();
  torch::NoGradGuard no_grad;
  const cv::Mat rgb = read_rgb(pretrained("bird_segmentation.bmp"));
  ASSERT_EQ(rgb.size(), cv::Size(513, 513));
  const cv::Mat gt = cv::imread(pretrained("bird_segmentation_mask.bmp").string(), cv::IMREAD_GRAYSCALE);
  const torch::Tensor pixels =
      torch::from_blob(rgb.data, {1, 513, 513, 3}, torch::kUInt8).permute({0, 3, 1, 2}).to(torch::kFloat) / 255.0;
  const torch::Tensor labels = net->forward(airm::normalize_rgb(pixels))[0].argmax(0);  // [513,513]
  const torch::Tensor truth =
      torch::from_blob(const_cast<uint8_t*>(gt.ptr<uint8_t>()), {513, 513}, torch::kUInt8).gt(0);
  const torch::Tensor predicted = labels.ne(0);
  const double bird = labels.eq(3).to(torch::kDouble).mean().item<double>();
  const double inter = (predicted & truth).sum().item<double>(), uni = (predicted | truth).sum().item<double>();
  std::cout << file << ": bird share " << bird << ", foreground IoU " << inter / uni << "\n";
  EXPECT_NEAR(bird, fact.bird_share, 0.005);
  EXPECT_NEAR(inter / uni, fact.iou, 0.005);
}

TEST(PretrainedFacts, DeepLabV3LabelsTheBird) { check_deeplab("deeplabv3_mnv2_pascal_quant.tflite", {0.213, 0.915}); }

TEST(PretrainedFacts, DeepLabV3DepthHalfLabelsTheBird) {
  check_deeplab("deeplabv3_mnv2_dm05_pascal_quant.tflite", {0.181, 0.899});
}

// ---------------------------------------------------------------- encoders built on them

TEST(PretrainedEncoder, MaskChannelStartsAtZero) {
  const fs::path path = pretrained("tf2_mobilenet_v2_1.0_224_ptq.tflite");
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  airm::test::TempDir tmp;
  airm::import_tflite_file(path, "mobilenet_v2", tmp / "mnv2.pt");
  airm::MobileNetV2 rgb_net(airm::MobileNetV2Options().in_channels(3).output_stride(16));
  airm::MobileNetV2 four(airm::MobileNetV2Options().in_channels(4).output_stride(16));
  airm::load_pretrained_encoder(rgb_net, tmp / "mnv2.pt");
  airm::load_pretrained_encoder(four, tmp / "mnv2.pt");
  EXPECT_TRUE(torch::equal(four->stem->weight.narrow(1, 3, 1), torch::zeros({32, 1, 3, 3})));
  EXPECT_TRUE(torch::equal(four->stem->weight.narrow(1, 0, 3), rgb_net->stem->weight));
  torch::NoGradGuard no_grad;
  const torch::Tensor rgb = torch::rand({2, 3, 45, 61}) * 2 - 1;
  const torch::Tensor mask = torch::rand({2, 1, 45, 61}) * 2 - 1;
  const auto a = rgb_net->features(rgb).stages;
  const auto b = four->features(torch::cat({rgb, mask}, 1)).stages;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    // Zero weights add exact zeros; only the convolution's summation order may
    // differ between 3 and 4 input channels (a few ulps of fp32 of each stage's
    // magnitude): 16 eps of max |a| plus 16 eps absolute.
    const double bound = 16 * airm::test::kEpsFloat32;
    EXPECT_TRUE(airm::test::tensors_close(b[i], a[i], bound, bound)) << "stage " << i;
  }
  // The refiner's MobileNetV2 encoder starts the same way from the trainer's encoder_weights.
  airm::ModelConfig config;
  config.encoder = "mobilenet_v2";
  config.residual = true;
  airm::AirmNet refiner(config);
  airm::load_pretrained_encoder(refiner->mobilenet_, tmp / "mnv2.pt");
  EXPECT_TRUE(torch::equal(refiner->mobilenet_->stem->weight, four->stem->weight));
  // A classifier file is not a segmenter, nor a refiner.
  EXPECT_TRUE(contains(error_message([&] { airm::load_segmenter_weights(tmp / "mnv2.pt"); }), "pretrained"));
}

TEST(PretrainedEncoder, RefinerShapesAndAffinity) {
  airm::ModelConfig config;
  config.encoder = "mobilenet_v2";
  config.residual = true;
  airm::AirmNet net(config);
  const torch::Tensor input = torch::randn({2, 4, 67, 90});
  const airm::Encoded e = net->encode(input, /*with_affinity=*/true);
  EXPECT_EQ(e.features.sizes(), (std::vector<int64_t>{2, config.feature_dim, 34, 45}));
  EXPECT_EQ(e.affinity_h, 5);
  EXPECT_EQ(e.affinity_w, 6);
  const torch::Tensor gt = (torch::rand({2, 1, 67, 90}) > 0.5).to(torch::kFloat);
  const torch::Tensor loss = net->affinity_loss(e, gt);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  config.mapping = "sirmf";
  airm::AirmNet shared(config);
  EXPECT_TRUE(shared->encode(input).weights.empty());
}

TEST(PretrainedEncoder, SegmenterStartsFromDeepLab) {
  const fs::path path = pretrained("deeplabv3_mnv2_dm05_pascal_quant.tflite");
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  airm::test::TempDir tmp;
  airm::import_tflite_file(path, "deeplabv3_mnv2", tmp / "dm05.pt");
  airm::SegmenterConfig config;
  config.encoder = "mobilenet_v2_050";
  airm::SegmenterNet net(config);
  airm::load_segmenter_backbone(net, tmp / "dm05.pt");
  airm::SegmenterNet deeplab = airm::load_segmenter_weights(tmp / "dm05.pt");
  EXPECT_TRUE(torch::equal(net->mobilenet_->blocks->ptr(16)->as<airm::InvertedResidualImpl>()->project->weight,
                           deeplab->mobilenet_->blocks->ptr(16)->as<airm::InvertedResidualImpl>()->project->weight));
  EXPECT_TRUE(torch::equal(net->aspp_->project->bias, deeplab->aspp_->project->bias));
  net->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(net->forward(torch::randn({1, 3, 75, 101})).sizes(), (std::vector<int64_t>{1, 1, 75, 101}));
  // Widths must agree.
  airm::SegmenterConfig wide = config;
  wide.encoder = "mobilenet_v2";
  airm::SegmenterNet other(wide);
  const std::string message = error_message([&] { airm::load_segmenter_backbone(other, tmp / "dm05.pt"); });
  EXPECT_TRUE(contains(message, "dm05.pt")) << message;
  EXPECT_TRUE(contains(message, "width 0.5")) << message;
}

// ---------------------------------------------------------------- refusals

TEST(TfliteImport, RefusesWhatIsNotTheArchitecture) {
  const fs::path deeplab = pretrained("deeplabv3_mnv2_dm05_pascal_quant.tflite");
  const fs::path imagenet = pretrained("mobilenet_v2_1.0_224_quant.tflite");
  if (deeplab.empty() || imagenet.empty()) GTEST_SKIP() << "no shared/pretrained";
  airm::test::TempDir tmp;
  // A DeepLab file read as a classifier: its block 13 has stride 1, not 2.
  std::string message = error_message([&] { airm::import_tflite_file(deeplab, "mobilenet_v2", tmp / "a.pt"); });
  EXPECT_TRUE(contains(message, "deeplabv3_mnv2_dm05_pascal_quant.tflite")) << message;
  EXPECT_TRUE(contains(message, "DEPTHWISE_CONV_2D")) << message;
  EXPECT_TRUE(contains(message, "blocks.13.depthwise): stride: expected 2, got 1")) << message;
  // A classifier read as DeepLab: the dilations differ.
  message = error_message([&] { airm::import_tflite_file(imagenet, "deeplabv3_mnv2", tmp / "b.pt"); });
  EXPECT_TRUE(contains(message, "mobilenet_v2_1.0_224_quant.tflite")) << message;
  EXPECT_TRUE(contains(message, "expected 1, got 2")) << message;
  message = error_message([&] { airm::import_tflite_file(imagenet, "resnet50", tmp / "c.pt"); });
  EXPECT_TRUE(contains(message, "--arch: expected mobilenet_v2 or deeplabv3_mnv2, got 'resnet50'")) << message;
  // Truncated file.
  const std::string bytes = airm::test::read_bytes(imagenet);
  airm::test::write_bytes(tmp / "cut.tflite", bytes.substr(0, bytes.size() / 2));
  message = error_message([&] { airm::import_tflite_file(tmp / "cut.tflite", "mobilenet_v2", tmp / "d.pt"); });
  EXPECT_TRUE(contains(message, "cut.tflite")) << message;
  // No partial output anywhere.
  for (const char* name : {"a.pt", "b.pt", "c.pt", "d.pt"}) EXPECT_FALSE(fs::exists(tmp / name)) << name;
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);  // cut.tflite
}

TEST(TfliteImport, RefusesWrongShapesOpsAndTypes) {
  const fs::path path = pretrained("mobilenet_v2_1.0_224_quant.tflite");
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  const airm::TfliteModel original = airm::read_tflite(path);
  // The first expand convolution (blocks.1.expand: 16 -> 96).
  size_t conv = 0;
  int seen = 0;
  for (size_t i = 0; i < original.operators.size(); ++i) {
    if (original.operators[i].code == op::kConv2d && ++seen == 3) {
      conv = i;
      break;
    }
  }
  ASSERT_GT(conv, 0u);
  {
    airm::TfliteModel m = original;
    m.tensors[static_cast<size_t>(m.operators[conv].inputs[1])].shape = {96, 1, 1, 17};
    const std::string message = error_message([&] { airm::import_mobilenet_v2_classifier(m); });
    EXPECT_TRUE(contains(message, "mobilenet_v2_1.0_224_quant.tflite")) << message;
    EXPECT_TRUE(contains(message, "expected weights of shape [96,1,1,16] (blocks.1.expand), got [96,1,1,17]"))
        << message;
  }
  {
    airm::TfliteModel m = original;
    m.operators[conv].code = op::kSoftmax;
    const std::string message = error_message([&] { airm::import_mobilenet_v2_classifier(m); });
    EXPECT_TRUE(contains(message, "expected CONV_2D (blocks.1.expand), got SOFTMAX")) << message;
  }
  {
    airm::TfliteModel m = original;
    m.tensors[static_cast<size_t>(m.operators[conv].inputs[1])].type = 1;  // float16: not a weight type we read
    const std::string message = error_message([&] { airm::import_mobilenet_v2_classifier(m); });
    EXPECT_TRUE(contains(message, "mobilenet_v2_1.0_224_quant.tflite")) << message;
    EXPECT_TRUE(contains(message, "FLOAT16")) << message;
  }
  {
    airm::TfliteModel m = original;
    m.operators[conv].activation = 0;
    const std::string message = error_message([&] { airm::import_mobilenet_v2_classifier(m); });
    EXPECT_TRUE(contains(message, "fused activation (0 none, 1 RELU, 3 RELU6): expected 3, got 0")) << message;
  }
  {
    airm::TfliteModel m = original;
    m.operators[conv].inputs[0] = m.operators[conv].inputs[1];  // reads its weights, not the previous activation
    const std::string message = error_message([&] { airm::import_mobilenet_v2_classifier(m); });
    EXPECT_TRUE(contains(message, "(blocks.1.expand): expected it to read")) << message;
  }
}

// The importer on corrupted bytes: parse or import must raise airm::Error
// (or succeed), never crash (a short fuzz run; AIRM_FUZZ_ITERATIONS for more).
TEST(TfliteImport, CorruptedFilesRaiseErrors) {
  const fs::path path = pretrained("deeplabv3_mnv2_dm05_pascal_quant.tflite");
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  const std::string original = airm::test::read_bytes(path);
  const char* env = std::getenv("AIRM_FUZZ_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 60;
  std::mt19937_64 rng(15);
  int errors = 0, imported = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string bytes = original;
    // Corrupt a few bytes in the first 64 KiB (tables, shapes, options) or anywhere.
    const size_t limit = i % 2 ? bytes.size() : std::min<size_t>(bytes.size(), 65536);
    for (int k = 0; k < 1 + static_cast<int>(rng() % 8); ++k) {
      bytes[rng() % limit] = static_cast<char>(rng() & 0xFF);
    }
    try {
      const airm::TfliteModel m = airm::parse_tflite(std::vector<uint8_t>(bytes.begin(), bytes.end()), "fuzz.tflite");
      airm::import_deeplabv3_mnv2(m);
      ++imported;
    } catch (const airm::Error&) {
      ++errors;
    }
  }
  EXPECT_EQ(errors + imported, iterations);
}

}  // namespace
