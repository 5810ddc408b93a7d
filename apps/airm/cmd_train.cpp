// airm train: train the refiner (--task refine) or the coarse segmenter
// (--task segment); see include/airm/train/trainer.hpp for what the run
// folder holds. Exit codes: 0 done, 1 failure (including a
// loss or gradient that became non-finite), 2 usage error, 128 + signal
// (130 SIGINT, 143 SIGTERM) when interrupted after writing a checkpoint.
#include <cmath>
#include <cstdio>
#include <memory>

#include <torch/torch.h>

#include "airm/error.hpp"
#include "airm/parallel.hpp"
#include "airm/train/distributed.hpp"
#include "airm/train/segmenter_train_config.hpp"
#include "airm/train/segmenter_trainer.hpp"
#include "airm/train/train_config.hpp"
#include "airm/train/trainer.hpp"
#include "commands.hpp"
#include "local_workers.hpp"

namespace airm::cli {
namespace fs = std::filesystem;
namespace {

struct TrainArgs {
  std::string task;
  std::string config;
  std::string data;
  std::string split = "train";
  std::string val = "val";
  std::string splits_file;
  std::string out;
  bool resume = false;
  bool no_val = false;
  int threads = 0;
  int workers = 2;
  int64_t iterations = 0;
  int val_limit = 0;
  bool bf16 = false;
  std::string device = "cpu";
  bool quiet = false;
  // Data parallelism.
  int world_size = 1;
  int rank = 0;
  std::string master = "127.0.0.1:29500";
  std::string interface;
  int local_workers = 1;
  double dist_timeout = 1800;
  int64_t stop_after = 0;
  CLI::App* sub = nullptr;
};


int run_train(TrainArgs& args) {
  auto given = [&](const char* flag) { return args.sub->count(flag) > 0; };
  if (args.local_workers < 1) throw UsageError("expected --local-workers >= 1, got " + std::to_string(args.local_workers));
  if (args.local_workers > 1) {
    if (given("--world-size") || given("--rank") || given("--master")) {
      throw UsageError("--local-workers starts its own group: leave out --world-size, --rank and --master");
    }
    if (!distributed_available()) throw UsageError("--local-workers: this build has no c10d (AIRM_WITH_C10D=OFF)");
    const int threads = std::max(1, resolve_threads(args.threads) / args.local_workers);
    const std::vector<std::string> all = command_line();
    const std::vector<std::string> rest = without_options(
        std::vector<std::string>(all.begin() + 1, all.end()), {"--local-workers", "--threads", "--quiet"}, {"--quiet"});
    return run_local_workers(args.local_workers, threads, rest);
  }
  if (args.world_size < 1) throw UsageError("expected --world-size >= 1, got " + std::to_string(args.world_size));
  if (args.rank < 0 || args.rank >= args.world_size) {
    throw UsageError("expected --rank in [0, " + std::to_string(args.world_size) + "), got " + std::to_string(args.rank));
  }
  if (!(args.dist_timeout > 0)) throw UsageError("expected --dist-timeout > 0 seconds");
  const fs::path out = args.out;
  TrainerOptions options;
  options.out = out;
  options.resume = args.resume;
  // On --resume, what is not given comes from the run folder.
  nlohmann::json run;
  if (args.resume) {
    run = read_run_options(out);
    // Killed before its first checkpoint: nothing to continue, so the run starts again from step 0 with its
    // own config and options (what an uninterrupted run would have done; its logs are rewritten).
    if (!has_checkpoint(out)) {
      std::fprintf(stderr, "%s: no checkpoint yet (stopped before the first); starting the run again from step 0\n",
                   out.string().c_str());
      options.resume = false;
    }
  }
  auto from_run = [&](const char* key, const std::string& fallback) {
    return run.contains(key) ? run.at(key).get<std::string>() : fallback;
  };
  options.data = given("--data") ? args.data : from_run("data", "");
  options.split = given("--split") ? args.split : from_run("split", args.split);
  options.val_split = args.no_val ? "" : given("--val") ? args.val : from_run("val_split", args.val);
  options.splits_file = given("--splits") ? args.splits_file : from_run("splits_file", "");
  if (options.data.empty()) throw UsageError("expected --data DIR (it may be left out only with --resume)");

  fs::path config_path = args.config;
  if (config_path.empty()) {
    if (!args.resume) throw UsageError("expected --config FILE (it may be left out only with --resume)");
    config_path = out / "config.json";
  }
  // The task is the config's ("task": "segment", else the refiner's); --task must agree with it.
  const std::string task = read_training_task(config_path);
  if (task != "refine" && task != "segment") {
    throw Error(config_path.string(), "task: expected \"refine\" or \"segment\", got \"" + task + "\"");
  }
  if (!args.task.empty() && args.task != task) {
    throw UsageError("--task " + args.task + ": " + config_path.string() + " is a training config for --task " + task);
  }
  TrainConfig refine_config;
  SegmenterTrainConfig segment_config;
  const bool segment = task == "segment";
  if (segment) {
    segment_config = SegmenterTrainConfig::load(config_path);
  } else {
    refine_config = TrainConfig::load(config_path);
  }
  TrainSchedule& config = segment ? static_cast<TrainSchedule&>(segment_config) : refine_config;
  const std::string model_name = segment ? segment_config.model.name : refine_config.model.name;
  if (given("--iterations")) {
    if (args.iterations < 1) throw UsageError("expected --iterations >= 1, got " + std::to_string(args.iterations));
    config.iterations = args.iterations;
  }
  if (given("--val-limit")) {
    if (args.val_limit < 0) throw UsageError("expected --val-limit >= 0, got " + std::to_string(args.val_limit));
    config.val_limit = args.val_limit;
  }
  if (args.bf16) config.bf16 = true;
  if (segment) {
    segment_config.validate(config_path.string());
  } else {
    refine_config.validate(config_path.string());
  }

  options.threads = resolve_threads(args.threads);
  torch::set_num_threads(options.threads);
  options.workers = args.workers;
  options.device = parse_device(args.device);
  options.progress = !args.quiet;
  options.handle_signals = true;
  if (args.stop_after < 0) throw UsageError("expected --stop-after >= 0, got " + std::to_string(args.stop_after));
  options.stop_after = args.stop_after;
  options.rank = args.rank;
  options.world_size = args.world_size;
  const bool main_rank = args.rank == 0;
  std::unique_ptr<DistributedGroup> group;
  if (args.world_size > 1) {
    DistributedOptions dist;
    dist.world_size = args.world_size;
    dist.rank = args.rank;
    dist.master = args.master;
    dist.interface = args.interface;
    dist.timeout = std::chrono::milliseconds(static_cast<int64_t>(args.dist_timeout * 1000));
    try {
      dist.validate();
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    std::fprintf(stderr, "rank %d of %d: joining the group at %s\n", args.rank, args.world_size, args.master.c_str());
    group = std::make_unique<DistributedGroup>(dist);
    options.distributed = group->hooks();
  }

  if (main_rank) {
    std::fprintf(stderr, "%s %s: %s %s, %lld iterations of batch %d, %s, %d thread(s), %d loader worker(s)\n",
                 options.resume ? "resuming" : "training", out.string().c_str(), segment ? "segmenter" : "model",
                 model_name.c_str(),
                 static_cast<long long>(config.iterations), config.batch, config.bf16 ? "bf16 autocast" : "fp32",
                 options.threads, options.workers);
    if (args.world_size > 1) {
      std::fprintf(stderr, "data parallel: %d ranks, global batch %d\n", args.world_size, config.batch * args.world_size);
    }
  }
  const TrainResult result = segment ? train_segmenter(segment_config, options) : train(refine_config, options);
  if (!main_rank) return result.status == TrainStatus::interrupted ? 128 + result.signal : 0;

  std::printf("%s at iteration %lld of %lld in %.0f s\n",
              result.status == TrainStatus::completed ? "finished"
              : result.status == TrainStatus::stopped ? "stopped (--stop-after)"
                                                      : "interrupted",
              static_cast<long long>(result.iteration), static_cast<long long>(config.iterations), result.seconds);
  if (std::isfinite(result.best_mba)) {
    std::printf("best validation mBA %.2f at iteration %lld: %s\n", result.best_mba,
                static_cast<long long>(result.best_iteration), (out / "best.pt").string().c_str());
  }
  std::printf("latest weights: %s\n", (out / "last.pt").string().c_str());
  if (result.status == TrainStatus::stopped) {
    std::printf("continue with: airm train --out %s --resume\n", out.string().c_str());
  }
  if (result.status == TrainStatus::interrupted) {
    std::printf("continue with: airm train --out %s --resume\n", out.string().c_str());
    return 128 + result.signal;
  }
  return 0;
}

}  // namespace

Runner add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand("train", "Train the refiner or the coarse segmenter (checkpoints resume exactly)");
  args->sub = sub;
  sub->add_option("--task", args->task,
                  "refine or segment (default: the config's \"task\"; configs/segmenter/train_*.json are segment)")
      ->check(CLI::IsMember({"refine", "segment"}));
  sub->add_option("--config", args->config, "Training config (configs/train/*.json); on --resume: OUT/config.json");
  sub->add_option("--data", args->data, "Dataset root (e.g. ../shared/data); on --resume: the run's");
  sub->add_option("--split", args->split, "Named split of DATA/SPLITS.md to train on")->capture_default_str();
  sub->add_option("--val", args->val, "Named split to validate on")->capture_default_str();
  sub->add_flag("--no-val", args->no_val, "No validation (no best.pt)");
  sub->add_option("--splits", args->splits_file, "Another splits file");
  sub->add_option("--out", args->out, "Run folder (new, or the run to --resume)")->required();
  sub->add_flag("--resume", args->resume, "Continue the run in --out from its checkpoint");
  sub->add_option("--iterations", args->iterations, "Override the config's iteration count (lr milestones scale)");
  sub->add_option("--val-limit", args->val_limit, "Override the config's validation image count (0: all)");
  sub->add_flag("--bf16", args->bf16, "bf16 autocast for the queries of the implicit function");
  sub->add_option("--threads", args->threads, "Torch threads (0: all cores)")->capture_default_str();
  sub->add_option("--workers", args->workers, "Data loader threads (0: load on the training thread)")
      ->capture_default_str();
  sub->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  sub->add_flag("--quiet", args->quiet, "No progress line");
  sub->add_option("--stop-after", args->stop_after,
                  "Checkpoint and stop once this many iterations are done (resume later; 0: run to the end)");
  sub->add_option("--world-size", args->world_size, "Data parallel: number of processes (ranks) in all")
      ->capture_default_str();
  sub->add_option("--rank", args->rank, "Data parallel: this process's rank (0 runs the store and writes the run)")
      ->capture_default_str();
  sub->add_option("--master", args->master, "Data parallel: HOST:PORT of rank 0's rendezvous store")
      ->capture_default_str();
  sub->add_option("--gloo-interface", args->interface, "Data parallel: network interface for Gloo (e.g. eth0)");
  sub->add_option("--dist-timeout", args->dist_timeout, "Data parallel: seconds to wait for the other ranks")
      ->capture_default_str();
  sub->add_option("--local-workers", args->local_workers,
                  "Start this many ranks on this machine (threads split between them)")
      ->capture_default_str();
  return [args] { return run_train(*args); };
}

}  // namespace airm::cli
