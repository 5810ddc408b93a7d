// The TFLite reader: the pretrained files of ../shared/pretrained parse into
// the graphs they hold, quantisation reads back consistently, and malformed
// bytes (truncated, corrupted, not TFLite) raise airm::Error, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "airm/error.hpp"
#include "airm/model/tflite.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using airm::TfliteModel;
namespace op = airm::tflite_op;

namespace {

fs::path pretrained(const std::string& name) { return airm::test::pretrained_file(name); }

std::vector<uint8_t> bytes_of(const fs::path& path) {
  const std::string s = airm::test::read_bytes(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

int count_ops(const TfliteModel& m, int32_t code) {
  int n = 0;
  for (const auto& o : m.operators) n += o.code == code;
  return n;
}

TEST(Tflite, NotATfliteFile) {
  airm::test::TempDir tmp;
  airm::test::write_bytes(tmp / "empty.tflite", "");
  airm::test::write_bytes(tmp / "text.tflite", "hello, this is not a model at all");
  const std::string empty = airm::test::error_message([&] { airm::read_tflite(tmp / "empty.tflite"); });
  EXPECT_NE(empty.find("empty.tflite"), std::string::npos) << empty;
  EXPECT_NE(empty.find("expected a TFLite model (FlatBuffer identifier 'TFL3' at byte 4), got 0 byte(s)"),
            std::string::npos) << empty;
  const std::string text = airm::test::error_message([&] { airm::read_tflite(tmp / "text.tflite"); });
  EXPECT_NE(text.find("got 'o, t'"), std::string::npos) << text;
  const std::string dir = airm::test::error_message([&] { airm::read_tflite(tmp.path()); });
  EXPECT_NE(dir.find("expected a TFLite file, got a directory"), std::string::npos) << dir;
  const std::string missing = airm::test::error_message([&] { airm::read_tflite(tmp / "nosuch.tflite"); });
  EXPECT_NE(missing.find("nosuch.tflite: cannot open"), std::string::npos) << missing;
}

TEST(Tflite, OffsetsOutsideTheFileAreRefused) {
  // A header with the identifier whose root offset points past the end.
  std::vector<uint8_t> bytes{0xF0, 0xFF, 0x00, 0x00, 'T', 'F', 'L', '3', 0, 0, 0, 0};
  const std::string past = airm::test::error_message([&] { airm::parse_tflite(bytes, "x.tflite"); });
  EXPECT_NE(past.find("x.tflite: malformed TFLite file: root"), std::string::npos) << past;
  EXPECT_NE(past.find("outside"), std::string::npos) << past;
  // Root table at byte 8 whose vtable offset points before the file's start.
  bytes = {0x08, 0, 0, 0, 'T', 'F', 'L', '3', 0x00, 0x01, 0x00, 0x00};
  const std::string vtable = airm::test::error_message([&] { airm::parse_tflite(bytes, "y.tflite"); });
  EXPECT_NE(vtable.find("Model: expected its vtable within the file"), std::string::npos) << vtable;
}

TEST(Tflite, ImageNetMobileNetV2Graphs) {
  for (const char* name : {"tf2_mobilenet_v2_1.0_224_ptq.tflite", "mobilenet_v2_1.0_224_quant.tflite"}) {
    SCOPED_TRACE(name);
    const fs::path path = pretrained(name);
    if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
    const TfliteModel m = airm::read_tflite(path);
    // 1 stem + 16 expansions + 17 depthwise + 17 projections + 1280 head + classifier.
    EXPECT_EQ(count_ops(m, op::kConv2d), 1 + 16 + 17 + 1 + 1);
    EXPECT_EQ(count_ops(m, op::kDepthwiseConv2d), 17);
    EXPECT_EQ(count_ops(m, op::kAdd), 10);  // the residual blocks
    EXPECT_EQ(count_ops(m, op::kSoftmax), 1);
    ASSERT_EQ(m.inputs.size(), 1u);
    EXPECT_EQ(m.tensors[static_cast<size_t>(m.inputs[0])].shape, (std::vector<int32_t>{1, 224, 224, 3}));
    ASSERT_EQ(m.outputs.size(), 1u);
    EXPECT_EQ(m.tensors[static_cast<size_t>(m.outputs[0])].shape, (std::vector<int32_t>{1, 1001}));

    // Every convolution: OHWI / 1HWC weights, bias scale = input scale x weight scale (per channel).
    int convs = 0;
    for (size_t i = 0; i < m.operators.size(); ++i) {
      const auto& o = m.operators[i];
      if (o.code != op::kConv2d && o.code != op::kDepthwiseConv2d) continue;
      ++convs;
      ASSERT_GE(o.inputs.size(), 3u) << m.describe_operator(i);
      const auto& in = m.tensors[static_cast<size_t>(o.inputs[0])];
      const auto& w = m.tensors[static_cast<size_t>(o.inputs[1])];
      const auto& b = m.tensors[static_cast<size_t>(o.inputs[2])];
      ASSERT_EQ(w.shape.size(), 4u);
      const int32_t out = o.code == op::kConv2d ? w.shape[0] : w.shape[3];
      EXPECT_EQ(b.shape, (std::vector<int32_t>{out})) << m.describe_operator(i);
      EXPECT_EQ(b.type, static_cast<int32_t>(airm::TfliteType::kInt32));
      ASSERT_EQ(b.quantization.scale.size(), w.quantization.scale.size()) << m.describe_operator(i);
      ASSERT_EQ(in.quantization.scale.size(), 1u);
      for (size_t c = 0; c < w.quantization.scale.size(); ++c) {
        const double expected = static_cast<double>(in.quantization.scale[0]) * w.quantization.scale[c];
        EXPECT_NEAR(b.quantization.scale[c], expected, 1e-5 * expected) << m.describe_operator(i) << " channel " << c;
      }
      const std::vector<float> values = m.dequantize(o.inputs[1]);
      EXPECT_EQ(static_cast<int64_t>(values.size()), m.elements(o.inputs[1]));
      for (float v : values) ASSERT_TRUE(std::isfinite(v));
      EXPECT_EQ(m.dequantize(o.inputs[2]).size(), static_cast<size_t>(out));
    }
    EXPECT_EQ(convs, 53);
  }
}

TEST(Tflite, PerChannelInt8Dequantisation) {
  const fs::path path = pretrained("tf2_mobilenet_v2_1.0_224_ptq.tflite");
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  const TfliteModel m = airm::read_tflite(path);
  // The stem's weights: int8 [32,3,3,3], one scale per output channel (axis 0), zero points 0.
  const auto& stem = m.operators[1];
  ASSERT_EQ(stem.code, op::kConv2d);
  const int32_t wi = stem.inputs[1];
  const auto& w = m.tensors[static_cast<size_t>(wi)];
  EXPECT_EQ(w.type, static_cast<int32_t>(airm::TfliteType::kInt8));
  EXPECT_EQ(w.shape, (std::vector<int32_t>{32, 3, 3, 3}));
  ASSERT_EQ(w.quantization.scale.size(), 32u);
  EXPECT_EQ(w.quantization.quantized_dimension, 0);
  const std::vector<float> values = m.dequantize(wi);
  const auto span = m.buffers[w.buffer];
  for (size_t i = 0; i < values.size(); ++i) {
    const int8_t q = static_cast<int8_t>(m.bytes[span.offset + i]);
    const size_t c = i / 27;
    ASSERT_FLOAT_EQ(values[i], static_cast<float>(q * static_cast<double>(w.quantization.scale[c])));
  }
  EXPECT_EQ(stem.stride_h, 2);
  EXPECT_EQ(stem.stride_w, 2);
  EXPECT_TRUE(stem.same_padding);
  EXPECT_EQ(stem.activation, static_cast<int32_t>(airm::TfliteActivation::kRelu6));
}

TEST(Tflite, DeepLabV3Graph) {
  const fs::path path = pretrained("deeplabv3_mnv2_pascal_quant.tflite");
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  const TfliteModel m = airm::read_tflite(path);
  EXPECT_EQ(m.tensors[static_cast<size_t>(m.inputs[0])].shape, (std::vector<int32_t>{1, 513, 513, 3}));
  // Output stride 16: the last three blocks' depthwise convolutions are dilated by 2.
  int dilated = 0;
  for (const auto& o : m.operators) {
    if (o.code == op::kDepthwiseConv2d && o.dilation_h == 2 && o.dilation_w == 2) ++dilated;
  }
  EXPECT_EQ(dilated, 3);
  EXPECT_EQ(count_ops(m, op::kConcatenation), 1);
  EXPECT_EQ(count_ops(m, op::kResizeBilinear), 3);
  for (const auto& o : m.operators) {
    if (o.code == op::kResizeBilinear) {
      EXPECT_TRUE(o.align_corners);
    }
    if (o.code == op::kAveragePool2d) {
      EXPECT_EQ(o.filter_h, 33);
      EXPECT_FALSE(o.same_padding);
    }
  }
  // uint8 per-tensor weights dequantise with their zero point.
  const auto& w = m.tensors[static_cast<size_t>(m.operators[0].inputs[1])];
  EXPECT_EQ(w.type, static_cast<int32_t>(airm::TfliteType::kUInt8));
  ASSERT_EQ(w.quantization.scale.size(), 1u);
  ASSERT_EQ(w.quantization.zero_point.size(), 1u);
  const std::vector<float> values = m.dequantize(m.operators[0].inputs[1]);
  const auto span = m.buffers[w.buffer];
  for (size_t i = 0; i < values.size(); i += 7) {
    const double expected = (m.bytes[span.offset + i] - w.quantization.zero_point[0]) *
                            static_cast<double>(w.quantization.scale[0]);
    ASSERT_FLOAT_EQ(values[i], static_cast<float>(expected));
  }
  // A tensor without data cannot be dequantised.
  const std::string activation = airm::test::error_message([&] { m.dequantize(m.inputs[0]); });
  EXPECT_NE(activation.find("expected constant data, got an empty buffer"), std::string::npos) << activation;
}

// Every prefix of a real file, and files with bytes overwritten at random,
// either parse or raise airm::Error: no crash, no read out of bounds (run
// under -DAIRM_SANITIZE=ON to see the latter).
TEST(Tflite, TruncatedAndCorruptedFilesRaiseErrors) {
  const fs::path path = pretrained("deeplabv3_mnv2_dm05_pascal_quant.tflite");
  if (path.empty()) GTEST_SKIP() << "no shared/pretrained";
  const std::vector<uint8_t> good = bytes_of(path);
  ASSERT_NO_THROW(airm::parse_tflite(good, "good"));
  auto parse_and_read = [](std::vector<uint8_t> bytes) {
    const TfliteModel m = airm::parse_tflite(std::move(bytes), "bad.tflite");
    for (int32_t t = 0; t < static_cast<int32_t>(m.tensors.size()); ++t) {
      try {
        if (m.is_constant(t)) m.dequantize(t);
      } catch (const airm::Error&) {
      }
    }
  };
  // The bytes outside every constant buffer: tables, vtables, offsets, shapes, names.
  const TfliteModel parsed = airm::parse_tflite(good, "good");
  std::vector<bool> in_buffer(good.size(), false);
  for (const auto& span : parsed.buffers) {
    for (size_t k = 0; k < span.size; ++k) in_buffer[span.offset + k] = true;
  }
  std::vector<size_t> metadata;
  for (size_t k = 0; k < good.size(); ++k) {
    if (!in_buffer[k]) metadata.push_back(k);
  }
  ASSERT_GT(metadata.size(), 1000u);
  int refused = 0, total = 0;
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    const size_t size = i < 64 ? static_cast<size_t>(i) : std::uniform_int_distribution<size_t>(0, good.size() - 1)(rng);
    ++total;
    try {
      parse_and_read(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(size)));
    } catch (const airm::Error& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find("bad.tflite"), std::string::npos) << e.what();
    }
  }
  EXPECT_GE(refused, 64);  // every prefix shorter than 64 bytes at least
  for (int i = 0; i < 300; ++i) {
    std::vector<uint8_t> bad = good;
    const int flips = 1 + i % 8;
    for (int f = 0; f < flips; ++f) {
      // Mostly in the metadata (vtables, offsets, shapes, which sit outside the big weight buffers).
      const size_t at = metadata[std::uniform_int_distribution<size_t>(0, metadata.size() - 1)(rng)];
      bad[at] = static_cast<uint8_t>(rng());
    }
    ++total;
    try {
      parse_and_read(std::move(bad));
    } catch (const airm::Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 64);
  EXPECT_EQ(total, 600);
}

}  // namespace
