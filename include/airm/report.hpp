// A self-contained HTML report of an evaluation: the summary table and, per
// image (worst first), the image with ground-truth and prediction
// boundaries and the boundary-band errors coloured.
#pragma once

#include <filesystem>

#include "airm/eval.hpp"

namespace airm {

struct ReportOptions {
  int max_images = 100;     // images shown, worst mBA first (all if <= 0)
  int thumbnail_width = 640;  // long side of each embedded picture, pixels
};

// Builds the page; images are embedded as base64 JPEG, nothing is linked.
std::string build_report_html(const EvalResult& result, const EvalOptions& eval_options,
                              const ReportOptions& options = ReportOptions());

void write_report(const std::filesystem::path& path, const EvalResult& result,
                  const EvalOptions& eval_options, const ReportOptions& options = ReportOptions());

}  // namespace airm
