// The coarse segmenter: gives a user without a mask a coarse one for the
// refiner. A MiT backbone over ImageNet-normalised RGB and a decoder with the
// Semantic Refinement Module (SRM) and the Contextual Refinement Module of
// "A Deep Semantic Segmentation Network with Semantic and Contextual
// Refinements" (arXiv 2412.08671; modules in refinement_modules.hpp). The
// abstract leaves the architecture open; the choices made here:
//
//   backbone   MiT (default b0, in_channels 3), stages F1..F4 at strides
//              4/8/16/32 (ceil sizes on odd inputs); official SegFormer key
//              names under "backbone." (load_mit_state_dict on backbone_).
//   laterals   L_i = conv1x1(F_i -> D)+BN+ReLU, D = decoder_dim (64).
//   top-down   P4 = L4; for i = 3,2,1 (strides 16, 8, 4):
//                U = SRM_i(L_i, P_{i+1}, offsets of the step before)
//                    (srm off: U = bilinear(P_{i+1} -> size of L_i))
//                P_i = conv3x3(L_i + U)+BN+ReLU           (fusion by sum)
//              so the SRM sits at each of the three upsampling steps
//              (32->16, 16->8, 8->4) and warps the upsampled coarser map
//              before the fusion; offsets are (dx,dy) in pixels of the finer
//              grid, the first step sees zero "previous" offsets, later steps
//              the previous field resized with its values scaled by the size
//              ratio (about x2). Offset heads: 2 convs 3x3 of width srm_hidden
//              (32) +BN+ReLU, then conv3x3 -> 2 zero-initialised, so a fresh
//              network computes exactly (bit for bit) what the srm-off
//              ablation with the same other weights computes.
//   contextual on the decoder's four semantic maps P1..P4 (all width D,
//              resized bilinearly to stride 4, concatenated: 4D channels),
//              SE channel attention (avg pool, 1x1 4D -> 4D/context_reduction,
//              ReLU, 1x1 back, sigmoid), then spatial attention (channel mean
//              and max, conv7x7 2 -> 1, sigmoid), then conv1x1 4D -> D+BN+ReLU;
//              it feeds the classifier. Off: the classifier reads P1.
//   classifier conv1x1 D -> K (num_classes) at stride 4, then bilinear
//              (align_corners=false) to the input size (x4 up to rounding).
//   norms      BatchNorm everywhere in the decoder (as the refiner's fusion);
//              default LibTorch initialisation except the zeroed offset convs.
//   mobilenet  encoder mobilenet_v2(_050): MobileNetV2 at output stride 16
//              over 2*rgb-1 (converted from the ImageNet-normalised input),
//              F1..F3 = its maps at strides 4/8/16 (blocks 2, 5, 12) and
//              F4 = ASPP (aspp.hpp, 256 channels) of its last map, also at
//              stride 16: the first top-down step then warps at one size.
//              Decoder "deeplabv3": the classifier reads the ASPP directly
//              (DeepLabV3's logits, align_corners upsampling as TensorFlow's
//              graph) — the imported PASCAL network (tflite_import.hpp).
//   prior      (prior_classes = P > 0; MobileNetV2, K = 1) DeepLabV3's
//              classifier conv1x1 ASPP -> P kept as `prior`; its logits are
//              upsampled as the deeplabv3 decoder's (align_corners) and the
//              foreground logit logsumexp(l_1..l_P-1) - l_0 is added to the
//              decoder's. The classifier starts at zero, so a network whose
//              backbone, ASPP and prior come from an imported DeepLabV3 starts
//              as that network zero-shot (every non-background class is
//              foreground) and training learns a correction of it.
//   output     K = 1: one foreground logit; K > 1: K class logits, class 0 =
//              background (segment() reads 1 - softmax[0] as foreground).
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "airm/model/aspp.hpp"
#include "airm/model/mit.hpp"
#include "airm/model/mobilenet_v2.hpp"
#include "airm/model/refinement_modules.hpp"
#include "airm/model/segmenter_config.hpp"

namespace airm {

// ImageNet normalisation of RGB in [0,1]. rgb [B,3,H,W] -> [B,3,H,W]
torch::Tensor normalize_rgb(const torch::Tensor& rgb);

struct SegmenterNetImpl : torch::nn::Module {
  explicit SegmenterNetImpl(SegmenterConfig config = SegmenterConfig());

  // rgb_normalised [B,3,H,W] -> logits [B,num_classes,H,W]; if offsets is
  // non-null it receives the SRM offset fields (strides 16, 8, 4), empty with srm off.
  torch::Tensor forward(const torch::Tensor& rgb_normalised, std::vector<torch::Tensor>* offsets = nullptr);

  const SegmenterConfig& config() const { return config_; }

  // One backbone is set (both are registered as "backbone").
  Mit backbone_{nullptr};
  MobileNetV2 mobilenet_{nullptr};
  Aspp aspp_{nullptr};                       // mobilenet only
  // srm_crm decoder only:
  torch::nn::ModuleList laterals_{nullptr};  // 4 x conv1x1+BN+ReLU, strides 4..32
  torch::nn::ModuleList srms_{nullptr};      // 3 x SRM (srm only), strides 4, 8, 16
  torch::nn::ModuleList fuses_{nullptr};     // 3 x conv3x3+BN+ReLU, strides 4, 8, 16
  ContextualRefinementModule contextual_{nullptr};  // contextual only
  torch::nn::Conv2d classifier_{nullptr};
  torch::nn::Conv2d prior_{nullptr};  // prior_classes > 0 only: DeepLabV3's classifier on the ASPP

  // The four maps the decoder reads (strides 4/8/16/32, or 4/8/16/16 with
  // the ASPP as the last for MobileNetV2).
  // rgb_normalised [B,3,H,W] -> 4 x [B,C_i,h_i,w_i]
  std::vector<torch::Tensor> backbone_stages(const torch::Tensor& rgb_normalised);

 private:
  SegmenterConfig config_;
};
TORCH_MODULE(SegmenterNet);

// Foreground probability of an image: the image (CV_8U, 1/3/4 channels, BGR
// order) is resized so that its long side is `long_side` (0: the config's
// long_side, the scale the network was trained at; area filter when
// shrinking, linear when enlarging), run through the network in eval mode
// without gradients on the network's device (its mode is restored), and the
// logits are resized bilinearly to the image size. K = 1: sigmoid(logit);
// K > 1: 1 - p(class 0). Returns CV_32F in [0,1] of the image's size.
// Throws airm::Error for an empty or non-8-bit image or long_side < 32.
cv::Mat segment(SegmenterNet& net, const cv::Mat& image, int64_t long_side = 0);

// The coarse mask a refiner takes: segment() thresholded at 1/2, CV_8UC1
// 0/255 of the image's size.
cv::Mat segment_mask(SegmenterNet& net, const cv::Mat& image, int64_t long_side = 0);

}  // namespace airm
