// `airm train --task segment`: the segmenter on the shared training loop
// (outputs, exact resume), its config, and the Dice loss.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "airm/error.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/model/weights.hpp"
#include "airm/train/losses.hpp"
#include "airm/train/segmenter_train_config.hpp"
#include "airm/train/segmenter_trainer.hpp"
#include "airm/train/train_config.hpp"
#include "test_support.hpp"

namespace airm {
namespace {
namespace fs = std::filesystem;

const fs::path kTrainConfigs = fs::path(AIRM_SOURCE_DIR) / "configs" / "train";

// A segmenter small enough to train in a test: MiT-b0 at 64x64 crops, batch 2.
nlohmann::json tiny_config_json() {
  return {{"task", "segment"},
          {"model",
           {{"name", "segmenter_tiny_test"}, {"decoder_dim", 16}, {"srm_hidden", 8}, {"long_side", 64},
            {"drop_path", 0.0}}},
          {"data", {{"crop", 64}, {"perturb_share", 0.0}, {"query_mode", "boundary"}, {"queries", 1}}},
          {"iterations", 4},
          {"batch", 2},
          {"checkpoint_every", 2},
          {"validate_every", 2},
          {"val_limit", 0}};
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class SegmenterTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);  // bit-exact reductions
    test::make_synth_dataset(dir_.path() / "data");
    config_ = SegmenterTrainConfig::from_json(tiny_config_json(), "tiny");
  }

  TrainerOptions options(const std::string& run) const {
    TrainerOptions o;
    o.data = dir_.path() / "data";
    o.out = dir_.path() / run;
    o.workers = 1;
    o.threads = 1;
    o.progress = false;
    return o;
  }

  test::TempDir dir_{"airm-segmenter-trainer"};
  SegmenterTrainConfig config_;
};

TEST_F(SegmenterTrainerTest, ShortRunWritesSegmenterWeightsLogsAndValidation) {
  TrainerOptions o = options("run");
  std::vector<IterationRecord> records;
  o.after_step = [&](const IterationRecord& r) { records.push_back(r); };
  const TrainResult result = train_segmenter(config_, o);
  EXPECT_EQ(result.status, TrainStatus::completed);
  ASSERT_EQ(records.size(), 4u);
  for (const IterationRecord& r : records) {
    EXPECT_TRUE(std::isfinite(r.total) && std::isfinite(r.cross_entropy) && std::isfinite(r.dice)) << r.iteration;
    EXPECT_NEAR(r.total, r.cross_entropy + r.dice, 1e-5);
    EXPECT_TRUE(std::isnan(r.l1) && std::isnan(r.affinity)) << "refiner terms are not computed";
    EXPECT_GT(r.grad_norm, 0);
  }
  const fs::path out = o.out;
  for (const char* file : {"config.json", "run.json", "log.csv", "val.csv", "curves.png", "last.pt", "best.pt",
                           "best.json", "checkpoint/weights.pt", "checkpoint/optimizer.pt", "checkpoint/state.json"}) {
    EXPECT_TRUE(fs::is_regular_file(out / file)) << file;
  }
  const auto log = read_lines(out / "log.csv");
  ASSERT_EQ(log.size(), 5u);
  EXPECT_EQ(log[0].rfind("iteration,total,cross_entropy,dice,grad_norm,", 0), 0u) << log[0];
  // val.csv: "predicted" rows at 2 and 4 (per dataset + "all"), no coarse rows.
  const auto val = read_lines(out / "val.csv");
  ASSERT_EQ(val.size(), 1u + 2 + 2);
  for (std::size_t i = 1; i < val.size(); ++i) EXPECT_NE(val[i].find(",predicted,"), std::string::npos) << val[i];

  // The weights are segmenter weights with their config; the refiner's loader refuses them.
  SegmenterNet last = load_segmenter_weights(out / "last.pt");
  EXPECT_EQ(last->config().name, "segmenter_tiny_test");
  EXPECT_EQ(last->config().long_side, 64);
  EXPECT_THROW(load_weights(out / "last.pt"), Error);
  // config.json says which task it is for.
  EXPECT_EQ(read_training_task(out / "config.json"), "segment");
  EXPECT_THROW(train_segmenter(config_, o), Error) << "an existing run is not overwritten";
}

// 4 steps at once vs 2, stop, resume to 4: identical losses and weights.
TEST_F(SegmenterTrainerTest, ResumeContinuesExactly) {
  config_.validate_every = 0;
  auto run = [&](const std::string& name, bool resume, int64_t stop_after, std::vector<IterationRecord>& records) {
    TrainerOptions o = options(name);
    o.val_split = "";
    o.resume = resume;
    o.stop_after = stop_after;
    o.after_step = [&](const IterationRecord& r) { records.push_back(r); };
    return train_segmenter(config_, o);
  };
  std::vector<IterationRecord> whole, first, second;
  EXPECT_EQ(run("whole", false, 0, whole).status, TrainStatus::completed);
  EXPECT_EQ(run("split", false, 2, first).status, TrainStatus::stopped);
  EXPECT_EQ(run("split", true, 0, second).status, TrainStatus::completed);
  ASSERT_EQ(whole.size(), 4u);
  ASSERT_EQ(second.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(second[i].iteration, whole[2 + i].iteration);
    EXPECT_EQ(second[i].total, whole[2 + i].total) << "step " << whole[2 + i].iteration;
    EXPECT_EQ(second[i].dice, whole[2 + i].dice);
  }
  const TensorDict a = read_tensor_dict(dir_.path() / "whole" / "last.pt");
  const TensorDict b = read_tensor_dict(dir_.path() / "split" / "last.pt");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, tensor] : a) {
    if (key.rfind("__", 0) == 0) continue;
    EXPECT_TRUE(torch::equal(tensor, b.at(key))) << key;
  }
  // A refiner config cannot resume a segmenter run (and the other way round).
  TrainConfig refiner = TrainConfig::load(kTrainConfigs / "tiny.json");
  TrainerOptions o = options("split");
  o.resume = true;
  o.val_split = "";
  refiner.iterations = 4;
  EXPECT_THROW(train(refiner, o), Error);
}

TEST(SegmenterTrainConfigTest, ShippedConfigsLoadRoundTripAndAreSegmentTasks) {
  int found = 0;
  for (const auto& entry : fs::directory_iterator(kTrainConfigs)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("segmenter_", 0) != 0) continue;
    ++found;
    EXPECT_EQ(read_training_task(entry.path()), "segment") << name;
    const SegmenterTrainConfig config = SegmenterTrainConfig::load(entry.path());
    const SegmenterTrainConfig again = SegmenterTrainConfig::from_json(config.to_json(), name);
    EXPECT_EQ(again.to_json(), config.to_json()) << name;
    EXPECT_FALSE(config.model_file.empty()) << name << " names its model config file";
  }
  EXPECT_EQ(found, 5) << "MiT-b0 with both modules, neither, SRM only, CRM only; MobileNetV2 from DeepLabV3";
}

TEST(SegmenterTrainConfigTest, BadConfigsAreErrors) {
  auto fails_with = [](nlohmann::json json, const std::string& needle) {
    try {
      SegmenterTrainConfig::from_json(json, "cfg.json");
      ADD_FAILURE() << "expected an error for " << json.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    }
  };
  nlohmann::json json = tiny_config_json();
  json["lr"] = 1;
  fails_with(json, "lr");
  json = tiny_config_json();
  json["model"]["num_classes"] = 3;
  fails_with(json, "num_classes");
  json = tiny_config_json();
  json["loss"] = {{"dice", -1.0}};
  fails_with(json, "dice");
  json = tiny_config_json();
  json["task"] = "refine";
  fails_with(json, "task");
  json = tiny_config_json();
  json.erase("model");
  fails_with(json, "model");
  // A refiner's training config refuses a segmenter's.
  EXPECT_THROW(TrainConfig::from_json(tiny_config_json(), "cfg.json"), Error);
  EXPECT_EQ(training_task_of(nlohmann::json{{"iterations", 3}}), "refine");
}

TEST(SoftDiceLossTest, ValuesByHand) {
  // Perfect, confident prediction: ~0.
  const torch::Tensor target = torch::tensor({1.f, 1.f, 0.f, 0.f}).view({1, 4});
  EXPECT_LT(soft_dice_loss(target * 40 - 20, target).item<double>(), 1e-6);
  // Logits 0 everywhere (p = 1/2): 1 - (2*1 + 1) / (2 + 2 + 1) = 0.4.
  EXPECT_NEAR(soft_dice_loss(torch::zeros({1, 4}), target).item<double>(), 0.4, 1e-6);
  // An empty prediction of an empty mask: 0; batch mean of per-image losses.
  const torch::Tensor empty = torch::zeros({1, 4});
  EXPECT_NEAR(soft_dice_loss(empty - 30, empty).item<double>(), 0.0, 1e-6);
  const torch::Tensor both = soft_dice_loss(torch::cat({torch::zeros({1, 4}), empty - 30}), torch::cat({target, empty}));
  EXPECT_NEAR(both.item<double>(), 0.2, 1e-6);
  EXPECT_THROW(soft_dice_loss(torch::zeros({1, 4}), torch::zeros({1, 5})), c10::Error);
}

}  // namespace
}  // namespace airm
