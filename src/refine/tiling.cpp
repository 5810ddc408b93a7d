// The encoder side of one refinement stage: building the padded network
// input, one pass or overlapping tiles with blended feature maps, and the
// hypernetwork's per-image weights.
#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "airm/model/hypernetwork.hpp"
#include "airm/model/state_dict.hpp"
#include "refine_internal.hpp"

namespace airm::refine_detail {
namespace {

constexpr int64_t kAlign = 32;  // the encoder's largest stride: every stage then has whole cells

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// A crop of the padded image and mask as the network input [1,4,h,w] on `device`, in `dtype`.
torch::Tensor network_input(const cv::Mat& image, const cv::Mat& mask, const cv::Rect& rect,
                            const torch::Device& device, torch::Dtype dtype) {
  cv::Mat rgb;
  cv::cvtColor(image(rect), rgb, cv::COLOR_BGR2RGB);  // a new, continuous matrix
  const cv::Mat m = mask(rect).clone();
  torch::Tensor rgb_t = torch::from_blob(rgb.data, {1, rect.height, rect.width, 3}, torch::kByte)
                            .to(device)
                            .permute({0, 3, 1, 2})
                            .to(torch::kFloat)
                            .div_(255.0);
  torch::Tensor mask_t = torch::from_blob(m.data, {1, 1, rect.height, rect.width}, torch::kFloat).clone().to(device);
  return normalize_input(rgb_t, mask_t).to(dtype);
}

// Encoder and fusion of one input (what AirmNet::encode does before the hypernetwork), the input in
// `format`; the features come back contiguous.
torch::Tensor encode_features(AirmNet& net, const torch::Tensor& input, torch::MemoryFormat format) {
  const torch::Tensor x = input.contiguous(format);
  return net->fusion_->forward(x, net->encoder_stages(x)).contiguous();
}

// Blending weights along one axis of a tile: 1 inside, a linear ramp over `ramp` cells towards an edge that
// has a neighbouring tile. [n] on `device`.
torch::Tensor ramp(int64_t n, int64_t ramp, bool before, bool after, const torch::Device& device) {
  torch::Tensor i = torch::arange(n, torch::TensorOptions().dtype(torch::kFloat).device(device)).add_(0.5);
  torch::Tensor w = torch::ones({n}, i.options());
  if (before) w = torch::minimum(w, i / static_cast<double>(ramp));
  if (after) w = torch::minimum(w, (static_cast<double>(n) - i) / static_cast<double>(ramp));
  return w;
}

}  // namespace

cv::Mat resize_to(const cv::Mat& src, cv::Size size) {
  if (src.size() == size) return src;
  cv::Mat out;
  const bool shrink = size.width <= src.cols && size.height <= src.rows;
  cv::resize(src, out, size, 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

cv::Size encoder_content(cv::Size grid, const RefineOptions& options) {
  const int long_side = std::max(grid.width, grid.height);
  if (options.tile_size > 0 || long_side <= options.max_encoder_side) return grid;
  const double c = static_cast<double>(options.max_encoder_side) / long_side;
  return {std::max(1, static_cast<int>(std::lround(grid.width * c))),
          std::max(1, static_cast<int>(std::lround(grid.height * c)))};
}

int stage_pad(cv::Size content, cv::Size output, int pad) {
  const double ratio = static_cast<double>(std::max(content.width, content.height)) /
                       static_cast<double>(std::max(output.width, output.height));
  return static_cast<int>(std::lround(pad * ratio));
}

std::vector<int64_t> tile_starts(int64_t length, int64_t tile, int64_t overlap) {
  if (length <= tile) return {0};
  const int64_t step = tile - overlap;
  const int64_t count = (length - overlap + step - 1) / step;  // ceil((L - O) / (T - O)) >= 2
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < count; ++i) {
    // Evenly spread, rounded to the alignment; the last tile ends at the border.
    const double exact = static_cast<double>(i) * static_cast<double>(length - tile) / static_cast<double>(count - 1);
    starts.push_back(std::min(length - tile, static_cast<int64_t>(std::lround(exact / kAlign)) * kAlign));
  }
  return starts;
}

StageEncoding encode_stage(AirmNet& net, const cv::Mat& image, const cv::Mat& mask, int pad,
                           const RefineOptions& options, const torch::Device& device, torch::MemoryFormat format) {
  const int he = image.rows, we = image.cols;
  const int hp = static_cast<int>(round_up(he + 2 * pad, kAlign));
  const int wp = static_cast<int>(round_up(we + 2 * pad, kAlign));
  cv::Mat image_p, mask_p;
  cv::copyMakeBorder(image, image_p, pad, hp - he - pad, pad, wp - we - pad, cv::BORDER_REFLECT_101);
  cv::copyMakeBorder(mask, mask_p, pad, hp - he - pad, pad, wp - we - pad, cv::BORDER_REFLECT_101);

  const torch::Dtype dtype = net->parameters().front().scalar_type();
  StageEncoding out;
  out.padded = {wp, hp};
  // Content pixel u in [0, he) sits at u + pad of hp: y' = ((y + 1) he + 2 pad) / hp - 1.
  out.sy = static_cast<double>(he) / hp;
  out.ty = static_cast<double>(he + 2 * pad) / hp - 1.0;
  out.sx = static_cast<double>(we) / wp;
  out.tx = static_cast<double>(we + 2 * pad) / wp - 1.0;

  const int64_t tile = options.tile_size > 0 ? options.tile_size : std::max(hp, wp);
  const std::vector<int64_t> ys = tile_starts(hp, tile, options.tile_overlap);
  const std::vector<int64_t> xs = tile_starts(wp, tile, options.tile_overlap);
  out.tiles = static_cast<int>(ys.size() * xs.size());
  if (out.tiles == 1) {
    out.features = encode_features(net, network_input(image_p, mask_p, cv::Rect(0, 0, wp, hp), device, dtype), format);
  } else {
    // Weighted sum of the tiles' stride-2 feature maps, normalised by the summed weights.
    const int64_t ramp_cells = std::max<int64_t>(1, options.tile_overlap / 2);
    torch::Tensor sum, weight_sum;
    for (const int64_t y0 : ys) {
      for (const int64_t x0 : xs) {
        const int64_t th = std::min<int64_t>(tile, hp - y0), tw = std::min<int64_t>(tile, wp - x0);
        const cv::Rect rect(static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(tw), static_cast<int>(th));
        const torch::Tensor f =
            encode_features(net, network_input(image_p, mask_p, rect, device, dtype), format).to(torch::kFloat);
        if (!sum.defined()) {
          sum = torch::zeros({1, f.size(1), hp / 2, wp / 2}, f.options());
          weight_sum = torch::zeros({1, 1, hp / 2, wp / 2}, f.options());
        }
        const torch::Tensor wy = ramp(th / 2, ramp_cells, y0 > 0, y0 + th < hp, device);
        const torch::Tensor wx = ramp(tw / 2, ramp_cells, x0 > 0, x0 + tw < wp, device);
        const torch::Tensor w = (wy.view({-1, 1}) * wx.view({1, -1})).view({1, 1, th / 2, tw / 2});
        sum.narrow(2, y0 / 2, th / 2).narrow(3, x0 / 2, tw / 2).add_(f * w);
        weight_sum.narrow(2, y0 / 2, th / 2).narrow(3, x0 / 2, tw / 2).add_(w);
      }
    }
    out.features = sum.div_(weight_sum).to(dtype);
  }
  if (net->hyper_) out.weights = modulate(net->implicit_, net->hyper_->forward(out.features));
  return out;
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& tensors : {module.parameters(), module.buffers()}) {
    for (torch::Tensor t : tensors) {
      if (t.dim() == 4) t.set_data(t.contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
}

AirmNet bf16_copy(AirmNet& net, const torch::Device& device) {
  AirmNet copy(net->config());
  load_state_dict(*copy, state_dict_of(*net), "bf16 copy of " + net->config().name);
  copy->to(device, torch::kBFloat16);
  copy->eval();
  return copy;
}

}  // namespace airm::refine_detail
