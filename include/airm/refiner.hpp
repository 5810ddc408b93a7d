// Ultra-high-resolution inference: refine the coarse mask of a 2K-8K photo
// with a trained AIRM network, coarse to fine (CRM's multi-resolution
// inference, which AIRM follows), in bounded memory.
//
// One refinement (see docs/DESIGN.md, "Refinement", for the reasons):
//  - Stages. Each scale s of RefineOptions::scales defines a query grid of
//    round(s * output size) pixels. Automatic scales (the default): the
//    first grid's long side lies in (first_long_side / 2, first_long_side],
//    then x2 per stage up to the output size (for 3840x2160 and 512 that is
//    CRM's 1/8, 1/4, 1/2, 1).
//  - Encoder. Per stage the image and the current mask are resized to the
//    encoder size, reflect-padded (`pad` px at full resolution, scaled with
//    the stage, then up to a multiple of 32) and encoded once. The encoder
//    size is the grid capped so its long side is at most max_encoder_side
//    (default; the implicit function then reads the capped features at the
//    full grid: it is continuous), or, with tile_size > 0, the full grid
//    encoded in overlapping tiles whose feature maps are blended with linear
//    ramps. Either way no attention larger than one capped input/tile exists.
//  - Queries. The first grid queries the pixels whose coarse probability is
//    uncertain (in [uncertain_low, uncertain_high]) or lies within
//    `first_band` px of its 0.5 boundary (first_band = 0: every pixel, as
//    CRM does); the others keep the coarse value, so nothing far from the
//    coarse boundary changes. Later stages query (adaptive, the default) the
//    pixels whose bilinearly upsampled probability is uncertain or lies
//    within `band` px of its 0.5 boundary; the others keep the upsampled
//    value. `dense` queries every pixel of every stage (the reference). Queries are streamed
//    in row-major blocks: coordinates (make_pixel_grid) and the guide (RGB +
//    mask at the query, read from the image at the grid size) exist per block
//    only, and the MLP runs chunk_size queries at a time.
//  - The refined probabilities of a stage are the next stage's coarse mask.
//  - The gate (automatic scales, close_mask_px > 0): after the first stage,
//    the mean boundary displacement it proposes decides. Below close_mask_px
//    output pixels the coarse mask is close already: that result is dropped
//    and one full-resolution stage refines the coarse mask (a 1/8 grid loses
//    wires and hair the mask had right); otherwise the stages go on.
//
// Thread safety: refine() and refine_labels() are const and may be called
// concurrently on one Refiner from any number of threads; the weights are
// shared read-only (no autocast or other thread-local switch is used), each
// call has its own working memory (so peak memory adds up), and all calls
// share LibTorch's intra-op thread pool. Results do not depend on
// concurrency (tested: two threads, fp32 and bf16, give the sequential
// results bit for bit).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "airm/model/airm_net.hpp"

namespace airm {

// Process-wide settings of a Refiner (fixed when it is built).
struct RefinerOptions {
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"
  int threads = 0;             // LibTorch's intra-op threads (process-wide); 0: every core this process may use
  // Encoder convolutions in channels-last (NHWC) memory, oneDNN's native layout, instead of NCHW. Measured
  // on a 2-vCPU Xeon without AVX512-BF16 (docs/BENCHMARKS.md): bf16 1.2-1.5x faster, fp32 within noise and
  // up to a third more peak memory; hence off by default.
  bool channels_last = false;
};

// Per-call run-time options (the model's hyper-parameters live in its config).
struct RefineOptions {
  // Scales relative to the output size, strictly ascending, each in (0, 1].
  // Empty: automatic (see above). A last scale below 1 gives a bilinear
  // upsampling of that stage's result (a fast preview).
  std::vector<double> scales;
  int first_long_side = 512;  // automatic scales only

  bool dense = false;            // query every pixel of every stage
  int first_band = 16;           // first stage: query within this many px of the coarse boundary (0: all)
  double uncertain_low = 0.05;   // adaptive: re-query p in [low, high] ...
  double uncertain_high = 0.95;
  int band = 3;                  // ... or within this many px of the p > 0.5 boundary
  // Automatic scales with several stages: when the first stage moves the coarse boundary by less than this
  // many output pixels on average (boundary_shift_px), the mask is taken as close already and one stage at
  // full resolution refines it instead of the coarse stages (which would cost it thin parts). 0: never.
  double close_mask_px = 3.0;

  int max_encoder_side = 1024;   // cap of the encoder input's long side (content, before padding)
  int tile_size = 0;             // > 0: encode every stage at its grid size in tiles of this size (multiple of 32)
  int tile_overlap = 128;        // overlap of neighbouring tiles (multiple of 32, < tile_size)
  int pad = 32;                  // reflect padding at full resolution (CRM: 32)

  int64_t chunk_size = 1 << 16;  // queries per MLP evaluation
  int64_t block_size = 1 << 20;  // queries per streamed block (at least chunk_size)
  bool bf16 = false;             // run a bfloat16 copy of the network (query geometry stays fp32)

  cv::Size output_size;          // empty: the image's size

  // Throws airm::Error naming the offending field.
  void validate() const;
};

struct StageStats {
  double scale = 0;
  cv::Size grid;      // query grid (W x H)
  cv::Size encoder;   // encoder input after padding (W x H)
  int tiles = 1;
  int64_t queries = 0;
  double seconds = 0;         // the whole stage
  double encode_seconds = 0;  // of which encoding (resizing, encoder, hypernetwork)
};

struct RefineStats {
  std::vector<StageStats> stages;
  int64_t queries = 0;  // over all stages (and classes, for refine_labels)
  double seconds = 0;
  double first_stage_shift_px = 0;     // the gate's measure (RefineOptions::close_mask_px); 0 when not gated
  bool coarse_stages_skipped = false;  // the gate chose one full-resolution stage after the first
};

// The scales refine() uses for an output of `output_size` (options.scales, or the automatic ones).
std::vector<double> plan_scales(cv::Size output_size, const RefineOptions& options);

class Refiner {
 public:
  // Loads a weights file (load_weights) once.
  explicit Refiner(const std::filesystem::path& weights, RefinerOptions options = {});
  // Uses `net` (shared, not copied: it is put in eval mode, its denormal weights are set to zero, it is
  // moved to the device, and with RefinerOptions::channels_last its 4-D weights are stored channels-last).
  // The bfloat16 copy used by RefineOptions::bf16 is made here: later changes to `net`'s weights do not
  // reach it.
  explicit Refiner(AirmNet net, RefinerOptions options = {});

  // image: CV_8UC3 BGR (CV_8UC1 gray and CV_8UC4 BGRA are converted);
  // coarse: CV_32FC1 in [0,1] or CV_8UC1 0..255, the image's size or another
  // size of the same aspect ratio (within 1%; resized bilinearly), else
  // airm::Error. Returns CV_32FC1 probabilities at options.output_size (or
  // the image's size).
  cv::Mat refine(const cv::Mat& image, const cv::Mat& coarse, const RefineOptions& options = {},
                 RefineStats* stats = nullptr) const;

  // Multi-class: labels CV_8UC1 or CV_16UC1 class ids (0 = background), the
  // image's size or the same aspect (each class mask is then resized like a coarse mask). Every non-zero id
  // present is refined as a binary mask (id vs rest); a pixel takes the id of
  // the largest refined probability if it exceeds 0.5 (background's
  // probability is 1 - max), else 0; ties go to the lower id. Returns the
  // labels' type at the output size. No id present: all zero.
  cv::Mat refine_labels(const cv::Mat& image, const cv::Mat& labels, const RefineOptions& options = {},
                        RefineStats* stats = nullptr) const;

  const ModelConfig& config() const;
  const torch::Device& device() const { return device_; }

 private:
  mutable AirmNet net_{nullptr};       // read-only after construction; forward() is not const in LibTorch
  mutable AirmNet net_bf16_{nullptr};  // the same weights in bfloat16 (RefineOptions::bf16)
  torch::Device device_{torch::kCPU};
  torch::MemoryFormat memory_format_ = torch::MemoryFormat::Contiguous;  // of the encoder's input and weights
};

// Process-wide malloc settings for long inference runs (glibc; no-op
// elsewhere): every block is served from and returned to malloc's heap,
// which is trimmed only beyond 1 GiB free, instead of large blocks being
// mapped and unmapped on every use. A refinement allocates and frees the same large
// temporaries for every block and stage; returning them to the system costs
// page faults (about 20% of the CPU time at 4K) for about 30% more peak RSS.
// On Linux the first call also reserves just under 1 GiB of that heap with
// MADV_HUGEPAGE (untouched, so no memory is used): the first refinement's
// fresh memory then faults in 2 MiB pages (4K: 3.0 -> 1.4 s on 2 vCPUs).
// AIRM_NO_HUGE_PAGES=1 in the environment skips the reservation.
// `airm refine` and bench_refine call it.
void retain_freed_memory();

// Multi-class label maps: 8/16-bit single-channel PNG of ids, or a palette
// PNG (its indices). Throws airm::Error naming the file.
cv::Mat read_label_map(const std::filesystem::path& path);
// Writes labels (CV_8UC1 or CV_16UC1) as PNG, atomically.
void write_label_map(const std::filesystem::path& path, const cv::Mat& labels);

// The image (resized to the masks' size) with the boundary of `before` in
// red and of `after` in green. Masks: CV_32FC1 [0,1] (binarised at 0.5),
// CV_8UC1 (> 127), or label maps with `labels` (any id change is a boundary).
cv::Mat draw_boundaries(const cv::Mat& image, const cv::Mat& before, const cv::Mat& after, bool labels = false);

}  // namespace airm
