// What the training loop (train_loop.cpp) needs from the network it trains:
// the refiner (trainer.cpp) and the coarse segmenter (segmenter_trainer.cpp)
// each implement it, and share everything else: data, optimiser, schedule,
// checkpoints, resuming, validation bookkeeping, logs, data parallelism.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "airm/metrics.hpp"
#include "airm/train/data_loader.hpp"
#include "airm/train/train_config.hpp"
#include "airm/train/trainer.hpp"
#include "validation.hpp"

namespace airm::train_detail {

// The loss terms computed in a step, by name ("total" first).
using NamedValues = std::vector<std::pair<std::string, double>>;

// A validation pass (validation.hpp), with the scores of the network's input
// masks when it has any (the refiner's coarse masks; none for the segmenter).
struct TaskValidation : ValidationResult {
  std::vector<Summary> input_summaries;
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  // The network being trained (on the run's device).
  virtual torch::nn::Module& module() = 0;
  // The names of the loss terms logged in log.csv, in order (not "total").
  virtual std::vector<std::string> loss_terms() const = 0;
  // Forward and loss of one batch in train mode: the tensor to backpropagate;
  // `values` receives "total", then each term computed.
  virtual torch::Tensor step_loss(const TrainBatch& batch, NamedValues& values) = 0;
  // The network as a weights file of its kind (with its config), and back.
  virtual void save_weights(const std::filesystem::path& path) = 0;
  virtual void load_weights(const std::filesystem::path& path) = 0;
  // Scores on the validation split (eval mode; the mode is restored).
  virtual TaskValidation validate(const std::function<bool()>& should_stop) = 0;
  // Called before each step (tests inject faults through it).
  virtual void before_step(int64_t /*step*/) {}
};

// Runs (or resumes) the loop for `task`. `config_json` is the run's whole
// training config (written to OUT/config.json and compared on resume).
TrainResult run_training(const TrainSchedule& schedule, const nlohmann::json& config_json, TrainTask& task,
                         const TrainerOptions& options);

}  // namespace airm::train_detail
