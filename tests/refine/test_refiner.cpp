// The Refiner on small inputs: shapes, inputs of every kind, options, exact
// equivalences (adaptive with everything selected = dense, chunking, one
// tile = no tiling, concurrency), tiling, bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "../../src/refine/refine_internal.hpp"
#include "airm/bf16.hpp"
#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "refiner_fixture.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using airm::RefineOptions;
using airm::Refiner;
using airm::test::RefinerTest;

namespace {

double uncertain_fraction(const cv::Mat& p) {
  return static_cast<double>(cv::countNonZero((p >= 0.05) & (p <= 0.95))) / static_cast<double>(p.total());
}

double max_abs_diff(const cv::Mat& a, const cv::Mat& b) { return cv::norm(a, b, cv::NORM_INF); }

void expect_probabilities(const cv::Mat& p, cv::Size size) {
  ASSERT_EQ(p.type(), CV_32FC1);
  ASSERT_EQ(p.size(), size);
  double lo = 0, hi = 0;
  cv::minMaxLoc(p, &lo, &hi);
  EXPECT_GE(lo, 0.0);
  EXPECT_LE(hi, 1.0);
  EXPECT_TRUE(cv::checkRange(p));
}

}  // namespace

TEST(RefinePlan, AutomaticScalesStartNearTrainingResolution) {
  RefineOptions options;
  EXPECT_EQ(airm::plan_scales({3840, 2160}, options), (std::vector<double>{0.125, 0.25, 0.5, 1.0}));
  EXPECT_EQ(airm::plan_scales({7680, 4320}, options), (std::vector<double>{0.0625, 0.125, 0.25, 0.5, 1.0}));
  EXPECT_EQ(airm::plan_scales({512, 300}, options), (std::vector<double>{1.0}));
  EXPECT_EQ(airm::plan_scales({300, 513}, options), (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(airm::plan_scales({7, 5}, options), (std::vector<double>{1.0}));
  options.scales = {0.125, 0.25, 0.5, 1.0};
  EXPECT_EQ(airm::plan_scales({100, 100}, options), options.scales);
}

TEST(RefinePlan, OptionsAreValidated) {
  auto bad = [](auto change) {
    RefineOptions options;
    change(options);
    EXPECT_THROW(options.validate(), airm::Error);
  };
  bad([](RefineOptions& o) { o.scales = {0.5, 0.25}; });
  bad([](RefineOptions& o) { o.scales = {0.0, 1.0}; });
  bad([](RefineOptions& o) { o.scales = {1.5}; });
  bad([](RefineOptions& o) { o.tile_size = 100; });
  bad([](RefineOptions& o) { o.tile_size = 256, o.tile_overlap = 256; });
  bad([](RefineOptions& o) { o.chunk_size = 0; });
  bad([](RefineOptions& o) { o.band = -1; });
  bad([](RefineOptions& o) { o.uncertain_low = 0.9, o.uncertain_high = 0.1; });
  bad([](RefineOptions& o) { o.output_size = {0, 5}; });
  bad([](RefineOptions& o) { o.close_mask_px = -1; });
  bad([](RefineOptions& o) { o.close_mask_px = std::numeric_limits<double>::infinity(); });
  // fuzz_refine_options: 1038402 x 2160 overflowed int in Size::area() (UB); now refused as too large.
  bad([](RefineOptions& o) { o.output_size = {1038402, 2160}; });
  bad([](RefineOptions& o) { o.output_size = {16385, 16384}; });
  RefineOptions largest;
  largest.output_size = {16384, 16384};
  EXPECT_NO_THROW(largest.validate());
  RefineOptions fine;
  EXPECT_NO_THROW(fine.validate());
}

TEST(RefinePlan, BoundaryShiftIsTheMeanDisplacementInOutputPixels) {
  using airm::refine_detail::boundary_shift_px;
  cv::Mat square(200, 300, CV_32FC1, cv::Scalar(0));
  square(cv::Rect(100, 50, 101, 101)).setTo(1.0f);
  EXPECT_EQ(boundary_shift_px(square, square, 1.0), 0.0);
  // Grown by 3 px on every side: (107^2 - 101^2) changed over 400 boundary pixels, about 3.
  cv::Mat grown(200, 300, CV_32FC1, cv::Scalar(0));
  grown(cv::Rect(97, 47, 107, 107)).setTo(0.9f);
  EXPECT_NEAR(boundary_shift_px(square, grown, 1.0), (107.0 * 107 - 101 * 101) / 400.0, 1e-9);
  // At a 1/4 grid the same change is 4x as far in output pixels.
  EXPECT_NEAR(boundary_shift_px(square, grown, 0.25), 4 * (107.0 * 107 - 101 * 101) / 400.0, 1e-9);
  // Shifted right by 4 px: the left and right sides move, top and bottom do not (2 * 4 * 101 / 400).
  cv::Mat shifted(200, 300, CV_32FC1, cv::Scalar(0));
  shifted(cv::Rect(104, 50, 101, 101)).setTo(1.0f);
  EXPECT_NEAR(boundary_shift_px(square, shifted, 1.0), 2.0 * 4 * 101 / 400.0, 1e-9);
  // A mask filling the grid has no boundary (the grid's edge is none): nothing changed, or everything.
  const cv::Mat full(50, 60, CV_32FC1, cv::Scalar(1.0f));
  EXPECT_EQ(boundary_shift_px(full, full, 1.0), 0.0);
  EXPECT_TRUE(std::isinf(boundary_shift_px(full, cv::Mat(50, 60, CV_32FC1, cv::Scalar(0.0f)), 1.0)));
}

TEST(RefinePlan, TilesCoverTheInputAlignedWithOverlap) {
  EXPECT_EQ(airm::refine_detail::tile_starts(512, 1024, 128), (std::vector<int64_t>{0}));
  for (const int64_t length : {1056, 2176, 3872, 4352, 7712}) {
    for (const int64_t tile : {256, 512, 1024}) {
      const std::vector<int64_t> starts = airm::refine_detail::tile_starts(length, tile, 128);
      ASSERT_GE(starts.size(), 2u);
      EXPECT_EQ(starts.front(), 0);
      EXPECT_EQ(starts.back(), length - tile);
      for (size_t i = 0; i < starts.size(); ++i) {
        EXPECT_EQ(starts[i] % 32, 0);
        if (i > 0) {
          EXPECT_GE(starts[i - 1] + tile - starts[i], 128 - 31) << length << " " << tile;
        }
      }
    }
  }
}

TEST_F(RefinerTest, TinyAndOddSizes) {
  for (const cv::Size size : {cv::Size(1, 1), cv::Size(7, 5), cv::Size(5, 7), cv::Size(33, 17), cv::Size(211, 157)}) {
    SCOPED_TRACE(std::to_string(size.width) + "x" + std::to_string(size.height));
    cv::Mat image(size, CV_8UC3);
    cv::randu(image, 0, 255);
    cv::Mat coarse = cv::Mat::zeros(size, CV_8UC1);
    cv::circle(coarse, {size.width / 2, size.height / 2}, std::max(1, size.width / 3), 255, -1);
    RefineOptions every_pixel;
    every_pixel.first_band = 0;
    airm::RefineStats stats;
    expect_probabilities(refiner().refine(image, coarse, every_pixel, &stats), size);
    EXPECT_EQ(stats.queries, static_cast<int64_t>(size.area()));  // one stage, every pixel
    expect_probabilities(refiner().refine(image, coarse, {}, &stats), size);
    EXPECT_LE(stats.queries, static_cast<int64_t>(size.area()));  // one stage, near the boundary
  }
  // No padding at all on a 1x1 image still runs.
  RefineOptions no_pad;
  no_pad.pad = 0;
  expect_probabilities(refiner().refine(cv::Mat(1, 1, CV_8UC3, cv::Scalar(9, 99, 199)), cv::Mat(1, 1, CV_32F, 1.0f), no_pad),
                       {1, 1});
}

TEST_F(RefinerTest, GrayAndRgbaFilesGiveTheirBgrResult) {
  const airm::test::TestScene scene = airm::test::make_scene({160, 120}, 3);
  cv::Mat gray, bgra;
  cv::cvtColor(scene.image, gray, cv::COLOR_BGR2GRAY);
  cv::cvtColor(scene.image, bgra, cv::COLOR_BGR2BGRA);
  bgra.forEach<cv::Vec4b>([](cv::Vec4b& px, const int*) { px[3] = 77; });  // alpha must be ignored
  const fs::path gray_file = *dir_ / "gray.png", rgba_file = *dir_ / "rgba.png";
  ASSERT_TRUE(cv::imwrite(gray_file.string(), gray));
  ASSERT_TRUE(cv::imwrite(rgba_file.string(), bgra));

  cv::Mat gray_bgr;
  cv::cvtColor(gray, gray_bgr, cv::COLOR_GRAY2BGR);
  const cv::Mat from_gray_file = refiner().refine(airm::read_image(gray_file), scene.coarse);
  EXPECT_EQ(max_abs_diff(from_gray_file, refiner().refine(gray_bgr, scene.coarse)), 0.0);
  EXPECT_EQ(max_abs_diff(refiner().refine(gray, scene.coarse), from_gray_file), 0.0);  // a gray Mat directly
  const cv::Mat from_rgba_file = refiner().refine(airm::read_image(rgba_file), scene.coarse);
  EXPECT_EQ(max_abs_diff(from_rgba_file, refiner().refine(scene.image, scene.coarse)), 0.0);
  EXPECT_EQ(max_abs_diff(refiner().refine(bgra, scene.coarse), from_rgba_file), 0.0);  // a BGRA Mat directly
}

TEST_F(RefinerTest, CoarseMaskKinds) {
  const airm::test::TestScene scene = airm::test::make_scene({240, 160}, 5);
  // CV_8U 0..255 and CV_32F [0,1] are the same mask.
  cv::Mat coarse_f;
  scene.coarse.convertTo(coarse_f, CV_32F, 1.0 / 255.0);
  const cv::Mat p8 = refiner().refine(scene.image, scene.coarse);
  EXPECT_EQ(max_abs_diff(p8, refiner().refine(scene.image, coarse_f)), 0.0);
  // Another resolution of the same aspect ratio.
  cv::Mat half;
  cv::resize(scene.coarse, half, {120, 80}, 0, 0, cv::INTER_AREA);
  const cv::Mat p_half = refiner().refine(scene.image, half);
  expect_probabilities(p_half, scene.image.size());
  // All zero and all one.
  expect_probabilities(refiner().refine(scene.image, cv::Mat::zeros(scene.image.size(), CV_8UC1)), scene.image.size());
  expect_probabilities(refiner().refine(scene.image, cv::Mat(scene.image.size(), CV_32F, 1.0f)), scene.image.size());
  // Another aspect ratio, an empty mask, a wrong type: errors.
  EXPECT_THROW(refiner().refine(scene.image, cv::Mat::zeros(160, 160, CV_8UC1)), airm::Error);
  EXPECT_THROW(refiner().refine(scene.image, cv::Mat()), airm::Error);
  EXPECT_THROW(refiner().refine(scene.image, cv::Mat::zeros(scene.image.size(), CV_16UC1)), airm::Error);
  EXPECT_THROW(refiner().refine(cv::Mat(), scene.coarse), airm::Error);
  // NaN or infinity in a float mask: refused, naming the first such pixel.
  cv::Mat nan_mask = coarse_f.clone();
  nan_mask.at<float>(7, 11) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(airm::test::error_message([&] { refiner().refine(scene.image, nan_mask); }),
            "refine: expected finite coarse probabilities, got NaN or infinity at (11, 7)");
  nan_mask.at<float>(7, 11) = -std::numeric_limits<float>::infinity();
  EXPECT_THROW(refiner().refine(scene.image, nan_mask), airm::Error);
}

TEST_F(RefinerTest, RequestedOutputSize) {
  const airm::test::TestScene scene = airm::test::make_scene({300, 200}, 8);
  RefineOptions options;
  options.output_size = {600, 400};
  expect_probabilities(refiner().refine(scene.image, scene.coarse, options), {600, 400});
  options.output_size = {90, 61};  // another aspect ratio is allowed for the output
  expect_probabilities(refiner().refine(scene.image, scene.coarse, options), {90, 61});
  options.output_size = scene.image.size();
  EXPECT_EQ(max_abs_diff(refiner().refine(scene.image, scene.coarse, options), refiner().refine(scene.image, scene.coarse)),
            0.0);
  // A last scale below 1 is upsampled to the output.
  options.scales = {0.25, 0.5};
  expect_probabilities(refiner().refine(scene.image, scene.coarse, options), scene.image.size());
}

TEST_F(RefinerTest, AdaptiveSelectingEverythingEqualsDense) {
  const airm::test::TestScene scene = airm::test::make_scene({700, 500}, 11);
  RefineOptions dense;
  dense.dense = true;
  RefineOptions everything;  // adaptive, with an uncertainty range that covers every probability
  everything.uncertain_low = 0.0;
  everything.uncertain_high = 1.0;
  airm::RefineStats dense_stats, adaptive_stats;
  const cv::Mat a = refiner().refine(scene.image, scene.coarse, dense, &dense_stats);
  const cv::Mat b = refiner().refine(scene.image, scene.coarse, everything, &adaptive_stats);
  ASSERT_EQ(dense_stats.stages.size(), 2u);
  EXPECT_EQ(dense_stats.queries, adaptive_stats.queries);
  EXPECT_EQ(dense_stats.queries, 350 * 250 + 700 * 500);
  EXPECT_EQ(max_abs_diff(a, b), 0.0);

  // The same on the mask-following network.
  EXPECT_EQ(max_abs_diff(follower().refine(scene.image, scene.coarse, dense),
                         follower().refine(scene.image, scene.coarse, everything)),
            0.0);

  // The normal rule queries fewer pixels after the first stage; report the agreement.
  for (const Refiner* r : {refiner_, follower_}) {
    airm::RefineStats normal_stats;
    const cv::Mat reference = r->refine(scene.image, scene.coarse, dense);
    const cv::Mat c = r->refine(scene.image, scene.coarse, {}, &normal_stats);
    EXPECT_LE(normal_stats.queries, dense_stats.queries);
    const double agree = airm::test::agreement(reference, c);
    std::printf("[ info ] %s, 700x500: %.1f%% of dense probabilities uncertain; adaptive queried %lld of %lld, "
                "agreement with dense %.4f%%\n",
                r == refiner_ ? "random net" : "mask-following net", 100 * uncertain_fraction(reference),
                static_cast<long long>(normal_stats.queries), static_cast<long long>(dense_stats.queries),
                100.0 * agree);
    if (r == follower_) {
      EXPECT_LT(normal_stats.queries, dense_stats.queries / 2);
      EXPECT_GE(agree, 0.999);
    }
  }
}

TEST_F(RefinerTest, SelectionIsUncertainOrNearTheBoundary) {
  cv::Mat p(40, 40, CV_32F, 0.0f);
  p(cv::Rect(20, 0, 20, 40)).setTo(1.0f);  // a vertical edge between columns 19 and 20
  p.at<float>(5, 5) = 0.5f;                // one uncertain pixel far from it
  const cv::Mat s = airm::refine_detail::select_queries(p, RefineOptions(), 2);
  EXPECT_NE(s.at<unsigned char>(5, 5), 0);
  EXPECT_NE(s.at<unsigned char>(10, 18), 0);  // within 2 px of the edge (between columns 19 and 20)
  EXPECT_NE(s.at<unsigned char>(10, 21), 0);
  EXPECT_EQ(s.at<unsigned char>(10, 17), 0);
  EXPECT_EQ(s.at<unsigned char>(10, 22), 0);
  EXPECT_EQ(cv::countNonZero(s), 1 + 40 * 4);
}

TEST_F(RefinerTest, FirstBandIsTheDenseFirstStageNearTheBoundaryAndTheCoarseMaskElsewhere) {
  // Awkward sizes (prime, odd, a 1-pixel-wide strip), one stage so the first stage is the result.
  for (const cv::Size size : {cv::Size(211, 157), cv::Size(97, 131), cv::Size(1, 61)}) {
    SCOPED_TRACE(std::to_string(size.width) + "x" + std::to_string(size.height));
    const airm::test::TestScene scene = airm::test::make_scene(size, 23);
    RefineOptions dense_first, banded;
    dense_first.scales = banded.scales = {1.0};
    dense_first.first_band = 0;
    banded.first_band = 5;
    airm::RefineStats dense_stats, banded_stats;
    const cv::Mat reference = follower().refine(scene.image, scene.coarse, dense_first, &dense_stats);
    const cv::Mat result = follower().refine(scene.image, scene.coarse, banded, &banded_stats);
    cv::Mat coarse;
    scene.coarse.convertTo(coarse, CV_32F, 1.0 / 255.0);
    const cv::Mat selected = airm::refine_detail::select_queries(coarse, banded, 5);
    EXPECT_EQ(banded_stats.queries, cv::countNonZero(selected));
    EXPECT_EQ(dense_stats.queries, static_cast<int64_t>(size.area()));
    double near = 0, far = 0;
    for (int y = 0; y < size.height; ++y) {
      for (int x = 0; x < size.width; ++x) {
        const bool queried = selected.at<unsigned char>(y, x) != 0;
        const float want = queried ? reference.at<float>(y, x) : coarse.at<float>(y, x);
        double& worst = queried ? near : far;
        worst = std::max<double>(worst, std::abs(result.at<float>(y, x) - want));
      }
    }
    EXPECT_LE(near, 1e-5);  // the same queries of the same encoding (blocks may differ)
    EXPECT_EQ(far, 0.0);     // untouched: the coarse value itself
  }
}

TEST_F(RefinerTest, CloseMaskGateRefinesAtFullResolutionOnly) {
  const airm::test::TestScene scene = airm::test::make_scene({700, 500}, 12);  // automatic scales 0.5, 1
  RefineOptions never;
  never.close_mask_px = 0;
  RefineOptions always;
  always.close_mask_px = 1e9;  // every first stage counts as "close"
  RefineOptions full_only;
  full_only.scales = {1.0};
  for (const Refiner* r : {refiner_, follower_}) {
    airm::RefineStats n, a, f;
    const cv::Mat staged = r->refine(scene.image, scene.coarse, never, &n);
    const cv::Mat gated = r->refine(scene.image, scene.coarse, always, &a);
    const cv::Mat single = r->refine(scene.image, scene.coarse, full_only, &f);
    ASSERT_EQ(n.stages.size(), 2u);
    EXPECT_FALSE(n.coarse_stages_skipped);
    EXPECT_EQ(n.first_stage_shift_px, 0.0);  // not measured
    // Gated: the first stage, then one full-resolution stage from the coarse mask = scales {1} exactly.
    ASSERT_EQ(a.stages.size(), 2u);
    EXPECT_TRUE(a.coarse_stages_skipped);
    EXPECT_EQ(a.stages[0].scale, 0.5);
    EXPECT_EQ(a.stages[1].scale, 1.0);
    EXPECT_EQ(a.stages[1].queries, f.queries);
    EXPECT_EQ(max_abs_diff(gated, single), 0.0);
    if (r == refiner_) {
      EXPECT_GT(max_abs_diff(staged, single), 0.0);  // the stages differ: the test can tell
    }
    // The default measures, and its choice matches its own threshold.
    airm::RefineStats d;
    const cv::Mat by_default = r->refine(scene.image, scene.coarse, RefineOptions{}, &d);
    EXPECT_EQ(d.coarse_stages_skipped, d.first_stage_shift_px < RefineOptions{}.close_mask_px);
    EXPECT_EQ(max_abs_diff(by_default, d.coarse_stages_skipped ? single : staged), 0.0);
  }
  // Explicit scales are never gated.
  RefineOptions explicit_scales = always;
  explicit_scales.scales = {0.5, 1.0};
  airm::RefineStats e;
  EXPECT_EQ(max_abs_diff(refiner().refine(scene.image, scene.coarse, explicit_scales, &e),
                         refiner().refine(scene.image, scene.coarse, never)),
            0.0);
  EXPECT_FALSE(e.coarse_stages_skipped);
}

TEST_F(RefinerTest, ChunkedEqualsUnchunked) {
  const airm::test::TestScene scene = airm::test::make_scene({400, 300}, 13);
  RefineOptions small;
  small.chunk_size = 777;  // odd sizes: chunks and blocks never line up with rows
  small.block_size = 5003;
  RefineOptions whole;
  whole.chunk_size = int64_t{1} << 30;
  whole.block_size = int64_t{1} << 30;
  const cv::Mat a = follower().refine(scene.image, scene.coarse, small);
  const cv::Mat b = follower().refine(scene.image, scene.coarse, whole);
  EXPECT_LE(max_abs_diff(a, b), 1e-5);
  std::printf("[ info ] chunked vs unchunked: max |diff| %.3g\n", max_abs_diff(a, b));
}

TEST_F(RefinerTest, OneTileEqualsNoTilingAndManyTilesStayClose) {
  const airm::test::TestScene scene = airm::test::make_scene({600, 400}, 17);
  RefineOptions untiled;
  untiled.scales = {0.5, 1.0};
  RefineOptions one_tile = untiled;
  one_tile.tile_size = 1024;  // larger than 600 + padding: one tile
  EXPECT_EQ(max_abs_diff(refiner().refine(scene.image, scene.coarse, untiled),
                         refiner().refine(scene.image, scene.coarse, one_tile)),
            0.0);

  RefineOptions tiled = untiled;
  tiled.tile_size = 256;
  tiled.tile_overlap = 96;
  for (const Refiner* r : {refiner_, follower_}) {
    airm::RefineStats stats;
    const cv::Mat a = r->refine(scene.image, scene.coarse, untiled);
    const cv::Mat b = r->refine(scene.image, scene.coarse, tiled, &stats);
    ASSERT_EQ(stats.stages.size(), 2u);
    EXPECT_GT(stats.stages.back().tiles, 4);
    const double max_diff = max_abs_diff(a, b);
    const double mean_diff = cv::mean(cv::abs(a - b))[0];
    std::printf("[ info ] %s: tiled (256/96, %d tiles) vs untiled, 600x400: max |diff| %.4f, mean |diff| %.5f, "
                "agreement %.4f%%\n",
                r == refiner_ ? "random net" : "mask-following net", stats.stages.back().tiles, max_diff, mean_diff,
                100.0 * airm::test::agreement(a, b));
    // Tiles see less context (attention within a tile only): an approximation, not rounding.
    EXPECT_LE(max_diff, 0.25);
    EXPECT_LE(mean_diff, 0.01);
  }
}

TEST_F(RefinerTest, TiledFeaturesApproximateWholeImageFeatures) {
  // What tiling changes is the encoder's context; compare the blended feature map itself (a random encoder
  // is a real function of the image, unlike a random MLP's nearly constant output).
  airm::AirmNet net = airm::load_weights(airm::test::random_weights(*dir_));
  net->eval();
  torch::NoGradGuard no_grad;
  const airm::test::TestScene scene = airm::test::make_scene({600, 400}, 19);
  cv::Mat mask;
  scene.coarse.convertTo(mask, CV_32F, 1.0 / 255.0);
  RefineOptions whole, tiled;
  tiled.tile_size = 256;
  tiled.tile_overlap = 96;
  const auto a = airm::refine_detail::encode_stage(net, scene.image, mask, 8, whole, torch::kCPU);
  const auto b = airm::refine_detail::encode_stage(net, scene.image, mask, 8, tiled, torch::kCPU);
  ASSERT_EQ(a.features.sizes(), b.features.sizes());
  EXPECT_EQ(a.tiles, 1);
  EXPECT_GT(b.tiles, 4);
  const double relative = ((a.features - b.features).norm() / a.features.norm()).item<double>();
  const double max_diff = (a.features - b.features).abs().max().item<double>();
  const double scale = a.features.abs().max().item<double>();
  std::printf("[ info ] tiled (256/96) vs whole-image features, 600x400: relative L2 %.4f, max |diff| %.3f of max "
              "|feature| %.3f\n",
              relative, max_diff, scale);
  EXPECT_LT(relative, 0.15);
}

TEST_F(RefinerTest, EncoderMatchesTheNetworksOwnEncode) {
  // The stage encoder (one tile) computes what AirmNet::encode does.
  airm::AirmNet net = airm::load_weights(airm::test::random_weights(*dir_));
  net->eval();
  torch::NoGradGuard no_grad;
  cv::Mat image(96, 128, CV_8UC3), mask(96, 128, CV_32F);
  cv::randu(image, 0, 255);
  cv::randu(mask, 0.0f, 1.0f);
  RefineOptions options;
  const auto enc = airm::refine_detail::encode_stage(net, image, mask, 0, options, torch::kCPU);
  cv::Mat rgb;
  cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
  const torch::Tensor rgb_t =
      torch::from_blob(rgb.data, {1, 96, 128, 3}, torch::kByte).permute({0, 3, 1, 2}).to(torch::kFloat) / 255.0;
  const torch::Tensor mask_t = torch::from_blob(mask.data, {1, 1, 96, 128}, torch::kFloat).clone();
  const airm::Encoded ref = net->encode(airm::normalize_input(rgb_t, mask_t));
  // The same float32 network on the same pixels, reached by another path (OpenCV vs torch
  // conversion, the tile's layout): at most reordered sums, a few ulps of each map's
  // magnitude carried through the encoder; 1e-5 (~84 eps) of max |reference|.
  using airm::test::tensors_close;
  EXPECT_TRUE(tensors_close(enc.features, ref.features, 1e-5));
  ASSERT_EQ(enc.weights.size(), ref.weights.size());
  for (size_t l = 0; l < ref.weights.size(); ++l) {
    EXPECT_TRUE(tensors_close(enc.weights[l].weight, ref.weights[l].weight, 1e-5)) << "layer " << l;
    EXPECT_TRUE(tensors_close(enc.weights[l].bias, ref.weights[l].bias, 1e-5)) << "layer " << l;
  }
  EXPECT_DOUBLE_EQ(enc.sy, 1.0);
  EXPECT_DOUBLE_EQ(enc.ty, 0.0);
}

TEST_F(RefinerTest, ConcurrentCallsGiveTheSequentialResults) {
  const airm::test::TestScene s1 = airm::test::make_scene({640, 480}, 21);
  const airm::test::TestScene s2 = airm::test::make_scene({500, 700}, 22);
  RefineOptions bf16;
  bf16.bf16 = true;
  const cv::Mat seq1 = follower().refine(s1.image, s1.coarse);
  const cv::Mat seq2 = follower().refine(s2.image, s2.coarse, bf16);
  cv::Mat par1, par2;
  std::thread t1([&] { par1 = follower().refine(s1.image, s1.coarse); });
  std::thread t2([&] { par2 = follower().refine(s2.image, s2.coarse, bf16); });
  t1.join();
  t2.join();
  EXPECT_EQ(max_abs_diff(seq1, par1), 0.0);
  EXPECT_EQ(max_abs_diff(seq2, par2), 0.0);
}

TEST_F(RefinerTest, Bf16AgreesWithFp32) {
  const airm::test::TestScene scene = airm::test::make_scene({1024, 768}, 31);
  RefineOptions bf16;
  bf16.bf16 = true;
  for (const Refiner* r : {refiner_, follower_}) {
    const cv::Mat a = r->refine(scene.image, scene.coarse);
    const cv::Mat b = r->refine(scene.image, scene.coarse, bf16);
    expect_probabilities(b, scene.image.size());
    const double iou = airm::test::binary_iou(a, b);
    std::printf("[ info ] %s, 1024x768: bf16 vs fp32 IoU %.4f%%, max |diff| %.4f\n",
                r == refiner_ ? "random net" : "mask-following net", 100 * iou, max_abs_diff(a, b));
    if (r == follower_) {
      EXPECT_GE(iou, 0.995);  // the random net's p ~ 0.5 everywhere flips at will
    }
  }
}

TEST(RefinerDevice, UnknownOrMissingDeviceIsAnError) {
  airm::test::TempDir dir("airm-refiner-device");
  EXPECT_THROW(Refiner(airm::test::random_weights(dir), airm::RefinerOptions{"toaster", 0}), airm::Error);
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(Refiner(airm::test::random_weights(dir), airm::RefinerOptions{"cuda", 0}), airm::Error);
  }
  EXPECT_THROW(Refiner(dir / "missing.pt"), airm::Error);
}

TEST(RefinerResidual, DenseSingleScaleEqualsTheNetworksForward) {
  // The refiner adds the coarse prior on its own query path and runs the encoder through its own stage
  // encoder: it must agree with AirmNet::forward, for each encoder family (MiT; the pretrained
  // MobileNetV2, which the stage encoder once did not know).
  for (const char* file : {"airm_mit_b0_residual.json", "airm_mnv2_residual.json"}) {
    SCOPED_TRACE(file);
    torch::manual_seed(3);
    airm::ModelConfig config = airm::ModelConfig::load(airm::test::source_dir() / "configs" / file);
    ASSERT_TRUE(config.residual);
    airm::AirmNet net(config);
    net->eval();
    cv::Mat image(64, 96, CV_8UC3), mask(64, 96, CV_32F);
    cv::randu(image, 0, 255);
    cv::randu(mask, 0.0f, 1.0f);
    cv::Mat rgb;
    cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
    const torch::Tensor rgb_t =
        torch::from_blob(rgb.data, {1, 64, 96, 3}, torch::kByte).permute({0, 3, 1, 2}).to(torch::kFloat) / 255.0;
    const torch::Tensor mask_t = torch::from_blob(mask.data, {1, 1, 64, 96}, torch::kFloat).clone();
    torch::Tensor reference;
    {
      torch::NoGradGuard no_grad;
      reference = torch::sigmoid(net->forward(airm::normalize_input(rgb_t, mask_t),
                                              airm::make_pixel_grid(64, 96).unsqueeze(0), airm::cell_for(64, 96)))
                      .view({64, 96});
    }
    airm::Refiner refiner(net, airm::RefinerOptions{"cpu", 1});
    RefineOptions options;
    options.scales = {1.0};
    options.dense = true;
    options.pad = 0;
    const cv::Mat refined = refiner.refine(image, mask, options);
    const cv::Mat expected(64, 96, CV_32F, reference.contiguous().data_ptr<float>());
    EXPECT_LE(max_abs_diff(refined, expected), 1e-5);
  }
}

// RefinerOptions::channels_last (the fast path) against NCHW (the reference), on odd sizes, both encoders,
// dense queries (no selection that a last-bit difference could flip), untiled and tiled, fp32 and bf16.
TEST(RefinerChannelsLast, EqualsNchwOnOddSizes) {
  const airm::test::TempDir dir("airm-channels-last");
  for (const char* config : {"airm_mnv2_residual.json", "airm_mit_b0.json"}) {
    const std::filesystem::path weights = dir / (std::string(config) + ".pt");
    torch::manual_seed(3);
    airm::AirmNet net(airm::ModelConfig::load(airm::test::source_dir() / "configs" / config));
    airm::save_weights(weights, net);
    const Refiner nchw(weights, airm::RefinerOptions{"cpu", 1, false});
    const Refiner channels_last(weights, airm::RefinerOptions{"cpu", 1, true});
    {  // A shared network's 4-D weights are stored channels-last (and only those).
      airm::AirmNet shared = airm::load_weights(weights);
      const Refiner converting(shared, airm::RefinerOptions{"cpu", 1, true});
      int converted = 0;
      for (const torch::Tensor& p : shared->parameters()) {
        if (p.dim() == 4 && p.size(1) > 1 && p.size(2) * p.size(3) > 1) {
          EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast)) << config;
          EXPECT_FALSE(p.is_contiguous()) << config;
          ++converted;
        }
      }
      EXPECT_GT(converted, 0) << config;
    }
    for (const cv::Size size : {cv::Size(333, 217), cv::Size(97, 61)}) {
      const airm::test::TestScene scene = airm::test::make_scene(size, 5);
      RefineOptions dense;
      dense.dense = true;
      dense.scales = {0.5, 1.0};
      RefineOptions tiled = dense;
      tiled.tile_size = 128;
      tiled.tile_overlap = 32;
      RefineOptions bf16 = dense;
      bf16.bf16 = true;
      for (const RefineOptions* options : {&dense, &tiled, &bf16}) {
        const cv::Mat a = nchw.refine(scene.image, scene.coarse, *options);
        const cv::Mat b = channels_last.refine(scene.image, scene.coarse, *options);
        const double max_diff = max_abs_diff(a, b), mean_diff = cv::mean(cv::abs(a - b))[0];
        const char* what = options == &dense ? "fp32" : options == &tiled ? "fp32 tiled" : "bf16";
        std::printf("[ info ] %s %dx%d %s: channels-last vs NCHW max |diff| %.3g, mean %.3g\n", config, size.width,
                    size.height, what, max_diff, mean_diff);
        if (options != &bf16 || !airm::bf16_convolutions_supported(torch::kCPU)) {
          // The same sums in another order: fp32 rounding (~1e-7 relative per operation) grown through some
          // fifty layers stays far below 1e-4 on a probability (sigmoid's slope is at most 1/4).
          EXPECT_LE(max_diff, 1e-4) << config << " " << what;
        } else {
          // bf16 keeps 8 bits of mantissa (2^-9 relative per rounding); rounding at different points of two
          // layouts moves logits by a few hundredths, probabilities by at most a quarter of that.
          EXPECT_LE(max_diff, 0.05) << config << " " << what;
          EXPECT_LE(mean_diff, 0.005) << config << " " << what;
        }
      }
    }
  }
}
