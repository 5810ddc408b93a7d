// The text outputs of a training run: CSV logs that survive a resume (rows
// past the resumed iteration are dropped), the curves plot drawn from them,
// and the progress line.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace airm::train_detail {

// A CSV file appended row by row (flushed each row). The first column is an
// iteration number.
class CsvLog {
 public:
  CsvLog() = default;
  // A new file with `header`, or, when `resume` and the file exists with the
  // same header, the file keeping only rows whose iteration is <= keep_until.
  void open(const std::filesystem::path& path, const std::vector<std::string>& header, bool resume,
            int64_t keep_until);
  void row(const std::vector<std::string>& cells);
  bool is_open() const { return out_.is_open(); }

 private:
  std::filesystem::path path_;
  std::size_t columns_ = 0;
  std::ofstream out_;
};

// A CSV file as columns by header name (cells as text).
std::map<std::string, std::vector<std::string>> read_csv_columns(const std::filesystem::path& path);

// "%.9g" (a float round-trips), "nan" for NaN.
std::string format_number(double value);

// Draws OUT/curves.png from OUT/log.csv and OUT/val.csv.
void write_curves(const std::filesystem::path& out);

// A progress line on stderr: iteration, loss, lr, speed, ETA. Live on a
// terminal, one line every 30 s otherwise.
class TrainProgress {
 public:
  TrainProgress(int64_t first, int64_t total, bool enabled);
  void update(int64_t iteration, double loss, double lr, double images_per_iteration, double wait_share);
  void finish();
  // Ends a live line so that another message can follow on its own line.
  void break_line();

 private:
  void print(int64_t iteration, bool final_line);

  int64_t first_, total_;
  bool enabled_, tty_, pending_newline_ = false;
  double loss_ = 0, lr_ = 0, images_ = 0, wait_share_ = 0;
  int64_t last_iteration_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace airm::train_detail
