// Training data loader: batch shapes and values, determinism across worker
// counts and seek, rank partitioning, awkward images, coarse-mask quality,
// boundary queries, copy-paste, prefetch overlap, options JSON, and a smoke
// run on real training images when ../shared is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "airm/dataset.hpp"
#include "airm/degrade.hpp"
#include "airm/error.hpp"
#include "airm/model/implicit_function.hpp"
#include "airm/train/data_loader.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using airm::DataOptions;
using airm::Sample;
using airm::TrainBatch;
using airm::TrainLoader;
using airm::test::TempDir;

// A folder images/ + masks/ of generated pictures.
class Fixture {
 public:
  explicit Fixture(const std::string& name = "set") : root_(tmp_ / name) {
    fs::create_directories(root_ / "images");
    fs::create_directories(root_ / "masks");
  }
  // A textured picture (w x h) with `mask` (0/255) drawn in `fg` over it.
  void add(const std::string& name, const cv::Mat& mask, cv::Scalar fg = {40, 60, 220}) {
    cv::Mat img(mask.size(), CV_8UC3);
    cv::RNG rng(static_cast<uint64>(name.size() * 7919 + mask.cols));
    rng.fill(img, cv::RNG::UNIFORM, cv::Scalar(60, 90, 20), cv::Scalar(140, 200, 90));
    img.setTo(fg, mask);
    add_raw(name, img, mask);
  }
  void add_raw(const std::string& name, const cv::Mat& bgr, const cv::Mat& mask) {
    ASSERT_TRUE(cv::imwrite((root_ / "images" / (name + ".png")).string(), bgr));
    ASSERT_TRUE(cv::imwrite((root_ / "masks" / (name + ".png")).string(), mask));
  }
  std::vector<Sample> samples() const { return airm::discover_dataset(root_).samples; }
  const fs::path& root() const { return root_; }

 private:
  TempDir tmp_{"airm-loader"};
  fs::path root_;
};

cv::Mat disk(int w, int h, cv::Point c, int r) {
  cv::Mat m = cv::Mat::zeros(h, w, CV_8UC1);
  cv::circle(m, c, r, cv::Scalar(255), cv::FILLED);
  return m;
}

cv::Mat rect(int w, int h, cv::Rect r) {
  cv::Mat m = cv::Mat::zeros(h, w, CV_8UC1);
  m(r).setTo(255);
  return m;
}

// Seven samples of awkward sizes, all with an object.
void add_shapes(Fixture& f) {
  f.add("a_disk", disk(301, 203, {150, 100}, 60));
  f.add("b_rect", rect(250, 250, {40, 70, 150, 101}));
  f.add("c_disk", disk(177, 131, {80, 70}, 45));
  f.add("d_two", [] {
    cv::Mat m = disk(222, 199, {60, 60}, 40);
    cv::circle(m, {160, 140}, 35, cv::Scalar(255), cv::FILLED);
    return m;
  }());
  f.add("e_ring", [] {
    cv::Mat m = disk(190, 210, {95, 105}, 70);
    cv::circle(m, {95, 105}, 30, cv::Scalar(0), cv::FILLED);
    return m;
  }());
  f.add("f_tri", [] {
    cv::Mat m = cv::Mat::zeros(183, 240, CV_8UC1);
    std::vector<cv::Point> tri{{20, 170}, {120, 10}, {225, 160}};
    cv::fillConvexPoly(m, tri, cv::Scalar(255));
    return m;
  }());
  f.add("g_rect", rect(160, 145, {30, 25, 90, 80}));
}

DataOptions small_options(int crop = 64) {
  DataOptions o;
  o.crop = crop;
  o.queries = 300;
  return o;
}

cv::Mat to_mat(const torch::Tensor& plane01) {  // [S,S] float 0/1 -> CV_8UC1 0/1
  const torch::Tensor u8 = plane01.to(torch::kUInt8).contiguous();
  return cv::Mat(static_cast<int>(u8.size(0)), static_cast<int>(u8.size(1)), CV_8UC1, u8.data_ptr()).clone();
}

torch::Tensor rgb_of(const TrainBatch& b) {
  const torch::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return b.input.slice(1, 0, 3) * std + mean;
}

void expect_same(const TrainBatch& a, const TrainBatch& b, const std::string& what) {
  EXPECT_EQ(a.iteration, b.iteration) << what;
  EXPECT_EQ(a.samples, b.samples) << what;
  EXPECT_TRUE(torch::equal(a.input, b.input)) << what;
  EXPECT_TRUE(torch::equal(a.gt, b.gt)) << what;
  EXPECT_TRUE(torch::equal(a.coarse, b.coarse)) << what;
  EXPECT_TRUE(torch::equal(a.coord, b.coord)) << what;
  EXPECT_TRUE(torch::equal(a.target, b.target)) << what;
}

bool binary01(const torch::Tensor& t) { return ((t == 0) | (t == 1)).all().item<bool>(); }

// gt at the pixel containing each query: [B,Q].
torch::Tensor gt_at(const TrainBatch& b) {
  const int64_t S = b.gt.size(2);
  const torch::Tensor idx = torch::floor((b.coord.to(torch::kFloat64) + 1) * (S / 2.0)).clamp(0, S - 1).to(torch::kLong);
  const torch::Tensor flat = idx.select(2, 0) * S + idx.select(2, 1);
  return b.gt.flatten(1).gather(1, flat);
}

// ---------------------------------------------------------------- batches

TEST(TrainLoader, AllModeBatchShapesAndValues) {
  Fixture f;
  add_shapes(f);
  TrainLoader loader(f.samples(), small_options(), 3, 42, 0, 1, 0);
  const TrainBatch b = loader.make_batch(2);
  const int64_t S = 64;
  EXPECT_EQ(b.iteration, 2);
  EXPECT_EQ(b.input.sizes(), (std::vector<int64_t>{3, 4, S, S}));
  EXPECT_EQ(b.gt.sizes(), (std::vector<int64_t>{3, 1, S, S}));
  EXPECT_EQ(b.coarse.sizes(), (std::vector<int64_t>{3, 1, S, S}));
  EXPECT_EQ(b.coord.sizes(), (std::vector<int64_t>{3, S * S, 2}));
  EXPECT_EQ(b.target.sizes(), (std::vector<int64_t>{3, S * S}));
  EXPECT_EQ(b.input.scalar_type(), torch::kFloat32);
  EXPECT_EQ(b.coord.scalar_type(), torch::kFloat32);
  EXPECT_EQ(b.samples.size(), 3u);
  EXPECT_TRUE(binary01(b.gt));
  EXPECT_TRUE(binary01(b.coarse));
  EXPECT_TRUE(binary01(b.target));
  // normalize_input: ImageNet-normalised RGB in [0,1], mask as (m - 0.5) * 2.
  const torch::Tensor rgb = rgb_of(b);
  EXPECT_GE(rgb.min().item<double>(), -1e-5);
  EXPECT_LE(rgb.max().item<double>(), 1 + 1e-5);
  EXPECT_GT((rgb.amax({2, 3}) - rgb.amin({2, 3})).min().item<double>(), 0.05);  // not blank
  EXPECT_TRUE(torch::allclose(b.input.slice(1, 3, 4), (b.coarse - 0.5) * 2));
  // Queries: every pixel centre, row-major; targets = gt there.
  const torch::Tensor grid = airm::make_pixel_grid(S, S, torch::kFloat32);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(torch::equal(b.coord[i], grid));
  EXPECT_TRUE(torch::equal(b.target, b.gt.flatten(1)));
  EXPECT_TRUE(torch::equal(gt_at(b), b.target));
  EXPECT_LT(b.coord.abs().max().item<double>(), 1.0);
  // Every image of the shapes fixture is large enough to keep its size: some crops hold foreground.
  EXPECT_GT(b.gt.sum().item<double>(), 0);
}

TEST(TrainLoader, BoundaryModeQueriesTargetsAndBandShare) {
  Fixture f;
  add_shapes(f);
  DataOptions o = small_options(96);
  o.query_mode = "boundary";
  o.queries = 777;
  o.boundary_share = 0.6;
  o.boundary_band = 3;
  TrainLoader loader(f.samples(), o, 3, 7, 0, 1, 0);
  double in_band = 0, expected = 0, images = 0;
  for (int i = 0; i < 6; ++i) {
    const TrainBatch b = loader.make_batch(i);
    ASSERT_EQ(b.coord.sizes(), (std::vector<int64_t>{3, 777, 2}));
    ASSERT_EQ(b.target.sizes(), (std::vector<int64_t>{3, 777}));
    EXPECT_LT(b.coord.abs().max().item<double>(), 1.0);
    EXPECT_TRUE(torch::equal(gt_at(b), b.target));
    // Continuous positions: not only pixel centres.
    const torch::Tensor centre = (b.coord + 1) * (96 / 2.0) - 0.5;
    EXPECT_GT((centre - centre.round()).abs().max().item<double>(), 0.2);
    const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(7, 7));
    for (int k = 0; k < 3; ++k) {
      cv::Mat ga, gb, band;
      cv::morphologyEx(to_mat(b.gt[k][0]), ga, cv::MORPH_GRADIENT, kernel);
      cv::morphologyEx(to_mat(b.coarse[k][0]), gb, cv::MORPH_GRADIENT, kernel);
      cv::bitwise_or(ga, gb, band);
      const double frac = static_cast<double>(cv::countNonZero(band)) / band.total();
      if (frac == 0) continue;  // no boundary in this crop: all uniform
      const auto c = b.coord[k];
      int hits = 0;
      for (int q = 0; q < 777; ++q) {
        const int y = static_cast<int>(std::floor((c[q][0].item<double>() + 1) * 48));
        const int x = static_cast<int>(std::floor((c[q][1].item<double>() + 1) * 48));
        hits += band.at<uchar>(y, x) != 0;
      }
      in_band += hits / 777.0;
      expected += 0.6 + 0.4 * frac;
      images += 1;
    }
  }
  ASSERT_GT(images, 10);
  EXPECT_NEAR(in_band / images, expected / images, 0.03);
  EXPECT_GT(in_band / images, 0.6);
}

// ---------------------------------------------------------------- determinism

TEST(TrainLoader, NextEqualsMakeBatchWithAnyWorkerCount) {
  Fixture f;
  add_shapes(f);
  DataOptions o = small_options();
  o.query_mode = "boundary";
  o.copy_paste = 0.5;
  std::vector<TrainBatch> reference;
  {
    TrainLoader ref(f.samples(), o, 3, 99, 1, 2, 0);
    for (int i = 0; i < 6; ++i) reference.push_back(ref.make_batch(i));
  }
  for (int workers : {0, 1, 2, 3}) {
    TrainLoader loader(f.samples(), o, 3, 99, 1, 2, workers, 2);
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(loader.iteration(), i);
      expect_same(loader.next(), reference[i], "workers " + std::to_string(workers) + " batch " + std::to_string(i));
    }
    EXPECT_EQ(loader.stats().batches, 6);
    // seek: forwards and back.
    loader.seek(4);
    EXPECT_EQ(loader.iteration(), 4);
    expect_same(loader.next(), reference[4], "seek 4, workers " + std::to_string(workers));
    loader.seek(1);
    expect_same(loader.next(), reference[1], "seek 1, workers " + std::to_string(workers));
    expect_same(loader.next(), reference[2], "after seek 1, workers " + std::to_string(workers));
  }
  // Another seed, or another rank, gives other batches.
  TrainLoader other(f.samples(), o, 3, 100, 1, 2, 0);
  EXPECT_FALSE(torch::equal(other.make_batch(0).input, reference[0].input));
  TrainLoader rank0(f.samples(), o, 3, 99, 0, 2, 0);
  EXPECT_FALSE(torch::equal(rank0.make_batch(0).input, reference[0].input));
}

TEST(TrainLoader, SeekBeforeFirstNextStartsThere) {
  Fixture f;
  add_shapes(f);
  TrainLoader loader(f.samples(), small_options(), 2, 5, 0, 1, 2);
  loader.seek(11);
  expect_same(loader.next(), loader.make_batch(11), "seek 11");
  EXPECT_EQ(loader.iteration(), 12);
  EXPECT_THROW(loader.seek(-1), airm::Error);
}

TEST(TrainLoader, RanksSplitTheGlobalBatchOfOneProcess) {
  Fixture f;
  add_shapes(f);  // 7 samples
  const int W = 3, B = 3, iterations = 8;
  TrainLoader whole(f.samples(), small_options(), W * B, 1234, 0, 1, 0);
  std::vector<int64_t> stream;  // all ranks' samples in stream order
  for (int i = 0; i < iterations; ++i) {
    std::vector<int64_t> joined;
    for (int r = 0; r < W; ++r) {
      TrainLoader loader(f.samples(), small_options(), B, 1234, r, W, 0);
      EXPECT_EQ(loader.samples_per_epoch(), 7);
      const auto s = loader.batch_samples(i);
      ASSERT_EQ(s.size(), static_cast<std::size_t>(B));
      joined.insert(joined.end(), s.begin(), s.end());
      EXPECT_EQ(loader.epoch_of(i), (i * W * B + r * B) / 7);
    }
    EXPECT_EQ(joined, whole.batch_samples(i)) << "iteration " << i;
    stream.insert(stream.end(), joined.begin(), joined.end());
  }
  // Each epoch of the stream is a permutation of all samples, a new one each time.
  std::set<std::vector<int64_t>> orders;
  for (std::size_t e = 0; (e + 1) * 7 <= stream.size(); ++e) {
    std::vector<int64_t> order(stream.begin() + static_cast<std::ptrdiff_t>(e * 7),
                               stream.begin() + static_cast<std::ptrdiff_t>((e + 1) * 7));
    EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), 7u) << "epoch " << e;
    orders.insert(order);
  }
  EXPECT_GT(orders.size(), 3u);
  // The images themselves (crops, augmentation, coarse masks) are the one process's, split.
  const TrainBatch reference = whole.make_batch(5);
  for (int r = 0; r < W; ++r) {
    TrainLoader loader(f.samples(), small_options(), B, 1234, r, W, 0);
    const TrainBatch part = loader.make_batch(5);
    EXPECT_TRUE(torch::equal(part.input, reference.input.narrow(0, r * B, B))) << "rank " << r;
    EXPECT_TRUE(torch::equal(part.target, reference.target.narrow(0, r * B, B))) << "rank " << r;
  }
}

// ---------------------------------------------------------------- awkward inputs

TEST(TrainLoader, ImageSmallerThanCropAndOnePixelObject) {
  Fixture f;
  f.add("small", rect(100, 37, {30, 10, 40, 17}));
  cv::Mat line = cv::Mat::zeros(240, 230, CV_8UC1);
  line.col(115).setTo(255);
  f.add("thin", line);
  DataOptions o = small_options(128);
  o.perturb_share = 0.5;
  o.query_mode = "boundary";
  TrainLoader loader(f.samples(), o, 2, 3, 0, 1, 0);
  const auto samples = f.samples();
  for (int i = 0; i < 6; ++i) {
    const TrainBatch b = loader.make_batch(i);
    ASSERT_EQ(b.input.sizes(), (std::vector<int64_t>{2, 4, 128, 128}));
    for (int k = 0; k < 2; ++k) {
      const double fg = b.gt[k].sum().item<double>();
      if (samples[b.samples[k]].name == "small") {
        // 100x37 -> 346x128: the 40x17 box becomes about 138x59, partly inside the crop.
        EXPECT_GT(fg, 0);
      } else {
        EXPECT_GE(fg, 128);  // the line crosses the whole crop, one pixel wide
        EXPECT_LE(fg, 128 * 2);
      }
    }
    EXPECT_TRUE(torch::equal(gt_at(b), b.target));
  }
  // The same at the default crop of 224.
  DataOptions big = small_options(224);
  TrainLoader loader224(f.samples(), big, 2, 3, 0, 1, 0);
  EXPECT_EQ(loader224.make_batch(0).gt.size(2), 224);
}

// ---------------------------------------------------------------- coarse masks

double iou(const torch::Tensor& a, const torch::Tensor& b) {
  const double i = (a * b).sum().item<double>(), u = ((a + b) > 0).sum().item<double>();
  return u == 0 ? 1.0 : i / u;
}

TEST(TrainLoader, CoarseMasksDifferFromGtWithSaneIoU) {
  Fixture f;
  // Objects in the middle of small images: every 96 crop holds a boundary.
  f.add("p", disk(120, 110, {60, 55}, 36));
  f.add("q", rect(113, 127, {25, 30, 60, 62}));
  f.add("r", disk(131, 100, {66, 50}, 30));
  for (const double share : {0.8, 1.0, 0.0}) {
    DataOptions o = small_options(96);
    o.perturb_share = share;
    TrainLoader loader(f.samples(), o, 5, 17, 0, 1, 0);
    double sum = 0, lo = 1;
    int differ = 0, n = 0;
    for (int i = 0; i < 10; ++i) {
      const TrainBatch b = loader.make_batch(i);
      for (int k = 0; k < 5; ++k, ++n) {
        const double v = iou(b.gt[k], b.coarse[k]);
        sum += v;
        lo = std::min(lo, v);
        differ += !torch::equal(b.gt[k], b.coarse[k]);
      }
    }
    const double mean = sum / n;
    SCOPED_TRACE("perturb_share " + std::to_string(share) + ": mean IoU " + std::to_string(mean) + ", min " +
                 std::to_string(lo) + ", differ " + std::to_string(differ) + "/" + std::to_string(n));
    EXPECT_EQ(n, 50);
    EXPECT_GE(mean, 0.6);
    EXPECT_LT(mean, 0.99);
    EXPECT_GE(differ, 45);
    if (share == 1.0) {
      EXPECT_GE(lo, 0.8 - 0.02);  // perturbation lands on its target IoU in [0.8, 1)
    }
  }
}

TEST(TrainLoader, SoftLowresMasksAreTheUnthresholdedOnes) {
  Fixture f;
  f.add("p", disk(120, 110, {60, 55}, 36));
  f.add("q", rect(113, 127, {25, 30, 60, 62}));
  for (const char* from : {"crop", "image"}) {
    DataOptions binary = small_options(96);
    binary.perturb_share = 0.0;  // every mask low-res
    binary.coarse_from = from;
    DataOptions soft = binary;
    soft.soft_share = 1.0;
    TrainLoader a(f.samples(), binary, 4, 5, 0, 1, 0), b(f.samples(), soft, 4, 5, 0, 1, 0);
    int fractional = 0;
    for (int i = 0; i < 3; ++i) {
      const TrainBatch hard = a.make_batch(i), smooth = b.make_batch(i);
      EXPECT_TRUE(binary01(hard.coarse));
      EXPECT_GE(smooth.coarse.min().item<double>(), 0.0);
      EXPECT_LE(smooth.coarse.max().item<double>(), 1.0);
      fractional += ((smooth.coarse > 0) & (smooth.coarse < 1)).sum().item<int>();
      // The same draws otherwise: thresholding the soft mask at one half gives the binary one, and the
      // image, ground truth and queries are untouched.
      EXPECT_TRUE(torch::equal((smooth.coarse > 0.5).to(torch::kFloat32), hard.coarse)) << from << " " << i;
      EXPECT_TRUE(torch::equal(smooth.gt, hard.gt));
      EXPECT_TRUE(torch::equal(smooth.input.slice(1, 0, 3), hard.input.slice(1, 0, 3)));
      EXPECT_TRUE(torch::equal(smooth.coord, hard.coord));
      EXPECT_TRUE(torch::allclose(smooth.input.slice(1, 3, 4), (smooth.coarse - 0.5) * 2));
    }
    EXPECT_GT(fractional, 100) << from;  // soft values along every boundary
  }
}

TEST(TrainLoader, CoarseFromTheWholeImageAndBoundaryCrops) {
  Fixture f;
  // A small object in a large image: uniform 64 crops mostly miss its boundary.
  f.add("big", disk(401, 307, {300, 80}, 20));
  f.add("big2", rect(355, 280, {20, 200, 40, 30}));
  auto has_boundary = [](const torch::Tensor& gt) {
    const double m = gt.mean().item<double>();
    return m > 0 && m < 1;
  };
  for (const std::string& from : {"crop", "image"}) {
    DataOptions o = small_options(64);
    o.coarse_from = from;
    o.boundary_crop = 1.0;
    o.perturb_share = 1.0;
    TrainLoader loader(f.samples(), o, 4, 23, 0, 1, 0);
    int with_boundary = 0, n = 0;
    double sum = 0;
    for (int i = 0; i < 6; ++i) {
      const TrainBatch b = loader.make_batch(i);
      for (int k = 0; k < 4; ++k, ++n) {
        with_boundary += has_boundary(b.gt[k]);
        sum += iou(b.gt[k], b.coarse[k]);
      }
    }
    SCOPED_TRACE("coarse_from " + from + ": mean crop IoU " + std::to_string(sum / n));
    EXPECT_EQ(with_boundary, n);  // every crop centred on the boundary holds some of it
    // A whole-image perturbation at IoU >= 0.8 leaves crops around the boundary at lower IoU than
    // one aimed at the crop itself, but the coarse mask is still the object's.
    EXPECT_GE(sum / n, 0.3);
    EXPECT_LT(sum / n, 0.99);
  }
  // Uniform crops of the same images mostly see no boundary.
  DataOptions uniform = small_options(64);
  TrainLoader loader(f.samples(), uniform, 4, 23, 0, 1, 0);
  int with_boundary = 0;
  for (int i = 0; i < 6; ++i) {
    const TrainBatch b = loader.make_batch(i);
    for (int k = 0; k < 4; ++k) with_boundary += has_boundary(b.gt[k]);
  }
  EXPECT_LT(with_boundary, 18);
}

TEST(TrainLoader, CoarseFromImageIsTheCropOfTheWholeImageDegradation) {
  // Low-res factor 8 of the whole image, then cropped: equal to lowres_mask of the image, cropped.
  Fixture f;
  f.add("only", disk(200, 160, {100, 80}, 50));
  DataOptions o = small_options(160);  // the crop covers the image's short side: x0 in [0, 40], y0 = 0
  o.coarse_from = "image";
  o.perturb_share = 0.0;
  o.lowres_min = o.lowres_max = 8;
  o.flips = false;
  o.jitter = 0;
  o.grayscale = 0;
  TrainLoader loader(f.samples(), o, 1, 5, 0, 1, 0);
  cv::Mat whole = airm::lowres_mask(disk(200, 160, {100, 80}, 50), [] {
    airm::LowresOptions l;
    l.factor = 8;
    return l;
  }());
  cv::threshold(whole, whole, 127, 1, cv::THRESH_BINARY);
  for (int i = 0; i < 4; ++i) {
    const TrainBatch b = loader.make_batch(i);
    const cv::Mat coarse = to_mat(b.coarse[0][0]);
    bool found = false;
    for (int x0 = 0; x0 <= 40 && !found; ++x0) {
      found = cv::countNonZero(coarse != whole(cv::Rect(x0, 0, 160, 160))) == 0 &&
              cv::countNonZero(to_mat(b.gt[0][0]) != disk(200, 160, {100, 80}, 50)(cv::Rect(x0, 0, 160, 160)) / 255) == 0;
    }
    EXPECT_TRUE(found) << "batch " << i;
  }
}

// ---------------------------------------------------------------- copy-paste

TEST(TrainLoader, CopyPasteAddsTheDonorObjectAsForeground) {
  Fixture f;
  f.add_raw("bg", cv::Mat(90, 100, CV_8UC3, cv::Scalar(0, 200, 0)), cv::Mat::zeros(90, 100, CV_8UC1));
  cv::Mat donor(120, 110, CV_8UC3, cv::Scalar(200, 0, 0));  // blue
  const cv::Mat donor_mask = disk(110, 120, {50, 60}, 30);
  donor.setTo(cv::Scalar(0, 0, 230), donor_mask);  // red object
  f.add_raw("obj", donor, donor_mask);
  DataOptions o = small_options(80);
  o.jitter = 0;
  o.grayscale = 0;
  o.copy_paste = 1.0;
  const auto samples = f.samples();
  const int64_t bg = samples[0].name == "bg" ? 0 : 1;
  TrainLoader with(samples, o, 2, 8, 0, 1, 0);
  o.copy_paste = 0.0;
  TrainLoader without(samples, o, 2, 8, 0, 1, 0);
  for (int i = 0; i < 3; ++i) {
    const TrainBatch b = with.make_batch(i), c = without.make_batch(i);
    const int k = b.samples[0] == bg ? 0 : 1;
    ASSERT_EQ(b.samples[k], bg);
    EXPECT_EQ(c.gt[k].sum().item<double>(), 0);  // nothing without pasting
    const double fg = b.gt[k].sum().item<double>();
    // The disk's box (61 px) scaled to 30%..80% of 80 px: a disk of 24..64 px across.
    EXPECT_GT(fg, 0.6 * 3.14159 * 12 * 12);
    EXPECT_LT(fg, 1.1 * 3.14159 * 32 * 32);
    // Pasted pixels are the donor's red, the rest the background's green.
    const torch::Tensor rgb = rgb_of(b)[k];
    const torch::Tensor m = b.gt[k][0] > 0.5;
    const torch::Tensor red = (rgb[0] > 0.7) & (rgb[1] < 0.2);
    EXPECT_GT((red & m).sum().item<double>(), 0.9 * fg);
    EXPECT_EQ((red & ~m).sum().item<double>(), 0);
    // The coarse mask is made from the union.
    EXPECT_GT(b.coarse[k].sum().item<double>(), 0);
  }
}

// ---------------------------------------------------------------- threads

TEST(TrainLoader, RescaleToALongSideBeforeCropping) {
  // A 997x601 picture with a centred disk of radius 240, rescaled to a long
  // side of 64 (64x39), then covered to a short side of 64 (105x64): the disk
  // (radius 25.2, 49% of a 64x64 crop) lies inside every crop's rows, and any
  // 64 of the 105 columns hold at least 37 of its 50 px width, so every crop's
  // foreground share is in (0.30, 0.50). At native size a 64 px crop of the
  // 997 px image mostly sees all foreground or none.
  Fixture f;
  f.add("big_disk", disk(997, 601, {498, 300}, 240));
  DataOptions o = small_options(64);
  o.long_side_min = 64;
  o.long_side_max = 64;
  o.boundary_crop = 0;
  TrainLoader rescaled(f.samples(), o, 4, 3, 0, 1, 0);
  for (int it = 0; it < 3; ++it) {
    const TrainBatch b = rescaled.make_batch(it);
    for (int64_t i = 0; i < b.gt.size(0); ++i) {
      const double share = b.gt[i].mean().item<double>();
      EXPECT_GT(share, 0.30) << "iteration " << it << " image " << i;
      EXPECT_LT(share, 0.50) << "iteration " << it << " image " << i;
    }
  }
  // Off (0, 0): native size; the same generator draws give crops of a 997 px image.
  o.long_side_min = o.long_side_max = 0;
  TrainLoader native(f.samples(), o, 8, 3, 0, 1, 0);
  int whole = 0;
  for (int it = 0; it < 3; ++it) {
    const TrainBatch b = native.make_batch(it);
    for (int64_t i = 0; i < b.gt.size(0); ++i) {
      const double share = b.gt[i].mean().item<double>();
      whole += share == 0.0 || share == 1.0;
    }
  }
  EXPECT_GT(whole, 0);
}

TEST(TrainLoader, StoredCoarseMasksFollowTheImage) {
  // Stored masks equal to the ground truth go
  // through rescale, cover, crop and flip with the image: with stored_share 1
  // every coarse mask equals its ground truth exactly.
  Fixture f;
  add_shapes(f);
  TempDir stored("airm-stored");
  const fs::path dir = stored.path() / "masks";
  fs::create_directories(dir / "set");
  for (const Sample& s : f.samples()) {
    cv::Mat gt = cv::imread(s.gt.string(), cv::IMREAD_GRAYSCALE);
    ASSERT_TRUE(cv::imwrite((dir / "set" / (s.name + ".png")).string(), gt));
  }
  DataOptions o = small_options(64);
  o.long_side_min = 96;
  o.long_side_max = 200;
  o.coarse_dir = dir.string();
  o.stored_share = 1.0;
  TrainLoader all(f.samples(), o, 7, 5, 0, 1, 0);
  int differs_from_perturbed = 0;
  DataOptions synthetic = o;
  synthetic.coarse_dir.clear();
  synthetic.stored_share = 0.0;
  TrainLoader none(f.samples(), synthetic, 7, 5, 0, 1, 0);
  for (int it = 0; it < 3; ++it) {
    const TrainBatch b = all.make_batch(it);
    EXPECT_TRUE(torch::equal(b.coarse, b.gt)) << "iteration " << it;
    const TrainBatch n = none.make_batch(it);
    EXPECT_TRUE(torch::equal(b.gt, n.gt)) << "iteration " << it;  // crops and flips unchanged
    differs_from_perturbed += !torch::equal(n.coarse, n.gt);
  }
  EXPECT_EQ(differs_from_perturbed, 3);

  // stored_share 0: the stream of a loader without stored masks, bit for bit.
  o.stored_share = 0.0;
  TrainLoader off(f.samples(), o, 7, 5, 0, 1, 0);
  for (int it = 0; it < 3; ++it) expect_same(off.make_batch(it), none.make_batch(it), "share 0");

  // stored_share 1/2: some images use their stored mask, others a synthetic one.
  o.stored_share = 0.5;
  TrainLoader half(f.samples(), o, 7, 5, 0, 1, 0);
  int stored_used = 0, images = 0;
  for (int it = 0; it < 6; ++it) {
    const TrainBatch b = half.make_batch(it);
    for (int64_t i = 0; i < b.gt.size(0); ++i, ++images) stored_used += torch::equal(b.coarse[i], b.gt[i]);
  }
  EXPECT_GT(stored_used, images / 5);
  EXPECT_LT(stored_used, images * 4 / 5);

  // A folder that holds none of the samples' masks is refused, naming it.
  o.coarse_dir = (stored.path() / "empty").string();
  fs::create_directories(o.coarse_dir);
  try {
    TrainLoader refused(f.samples(), o, 2, 0, 0, 1, 0);
    FAIL() << "expected airm::Error";
  } catch (const airm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("DATASET/NAME.png"), std::string::npos) << e.what();
  }
}

TEST(TrainLoader, PrefetchOverlapsASlowConsumer) {
  Fixture f;
  add_shapes(f);
  const DataOptions o = small_options(96);
  // Cost of one batch on this machine.
  TrainLoader probe(f.samples(), o, 4, 1, 0, 1, 0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) probe.make_batch(i);
  const double build = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 3;
  const auto pause = std::chrono::duration<double>(3 * build + 0.005);

  auto run = [&](int workers) {
    TrainLoader loader(f.samples(), o, 4, 1, 0, 1, workers, 4);
    loader.next();  // cold start
    const double before = loader.stats().wait_seconds;
    for (int i = 0; i < 6; ++i) {
      std::this_thread::sleep_for(pause);  // the "training step"
      loader.next();
    }
    const auto s = loader.stats();
    EXPECT_EQ(s.batches, 7);
    EXPECT_GT(s.produce_seconds, 0);
    return s.wait_seconds - before;
  };
  const double overlapped = run(2);
  const double serial = run(0);
  std::printf("batch build %.1f ms; wait over 6 slow steps: 2 workers %.2f ms, none %.1f ms\n", build * 1e3,
              overlapped * 1e3, serial * 1e3);
  // Relative bounds (a loaded machine stretches every absolute time): without workers next() pays for
  // all 6 batches, with them (~0 on an idle machine) at most a quarter of that.
  EXPECT_GT(serial, build);
  EXPECT_LT(overlapped, 0.25 * serial);
}

TEST(TrainLoader, WorkerErrorsReachNextWithTheFileName) {
  Fixture f;
  add_shapes(f);
  std::vector<Sample> samples = f.samples();
  samples[2].image = f.root() / "images" / "missing.png";
  TrainLoader loader(samples, small_options(), 7, 1, 0, 1, 2);  // batch 7: every sample
  try {
    loader.next();
    FAIL() << "no error";
  } catch (const airm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loader.next(), airm::Error);  // again, until a seek
  EXPECT_EQ(loader.iteration(), 0);
}

TEST(TrainLoader, BadArgumentsThrow) {
  Fixture f;
  add_shapes(f);
  const auto s = f.samples();
  EXPECT_THROW(TrainLoader({}, small_options(), 2, 0), airm::Error);
  EXPECT_THROW(TrainLoader(s, small_options(), 0, 0), airm::Error);
  EXPECT_THROW(TrainLoader(s, small_options(), 2, 0, 3, 3), airm::Error);   // rank >= world
  EXPECT_THROW(TrainLoader(s, small_options(), 2, 0, 0, 1, -1), airm::Error);
  EXPECT_THROW(TrainLoader(s, small_options(), 2, 0, 0, 1, 1, 0), airm::Error);
  DataOptions bad = small_options();
  bad.query_mode = "edges";
  EXPECT_THROW(TrainLoader(s, bad, 2, 0), airm::Error);
}

// ---------------------------------------------------------------- options

TEST(DataOptions, JsonRoundTripUnknownKeysAndFieldErrors) {
  DataOptions o;
  o.crop = 160;
  o.query_mode = "boundary";
  o.perturb.min_iou = 0.7;
  o.copy_paste = 0.25;
  o.stored_share = 0.3;
  o.coarse_dir = "masks/deeplab";
  const DataOptions back = DataOptions::from_json(o.to_json());
  EXPECT_EQ(back.to_json(), o.to_json());
  EXPECT_EQ(DataOptions::from_json(nlohmann::json::object()).to_json(), DataOptions().to_json());
  EXPECT_EQ(DataOptions::from_json({{"perturb", {{"max_iou", 0.9}}}}).perturb.max_iou, 0.9);

  auto message = [](const nlohmann::json& j) -> std::string {
    try {
      DataOptions::from_json(j, "train.json");
    } catch (const airm::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({{"crops", 224}}).find("crops"), std::string::npos);
  EXPECT_NE(message({{"crops", 224}}).find("train.json"), std::string::npos);
  EXPECT_NE(message({{"perturb", {{"min", 0.5}}}}).find("min"), std::string::npos);
  EXPECT_NE(message({{"query_mode", "edges"}}).find("query_mode"), std::string::npos);
  EXPECT_NE(message({{"crop", 4}}).find("crop"), std::string::npos);
  EXPECT_NE(message({{"lowres_min", 8}, {"lowres_max", 4}}).find("lowres_max"), std::string::npos);
  EXPECT_NE(message({{"perturb", {{"min_iou", 0.9}, {"max_iou", 0.8}}}}).find("perturb"), std::string::npos);
  EXPECT_NE(message({{"boundary_share", 1.5}}).find("boundary_share"), std::string::npos);
  EXPECT_NE(message({{"copy_paste", -0.1}}).find("copy_paste"), std::string::npos);
  EXPECT_NE(message({{"jitter", "lots"}}).find("jitter"), std::string::npos);
  EXPECT_NE(message({{"queries", 0}}).find("queries"), std::string::npos);
  EXPECT_NE(message({{"crop", 256}, {"long_side_min", 200}, {"long_side_max", 300}}).find("long_side_min: expected >= crop (256)"),
            std::string::npos);
  EXPECT_NE(message({{"crop", 64}, {"long_side_min", 300}, {"long_side_max", 200}}).find("long_side_max: expected >= long_side_min (300)"),
            std::string::npos);
  EXPECT_NE(message({{"stored_share", 2.0}}).find("stored_share"), std::string::npos);
  EXPECT_NE(message(nlohmann::json::array()), "");
}

// ---------------------------------------------------------------- real data

TEST(TrainLoader, SmokeOnRealTrainingImages) {
  const fs::path shared = airm::test::shared_dir();
  if (shared.empty()) GTEST_SKIP() << "no ../shared";
  const auto all = airm::discover_split(shared / "data", "train").samples;
  ASSERT_GE(all.size(), 16u);
  std::vector<Sample> samples;
  for (std::size_t i = 0; i < all.size(); i += all.size() / 16) samples.push_back(all[i]);
  DataOptions o;  // defaults: crop 224, "all" queries
  o.copy_paste = 0.3;
  for (int workers : {1, 2}) {
    TrainLoader loader(samples, o, 8, 2024, 0, 1, workers, 4);
    const auto t0 = std::chrono::steady_clock::now();
    const int n = 4;
    for (int i = 0; i < n; ++i) {
      const TrainBatch b = loader.next();
      ASSERT_EQ(b.input.sizes(), (std::vector<int64_t>{8, 4, 224, 224}));
      EXPECT_TRUE(torch::equal(b.target, b.gt.flatten(1)));
      EXPECT_TRUE(binary01(b.coarse));
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto s = loader.stats();
    std::printf("real data, batch 8 at 224, %d worker(s): %.0f ms per batch (wall), %.0f ms worker time per batch\n",
                workers, wall / n * 1e3, s.produce_seconds / std::max<int64_t>(1, s.batches) * 1e3);
  }
}

}  // namespace

// ---------------------------------------------------------------- repeats

TEST(TrainLoader, RepeatShowsADatasetThatOftenPerEpoch) {
  Fixture a("plain"), b("boosted"), c("dropped");
  add_shapes(a);
  b.add("x", disk(120, 90, {60, 45}, 30));
  b.add("y", rect(100, 110, {20, 30, 50, 40}));
  c.add("z", disk(80, 80, {40, 40}, 20));
  std::vector<Sample> samples = a.samples();
  for (const Sample& s : b.samples()) samples.push_back(s);
  for (const Sample& s : c.samples()) samples.push_back(s);
  DataOptions o = small_options();
  o.repeat = {{"boosted", 3}, {"dropped", 0}};
  const DataOptions back = DataOptions::from_json(o.to_json());
  EXPECT_EQ(back.repeat, o.repeat);
  const int n = 7 + 3 * 2;
  TrainLoader loader(samples, o, n, 5, 0, 1, 0);
  ASSERT_EQ(loader.samples_per_epoch(), n);
  std::map<std::string, int> seen;
  for (int64_t index : loader.batch_samples(0)) {  // one batch = one whole epoch
    const Sample& s = loader.sample(index);
    ++seen[s.dataset + "/" + s.name];
  }
  EXPECT_EQ(seen["boosted/x"], 3);
  EXPECT_EQ(seen["boosted/y"], 3);
  EXPECT_EQ(seen["plain/a_disk"], 1);
  EXPECT_EQ(seen.count("dropped/z"), 0u);
  // Repeats of one sample are crops of their own.
  const TrainBatch batch = loader.make_batch(0);
  std::vector<torch::Tensor> x_crops;
  for (int s = 0; s < n; ++s) {
    if (loader.sample(batch.samples[s]).name == "x") x_crops.push_back(batch.input[s]);
  }
  ASSERT_EQ(x_crops.size(), 3u);
  EXPECT_FALSE(torch::equal(x_crops[0], x_crops[1]) && torch::equal(x_crops[1], x_crops[2]));

  DataOptions typo = small_options();
  typo.repeat = {{"bosted", 2}};
  const std::string message = airm::test::error_message([&] { TrainLoader(samples, typo, 2, 0); });
  EXPECT_NE(message.find("repeat.bosted"), std::string::npos) << message;
  DataOptions none = small_options();
  none.repeat = {{"plain", 0}, {"boosted", 0}, {"dropped", 0}};
  EXPECT_THROW(TrainLoader(samples, none, 2, 0), airm::Error);
  EXPECT_NE(airm::test::error_message([] { DataOptions::from_json({{"repeat", {{"a", 101}}}}, "t.json"); })
                .find("repeat.a: expected in [0, 100]"),
            std::string::npos);
  EXPECT_THROW(DataOptions::from_json({{"repeat", {{"a", "twice"}}}}), airm::Error);
}
