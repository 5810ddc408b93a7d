// The Refiner: loading once, options, and the coarse-to-fine stage loop.
#include "airm/refiner.hpp"

#include "airm/bf16.hpp"
#include "airm/parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>

#include <opencv2/imgproc.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#include <sys/mman.h>
#endif

#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "airm/model/denormals.hpp"
#include "airm/model/weights.hpp"
#include "refine_internal.hpp"

namespace airm {
namespace {

// Free memory kept at the heap's top by retain_freed_memory() (malloc's trim threshold).
constexpr int kRetainedHeapBytes = 1 << 30;

using Clock = std::chrono::steady_clock;

std::string size_text(cv::Size size) { return std::to_string(size.width) + "x" + std::to_string(size.height); }

void require(bool ok, const std::string& problem) {
  if (!ok) throw Error("", "RefineOptions: " + problem);
}

torch::Device parse_device(const std::string& text) {
  try {
    torch::Device device(text);
    if (device.is_cuda() && !torch::cuda::is_available()) {
      throw Error("", "RefinerOptions: device '" + text + "' requested, but this LibTorch has no usable CUDA");
    }
    return device;
  } catch (const c10::Error&) {
    throw Error("", "RefinerOptions: expected a device such as cpu, cuda or cuda:0, got '" + text + "'");
  }
}

// CV_8UC3 BGR from 8-bit gray, BGR or BGRA (no copy for BGR).
cv::Mat as_bgr(const cv::Mat& image) {
  if (image.empty()) throw Error("", "refine: the image is empty");
  if (image.depth() != CV_8U) throw Error("", "refine: expected an 8-bit image, got OpenCV depth " +
                                                  std::to_string(image.depth()));
  if (image.channels() == 3) return image;
  cv::Mat bgr;
  if (image.channels() == 1) {
    cv::cvtColor(image, bgr, cv::COLOR_GRAY2BGR);
  } else if (image.channels() == 4) {
    cv::cvtColor(image, bgr, cv::COLOR_BGRA2BGR);
  } else {
    throw Error("", "refine: expected 1, 3 or 4 channels, got " + std::to_string(image.channels()));
  }
  return bgr;
}

// The coarse mask at `size` as CV_32FC1 probabilities (always a new matrix: the caller modifies it).
cv::Mat coarse_at(const cv::Mat& coarse, cv::Size size) {
  const cv::Mat resized = refine_detail::resize_to(coarse, size);
  cv::Mat out;
  if (coarse.type() == CV_8UC1) {
    resized.convertTo(out, CV_32F, 1.0 / 255.0);
  } else {
    out = resized.clone();
    cv::min(cv::max(out, 0.0), 1.0, out);
  }
  return out;
}

void check_coarse(const cv::Mat& coarse, cv::Size image_size) {
  if (coarse.empty()) throw Error("", "refine: the coarse mask is empty");
  if (coarse.type() != CV_32FC1 && coarse.type() != CV_8UC1) {
    throw Error("", "refine: expected a CV_32FC1 [0,1] or CV_8UC1 coarse mask, got OpenCV type " +
                        std::to_string(coarse.type()));
  }
  if (coarse.type() == CV_32FC1) {
    cv::Point at;
    if (!cv::checkRange(coarse, true, &at)) {
      throw Error("", "refine: expected finite coarse probabilities, got NaN or infinity at (" + std::to_string(at.x) +
                          ", " + std::to_string(at.y) + ")");
    }
  }
  refine_detail::check_same_aspect(coarse.size(), image_size, "coarse mask");
}

cv::Size stage_grid(cv::Size output, double scale) {
  if (scale >= 1.0) return output;
  return {std::max(1, static_cast<int>(std::lround(output.width * scale))),
          std::max(1, static_cast<int>(std::lround(output.height * scale)))};
}

}  // namespace

void refine_detail::check_same_aspect(cv::Size mask, cv::Size image, const char* what) {
  if (mask == image) return;
  // The rule of mask_io's fit_mask_to: same aspect ratio within 1%.
  const double ratio = (static_cast<double>(mask.width) / mask.height) /
                       (static_cast<double>(image.width) / image.height);
  if (std::abs(ratio - 1.0) > 0.01 + 1e-9) {
    throw Error("", std::string("refine: expected a ") + what + " with the aspect ratio of the image " +
                        size_text(image) + ", got " + size_text(mask));
  }
}

void RefineOptions::validate() const {
  for (size_t i = 0; i < scales.size(); ++i) {
    require(scales[i] > 0 && scales[i] <= 1, "scales must lie in (0, 1], got " + std::to_string(scales[i]));
    require(i == 0 || scales[i] > scales[i - 1], "scales must be strictly ascending");
  }
  require(first_long_side >= 1, "first_long_side must be >= 1, got " + std::to_string(first_long_side));
  require(uncertain_low <= uncertain_high, "uncertain_low must be <= uncertain_high");
  require(band >= 0, "band must be >= 0, got " + std::to_string(band));
  require(close_mask_px >= 0 && std::isfinite(close_mask_px),
          "close_mask_px must be finite and >= 0, got " + std::to_string(close_mask_px));
  require(first_band >= 0, "first_band must be >= 0, got " + std::to_string(first_band));
  require(max_encoder_side >= 32, "max_encoder_side must be >= 32, got " + std::to_string(max_encoder_side));
  require(tile_size == 0 || (tile_size >= 64 && tile_size % 32 == 0),
          "tile_size must be 0 or a multiple of 32 of at least 64, got " + std::to_string(tile_size));
  require(tile_overlap >= 32 && tile_overlap % 32 == 0 && (tile_size == 0 || tile_overlap < tile_size),
          "tile_overlap must be a multiple of 32, at least 32 and below tile_size, got " +
              std::to_string(tile_overlap));
  require(pad >= 0, "pad must be >= 0, got " + std::to_string(pad));
  require(chunk_size >= 1, "chunk_size must be >= 1, got " + std::to_string(chunk_size));
  require(block_size >= 1, "block_size must be >= 1, got " + std::to_string(block_size));
  // Sides checked one by one: Size::area() is int and overflows past 2^31 (found by fuzz_refine_options).
  require(output_size == cv::Size() || (output_size.width > 0 && output_size.height > 0),
          "output_size must be empty or positive, got " + size_text(output_size));
  require(std::int64_t{output_size.width} * output_size.height <= kMaxImagePixels,
          "output_size must have at most " + std::to_string(kMaxImagePixels) + " pixels, got " + size_text(output_size));
}

std::vector<double> plan_scales(cv::Size output_size, const RefineOptions& options) {
  if (!options.scales.empty()) return options.scales;
  const int long_side = std::max(output_size.width, output_size.height);
  int stages = 1;
  while (std::ldexp(static_cast<double>(long_side), -(stages - 1)) > options.first_long_side) ++stages;
  std::vector<double> scales;
  for (int k = stages - 1; k >= 0; --k) scales.push_back(std::ldexp(1.0, -k));
  return scales;
}

void retain_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);  // every block from the heap (M_MMAP_THRESHOLD cannot exceed 32 MiB)
  mallopt(M_TRIM_THRESHOLD, kRetainedHeapBytes);
#if defined(__linux__)
  // Huge pages for that heap (docs/DESIGN.md, "Huge pages"): grow it once by just under the trim threshold,
  // mark the range MADV_HUGEPAGE and free it. Nothing is touched (no memory is used); the range stays the
  // heap's top, and the blocks later cut from it fault in 2 MiB at a time instead of 4 KiB. Once per process.
  static const bool reserved = [] {
    const char* off = std::getenv("AIRM_NO_HUGE_PAGES");
    if (off != nullptr && *off != '\0') return false;
    const size_t bytes = static_cast<size_t>(kRetainedHeapBytes) - (size_t{64} << 20);
    void* block = std::malloc(bytes);
    if (block == nullptr) return false;  // no address space to spare (strict overcommit, RLIMIT_DATA): 4 KiB pages
    const uintptr_t huge = uintptr_t{2} << 20;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(block) + huge - 1) & ~(huge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(block) + bytes) & ~(huge - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // may fail: harmless
    std::free(block);
    return true;
  }();
  (void)reserved;
#endif
#endif
}

Refiner::Refiner(const std::filesystem::path& weights, RefinerOptions options)
    : Refiner(load_weights(weights), std::move(options)) {}

Refiner::Refiner(AirmNet net, RefinerOptions options) : net_(std::move(net)) {
  if (net_.is_empty()) throw Error("", "Refiner: expected a network, got none");
  device_ = parse_device(options.device);
  set_torch_threads(options.threads);
  net_->eval();
  zero_denormal_weights(*net_);  // weight decay's leftovers below the smallest normal float: ~9x slower
  net_->to(device_);
  // LibTorch 1.13's CPU autocast leaves LayerNorm in the input's dtype with fp32 weights (an error), so bf16
  // runs a bf16 copy of the whole network instead (a few MB; made here, so refine() stays read-only).
  // Only where bf16 can run: elsewhere RefineOptions::bf16 falls back to fp32 (use_bf16) and the copy is never used.
  if (bf16_convolutions_supported(device_)) net_bf16_ = refine_detail::bf16_copy(net_, device_);
  if (options.channels_last) {
    memory_format_ = torch::MemoryFormat::ChannelsLast;
    refine_detail::to_channels_last(*net_);
    if (!net_bf16_.is_empty()) refine_detail::to_channels_last(*net_bf16_);
  }
}

const ModelConfig& Refiner::config() const { return net_->config(); }

cv::Mat Refiner::refine(const cv::Mat& image, const cv::Mat& coarse, const RefineOptions& options,
                        RefineStats* stats) const {
  namespace rd = refine_detail;
  const auto start = Clock::now();
  options.validate();
  const cv::Mat bgr = as_bgr(image);
  check_coarse(coarse, bgr.size());
  const cv::Size output = options.output_size.empty() ? bgr.size() : options.output_size;
  const std::vector<double> scales = plan_scales(output, options);

  torch::NoGradGuard no_grad;
  AirmNet& net = use_bf16(options.bf16, device_) ? net_bf16_ : net_;  // fp32 (with a note) where bf16 cannot run
  RefineStats local;
  // One stage at `scale`: its coarse mask is the input's (previous empty) or `previous` upsampled.
  const auto run_stage = [&](double scale, const cv::Mat& previous) {
    const auto stage_start = Clock::now();
    const bool first = previous.empty();
    StageStats s;
    s.scale = scale;
    s.grid = stage_grid(output, scale);
    const cv::Size content = rd::encoder_content(s.grid, options);
    cv::Mat grid_prob = first ? coarse_at(coarse, s.grid) : rd::resize_to(previous, s.grid).clone();
    const cv::Mat encoder_mask = first ? coarse_at(coarse, content) : rd::resize_to(previous, content);
    const rd::StageEncoding encoding =
        rd::encode_stage(net, rd::resize_to(bgr, content), encoder_mask,
                         rd::stage_pad(content, output, options.pad), options, device_, memory_format_);
    s.encode_seconds = std::chrono::duration<double>(Clock::now() - stage_start).count();
    s.encoder = encoding.padded;
    s.tiles = encoding.tiles;
    const bool every_pixel = options.dense || (first && options.first_band == 0);
    const cv::Mat selection =
        every_pixel ? cv::Mat() : rd::select_queries(grid_prob, options, first ? options.first_band : options.band);
    s.queries = rd::query_stage(net, encoding, rd::resize_to(bgr, s.grid), grid_prob, selection, options, device_);
    s.seconds = std::chrono::duration<double>(Clock::now() - stage_start).count();
    local.queries += s.queries;
    local.stages.push_back(s);
    return grid_prob;
  };

  cv::Mat prob = run_stage(scales[0], cv::Mat());  // the refined probabilities of the last stage, at its grid
  // The gate (automatic scales only): a first stage that barely moves the coarse boundary says the mask is
  // already close; the coarse stages would only cost it detail, so one full-resolution stage refines it.
  const bool gated = options.scales.empty() && scales.size() > 1 && options.close_mask_px > 0;
  if (gated) {
    local.first_stage_shift_px = rd::boundary_shift_px(coarse_at(coarse, prob.size()), prob, scales[0]);
    if (local.first_stage_shift_px < options.close_mask_px) {
      local.coarse_stages_skipped = true;
      prob = run_stage(1.0, cv::Mat());
    }
  }
  for (size_t k = 1; k < scales.size() && !local.coarse_stages_skipped; ++k) prob = run_stage(scales[k], prob);
  if (prob.size() != output) prob = rd::resize_to(prob, output);
  local.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (stats != nullptr) *stats = std::move(local);
  return prob;
}

}  // namespace airm
