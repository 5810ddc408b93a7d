// The training loop shared by every task (train_task.hpp).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "airm/atomic_file.hpp"
#include "airm/dataset.hpp"
#include "airm/error.hpp"
#include "airm/model/sync_batch_norm.hpp"
#include "airm/train/data_loader.hpp"
#include "checkpoint.hpp"
#include "run_log.hpp"
#include "train_task.hpp"
#include "trainer_parts.hpp"

namespace airm::train_detail {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

TrainBatch to_device(TrainBatch batch, const torch::Device& device) {
  if (device.is_cpu()) return batch;
  for (torch::Tensor* t : {&batch.input, &batch.gt, &batch.coarse, &batch.coord, &batch.target}) {
    if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
  }
  return batch;
}

}  // namespace

TrainResult run_training(const TrainSchedule& schedule, const nlohmann::json& config_json, TrainTask& task,
                         const TrainerOptions& options) {
  const auto start = Clock::now();
  check_options(options);
  const bool main_rank = options.rank == 0;
  const fs::path& out = options.out;
  const fs::path checkpoint_dir = out / "checkpoint";
  if (main_rank) {
    fs::create_directories(out);
    remove_stale_temporaries(out);  // a killed earlier process's half-written checkpoint or log
  }
  const fs::path found = find_checkpoint(checkpoint_dir);
  if (options.resume && found.empty()) {
    throw Error(out.string(), "a run folder with a checkpoint to resume from", "none");
  }
  if (!options.resume && !found.empty()) {
    throw Error(out.string(), "a new run folder",
                "a folder holding a run (continue it with --resume, or choose another --out)");
  }

  // Data.
  Discovery discovery = discover_split(options.data, options.split, options.splits_file);
  if (discovery.samples.empty()) throw Error(options.data.string(), "training images", "none");
  const std::size_t images = discovery.samples.size();
  TrainLoader loader(std::move(discovery.samples), schedule.data, schedule.batch, schedule.seed, options.rank,
                     options.world_size, options.workers, options.prefetch);
  if (main_rank) {
    // After `repeat`, an epoch can hold more (or fewer) samples than the split has images: say both.
    std::fprintf(stderr, "data: %zu training image(s) of split '%s' in %s, %lld sample(s) per epoch\n", images,
                 options.split.c_str(), options.data.string().c_str(),
                 static_cast<long long>(loader.samples_per_epoch()));
  }

  // Network and optimiser.
  torch::nn::Module& net = task.module();
  net.to(options.device);
  net.train();
  torch::optim::Adam optimizer(net.parameters(), torch::optim::AdamOptions(schedule.optimizer.lr)
                                                     .weight_decay(schedule.optimizer.weight_decay));
  const CheckpointWeights weights{[&](const fs::path& p) { task.save_weights(p); },
                                  [&](const fs::path& p) { task.load_weights(p); }};

  RunState run;
  if (options.resume) {
    const nlohmann::json state = read_checkpoint(found, weights, optimizer, options.device);
    run = RunState::from_json(state, schedule, config_json, options, found);
  } else if (main_rank) {
    write_text_atomically(out / "config.json", config_json.dump(2) + "\n");
    write_text_atomically(out / kRunFile, run_options_json(options).dump(2) + "\n");
  }
  loader.seek(run.iteration);
  std::optional<ScopedBatchNormReducer> synced_batch_norm;
  if (options.distributed.sum) synced_batch_norm.emplace(options.distributed.sum);
  if (options.distributed.broadcast_parameters) {
    std::vector<torch::Tensor> parameters = net.parameters();
    options.distributed.broadcast_parameters(parameters);
  }

  RunLogs logs;
  if (main_rank) logs.open(out, options.resume, run.iteration, task.loss_terms());
  auto validate_now = [&](int64_t iteration) {
    if (!main_rank || options.val_split.empty()) return;
    logs.progress_break();
    const TaskValidation result = task.validate([] { return interrupt_signal() != 0; });
    if (result.stopped) return;
    record_validation(logs, run, result, iteration, weights.save, out);
  };

  SignalScope signals(options.handle_signals);
  const int64_t first = run.iteration;
  TrainProgress progress(first, schedule.iterations, options.progress && main_rank);
  logs.progress = &progress;
  const double images_per_step = static_cast<double>(schedule.batch) * options.world_size;
  int64_t checkpointed = options.resume ? run.iteration : -1;
  auto checkpoint = [&] {
    if (!main_rank || checkpointed == run.iteration) return;
    run.elapsed_seconds += since(run.clock);
    run.clock = Clock::now();
    logs.flush(images_per_step, run.elapsed_seconds);
    write_checkpoint(checkpoint_dir, weights, optimizer,
                     run.to_json(schedule, config_json, options, loader.iteration()));
    publish_file(checkpoint_dir / kWeightsFile, out / "last.pt");
    checkpointed = run.iteration;
  };

  TrainResult result;
  result.status = TrainStatus::completed;
  while (run.iteration < schedule.iterations) {
    const int64_t step = run.iteration + 1;
    const auto step_start = Clock::now();
    task.before_step(step);
    torch::manual_seed(step_seed(schedule.seed, options.rank, run.iteration));
    const double lr = schedule.lr_at(run.iteration);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);

    const auto wait_start = Clock::now();
    const TrainBatch batch = to_device(loader.next(), options.device);
    const double wait = since(wait_start);

    optimizer.zero_grad();
    NamedValues losses;
    task.step_loss(batch, losses).backward();
    std::vector<torch::Tensor> gradients;
    for (const torch::Tensor& p : net.parameters()) {
      if (p.grad().defined()) gradients.push_back(p.grad());
    }
    if (options.distributed.sync_gradients) options.distributed.sync_gradients(gradients);
    const double grad_norm = clip_gradients(gradients, schedule.optimizer.grad_clip);
    std::string problem = non_finite_problem(losses, grad_norm, net);
    const bool diverged = options.distributed.any ? options.distributed.any(!problem.empty()) : !problem.empty();
    if (diverged) {
      logs.progress_break();
      if (problem.empty()) problem = "another rank's loss or gradient is not finite";
      const fs::path kept = find_checkpoint(checkpoint_dir);
      throw Error(out.string(), "training diverged at iteration " + std::to_string(step) + ": " + problem + "; " +
                                    (kept.empty() ? std::string("no checkpoint was written yet")
                                                  : "the last good checkpoint (iteration " +
                                                        std::to_string(checkpoint_iteration(kept)) + ") in " +
                                                        kept.string() + " is kept"));
    }
    optimizer.step();
    run.iteration = step;

    IterationRecord record = make_record(step, lr, losses);
    record.grad_norm = grad_norm;
    record.wait_seconds = wait;
    record.seconds = since(step_start);
    if (options.after_step) options.after_step(record);
    if (main_rank) {
      logs.add(record, schedule.log_every, images_per_step, run.elapsed_seconds + since(run.clock));
      progress.update(step, record.total, lr, images_per_step, logs.wait_share());
    }

    const bool last = run.iteration == schedule.iterations;
    if (!last && schedule.validate_every > 0 && run.iteration % schedule.validate_every == 0) {
      validate_now(run.iteration);
    }
    if (run.iteration % schedule.checkpoint_every == 0) checkpoint();

    const int local_signal = interrupt_signal();
    const bool interrupted = options.distributed.any ? options.distributed.any(local_signal != 0) : local_signal != 0;
    if (interrupted && !last) {
      result.status = TrainStatus::interrupted;
      result.signal = local_signal;
      break;
    }
    if (options.stop_after > 0 && run.iteration >= options.stop_after && !last) {
      result.status = TrainStatus::stopped;
      break;
    }
  }
  progress.finish();
  if (result.status == TrainStatus::completed) validate_now(run.iteration);
  checkpoint();
  if (main_rank) {
    if (result.status != TrainStatus::completed) {
      std::fprintf(stderr, "%s at iteration %lld: checkpoint written to %s\n",
                   result.status == TrainStatus::interrupted ? "interrupted" : "stopped",
                   static_cast<long long>(run.iteration), checkpoint_dir.string().c_str());
    }
    write_curves(out);
  }
  result.iteration = run.iteration;
  result.best_mba = run.best_mba;
  result.best_iteration = run.best_iteration;
  result.seconds = since(start);
  return result;
}

}  // namespace airm::train_detail
