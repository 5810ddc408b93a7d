// Importing TensorFlow's pretrained MobileNetV2 files (TFLite) into our
// modules, by the graph's structure: the operators are walked in order and
// each convolution of the module (MobileNetV2Impl::convolutions()) must meet
// the TFLite op of its kind that reads the activation the previous one made
// (quantise/dequantise ops are looked through), with the expected kernel,
// stride, dilation, SAME padding, fused activation and weight shapes;
// residual blocks must end in an ADD of the block's input and projection.
// OHWI weights become [O,I,kh,kw], depthwise 1HWC weights [C,1,kh,kw];
// quantised weights and biases are dequantised (tflite.hpp). Anything else
// (another architecture, an unsupported op, a tensor of the wrong shape or
// type) throws airm::Error naming the file, the operator or tensor, what was
// expected and what came.
#pragma once

#include <string>

#include "airm/model/mobilenet_v2.hpp"
#include "airm/model/segmenter.hpp"
#include "airm/model/tflite.hpp"

namespace airm {

// An ImageNet MobileNetV2 classifier file (224², 1001 classes): returns the
// network (3 input channels, output stride 32, classifier included) with the
// file's weights. The width is read from the stem (32 x width channels).
MobileNetV2 import_mobilenet_v2_classifier(const TfliteModel& model);

// A DeepLabV3-MobileNetV2 segmentation file (513², PASCAL's 21 classes) as
// a segmenter (encoder mobilenet_v2 or mobilenet_v2_050, decoder deeplabv3,
// long side 513): the encoder at output stride 16 (the graph's dilations
// are checked), ASPP and logits. The layers after the logits (resizes,
// ARG_MAX) are not weights and are not read.
SegmenterNet import_deeplabv3_mnv2(const TfliteModel& model);

// The depth multiplier of a MobileNetV2 file: the stem's channels / 32.
double tflite_mobilenet_width(const TfliteModel& model);

}  // namespace airm
