// Training data: random crops of (image, ground truth) with augmentation,
// coarse masks synthesised on the fly, and the queries of the implicit
// function; made by worker threads ahead of the training loop.
//
// One training sample, in this order (each stage draws from its own split of
// the sample's generator, so switching one stage off leaves the others'
// draws unchanged):
//  1. Read: read_image (BGR, EXIF applied) and read_mask_u8 (> 127 is
//     foreground; a mask of another size is fitted like fit_mask_to does).
//  1b. Rescale (only when long_side_max > 0): image and mask resized so the
//     long side is an integer uniform in [long_side_min, long_side_max]
//     (drawn from the crop stage's generator; area filter when shrinking,
//     bilinear when enlarging; mask re-thresholded at half): the scales the
//     network will see at inference (the segmenter runs at a fixed long side).
//  2. Cover: if a side is shorter than `crop`, image and mask are scaled up
//     (bilinear; mask re-thresholded at half) so the SHORT side equals `crop`
//     (aspect ratio kept). CascadePSP pads instead; padding would feed the
//     network borders that never occur at inference. Larger images are not
//     rescaled: the crop sees the image at its native resolution.
//  3. Crop: a uniformly placed crop x crop window (or, with probability
//     `boundary_crop`, one centred on a random boundary pixel of the ground
//     truth); then a horizontal flip with probability 1/2 (if `flips`).
//  4. Copy-paste (probability `copy_paste`): the ground-truth object of
//     another sample (drawn uniformly among the others) - the bounding box of
//     its whole foreground, image pixels and mask - scaled so its long side
//     is a uniform 30%..80% of the crop, is pasted at a uniform position
//     fully inside the crop: pixels under its mask replace the crop's, and
//     the crop's ground truth becomes the union (pasted pixels foreground).
//  5. Colour: brightness, contrast, saturation factors in [1-jitter, 1+jitter]
//     and a hue shift in +-jitter/4 of the colour circle, applied in a random
//     order (values clamped to [0,1] after each); then grayscale with
//     probability `grayscale`.
//  6. Coarse mask, synthesised from the CROPPED ground truth (after the
//     paste), as CascadePSP does (coarse_from "crop"; with "image" from the
//     whole image's ground truth before cropping, the paste not included): with probability perturb_share
//     perturb_mask at a target IoU uniform in [perturb.min_iou,
//     perturb.max_iou); else lowres_mask with an integer factor uniform in
//     [lowres_min, lowres_max] (relative to the crop's side). Cropping first
//     is cheaper and lets the degradation scale with what the network sees.
//     Stored masks (a real segmenter's output, Sample::coarse or
//     coarse_dir/DATASET/NAME.png): with probability stored_share a sample
//     that has one uses it instead (drawn from a generator split after the
//     others, and only when stored_share > 0, so the stream without stored
//     masks is unchanged); it is read like the ground truth (> 127, fitted
//     to the image) and follows the image through rescale, cover, crop and
//     flip; the paste does not reach it.
//  7. Queries: "all": every pixel centre of the crop in row-major order
//     (make_pixel_grid), target = gt there. "boundary": `queries` per image;
//     round(queries * boundary_share) of them in the band of pixels within
//     boundary_band px of the ground-truth or the coarse boundary
//     (morphological gradient with an elliptical (2b+1)^2 kernel; a band
//     pixel drawn uniformly, then a uniform position inside it), the rest at
//     uniform continuous positions over the crop; the target of a query is
//     gt at the pixel containing its (float32) coordinate, i.e. the nearest
//     pixel centre (ImplicitFunction's convention). If the band is empty all
//     queries are uniform.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "airm/dataset.hpp"
#include "airm/degrade.hpp"

namespace airm {

struct DataOptions {
  int crop = 224;                 // square crop side, pixels (smaller images are scaled up, see above)
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
  // Probability that a low-res coarse mask stays soft (its bilinear upsampling, not thresholded): what
  // the later stages of the coarse-to-fine schedule hand the network (docs/DESIGN.md). 0: always binary.
  double soft_share = 0.0;
  double copy_paste = 0.0;        // probability of pasting a ground-truth object of another image
  int long_side_min = 0;          // rescale each image to a long side in [min, max] first (0, 0: native size)
  int long_side_max = 0;
  // Where the coarse mask is made: "crop" (the cropped ground truth, after the
  // paste; lowres factor relative to the crop) or "image" (the whole covered
  // image's ground truth, then cropped with it: the degradation the val
  // split's `airm degrade` masks have, factor relative to the image).
  std::string coarse_from = "crop";
  // Stored coarse masks: the probability that a sample with one uses it, and
  // an optional folder of them laid out DIR/DATASET/NAME.png (a relative
  // path in a training config is resolved against the config's folder).
  double stored_share = 0.0;
  std::string coarse_dir;
  // Probability that the crop is centred on a random ground-truth boundary
  // pixel (clamped inside the image) instead of placed uniformly.
  double boundary_crop = 0.0;
  // Queries: "all" (every pixel of the crop) or "boundary" (`queries` per
  // image, `boundary_share` of them within `boundary_band` px of the
  // ground-truth or coarse boundary, the rest uniform).
  std::string query_mode = "all";
  int queries = 12544;            // 224*224/4
  double boundary_share = 0.5;
  int boundary_band = 8;
  // Times each sample of a dataset (folder name) appears in an epoch's
  // permutation, 0..100 (0: left out); datasets not named appear once. A
  // named dataset must hold training samples (a typo is an error). Empty: as is.
  std::map<std::string, int> repeat;

  // Throws airm::Error naming the field (and `source`, if given).
  void validate(const std::string& source = "") const;
  nlohmann::json to_json() const;
  // Unknown keys are errors (also inside "perturb").
  static DataOptions from_json(const nlohmann::json& json, const std::string& source = "");
};

// One batch. Coordinates follow ImplicitFunction: (y, x) in (-1, 1),
// pixel centres of the crop.
struct TrainBatch {
  torch::Tensor input;   // [B,4,S,S] normalize_input(rgb, coarse)
  torch::Tensor gt;      // [B,1,S,S] float 0/1
  torch::Tensor coarse;  // [B,1,S,S] float in [0,1] (0/1 unless soft_share > 0)
  torch::Tensor coord;   // [B,Q,2] float32
  torch::Tensor target;  // [B,Q] float 0/1: gt at the queries (nearest pixel)
  int64_t iteration = 0;
  std::vector<int64_t> samples;  // index into the loader's samples of each image of the batch
};

struct LoaderStats {
  double wait_seconds = 0;     // time next() spent waiting for workers
  double produce_seconds = 0;  // worker time spent making batches (all workers)
  int64_t batches = 0;         // batches returned by next()
};

// Batch i is a pure function of (seed, rank, world_size, i): which samples,
// their crops, augmentations, coarse masks and queries. So the sequence does
// not depend on the number of workers, and a resumed run continues exactly
// by seek(i).
//
// Data-parallel runs split one global batch: iteration i of all ranks
// together is the global batch of W*B images, rank r holding its slots
// r*B .. r*B+B-1. Every image is a function of (seed, i, slot) only, so W
// ranks of batch B see exactly the images one process of batch W*B sees
// (what makes them train the same weights).
//
// Sample order: epoch e permutes the N sample indices (seeded by (seed, e));
// the stream of all ranks' images walks through epoch 0's permutation, then
// epoch 1's, ...: slot j of iteration i is stream position i*W*B + j, that
// is position p mod N of epoch p / N. The augmentation of slot j of
// iteration i is drawn from a generator seeded by (seed, i, j).
//
// Repeats: options.repeat lists each sample of a named dataset that many
// times (0: none) in the list the permutations walk, so an epoch shows it
// that often, each time with its own crop and augmentation.
//
// Stored masks: with a coarse_dir, every sample without a Sample::coarse
// gets coarse_dir/DATASET/NAME.png when that file exists; the constructor
// throws airm::Error if coarse_dir is set and holds none of the samples.
//
// Threads: `workers` threads make batches i, i+1, ... ahead of next(), at most
// `prefetch` batches ready or in the making; workers = 0 makes each batch on
// the calling thread inside next(). Production starts at the first next() or
// seek(). A worker's exception (e.g. an unreadable file, airm::Error naming
// it) is rethrown by next() when it reaches that batch (and again on each
// call until seek()).
class TrainLoader {
 public:
  TrainLoader(std::vector<Sample> samples, DataOptions options, int batch_size, std::uint64_t seed, int rank = 0,
              int world_size = 1, int workers = 2, int prefetch = 4);
  ~TrainLoader();
  TrainLoader(const TrainLoader&) = delete;
  TrainLoader& operator=(const TrainLoader&) = delete;

  TrainBatch next();                // the batch of iteration(), then advances
  int64_t iteration() const;        // the next batch's index
  void seek(int64_t iteration);     // continue from this batch index (>= 0)
  LoaderStats stats() const;
  std::size_t size() const;         // number of samples

  // The batch of one iteration made on the calling thread (reference for tests).
  TrainBatch make_batch(int64_t iteration) const;

  // The sample indices of batch `iteration` (what make_batch(i).samples holds), cheap.
  std::vector<int64_t> batch_samples(int64_t iteration) const;
  // Samples per epoch (all ranks together): size().
  int64_t samples_per_epoch() const;
  // The sample an index of batch_samples() names (repeated datasets hold several indices).
  const Sample& sample(int64_t index) const;
  // The epoch of this rank's first image of batch `iteration` (for logging).
  int64_t epoch_of(int64_t iteration) const;
  const DataOptions& options() const;
  int batch_size() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace airm
