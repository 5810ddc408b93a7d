// Training the refiner: AirmNet as a task of the shared training loop.
#include "airm/train/trainer.hpp"

#include <optional>

#include "airm/bf16.hpp"
#include "airm/error.hpp"
#include "airm/model/implicit_function.hpp"
#include "airm/model/pretrained.hpp"
#include "airm/model/weights.hpp"
#include "airm/train/losses.hpp"
#include "autocast.hpp"
#include "train_task.hpp"
#include "trainer_parts.hpp"
#include "validation.hpp"

namespace airm {
namespace fs = std::filesystem;
using namespace train_detail;

namespace {

class RefineTask : public TrainTask {
 public:
  RefineTask(const TrainConfig& config, const TrainerOptions& options)
      : config_(config), options_(options), bf16_(use_bf16(config.bf16, options.device)) {
    torch::manual_seed(config.seed);
    net_ = AirmNet(config.model);
    // Starting points (a resumed run takes everything from its checkpoint instead).
    if (!options.resume && !config.init_weights.empty()) {
      // The whole network from a weights file of the same architecture (its config may differ in name only).
      AirmNet init = airm::load_weights(config.init_weights);
      start_from_weights(*net_, config.model.to_json(), *init, init->config().to_json(), {"name", "drop_path"},
                         config.init_weights);
    }
    if (!options.resume && !config.encoder_weights.empty()) {
      if (net_->mobilenet_) {
        load_pretrained_encoder(net_->mobilenet_, config.encoder_weights);  // the mask channel starts at zero
      } else {
        load_mit_state_dict(net_->mit_, config.encoder_weights);
      }
    }
    cell_ = cell_for(config.data.crop, config.data.crop, torch::TensorOptions().device(options.device));
  }

  torch::nn::Module& module() override { return *net_; }

  std::vector<std::string> loss_terms() const override {
    return {"cross_entropy", "l1", "l2", "gradient", "affinity"};
  }

  // Forward under autocast (if asked), losses in fp32.
  torch::Tensor step_loss(const TrainBatch& batch, NamedValues& values) override {
    const bool with_affinity = config_.model.affinity && config_.loss.affinity > 0;
    const torch::Device& device = options_.device;
    Encoded encoded;
    torch::Tensor logits;
    {
      AutocastScope autocast(bf16_ && kAutocastEncoder, device);
      encoded = net_->encode(batch.input, with_affinity);
    }
    {
      AutocastScope autocast(bf16_, device);
      logits = net_->query(encoded, batch.input, batch.coord, cell_);
    }
    logits = logits.to(torch::kFloat);
    torch::Tensor affinity;
    if (with_affinity) {
      encoded.affinity = encoded.affinity.to(torch::kFloat);
      affinity = net_->affinity_loss(encoded, batch.gt);
    }
    const LossTerms terms = refinement_losses(logits, batch.target, config_.data.query_mode == "all",
                                              config_.data.crop, affinity, config_.loss);
    const std::pair<const char*, const torch::Tensor*> named[] = {
        {"total", &terms.total}, {"cross_entropy", &terms.cross_entropy}, {"l1", &terms.l1},
        {"l2", &terms.l2},       {"gradient", &terms.gradient},           {"affinity", &terms.affinity}};
    for (const auto& [name, tensor] : named) {
      if (tensor->defined()) values.emplace_back(name, tensor->detach().to(torch::kDouble).item<double>());
    }
    return terms.total;
  }

  void save_weights(const fs::path& path) override { airm::save_weights(path, net_); }
  void load_weights(const fs::path& path) override { load_weights_into(net_, path); }

  TaskValidation validate(const std::function<bool()>& should_stop) override {
    if (!val_set_) val_set_ = load_validation_set(config_, options_);
    return {run_validation(net_, *val_set_, options_.device, bf16_, should_stop), val_set_->coarse_summaries};
  }

  void before_step(int64_t step) override {
    if (options_.before_step) options_.before_step(step, net_);
  }

 private:
  const TrainConfig& config_;
  const TrainerOptions& options_;
  const bool bf16_;  // config.bf16 where this machine can run it (airm/bf16.hpp)
  AirmNet net_{nullptr};
  torch::Tensor cell_;
  std::optional<ValidationSet> val_set_;
};

}  // namespace

TrainResult train(const TrainConfig& config, const TrainerOptions& options) {
  config.validate();
  check_options(options);
  RefineTask task(config, options);
  return run_training(config, config.to_json(), task, options);
}

}  // namespace airm
