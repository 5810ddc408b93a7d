// airm eval: IoU and mBA of predictions (or coarse masks) against the ground truth.
#include <cstdio>
#include <memory>

#include "airm/atomic_file.hpp"
#include "airm/eval.hpp"
#include "airm/report.hpp"
#include "commands.hpp"

namespace airm::cli {
namespace {

struct EvalArgs {
  EvalOptions options;
  std::string pred_dir;
  std::string csv_path;
  std::string json_path;
  std::string report_path;
  ReportOptions report;
  bool quiet = false;
};

int run_eval(EvalArgs& args) {
  EvalOptions& options = args.options;
  options.pred_dir = args.pred_dir;
  options.progress = !args.quiet;
  if (options.use_coarse == !options.pred_dir.empty()) {
    throw UsageError("expected exactly one of --pred DIR and --coarse");
  }
  const EvalResult result = evaluate(options);

  if (!result.unmatched.empty()) {
    std::fprintf(stderr, "note: %zu file(s) without a partner were not scored:\n", result.unmatched.size());
    for (const auto& path : result.unmatched) std::fprintf(stderr, "  %s\n", path.string().c_str());
  }
  for (const EvalFailure& f : result.failures) std::fprintf(stderr, "error: %s\n", f.message.c_str());

  std::fputs(format_summary_table(result.summaries).c_str(), stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "scored %zu image(s) in %.2f s\n", result.scores.size(), result.seconds);

  if (!args.csv_path.empty()) write_text_atomically(args.csv_path, format_scores_csv(result));
  if (!args.json_path.empty()) write_text_atomically(args.json_path, format_summary_json(result, options));
  if (!args.report_path.empty()) write_report(args.report_path, result, options, args.report);
  if (!result.failures.empty()) {
    std::fprintf(stderr, "error: %zu image(s) could not be scored\n", result.failures.size());
    return 1;
  }
  return 0;
}

}  // namespace

Runner add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Score predictions or coarse masks: IoU and mBA (CascadePSP), in %");
  sub->add_option("--data", args->options.data, "Dataset folder, or a root of dataset folders")->required();
  sub->add_option("--split", args->options.split, "Named split of DATA/SPLITS.md (e.g. val)");
  sub->add_option("--splits", args->options.splits_file, "Another splits file");
  auto* pred = sub->add_option("--pred", args->pred_dir, "Predictions: PRED/NAME.png or PRED/DATASET/NAME.png");
  auto* coarse = sub->add_flag("--coarse", args->options.use_coarse, "Score the dataset's own coarse masks");
  pred->excludes(coarse);
  sub->add_option("--csv", args->csv_path, "Write per-image scores to this CSV");
  sub->add_option("--json", args->json_path, "Write the summary to this JSON file");
  sub->add_option("--report", args->report_path, "Write a self-contained HTML report");
  sub->add_option("--report-images", args->report.max_images, "Images in the report, worst first (0: all)")
      ->capture_default_str();
  sub->add_option("--threads", args->options.threads, "Worker threads (0: all cores)")->capture_default_str();
  sub->add_flag("--quiet", args->quiet, "No progress line");
  return [args] { return run_eval(*args); };
}

}  // namespace airm::cli
