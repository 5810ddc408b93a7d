// `airm refine` end to end, by running the binary: single image, options,
// errors and exit codes, batch mode with resume and failure reporting.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/mask_io.hpp"
#include "refine_test_util.hpp"

namespace fs = std::filesystem;

namespace {

using Result = airm::test::CommandResult;
std::string quote(const std::string& s) { return airm::test::shell_quote(s); }

// Runs `airm refine ARGS` (AIRM_MODEL unset) and returns the exit code and output.
Result refine(const std::string& args) {
  return airm::test::run_command("env -u AIRM_MODEL " + quote(AIRM_BIN) + " refine " + args);
}

bool contains(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

bool has_temporaries(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().filename().string().find(".tmp") != std::string::npos) return true;
  }
  return false;
}

class RefineCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new airm::test::TempDir("airm-refine-cli");
    model_ = new std::string(quote(airm::test::random_weights(*dir_).string()));
    fs::create_directories(*dir_ / "images");
    fs::create_directories(*dir_ / "coarse");
    for (int i = 0; i < 3; ++i) {
      const airm::test::TestScene scene = airm::test::make_scene({211 + 8 * i, 157 + 6 * i}, 100 + i);
      const std::string name = "scene" + std::to_string(i);
      ASSERT_TRUE(cv::imwrite((*dir_ / "images" / (name + (i == 1 ? ".jpg" : ".png"))).string(), scene.image));
      ASSERT_TRUE(cv::imwrite((*dir_ / "coarse" / (name + ".png")).string(), scene.coarse));
    }
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static std::string path(const std::string& name) { return quote((*dir_ / name).string()); }
  // One intra-op thread: OpenMP's spinning barriers make 2 threads crawl on a shared, loaded machine.
  static std::string model() { return "--model " + *model_ + " --threads 1"; }

  static airm::test::TempDir* dir_;
  static std::string* model_;
};
airm::test::TempDir* RefineCli::dir_ = nullptr;
std::string* RefineCli::model_ = nullptr;

}  // namespace

TEST_F(RefineCli, OneImage) {
  const Result r = refine(path("images/scene0.png") + " " + path("coarse/scene0.png") + " -o " + path("one/out.png") +
                          " --overlay " + path("one/overlay.jpg") + " --verbose " + model());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "wrote .*out.png: [0-9]+ queries")) << r.output;
  const cv::Mat out = cv::imread((*dir_ / "one/out.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(out.type(), CV_8UC1);
  EXPECT_EQ(out.size(), cv::Size(211, 157));
  EXPECT_EQ(cv::countNonZero((out != 0) & (out != 255)), 0);  // binary
  EXPECT_EQ(cv::imread((*dir_ / "one/overlay.jpg").string()).size(), cv::Size(211, 157));

  const Result p = refine(path("images/scene0.png") + " " + path("coarse/scene0.png") + " -o " + path("one/prob.png") +
                          " --save-prob --size 422x314 --scales 0.5,1 --bf16 " + model());
  ASSERT_EQ(p.rc, 0) << p.output;
  const cv::Mat prob = cv::imread((*dir_ / "one/prob.png").string(), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(prob.size(), cv::Size(422, 314));
  EXPECT_GT(cv::countNonZero((prob != 0) & (prob != 255)), 0);  // levels between
  EXPECT_FALSE(has_temporaries(*dir_ / "one"));
}

TEST_F(RefineCli, CoarseOfAnotherSize) {
  cv::Mat coarse = cv::imread((*dir_ / "coarse/scene0.png").string(), cv::IMREAD_UNCHANGED), half, square;
  cv::resize(coarse, half, {106, 79}, 0, 0, cv::INTER_AREA);  // same aspect within 1%
  cv::resize(coarse, square, {157, 157});
  ASSERT_TRUE(cv::imwrite((*dir_ / "half.png").string(), half));
  ASSERT_TRUE(cv::imwrite((*dir_ / "square.png").string(), square));
  const Result ok = refine(path("images/scene0.png") + " " + path("half.png") + " -o " + path("half_out.png") + " " +
                           model());
  ASSERT_EQ(ok.rc, 0) << ok.output;
  EXPECT_TRUE(contains(ok.output, "note: .*half.png: mask 106x79 resized to image 211x157")) << ok.output;
  EXPECT_EQ(cv::imread((*dir_ / "half_out.png").string(), cv::IMREAD_UNCHANGED).size(), cv::Size(211, 157));

  const Result bad = refine(path("images/scene0.png") + " " + path("square.png") + " -o " + path("sq_out.png") + " " +
                            model());
  EXPECT_EQ(bad.rc, 1);
  EXPECT_TRUE(contains(bad.output, "^error: .*square.png: expected a mask with the aspect ratio")) << bad.output;
  EXPECT_FALSE(fs::exists(*dir_ / "sq_out.png"));
}

TEST_F(RefineCli, ErrorsAndExitCodes) {
  const std::string one = path("images/scene0.png") + " " + path("coarse/scene0.png") + " -o " + path("e.png") + " ";
  Result r = refine(one + "--max-pixels 1000 " + model());
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.output, "^error: .*scene0.png: 211x157 = 33127 pixels, more than --max-pixels 1000"))
      << r.output;
  r = refine(one + "--model " + path("missing.pt"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.output, "^error: .*missing.pt")) << r.output;
  r = refine(one + "--scales 0.5,0.25 " + model());
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(contains(r.output, "^error: .*ascending")) << r.output;
  r = refine(one + "--scales half " + model());
  EXPECT_EQ(r.rc, 2);
  r = refine(one + "--labels --save-prob " + model());
  EXPECT_EQ(r.rc, 2);
  r = refine(path("images/scene0.png") + " " + model());
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(contains(r.output, "^error: expected IMAGE \\[COARSE\\] -o OUT.png")) << r.output;
  r = refine("--images " + path("images") + " " + model());
  EXPECT_EQ(r.rc, 2);
  r = refine(path("images/nope.png") + " " + path("coarse/scene0.png") + " -o " + path("e.png") + " " + model());
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.output, "^error: .*nope.png")) << r.output;
  EXPECT_FALSE(fs::exists(*dir_ / "e.png"));
}

TEST_F(RefineCli, DefaultModelComesFromTheEnvironment) {
  // AIRM_MODEL names the model when --model is absent.
  const std::string command = "AIRM_MODEL=" + *model_ + " " + quote(AIRM_BIN) + " refine " +
                              path("images/scene0.png") + " " + path("coarse/scene0.png") + " -o " +
                              path("env.png") + " --quiet --threads 1 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0);
  EXPECT_TRUE(fs::exists(*dir_ / "env.png"));
}

TEST_F(RefineCli, BatchResumesAndReportsFailures) {
  const airm::test::TempDir batch("airm-refine-batch");
  fs::create_directories(batch / "images");
  fs::create_directories(batch / "coarse");
  for (const auto& entry : fs::directory_iterator(*dir_ / "images")) {
    fs::copy_file(entry.path(), batch / "images" / entry.path().filename());
  }
  for (const auto& entry : fs::directory_iterator(*dir_ / "coarse")) {
    fs::copy_file(entry.path(), batch / "coarse" / entry.path().filename());
  }
  airm::test::write_bytes(batch / "images" / "broken.png", "not a png");  // fails to read
  airm::test::write_bytes(batch / "coarse" / "broken.png", "not a png");
  fs::copy_file(*dir_ / "images" / "scene0.png", batch / "images" / "lonely.png");  // no coarse mask
  const std::string args = "--images " + quote((batch / "images").string()) + " --coarse " +
                           quote((batch / "coarse").string()) + " --out " + quote((batch / "out").string()) +
                           " --overlay " + quote((batch / "overlays").string()) + " --quiet " + model();

  Result r = refine(args);
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "refined 3, skipped 0 \\(output exists\\), failed 2 of 5 image")) << r.output;
  EXPECT_TRUE(contains(r.output, "error: .*broken.png")) << r.output;
  EXPECT_TRUE(contains(r.output, "error: .*lonely.png: no coarse mask lonely.png")) << r.output;
  // One result line per image on stdout, --quiet or not.
  for (const std::string line : {"scene0: refined \\(", "scene2: refined \\(", "broken: failed", "lonely: failed"}) {
    EXPECT_TRUE(contains(r.output, line)) << line << "\n" << r.output;
  }
  for (const std::string name : {"scene0", "scene1", "scene2"}) {
    EXPECT_TRUE(fs::exists(batch / "out" / (name + ".png"))) << name;
    EXPECT_TRUE(fs::exists(batch / "overlays" / (name + ".jpg"))) << name;
  }
  EXPECT_FALSE(fs::exists(batch / "out" / "broken.png"));
  EXPECT_FALSE(has_temporaries(batch.path()));

  // Run again: everything done is skipped, the failures are reported again.
  const auto written = fs::last_write_time(batch / "out" / "scene1.png");
  r = refine(args);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.output, "refined 0, skipped 3 \\(output exists\\), failed 2 of 5")) << r.output;
  EXPECT_TRUE(contains(r.output, "scene1: skipped \\(output exists\\)")) << r.output;
  EXPECT_EQ(fs::last_write_time(batch / "out" / "scene1.png"), written);

  // Resume after an interruption (one output missing) with the bad files gone: only that one is refined.
  fs::remove(batch / "out" / "scene2.png");
  fs::remove(batch / "images" / "broken.png");
  fs::remove(batch / "images" / "lonely.png");
  r = refine(args);
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "refined 1, skipped 2 \\(output exists\\), failed 0 of 3")) << r.output;
  EXPECT_TRUE(fs::exists(batch / "out" / "scene2.png"));
}

TEST_F(RefineCli, LabelMaps) {
  const cv::Mat coarse = cv::imread((*dir_ / "coarse/scene0.png").string(), cv::IMREAD_UNCHANGED);
  cv::Mat labels = cv::Mat::zeros(coarse.size(), CV_8UC1);
  labels.setTo(2, coarse);
  cv::rectangle(labels, cv::Rect(5, 5, 40, 30), 9, -1);
  ASSERT_TRUE(cv::imwrite((*dir_ / "labels.png").string(), labels));
  const Result r = refine(path("images/scene0.png") + " " + path("labels.png") + " --labels -o " +
                          path("labels_out.png") + " --overlay " + path("labels_overlay.jpg") + " " + model());
  ASSERT_EQ(r.rc, 0) << r.output;
  const cv::Mat out = cv::imread((*dir_ / "labels_out.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(out.type(), CV_8UC1);
  EXPECT_EQ(out.size(), labels.size());
  EXPECT_EQ(cv::countNonZero((out != 0) & (out != 2) & (out != 9)), 0);
  EXPECT_TRUE(fs::exists(*dir_ / "labels_overlay.jpg"));
}
