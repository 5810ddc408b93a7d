// Implicit representation mapping function: options, query evaluation with
// local ensemble, chunking, coordinate helpers.
#include "airm/model/implicit_function.hpp"
#include "shape_text.hpp"

#include <algorithm>
#include <sstream>
#include <string>

#include "airm/error.hpp"

namespace airm {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

// LIIF's shift that separates the two cells of a query lying on a centre.
constexpr double kShiftEps = 1e-6;
// Added to the per-axis ensemble distances so that an axis whose two cells
// coincide and sit exactly on the query gives 1/2 + 1/2 instead of 0/0.
constexpr double kAreaEps = 1e-9;

void require(bool ok, const std::string& problem) {
  if (!ok) throw Error("", "ImplicitFunctionOptions: " + problem);
}

// x [B,N,in] -> [B,N,out] with shared (W [out,in], b [out]) or per-image
// (W [B,out,in], b [B,out]) weights; per-image uses one batched product.
torch::Tensor apply_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                           bool per_image) {
  if (per_image) return torch::baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2));
  return torch::linear(x, weight, bias);
}

// cell [2] | [B,2] | [B,Q,2] -> [B,Q,2] (a broadcast view, no copy).
torch::Tensor expand_cell(const torch::Tensor& cell, int64_t B, int64_t Q) {
  if (cell.dim() == 1) return cell.view({1, 1, 2}).expand({B, Q, 2});
  if (cell.dim() == 2) return cell.unsqueeze(1).expand({B, Q, 2});
  return cell;
}

}  // namespace

void ImplicitFunctionOptions::validate() const {
  require(feat_dim_ >= 1, "feat_dim must be >= 1, got " + std::to_string(feat_dim_));
  for (int64_t h : hidden_) {
    require(h >= 1, "hidden widths must be >= 1, got " + shape_text(hidden_));
  }
  require(guide_dim_ >= 0, "guide_dim must be >= 0, got " + std::to_string(guide_dim_));
}

// Everything that depends on the feature map and the weights but not on the
// queries: computed once per call, shared by all chunks.
struct ImplicitFunctionImpl::Prepared {
  int64_t batch = 0;
  int64_t h = 0;
  int64_t w = 0;
  bool per_image = false;
  torch::Tensor proj;                  // [B*h*w, out0]: W_feat f of every cell
  torch::Tensor w_rel;                 // [out0,2] | [B,out0,2]
  torch::Tensor w_q;                   // [out0,4+G] | [B,out0,4+G]: coord, cell, guide columns
  torch::Tensor b0;                    // [out0] | [B,out0]
  std::vector<torch::Tensor> weights;  // layers 1..L-1
  std::vector<torch::Tensor> biases;
};

ImplicitFunctionImpl::ImplicitFunctionImpl(ImplicitFunctionOptions options) : options_(std::move(options)) {
  options_.validate();
  mlp_ = register_module("mlp", nn::ModuleList());
  int64_t in = input_dim();
  std::vector<int64_t> widths = options_.hidden();
  widths.push_back(1);
  for (int64_t out : widths) {
    nn::Linear layer(nn::LinearOptions(in, out));
    mlp_->push_back(layer);
    layers_.push_back(layer);
    in = out;
  }
}

void ImplicitFunctionImpl::reset_parameters() {
  for (auto& layer : layers_) layer->reset_parameters();
}

int64_t ImplicitFunctionImpl::feature_dim() const { return options_.feat_dim() * (options_.unfold() ? 9 : 1); }

int64_t ImplicitFunctionImpl::input_dim() const { return feature_dim() + 6 + options_.guide_dim(); }

std::vector<std::pair<int64_t, int64_t>> ImplicitFunctionImpl::layer_shapes() const {
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (const auto& layer : layers_) shapes.emplace_back(layer->weight.size(0), layer->weight.size(1));
  return shapes;
}

void ImplicitFunctionImpl::check_inputs(const torch::Tensor& feat, const torch::Tensor& coord,
                                        const torch::Tensor& cell, const torch::Tensor& guide,
                                        const std::vector<LayerWeights>* per_image) const {
  const int64_t C = options_.feat_dim();
  const int64_t G = options_.guide_dim();
  TORCH_CHECK(feat.defined() && feat.dim() == 4 && feat.size(1) == C && feat.size(2) >= 1 && feat.size(3) >= 1,
              "ImplicitFunction feat: expected [B,", C, ",h,w] with h,w >= 1, got ",
              feat.defined() ? feat.sizes() : c10::IntArrayRef{});
  const int64_t B = feat.size(0);
  TORCH_CHECK(coord.defined() && coord.dim() == 3 && coord.size(0) == B && coord.size(2) == 2,
              "ImplicitFunction coord: expected [", B, ",Q,2] (y,x), got ",
              coord.defined() ? coord.sizes() : c10::IntArrayRef{});
  TORCH_CHECK((coord.scalar_type() == torch::kFloat || coord.scalar_type() == torch::kDouble) &&
                  coord.device() == feat.device(),
              "ImplicitFunction coord: expected float32 or float64 on ", feat.device(), " (feat's device), got ",
              coord.scalar_type(), " on ", coord.device());
  const int64_t Q = coord.size(1);
  TORCH_CHECK(cell.defined() && ((cell.dim() == 1 && cell.size(0) == 2) ||
                                 (cell.dim() == 2 && cell.size(0) == B && cell.size(1) == 2) ||
                                 (cell.dim() == 3 && cell.size(0) == B && cell.size(1) == Q && cell.size(2) == 2)),
              "ImplicitFunction cell: expected [2], [", B, ",2] or [", B, ",", Q, ",2], got ",
              cell.defined() ? cell.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(cell.is_floating_point() && cell.device() == feat.device(),
              "ImplicitFunction cell: expected a floating-point tensor on ", feat.device(), ", got ", cell.scalar_type(),
              " on ", cell.device());
  if (G == 0) {
    TORCH_CHECK(!guide.defined() || guide.numel() == 0, "ImplicitFunction guide: expected none (guide_dim = 0), got ",
                guide.sizes());
  } else {
    TORCH_CHECK(guide.defined() && guide.dim() == 3 && guide.size(0) == B && guide.size(1) == Q && guide.size(2) == G,
                "ImplicitFunction guide: expected [", B, ",", Q, ",", G, "], got ",
                guide.defined() ? guide.sizes() : c10::IntArrayRef{});
    TORCH_CHECK(guide.is_floating_point() && guide.device() == feat.device(),
                "ImplicitFunction guide: expected a floating-point tensor on ", feat.device(), ", got ",
                guide.scalar_type(), " on ", guide.device());
  }
  if (per_image) {
    const auto shapes = layer_shapes();
    TORCH_CHECK(per_image->size() == shapes.size(), "ImplicitFunction per-image weights: expected ", shapes.size(),
                " layers, got ", per_image->size());
    for (size_t l = 0; l < shapes.size(); ++l) {
      const auto& lw = (*per_image)[l];
      const auto [out, in] = shapes[l];
      TORCH_CHECK(lw.weight.defined() && lw.weight.dim() == 3 && lw.weight.size(0) == B && lw.weight.size(1) == out &&
                      lw.weight.size(2) == in,
                  "ImplicitFunction per-image weight of layer ", l, ": expected [", B, ",", out, ",", in, "], got ",
                  lw.weight.defined() ? lw.weight.sizes() : c10::IntArrayRef{});
      TORCH_CHECK(lw.bias.defined() && lw.bias.dim() == 2 && lw.bias.size(0) == B && lw.bias.size(1) == out,
                  "ImplicitFunction per-image bias of layer ", l, ": expected [", B, ",", out, "], got ",
                  lw.bias.defined() ? lw.bias.sizes() : c10::IntArrayRef{});
    }
  }
}

ImplicitFunctionImpl::Prepared ImplicitFunctionImpl::prepare(const torch::Tensor& feat,
                                                             const std::vector<LayerWeights>* per_image) const {
  // feat [B,C,h,w] -> per-cell first-layer projection [B*h*w, out0] + the remaining weights
  Prepared p;
  p.batch = feat.size(0);
  p.h = feat.size(2);
  p.w = feat.size(3);
  p.per_image = per_image != nullptr;
  const int64_t B = p.batch;
  const int64_t C = options_.feat_dim();
  const int64_t Cf = feature_dim();
  const int64_t k = options_.unfold() ? 3 : 1;
  const int64_t G = options_.guide_dim();

  torch::Tensor w0 = p.per_image ? (*per_image)[0].weight : layers_[0]->weight;  // [(B,)out0,in]
  torch::Tensor b0 = p.per_image ? (*per_image)[0].bias : layers_[0]->bias;
  const int64_t fdim = w0.dim() - 1;  // the `in` dimension
  const int64_t out0 = w0.size(fdim - 1);
  torch::Tensor w_feat = w0.narrow(fdim, 0, Cf);
  p.w_rel = w0.narrow(fdim, Cf, 2);
  p.w_q = w0.narrow(fdim, Cf + 2, 4 + G);
  p.b0 = b0;

  // The feature columns are ordered c*k*k + (ky*k + kx), which is exactly a
  // k x k convolution kernel [out0, C, k, k]: with unfold this is the 3x3
  // neighbourhood without ever materialising the 9C-channel map.
  torch::Tensor proj;  // [B,out0,h,w]
  if (p.per_image) {
    // One grouped convolution: group b applies image b's kernel to image b.
    proj = torch::conv2d(feat.reshape({1, B * C, p.h, p.w}), w_feat.reshape({B * out0, C, k, k}), {}, {1, 1},
                         {k / 2, k / 2}, {1, 1}, B)
               .view({B, out0, p.h, p.w});
  } else {
    // Two-element stride/padding/dilation so LibTorch's profiler can count its FLOPs.
    proj = torch::conv2d(feat, w_feat.reshape({out0, C, k, k}), {}, {1, 1}, {k / 2, k / 2}, {1, 1});
  }
  p.proj = proj.permute({0, 2, 3, 1}).reshape({B * p.h * p.w, out0});

  for (size_t l = 1; l < layers_.size(); ++l) {
    p.weights.push_back(p.per_image ? (*per_image)[l].weight : layers_[l]->weight);
    p.biases.push_back(p.per_image ? (*per_image)[l].bias : layers_[l]->bias);
  }
  return p;
}

torch::Tensor ImplicitFunctionImpl::evaluate(const Prepared& p, const torch::Tensor& coord, const torch::Tensor& cell,
                                             const torch::Tensor& guide) const {
  // coord [B,n,2], cell [B,n,2], guide [B,n,G] | undefined -> logits [B,n]
  const int64_t B = p.batch;
  const int64_t n = coord.size(1);
  const int64_t out0 = p.proj.size(1);
  const bool ensemble = options_.local_ensemble();
  const int64_t S = ensemble ? 2 : 1;  // cells per axis

  // Per axis: the chosen cell indices and the query's offset from their
  // centres in units of half a cell ([B,S,n] each).
  auto axis = [&](const torch::Tensor& t, int64_t size, torch::Tensor& index, torch::Tensor& rel) {
    const double half = static_cast<double>(size) / 2.0;
    std::vector<torch::Tensor> idx;
    for (int64_t s = 0; s < S; ++s) {
      torch::Tensor shifted = t;
      if (ensemble) shifted = t + ((s == 0 ? -1.0 : 1.0) / static_cast<double>(size) + kShiftEps);
      idx.push_back(torch::floor((shifted + 1.0) * half).clamp(0, size - 1));
    }
    torch::Tensor i = torch::stack(idx, 1);                                    // [B,S,n], integral values
    torch::Tensor centre = (2.0 * i + 1.0) / static_cast<double>(size) - 1.0;  // [B,S,n]
    rel = (t.unsqueeze(1) - centre) * static_cast<double>(size);
    index = i.to(torch::kLong);
  };
  const torch::Tensor y = coord.select(2, 0);  // [B,n]
  const torch::Tensor x = coord.select(2, 1);
  torch::Tensor iy, ix, rel_y, rel_x;
  axis(y, p.h, iy, rel_y);
  axis(x, p.w, ix, rel_x);

  // Feature part of the first layer, gathered per (cell, query): [B,S,S,n,out0].
  torch::Tensor base_index = torch::arange(B, iy.options()).mul_(p.h * p.w).view({B, 1, 1, 1});
  torch::Tensor flat = iy.view({B, S, 1, n}) * p.w + ix.view({B, 1, S, n}) + base_index;  // [B,S,S,n]
  torch::Tensor pre = p.proj.index_select(0, flat.reshape({-1})).view({B, S, S, n, out0});

  // The geometry above is in coord's dtype; the MLP inputs take the layers'
  // dtype (under autocast the products below then run in reduced precision).
  const auto mlp_dtype = p.w_q.scalar_type();

  // Offset part: rel_y * W[:,rel_y] + rel_x * W[:,rel_x].
  torch::Tensor wy, wx;
  if (p.per_image) {
    wy = p.w_rel.select(2, 0).view({B, 1, 1, out0});
    wx = p.w_rel.select(2, 1).view({B, 1, 1, out0});
  } else {
    wy = p.w_rel.select(1, 0);
    wx = p.w_rel.select(1, 1);
  }
  // Query part, the same for all cells: W[:, coord|cell|guide] [...] + b.
  const torch::Tensor scale = torch::tensor({static_cast<double>(p.h), static_cast<double>(p.w)}, coord.options());
  std::vector<torch::Tensor> parts{coord.to(mlp_dtype), (cell * scale).to(mlp_dtype)};
  if (guide.defined() && guide.numel() > 0) parts.push_back(guide.to(mlp_dtype));
  torch::Tensor q = torch::cat(parts, 2);                          // [B,n,4+G]
  torch::Tensor base = apply_linear(q, p.w_q, p.b0, p.per_image);  // [B,n,out0]

  // pre += (query part + rel_y term) per row cell + rel_x term per column
  // cell. In place: large temporaries cost more than the arithmetic here.
  torch::Tensor row = (rel_y.to(mlp_dtype).unsqueeze(-1) * wy).add_(base.unsqueeze(1));  // [B,S,n,out0]
  torch::Tensor col = rel_x.to(mlp_dtype).unsqueeze(-1) * wx;                            // [B,S,n,out0]
  pre.add_(row.view({B, S, 1, n, out0})).add_(col.view({B, 1, S, n, out0}));

  // Remaining layers on all S*S*n evaluations at once (ReLU in place: no
  // operation here needs the pre-activation for its gradient).
  torch::Tensor h = pre.view({B, S * S * n, out0});
  for (size_t l = 0; l < p.weights.size(); ++l) {
    h = apply_linear(h.relu_(), p.weights[l], p.biases[l], p.per_image);
  }
  torch::Tensor logits = h.view({B, S, S, n});

  if (!ensemble) return logits.view({B, n}).to(coord.scalar_type());
  // Weight of cell (a,b) = area of the diagonally opposite sub-rectangle /
  // total area = w_y[a] w_x[b] with per-axis linear weights
  // w[a] = |rel[1-a]| / (|rel[0]| + |rel[1]|); see the header for why this
  // is computed per axis.
  auto axis_weights = [&](const torch::Tensor& rel) {
    torch::Tensor a = rel.abs();  // [B,2,n]
    return (a.flip({1}) + kAreaEps) / (a.sum(1, /*keepdim=*/true) + 2.0 * kAreaEps);
  };
  torch::Tensor weight_y = axis_weights(rel_y).view({B, S, 1, n});
  torch::Tensor weight_x = axis_weights(rel_x).view({B, 1, S, n});
  return (logits * weight_y * weight_x).sum({1, 2}).to(coord.scalar_type());
}

torch::Tensor ImplicitFunctionImpl::forward(const torch::Tensor& feat, const torch::Tensor& coord,
                                            const torch::Tensor& cell, const torch::Tensor& guide,
                                            const std::vector<LayerWeights>* per_image) {
  // feat [B,C,h,w], coord [B,Q,2], cell [2]|[B,2]|[B,Q,2], guide [B,Q,G] -> logits [B,Q]
  const int64_t Q = coord.defined() && coord.dim() == 3 ? coord.size(1) : 1;
  return query(feat, coord, cell, guide, per_image, std::max<int64_t>(Q, 1));
}

torch::Tensor ImplicitFunctionImpl::query(const torch::Tensor& feat, const torch::Tensor& coord,
                                          const torch::Tensor& cell, const torch::Tensor& guide,
                                          const std::vector<LayerWeights>* per_image, int64_t chunk_size) {
  // feat [B,C,h,w], coord [B,Q,2], cell [2]|[B,2]|[B,Q,2], guide [B,Q,G] -> logits [B,Q], chunk_size queries at a time
  if (chunk_size < 1)
    throw Error("", "ImplicitFunction query: chunk_size must be >= 1, got " + std::to_string(chunk_size));
  check_inputs(feat, coord, cell, guide, per_image);
  const int64_t B = feat.size(0);
  const int64_t Q = coord.size(1);
  if (B == 0 || Q == 0) return torch::zeros({B, Q}, coord.options());

  const Prepared prep = prepare(feat, per_image);
  const torch::Tensor cells = expand_cell(cell, B, Q);
  const bool has_guide = guide.defined() && guide.numel() > 0;
  auto chunk = [&](int64_t start, int64_t len) {
    return evaluate(prep, coord.narrow(1, start, len), cells.narrow(1, start, len),
                    has_guide ? guide.narrow(1, start, len) : torch::Tensor());
  };
  if (chunk_size >= Q) return chunk(0, Q);

  if (torch::GradMode::is_enabled()) {
    // Keep the autograd graph simple: concatenate the chunks.
    std::vector<torch::Tensor> outs;
    for (int64_t start = 0; start < Q; start += chunk_size)
      outs.push_back(chunk(start, std::min(chunk_size, Q - start)));
    return torch::cat(outs, 1);
  }
  // Inference: write each chunk into the preallocated result.
  torch::Tensor out = torch::empty({B, Q}, coord.options());
  for (int64_t start = 0; start < Q; start += chunk_size) {
    const int64_t len = std::min(chunk_size, Q - start);
    out.narrow(1, start, len).copy_(chunk(start, len));
  }
  return out;
}

torch::Tensor make_pixel_grid(int64_t H, int64_t W, const torch::TensorOptions& options, int64_t begin, int64_t count) {
  // -> [count,2] (y,x) centres of pixels begin..begin+count-1 of an H x W grid, row-major
  if (H < 1 || W < 1) {
    throw Error("", "make_pixel_grid: expected H,W >= 1, got " + std::to_string(H) + "x" + std::to_string(W));
  }
  const int64_t total = H * W;
  if (count < 0) count = total - begin;
  if (begin < 0 || begin > total || count > total - begin) {
    throw Error("", "make_pixel_grid: range [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                        ") outside the " + std::to_string(total) + " pixels of " + std::to_string(H) + "x" +
                        std::to_string(W));
  }
  // Index arithmetic in int64 and double, then cast: exact for any size.
  torch::Tensor flat = torch::arange(begin, begin + count, options.dtype(torch::kLong));
  torch::Tensor row = flat.div(W, "floor").to(torch::kDouble);
  torch::Tensor col = flat.remainder(W).to(torch::kDouble);
  torch::Tensor y = (2.0 * row + 1.0) / static_cast<double>(H) - 1.0;
  torch::Tensor x = (2.0 * col + 1.0) / static_cast<double>(W) - 1.0;
  return torch::stack({y, x}, 1).to(options.dtype());
}

torch::Tensor cell_for(int64_t H, int64_t W, const torch::TensorOptions& options) {
  // -> [2] = (2/H, 2/W)
  if (H < 1 || W < 1) {
    throw Error("", "cell_for: expected H,W >= 1, got " + std::to_string(H) + "x" + std::to_string(W));
  }
  return torch::tensor({2.0 / static_cast<double>(H), 2.0 / static_cast<double>(W)}, options.dtype(torch::kDouble))
      .to(options.dtype());
}

}  // namespace airm
