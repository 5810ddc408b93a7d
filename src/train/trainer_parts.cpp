#include "trainer_parts.hpp"

#include <cmath>
#include <csignal>
#include <cstdio>
#include <set>

#include "airm/atomic_file.hpp"
#include "airm/dataset.hpp"
#include "airm/error.hpp"
#include "airm/train/data_loader.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/parallel.hpp"
#include "../json_fields.hpp"
#include "checkpoint.hpp"

namespace airm::train_detail {
namespace fs = std::filesystem;
namespace {

constexpr int kStateFormat = 1;

// Keys of the training config that may change when resuming: they do not
// change what is learnt, only how long and how often it is recorded.
const std::set<std::string> kResumeMayChange{"iterations", "checkpoint_every", "validate_every", "val_limit",
                                             "log_every"};

double number_or_nan(const nlohmann::json& json) { return json.is_number() ? json.get<double>() : NAN; }

const Summary* pooled(const std::vector<Summary>& summaries) {
  for (const Summary& s : summaries) {
    if (s.dataset == "all") return &s;
  }
  return nullptr;
}

std::string cell(double value) { return std::isnan(value) ? std::string() : format_number(value); }

// The IterationRecord field of a loss term.
double IterationRecord::*term_field(const std::string& name) {
  static const std::pair<const char*, double IterationRecord::*> kTerms[] = {
      {"cross_entropy", &IterationRecord::cross_entropy}, {"l1", &IterationRecord::l1},
      {"l2", &IterationRecord::l2},                       {"gradient", &IterationRecord::gradient},
      {"affinity", &IterationRecord::affinity},           {"dice", &IterationRecord::dice}};
  for (const auto& [term, field] : kTerms) {
    if (name == term) return field;
  }
  throw Error("", "a loss term of the training log", "'" + name + "'");
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

volatile std::sig_atomic_t g_signal = 0;
void on_interrupt(int signal) { g_signal = signal; }
constexpr int kSignals[2] = {SIGINT, SIGTERM};

}  // namespace

void check_options(const TrainerOptions& options) {
  if (options.world_size < 1) throw Error("", "world size >= 1", std::to_string(options.world_size));
  if (options.rank < 0 || options.rank >= options.world_size) {
    throw Error("", "a rank in [0, " + std::to_string(options.world_size) + ")", std::to_string(options.rank));
  }
  if (options.out.empty()) throw Error("", "an output folder", "none");
  if (options.data.empty()) throw Error("", "a training data folder", "none");
  if (options.workers < 0) throw Error("", "workers >= 0", std::to_string(options.workers));
  if (options.prefetch < 1) throw Error("", "prefetch >= 1", std::to_string(options.prefetch));
  if (options.stop_after < 0) throw Error("", "stop_after >= 0", std::to_string(options.stop_after));
}

nlohmann::json run_options_json(const TrainerOptions& options) {
  return {{"data", options.data.string()},
          {"split", options.split},
          {"val_split", options.val_split},
          {"splits_file", options.splits_file.string()},
          {"world_size", options.world_size},
          {"device", options.device.str()}};
}

nlohmann::json RunState::to_json(const TrainSchedule& schedule, const nlohmann::json& config,
                                 const TrainerOptions& options, int64_t loader_iteration) const {
  auto finite_or_null = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  return {{"format", kStateFormat},
          {"iteration", iteration},
          {"loader_iteration", loader_iteration},
          {"schedule",
           {{"iterations", schedule.iterations},
            {"milestones", schedule.milestone_iterations()},
            {"gamma", schedule.optimizer.gamma},
            {"next_lr", schedule.lr_at(iteration)}}},
          {"rng",
           {{"seed", schedule.seed},
            {"scheme", "before each step, torch::manual_seed(splitmix64 mix of seed, rank, completed steps)"}}},
          {"best", {{"mba", finite_or_null(best_mba)}, {"iou", finite_or_null(best_iou)}, {"iteration", best_iteration}}},
          {"elapsed_seconds", elapsed_seconds},
          {"world_size", options.world_size},
          {"config", config}};
}

RunState RunState::from_json(const nlohmann::json& state, const TrainSchedule& schedule, const nlohmann::json& config,
                             const TrainerOptions& options, const fs::path& source) {
  const std::string file = (source / kStateFile).string();
  RunState run;
  try {
    if (state.at("format").get<int>() != kStateFormat) {
      throw Error(file, "checkpoint state format " + std::to_string(kStateFormat), state.at("format").dump());
    }
    run.iteration = state.at("iteration").get<int64_t>();
    run.best_mba = number_or_nan(state.at("best").at("mba"));
    run.best_iou = number_or_nan(state.at("best").at("iou"));
    run.best_iteration = state.at("best").at("iteration").get<int64_t>();
    run.elapsed_seconds = state.at("elapsed_seconds").get<double>();
    const int world_size = state.at("world_size").get<int>();
    if (world_size != options.world_size) {
      throw Error(file, "a run of world size " + std::to_string(options.world_size),
                  "world size " + std::to_string(world_size) + " (the data order depends on it)");
    }
    const nlohmann::json& saved = state.at("config");
    std::string differ;
    for (const auto& item : config.items()) {
      if (kResumeMayChange.count(item.key())) continue;
      if (!saved.contains(item.key())) {
        differ += " " + item.key();
        continue;
      }
      // Data options gain keys over time (off by default): read the saved
      // ones as a config file would be, so a run started before a new
      // option existed resumes with it off.
      const nlohmann::json was = item.key() == "data" && saved.at("data").is_object()
                                     ? DataOptions::from_json(saved.at("data"), file).to_json()
                                     : saved.at(item.key());
      if (was != item.value()) differ += " " + item.key();
    }
    if (!differ.empty()) {
      throw Error(file, "the training config the run was started with",
                  "a config that differs in:" + differ + " (start a new --out for a new config)");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(file, std::string("not a complete checkpoint state (") + e.what() + ")");
  }
  if (run.iteration < 0 || run.iteration > schedule.iterations) {
    throw Error(file, "an iteration in [0, " + std::to_string(schedule.iterations) + "]",
                std::to_string(run.iteration));
  }
  return run;
}

int64_t checkpoint_iteration(const fs::path& dir) {
  try {
    return json_fields::read_file(dir / kStateFile).at("iteration").get<int64_t>();
  } catch (const std::exception&) {
    return -1;
  }
}

void start_from_weights(torch::nn::Module& net, const nlohmann::json& config, const torch::nn::Module& init,
                        const nlohmann::json& init_config, const std::vector<std::string>& may_differ,
                        const std::string& file) {
  nlohmann::json a = config, b = init_config;
  for (const std::string& key : may_differ) {
    a.erase(key);
    b.erase(key);
  }
  if (a != b) {
    throw Error(file, "weights of the network being trained (" + config.dump() + ")",
                "another architecture (" + init_config.dump() + ")");
  }
  load_state_dict(net, state_dict_of(init), file);
}

IterationRecord make_record(int64_t iteration, double lr, const NamedValues& losses) {
  IterationRecord record;
  record.iteration = iteration;
  record.lr = lr;
  for (const auto& [name, value] : losses) {
    if (name == "total") {
      record.total = value;
    } else {
      record.*term_field(name) = value;
    }
  }
  return record;
}

void RunLogs::open(const fs::path& out, bool resume, int64_t iteration, const std::vector<std::string>& loss_terms) {
  std::vector<std::string> header{"iteration", "total"};
  terms_.clear();
  for (const std::string& term : loss_terms) {
    header.push_back(term);
    terms_.push_back(term_field(term));
  }
  for (const char* column : {"grad_norm", "lr", "it_per_s", "images_per_s", "loader_wait_s", "elapsed_s"}) {
    header.emplace_back(column);
  }
  log_.open(out / "log.csv", header, resume, iteration);
  val_.open(out / "val.csv", {"iteration", "kind", "dataset", "images", "iou", "mean_iou", "mba", "mba_images", "seconds"},
            resume, iteration);
  auto columns = read_csv_columns(out / "val.csv");
  for (std::size_t i = 0; i < columns["kind"].size(); ++i) {
    if (columns["kind"][i] == "coarse" && columns["dataset"][i] == "all") {
      coarse_logged_.insert(std::stoi(columns["images"][i]));
    }
  }
}

void RunLogs::add(const IterationRecord& record, int64_t log_every, double images_per_step, double elapsed_seconds) {
  pending_.push_back(record);
  if (record.iteration % log_every == 0) flush(images_per_step, elapsed_seconds);
}

void RunLogs::flush(double images_per_step, double elapsed_seconds) {
  if (pending_.empty()) return;
  const IterationRecord& record = pending_.back();
  const double n = static_cast<double>(pending_.size());
  double seconds = 0, wait = 0;
  auto mean = [&](double IterationRecord::*field) {
    double sum = 0;
    for (const auto& r : pending_) sum += r.*field;
    return sum / n;
  };
  for (const auto& r : pending_) {
    seconds += r.seconds;
    wait += r.wait_seconds;
  }
  const double rate = seconds > 0 ? n / seconds : NAN;
  wait_share_ = seconds > 0 ? wait / seconds : 0;
  std::vector<std::string> row{std::to_string(record.iteration), cell(mean(&IterationRecord::total))};
  for (double IterationRecord::*term : terms_) row.push_back(cell(mean(term)));
  for (const std::string& value :
       {cell(mean(&IterationRecord::grad_norm)), format_number(record.lr), format_number(rate),
        format_number(rate * images_per_step), format_number(wait), format_number(elapsed_seconds)}) {
    row.push_back(value);
  }
  log_.row(row);
  pending_.clear();
}

void RunLogs::add_validation(int64_t iteration, const std::string& kind, const std::vector<Summary>& summaries,
                             double seconds) {
  for (const Summary& s : summaries) {
    val_.row({std::to_string(iteration), kind, s.dataset, std::to_string(s.images), format_number(s.iou),
              format_number(s.mean_iou), format_number(s.mba), std::to_string(s.mba_images), format_number(seconds)});
  }
  const Summary* all = pooled(summaries);
  if (kind == "coarse" && all) coarse_logged_.insert(all->images);
}

ValidationSet load_validation_set(const TrainSchedule& schedule, const TrainerOptions& options) {
  const Discovery discovery = discover_split(options.data, options.val_split, options.splits_file);
  if (discovery.samples.empty()) throw Error(options.data.string(), "validation images", "none");
  ValidationSet set = prepare_validation(discovery.samples, schedule.val_limit, resolve_threads(options.threads));
  std::fprintf(stderr, "validation: %zu of %zu image(s) of split '%s', coarse masks: perturb, seed %llu\n",
               set.samples.size(), discovery.samples.size(), options.val_split.c_str(),
               static_cast<unsigned long long>(kValidationCoarseSeed));
  return set;
}

void record_validation(RunLogs& logs, RunState& run, const TaskValidation& result, int64_t iteration,
                       const std::function<void(const fs::path&)>& save_weights, const fs::path& out) {
  const Summary* all = pooled(result.summaries);
  if (!all) return;
  const Summary* coarse = pooled(result.input_summaries);
  if (coarse && !logs.coarse_logged(coarse->images)) logs.add_validation(iteration, "coarse", result.input_summaries, 0);
  logs.add_validation(iteration, coarse ? "refined" : "predicted", result.summaries, result.seconds);
  std::fprintf(stderr, "validation at %lld: IoU %.2f mBA %.2f", static_cast<long long>(iteration), all->iou, all->mba);
  if (coarse) std::fprintf(stderr, " (coarse input: IoU %.2f mBA %.2f)", coarse->iou, coarse->mba);
  std::fprintf(stderr, ", %d image(s) in %.1f s\n", result.images, result.seconds);
  const bool better = !std::isfinite(run.best_mba) || all->mba > run.best_mba ||
                      (all->mba == run.best_mba && all->iou > run.best_iou);
  if (better && std::isfinite(all->mba)) {
    save_weights(out / "best.pt");
    nlohmann::json rows = nlohmann::json::array();
    for (const Summary& s : result.summaries) {
      rows.push_back({{"dataset", s.dataset}, {"images", s.images}, {"iou", s.iou}, {"mba", s.mba}});
    }
    nlohmann::json best = {{"iteration", iteration},
                           {"criterion", "pooled mBA of the validation images, then IoU"},
                           {"iou", all->iou},
                           {"mba", all->mba},
                           {"summaries", rows}};
    if (coarse) best["coarse"] = {{"iou", coarse->iou}, {"mba", coarse->mba}};
    write_text_atomically(out / "best.json", best.dump(2) + "\n");
    run.best_mba = all->mba;
    run.best_iou = all->iou;
    run.best_iteration = iteration;
  }
  write_curves(out);
}

SignalScope::SignalScope(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;  // a second signal acts as usual
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &action, &previous_[i]);
}

SignalScope::~SignalScope() {
  if (!enabled_) return;
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  g_signal = 0;
}

int interrupt_signal() { return g_signal; }

std::uint64_t step_seed(std::uint64_t seed, int rank, int64_t completed) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(rank)) ^
                    static_cast<std::uint64_t>(completed)) >>
         1;  // torch seeds are taken as uint64, keep them printable as int64 too
}

double clip_gradients(std::vector<torch::Tensor>& gradients, double max_norm) {
  if (gradients.empty()) return 0;
  std::vector<torch::Tensor> norms;
  norms.reserve(gradients.size());
  for (const torch::Tensor& g : gradients) norms.push_back(g.detach().norm(2).to(torch::kDouble));
  const double total = torch::stack(norms).norm(2).item<double>();
  if (max_norm > 0 && std::isfinite(total) && total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    torch::NoGradGuard no_grad;
    for (torch::Tensor& g : gradients) g.mul_(scale);
  }
  return total;
}

std::string non_finite_problem(const NamedValues& losses, double grad_norm, torch::nn::Module& net) {
  auto text = [](double v) { return std::isnan(v) ? std::string("nan") : v > 0 ? std::string("inf") : "-inf"; };
  const double total = losses.empty() ? NAN : losses.front().second;
  for (const auto& [name, value] : losses) {
    if (name != "total" && !std::isfinite(value)) {
      return "the loss term " + name + " is " + text(value) + " (total " + format_number(total) + ")";
    }
  }
  if (!std::isfinite(total)) return "the total loss is " + text(total);
  if (std::isfinite(grad_norm)) return "";
  for (const auto& item : net.named_parameters()) {
    const torch::Tensor& g = item.value().grad();
    if (g.defined() && !torch::isfinite(g).all().item<bool>()) {
      return "the gradient of " + item.key() + " is not finite (global norm " + text(grad_norm) + ")";
    }
  }
  return "the gradient norm is " + text(grad_norm);
}

}  // namespace airm::train_detail

namespace airm {

nlohmann::json read_run_options(const std::filesystem::path& out) {
  if (!std::filesystem::exists(out / kRunFile)) {
    throw Error(out.string(), std::string("a run folder (with ") + kRunFile + ") to resume", "none");
  }
  return json_fields::read_file(out / kRunFile);
}

bool has_checkpoint(const std::filesystem::path& out) { return !train_detail::find_checkpoint(out / "checkpoint").empty(); }

}  // namespace airm
