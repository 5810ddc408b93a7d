// airm baseline: the classical peers of the refiner (OpenCV's guided filter,
// GrabCut from the coarse mask; airm/baseline.hpp) on one photo or a folder,
// with the same file conventions as `airm refine`, timed per image.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "airm/atomic_file.hpp"
#include "airm/baseline.hpp"
#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"
#include "cli_files.hpp"
#include "commands.hpp"
#include "photo_batch.hpp"

namespace airm::cli {
namespace {
namespace fs = std::filesystem;

struct BaselineArgs {
  std::string method;
  std::string image, coarse, out;
  std::string images_dir, coarse_dir;
  bool quiet = false;
};

// Refines one photo and writes the mask; returns the seconds the method took.
double baseline_one(const BaselineArgs& args, const fs::path& image_path, const fs::path& coarse_path,
                    const fs::path& out) {
  const cv::Mat image = read_image(image_path);
  const cv::Mat coarse = fit_mask_to(read_mask(coarse_path, MaskMode::probability), image.size(), coarse_path);
  const auto start = std::chrono::steady_clock::now();
  cv::Mat mask;
  try {
    mask = baseline_refine(args.method, image, coarse);
  } catch (const Error& e) {
    throw Error(image_path.string(), e.problem());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  write_mask(out, mask);
  return seconds;
}

int run_baseline(const BaselineArgs& args) {
  const bool batch = !args.images_dir.empty() || !args.coarse_dir.empty();
  if (batch ? (args.images_dir.empty() || args.coarse_dir.empty() || !args.image.empty() || args.out.empty())
            : (args.image.empty() || args.coarse.empty() || args.out.empty())) {
    throw UsageError("expected IMAGE COARSE -o OUT.png, or --images DIR --coarse DIR -o DIR");
  }
  if (!batch) {
    const double seconds = baseline_one(args, args.image, args.coarse, args.out);
    if (!args.quiet) std::fprintf(stderr, "wrote %s: %s in %.3f s\n", args.out.c_str(), args.method.c_str(), seconds);
    return 0;
  }
  if (!fs::is_directory(args.coarse_dir)) throw Error(args.coarse_dir, "is not a folder");
  const std::vector<fs::path> images = list_images(args.images_dir);
  fs::create_directories(args.out);
  remove_stale_temporaries(args.out);  // a killed earlier batch's half-written files
  int done = 0;
  double total = 0;
  const int failed = for_each_photo(images, args.method.c_str(), !args.quiet, [&](const fs::path& image) {
    const std::string stem = image.stem().string();
    const fs::path coarse = require_coarse_mask(args.coarse_dir, image);
    const double seconds = baseline_one(args, image, coarse, fs::path(args.out) / (stem + ".png"));
    std::printf("%s: %s (%.3f s)\n", stem.c_str(), args.method.c_str(), seconds);
    total += seconds;
    ++done;
  });
  std::printf("%s: refined %d, failed %d of %zu image(s), %.3f s/image\n", args.method.c_str(), done, failed,
              images.size(), done ? total / done : 0.0);
  return batch_exit_code(failed);
}

}  // namespace

Runner add_baseline_command(CLI::App& app) {
  auto args = std::make_shared<BaselineArgs>();
  CLI::App* sub = app.add_subcommand(
      "baseline", "Classical peers of the refiner (guided filter, GrabCut from the mask): IMAGE COARSE -o OUT.png");
  sub->add_option("--method", args->method, "guided (OpenCV ximgproc guided filter) or grabcut")
      ->required()
      ->check(CLI::IsMember({"guided", "grabcut"}));
  sub->add_option("IMAGE", args->image, "Photo (JPEG, PNG, TIFF, WebP, BMP)");
  sub->add_option("COARSE", args->coarse, "Its coarse mask");
  sub->add_option("-o,--out", args->out, "Output PNG (one image) or folder (batch)");
  sub->add_option("--images", args->images_dir, "Batch: folder of photos");
  sub->add_option("--coarse", args->coarse_dir, "Batch: folder of coarse masks named like the photos (STEM.png)");
  sub->add_flag("--quiet", args->quiet, "No progress line (batch mode still prints one result line per image)");
  return [args] { return run_baseline(*args); };
}

}  // namespace airm::cli
