// A progress line on stderr: count, rate and ETA.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>

namespace airm {

class Progress {
 public:
  // `total` steps; `label` prefixes the line. Silent when `enabled` is false.
  Progress(std::string label, std::size_t total, bool enabled = true);
  ~Progress();

  void advance(std::size_t steps = 1);  // thread-safe
  void finish();                        // prints the final line once

 private:
  void print_locked(bool final_line);

  std::string label_;
  std::size_t total_;
  std::size_t done_ = 0;
  bool enabled_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  std::mutex mutex_;
};

}  // namespace airm
