// airm degrade: coarse masks made from the ground truth, written as a dataset
// (images/ and masks/ linked to the originals, coarse/ generated).
#include <cstdio>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "airm/atomic_file.hpp"
#include "airm/dataset.hpp"
#include "airm/degrade.hpp"
#include "airm/error.hpp"
#include "airm/mask_io.hpp"
#include "airm/metrics.hpp"
#include "airm/parallel.hpp"
#include "airm/progress.hpp"
#include "commands.hpp"

namespace airm::cli {
namespace fs = std::filesystem;
namespace {

struct DegradeArgs {
  std::string data;
  std::string split;
  std::string splits_file;
  std::string mode = "perturb";
  std::uint64_t seed = 0;
  std::string out;
  PerturbOptions perturb;
  LowresOptions lowres;
  int threads = 0;
  bool quiet = false;
};

// Points `link` at `target` (absolute), replacing what was there; copies where
// the file system has no symbolic links.
void link_or_copy(const fs::path& target, const fs::path& link) {
  std::error_code ec;
  fs::remove(link, ec);
  fs::create_symlink(fs::absolute(target), link, ec);
  if (ec) fs::copy_file(target, link, fs::copy_options::overwrite_existing);
}

int run_degrade(const DegradeArgs& args) {
  const DegradeMode mode = parse_degrade_mode(args.mode);
  if (!(args.perturb.min_iou > 0 && args.perturb.min_iou < args.perturb.max_iou && args.perturb.max_iou <= 1.0)) {
    throw UsageError("expected 0 < --min-iou < --max-iou <= 1");
  }
  if (args.lowres.factor < 1) throw UsageError("expected --factor >= 1");
  const Discovery discovery = discover_split(args.data, args.split, args.splits_file);
  for (const auto& path : discovery.unmatched) {
    std::fprintf(stderr, "note: no partner, skipped: %s\n", path.string().c_str());
  }
  const fs::path out = args.out;
  for (const Sample& s : discovery.samples) {
    for (const char* sub : {"images", "masks", "coarse"}) fs::create_directories(out / s.dataset / sub);
    if (!s.ignore.empty()) fs::create_directories(out / s.dataset / "ignore");
  }

  const std::size_t n = discovery.samples.size();
  std::vector<double> targets(n, NAN), achieved(n, NAN);
  std::vector<std::string> errors(n);
  Progress progress("degrade", n, !args.quiet);
  parallel_for(n, args.threads, [&](std::size_t i) {
    const Sample& s = discovery.samples[i];
    try {
      const fs::path dir = out / s.dataset;
      const cv::Mat gt = read_mask_u8(s.gt);
      const std::uint64_t seed = sample_seed(args.seed, s.name);
      if (mode != DegradeMode::lowres) targets[i] = draw_target_iou(args.perturb, seed);
      const cv::Mat coarse = degrade_mask(gt, mode, seed, args.perturb, args.lowres);
      write_mask(dir / "coarse" / (s.name + ".png"), coarse);
      achieved[i] = score_masks(gt, coarse).iou / 100.0;
      link_or_copy(s.image, dir / "images" / (s.name + s.image.extension().string()));
      link_or_copy(s.gt, dir / "masks" / (s.name + ".png"));
      if (!s.ignore.empty()) link_or_copy(s.ignore, dir / "ignore" / (s.name + s.ignore.extension().string()));
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
    progress.advance();
  });
  progress.finish();

  std::ostringstream csv;
  csv << "dataset,name,target_iou,achieved_iou\n";
  int failed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      std::fprintf(stderr, "error: %s\n", errors[i].c_str());
      ++failed;
      continue;
    }
    csv << discovery.samples[i].dataset << ',' << discovery.samples[i].name << ',' << targets[i] << ','
        << achieved[i] << '\n';
  }
  write_text_atomically(out / "degrade.csv", csv.str());
  const nlohmann::json settings = {{"data", args.data},
                                   {"split", args.split},
                                   {"mode", args.mode},
                                   {"seed", args.seed},
                                   {"min_iou", args.perturb.min_iou},
                                   {"max_iou", args.perturb.max_iou},
                                   {"tolerance", args.perturb.tolerance},
                                   {"factor", args.lowres.factor},
                                   {"images", n - failed}};
  write_text_atomically(out / "degrade.json", settings.dump(2) + "\n");
  std::printf("wrote %zu coarse mask(s) to %s (mode %s, seed %llu)\n", n - failed, out.string().c_str(),
              args.mode.c_str(), static_cast<unsigned long long>(args.seed));
  return failed ? 1 : 0;
}

}  // namespace

Runner add_degrade_command(CLI::App& app) {
  auto args = std::make_shared<DegradeArgs>();
  CLI::App* sub = app.add_subcommand("degrade", "Make coarse masks from the ground truth (a dataset under --out)");
  sub->add_option("--data", args->data, "Dataset folder, or a root of dataset folders")->required();
  sub->add_option("--split", args->split, "Named split of DATA/SPLITS.md (e.g. val)");
  sub->add_option("--splits", args->splits_file, "Another splits file");
  sub->add_option("--mode", args->mode, "perturb | lowres | both (lowres of the perturbed mask)")
      ->check(CLI::IsMember({"perturb", "lowres", "both"}))
      ->capture_default_str();
  sub->add_option("--seed", args->seed, "Seed; each file's masks depend only on (seed, file name)")
      ->capture_default_str();
  sub->add_option("--out", args->out, "Output dataset folder")->required();
  sub->add_option("--min-iou", args->perturb.min_iou, "Perturbation: lowest target IoU")->capture_default_str();
  sub->add_option("--max-iou", args->perturb.max_iou, "Perturbation: target IoU is below this")
      ->capture_default_str();
  sub->add_option("--factor", args->lowres.factor, "Low-res: downscale factor of the long side")
      ->capture_default_str();
  sub->add_option("--threads", args->threads, "Worker threads (0: all cores)")->capture_default_str();
  sub->add_flag("--quiet", args->quiet, "No progress line");
  return [args] { return run_degrade(*args); };
}

}  // namespace airm::cli
