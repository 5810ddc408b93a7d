// Scoring a folder of predictions (or the dataset's own coarse masks)
// against the ground truth: `airm eval`.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "airm/dataset.hpp"
#include "airm/metrics.hpp"

namespace airm {

struct EvalOptions {
  std::filesystem::path data;         // dataset folder or root (see discover_dataset)
  std::string split;                  // optional named split of root/SPLITS.md
  std::filesystem::path splits_file;  // optional other splits file
  bool use_coarse = false;            // score each sample's own coarse mask
  std::filesystem::path pred_dir;     // or: predictions, PRED/NAME.png or PRED/DATASET/NAME.png
  int threads = 0;                    // 0: all cores
  bool progress = true;

  void validate() const;  // throws airm::Error
};

struct EvalFailure {
  std::string dataset;
  std::string name;
  std::string message;
};

struct EvalResult {
  std::vector<Sample> samples;        // scored samples, same order as scores
  std::vector<ImageScore> scores;
  std::vector<Summary> summaries;     // per dataset, then "all"
  std::vector<EvalFailure> failures;  // samples that could not be scored
  std::vector<std::filesystem::path> unmatched;  // from discovery
  std::vector<std::filesystem::path> predictions;  // the file scored for each sample
  double seconds = 0;
};

// Finds the prediction file for a sample: PRED/DATASET/NAME.png, then
// PRED/NAME.png (also .jpg/.bmp/.tif/.webp); empty if none.
std::filesystem::path find_prediction(const std::filesystem::path& pred_dir, const Sample& sample);

EvalResult evaluate(const EvalOptions& options);

// The summary table (fixed-width text), the per-image CSV and the JSON summary.
std::string format_summary_table(const std::vector<Summary>& summaries);
std::string format_scores_csv(const EvalResult& result);
std::string format_summary_json(const EvalResult& result, const EvalOptions& options);

}  // namespace airm
