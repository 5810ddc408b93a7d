// Affinity head, CNN affinity, affinity labels and loss.
#include "airm/model/affinity.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "airm/error.hpp"

namespace airm {

namespace nn = torch::nn;

namespace {

void require_radius(int64_t radius) {
  if (radius < 0) throw Error("", "affinity radius must be >= 0, got " + std::to_string(radius));
}

void check_grid(int64_t h, int64_t w) {
  TORCH_CHECK(h >= 1 && w >= 1, "expected a grid of at least 1x1 cells, got ", h, "x", w);
}

bool within(int64_t dy, int64_t dx, int64_t radius, PairDistance distance) {
  if (distance == PairDistance::kChebyshev) return std::max(std::abs(dy), std::abs(dx)) <= radius;
  return dy * dy + dx * dx <= radius * radius;
}

// Index tensors of the local layout on `device`: for each (k, y, x) the flat
// index i = y*w + x of the cell, j of its neighbour (clamped into the grid)
// and whether the neighbour is inside the grid. Each [K, h, w].
struct LocalIndex {
  torch::Tensor i;
  torch::Tensor j;
  torch::Tensor inside;
};

LocalIndex local_index(int64_t h, int64_t w, const std::vector<std::pair<int64_t, int64_t>>& offsets,
                       const torch::Device& device) {
  const auto K = static_cast<int64_t>(offsets.size());
  std::vector<int64_t> dys;
  std::vector<int64_t> dxs;
  for (const auto& [dy, dx] : offsets) {
    dys.push_back(dy);
    dxs.push_back(dx);
  }
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong);
  const torch::Tensor dy = torch::tensor(dys, long_opts).to(device).view({K, 1, 1});
  const torch::Tensor dx = torch::tensor(dxs, long_opts).to(device).view({K, 1, 1});
  const torch::Tensor ys = torch::arange(h, long_opts.device(device)).view({1, h, 1});
  const torch::Tensor xs = torch::arange(w, long_opts.device(device)).view({1, 1, w});
  const torch::Tensor ny = ys + dy;  // [K,h,1]
  const torch::Tensor nx = xs + dx;  // [K,1,w]
  LocalIndex out;
  out.inside = ((ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)).expand({K, h, w});
  out.i = (ys * w + xs).expand({K, h, w});
  out.j = ny.clamp(0, h - 1) * w + nx.clamp(0, w - 1);
  return out;
}

// Rows [lo, hi) of the cells whose neighbour at offset d is inside [0, n).
std::pair<int64_t, int64_t> overlap(int64_t n, int64_t d) {
  return {std::max<int64_t>(0, -d), std::min<int64_t>(n, n - d)};
}

// a_ij = exp(-mean_c |f_i - f_j|) over the local layout, with a backward that
// recomputes the per-offset differences instead of storing them.
struct CnnAffinityFunction : public torch::autograd::Function<CnnAffinityFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& features, int64_t radius,
                               int64_t distance) {
    // [B,C,h,w] -> [B,K,h,w]
    const auto offsets = neighbour_offsets(radius, static_cast<PairDistance>(distance));
    const int64_t B = features.size(0);
    const int64_t h = features.size(2);
    const int64_t w = features.size(3);
    torch::Tensor out = torch::zeros({B, static_cast<int64_t>(offsets.size()), h, w}, features.options());
    for (size_t k = 0; k < offsets.size(); ++k) {
      const auto [dy, dx] = offsets[k];
      const auto [y0, y1] = overlap(h, dy);
      const auto [x0, x1] = overlap(w, dx);
      if (y0 >= y1 || x0 >= x1) continue;
      const torch::Tensor fi = features.slice(2, y0, y1).slice(3, x0, x1);
      const torch::Tensor fj = features.slice(2, y0 + dy, y1 + dy).slice(3, x0 + dx, x1 + dx);
      out.select(1, static_cast<int64_t>(k)).slice(1, y0, y1).slice(2, x0, x1).copy_(
          torch::exp(-(fi - fj).abs().mean(1)));
    }
    ctx->save_for_backward({features, out});
    ctx->saved_data["radius"] = radius;
    ctx->saved_data["distance"] = distance;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& features = saved[0];
    const torch::Tensor& out = saved[1];
    const torch::Tensor& grad_out = grads[0];
    torch::Tensor grad = torch::zeros_like(features);
    if (grad_out.defined()) {
      const auto offsets = neighbour_offsets(ctx->saved_data["radius"].toInt(),
                                             static_cast<PairDistance>(ctx->saved_data["distance"].toInt()));
      const int64_t C = features.size(1);
      const int64_t h = features.size(2);
      const int64_t w = features.size(3);
      for (size_t k = 0; k < offsets.size(); ++k) {
        const auto [dy, dx] = offsets[k];
        const auto [y0, y1] = overlap(h, dy);
        const auto [x0, x1] = overlap(w, dx);
        if (y0 >= y1 || x0 >= x1) continue;
        const auto kk = static_cast<int64_t>(k);
        const torch::Tensor a = out.select(1, kk).slice(1, y0, y1).slice(2, x0, x1);
        const torch::Tensor g = grad_out.select(1, kk).slice(1, y0, y1).slice(2, x0, x1);
        // d a / d f_i = -a * sign(f_i - f_j) / C, and the opposite for f_j.
        const torch::Tensor coeff = (g * a).neg().div(static_cast<double>(C)).unsqueeze(1);  // [B,1,h',w']
        const torch::Tensor fi = features.slice(2, y0, y1).slice(3, x0, x1);
        const torch::Tensor fj = features.slice(2, y0 + dy, y1 + dy).slice(3, x0 + dx, x1 + dx);
        const torch::Tensor step = coeff * (fi - fj).sign();
        grad.slice(2, y0, y1).slice(3, x0, x1).add_(step);
        grad.slice(2, y0 + dy, y1 + dy).slice(3, x0 + dx, x1 + dx).sub_(step);
      }
    }
    return {grad, torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor loss_from_probabilities(const torch::Tensor& p, const torch::Tensor& labels, const torch::Tensor& valid,
                                      const char* what) {
  TORCH_CHECK(labels.sizes() == p.sizes(), what, ": expected labels of shape ", p.sizes(), ", got ",
              labels.sizes());
  TORCH_CHECK(valid.sizes() == p.sizes(), what, ": expected valid of shape ", p.sizes(), ", got ", valid.sizes());
  TORCH_CHECK(valid.scalar_type() == torch::kBool, what, ": expected a bool valid mask, got ",
              valid.scalar_type());
  const torch::Tensor positive = valid & (labels > 0.5);
  const torch::Tensor negative = valid & (labels <= 0.5);
  const torch::Tensor zero = torch::zeros({}, p.options());
  // where() rather than a product, so values of excluded pairs never leak in.
  const torch::Tensor pos_sum = torch::where(positive, 1.0 - p, zero).sum();
  const torch::Tensor neg_sum = torch::where(negative, p, zero).sum();
  const torch::Tensor pos_count = positive.sum().clamp_min(1).to(p.scalar_type());
  const torch::Tensor neg_count = negative.sum().clamp_min(1).to(p.scalar_type());
  return 0.5 * pos_sum / pos_count + 0.5 * neg_sum / neg_count;
}

}  // namespace

// ---------------------------------------------------------------------------
// Affinity head

void AffinityHeadOptions::validate() const {
  if (in_channels_ < 1) {
    throw Error("", "AffinityHeadOptions: in_channels must be >= 1, got " + std::to_string(in_channels_));
  }
  if (hidden_channels_ < 0) {
    throw Error("", "AffinityHeadOptions: hidden_channels must be >= 0, got " + std::to_string(hidden_channels_));
  }
}

AffinityHeadImpl::AffinityHeadImpl(AffinityHeadOptions options) : options_(std::move(options)) {
  options_.validate();
  int64_t in = options_.in_channels();
  if (options_.hidden_channels() > 0) {
    hidden_ = register_module("hidden", nn::Linear(in, options_.hidden_channels()));
    in = options_.hidden_channels();
  }
  proj_ = register_module("proj", nn::Linear(in, 1));
}

torch::Tensor AffinityHeadImpl::forward(const std::vector<torch::Tensor>& attentions) {
  // list of [B, heads_l, N, N] -> logits [B, N, N]
  TORCH_CHECK(!attentions.empty(), "AffinityHead: expected at least one attention map, got none");
  for (const auto& a : attentions) {
    TORCH_CHECK(a.dim() == 4 && a.size(0) == attentions[0].size(0) && a.size(2) == attentions[0].size(2) &&
                    a.size(3) == attentions[0].size(3),
                "AffinityHead: expected attention maps [B,heads,N,N] of one B and N, got ", a.sizes(), " beside ",
                attentions[0].sizes());
  }
  return forward_stacked(torch::cat(attentions, 1));
}

torch::Tensor AffinityHeadImpl::forward_stacked(const torch::Tensor& attention) {
  // [B, in_channels, N, N] -> logits [B, N, N]
  TORCH_CHECK(attention.dim() == 4 && attention.size(1) == options_.in_channels() &&
                  attention.size(2) == attention.size(3),
              "AffinityHead: expected [B,", options_.in_channels(), ",N,N], got ", attention.sizes());
  const torch::Tensor symmetric = attention + attention.transpose(2, 3);
  torch::Tensor x = symmetric.permute({0, 2, 3, 1});  // [B,N,N,C]
  if (hidden_) x = torch::relu(hidden_->forward(x));
  return proj_->forward(x).squeeze(-1);
}

// ---------------------------------------------------------------------------
// Pairs

std::vector<std::pair<int64_t, int64_t>> neighbour_offsets(int64_t radius, PairDistance distance) {
  require_radius(radius);
  std::vector<std::pair<int64_t, int64_t>> offsets;
  for (int64_t dy = 0; dy <= radius; ++dy) {
    for (int64_t dx = -radius; dx <= radius; ++dx) {
      if (dy == 0 && dx <= 0) continue;
      if (within(dy, dx, radius, distance)) offsets.emplace_back(dy, dx);
    }
  }
  return offsets;
}

torch::Tensor gather_local_pairs(const torch::Tensor& dense, int64_t h, int64_t w, int64_t radius,
                                 PairDistance distance) {
  // [B, N, N] -> [B, K, h, w]
  check_grid(h, w);
  const int64_t N = h * w;
  TORCH_CHECK(dense.dim() == 3 && dense.size(1) == N && dense.size(2) == N, "gather_local_pairs: expected [B,", N,
              ",", N, "], got ", dense.sizes());
  const auto offsets = neighbour_offsets(radius, distance);
  const auto K = static_cast<int64_t>(offsets.size());
  const int64_t B = dense.size(0);
  const LocalIndex index = local_index(h, w, offsets, dense.device());
  const torch::Tensor flat = (index.i * N + index.j).reshape({1, K * h * w}).expand({B, K * h * w});
  const torch::Tensor picked = dense.reshape({B, N * N}).gather(1, flat).view({B, K, h, w});
  return torch::where(index.inside.unsqueeze(0), picked, torch::zeros({}, dense.options()));
}

// ---------------------------------------------------------------------------
// CNN affinity

torch::Tensor cnn_affinity(const torch::Tensor& features, int64_t radius, PairDistance distance) {
  // [B, C, h, w] -> [B, K, h, w]
  TORCH_CHECK(features.dim() == 4 && features.size(1) >= 1 && features.size(2) >= 1 && features.size(3) >= 1,
              "cnn_affinity: expected features [B,C,h,w], got ", features.sizes());
  TORCH_CHECK(features.is_floating_point(), "cnn_affinity: expected floating-point features, got ",
              features.scalar_type());
  require_radius(radius);
  return CnnAffinityFunction::apply(features, radius, static_cast<int64_t>(distance));
}

// ---------------------------------------------------------------------------
// Labels and loss

torch::Tensor mask_to_grid(const torch::Tensor& gt, int64_t h, int64_t w) {
  // [B, 1, H, W] -> [B, h, w] of 0/1
  check_grid(h, w);
  TORCH_CHECK(gt.dim() == 4 && gt.size(1) == 1 && gt.size(2) >= 1 && gt.size(3) >= 1,
              "expected a ground-truth mask [B,1,H,W], got ", gt.sizes());
  const torch::Tensor g = gt.is_floating_point() ? gt : gt.to(torch::kFloat);
  const torch::Tensor area = torch::adaptive_avg_pool2d(g, {h, w});
  return (area > 0.5).to(g.scalar_type()).squeeze(1);
}

AffinityLabels affinity_labels(const torch::Tensor& gt, int64_t h, int64_t w, int64_t radius, PairDistance distance) {
  // [B, 1, H, W] -> labels, valid [B, N, N] (N = h*w)
  require_radius(radius);
  const torch::Tensor cls = mask_to_grid(gt, h, w).flatten(1);  // [B,N]
  const int64_t B = cls.size(0);
  const int64_t N = h * w;
  AffinityLabels out;
  out.labels = (cls.unsqueeze(2) == cls.unsqueeze(1)).to(cls.scalar_type());
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(gt.device());
  const torch::Tensor idx = torch::arange(N, long_opts);
  const torch::Tensor dy = (idx.div(w, "floor").unsqueeze(1) - idx.div(w, "floor").unsqueeze(0)).abs();
  const torch::Tensor dx = (idx.remainder(w).unsqueeze(1) - idx.remainder(w).unsqueeze(0)).abs();
  const torch::Tensor near =
      distance == PairDistance::kChebyshev ? torch::maximum(dy, dx) <= radius : dy * dy + dx * dx <= radius * radius;
  const torch::Tensor off_diagonal = idx.unsqueeze(1) != idx.unsqueeze(0);
  out.valid = (near & off_diagonal).unsqueeze(0).expand({B, N, N}).contiguous();
  return out;
}

AffinityLabels local_affinity_labels(const torch::Tensor& gt, int64_t h, int64_t w, int64_t radius,
                                     PairDistance distance) {
  // [B, 1, H, W] -> labels, valid [B, K, h, w]
  require_radius(radius);
  const torch::Tensor cls = mask_to_grid(gt, h, w).flatten(1);  // [B,N]
  const int64_t B = cls.size(0);
  const auto offsets = neighbour_offsets(radius, distance);
  const auto K = static_cast<int64_t>(offsets.size());
  const LocalIndex index = local_index(h, w, offsets, gt.device());
  const torch::Tensor ci = cls.index_select(1, index.i.reshape({-1})).view({B, K, h, w});
  const torch::Tensor cj = cls.index_select(1, index.j.reshape({-1})).view({B, K, h, w});
  AffinityLabels out;
  out.valid = index.inside.unsqueeze(0).expand({B, K, h, w}).contiguous();
  out.labels = ((ci == cj) & out.valid).to(cls.scalar_type());
  return out;
}

torch::Tensor affinity_loss_from_logits(const torch::Tensor& logits, const torch::Tensor& labels,
                                        const torch::Tensor& valid) {
  // logits, labels, valid of one shape -> scalar
  return loss_from_probabilities(torch::sigmoid(logits), labels, valid, "affinity_loss_from_logits");
}

torch::Tensor affinity_loss_from_probabilities(const torch::Tensor& probabilities, const torch::Tensor& labels,
                                               const torch::Tensor& valid) {
  // probabilities, labels, valid of one shape -> scalar
  return loss_from_probabilities(probabilities, labels, valid, "affinity_loss_from_probabilities");
}

}  // namespace airm
