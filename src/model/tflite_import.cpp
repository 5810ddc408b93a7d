// Walks a TFLite graph and copies its convolutions into our modules.
#include "airm/model/tflite_import.hpp"
#include "shape_text.hpp"

#include <map>
#include <sstream>

#include "airm/error.hpp"

namespace airm {

namespace {

// A cursor over the operators that looks through QUANTIZE / DEQUANTIZE.
class GraphWalker {
 public:
  explicit GraphWalker(const TfliteModel& model) : m_(model) {
    if (m_.inputs.size() != 1) fail("expected a graph with one input, got " + std::to_string(m_.inputs.size()));
    current_ = m_.inputs[0];
  }

  [[noreturn]] void fail(const std::string& problem) const { throw Error(m_.source, problem); }

  int32_t resolve(int32_t tensor) const {
    auto it = alias_.find(tensor);
    return it == alias_.end() ? tensor : it->second;
  }

  // The next operator that is not a (de)quantisation; it must be `code`.
  const TfliteOperator& next(int32_t code, const std::string& role) {
    while (index_ < m_.operators.size()) {
      const TfliteOperator& op = m_.operators[index_];
      if (op.code == tflite_op::kQuantize || op.code == tflite_op::kDequantize) {
        if (op.inputs.size() != 1 || op.outputs.size() != 1 || op.inputs[0] < 0) {
          fail(m_.describe_operator(index_) + ": expected one input and one output, got " +
               std::to_string(op.inputs.size()) + " and " + std::to_string(op.outputs.size()));
        }
        alias_[op.outputs[0]] = resolve(op.inputs[0]);
        ++index_;
        continue;
      }
      break;
    }
    if (index_ >= m_.operators.size()) fail("expected " + tflite_op_name(code) + " (" + role + "), got the end of the graph");
    const TfliteOperator& op = m_.operators[index_];
    if (op.code != code) {
      fail(m_.describe_operator(index_) + ": expected " + tflite_op_name(code) + " (" + role + "), got " +
           tflite_op_name(op.code));
    }
    last_ = index_++;
    return op;
  }

  // Takes the (de)quantisations ahead (their outputs alias their inputs) and
  // returns the next operator, or null at the end.
  const TfliteOperator* skip_quantize() {
    while (index_ < m_.operators.size()) {
      const TfliteOperator& op = m_.operators[index_];
      if (op.code != tflite_op::kQuantize && op.code != tflite_op::kDequantize) return &op;
      if (op.inputs.size() != 1 || op.outputs.size() != 1 || op.inputs[0] < 0) {
        fail(m_.describe_operator(index_) + ": expected one input and one output, got " +
             std::to_string(op.inputs.size()) + " and " + std::to_string(op.outputs.size()));
      }
      alias_[op.outputs[0]] = resolve(op.inputs[0]);
      ++index_;
    }
    return nullptr;
  }

  // The code of the next operator that is not a (de)quantisation (-1 at the end).
  int32_t peek() const {
    for (size_t i = index_; i < m_.operators.size(); ++i) {
      const int32_t code = m_.operators[i].code;
      if (code != tflite_op::kQuantize && code != tflite_op::kDequantize) return code;
    }
    return -1;
  }

  // The op just taken must read `tensor` (as input `slot`).
  void expect_reads(const TfliteOperator& op, size_t slot, int32_t tensor, const std::string& role) const {
    if (op.inputs.size() <= slot || op.inputs[slot] < 0 || resolve(op.inputs[slot]) != resolve(tensor)) {
      fail(where() + " (" + role + "): expected it to read " + m_.describe_tensor(tensor) + ", got " +
           (op.inputs.size() > slot && op.inputs[slot] >= 0 ? m_.describe_tensor(op.inputs[slot]) : "no input"));
    }
    if (op.outputs.size() != 1 || op.outputs[0] < 0) {
      fail(where() + " (" + role + "): expected one output, got " + std::to_string(op.outputs.size()));
    }
  }

  std::string where() const { return m_.describe_operator(last_); }
  int32_t current() const { return current_; }
  void set_current(int32_t tensor) { current_ = tensor; }

  // Reads a CONV_2D / DEPTHWISE_CONV_2D into `conv`, checking everything.
  void convolution(const TfConv& conv, const std::string& key) {
    const bool depthwise = conv->groups > 1;
    const TfliteOperator& op = next(depthwise ? tflite_op::kDepthwiseConv2d : tflite_op::kConv2d, key);
    if (op.inputs.size() < 3 || op.outputs.size() != 1 || op.inputs[1] < 0 || op.inputs[2] < 0) {
      fail(where() + " (" + key + "): expected inputs (data, weights, bias) and one output, got " +
           std::to_string(op.inputs.size()) + " input(s)");
    }
    if (resolve(op.inputs[0]) != resolve(current_)) {
      fail(where() + " (" + key + "): expected it to read " + m_.describe_tensor(current_) + ", got " +
           m_.describe_tensor(op.inputs[0]));
    }
    const int64_t expected_activation = static_cast<int64_t>(conv->activation);
    auto check = [&](const char* what, int64_t expected, int64_t got) {
      if (expected != got) {
        fail(where() + " (" + key + "): " + what + ": expected " + std::to_string(expected) + ", got " +
             std::to_string(got));
      }
    };
    check("stride", conv->stride, op.stride_h);
    check("stride (width)", conv->stride, op.stride_w);
    check("dilation", conv->dilation, op.dilation_h);
    check("dilation (width)", conv->dilation, op.dilation_w);
    check("fused activation (0 none, 1 RELU, 3 RELU6)", expected_activation, op.activation);
    if (depthwise) check("depth multiplier", 1, op.depth_multiplier);
    if (!op.same_padding && conv->kernel > 1) fail(where() + " (" + key + "): padding: expected SAME, got VALID");

    const int32_t w = op.inputs[1], b = op.inputs[2];
    const auto& wt = m_.tensors[static_cast<size_t>(w)].shape;
    const std::vector<int64_t> expected_w =
        depthwise ? std::vector<int64_t>{1, conv->kernel, conv->kernel, conv->out_channels}
                  : std::vector<int64_t>{conv->out_channels, conv->kernel, conv->kernel, conv->in_channels};
    if (std::vector<int64_t>(wt.begin(), wt.end()) != expected_w) {
      fail(where() + " " + m_.describe_tensor(w) + ": expected weights of shape " + shape_text(expected_w) + " (" +
           key + "), got " + shape_text(wt));
    }
    const auto& bt = m_.tensors[static_cast<size_t>(b)].shape;
    if (bt != std::vector<int32_t>{static_cast<int32_t>(conv->out_channels)}) {
      fail(where() + " " + m_.describe_tensor(b) + ": expected a bias of shape [" +
           std::to_string(conv->out_channels) + "] (" + key + "), got " + shape_text(bt));
    }
    std::vector<float> wv = m_.dequantize(w), bv = m_.dequantize(b);
    torch::Tensor weights = torch::from_blob(wv.data(), expected_w, torch::kFloat).clone();
    weights = depthwise ? weights.permute({3, 0, 1, 2}) : weights.permute({0, 3, 1, 2});
    torch::NoGradGuard no_grad;
    conv->weight.copy_(weights.contiguous());
    conv->bias.copy_(torch::from_blob(bv.data(), {conv->out_channels}, torch::kFloat));
    current_ = op.outputs[0];
  }

  // A residual block's ADD of its input and its projection.
  void residual_add(int32_t block_input, const std::string& key) {
    const TfliteOperator& op = next(tflite_op::kAdd, key + " residual");
    if (op.inputs.size() != 2 || op.outputs.size() != 1) fail(where() + ": expected two inputs and one output");
    const int32_t a = resolve(op.inputs[0]), c = resolve(op.inputs[1]);
    const int32_t x = resolve(block_input), y = resolve(current_);
    if (!((a == x && c == y) || (a == y && c == x))) {
      fail(where() + " (" + key + " residual): expected the sum of " + m_.describe_tensor(block_input) + " and " +
           m_.describe_tensor(current_) + ", got " + m_.describe_tensor(op.inputs[0]) + " and " +
           m_.describe_tensor(op.inputs[1]));
    }
    if (op.activation != 0) fail(where() + " (" + key + " residual): expected no fused activation, got " + std::to_string(op.activation));
    current_ = op.outputs[0];
  }

  const TfliteModel& model() const { return m_; }

 private:
  const TfliteModel& m_;
  size_t index_ = 0, last_ = 0;
  int32_t current_ = -1;
  std::map<int32_t, int32_t> alias_;
};

void walk_backbone(GraphWalker& walker, MobileNetV2& net) {
  walker.convolution(net->stem, "stem");
  for (size_t i = 0; i < net->blocks->size(); ++i) {
    auto* block = net->blocks[i]->as<InvertedResidual>();
    const std::string key = "blocks." + std::to_string(i);
    const int32_t input = walker.current();
    if (block->expand) walker.convolution(block->expand, key + ".expand");
    walker.convolution(block->depthwise, key + ".depthwise");
    walker.convolution(block->project, key + ".project");
    if (block->residual) walker.residual_add(input, key);
  }
}

// The stem's output channels: the first convolution's weights [O,3,3,I].
int64_t stem_channels(const TfliteModel& model) {
  for (size_t i = 0; i < model.operators.size(); ++i) {
    const TfliteOperator& op = model.operators[i];
    if (op.code == tflite_op::kQuantize || op.code == tflite_op::kDequantize) continue;
    if (op.code != tflite_op::kConv2d || op.inputs.size() < 2 || op.inputs[1] < 0) {
      throw Error(model.source, model.describe_operator(i) + ": expected MobileNetV2's stem (CONV_2D) first, got " +
                                    tflite_op_name(op.code));
    }
    const auto& shape = model.tensors[static_cast<size_t>(op.inputs[1])].shape;
    if (shape.size() != 4 || shape[0] < 1) {
      throw Error(model.source, model.describe_tensor(op.inputs[1]) + ": expected stem weights [O,3,3,I], got " +
                                    shape_text(shape));
    }
    return shape[0];
  }
  throw Error(model.source, "expected MobileNetV2's stem (CONV_2D), got no operator");
}

// The output channels of the graph's last CONV_2D (the classes of its
// classifier or logits); `what` names it in the error when there is none.
int64_t last_convolution_channels(const TfliteModel& model, const std::string& what) {
  for (auto it = model.operators.rbegin(); it != model.operators.rend(); ++it) {
    if (it->code != tflite_op::kConv2d || it->inputs.size() < 2 || it->inputs[1] < 0) continue;
    const auto& shape = model.tensors[static_cast<size_t>(it->inputs[1])].shape;
    if (!shape.empty() && shape[0] >= 1) return shape[0];
    break;
  }
  throw Error(model.source, "expected " + what + " at the end of the graph, got none");
}

}  // namespace

double tflite_mobilenet_width(const TfliteModel& model) { return static_cast<double>(stem_channels(model)) / 32.0; }

MobileNetV2 import_mobilenet_v2_classifier(const TfliteModel& model) {
  const double width = tflite_mobilenet_width(model);
  const int64_t classes = last_convolution_channels(model, "a classifier convolution");
  MobileNetV2 net(MobileNetV2Options().in_channels(3).width(width).output_stride(32).num_classes(classes));
  GraphWalker walker(model);
  walk_backbone(walker, net);
  walker.convolution(net->head, "head");
  // Global pooling: AVERAGE_POOL_2D (TF1 files) or MEAN (TF2 files).
  const int32_t pool_code = walker.peek() == tflite_op::kMean ? tflite_op::kMean : tflite_op::kAveragePool2d;
  const TfliteOperator& pool = walker.next(pool_code, "global pooling");
  walker.expect_reads(pool, 0, walker.current(), "global pooling of the head");
  walker.set_current(pool.outputs[0]);
  walker.convolution(net->classifier, "classifier");
  return net;
}

SegmenterNet import_deeplabv3_mnv2(const TfliteModel& model) {
  const double width = tflite_mobilenet_width(model);
  const int64_t classes = last_convolution_channels(model, "a logits convolution");
  if (width != 1.0 && width != 0.5) {
    throw Error(model.source, "expected a MobileNetV2 of depth 1 or 0.5 (a stem of 32 or 16 channels), got " +
                                  std::to_string(static_cast<int64_t>(width * 32)) + " channels");
  }
  SegmenterConfig config;
  config.name = width == 1.0 ? "deeplabv3_mnv2_pascal" : "deeplabv3_mnv2_dm05_pascal";
  config.encoder = width == 1.0 ? "mobilenet_v2" : "mobilenet_v2_050";
  config.decoder = "deeplabv3";
  config.num_classes = classes;
  config.drop_path = 0;
  config.long_side = 513;  // the files' input size
  SegmenterNet net(config);
  GraphWalker walker(model);
  walk_backbone(walker, net->mobilenet_);
  const int32_t features = walker.current();
  // ASPP image pooling: a pool over the whole map, conv1x1, resize back.
  const TfliteOperator& pool = walker.next(tflite_op::kAveragePool2d, "aspp image pooling");
  walker.expect_reads(pool, 0, features, "aspp image pooling");
  const int32_t pool_output = pool.outputs[0];
  int32_t pooled = -1, branch0 = -1;
  auto pool_branch = [&] {
    walker.set_current(pool_output);
    walker.convolution(net->aspp_->pool, "aspp.pool");
    const TfliteOperator& up = walker.next(tflite_op::kResizeBilinear, "aspp image pooling upsampling");
    walker.expect_reads(up, 0, walker.current(), "aspp image pooling upsampling");
    pooled = up.outputs[0];
  };
  auto branch0_conv = [&] {
    walker.set_current(features);
    walker.convolution(net->aspp_->branch0, "aspp.branch0");
    branch0 = walker.current();
  };
  // The two branches come in either order (the file's op order is a topological sort).
  const TfliteOperator* ahead = walker.skip_quantize();
  if (ahead && !ahead->inputs.empty() && walker.resolve(ahead->inputs[0]) == walker.resolve(pool_output)) {
    pool_branch();
    branch0_conv();
  } else {
    branch0_conv();
    pool_branch();
  }
  const TfliteOperator& concat = walker.next(tflite_op::kConcatenation, "aspp concatenation");
  if (concat.inputs.size() != 2 || concat.axis != 3) {
    walker.fail(walker.where() + " (aspp concatenation): expected 2 inputs on axis 3 (channels), got " +
                std::to_string(concat.inputs.size()) + " on axis " + std::to_string(concat.axis));
  }
  walker.expect_reads(concat, 0, pooled, "aspp concatenation, first: image pooling");
  walker.expect_reads(concat, 1, branch0, "aspp concatenation, second: branch 0");
  walker.set_current(concat.outputs[0]);
  walker.convolution(net->aspp_->project, "aspp.project");
  TfConv logits(net->aspp_->project->out_channels, classes, 1, 1, 1, 1, TfActivation::kNone);
  walker.convolution(logits, "logits");
  torch::NoGradGuard no_grad;
  net->classifier_->weight.copy_(logits->weight);
  net->classifier_->bias.copy_(logits->bias);
  return net;
}

}  // namespace airm

