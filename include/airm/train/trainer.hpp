// The training loop: batches from TrainLoader, forward (optionally under
// bf16 autocast), the refinement losses, backward, gradient clipping, Adam
// with a step schedule; checkpoints that resume exactly, validation, logs.
//
// Output folder:
//   config.json       the training config (model inline)
//   run.json          the run-time options of the first start (data, splits)
//   log.csv           one row per log_every iterations
//   val.csv           validation scores (and the coarse masks' own, once)
//   curves.png        losses and validation scores, redrawn at each validation
//   checkpoint/       weights.pt (a weights file), optimizer.pt, state.json
//   last.pt           the latest checkpoint's weights
//   best.pt, best.json  the weights with the best validation mBA so far
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "airm/model/airm_net.hpp"
#include "airm/train/train_config.hpp"

namespace airm {

// How data-parallel training plugs in: each rank runs train() with its rank
// and world size (the loader gives each rank its share of every batch);
// these are called at the same points on every rank.
struct DistributedHooks {
  // After backward, before the non-finite check and clipping: make the
  // gradients the mean over ranks (in place). Null: single process.
  std::function<void(std::vector<torch::Tensor>& gradients)> sync_gradients;
  // Before training, after a resume: make every rank's parameters rank 0's (in place).
  std::function<void(std::vector<torch::Tensor>& parameters)> broadcast_parameters;
  // True on every rank if `local` is true on any rank (stop decisions:
  // non-finite values, signals). Null: `local`.
  std::function<bool(bool local)> any;
  // Sum over ranks in place; installed for SyncBatchNorm2d during training so
  // batch statistics are the global batch's. Null: per-rank statistics.
  std::function<void(torch::Tensor& sums)> sum;
};

// What one optimiser step did.
struct IterationRecord {
  int64_t iteration = 0;  // steps completed, including this one (1-based)
  double lr = 0;
  double total = 0;
  // NaN when the term is not computed.
  double cross_entropy = NAN, l1 = NAN, l2 = NAN, gradient = NAN, affinity = NAN;
  double dice = NAN;  // the segmenter's
  double grad_norm = 0;     // before clipping
  double seconds = 0;       // wall time of the step, loader wait included
  double wait_seconds = 0;  // of which waiting for the loader
};

struct TrainerOptions {
  std::filesystem::path data;         // dataset root (or one dataset folder)
  std::string split = "train";        // named split of the training images ("": all of data)
  std::string val_split = "val";      // named split for validation ("": no validation)
  std::filesystem::path splits_file;  // other than DATA/SPLITS.md
  std::filesystem::path out;          // run folder; created
  bool resume = false;                // continue from OUT/checkpoint (else OUT must hold no run)
  int workers = 2;                    // loader threads
  int prefetch = 4;                   // batches made ahead
  int threads = 0;                    // threads for validation's coarse masks (0: all cores)
  torch::Device device = torch::kCPU;
  bool progress = true;               // progress line on stderr (rank 0)
  bool handle_signals = false;        // SIGINT/SIGTERM: checkpoint, then return `interrupted`

  int rank = 0;
  int world_size = 1;
  DistributedHooks distributed;

  // Stop as if interrupted once this many iterations are done (0: never).
  int64_t stop_after = 0;
  // Called at the start of each step with the index of the step (1-based)
  // and the network (tests: inject faults, raise signals). Refiner runs only.
  std::function<void(int64_t iteration, AirmNet& net)> before_step;
  // Called after each step on every rank.
  std::function<void(const IterationRecord&)> after_step;
};

enum class TrainStatus {
  completed,    // all iterations done
  interrupted,  // SIGINT/SIGTERM: checkpoint written at `iteration`
  stopped,      // stop_after reached: checkpoint written at `iteration`
};

struct TrainResult {
  TrainStatus status = TrainStatus::completed;
  int signal = 0;          // the signal that interrupted the run
  int64_t iteration = 0;   // steps completed
  double best_mba = NAN;   // best validation mBA (pooled "all" row), NaN if none
  int64_t best_iteration = 0;
  double seconds = 0;
};

// Runs (or resumes) training. Throws airm::Error for bad inputs, and when a
// loss or gradient becomes non-finite (naming the iteration and the term);
// then the last checkpoint written stays as it was.
TrainResult train(const TrainConfig& config, const TrainerOptions& options);

// The run folder's record of the options it was started with (data, splits), as train() wrote it.
constexpr const char* kRunFile = "run.json";
// Reads OUT/run.json; throws airm::Error naming OUT when it is not a run folder.
nlohmann::json read_run_options(const std::filesystem::path& out);
// Whether the run folder OUT holds a complete checkpoint to resume from (a run stopped before its first
// checkpoint has run.json and config.json but none).
bool has_checkpoint(const std::filesystem::path& out);

}  // namespace airm
