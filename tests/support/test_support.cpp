#include "test_support.hpp"

#include <sys/wait.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "airm/error.hpp"
#include "airm/synth.hpp"

namespace airm::test {

std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const airm::Error& e) {
    return e.what();
  }
  return "(no airm::Error)";
}

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("AIRM_SHARED_DIR"); env && *env) {
    return std::filesystem::exists(env) ? std::filesystem::path(env) : std::filesystem::path();
  }
  std::filesystem::path dir = AIRM_DEFAULT_SHARED_DIR;
  return std::filesystem::exists(dir / "data") ? dir : std::filesystem::path();
}

std::filesystem::path pretrained_file(const std::string& name) {
  const std::filesystem::path shared = shared_dir();
  if (shared.empty()) return {};
  const std::filesystem::path path = shared / "pretrained" / name;
  return std::filesystem::exists(path) ? path : std::filesystem::path();
}

TempDir::TempDir(const std::string& tag) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  std::ostringstream name;
  name << tag << "-" << rd() << "-" << counter++;
  path_ = std::filesystem::temp_directory_path() / name.str();
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

CommandResult run_command(const std::string& command) {
  const std::string joined = command + " 2>&1";
  FILE* pipe = popen(joined.c_str(), "r");
  CommandResult result;
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) result.output += buffer.data();
  const int status = pclose(pipe);
  result.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

long count_differences(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::compare(a, b, diff, cv::CMP_NE);
  return cv::countNonZero(diff);
}

::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected, double rtol,
                                         double atol) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "shapes differ: " << actual.sizes() << " vs " << expected.sizes();
  }
  if (actual.numel() == 0) return ::testing::AssertionSuccess();
  const torch::Tensor a = actual.detach().to(torch::kCPU, torch::kDouble);
  const torch::Tensor e = expected.detach().to(torch::kCPU, torch::kDouble);
  const double error = (a - e).abs().max().item<double>();  // NaN anywhere: NaN, which fails below
  const double scale = e.abs().max().item<double>();
  const double bound = atol + rtol * scale;
  char text[200];
  std::snprintf(text, sizeof text, "max |actual - expected| %.3g, max |expected| %.3g, bound %.3g (rtol %.3g, atol %.3g)",
                error, scale, bound, rtol, atol);
  if (std::getenv("AIRM_TEST_LOG_TOLERANCE")) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("[ tol  ] %s.%s: %s, %.2g of the bound\n", test ? test->test_suite_name() : "?",
                test ? test->name() : "?", text, error / bound);
  }
  if (error <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text;
}

void make_synth_dataset(const std::filesystem::path& dir) {
  auto make = [&](const std::string& set, int count, std::uint64_t seed) {
    std::filesystem::create_directories(dir / set / "images");
    std::filesystem::create_directories(dir / set / "masks");
    SynthOptions options;
    options.size = cv::Size(96, 80);
    options.min_objects = 1;
    options.max_objects = 2;
    for (int i = 0; i < count; ++i) {
      const Scene scene = generate_scene(options, seed + static_cast<std::uint64_t>(i));
      const std::string name = set + "_" + std::to_string(i);
      for (const auto& [folder, image] : {std::pair<const char*, const cv::Mat*>{"images", &scene.image},
                                         {"masks", &scene.mask}}) {
        const std::filesystem::path path = dir / set / folder / (name + ".png");
        if (!cv::imwrite(path.string(), *image)) throw Error(path.string(), "could not be written");
      }
    }
  };
  make("synth_train", 6, 100);
  make("synth_val", 2, 200);
  write_bytes(dir / "SPLITS.md", "train: synth_train\nval: synth_val\n");
}

}  // namespace airm::test
