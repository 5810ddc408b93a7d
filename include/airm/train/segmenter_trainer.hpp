// Training the coarse segmenter (`airm train --task segment`): the same loop,
// data pipeline, checkpoints, resuming, logs and data parallelism as the
// refiner's (trainer.hpp), with the segmenter's loss and validation.
//
// Output folder: as trainer.hpp describes; weights files are segmenter
// weights (segmenter_weights.hpp); log.csv has the columns cross_entropy and
// dice; val.csv has "predicted" rows (the segmenter's masks, thresholded at
// 1/2, scored against the ground truth at the image's size) and no coarse rows.
#pragma once

#include "airm/train/segmenter_train_config.hpp"
#include "airm/train/trainer.hpp"

namespace airm {

// Runs (or resumes) segmenter training. options.before_step is not called
// (it takes a refiner). Throws airm::Error like train().
TrainResult train_segmenter(const SegmenterTrainConfig& config, const TrainerOptions& options);

}  // namespace airm
