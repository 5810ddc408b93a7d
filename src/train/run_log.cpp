#include "run_log.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

#include <unistd.h>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"
#include "plot.hpp"

namespace airm::train_detail {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> split_line(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream in(line);
  std::string cell;
  while (std::getline(in, cell, ',')) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

std::string join(const std::vector<std::string>& cells) {
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + cells[i];
  return line;
}

double to_double(const std::string& text) {
  try {
    return std::stod(text);
  } catch (const std::exception&) {
    return NAN;
  }
}

std::vector<double> numbers(const std::vector<std::string>& cells) {
  std::vector<double> out;
  for (const auto& c : cells) out.push_back(to_double(c));
  return out;
}

// Means over consecutive bins so that at most `bins` points remain (noisy
// per-iteration losses become a readable curve).
void bin_means(std::vector<double>& x, std::vector<double>& y, std::size_t bins) {
  if (x.size() <= bins) return;
  const std::size_t per = (x.size() + bins - 1) / bins;
  std::vector<double> bx, by;
  for (std::size_t i = 0; i < x.size(); i += per) {
    double sx = 0, sy = 0;
    int n = 0;
    for (std::size_t j = i; j < std::min(x.size(), i + per); ++j) {
      if (!std::isfinite(y[j])) continue;
      sx += x[j];
      sy += y[j];
      ++n;
    }
    if (n) {
      bx.push_back(sx / n);
      by.push_back(sy / n);
    }
  }
  x = std::move(bx);
  y = std::move(by);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const long s = std::lround(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

}  // namespace

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", value);
  return buf;
}

void CsvLog::open(const fs::path& path, const std::vector<std::string>& header, bool resume, int64_t keep_until) {
  path_ = path;
  columns_ = header.size();
  std::string kept = join(header) + "\n";
  if (resume && fs::exists(path)) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    if (line != join(header)) {
      throw Error(path.string(), "a log with the columns " + join(header), "the columns " + line);
    }
    while (std::getline(in, line)) {
      const auto cells = split_line(line);
      if (cells.size() == columns_ && to_double(cells[0]) <= static_cast<double>(keep_until)) kept += line + "\n";
    }
  }
  write_text_atomically(path, kept);
  out_.open(path, std::ios::app);
  if (!out_) throw Error(path.string(), "cannot be opened for writing");
}

void CsvLog::row(const std::vector<std::string>& cells) {
  if (cells.size() != columns_) {
    throw Error(path_.string(), std::to_string(columns_) + " cells per row", std::to_string(cells.size()));
  }
  out_ << join(cells) << '\n';
  out_.flush();
}

std::map<std::string, std::vector<std::string>> read_csv_columns(const fs::path& path) {
  std::map<std::string, std::vector<std::string>> columns;
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return columns;
  const auto header = split_line(line);
  while (std::getline(in, line)) {
    const auto cells = split_line(line);
    if (cells.size() != header.size()) continue;  // a row cut short by a crash
    for (std::size_t i = 0; i < cells.size(); ++i) columns[header[i]].push_back(cells[i]);
  }
  return columns;
}

void write_curves(const fs::path& out) {
  auto log = read_csv_columns(out / "log.csv");
  PlotPanel losses{"training loss (bin means)", true, {}};
  const std::vector<double> iterations = numbers(log["iteration"]);
  int colour = 0;
  for (const char* term : {"total", "cross_entropy", "l1", "l2", "gradient", "affinity"}) {
    std::vector<double> x = iterations, y = numbers(log[term]);
    if (y.size() != x.size()) continue;
    bin_means(x, y, 400);
    if (!y.empty()) losses.series.push_back({term, x, y, plot_colour(colour), false});
    ++colour;
  }

  // Validation: one refined series and one coarse line per set size (a
  // resumed run may validate on more images than before).
  auto val = read_csv_columns(out / "val.csv");
  PlotPanel iou{"validation IoU (%), all images", false, {}}, mba{"validation mBA (%), all images", false, {}};
  struct SetCurves {
    std::vector<double> x, iou, mba;
    double coarse_iou = NAN, coarse_mba = NAN;
  };
  std::map<std::string, SetCurves> sets;  // by image count
  const auto& kinds = val["kind"];
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    if (val["dataset"][i] != "all") continue;
    SetCurves& set = sets[val["images"][i]];
    if (kinds[i] == "coarse") {
      set.coarse_iou = to_double(val["iou"][i]);
      set.coarse_mba = to_double(val["mba"][i]);
    } else {
      set.x.push_back(to_double(val["iteration"][i]));
      set.iou.push_back(to_double(val["iou"][i]));
      set.mba.push_back(to_double(val["mba"][i]));
    }
  }
  std::vector<double> x;
  int set_index = 0;
  for (const auto& [images, set] : sets) {
    if (set.x.empty()) continue;
    x.insert(x.end(), set.x.begin(), set.x.end());
    const std::string suffix = sets.size() > 1 ? " (" + images + " images)" : "";
    const cv::Scalar refined = plot_colour(2 * set_index), coarse = plot_colour(2 * set_index + 3);
    iou.series.push_back({"refined" + suffix, set.x, set.iou, refined, false});
    mba.series.push_back({"refined" + suffix, set.x, set.mba, refined, false});
    const std::vector<double> span{iterations.empty() ? set.x.front() : std::min(set.x.front(), iterations.front()),
                                   iterations.empty() ? set.x.back() : std::max(set.x.back(), iterations.back())};
    if (std::isfinite(set.coarse_iou)) {
      iou.series.push_back({"coarse" + suffix, span, {set.coarse_iou, set.coarse_iou}, coarse, true});
      mba.series.push_back({"coarse" + suffix, span, {set.coarse_mba, set.coarse_mba}, coarse, true});
    }
    ++set_index;
  }
  std::vector<PlotPanel> panels{losses};
  if (!x.empty()) {  // validation panels once there is a validation
    panels.push_back(iou);
    panels.push_back(mba);
  }
  write_plot(out / "curves.png", panels, "iteration");
}

TrainProgress::TrainProgress(int64_t first, int64_t total, bool enabled)
    : first_(first),
      total_(total),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) != 0),
      last_iteration_(first),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

void TrainProgress::update(int64_t iteration, double loss, double lr, double images_per_iteration,
                           double wait_share) {
  loss_ = loss;
  lr_ = lr;
  images_ = images_per_iteration;
  wait_share_ = wait_share;
  last_iteration_ = iteration;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_print_ >= (tty_ ? std::chrono::seconds(1) : std::chrono::seconds(30))) {
    last_print_ = now;
    print(iteration, false);
  }
}

void TrainProgress::finish() {
  if (enabled_ && last_iteration_ > first_) print(last_iteration_, true);
}

void TrainProgress::break_line() {
  if (!pending_newline_) return;
  std::fputc('\n', stderr);
  pending_newline_ = false;
}

void TrainProgress::print(int64_t iteration, bool final_line) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(iteration - first_) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - iteration) / rate : NAN;
  std::fprintf(stderr, "%strain %lld/%lld loss %.4f lr %.3g %.3f it/s %.2f img/s wait %.0f%% %s %s%s",
               tty_ ? "\r" : "", static_cast<long long>(iteration), static_cast<long long>(total_), loss_, lr_,
               rate, rate * images_, 100 * wait_share_, final_line ? "took" : "ETA",
               format_duration(final_line ? elapsed : eta).c_str(), (final_line || !tty_) ? "\n" : "\033[K");
  std::fflush(stderr);
  pending_newline_ = tty_ && !final_line;
}

}  // namespace airm::train_detail
