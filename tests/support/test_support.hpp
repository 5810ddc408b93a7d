// Helpers shared by the test programs.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <ATen/core/ATen_fwd.h>  // at::Tensor (torch::Tensor), declared only
#include <gtest/gtest.h>
#include <opencv2/core.hpp>

namespace airm::test {

// ../shared beside the checkout (or $AIRM_SHARED_DIR); empty if absent.
std::filesystem::path shared_dir();

// ../shared/pretrained/NAME if it exists; empty otherwise (tests skip on empty).
std::filesystem::path pretrained_file(const std::string& name);

// A fresh, empty directory under the system temp dir, removed when the
// returned object goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "airm-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The airm::Error message `action` throws, or "(no airm::Error)" if it throws none.
std::string error_message(const std::function<void()>& action);

// Writes raw bytes to a file.
void write_bytes(const std::filesystem::path& path, const std::string& bytes);
std::string read_bytes(const std::filesystem::path& path);

// A command's exit code (-1 if it did not exit normally) and its stdout and stderr together.
struct CommandResult {
  int rc = -1;
  std::string output;
};
// Runs `command` through /bin/sh with stderr joined to stdout.
CommandResult run_command(const std::string& command);
// `s` single-quoted for /bin/sh.
std::string shell_quote(const std::string& s);

// A tiny dataset of generated 96x80 scenes: DIR/synth_train (6 images),
// DIR/synth_val (2 images), and DIR/SPLITS.md naming them "train" and "val".
void make_synth_dataset(const std::filesystem::path& dir);

// Number of pixels where two single-channel masks differ.
long count_differences(const cv::Mat& a, const cv::Mat& b);

// Machine epsilons for tolerances: the spacing of numbers just above 1.
inline constexpr double kEpsFloat32 = 1.1920928955078125e-7;  // 2^-23
inline constexpr double kEpsBFloat16 = 7.8125e-3;             // 2^-7

// Floating-point tensors of one shape agree when
//   max |actual - expected| <= atol + rtol * max |expected|
// (computed in double). The bound is norm-wise, not per element like
// torch::allclose: reordered sums (SIMD width, GEMM blocking, threads differ
// between CPUs) err by a multiple of eps times the magnitude the computation
// passed through, so an element near zero gets no less slack than a large one.
// Choose rtol from the operation (reduction length, dtype, depth) and atol only
// where the relevant magnitude is not that of `expected`. The failure message
// gives the error, max |expected| and the bound; with AIRM_TEST_LOG_TOLERANCE
// set, passing checks print them too (to audit margins on another CPU).
// Use as EXPECT_TRUE(tensors_close(a, b, rtol, atol)) << "what".
::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected, double rtol,
                                         double atol = 0.0);

}  // namespace airm::test
