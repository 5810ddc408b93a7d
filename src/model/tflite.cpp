// TFLite FlatBuffer reader: every offset is checked against the file's size.
#include "airm/model/tflite.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "airm/error.hpp"

namespace airm {

std::string tflite_type_name(int32_t type) {
  switch (type) {
    case 0: return "FLOAT32";
    case 1: return "FLOAT16";
    case 2: return "INT32";
    case 3: return "UINT8";
    case 4: return "INT64";
    case 5: return "STRING";
    case 6: return "BOOL";
    case 7: return "INT16";
    case 8: return "COMPLEX64";
    case 9: return "INT8";
    default: return "type " + std::to_string(type);
  }
}

std::string tflite_op_name(int32_t code) {
  switch (code) {
    case tflite_op::kAdd: return "ADD";
    case tflite_op::kAveragePool2d: return "AVERAGE_POOL_2D";
    case tflite_op::kConcatenation: return "CONCATENATION";
    case tflite_op::kConv2d: return "CONV_2D";
    case tflite_op::kDepthwiseConv2d: return "DEPTHWISE_CONV_2D";
    case tflite_op::kDequantize: return "DEQUANTIZE";
    case 9: return "FULLY_CONNECTED";
    case 14: return "LOGISTIC";
    case 17: return "MAX_POOL_2D";
    case 18: return "MUL";
    case 19: return "RELU";
    case 21: return "RELU6";
    case tflite_op::kReshape: return "RESHAPE";
    case tflite_op::kResizeBilinear: return "RESIZE_BILINEAR";
    case tflite_op::kSoftmax: return "SOFTMAX";
    case 34: return "PAD";
    case tflite_op::kMean: return "MEAN";
    case tflite_op::kArgMax: return "ARG_MAX";
    case tflite_op::kQuantize: return "QUANTIZE";
    default: return "BUILTIN_" + std::to_string(code);
  }
}

namespace {

// Bounds-checked access to FlatBuffer tables, vectors and strings.
class Reader {
 public:
  Reader(const std::vector<uint8_t>& bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(source_, "malformed TFLite file: " + problem);
  }

  void need(size_t pos, size_t size, const std::string& what) const {
    if (pos > bytes_.size() || size > bytes_.size() - pos) {
      std::ostringstream out;
      out << what << ": expected " << size << " byte(s) at byte " << pos << " within the file's " << bytes_.size()
          << " bytes, got a position outside it (truncated?)";
      fail(out.str());
    }
  }

  template <class T>
  T scalar(size_t pos, const std::string& what) const {
    need(pos, sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + pos, sizeof(T));
    return value;
  }

  // The position an unsigned offset at `pos` points to.
  size_t follow(size_t pos, const std::string& what) const {
    const uint32_t offset = scalar<uint32_t>(pos, what);
    const size_t target = pos + offset;
    need(target, 4, what);
    return target;
  }

  struct Table {
    size_t pos = 0;
    size_t vtable = 0;
    uint16_t vtable_size = 0;
    uint16_t table_size = 0;
    std::string what;
  };

  Table table(size_t pos, const std::string& what) const {
    Table t;
    t.pos = pos;
    t.what = what;
    const int32_t back = scalar<int32_t>(pos, what + " (table)");
    const int64_t vtable = static_cast<int64_t>(pos) - back;
    if (vtable < 0 || static_cast<uint64_t>(vtable) >= bytes_.size()) {
      fail(what + ": expected its vtable within the file, got offset " + std::to_string(back) + " from byte " +
           std::to_string(pos));
    }
    t.vtable = static_cast<size_t>(vtable);
    t.vtable_size = scalar<uint16_t>(t.vtable, what + " (vtable)");
    t.table_size = scalar<uint16_t>(t.vtable + 2, what + " (vtable)");
    if (t.vtable_size < 4 || t.vtable_size % 2 != 0) {
      fail(what + ": expected a vtable of at least 4 bytes and even, got " + std::to_string(t.vtable_size));
    }
    need(t.vtable, t.vtable_size, what + " (vtable)");
    need(t.pos, t.table_size, what + " (table)");
    return t;
  }

  // Position of field `id` of `t`, 0 when absent.
  size_t field(const Table& t, int id) const {
    const size_t slot = 4 + 2 * static_cast<size_t>(id);
    if (slot + 2 > t.vtable_size) return 0;
    const uint16_t offset = scalar<uint16_t>(t.vtable + slot, t.what + " (vtable)");
    if (offset == 0) return 0;
    if (offset >= t.table_size) {
      fail(t.what + ": expected field " + std::to_string(id) + " inside the table's " +
           std::to_string(t.table_size) + " bytes, got offset " + std::to_string(offset));
    }
    return t.pos + offset;
  }

  template <class T>
  T field_scalar(const Table& t, int id, T fallback, const std::string& name) const {
    const size_t pos = field(t, id);
    return pos == 0 ? fallback : scalar<T>(pos, t.what + "." + name);
  }

  bool has_field(const Table& t, int id) const { return field(t, id) != 0; }

  Table field_table(const Table& t, int id, const std::string& name) const {
    const size_t pos = field(t, id);
    if (pos == 0) fail(t.what + ": expected field '" + name + "', got none");
    return table(follow(pos, t.what + "." + name), t.what + "." + name);
  }

  struct Vector {
    size_t start = 0;  // first element
    size_t count = 0;
  };

  // An absent vector is empty.
  Vector field_vector(const Table& t, int id, size_t element_size, const std::string& name) const {
    const size_t pos = field(t, id);
    if (pos == 0) return {};
    const std::string what = t.what + "." + name;
    const size_t at = follow(pos, what);
    const uint32_t count = scalar<uint32_t>(at, what + " (length)");
    if (count > (bytes_.size() - at - 4) / element_size) {
      fail(what + ": expected a vector within the file, got " + std::to_string(count) + " element(s) of " +
           std::to_string(element_size) + " byte(s) at byte " + std::to_string(at) + " of " +
           std::to_string(bytes_.size()));
    }
    return {at + 4, count};
  }

  template <class T>
  std::vector<T> field_scalars(const Table& t, int id, const std::string& name) const {
    const Vector v = field_vector(t, id, sizeof(T), name);
    std::vector<T> out(v.count);
    if (v.count) std::memcpy(out.data(), bytes_.data() + v.start, v.count * sizeof(T));
    return out;
  }

  Table element_table(const Vector& v, size_t i, const std::string& what) const {
    const size_t slot = v.start + 4 * i;
    return table(follow(slot, what), what);
  }

  std::string field_string(const Table& t, int id, const std::string& name) const {
    const Vector v = field_vector(t, id, 1, name);
    return std::string(reinterpret_cast<const char*>(bytes_.data() + v.start), v.count);
  }

 private:
  const std::vector<uint8_t>& bytes_;
  const std::string& source_;
};

void read_options(const Reader& r, const Reader::Table& op_table, TfliteOperator& op, const std::string& what) {
  if (!r.has_field(op_table, 4)) return;
  const Reader::Table o = r.field_table(op_table, 4, "builtin_options");
  auto i32 = [&](int id, int32_t fallback, const char* name) { return r.field_scalar<int32_t>(o, id, fallback, name); };
  auto u8 = [&](int id, const char* name) { return static_cast<int32_t>(r.field_scalar<uint8_t>(o, id, 0, name)); };
  (void)what;
  switch (op.code) {
    case tflite_op::kConv2d:
      op.same_padding = u8(0, "padding") == 0;
      op.stride_w = i32(1, 0, "stride_w");
      op.stride_h = i32(2, 0, "stride_h");
      op.activation = u8(3, "fused_activation_function");
      op.dilation_w = i32(4, 1, "dilation_w_factor");
      op.dilation_h = i32(5, 1, "dilation_h_factor");
      break;
    case tflite_op::kDepthwiseConv2d:
      op.same_padding = u8(0, "padding") == 0;
      op.stride_w = i32(1, 0, "stride_w");
      op.stride_h = i32(2, 0, "stride_h");
      op.depth_multiplier = i32(3, 0, "depth_multiplier");
      op.activation = u8(4, "fused_activation_function");
      op.dilation_w = i32(5, 1, "dilation_w_factor");
      op.dilation_h = i32(6, 1, "dilation_h_factor");
      break;
    case tflite_op::kAveragePool2d:
    case 17:  // MAX_POOL_2D
      op.same_padding = u8(0, "padding") == 0;
      op.stride_w = i32(1, 0, "stride_w");
      op.stride_h = i32(2, 0, "stride_h");
      op.filter_w = i32(3, 0, "filter_width");
      op.filter_h = i32(4, 0, "filter_height");
      op.activation = u8(5, "fused_activation_function");
      break;
    case tflite_op::kAdd:
      op.activation = u8(0, "fused_activation_function");
      break;
    case tflite_op::kConcatenation:
      op.axis = i32(0, 0, "axis");
      op.activation = u8(1, "fused_activation_function");
      break;
    case tflite_op::kResizeBilinear:
      op.align_corners = u8(2, "align_corners") != 0;
      op.half_pixel_centers = u8(3, "half_pixel_centers") != 0;
      break;
    default:
      break;
  }
}

}  // namespace

TfliteModel parse_tflite(std::vector<uint8_t> bytes, const std::string& source) {
  TfliteModel model;
  model.source = source;
  model.bytes = std::move(bytes);
  const Reader r(model.bytes, model.source);
  if (model.bytes.size() < 8 || std::memcmp(model.bytes.data() + 4, "TFL3", 4) != 0) {
    std::string got = model.bytes.size() < 8 ? std::to_string(model.bytes.size()) + " byte(s)"
                                             : "'" + std::string(model.bytes.begin() + 4, model.bytes.begin() + 8) + "'";
    for (char& c : got) {
      if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '?';
    }
    throw Error(source, "expected a TFLite model (FlatBuffer identifier 'TFL3' at byte 4), got " + got);
  }
  const Reader::Table root = r.table(r.follow(0, "root"), "Model");

  // Operator codes: the builtin code is the larger of the deprecated int8 and the int32 field.
  std::vector<int32_t> codes;
  const Reader::Vector opcodes = r.field_vector(root, 1, 4, "operator_codes");
  for (size_t i = 0; i < opcodes.count; ++i) {
    const Reader::Table c = r.element_table(opcodes, i, "operator_codes[" + std::to_string(i) + "]");
    const int32_t deprecated = r.field_scalar<int8_t>(c, 0, 0, "deprecated_builtin_code");
    const int32_t builtin = r.field_scalar<int32_t>(c, 3, 0, "builtin_code");
    const std::string custom = r.field_string(c, 1, "custom_code");
    codes.push_back(custom.empty() ? std::max(deprecated, builtin) : -1);
  }

  const Reader::Vector buffers = r.field_vector(root, 4, 4, "buffers");
  for (size_t i = 0; i < buffers.count; ++i) {
    const std::string what = "buffers[" + std::to_string(i) + "]";
    const Reader::Table b = r.element_table(buffers, i, what);
    TfliteModel::Span span;
    if (r.has_field(b, 0)) {
      const Reader::Vector data = r.field_vector(b, 0, 1, "data");
      span = {data.start, data.count};
    } else {
      // Files over 2 GB keep data outside the FlatBuffer: offset/size from the file's start.
      const uint64_t offset = r.field_scalar<uint64_t>(b, 1, 0, "offset");
      const uint64_t size = r.field_scalar<uint64_t>(b, 2, 0, "size");
      if (offset > 1) {
        r.need(offset, size, what + " (external data)");
        span = {static_cast<size_t>(offset), static_cast<size_t>(size)};
      }
    }
    model.buffers.push_back(span);
  }

  const Reader::Vector subgraphs = r.field_vector(root, 2, 4, "subgraphs");
  if (subgraphs.count == 0) throw Error(source, "expected a TFLite model with a subgraph, got none");
  const Reader::Table graph = r.element_table(subgraphs, 0, "subgraphs[0]");
  const Reader::Vector tensors = r.field_vector(graph, 0, 4, "tensors");
  for (size_t i = 0; i < tensors.count; ++i) {
    const std::string what = "tensor " + std::to_string(i);
    const Reader::Table t = r.element_table(tensors, i, what);
    TfliteTensor tensor;
    tensor.shape = r.field_scalars<int32_t>(t, 0, "shape");
    tensor.type = r.field_scalar<int8_t>(t, 1, 0, "type");
    tensor.buffer = r.field_scalar<uint32_t>(t, 2, 0, "buffer");
    tensor.name = r.field_string(t, 3, "name");
    if (tensor.buffer >= model.buffers.size()) {
      throw Error(source, "malformed TFLite file: " + what + " '" + tensor.name + "': expected a buffer index below " +
                              std::to_string(model.buffers.size()) + ", got " + std::to_string(tensor.buffer));
    }
    if (r.has_field(t, 4)) {
      const Reader::Table q = r.field_table(t, 4, "quantization");
      tensor.quantization.scale = r.field_scalars<float>(q, 2, "scale");
      tensor.quantization.zero_point = r.field_scalars<int64_t>(q, 3, "zero_point");
      tensor.quantization.quantized_dimension = r.field_scalar<int32_t>(q, 6, 0, "quantized_dimension");
    }
    model.tensors.push_back(std::move(tensor));
  }
  auto check_indices = [&](const std::vector<int32_t>& indices, const std::string& what) {
    for (int32_t index : indices) {
      if (index < -1 || index >= static_cast<int32_t>(model.tensors.size())) {
        throw Error(source, "malformed TFLite file: " + what + ": expected tensor indices below " +
                                std::to_string(model.tensors.size()) + ", got " + std::to_string(index));
      }
    }
  };
  model.inputs = r.field_scalars<int32_t>(graph, 1, "inputs");
  model.outputs = r.field_scalars<int32_t>(graph, 2, "outputs");
  check_indices(model.inputs, "subgraph inputs");
  check_indices(model.outputs, "subgraph outputs");

  const Reader::Vector operators = r.field_vector(graph, 3, 4, "operators");
  for (size_t i = 0; i < operators.count; ++i) {
    const std::string what = "operator " + std::to_string(i);
    const Reader::Table o = r.element_table(operators, i, what);
    TfliteOperator op;
    const uint32_t opcode_index = r.field_scalar<uint32_t>(o, 0, 0, "opcode_index");
    if (opcode_index >= codes.size()) {
      throw Error(source, "malformed TFLite file: " + what + ": expected an opcode index below " +
                              std::to_string(codes.size()) + ", got " + std::to_string(opcode_index));
    }
    op.code = codes[opcode_index];
    op.inputs = r.field_scalars<int32_t>(o, 1, "inputs");
    op.outputs = r.field_scalars<int32_t>(o, 2, "outputs");
    check_indices(op.inputs, what + " inputs");
    check_indices(op.outputs, what + " outputs");
    read_options(r, o, op, what);
    model.operators.push_back(std::move(op));
  }
  return model;
}

TfliteModel read_tflite(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path.string(), "expected a TFLite file, got a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), "cannot open the file (missing or unreadable)");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(path.string(), "cannot read the file's size");
  constexpr std::streamoff kLimit = std::streamoff{1} << 31;  // 2 GiB: no MobileNet comes near it
  if (size > kLimit) {
    throw Error(path.string(), "expected a TFLite file of at most 2 GiB, got " + std::to_string(size) + " bytes");
  }
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    throw Error(path.string(), "cannot read the file");
  }
  return parse_tflite(std::move(bytes), path.string());
}

int64_t TfliteModel::elements(int32_t index) const {
  int64_t n = 1;
  for (int32_t d : tensors.at(static_cast<size_t>(index)).shape) {
    if (d < 0) return -1;
    n *= d;
    if (n > (int64_t{1} << 40)) return -1;
  }
  return n;
}

bool TfliteModel::is_constant(int32_t index) const {
  const TfliteTensor& t = tensors.at(static_cast<size_t>(index));
  return buffers.at(t.buffer).size > 0;
}

std::string TfliteModel::describe_tensor(int32_t index) const {
  return "tensor " + std::to_string(index) + " '" + tensors.at(static_cast<size_t>(index)).name + "'";
}

std::string TfliteModel::describe_operator(size_t index) const {
  return "operator " + std::to_string(index) + " (" + tflite_op_name(operators.at(index).code) + ")";
}

std::vector<float> TfliteModel::dequantize(int32_t index) const {
  const TfliteTensor& t = tensors.at(static_cast<size_t>(index));
  const std::string what = describe_tensor(index);
  const Span span = buffers.at(t.buffer);
  if (span.size == 0) throw Error(source, what + ": expected constant data, got an empty buffer");
  size_t element_size = 0;
  switch (t.type) {
    case static_cast<int32_t>(TfliteType::kFloat32): element_size = 4; break;
    case static_cast<int32_t>(TfliteType::kInt32): element_size = 4; break;
    case static_cast<int32_t>(TfliteType::kInt16): element_size = 2; break;
    case static_cast<int32_t>(TfliteType::kUInt8): element_size = 1; break;
    case static_cast<int32_t>(TfliteType::kInt8): element_size = 1; break;
    default:
      throw Error(source, what + ": expected FLOAT32, INT32, INT16, UINT8 or INT8 data, got " + tflite_type_name(t.type));
  }
  const int64_t n = elements(index);
  if (n < 0 || static_cast<uint64_t>(n) * element_size != span.size) {
    throw Error(source, what + ": expected " + std::to_string(n) + " element(s) of " + std::to_string(element_size) +
                            " byte(s) for its shape, got " + std::to_string(span.size) + " bytes of data");
  }
  const uint8_t* data = bytes.data() + span.offset;
  std::vector<float> out(static_cast<size_t>(n));
  if (t.type == static_cast<int32_t>(TfliteType::kFloat32)) {
    std::memcpy(out.data(), data, span.size);
    return out;
  }
  const TfliteQuantization& q = t.quantization;
  if (q.scale.empty()) throw Error(source, what + ": expected quantisation scales for " + tflite_type_name(t.type) + " data, got none");
  size_t channels = 1, inner = 1;
  if (q.scale.size() > 1) {
    const int32_t dim = q.quantized_dimension;
    if (dim < 0 || dim >= static_cast<int32_t>(t.shape.size()) ||
        static_cast<size_t>(t.shape[static_cast<size_t>(dim)]) != q.scale.size()) {
      throw Error(source, what + ": expected one scale per channel of dimension " + std::to_string(dim) + ", got " +
                              std::to_string(q.scale.size()) + " scales");
    }
    channels = q.scale.size();
    for (size_t d = static_cast<size_t>(dim) + 1; d < t.shape.size(); ++d) inner *= static_cast<size_t>(t.shape[d]);
  }
  if (!q.zero_point.empty() && q.zero_point.size() != q.scale.size()) {
    throw Error(source, what + ": expected " + std::to_string(q.scale.size()) + " zero point(s), got " +
                            std::to_string(q.zero_point.size()));
  }
  for (float s : q.scale) {
    if (!std::isfinite(s)) throw Error(source, what + ": expected finite quantisation scales, got " + std::to_string(s));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t value = 0;
    switch (element_size) {
      case 1:
        value = t.type == static_cast<int32_t>(TfliteType::kInt8) ? static_cast<int64_t>(static_cast<int8_t>(data[i]))
                                                                  : static_cast<int64_t>(data[i]);
        break;
      case 2: {
        int16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        value = v;
        break;
      }
      default: {
        int32_t v;
        std::memcpy(&v, data + 4 * i, 4);
        value = v;
        break;
      }
    }
    const size_t c = channels == 1 ? 0 : (i / inner) % channels;
    const int64_t zero = q.zero_point.empty() ? 0 : q.zero_point[c];
    out[i] = static_cast<float>(static_cast<double>(value - zero) * static_cast<double>(q.scale[c]));
  }
  return out;
}

}  // namespace airm
