// Training data loader: sample order, batch assembly, worker threads, and
// the options' JSON form.
#include "airm/train/data_loader.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include <opencv2/imgproc.hpp>

#include "../json_fields.hpp"
#include "../random.hpp"
#include "airm/error.hpp"
#include "airm/model/airm_net.hpp"
#include "airm/model/implicit_function.hpp"
#include "augment.hpp"
#include "queries.hpp"

namespace airm {

using detail::Rng;
using detail::splitmix64;

// ---------------------------------------------------------------- options

void DataOptions::validate(const std::string& source) const {
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& got) {
    throw Error(source, field + ": expected " + expected + ", got " + got);
  };
  auto probability = [&](const char* field, double p) {
    if (!(p >= 0.0 && p <= 1.0)) fail(field, "a probability in [0, 1]", std::to_string(p));
  };
  if (crop < 8) fail("crop", ">= 8", std::to_string(crop));
  if (!(jitter >= 0.0 && jitter < 1.0)) fail("jitter", "in [0, 1)", std::to_string(jitter));
  probability("grayscale", grayscale);
  probability("perturb_share", perturb_share);
  probability("soft_share", soft_share);
  if (!(perturb.min_iou >= 0.0 && perturb.min_iou <= perturb.max_iou && perturb.max_iou <= 1.0)) {
    fail("perturb.min_iou/max_iou", "0 <= min_iou <= max_iou <= 1",
         "[" + std::to_string(perturb.min_iou) + ", " + std::to_string(perturb.max_iou) + ")");
  }
  if (!(perturb.tolerance >= 0.0 && std::isfinite(perturb.tolerance))) {
    fail("perturb.tolerance", "finite and >= 0", std::to_string(perturb.tolerance));
  }
  if (lowres_min < 1) fail("lowres_min", ">= 1", std::to_string(lowres_min));
  if (lowres_max < lowres_min) fail("lowres_max", ">= lowres_min (" + std::to_string(lowres_min) + ")",
                                    std::to_string(lowres_max));
  probability("copy_paste", copy_paste);
  if (long_side_max != 0 || long_side_min != 0) {
    if (long_side_min < crop) fail("long_side_min", ">= crop (" + std::to_string(crop) + ") or 0 with long_side_max 0",
                                   std::to_string(long_side_min));
    if (long_side_max < long_side_min) fail("long_side_max", ">= long_side_min (" + std::to_string(long_side_min) + ")",
                                            std::to_string(long_side_max));
  }
  probability("stored_share", stored_share);
  if (coarse_from != "crop" && coarse_from != "image") fail("coarse_from", "crop or image", "'" + coarse_from + "'");
  probability("boundary_crop", boundary_crop);
  if (query_mode != "all" && query_mode != "boundary") fail("query_mode", "all or boundary", "'" + query_mode + "'");
  if (queries < 1) fail("queries", ">= 1", std::to_string(queries));
  probability("boundary_share", boundary_share);
  if (boundary_band < 1) fail("boundary_band", ">= 1", std::to_string(boundary_band));
  for (const auto& [dataset, times] : repeat) {
    if (times < 0 || times > 100) fail("repeat." + dataset, "in [0, 100]", std::to_string(times));
  }
}

nlohmann::json DataOptions::to_json() const {
  return {{"crop", crop},
          {"flips", flips},
          {"jitter", jitter},
          {"grayscale", grayscale},
          {"perturb_share", perturb_share},
          {"perturb", {{"min_iou", perturb.min_iou}, {"max_iou", perturb.max_iou}, {"tolerance", perturb.tolerance}}},
          {"lowres_min", lowres_min},
          {"lowres_max", lowres_max},
          {"soft_share", soft_share},
          {"copy_paste", copy_paste},
          {"long_side_min", long_side_min},
          {"long_side_max", long_side_max},
          {"coarse_from", coarse_from},
          {"stored_share", stored_share},
          {"coarse_dir", coarse_dir},
          {"boundary_crop", boundary_crop},
          {"query_mode", query_mode},
          {"queries", queries},
          {"boundary_share", boundary_share},
          {"boundary_band", boundary_band},
          {"repeat", repeat}};
}

DataOptions DataOptions::from_json(const nlohmann::json& json, const std::string& source) {
  DataOptions o;
  const nlohmann::json known = o.to_json();
  json_fields::require_known_keys(json, known, "data option", source);
  json_fields::read(json, "crop", o.crop, source);
  json_fields::read(json, "flips", o.flips, source);
  json_fields::read(json, "jitter", o.jitter, source);
  json_fields::read(json, "grayscale", o.grayscale, source);
  json_fields::read(json, "perturb_share", o.perturb_share, source);
  if (auto it = json.find("perturb"); it != json.end()) {
    json_fields::require_known_keys(*it, known["perturb"], "data option perturb", source);
    json_fields::read(*it, "min_iou", o.perturb.min_iou, source, "perturb.");
    json_fields::read(*it, "max_iou", o.perturb.max_iou, source, "perturb.");
    json_fields::read(*it, "tolerance", o.perturb.tolerance, source, "perturb.");
  }
  json_fields::read(json, "lowres_min", o.lowres_min, source);
  json_fields::read(json, "lowres_max", o.lowres_max, source);
  json_fields::read(json, "soft_share", o.soft_share, source);
  json_fields::read(json, "copy_paste", o.copy_paste, source);
  json_fields::read(json, "long_side_min", o.long_side_min, source);
  json_fields::read(json, "long_side_max", o.long_side_max, source);
  json_fields::read(json, "coarse_from", o.coarse_from, source);
  json_fields::read(json, "stored_share", o.stored_share, source);
  json_fields::read(json, "coarse_dir", o.coarse_dir, source);
  json_fields::read(json, "boundary_crop", o.boundary_crop, source);
  json_fields::read(json, "query_mode", o.query_mode, source);
  json_fields::read(json, "queries", o.queries, source);
  json_fields::read(json, "boundary_share", o.boundary_share, source);
  json_fields::read(json, "boundary_band", o.boundary_band, source);
  json_fields::read(json, "repeat", o.repeat, source);
  o.validate(source);
  return o;
}

// ---------------------------------------------------------------- loader

namespace {

// coarse_dir/DATASET/NAME.png for every sample without a stored coarse mask.
void attach_stored_coarse(std::vector<Sample>& samples, const std::filesystem::path& dir) {
  std::size_t found = 0;
  for (Sample& sample : samples) {
    if (!sample.coarse.empty()) continue;
    const std::filesystem::path p = dir / sample.dataset / (sample.name + ".png");
    if (std::filesystem::is_regular_file(p)) {
      sample.coarse = p;
      ++found;
    }
  }
  if (found == 0) {
    throw Error(dir.string(), "coarse masks named DATASET/NAME.png for the training samples (e.g. " +
                                  (dir / samples.front().dataset / (samples.front().name + ".png")).string() + ")",
                "none");
  }
}

// Each sample `repeat[dataset]` times (1 when not named), in the original order.
std::vector<Sample> repeat_samples(const std::vector<Sample>& samples, const std::map<std::string, int>& repeat) {
  for (const auto& entry : repeat) {  // (a structured binding cannot be captured in C++17)
    const std::string& dataset = entry.first;
    const bool present =
        std::any_of(samples.begin(), samples.end(), [&](const Sample& x) { return x.dataset == dataset; });
    if (!present) {
      throw Error("TrainLoader", "repeat." + dataset + ": expected a dataset of the training samples, got none by that name");
    }
  }
  std::vector<Sample> out;
  for (const Sample& sample : samples) {
    const auto it = repeat.find(sample.dataset);
    const int times = it == repeat.end() ? 1 : it->second;
    for (int i = 0; i < times; ++i) out.push_back(sample);
  }
  if (out.empty()) throw Error("TrainLoader", "repeat: expected at least one sample left, got none (every dataset at 0)");
  return out;
}

}  // namespace

struct TrainLoader::State {
  // Fixed at construction.
  std::vector<Sample> samples;
  DataOptions options;
  int batch_size = 1;
  std::uint64_t seed = 0;
  int rank = 0;
  int world_size = 1;
  int workers = 0;
  int prefetch = 1;
  // Slot of this rank's image s in the global batch of world_size * batch_size.
  int64_t slot(int s) const { return static_cast<int64_t>(rank) * batch_size + s; }
  // Position of that image in the stream of all ranks' samples.
  int64_t global_position(int64_t iteration, int s) const {
    return iteration * batch_size * world_size + slot(s);
  }

  // Shared with the workers, under `mutex`.
  struct Result {
    TrainBatch batch;
    std::exception_ptr error;
  };
  mutable std::mutex mutex;
  std::condition_variable work_cv;   // workers wait for room or stop
  std::condition_variable ready_cv;  // next() waits for its batch
  bool stop = false;
  bool active = false;
  int64_t consumer = 0;    // the next batch next() returns
  int64_t produce = 0;     // the next batch a worker starts
  std::uint64_t generation = 0;  // bumped by seek(): older results are dropped
  std::map<int64_t, Result> ready;
  LoaderStats stats;
  std::vector<std::thread> threads;

  std::vector<int64_t> permutation(int64_t epoch) const;
  std::vector<int64_t> batch_samples(int64_t iteration) const;
  TrainBatch build(int64_t iteration) const;
  void work();
};

std::vector<int64_t> TrainLoader::State::permutation(int64_t epoch) const {
  std::vector<int64_t> perm(samples.size());
  std::iota(perm.begin(), perm.end(), int64_t{0});
  Rng rng(splitmix64(splitmix64(seed ^ 0x6A09E667F3BCC909ULL) ^ static_cast<std::uint64_t>(epoch)));
  for (std::size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
  return perm;
}

std::vector<int64_t> TrainLoader::State::batch_samples(int64_t iteration) const {
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(batch_size));
  int64_t cached_epoch = -1;
  std::vector<int64_t> perm;
  const int64_t n = static_cast<int64_t>(samples.size());
  for (int s = 0; s < batch_size; ++s) {
    const int64_t g = global_position(iteration, s);
    const int64_t epoch = g / n;
    if (epoch != cached_epoch) {
      perm = permutation(epoch);
      cached_epoch = epoch;
    }
    out.push_back(perm[static_cast<std::size_t>(g % n)]);
  }
  return out;
}

TrainBatch TrainLoader::State::build(int64_t iteration) const {
  TrainBatch batch;
  batch.iteration = iteration;
  batch.samples = batch_samples(iteration);
  std::vector<torch::Tensor> rgb, gt, coarse, coord, target;
  const int64_t S = options.crop;
  for (int s = 0; s < batch_size; ++s) {
    std::uint64_t h = splitmix64(seed ^ 0xBB67AE8584CAA73BULL);
    h = splitmix64(h ^ static_cast<std::uint64_t>(iteration));
    h = splitmix64(h ^ static_cast<std::uint64_t>(slot(s)));
    Rng rng(h);
    Rng query_rng = rng.split();
    const detail::Crop crop = detail::make_crop(samples, static_cast<std::size_t>(batch.samples[s]), options, rng.split());
    rgb.push_back(torch::from_blob(crop.rgb.data, {S, S, 3}, torch::kFloat32).permute({2, 0, 1}).clone());
    gt.push_back(torch::from_blob(crop.gt.data, {1, S, S}, torch::kUInt8).to(torch::kFloat32));
    coarse.push_back(torch::from_blob(crop.coarse.data, {1, S, S}, torch::kUInt8).to(torch::kFloat32).div_(255.0));
    if (options.query_mode == "boundary") {
      cv::Mat coarse01;
      cv::threshold(crop.coarse, coarse01, 127, 1, cv::THRESH_BINARY);
      const detail::QuerySet q = detail::boundary_queries(crop.gt, coarse01, options.queries,
                                                          options.boundary_share, options.boundary_band, query_rng);
      coord.push_back(q.coord);
      target.push_back(q.target);
    }
  }
  batch.gt = torch::stack(gt);
  batch.coarse = torch::stack(coarse);
  batch.input = normalize_input(torch::stack(rgb), batch.coarse);
  if (options.query_mode == "boundary") {
    batch.coord = torch::stack(coord);
    batch.target = torch::stack(target);
  } else {  // "all": every pixel centre, row-major, the same for every image
    batch.coord = make_pixel_grid(S, S, torch::kFloat32).unsqueeze(0).expand({batch_size, S * S, 2}).contiguous();
    batch.target = batch.gt.flatten(1).clone();
  }
  return batch;
}

void TrainLoader::State::work() {
  std::unique_lock<std::mutex> lock(mutex);
  for (;;) {
    work_cv.wait(lock, [&] { return stop || (active && produce < consumer + prefetch); });
    if (stop) return;
    const int64_t iteration = produce++;
    const std::uint64_t gen = generation;
    lock.unlock();
    Result result;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      result.batch = build(iteration);
    } catch (...) {
      result.error = std::current_exception();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    lock.lock();
    stats.produce_seconds += seconds;
    if (gen == generation) {
      ready.emplace(iteration, std::move(result));
      ready_cv.notify_all();
    } else {
      // Made before a seek(): dropped (destroyed outside the lock).
      lock.unlock();
      result = Result();
      lock.lock();
    }
  }
}

TrainLoader::TrainLoader(std::vector<Sample> samples, DataOptions options, int batch_size, std::uint64_t seed,
                         int rank, int world_size, int workers, int prefetch)
    : state_(std::make_unique<State>()) {
  options.validate("TrainLoader");
  if (samples.empty()) throw Error("TrainLoader", "no training samples");
  if (batch_size < 1) throw Error("TrainLoader", "batch_size: expected >= 1, got " + std::to_string(batch_size));
  if (world_size < 1) throw Error("TrainLoader", "world_size: expected >= 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size) {
    throw Error("TrainLoader", "rank: expected in [0, " + std::to_string(world_size) + "), got " + std::to_string(rank));
  }
  if (workers < 0) throw Error("TrainLoader", "workers: expected >= 0, got " + std::to_string(workers));
  if (prefetch < 1) throw Error("TrainLoader", "prefetch: expected >= 1, got " + std::to_string(prefetch));
  State& s = *state_;
  s.samples = std::move(samples);
  s.options = std::move(options);
  s.batch_size = batch_size;
  s.seed = seed;
  s.rank = rank;
  s.world_size = world_size;
  s.workers = workers;
  s.prefetch = prefetch;
  if (!s.options.coarse_dir.empty()) attach_stored_coarse(s.samples, s.options.coarse_dir);
  if (!s.options.repeat.empty()) s.samples = repeat_samples(s.samples, s.options.repeat);
  for (int i = 0; i < workers; ++i) s.threads.emplace_back([&s] { s.work(); });
}

TrainLoader::~TrainLoader() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->work_cv.notify_all();
  state_->ready_cv.notify_all();
  for (auto& t : state_->threads) t.join();
}

TrainBatch TrainLoader::next() {
  State& s = *state_;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (s.workers == 0) {
    int64_t iteration;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      iteration = s.consumer;
    }
    TrainBatch batch = s.build(iteration);
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stats.wait_seconds += elapsed();
    s.stats.produce_seconds += elapsed();
    ++s.stats.batches;
    ++s.consumer;
    return batch;
  }
  std::unique_lock<std::mutex> lock(s.mutex);
  if (!s.active) {
    s.active = true;
    s.work_cv.notify_all();
  }
  s.ready_cv.wait(lock, [&] { return s.stop || s.ready.count(s.consumer) > 0; });
  s.stats.wait_seconds += elapsed();
  if (s.stop) throw Error("TrainLoader", "next: the loader is being destroyed");
  auto it = s.ready.find(s.consumer);
  if (it->second.error) std::rethrow_exception(it->second.error);
  TrainBatch batch = std::move(it->second.batch);
  s.ready.erase(it);
  ++s.consumer;
  ++s.stats.batches;
  s.work_cv.notify_all();
  return batch;
}

int64_t TrainLoader::iteration() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->consumer;
}

void TrainLoader::seek(int64_t iteration) {
  if (iteration < 0) throw Error("TrainLoader", "seek: expected an iteration >= 0, got " + std::to_string(iteration));
  std::map<int64_t, State::Result> dropped;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    ++state_->generation;
    dropped.swap(state_->ready);
    state_->consumer = iteration;
    state_->produce = iteration;
    state_->active = true;
  }
  state_->work_cv.notify_all();
}

LoaderStats TrainLoader::stats() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->stats;
}

std::size_t TrainLoader::size() const { return state_->samples.size(); }

TrainBatch TrainLoader::make_batch(int64_t iteration) const {
  if (iteration < 0) throw Error("TrainLoader", "make_batch: expected an iteration >= 0, got " + std::to_string(iteration));
  return state_->build(iteration);
}

std::vector<int64_t> TrainLoader::batch_samples(int64_t iteration) const {
  if (iteration < 0) throw Error("TrainLoader", "batch_samples: expected an iteration >= 0, got " + std::to_string(iteration));
  return state_->batch_samples(iteration);
}

const Sample& TrainLoader::sample(int64_t index) const {
  if (index < 0 || index >= static_cast<int64_t>(state_->samples.size())) {
    throw Error("TrainLoader", "sample index: expected in [0, " + std::to_string(state_->samples.size()) + "), got " +
                                   std::to_string(index));
  }
  return state_->samples[static_cast<std::size_t>(index)];
}

int64_t TrainLoader::samples_per_epoch() const { return static_cast<int64_t>(state_->samples.size()); }

int64_t TrainLoader::epoch_of(int64_t iteration) const {
  return state_->global_position(iteration, 0) / static_cast<int64_t>(state_->samples.size());
}

const DataOptions& TrainLoader::options() const { return state_->options; }

int TrainLoader::batch_size() const { return state_->batch_size; }

}  // namespace airm
