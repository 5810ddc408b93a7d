// MiT backbone: options, stage assembly, forward, initialisation.
#include "airm/model/mit.hpp"
#include "shape_text.hpp"

#include <cmath>
#include <sstream>
#include <string>

#include "airm/error.hpp"

namespace airm {

namespace nn = torch::nn;

namespace {

constexpr size_t kStages = 4;

void require(bool ok, const std::string& problem) {
  if (!ok) throw Error("", "MitOptions: " + problem);
}

void check_stage_vector(const std::vector<int64_t>& v, const char* name, int64_t min_value) {
  require(v.size() == kStages,
          std::string(name) + " must have " + std::to_string(kStages) + " entries, got " + shape_text(v));
  for (int64_t x : v) {
    require(x >= min_value, std::string(name) + " entries must be >= " + std::to_string(min_value) + ", got " +
                                shape_text(v));
  }
}

// Truncated normal on [mean - 2 std, mean + 2 std] by inverse-CDF sampling.
void trunc_normal_(torch::Tensor t, double std) {
  torch::NoGradGuard no_grad;
  const double lo = std::erf(-2.0 / std::sqrt(2.0));  // 2*Phi(-2)-1
  const double hi = -lo;
  t.uniform_(lo, hi).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(-2.0 * std, 2.0 * std);
}

}  // namespace

MitOptions MitOptions::b0(int64_t in_channels) {
  return MitOptions().in_channels(in_channels).embed_dims({32, 64, 160, 256}).depths({2, 2, 2, 2});
}

MitOptions MitOptions::b1(int64_t in_channels) {
  return MitOptions().in_channels(in_channels).embed_dims({64, 128, 320, 512}).depths({2, 2, 2, 2});
}

MitOptions MitOptions::b2(int64_t in_channels) {
  return MitOptions().in_channels(in_channels).embed_dims({64, 128, 320, 512}).depths({3, 4, 6, 3});
}

void MitOptions::validate() const {
  require(in_channels_ >= 1, "in_channels must be >= 1, got " + std::to_string(in_channels_));
  check_stage_vector(embed_dims_, "embed_dims", 1);
  check_stage_vector(num_heads_, "num_heads", 1);
  check_stage_vector(depths_, "depths", 1);
  check_stage_vector(sr_ratios_, "sr_ratios", 1);
  check_stage_vector(patch_sizes_, "patch_sizes", 1);
  check_stage_vector(patch_strides_, "patch_strides", 1);
  for (size_t i = 0; i < kStages; ++i) {
    require(embed_dims_[i] % num_heads_[i] == 0, "embed_dims " + shape_text(embed_dims_) +
                                                     " not divisible by num_heads " + shape_text(num_heads_) +
                                                     " at stage " + std::to_string(i + 1));
  }
  require(mlp_ratio_ >= 1, "mlp_ratio must be >= 1, got " + std::to_string(mlp_ratio_));
  require(std::isfinite(drop_path_rate_) && drop_path_rate_ >= 0.0 && drop_path_rate_ < 1.0,
          "drop_path_rate must be in [0, 1), got " + std::to_string(drop_path_rate_));
  require(std::isfinite(norm_eps_) && norm_eps_ > 0.0, "norm_eps must be > 0, got " + std::to_string(norm_eps_));
  require(std::isfinite(conv_norm_eps_) && conv_norm_eps_ > 0.0,
          "conv_norm_eps must be > 0, got " + std::to_string(conv_norm_eps_));
}

MitImpl::MitImpl(MitOptions options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;

  int64_t total_blocks = 0;
  for (int64_t d : o.depths()) total_blocks += d;
  // Linearly increasing stochastic-depth rate over all blocks, from 0.
  auto rate = [&](int64_t k) {
    return total_blocks > 1 ? o.drop_path_rate() * static_cast<double>(k) / static_cast<double>(total_blocks - 1)
                            : 0.0;
  };

  // Registration order matches the official state dict: all patch
  // embeddings, then per stage its blocks and its norm.
  int64_t in = o.in_channels();
  for (size_t s = 0; s < kStages; ++s) {
    const std::string idx = std::to_string(s + 1);
    patch_embeds_.push_back(register_module(
        "patch_embed" + idx,
        OverlapPatchEmbed(in, o.embed_dims()[s], o.patch_sizes()[s], o.patch_strides()[s], o.conv_norm_eps())));
    in = o.embed_dims()[s];
  }
  int64_t k = 0;
  for (size_t s = 0; s < kStages; ++s) {
    const std::string idx = std::to_string(s + 1);
    nn::ModuleList list;
    std::vector<MitBlock> typed;
    for (int64_t j = 0; j < o.depths()[s]; ++j, ++k) {
      MitBlock block(o.embed_dims()[s], o.num_heads()[s], o.mlp_ratio(), o.sr_ratios()[s], rate(k), o.norm_eps(),
                     o.conv_norm_eps());
      list->push_back(block);
      typed.push_back(block);
    }
    register_module("block" + idx, list);
    blocks_.push_back(std::move(typed));
    norms_.push_back(register_module("norm" + idx, nn::LayerNorm(nn::LayerNormOptions({o.embed_dims()[s]})
                                                                         .eps(o.norm_eps()))));
  }
  reset_parameters();
}

void MitImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<nn::Linear>()) {
      trunc_normal_(linear->weight, 0.02);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* conv = module->as<nn::Conv2d>()) {
      const auto& co = conv->options;
      int64_t fan_out = co.out_channels() / co.groups();
      for (int64_t k : *co.kernel_size()) fan_out *= k;
      conv->weight.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_out)));
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* norm = module->as<nn::LayerNorm>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
}

MitOutput MitImpl::forward(const torch::Tensor& x, bool with_attention) {
  // [B,Cin,H,W] -> stages [B,C_i,ceil(H/s_i),ceil(W/s_i)], s = 4/8/16/32 (+ [B,heads,N,N] per last-stage block)
  if (x.dim() != 4 || x.size(1) != options_.in_channels()) {
    std::ostringstream got;
    got << x.sizes();
    throw Error("", "MiT input: expected [B," + std::to_string(options_.in_channels()) + ",H,W], got " + got.str());
  }
  MitOutput out;
  torch::Tensor y = x;
  const size_t last = kStages - 1;
  for (size_t s = 0; s < kStages; ++s) {
    int64_t h = 0;
    int64_t w = 0;
    torch::Tensor tokens = patch_embeds_[s]->forward(y, h, w);  // [B, h*w, C]
    const int64_t sr = options_.sr_ratios()[s];
    if (h < sr || w < sr) {
      std::ostringstream got;
      got << x.sizes();
      throw Error("", "MiT input " + got.str() + " too small: stage " + std::to_string(s + 1) + " grid " +
                          std::to_string(h) + "x" + std::to_string(w) + " is below its reduction ratio " +
                          std::to_string(sr));
    }
    for (auto& block : blocks_[s]) {
      if (with_attention && s == last) {
        torch::Tensor attn;
        tokens = block->forward(tokens, h, w, &attn);
        out.attentions.push_back(attn);
      } else {
        tokens = block->forward(tokens, h, w);
      }
    }
    tokens = norms_[s]->forward(tokens);
    // [B, h*w, C] -> [B, C, h, w]
    y = tokens.reshape({tokens.size(0), h, w, tokens.size(2)}).permute({0, 3, 1, 2}).contiguous();
    out.stages.push_back(y);
  }
  return out;
}

}  // namespace airm
