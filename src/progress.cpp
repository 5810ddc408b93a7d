#include "airm/progress.hpp"

#include <cmath>
#include <cstdio>
#include <utility>

#include <unistd.h>

namespace airm {
namespace {
std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}
}  // namespace

Progress::Progress(std::string label, std::size_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(std::size_t steps) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ += steps;
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  // A terminal gets a live line; a log file gets a line every 10 seconds.
  const auto every = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
  if (now - last_print_ >= every) {
    last_print_ = now;
    print_locked(false);
  }
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!enabled_ || finished_) return;
  finished_ = true;
  print_locked(true);
}

void Progress::print_locked(bool final_line) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - std::min(done_, total_)) / rate : NAN;
  constexpr int kWidth = 24;
  const int filled = total_ ? static_cast<int>(kWidth * std::min(done_, total_) / total_) : kWidth;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '-');
  std::fprintf(stderr, "%s%s [%s] %zu/%zu %.2f/s %s %s%s", tty_ ? "\r" : "", label_.c_str(),
               bar.c_str(), done_, total_, rate, final_line ? "took" : "ETA",
               format_duration(final_line ? elapsed : eta).c_str(),
               (final_line || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace airm
