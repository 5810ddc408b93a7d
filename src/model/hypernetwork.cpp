// HyperNetwork psi: options, architecture, forward, and the low-rank
// multiplicative modulation of the implicit function's layers.
#include "airm/model/hypernetwork.hpp"

#include <cmath>
#include <string>

#include "airm/error.hpp"
#include "airm/model/sync_batch_norm.hpp"

namespace airm {

namespace nn = torch::nn;

namespace {

void require(bool ok, const std::string& problem) {
  if (!ok) throw Error("", "HyperNetworkOptions: " + problem);
}

}  // namespace

void HyperNetworkOptions::validate() const {
  require(in_channels_ >= 1, "in_channels must be >= 1, got " + std::to_string(in_channels_));
  require(conv_layers_ >= 0, "conv_layers must be >= 0, got " + std::to_string(conv_layers_));
  require(channels_ >= 1, "channels must be >= 1, got " + std::to_string(channels_));
  require(rank_ >= 1, "rank must be >= 1, got " + std::to_string(rank_));
  require(std::isfinite(init_std_) && init_std_ >= 0.0, "init_std must be >= 0, got " + std::to_string(init_std_));
}

HyperNetworkImpl::HyperNetworkImpl(HyperNetworkOptions options, std::vector<std::pair<int64_t, int64_t>> layer_shapes)
    : options_(std::move(options)), layer_shapes_(std::move(layer_shapes)) {
  options_.validate();
  if (layer_shapes_.empty()) throw Error("", "HyperNetwork: layer_shapes must name at least one layer, got none");
  for (size_t l = 0; l < layer_shapes_.size(); ++l) {
    const auto [out, in] = layer_shapes_[l];
    if (out < 1 || in < 1) {
      throw Error("", "HyperNetwork: layer " + std::to_string(l) + " shape must be (out>=1, in>=1), got (" +
                          std::to_string(out) + ", " + std::to_string(in) + ")");
    }
  }
  body_ = register_module("body", nn::Sequential());
  int64_t in = options_.in_channels();
  for (int64_t i = 0; i < options_.conv_layers(); ++i) {
    body_->push_back(nn::Conv2d(nn::Conv2dOptions(in, options_.channels(), 3).stride(2).padding(1).bias(false)));
    body_->push_back(SyncBatchNorm2d(nn::BatchNorm2dOptions(options_.channels())));
    body_->push_back(nn::ReLU());
    in = options_.channels();
  }
  head_ = register_module("head", nn::Linear(in, output_dim()));
  reset_parameters();
}

int64_t HyperNetworkImpl::output_dim() const {
  const int64_t r = options_.rank();
  int64_t n = 0;
  for (const auto& [out, in] : layer_shapes_) n += out * r + r * in + out;
  return n;
}

void HyperNetworkImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& module : body_->modules(/*include_self=*/false)) {
    if (auto* conv = module->as<nn::Conv2d>()) {
      conv->reset_parameters();
    } else if (auto* bn = module->as<SyncBatchNorm2d>()) {
      bn->reset_parameters();
    }
  }
  head_->weight.normal_(0.0, options_.init_std());
  head_->bias.zero_();
}

std::vector<LayerModulation> HyperNetworkImpl::forward(const torch::Tensor& feat) {
  // feat [B,Cin,h,w] -> per layer {A [B,out,r], B [B,r,in], bias [B,out]}
  TORCH_CHECK(feat.defined() && feat.dim() == 4 && feat.size(1) == options_.in_channels() && feat.size(2) >= 1 &&
                  feat.size(3) >= 1,
              "HyperNetwork feat: expected [B,", options_.in_channels(), ",h,w] with h,w >= 1, got ",
              feat.defined() ? feat.sizes() : c10::IntArrayRef{});
  const int64_t batch = feat.size(0);
  const int64_t r = options_.rank();
  torch::Tensor x = body_->size() == 0 ? feat : body_->forward(feat);  // [B,channels,h',w']
  torch::Tensor code = head_->forward(x.mean({2, 3}));                 // [B,output_dim]

  std::vector<LayerModulation> mods;
  int64_t offset = 0;
  auto take = [&](int64_t count) {
    torch::Tensor part = code.narrow(1, offset, count);
    offset += count;
    return part;
  };
  for (const auto& [out, in] : layer_shapes_) {
    LayerModulation m;
    m.A = take(out * r).reshape({batch, out, r});
    m.B = take(r * in).reshape({batch, r, in});
    m.bias = take(out);
    mods.push_back(std::move(m));
  }
  return mods;
}

std::vector<LayerWeights> modulate(const ImplicitFunction& function, const std::vector<LayerModulation>& mods) {
  // per layer {A [B,out,r], B [B,r,in], bias [B,out]} -> per layer {weight [B,out,in], bias [B,out]}
  const auto& layers = function->layers();
  TORCH_CHECK(mods.size() == layers.size(), "modulate: expected ", layers.size(), " layer modulations, got ",
              mods.size());
  const int64_t batch = mods.empty() || !mods[0].A.defined() ? 0 : mods[0].A.size(0);
  std::vector<LayerWeights> weights;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& m = mods[l];
    const torch::Tensor& w = layers[l]->weight;  // [out,in]
    const int64_t out = w.size(0);
    const int64_t in = w.size(1);
    TORCH_CHECK(m.A.defined() && m.A.dim() == 3 && m.A.size(0) == batch && m.A.size(1) == out && m.A.size(2) >= 1,
                "modulate: layer ", l, " A: expected [", batch, ",", out, ",r], got ",
                m.A.defined() ? m.A.sizes() : c10::IntArrayRef{});
    const int64_t r = m.A.size(2);
    TORCH_CHECK(m.B.defined() && m.B.dim() == 3 && m.B.size(0) == batch && m.B.size(1) == r && m.B.size(2) == in,
                "modulate: layer ", l, " B: expected [", batch, ",", r, ",", in, "], got ",
                m.B.defined() ? m.B.sizes() : c10::IntArrayRef{});
    TORCH_CHECK(m.bias.defined() && m.bias.dim() == 2 && m.bias.size(0) == batch && m.bias.size(1) == out,
                "modulate: layer ", l, " bias: expected [", batch, ",", out, "], got ",
                m.bias.defined() ? m.bias.sizes() : c10::IntArrayRef{});
    torch::Tensor factor = torch::tanh(torch::bmm(m.A, m.B) / std::sqrt(static_cast<double>(r))) + 1.0;
    weights.push_back(LayerWeights{w.unsqueeze(0) * factor, layers[l]->bias.unsqueeze(0) + m.bias});
  }
  return weights;
}

}  // namespace airm
