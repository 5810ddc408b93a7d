// A reader of TensorFlow Lite model files (a FlatBuffer), written for the
// importer of pretrained weights (tflite_import.hpp). It reads the parts an
// importer needs (tensors with their quantisation, constant buffers,
// operators of the first subgraph with the options of the ops it knows) and
// checks every offset against the file's size: a truncated or malformed file
// throws airm::Error naming the file and what was wrong, never reads out of
// bounds. No LibTorch here.
//
// Field numbers (the TFLite schema): Model.operator_codes 1, subgraphs 2,
// buffers 4; SubGraph.tensors 0, inputs 1, outputs 2, operators 3;
// Tensor.shape 0, type 1, buffer 2, name 3, quantization 4;
// QuantizationParameters.scale 2, zero_point 3, quantized_dimension 6;
// Operator.opcode_index 0, inputs 1, outputs 2, builtin_options 4;
// OperatorCode.deprecated_builtin_code 0, builtin_code 3; Buffer.data 0.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace airm {

// TFLite tensor types (the subset an importer meets).
enum class TfliteType : int32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kInt32 = 2,
  kUInt8 = 3,
  kInt64 = 4,
  kInt16 = 7,
  kInt8 = 9,
};
std::string tflite_type_name(int32_t type);

// Builtin operator codes used by the MobileNetV2 / DeepLabV3 graphs.
namespace tflite_op {
constexpr int32_t kAdd = 0;
constexpr int32_t kAveragePool2d = 1;
constexpr int32_t kConcatenation = 2;
constexpr int32_t kConv2d = 3;
constexpr int32_t kDepthwiseConv2d = 4;
constexpr int32_t kDequantize = 6;
constexpr int32_t kReshape = 22;
constexpr int32_t kResizeBilinear = 23;
constexpr int32_t kSoftmax = 25;
constexpr int32_t kMean = 40;
constexpr int32_t kArgMax = 56;
constexpr int32_t kQuantize = 114;
}  // namespace tflite_op
// "CONV_2D", ... or "BUILTIN_<n>" for codes this reader has no name for.
std::string tflite_op_name(int32_t code);

struct TfliteQuantization {
  std::vector<float> scale;          // one per tensor, or one per channel of quantized_dimension
  std::vector<int64_t> zero_point;   // as many as scale (or empty: 0)
  int32_t quantized_dimension = 0;
};

struct TfliteTensor {
  std::string name;
  std::vector<int32_t> shape;
  int32_t type = 0;     // TfliteType
  uint32_t buffer = 0;  // index into TfliteModel::buffers; buffer 0 is the empty sentinel
  TfliteQuantization quantization;
};

// Activation fused into an op (TFLite's ActivationFunctionType).
enum class TfliteActivation : int32_t { kNone = 0, kRelu = 1, kReluN1To1 = 2, kRelu6 = 3, kTanh = 4 };

struct TfliteOperator {
  int32_t code = -1;  // builtin operator code (tflite_op)
  std::vector<int32_t> inputs;   // tensor indices, -1 for an omitted optional input
  std::vector<int32_t> outputs;
  // Options, for the ops that have them (defaults otherwise).
  bool same_padding = true;  // Conv2D, DepthwiseConv2D, pools: SAME (true) or VALID
  int32_t stride_h = 1, stride_w = 1;
  int32_t dilation_h = 1, dilation_w = 1;
  int32_t depth_multiplier = 1;
  int32_t filter_h = 1, filter_w = 1;  // pools
  int32_t activation = 0;              // TfliteActivation
  bool align_corners = false, half_pixel_centers = false;  // ResizeBilinear
  int32_t axis = 0;                    // Concatenation
};

struct TfliteModel {
  std::string source;                  // the file, for messages
  std::vector<uint8_t> bytes;          // the whole file
  std::vector<TfliteTensor> tensors;   // of subgraph 0
  std::vector<TfliteOperator> operators;
  std::vector<int32_t> inputs, outputs;
  struct Span {
    size_t offset = 0, size = 0;       // into bytes
  };
  std::vector<Span> buffers;

  // The number of elements of tensors[index] (the product of its shape).
  int64_t elements(int32_t index) const;
  // Whether tensors[index] holds constant data (a non-empty buffer).
  bool is_constant(int32_t index) const;
  // The values of a constant tensor as floats: float32 as stored, int8/uint8/
  // int16/int32 dequantised as (q - zero_point) * scale, per channel along
  // quantized_dimension when there is one scale per channel. Throws
  // airm::Error naming the file and tensor when it has no data, its data size
  // does not match its shape, its type is unsupported or its quantisation is
  // inconsistent.
  std::vector<float> dequantize(int32_t index) const;
  // "tensor 12 'MobilenetV2/Conv/weights'" for messages.
  std::string describe_tensor(int32_t index) const;
  // "operator 3 (CONV_2D)" for messages.
  std::string describe_operator(size_t index) const;
};

// Parses a TFLite file's bytes. Throws airm::Error(source, ...) when they are
// not a TFLite model or any table, vector or string lies outside them.
TfliteModel parse_tflite(std::vector<uint8_t> bytes, const std::string& source);
// Reads and parses a file (a missing or unreadable file is an airm::Error too).
TfliteModel read_tflite(const std::filesystem::path& path);

}  // namespace airm
