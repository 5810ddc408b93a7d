// Helpers shared by the test programs.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

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

}  // namespace airm::test
