// airm eval as a library: scoring a folder, the outputs, the HTML report.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "airm/eval.hpp"
#include "airm/report.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using airm::test::TempDir;

namespace {

cv::Mat square_mask(cv::Size size, cv::Rect rect) {
  cv::Mat mask(size, CV_8UC1, cv::Scalar(0));
  mask(rect).setTo(255);
  return mask;
}

// data/set_a: two images with ground truth and coarse masks.
struct SmallDataset {
  TempDir dir{"airm-eval"};
  fs::path root = dir.path() / "data";
  SmallDataset() {
    for (const char* sub : {"images", "masks", "coarse"}) fs::create_directories(root / "set_a" / sub);
    const cv::Size size(40, 30);
    cv::Mat image(size, CV_8UC3, cv::Scalar(90, 120, 150));
    for (const char* name : {"one", "two"}) cv::imwrite((root / "set_a" / "images" / (std::string(name) + ".png")).string(), image);
    // one: gt 10x10 square, coarse the same square -> perfect.
    cv::imwrite((root / "set_a" / "masks" / "one.png").string(), square_mask(size, {5, 5, 10, 10}));
    cv::imwrite((root / "set_a" / "coarse" / "one.png").string(), square_mask(size, {5, 5, 10, 10}));
    // two: gt 10x10 square, coarse shifted right by 5 -> I = 50, U = 150.
    cv::imwrite((root / "set_a" / "masks" / "two.png").string(), square_mask(size, {20, 10, 10, 10}));
    cv::imwrite((root / "set_a" / "coarse" / "two.png").string(), square_mask(size, {25, 10, 10, 10}));
  }
};

airm::EvalOptions coarse_options(const fs::path& root) {
  airm::EvalOptions options;
  options.data = root;
  options.use_coarse = true;
  options.progress = false;
  options.threads = 2;
  return options;
}

}  // namespace

TEST(Eval, ScoresCoarseMasksPooledAndMean) {
  SmallDataset data;
  const airm::EvalResult result = airm::evaluate(coarse_options(data.root));
  ASSERT_EQ(result.scores.size(), 2u);
  ASSERT_TRUE(result.failures.empty());
  ASSERT_EQ(result.summaries.size(), 2u);  // set_a, all
  const airm::Summary& all = result.summaries.back();
  EXPECT_EQ(all.dataset, "all");
  EXPECT_EQ(all.images, 2);
  // pooled: (100 + 50) / (100 + 150) = 60%; mean: (100 + 33.33) / 2.
  EXPECT_NEAR(all.iou, 60.0, 1e-9);
  EXPECT_NEAR(all.mean_iou, (100.0 + 100.0 / 3.0) / 2.0, 1e-9);
  EXPECT_EQ(result.scores[0].name, "one");
  EXPECT_NEAR(result.scores[0].mba, 100.0, 1e-9);
  EXPECT_LT(result.scores[1].mba, 100.0);
}

TEST(Eval, FindsPredictionsByDatasetThenName) {
  SmallDataset data;
  const fs::path pred = data.dir.path() / "pred";
  fs::create_directories(pred / "set_a");
  cv::imwrite((pred / "set_a" / "one.png").string(), square_mask({40, 30}, {5, 5, 10, 10}));
  cv::imwrite((pred / "two.png").string(), square_mask({40, 30}, {20, 10, 10, 10}));
  airm::Sample sample;
  sample.dataset = "set_a";
  sample.name = "one";
  EXPECT_EQ(airm::find_prediction(pred, sample), pred / "set_a" / "one.png");
  sample.name = "two";
  EXPECT_EQ(airm::find_prediction(pred, sample), pred / "two.png");
  sample.name = "three";
  EXPECT_TRUE(airm::find_prediction(pred, sample).empty());

  airm::EvalOptions options = coarse_options(data.root);
  options.use_coarse = false;
  options.pred_dir = pred;
  const airm::EvalResult result = airm::evaluate(options);
  ASSERT_EQ(result.scores.size(), 2u);
  EXPECT_NEAR(result.summaries.back().iou, 100.0, 1e-9);
}

TEST(Eval, MissingAndMisshapenPredictionsAreFailuresNamingTheFile) {
  SmallDataset data;
  const fs::path pred = data.dir.path() / "pred";
  fs::create_directories(pred);
  cv::imwrite((pred / "one.png").string(), square_mask({40, 40}, {5, 5, 10, 10}));  // square, gt is 40x30
  airm::EvalOptions options = coarse_options(data.root);
  options.use_coarse = false;
  options.pred_dir = pred;
  const airm::EvalResult result = airm::evaluate(options);
  EXPECT_TRUE(result.scores.empty());
  ASSERT_EQ(result.failures.size(), 2u);
  EXPECT_NE(result.failures[0].message.find("one.png: expected the aspect ratio of its ground truth 40x30, got 40x40"),
            std::string::npos)
      << result.failures[0].message;
  EXPECT_NE(result.failures[1].message.find("two: has no prediction in"), std::string::npos)
      << result.failures[1].message;
}

TEST(Eval, PredictionOfAnotherSizeSameAspectIsResized) {
  SmallDataset data;
  const fs::path pred = data.dir.path() / "pred";
  fs::create_directories(pred);
  cv::imwrite((pred / "one.png").string(), square_mask({80, 60}, {10, 10, 20, 20}));
  cv::imwrite((pred / "two.png").string(), square_mask({80, 60}, {40, 20, 20, 20}));
  airm::EvalOptions options = coarse_options(data.root);
  options.use_coarse = false;
  options.pred_dir = pred;
  const airm::EvalResult result = airm::evaluate(options);
  ASSERT_TRUE(result.failures.empty());
  EXPECT_NEAR(result.summaries.back().iou, 100.0, 1.0);
}

TEST(Eval, OptionsAreValidated) {
  airm::EvalOptions options;
  EXPECT_THROW(options.validate(), airm::Error);
  SmallDataset data;
  options.data = data.root;
  EXPECT_THROW(options.validate(), airm::Error);  // neither --pred nor --coarse
  options.use_coarse = true;
  options.pred_dir = data.root;
  EXPECT_THROW(options.validate(), airm::Error);  // both
}

TEST(Eval, CsvAndJsonCarryEveryImageAndSummary) {
  SmallDataset data;
  const airm::EvalOptions options = coarse_options(data.root);
  const airm::EvalResult result = airm::evaluate(options);
  const std::string csv = airm::format_scores_csv(result);
  EXPECT_EQ(csv.rfind("dataset,name,width,height,iou,mba,radius0,ba0", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_NE(csv.find("set_a,two,40,30,33.3333,"), std::string::npos) << csv;
  const auto json = nlohmann::json::parse(airm::format_summary_json(result, options));
  EXPECT_EQ(json["summaries"].size(), 2u);
  EXPECT_EQ(json["summaries"][1]["dataset"], "all");
  EXPECT_NEAR(json["summaries"][1]["iou"].get<double>(), 60.0, 1e-9);
  EXPECT_EQ(json["source"], "coarse");
  const std::string table = airm::format_summary_table(result.summaries);
  EXPECT_NE(table.find("set_a"), std::string::npos);
  EXPECT_NE(table.find("60.00"), std::string::npos) << table;
}

TEST(Report, IsSelfContainedWorstFirstAndComplete) {
  SmallDataset data;
  const airm::EvalOptions options = coarse_options(data.root);
  const airm::EvalResult result = airm::evaluate(options);
  const std::string html = airm::build_report_html(result, options);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_NE(html.find("<table class=\"summary\">"), std::string::npos);
  // One summary row per dataset plus the pooled one.
  const std::regex row("<tr( class=\"pooled\")?><td>");
  EXPECT_EQ(std::distance(std::sregex_iterator(html.begin(), html.end(), row), std::sregex_iterator()), 2);
  // Two embedded pictures per image, and nothing fetched from elsewhere.
  const std::regex picture("src=\"data:image/jpeg;base64,[A-Za-z0-9+/=]+\"");
  EXPECT_EQ(std::distance(std::sregex_iterator(html.begin(), html.end(), picture), std::sregex_iterator()), 4);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("src=\"/"), std::string::npos);
  // Worst first: "two" (shifted) before "one" (perfect).
  const auto two = html.find("set_a / two");
  const auto one = html.find("set_a / one");
  ASSERT_NE(two, std::string::npos);
  ASSERT_NE(one, std::string::npos);
  EXPECT_LT(two, one);
}

TEST(Report, LimitsImagesAndWritesAtomically) {
  SmallDataset data;
  const airm::EvalOptions options = coarse_options(data.root);
  const airm::EvalResult result = airm::evaluate(options);
  airm::ReportOptions report;
  report.max_images = 1;
  const fs::path path = data.dir.path() / "report.html";
  airm::write_report(path, result, options, report);
  const std::string html = airm::test::read_bytes(path);
  const std::regex section("<section class=\"sample\"");
  EXPECT_EQ(std::distance(std::sregex_iterator(html.begin(), html.end(), section), std::sregex_iterator()), 1);
  EXPECT_NE(html.find("set_a / two"), std::string::npos);
  for (const auto& entry : fs::directory_iterator(data.dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}
