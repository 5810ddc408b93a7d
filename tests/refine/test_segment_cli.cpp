// `airm segment` and `airm refine` without a coarse mask (the segmenter makes
// it: photo to precise mask in one command), by running the binary.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include <opencv2/imgcodecs.hpp>

#include "airm/mask_io.hpp"
#include "airm/metrics.hpp"
#include "airm/model/segmenter.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "refine_test_util.hpp"

namespace fs = std::filesystem;

namespace {

using Result = airm::test::CommandResult;
std::string quote(const std::string& s) { return airm::test::shell_quote(s); }

// Runs `airm ARGS` with neither default-weights variable set.
Result airm_cli(const std::string& args) {
  return airm::test::run_command("env -u AIRM_MODEL -u AIRM_SEGMENTER " + quote(AIRM_BIN) + " " + args);
}

bool contains(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

class SegmentCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new airm::test::TempDir("airm-segment-cli");
    // A random segmenter, small and fast (the command's plumbing is under test, not its quality).
    airm::SegmenterConfig config;
    config.name = "segmenter_cli_test";
    config.decoder_dim = 16;
    config.srm_hidden = 8;
    config.long_side = 96;
    torch::manual_seed(0);
    airm::SegmenterNet net(config);
    airm::save_segmenter_weights(*dir_ / "segmenter.pt", net);
    refiner_ = new std::string(quote(airm::test::random_weights(*dir_).string()));
    fs::create_directories(*dir_ / "images");
    for (int i = 0; i < 2; ++i) {
      const airm::test::TestScene scene = airm::test::make_scene({157 + 10 * i, 113 + 4 * i}, 300 + i);
      ASSERT_TRUE(cv::imwrite((*dir_ / "images" / ("scene" + std::to_string(i) + ".png")).string(), scene.image));
    }
  }
  static void TearDownTestSuite() {
    delete refiner_;
    delete dir_;
  }
  static std::string path(const std::string& name) { return quote((*dir_ / name).string()); }
  static std::string segmenter() { return "--segmenter " + path("segmenter.pt") + " --threads 1"; }
  static std::string refiner() { return "--model " + *refiner_; }

  static airm::test::TempDir* dir_;
  static std::string* refiner_;
};
airm::test::TempDir* SegmentCli::dir_ = nullptr;
std::string* SegmentCli::refiner_ = nullptr;

}  // namespace

TEST_F(SegmentCli, SegmentWritesAMaskOfThePhotosSize) {
  Result r = airm_cli("segment " + path("images/scene1.png") + " -o " + path("seg/one.png") + " " + segmenter() +
                      " --overlay " + path("seg/one.jpg"));
  ASSERT_EQ(r.rc, 0) << r.output;
  const cv::Mat mask = airm::read_mask_u8(*dir_ / "seg" / "one.png");
  EXPECT_EQ(mask.size(), cv::Size(167, 117));
  cv::Mat not_binary = (mask != 0) & (mask != 255);
  EXPECT_EQ(cv::countNonZero(not_binary), 0);
  EXPECT_TRUE(fs::exists(*dir_ / "seg" / "one.jpg"));
  // The library gives the same mask.
  airm::SegmenterNet net = airm::load_segmenter_weights(*dir_ / "segmenter.pt");
  const cv::Mat expected = airm::segment_mask(net, cv::imread((*dir_ / "images" / "scene1.png").string()));
  EXPECT_EQ(airm::test::count_differences(mask, expected), 0);

  // Batch: one mask per photo.
  r = airm_cli("segment --images " + path("images") + " --out " + path("seg/batch") + " " + segmenter() + " --quiet");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "segmented 2, failed 0 of 2")) << r.output;
  EXPECT_EQ(airm::test::count_differences(airm::read_mask_u8(*dir_ / "seg" / "batch" / "scene1.png"), mask), 0);
  // The segmenter named by the environment.
  r = airm::test::run_command("AIRM_SEGMENTER=" + path("segmenter.pt") + " " + quote(AIRM_BIN) + " segment " +
                              path("images/scene0.png") + " -o " + path("seg/env.png") + " --quiet --threads 1");
  EXPECT_EQ(r.rc, 0) << r.output;
}

TEST_F(SegmentCli, SegmentErrorsAndExitCodes) {
  Result r = airm_cli("segment " + path("images/scene0.png") + " " + segmenter());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "^error: expected IMAGE -o MASK.png")) << r.output;
  r = airm_cli("segment " + path("images/scene0.png") + " -o " + path("e.png") + " " + segmenter() + " --long-side 8");
  EXPECT_EQ(r.rc, 2) << r.output;
  r = airm_cli("segment " + path("images/scene0.png") + " -o " + path("e.png") + " --segmenter " + path("missing.pt"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "^error: .*missing.pt")) << r.output;
  // A refiner's weights are not a segmenter's.
  r = airm_cli("segment " + path("images/scene0.png") + " -o " + path("e.png") + " --segmenter " + *refiner_);
  EXPECT_EQ(r.rc, 1) << r.output;
  r = airm_cli("segment " + path("images/nope.png") + " -o " + path("e.png") + " " + segmenter());
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "^error: .*nope.png")) << r.output;
  EXPECT_FALSE(fs::exists(*dir_ / "e.png"));
}

TEST_F(SegmentCli, RefineWithoutACoarseMaskSegmentsFirst) {
  Result r = airm_cli("refine " + path("images/scene0.png") + " -o " + path("one/out.png") + " " + refiner() + " " +
                      segmenter() + " --save-coarse " + path("one/coarse.png"));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "coarse mask by the segmenter")) << r.output;
  const cv::Mat out = airm::read_mask_u8(*dir_ / "one" / "out.png");
  const cv::Mat coarse = airm::read_mask_u8(*dir_ / "one" / "coarse.png");
  EXPECT_EQ(out.size(), cv::Size(157, 113));
  // The coarse mask is the segmenter's, and refining it as a given coarse mask gives the same output.
  ASSERT_EQ(airm_cli("segment " + path("images/scene0.png") + " -o " + path("one/seg.png") + " " + segmenter()).rc, 0);
  EXPECT_EQ(airm::test::count_differences(coarse, airm::read_mask_u8(*dir_ / "one" / "seg.png")), 0);
  r = airm_cli("refine " + path("images/scene0.png") + " " + path("one/seg.png") + " -o " + path("one/given.png") +
               " " + refiner() + " --threads 1");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(airm::test::count_differences(out, airm::read_mask_u8(*dir_ / "one" / "given.png")), 0);

  // Batch without --coarse.
  r = airm_cli("refine --images " + path("images") + " --out " + path("batch") + " " + refiner() + " " + segmenter() +
               " --save-coarse " + path("batch-coarse") + " --quiet");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "refined 2, skipped 0 \\(output exists\\), failed 0 of 2")) << r.output;
  EXPECT_TRUE(fs::exists(*dir_ / "batch-coarse" / "scene1.png"));

  // Usage errors: label maps need a given map; --segmenter/--save-coarse need no coarse mask.
  r = airm_cli("refine " + path("images/scene0.png") + " -o " + path("e.png") + " --labels " + refiner() + " " +
               segmenter());
  EXPECT_EQ(r.rc, 2) << r.output;
  r = airm_cli("refine " + path("images/scene0.png") + " " + path("one/seg.png") + " -o " + path("e.png") + " " +
               refiner() + " " + segmenter());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--segmenter and --save-coarse apply only")) << r.output;
  // A missing segmenter fails before anything is written.
  r = airm_cli("refine " + path("images/scene0.png") + " -o " + path("e.png") + " " + refiner() + " --segmenter " +
               path("missing.pt"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_FALSE(fs::exists(*dir_ / "e.png"));
}

TEST_F(SegmentCli, ModelExportWritesSegmenterWeightsInHalfPrecision) {
  const Result r = airm_cli("model --weights " + path("segmenter.pt") + " --export " + path("segmenter16.pt") + " --half");
  ASSERT_EQ(r.rc, 0) << r.output;
  airm::SegmenterNet full = airm::load_segmenter_weights(*dir_ / "segmenter.pt");
  airm::SegmenterNet half = airm::load_segmenter_weights(*dir_ / "segmenter16.pt");
  EXPECT_EQ(half->config().to_json(), full->config().to_json());
  EXPECT_LT(fs::file_size(*dir_ / "segmenter16.pt"), fs::file_size(*dir_ / "segmenter.pt") * 6 / 10);
  const auto a = full->named_parameters(), b = half->named_parameters();
  for (const auto& item : a) {
    const torch::Tensor& x = item.value();
    const torch::Tensor& y = b[item.key()];
    EXPECT_EQ(y.scalar_type(), torch::kFloat) << item.key();
    EXPECT_TRUE(torch::allclose(x, y, 1e-3, 1e-4)) << item.key();
  }
}
