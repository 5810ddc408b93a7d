// Discovery of image/mask pairs and named splits, on small trees made here.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include <opencv2/imgcodecs.hpp>

#include "airm/dataset.hpp"
#include "airm/error.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using airm::Discovery;
using airm::Sample;
using airm::test::TempDir;

// A 1x1 image at `path` (format from the extension), folders created.
void touch_image(const fs::path& path) {
  fs::create_directories(path.parent_path());
  const cv::Mat px(1, 1, CV_8UC1, cv::Scalar(255));
  ASSERT_TRUE(cv::imwrite(path.string(), px)) << path;
}

void touch_text(const fs::path& path, const std::string& text = "text\n") {
  fs::create_directories(path.parent_path());
  airm::test::write_bytes(path, text);
}

std::vector<std::string> names(const Discovery& d) {
  std::vector<std::string> out;
  for (const Sample& s : d.samples) out.push_back(s.dataset + "/" + s.name);
  return out;
}

std::vector<fs::path> paths(std::initializer_list<fs::path> list) { return {list}; }

// Message of the airm::Error `f` throws, or "" if none.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const airm::Error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------- images/ + masks/

TEST(DiscoverDataset, FoldersLayoutWithExtrasAndUnmatched) {
  TempDir tmp("airm-ds");
  const fs::path d = tmp / "myset";
  touch_image(d / "images/a.jpg");
  touch_image(d / "masks/a.png");
  touch_image(d / "coarse/a.png");
  touch_image(d / "ignore/a.png");
  touch_image(d / "images/b.PNG");  // extension case does not matter
  touch_image(d / "masks/b.png");
  touch_image(d / "images/c.webp");
  touch_image(d / "masks/c.bmp");  // bmp accepted for masks
  touch_image(d / "images/d.jpeg");  // no gt
  touch_image(d / "masks/e.png");    // no image
  touch_image(d / "coarse/f.png");   // coarse without a pair
  touch_image(d / "ignore/g.png");   // ignore without a pair
  touch_image(d / "coarse/d.png");   // coarse of an image without gt
  touch_image(d / "masks/h.jpg");    // JPEG is not a mask format
  touch_image(d / "images/h.jpg");
  touch_image(d / "images/.hidden.jpg");  // hidden: skipped
  touch_text(d / "images/notes.txt");     // not an image: skipped
  touch_text(d / "README.md");
  touch_image(d / "loose.png");  // beside the folders: no partner

  const Discovery got = airm::discover_dataset(d);
  ASSERT_EQ(names(got), (std::vector<std::string>{"myset/a", "myset/b", "myset/c"}));
  const Sample& a = got.samples[0];
  EXPECT_EQ(a.image, d / "images/a.jpg");
  EXPECT_EQ(a.gt, d / "masks/a.png");
  EXPECT_EQ(a.coarse, d / "coarse/a.png");
  EXPECT_EQ(a.ignore, d / "ignore/a.png");
  EXPECT_EQ(got.samples[1].image, d / "images/b.PNG");
  EXPECT_TRUE(got.samples[1].coarse.empty());
  EXPECT_TRUE(got.samples[1].ignore.empty());
  EXPECT_EQ(got.samples[2].gt, d / "masks/c.bmp");
  EXPECT_EQ(got.unmatched, paths({d / "coarse/d.png", d / "coarse/f.png", d / "ignore/g.png",
                                  d / "images/d.jpeg", d / "images/h.jpg", d / "loose.png",
                                  d / "masks/e.png", d / "masks/h.jpg"}));
}

TEST(DiscoverDataset, DuplicateStemKeepsOneAndReportsTheOther) {
  TempDir tmp("airm-ds");
  const fs::path d = tmp / "dup";
  touch_image(d / "images/x.jpg");
  touch_image(d / "images/x.png");
  touch_image(d / "masks/x.png");
  touch_image(d / "masks/x.bmp");
  const Discovery got = airm::discover_dataset(d);
  ASSERT_EQ(got.samples.size(), 1u);
  EXPECT_EQ(got.samples[0].image, d / "images/x.jpg");  // first image extension
  EXPECT_EQ(got.samples[0].gt, d / "masks/x.png");      // png preferred for masks
  EXPECT_EQ(got.unmatched, paths({d / "images/x.png", d / "masks/x.bmp"}));
}

TEST(DiscoverDataset, TrailingSlashAndDotNames) {
  TempDir tmp("airm-ds");
  touch_image(tmp / "named/images/a.jpg");
  touch_image(tmp / "named/masks/a.png");
  const Discovery got = airm::discover_dataset((tmp / "named").string() + "/");
  ASSERT_EQ(got.samples.size(), 1u);
  EXPECT_EQ(got.samples[0].dataset, "named");
  const Discovery dotted = airm::discover_dataset(tmp / "named" / "images" / "..");
  ASSERT_EQ(dotted.samples.size(), 1u);
  EXPECT_EQ(dotted.samples[0].dataset, "named");
}

// ---------------------------------------------------------------- BIG layout

TEST(DiscoverDataset, BigLayout) {
  TempDir tmp("airm-ds");
  const fs::path d = tmp / "BIG";
  touch_image(d / "p1_im.jpg");
  touch_image(d / "p1_gt.png");
  touch_image(d / "p1_seg.png");
  touch_image(d / "p2_im.png");
  touch_image(d / "p2_gt.png");
  touch_image(d / "p3_im.jpg");   // no gt
  touch_image(d / "p4_gt.png");   // no image
  touch_image(d / "p5_seg.png");  // coarse alone
  touch_image(d / "p6_im.jpg");
  touch_image(d / "p6_gt.jpg");   // gt must be png/bmp/tif
  touch_image(d / "stray.jpg");   // no role
  touch_text(d / "README.md");
  touch_image(d / ".p7_im.jpg");

  const Discovery got = airm::discover_dataset(d);
  ASSERT_EQ(names(got), (std::vector<std::string>{"BIG/p1", "BIG/p2"}));
  EXPECT_EQ(got.samples[0].image, d / "p1_im.jpg");
  EXPECT_EQ(got.samples[0].gt, d / "p1_gt.png");
  EXPECT_EQ(got.samples[0].coarse, d / "p1_seg.png");
  EXPECT_TRUE(got.samples[0].ignore.empty());
  EXPECT_TRUE(got.samples[1].coarse.empty());
  EXPECT_EQ(got.unmatched, paths({d / "p3_im.jpg", d / "p4_gt.png", d / "p5_seg.png", d / "p6_gt.jpg",
                                  d / "p6_im.jpg", d / "stray.jpg"}));
}

// ---------------------------------------------------------------- root of datasets

TEST(DiscoverDataset, RootOfTwoDatasets) {
  TempDir tmp("airm-ds");
  const fs::path root = tmp / "data";
  touch_image(root / "beta/images/z.jpg");
  touch_image(root / "beta/masks/z.png");
  touch_image(root / "beta/images/y.jpg");  // no gt
  touch_image(root / "alpha/q_im.jpg");
  touch_image(root / "alpha/q_gt.png");
  touch_image(root / "alpha/r_gt.png");  // no image
  fs::create_directories(root / "empty_folder");  // not a dataset: skipped
  touch_text(root / "SPLITS.md", "| split | sets |\n|---|---|\n| val | alpha |\n");
  touch_text(root / "SOURCES.md");
  touch_image(root / "stray.png");

  const Discovery got = airm::discover_dataset(root);
  ASSERT_EQ(names(got), (std::vector<std::string>{"alpha/q", "beta/z"}));
  EXPECT_EQ(got.samples[0].image, root / "alpha/q_im.jpg");
  EXPECT_EQ(got.samples[1].gt, root / "beta/masks/z.png");
  EXPECT_EQ(got.unmatched, paths({root / "alpha/r_gt.png", root / "beta/images/y.jpg", root / "stray.png"}));

  // A single dataset of the root, by itself.
  const Discovery beta = airm::discover_dataset(root / "beta");
  ASSERT_EQ(names(beta), (std::vector<std::string>{"beta/z"}));
  EXPECT_EQ(beta.unmatched, paths({root / "beta/images/y.jpg"}));
}

TEST(DiscoverDataset, ErrorsNameTheFolder) {
  TempDir tmp("airm-ds");
  const fs::path missing = tmp / "nope";
  EXPECT_NE(error_of([&] { airm::discover_dataset(missing); }).find(missing.string()), std::string::npos);
  fs::create_directories(tmp / "plain/sub");
  touch_text(tmp / "plain/readme.txt");
  const std::string msg = error_of([&] { airm::discover_dataset(tmp / "plain"); });
  EXPECT_NE(msg.find((tmp / "plain").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("no dataset"), std::string::npos) << msg;
  touch_text(tmp / "file.txt");
  EXPECT_THROW(airm::discover_dataset(tmp / "file.txt"), airm::Error);
}

// ---------------------------------------------------------------- splits

const char* kSplitsTable =
    "# Canonical splits\n"
    "\n"
    "Use these so that every figure the project reports is comparable over time.\n"
    "\n"
    "| split | sets | images | use |\n"
    "|---|---|---|---|\n"
    "| train | davis345, coco_mval_subset, weizmann_horses | 913 | training only |\n"
    "| val | berkeley_iseg, bsds_sod | 400 (300 distinct photos) | model selection; report: each set |\n"
    "| probe | kvasir_seg_sample | 5 | domain shift (medical); report, never tune on it |\n"
    "\n"
    "- None of these sets ships coarse masks. Make them from the ground truth: with a fixed seed.\n"
    "- coco_mval_subset masks are polygons with coarse boundaries: fine for training variety.\n";

TEST(ReadSplits, MarkdownTable) {
  TempDir tmp("airm-splits");
  touch_text(tmp / "SPLITS.md", kSplitsTable);
  const airm::SplitTable t = airm::read_splits(tmp / "SPLITS.md");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.at("train"), (std::vector<std::string>{"davis345", "coco_mval_subset", "weizmann_horses"}));
  EXPECT_EQ(t.at("val"), (std::vector<std::string>{"berkeley_iseg", "bsds_sod"}));
  EXPECT_EQ(t.at("probe"), (std::vector<std::string>{"kvasir_seg_sample"}));
}

TEST(ReadSplits, PlainLinesAndCodeQuotes) {
  TempDir tmp("airm-splits");
  touch_text(tmp / "splits.txt",
             "mine: a, b\r\n"
             "other:c\n"
             "not a split: x y, z\n"
             "| `quoted` | `d`, `e` |\n");
  const airm::SplitTable t = airm::read_splits(tmp / "splits.txt");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.at("mine"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.at("other"), (std::vector<std::string>{"c"}));
  EXPECT_EQ(t.at("quoted"), (std::vector<std::string>{"d", "e"}));
}

TEST(ReadSplits, Errors) {
  TempDir tmp("airm-splits");
  EXPECT_THROW(airm::read_splits(tmp / "missing.md"), airm::Error);
  touch_text(tmp / "empty.md", "# nothing here\n\n| a | b |\n|---|---|\n");
  EXPECT_THROW(airm::read_splits(tmp / "empty.md"), airm::Error);
}

TEST(DiscoverSplit, SelectsDatasetsAndReportsErrors) {
  TempDir tmp("airm-splits");
  const fs::path root = tmp / "data";
  touch_image(root / "one/images/a.jpg");
  touch_image(root / "one/masks/a.png");
  touch_image(root / "two/images/b.jpg");
  touch_image(root / "two/masks/b.png");
  touch_image(root / "two/images/c.jpg");  // unmatched
  touch_image(root / "three/x_im.jpg");
  touch_image(root / "three/x_gt.png");
  touch_text(root / "SPLITS.md",
             "| split | sets |\n|---|---|\n| val | two, one |\n| test | three |\n| broken | one, gone |\n");

  const Discovery val = airm::discover_split(root, "val");
  EXPECT_EQ(names(val), (std::vector<std::string>{"one/a", "two/b"}));
  EXPECT_EQ(val.unmatched, paths({root / "two/images/c.jpg"}));
  EXPECT_EQ(names(airm::discover_split(root, "test")), (std::vector<std::string>{"three/x"}));
  EXPECT_EQ(names(airm::discover_split(root, "")),
            (std::vector<std::string>{"one/a", "three/x", "two/b"}));

  const std::string unknown = error_of([&] { airm::discover_split(root, "nosuch"); });
  EXPECT_NE(unknown.find("nosuch"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("broken, test, val"), std::string::npos) << unknown;
  const std::string gone = error_of([&] { airm::discover_split(root, "broken"); });
  EXPECT_NE(gone.find("gone"), std::string::npos) << gone;

  // Another splits file.
  touch_text(tmp / "mine.txt", "only3: three\n");
  EXPECT_EQ(names(airm::discover_split(root, "only3", tmp / "mine.txt")),
            (std::vector<std::string>{"three/x"}));
  EXPECT_THROW(airm::discover_split(root, "val", tmp / "mine.txt"), airm::Error);
}

// ---------------------------------------------------------------- the real data

TEST(SharedData, CanonicalSplits) {
  const fs::path shared = airm::test::shared_dir();
  if (shared.empty() || !fs::exists(shared / "data/SPLITS.md")) GTEST_SKIP() << "no shared/data";
  const fs::path data = shared / "data";

  const Discovery val = airm::discover_split(data, "val");
  EXPECT_EQ(val.samples.size(), 242u);  // the split of 2026-12-02
  EXPECT_TRUE(val.unmatched.empty());
  std::map<std::string, int> per;
  for (const Sample& s : val.samples) ++per[s.dataset];
  EXPECT_EQ(per, (std::map<std::string, int>{{"berkeley_iseg", 100}, {"bsds_sod", 142}}));
  for (const Sample& s : val.samples) {
    EXPECT_TRUE(fs::exists(s.image)) << s.image;
    EXPECT_TRUE(fs::exists(s.gt)) << s.gt;
    EXPECT_TRUE(s.coarse.empty());
  }

  const Discovery train = airm::discover_split(data, "train");
  EXPECT_EQ(train.samples.size(), 1071u);
  std::map<std::string, int> per_train;
  for (const Sample& s : train.samples) ++per_train[s.dataset];
  EXPECT_EQ(per_train["bsds_sod_train"], 158);
  EXPECT_TRUE(train.unmatched.empty());
  const Discovery probe = airm::discover_split(data, "probe");
  EXPECT_EQ(probe.samples.size(), 5u);
  EXPECT_TRUE(probe.unmatched.empty());

  const Discovery all = airm::discover_dataset(data);
  EXPECT_EQ(all.samples.size(), 1071u + 242u + 5u);
  EXPECT_TRUE(all.unmatched.empty());
}

}  // namespace
