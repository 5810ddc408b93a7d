#include "airm/model/airm_net.hpp"

#include "airm/error.hpp"

namespace airm {
namespace F = torch::nn::functional;

torch::Tensor normalize_input(const torch::Tensor& rgb, const torch::Tensor& mask) {
  TORCH_CHECK(rgb.dim() == 4 && rgb.size(1) == 3, "expected rgb [B,3,H,W], got ", rgb.sizes());
  TORCH_CHECK(mask.dim() == 4 && mask.size(1) == 1, "expected mask [B,1,H,W], got ", mask.sizes());
  TORCH_CHECK(rgb.size(0) == mask.size(0) && rgb.size(2) == mask.size(2) && rgb.size(3) == mask.size(3),
              "expected rgb and mask of one size, got ", rgb.sizes(), " and ", mask.sizes());
  const auto opts = rgb.options();
  const torch::Tensor mean = torch::tensor({0.485, 0.456, 0.406}, opts).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor({0.229, 0.224, 0.225}, opts).view({1, 3, 1, 1});
  return torch::cat({(rgb - mean) / std, (mask.to(rgb.dtype()) - 0.5) * 2.0}, 1);
}

namespace {
MitOptions mit_options(const ModelConfig& config) {
  MitOptions options = config.encoder == "mit_b0"   ? MitOptions::b0(config.in_channels)
                       : config.encoder == "mit_b1" ? MitOptions::b1(config.in_channels)
                                                    : MitOptions::b2(config.in_channels);
  options.drop_path_rate(config.drop_path);
  return options;
}
}  // namespace

AirmNetImpl::AirmNetImpl(ModelConfig config) : config_(std::move(config)) {
  config_.validate();
  std::vector<int64_t> stage_channels;
  if (config_.uses_mit()) {
    mit_ = register_module("encoder", Mit(mit_options(config_)));
    stage_channels = mit_->options().embed_dims();
    if (config_.affinity) {
      const auto& o = mit_->options();
      const int64_t maps = o.depths().back() * o.num_heads().back();
      affinity_head_ = register_module(
          "affinity_head", AffinityHead(AffinityHeadOptions(maps).hidden_channels(config_.affinity_hidden)));
    }
  } else if (config_.uses_mobilenet()) {
    mobilenet_ = register_module(
        "encoder", MobileNetV2(MobileNetV2Options().in_channels(config_.in_channels).output_stride(16)));
    const std::vector<int64_t> all = mobilenet_->stage_channels();
    stage_channels.assign(all.begin() + 1, all.end());  // strides 4, 8, 16, 16 (the fusion has its own stride 2)
  } else {
    resnet_ = register_module("encoder", ResNetEncoder(ResNetOptions().in_channels(config_.in_channels)));
    stage_channels = resnet_->stage_channels();
  }
  fusion_ = register_module("fusion", FeatureFusion(FeatureFusionOptions(stage_channels, config_.in_channels)
                                                        .dim(config_.feature_dim)
                                                        .stem_channels(config_.stem_channels)));
  implicit_ = register_module(
      "implicit", ImplicitFunction(ImplicitFunctionOptions(config_.feature_dim)
                                       .hidden(config_.hidden)
                                       .local_ensemble(config_.local_ensemble)
                                       .unfold(config_.unfold)
                                       .guide_dim(config_.guide ? config_.in_channels : 0)));
  if (config_.residual) {
    prior_scale_ = register_parameter("prior_scale", torch::full({}, 3.0));
    // Start close to the prior: a small last layer (not zero: AIRMF scales
    // the shared weights multiplicatively, so a zero layer would stay zero).
    torch::NoGradGuard no_grad;
    const torch::nn::Linear& last = implicit_->layers().back();
    last->weight.mul_(0.1);
    last->bias.zero_();
  }
  if (config_.adaptive()) {
    hyper_ = register_module("hyper", HyperNetwork(HyperNetworkOptions(config_.feature_dim)
                                                       .conv_layers(config_.hyper_conv_layers)
                                                       .channels(config_.hyper_channels)
                                                       .rank(config_.rank),
                                                   implicit_->layer_shapes()));
  }
}

Encoded AirmNetImpl::encode(const torch::Tensor& input, bool with_affinity) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == config_.in_channels, "expected input [B,",
              config_.in_channels, ",H,W], got ", input.sizes());
  Encoded out;
  const std::vector<torch::Tensor> stages = run_encoder(input, with_affinity && config_.affinity, &out);
  out.features = fusion_->forward(input, stages);
  if (hyper_) out.weights = modulate(implicit_, hyper_->forward(out.features));
  return out;
}

std::vector<torch::Tensor> AirmNetImpl::run_encoder(const torch::Tensor& input, bool affinity, Encoded* out) {
  // input [B,C,H,W] -> the maps the fusion takes; with `affinity`, out's affinity fields are set too
  auto set_affinity = [&](torch::Tensor logits, const torch::Tensor& grid) {
    out->affinity = std::move(logits);
    out->affinity_h = grid.size(2);
    out->affinity_w = grid.size(3);
  };
  if (mit_) {
    MitOutput mit = mit_->forward(input, affinity);
    if (affinity) set_affinity(affinity_head_->forward(mit.attentions), mit.stages.back());
    return std::move(mit.stages);
  }
  if (mobilenet_) {
    std::vector<torch::Tensor> stages = mobilenet_stages(input);
    if (affinity) set_affinity(cnn_affinity(stages.back(), config_.affinity_radius), stages.back());
    return stages;
  }
  ResNetFeatures features = resnet_->forward(input);
  if (affinity) set_affinity(cnn_affinity(features.layer3, config_.affinity_radius), features.layer3);
  return features.list();
}

torch::Tensor AirmNetImpl::mobilenet_input(const torch::Tensor& input) {
  // input [B,C,H,W] -> [B,C,H,W]: ImageNet-normalised RGB to 2*rgb-1
  TORCH_CHECK(input.dim() == 4 && input.size(1) >= 3, "expected input [B,>=3,H,W], got ", input.sizes());
  const torch::Tensor rgb = imagenet_to_mobilenet_input(input.narrow(1, 0, 3));
  return input.size(1) == 3 ? rgb : torch::cat({rgb, input.narrow(1, 3, input.size(1) - 3)}, 1);
}

std::vector<torch::Tensor> AirmNetImpl::mobilenet_stages(const torch::Tensor& input) {
  // input [B,C,H,W] -> 4 maps at strides 4, 8, 16, 16
  TORCH_CHECK(mobilenet_, "mobilenet_stages: expected a MobileNetV2 encoder, got ", config_.encoder);
  std::vector<torch::Tensor> stages = mobilenet_->features(mobilenet_input(input)).stages;
  stages.erase(stages.begin());
  return stages;
}

std::vector<torch::Tensor> AirmNetImpl::encoder_stages(const torch::Tensor& input) {
  // input [B,C,H,W] -> the maps the fusion takes
  return run_encoder(input, false, nullptr);
}

torch::Tensor AirmNetImpl::sample_guide(const torch::Tensor& input, const torch::Tensor& coord) {
  TORCH_CHECK(coord.dim() == 3 && coord.size(2) == 2, "expected coord [B,Q,2], got ", coord.sizes());
  // grid_sample wants (x, y); our coordinates are (y, x).
  // LibTorch 1.13's CPU grid_sample has no bf16 kernel: sample reduced-precision inputs in fp32.
  const bool reduced = input.scalar_type() == torch::kBFloat16 || input.scalar_type() == torch::kHalf;
  const torch::Tensor source = reduced ? input.to(torch::kFloat) : input;
  const torch::Tensor grid = coord.flip({2}).unsqueeze(1).to(source.dtype());  // [B,1,Q,2]
  const torch::Tensor sampled = F::grid_sample(
      source, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
  return sampled.squeeze(2).permute({0, 2, 1}).to(input.dtype());  // [B,Q,C]
}

torch::Tensor AirmNetImpl::add_coarse_prior(const torch::Tensor& logits, const torch::Tensor& input,
                                           const torch::Tensor& coord) const {
  if (!config_.residual) return logits;
  // The mask channel is the last input channel, (m - 0.5) * 2 in [-1, 1].
  const torch::Tensor mask = input.narrow(1, input.size(1) - 1, 1);
  return apply_prior(logits, sample_guide(mask, coord).squeeze(2));
}

torch::Tensor AirmNetImpl::apply_prior(const torch::Tensor& logits, const torch::Tensor& mask) const {
  if (!config_.residual) return logits;
  TORCH_CHECK(mask.sizes() == logits.sizes(), "expected the mask at the queries ", logits.sizes(), ", got ",
              mask.sizes());
  return logits + prior_scale_.to(logits.dtype()) * mask.to(logits.dtype());
}

torch::Tensor AirmNetImpl::query(const Encoded& encoded, const torch::Tensor& input, const torch::Tensor& coord,
                                 const torch::Tensor& cell, int64_t chunk_size) {
  const std::vector<LayerWeights>* weights = encoded.weights.empty() ? nullptr : &encoded.weights;
  const torch::Tensor guide = config_.guide ? sample_guide(input, coord) : torch::Tensor();
  return add_coarse_prior(implicit_->query(encoded.features, coord, cell, guide, weights, chunk_size), input, coord);
}

torch::Tensor AirmNetImpl::forward(const torch::Tensor& input, const torch::Tensor& coord, const torch::Tensor& cell) {
  const Encoded encoded = encode(input);
  const std::vector<LayerWeights>* weights = encoded.weights.empty() ? nullptr : &encoded.weights;
  const torch::Tensor guide = config_.guide ? sample_guide(input, coord) : torch::Tensor();
  return add_coarse_prior(implicit_->forward(encoded.features, coord, cell, guide, weights), input, coord);
}

torch::Tensor AirmNetImpl::affinity_loss(const Encoded& encoded, const torch::Tensor& gt) const {
  TORCH_CHECK(encoded.affinity.defined(), "affinity loss: expected an encoding made with affinity, got none");
  if (mit_) {
    const AffinityLabels labels = affinity_labels(gt, encoded.affinity_h, encoded.affinity_w, config_.affinity_radius);
    return affinity_loss_from_logits(encoded.affinity, labels.labels, labels.valid);
  }
  const AffinityLabels labels =
      local_affinity_labels(gt, encoded.affinity_h, encoded.affinity_w, config_.affinity_radius);
  return affinity_loss_from_probabilities(encoded.affinity, labels.labels, labels.valid);
}

}  // namespace airm
