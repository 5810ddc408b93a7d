// airm synth: generated scenes with exact ground truth, as a dataset.
#include <cstdio>
#include <memory>

#include <opencv2/imgcodecs.hpp>

#include "airm/atomic_file.hpp"
#include "airm/degrade.hpp"
#include "airm/error.hpp"
#include "airm/mask_io.hpp"
#include "airm/parallel.hpp"
#include "airm/progress.hpp"
#include "airm/synth.hpp"
#include "commands.hpp"

namespace airm::cli {
namespace fs = std::filesystem;
namespace {

struct SynthArgs {
  std::string size = "3840x2160";
  int count = 1;
  std::uint64_t seed = 0;
  std::string out;
  std::string coarse = "none";
  std::string format = "jpg";
  int threads = 0;
  bool main_object = false;
  bool quiet = false;
};

void write_image(const fs::path& path, const cv::Mat& image) {
  write_atomically(path, [&](const fs::path& tmp) {
    const std::vector<int> params = path.extension() == ".jpg" ? std::vector<int>{cv::IMWRITE_JPEG_QUALITY, 95}
                                                               : std::vector<int>{cv::IMWRITE_PNG_COMPRESSION, 1};
    if (!cv::imwrite(tmp.string(), image, params)) throw Error(path.string(), "could not be written");
  });
}

int run_synth(const SynthArgs& args) {
  SynthOptions options;
  options.size = parse_size(args.size);
  options.main_object = args.main_object;
  if (args.count < 1) throw UsageError("expected --count >= 1, got " + std::to_string(args.count));
  const bool with_coarse = args.coarse != "none";
  const DegradeMode mode = with_coarse ? parse_degrade_mode(args.coarse) : DegradeMode::perturb;
  const fs::path out = args.out;
  fs::create_directories(out / "images");
  fs::create_directories(out / "masks");
  if (with_coarse) fs::create_directories(out / "coarse");

  Progress progress("synth", static_cast<std::size_t>(args.count), !args.quiet);
  parallel_for(static_cast<std::size_t>(args.count), args.threads, [&](std::size_t i) {
    char name[64];
    std::snprintf(name, sizeof name, "synth_s%llu_%04zu", static_cast<unsigned long long>(args.seed), i);
    const std::uint64_t seed = sample_seed(args.seed, name);
    const Scene scene = generate_scene(options, seed);
    write_image(out / "images" / (std::string(name) + "." + args.format), scene.image);
    write_mask(out / "masks" / (std::string(name) + ".png"), scene.mask);
    if (with_coarse) write_mask(out / "coarse" / (std::string(name) + ".png"), degrade_mask(scene.mask, mode, seed));
    progress.advance();
  });
  progress.finish();
  std::printf("wrote %d scene(s) of %dx%d to %s\n", args.count, options.size.width, options.size.height,
              out.string().c_str());
  return 0;
}

}  // namespace

Runner add_synth_command(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* sub = app.add_subcommand("synth", "Generate scenes with exact ground truth (up to 8K)");
  sub->add_option("--size", args->size, "WIDTHxHEIGHT, at most 7680x4320")->capture_default_str();
  sub->add_option("--count", args->count, "Number of scenes")->capture_default_str();
  sub->add_option("--seed", args->seed, "Seed")->capture_default_str();
  sub->add_option("--out", args->out, "Output folder (images/, masks/, coarse/)")->required();
  sub->add_option("--coarse", args->coarse, "Also write coarse masks: none | perturb | lowres | both")
      ->check(CLI::IsMember({"none", "perturb", "lowres", "both"}))
      ->capture_default_str();
  sub->add_option("--format", args->format, "Image format: jpg (quality 95) | png")
      ->check(CLI::IsMember({"jpg", "png"}))
      ->capture_default_str();
  sub->add_option("--threads", args->threads, "Worker threads (0: all cores)")->capture_default_str();
  sub->add_flag("--main-object", args->main_object,
                "One large object near the centre, set apart from the background (a salient-object scene)");
  sub->add_flag("--quiet", args->quiet, "No progress line");
  return [args] { return run_synth(*args); };
}

}  // namespace airm::cli
