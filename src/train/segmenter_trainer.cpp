// Training the coarse segmenter: SegmenterNet as a task of the shared loop.
#include "airm/train/segmenter_trainer.hpp"

#include <optional>

#include "airm/dataset.hpp"
#include "airm/error.hpp"
#include "airm/model/segmenter.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/train/losses.hpp"
#include "autocast.hpp"
#include "train_task.hpp"
#include "trainer_parts.hpp"
#include "validation.hpp"

namespace airm {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using namespace train_detail;

namespace {

class SegmentTask : public TrainTask {
 public:
  SegmentTask(const SegmenterTrainConfig& config, const TrainerOptions& options) : config_(config), options_(options) {
    torch::manual_seed(config.seed);
    net_ = SegmenterNet(config.model);
    if (!options.resume && !config.init_weights.empty()) {
      SegmenterNet init = load_segmenter_weights(config.init_weights);
      start_from_weights(*net_, config.model.to_json(), *init, init->config().to_json(),
                         {"name", "drop_path", "long_side"}, config.init_weights);
    }
    if (!options.resume && !config.encoder_weights.empty()) load_segmenter_backbone(net_, config.encoder_weights);
  }

  torch::nn::Module& module() override { return *net_; }

  std::vector<std::string> loss_terms() const override { return {"cross_entropy", "dice"}; }

  // The RGB channels of the batch's input (ImageNet-normalised, as the
  // segmenter's own input) against the crop's ground truth, every pixel.
  torch::Tensor step_loss(const TrainBatch& batch, NamedValues& values) override {
    const torch::Tensor rgb = batch.input.slice(1, 0, 3);
    torch::Tensor logits;
    {
      AutocastScope autocast(config_.bf16 && kAutocastEncoder, options_.device);
      logits = net_->forward(rgb);
    }
    logits = logits.to(torch::kFloat);
    const torch::Tensor cross_entropy = F::binary_cross_entropy_with_logits(logits, batch.gt);
    const torch::Tensor dice = soft_dice_loss(logits, batch.gt);
    const torch::Tensor total = config_.loss.cross_entropy * cross_entropy + config_.loss.dice * dice;
    for (const auto& [name, tensor] : {std::pair<const char*, const torch::Tensor*>{"total", &total},
                                       {"cross_entropy", &cross_entropy},
                                       {"dice", &dice}}) {
      values.emplace_back(name, tensor->detach().to(torch::kDouble).item<double>());
    }
    return total;
  }

  void save_weights(const fs::path& path) override { save_segmenter_weights(path, net_); }
  void load_weights(const fs::path& path) override { load_segmenter_weights_into(net_, path); }

  TaskValidation validate(const std::function<bool()>& should_stop) override {
    if (!samples_) {
      const Discovery discovery = discover_split(options_.data, options_.val_split, options_.splits_file);
      if (discovery.samples.empty()) throw Error(options_.data.string(), "validation images", "none");
      samples_ = evenly_spaced(discovery.samples, config_.val_limit);
      std::fprintf(stderr, "validation: %zu of %zu image(s) of split '%s', segmented at long side %lld\n",
                   samples_->size(), discovery.samples.size(), options_.val_split.c_str(),
                   static_cast<long long>(config_.model.long_side));
    }
    torch::NoGradGuard no_grad;
    EvalModeScope mode(*net_);
    return {score_predictions(
                *samples_, [&](const cv::Mat& image, std::size_t) { return segment_mask(net_, image); }, should_stop),
            {}};
  }

 private:
  const SegmenterTrainConfig& config_;
  const TrainerOptions& options_;
  SegmenterNet net_{nullptr};
  std::optional<std::vector<Sample>> samples_;
};

}  // namespace

TrainResult train_segmenter(const SegmenterTrainConfig& config, const TrainerOptions& options) {
  config.validate();
  check_options(options);
  SegmentTask task(config, options);
  return run_training(config, config.to_json(), task, options);
}

}  // namespace airm
