// Training data: random crops of (image, ground truth) with augmentation,
// coarse masks synthesised on the fly, and the queries of the implicit
// function; made by worker threads ahead of the training loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "airm/dataset.hpp"
#include "airm/degrade.hpp"

namespace airm {

struct DataOptions {
  int crop = 224;                 // square crop side, pixels (images smaller are padded/resized up)
  bool flips = true;              // horizontal flips
  double jitter = 0.2;            // colour jitter strength: brightness, contrast, saturation (+-), hue (+- jitter/4)
  double grayscale = 0.1;         // probability of a grayscale image
  // Coarse masks from the ground truth: perturbation (CascadePSP, target IoU
  // in [perturb.min_iou, perturb.max_iou)) with probability perturb_share,
  // else a low-resolution segmenter's output (factor drawn in [lowres_min, lowres_max]).
  double perturb_share = 0.8;
  PerturbOptions perturb;
  int lowres_min = 4;
  int lowres_max = 16;
  double copy_paste = 0.0;        // probability of pasting a ground-truth object of another image
  // Queries: "all" (every pixel of the crop) or "boundary" (`queries` per
  // image, `boundary_share` of them within `boundary_band` px of the
  // ground-truth or coarse boundary, the rest uniform).
  std::string query_mode = "all";
  int queries = 12544;            // 224*224/4
  double boundary_share = 0.5;
  int boundary_band = 8;

  void validate() const;  // throws airm::Error naming the field
  nlohmann::json to_json() const;
  static DataOptions from_json(const nlohmann::json& json, const std::string& source = "");
};

// One batch. Coordinates follow ImplicitFunction: (y, x) in (-1, 1),
// pixel centres of the crop.
struct TrainBatch {
  torch::Tensor input;   // [B,4,S,S] normalize_input(rgb, coarse)
  torch::Tensor gt;      // [B,1,S,S] float 0/1
  torch::Tensor coarse;  // [B,1,S,S] float 0/1
  torch::Tensor coord;   // [B,Q,2]
  torch::Tensor target;  // [B,Q] float 0/1: gt at the queries (nearest pixel)
  int64_t iteration = 0;
};

struct LoaderStats {
  double wait_seconds = 0;     // time next() spent waiting for workers
  double produce_seconds = 0;  // worker time spent making batches (all workers)
  int64_t batches = 0;
};

// Batch i is a pure function of (seed, rank, world_size, i): which samples
// (a per-epoch permutation of all samples seeded by (seed, epoch), rank r
// taking every world_size-th), their crops, augmentations, coarse masks and
// queries. So the sequence does not depend on the number of workers, and a
// resumed run continues exactly by seek(i).
class TrainLoader {
 public:
  TrainLoader(std::vector<Sample> samples, DataOptions options, int batch_size, std::uint64_t seed, int rank = 0,
              int world_size = 1, int workers = 2, int prefetch = 4);
  ~TrainLoader();
  TrainLoader(const TrainLoader&) = delete;
  TrainLoader& operator=(const TrainLoader&) = delete;

  TrainBatch next();                // the batch of iteration(), then advances
  int64_t iteration() const;        // the next batch's index
  void seek(int64_t iteration);     // continue from this batch index
  LoaderStats stats() const;
  std::size_t size() const;         // number of samples

  // The batch of one iteration made on the calling thread (reference for tests).
  TrainBatch make_batch(int64_t iteration) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace airm
