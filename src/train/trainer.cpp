#include "airm/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <optional>

#include "airm/atomic_file.hpp"
#include "airm/dataset.hpp"
#include "airm/error.hpp"
#include "airm/model/implicit_function.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/model/sync_batch_norm.hpp"
#include "airm/model/weights.hpp"
#include "airm/train/data_loader.hpp"
#include "airm/train/losses.hpp"
#include "autocast.hpp"
#include "checkpoint.hpp"
#include "run_log.hpp"
#include "trainer_parts.hpp"
#include "validation.hpp"

namespace airm {
namespace fs = std::filesystem;
using namespace train_detail;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct StepLosses {
  LossTerms terms;
  NamedValues computed;  // "total" first, then the terms computed
  double value(const std::string& name) const {
    for (const auto& [key, v] : computed) {
      if (key == name) return v;
    }
    return NAN;
  }
};

// Forward under autocast (if asked), losses in fp32.
StepLosses forward_losses(AirmNet& net, const TrainConfig& config, const TrainBatch& batch, const torch::Tensor& cell,
                          const torch::Device& device) {
  const bool with_affinity = config.model.affinity && config.loss.affinity > 0;
  Encoded encoded;
  torch::Tensor logits;
  {
    AutocastScope autocast(config.bf16 && kAutocastEncoder, device);
    encoded = net->encode(batch.input, with_affinity);
  }
  {
    AutocastScope autocast(config.bf16, device);
    logits = net->query(encoded, batch.input, batch.coord, cell);
  }
  logits = logits.to(torch::kFloat);
  torch::Tensor affinity;
  if (with_affinity) {
    encoded.affinity = encoded.affinity.to(torch::kFloat);
    affinity = net->affinity_loss(encoded, batch.gt);
  }
  StepLosses out;
  out.terms = refinement_losses(logits, batch.target, config.data.query_mode == "all", config.data.crop, affinity,
                                config.loss);
  const std::pair<const char*, const torch::Tensor*> terms[] = {
      {"total", &out.terms.total}, {"cross_entropy", &out.terms.cross_entropy}, {"l1", &out.terms.l1},
      {"l2", &out.terms.l2},       {"gradient", &out.terms.gradient},           {"affinity", &out.terms.affinity}};
  for (const auto& [name, tensor] : terms) {
    if (tensor->defined()) out.computed.emplace_back(name, tensor->detach().to(torch::kDouble).item<double>());
  }
  return out;
}

TrainBatch to_device(TrainBatch batch, const torch::Device& device) {
  if (device.is_cpu()) return batch;
  for (torch::Tensor* t : {&batch.input, &batch.gt, &batch.coarse, &batch.coord, &batch.target}) {
    if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
  }
  return batch;
}

}  // namespace

TrainResult train(const TrainConfig& config, const TrainerOptions& options) {
  const auto start = Clock::now();
  config.validate();
  check_options(options);
  const bool main_rank = options.rank == 0;
  const fs::path& out = options.out;
  const fs::path checkpoint_dir = out / "checkpoint";
  if (main_rank) fs::create_directories(out);
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
  if (main_rank) {
    std::fprintf(stderr, "data: %zu training image(s) of split '%s' in %s\n", discovery.samples.size(),
                 options.split.c_str(), options.data.string().c_str());
  }
  TrainLoader loader(std::move(discovery.samples), config.data, config.batch, config.seed, options.rank,
                     options.world_size, options.workers, options.prefetch);

  // Network and optimiser.
  torch::manual_seed(config.seed);
  AirmNet net(config.model);
  // Starting points (a resumed run takes everything from its checkpoint instead).
  if (!options.resume && !config.init_weights.empty()) {
    // The whole network from a weights file of the same architecture (its config may differ in name only).
    AirmNet init = load_weights(config.init_weights);
    ModelConfig a = init->config(), b = config.model;
    a.name = b.name = "";
    a.drop_path = b.drop_path = 0;
    if (a.to_json() != b.to_json()) {
      throw Error(config.init_weights, "weights of the model being trained (" + config.model.to_json().dump() + ")",
                  "another architecture (" + init->config().to_json().dump() + ")");
    }
    load_state_dict(*net, state_dict_of(*init), config.init_weights);
  }
  if (!options.resume && !config.encoder_weights.empty()) load_mit_state_dict(net->mit_, config.encoder_weights);
  net->to(options.device);
  net->train();
  torch::optim::Adam optimizer(
      net->parameters(), torch::optim::AdamOptions(config.optimizer.lr).weight_decay(config.optimizer.weight_decay));

  RunState run;
  if (options.resume) {
    const nlohmann::json state = read_checkpoint(found, net, optimizer, options.device);
    run = RunState::from_json(state, config, options, found);
  } else if (main_rank) {
    write_text_atomically(out / "config.json", config.to_json().dump(2) + "\n");
    write_text_atomically(out / kRunFile, run_options_json(options).dump(2) + "\n");
  }
  loader.seek(run.iteration);
  std::optional<ScopedBatchNormReducer> synced_batch_norm;
  if (options.distributed.sum) synced_batch_norm.emplace(options.distributed.sum);
  if (options.distributed.broadcast_parameters) {
    std::vector<torch::Tensor> parameters = net->parameters();
    options.distributed.broadcast_parameters(parameters);
  }

  RunLogs logs;
  if (main_rank) logs.open(out, options.resume, run.iteration);
  std::optional<ValidationSet> val_set;
  auto validate_now = [&](int64_t iteration) {
    if (!main_rank || options.val_split.empty()) return;
    logs.progress_break();
    if (!val_set) val_set = load_validation_set(config, options);
    const ValidationResult result = run_validation(net, *val_set, options.device, config.bf16,
                                                   [] { return interrupt_signal() != 0; });
    if (result.stopped) return;
    record_validation(logs, run, *val_set, result, iteration, net, out);
  };

  SignalScope signals(options.handle_signals);
  const torch::Tensor cell = cell_for(config.data.crop, config.data.crop, torch::TensorOptions().device(options.device));
  const int64_t first = run.iteration;
  TrainProgress progress(first, config.iterations, options.progress && main_rank);
  logs.progress = &progress;
  const double images_per_step = static_cast<double>(config.batch) * options.world_size;
  int64_t checkpointed = options.resume ? run.iteration : -1;
  auto checkpoint = [&] {
    if (!main_rank || checkpointed == run.iteration) return;
    run.elapsed_seconds += since(run.clock);
    run.clock = Clock::now();
    logs.flush(images_per_step, run.elapsed_seconds);
    write_checkpoint(checkpoint_dir, net, optimizer, run.to_json(config, options, loader.iteration()));
    publish_file(checkpoint_dir / kWeightsFile, out / "last.pt");
    checkpointed = run.iteration;
  };

  TrainResult result;
  result.status = TrainStatus::completed;
  while (run.iteration < config.iterations) {
    const int64_t step = run.iteration + 1;
    const auto step_start = Clock::now();
    if (options.before_step) options.before_step(step, net);
    torch::manual_seed(step_seed(config.seed, options.rank, run.iteration));
    const double lr = config.lr_at(run.iteration);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);

    const auto wait_start = Clock::now();
    const TrainBatch batch = to_device(loader.next(), options.device);
    const double wait = since(wait_start);

    optimizer.zero_grad();
    StepLosses losses = forward_losses(net, config, batch, cell, options.device);
    losses.terms.total.backward();
    std::vector<torch::Tensor> gradients;
    for (const torch::Tensor& p : net->parameters()) {
      if (p.grad().defined()) gradients.push_back(p.grad());
    }
    if (options.distributed.sync_gradients) options.distributed.sync_gradients(gradients);
    const double grad_norm = clip_gradients(gradients, config.optimizer.grad_clip);
    std::string problem = non_finite_problem(losses.computed, grad_norm, net);
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

    IterationRecord record;
    record.iteration = step;
    record.lr = lr;
    record.total = losses.value("total");
    record.cross_entropy = losses.value("cross_entropy");
    record.l1 = losses.value("l1");
    record.l2 = losses.value("l2");
    record.gradient = losses.value("gradient");
    record.affinity = losses.value("affinity");
    record.grad_norm = grad_norm;
    record.wait_seconds = wait;
    record.seconds = since(step_start);
    if (options.after_step) options.after_step(record);
    if (main_rank) {
      logs.add(record, config.log_every, images_per_step, run.elapsed_seconds + since(run.clock));
      progress.update(step, record.total, lr, images_per_step, logs.wait_share());
    }

    const bool last = run.iteration == config.iterations;
    if (!last && config.validate_every > 0 && run.iteration % config.validate_every == 0) validate_now(run.iteration);
    if (run.iteration % config.checkpoint_every == 0) checkpoint();

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

}  // namespace airm
