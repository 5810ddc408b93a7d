// Pieces of the training loop (trainer.cpp): run state kept in checkpoints,
// the logs, validation bookkeeping, signals, gradient checks.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "airm/train/train_config.hpp"
#include "airm/train/trainer.hpp"
#include "run_log.hpp"
#include "train_task.hpp"
#include "validation.hpp"

namespace airm::train_detail {

// Throws airm::Error for options that cannot work (rank outside the world...).
void check_options(const TrainerOptions& options);

// The options a run was started with, kept in OUT/run.json.
nlohmann::json run_options_json(const TrainerOptions& options);

// What a checkpoint records besides tensors.
struct RunState {
  int64_t iteration = 0;  // steps completed
  double best_mba = NAN, best_iou = NAN;
  int64_t best_iteration = 0;
  double elapsed_seconds = 0;  // training time before `clock`
  std::chrono::steady_clock::time_point clock = std::chrono::steady_clock::now();

  // `config` is the run's whole training config (`schedule` is part of it).
  nlohmann::json to_json(const TrainSchedule& schedule, const nlohmann::json& config, const TrainerOptions& options,
                         int64_t loader_iteration) const;
  // Checks that the checkpoint belongs to this config (the iteration count
  // may differ: it extends or shortens the run) and world size.
  static RunState from_json(const nlohmann::json& state, const TrainSchedule& schedule, const nlohmann::json& config,
                            const TrainerOptions& options, const std::filesystem::path& source);
};

// The iteration recorded in a checkpoint folder (-1 if unreadable).
int64_t checkpoint_iteration(const std::filesystem::path& dir);

// Starts `net` from `init` (a network loaded from the weights file `file`)
// when their configs agree in every key but `may_differ` (names, stochastic
// depth...); else airm::Error naming the file and both configs.
void start_from_weights(torch::nn::Module& net, const nlohmann::json& config, const torch::nn::Module& init,
                        const nlohmann::json& init_config, const std::vector<std::string>& may_differ,
                        const std::string& file);

// The record of a step from its loss values ("total" and the terms by name).
IterationRecord make_record(int64_t iteration, double lr, const NamedValues& losses);

// log.csv rows (means over log_every steps), val.csv, the progress line.
class RunLogs {
 public:
  // `loss_terms`: the loss columns of log.csv after "total" (names of IterationRecord's terms).
  void open(const std::filesystem::path& out, bool resume, int64_t iteration,
            const std::vector<std::string>& loss_terms);
  void add(const IterationRecord& record, int64_t log_every, double images_per_step, double elapsed_seconds);
  // Writes the row of the steps not logged yet (before a checkpoint, so a
  // resumed log has no gap).
  void flush(double images_per_step, double elapsed_seconds);
  void add_validation(int64_t iteration, const std::string& kind, const std::vector<Summary>& summaries,
                      double seconds);
  // Whether the coarse masks' scores of a set of this many images are in val.csv.
  bool coarse_logged(int images) const { return coarse_logged_.count(images) > 0; }
  double wait_share() const { return wait_share_; }
  void progress_break() {
    if (progress) progress->break_line();
  }
  TrainProgress* progress = nullptr;

 private:
  CsvLog log_, val_;
  std::set<int> coarse_logged_;  // image counts of the sets whose coarse rows are logged
  std::vector<double IterationRecord::*> terms_;
  std::vector<IterationRecord> pending_;
  double wait_share_ = 0;
};

// The validation images of options.val_split (val_limit of them) with their fixed coarse masks.
ValidationSet load_validation_set(const TrainSchedule& schedule, const TrainerOptions& options);

// Logs a validation, reports it on stderr, keeps best.pt (through
// `save_weights`) and best.json when the pooled mBA improved (IoU breaks
// ties), and redraws the curves.
void record_validation(RunLogs& logs, RunState& run, const TaskValidation& result, int64_t iteration,
                       const std::function<void(const std::filesystem::path&)>& save_weights,
                       const std::filesystem::path& out);

// While alive (and enabled), SIGINT and SIGTERM set a flag instead of
// ending the process (a second one ends it as usual); the previous handlers
// come back afterwards.
class SignalScope {
 public:
  explicit SignalScope(bool enabled);
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  bool enabled_;
  struct sigaction previous_[2];
};
// The signal received under a SignalScope, 0 if none.
int interrupt_signal();

// The seed of torch's generator for the step after `completed` steps.
std::uint64_t step_seed(std::uint64_t seed, int rank, int64_t completed);

// The global L2 norm of the gradients; rescales them to `max_norm` if above
// it (max_norm 0: no clipping).
double clip_gradients(std::vector<torch::Tensor>& gradients, double max_norm);

// "" if the loss terms and the gradient norm are finite; else what is not,
// e.g. "the loss term l1 is nan (total nan)" or "the gradient of
// encoder.x.weight is inf (global norm inf)".
std::string non_finite_problem(const NamedValues& losses, double grad_norm, torch::nn::Module& net);

}  // namespace airm::train_detail
