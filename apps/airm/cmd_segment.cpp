// airm segment: the coarse segmenter's mask of a photo (or a folder of them),
// the coarse mask `airm refine` takes. The photo is segmented at a low
// resolution (the long side the segmenter was trained at), and the mask
// resized to the photo's size.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"
#include "airm/model/segmenter.hpp"
#include "airm/parallel.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/refiner.hpp"
#include "cli_files.hpp"
#include "commands.hpp"
#include "photo_batch.hpp"

namespace airm::cli {
namespace {
namespace fs = std::filesystem;

struct SegmentArgs {
  std::string image;
  std::string out;
  std::string images_dir;
  std::string segmenter;
  std::string overlay;
  std::string device = "cpu";
  int64_t long_side = 0;
  int threads = 0;
  bool save_prob = false;
  bool quiet = false;
};

// Segments one photo and writes its mask (and overlay); returns the seconds the network took.
double segment_one(SegmenterNet& net, const SegmentArgs& args, const fs::path& image_path, const fs::path& out,
                   const fs::path& overlay) {
  const cv::Mat image = read_image(image_path);
  const auto start = std::chrono::steady_clock::now();
  const cv::Mat prob = segment(net, image, args.long_side);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  write_mask(out, prob, args.save_prob ? MaskMode::probability : MaskMode::binary);
  if (!overlay.empty()) {
    cv::Mat mask;
    cv::compare(prob, 0.5, mask, cv::CMP_GE);
    write_image_file(overlay, draw_boundaries(image, mask, mask));
  }
  return seconds;
}

int run_segment(SegmentArgs& args) {
  const bool batch = !args.images_dir.empty();
  if (batch ? (!args.image.empty() || args.out.empty()) : (args.image.empty() || args.out.empty())) {
    throw UsageError("expected IMAGE -o MASK.png, or --images DIR --out DIR");
  }
  if (args.long_side != 0 && args.long_side < 32) {
    throw UsageError("--long-side must be >= 32 (0: the segmenter's own), got " + std::to_string(args.long_side));
  }
  if (args.threads < 0) throw UsageError("--threads must be >= 0 (0: all cores)");
  const torch::Device device = parse_device(args.device);
  set_torch_threads(args.threads);
  const fs::path weights = resolve_weights(args.segmenter, "AIRM_SEGMENTER", "segmenter.pt", "--segmenter");
  SegmenterNet net = load_segmenter_weights(weights);
  net->to(device);
  net->eval();
  if (!batch) {
    const double seconds = segment_one(net, args, args.image, args.out, args.overlay);
    if (!args.quiet) std::fprintf(stderr, "wrote %s: segmented in %.2f s\n", args.out.c_str(), seconds);
    return 0;
  }
  const std::vector<fs::path> images = list_images(args.images_dir);
  fs::create_directories(args.out);
  remove_stale_temporaries(args.out);  // a killed earlier batch's half-written files
  int done = 0;
  const int failed = for_each_photo(images, "segment", !args.quiet, [&](const fs::path& image) {
    const std::string stem = image.stem().string();
    const fs::path overlay = args.overlay.empty() ? fs::path() : fs::path(args.overlay) / (stem + ".jpg");
    const double seconds = segment_one(net, args, image, fs::path(args.out) / (stem + ".png"), overlay);
    std::printf("%s: segmented (%.2f s)\n", stem.c_str(), seconds);
    ++done;
  });
  std::printf("segmented %d, failed %d of %zu image(s)\n", done, failed, images.size());
  return batch_exit_code(failed);
}

}  // namespace

Runner add_segment_command(CLI::App& app) {
  auto args = std::make_shared<SegmentArgs>();
  CLI::App* sub = app.add_subcommand("segment", "Coarse mask of a photo from the segmenter: IMAGE -o MASK.png");
  sub->add_option("IMAGE", args->image, "Photo (JPEG, PNG, TIFF, WebP, BMP)");
  sub->add_option("-o,--out", args->out, "Output PNG (one image) or folder (batch)");
  sub->add_option("--images", args->images_dir, "Batch: folder of photos");
  sub->add_option("--segmenter", args->segmenter,
                  "Segmenter weights (default: $AIRM_SEGMENTER, else models/segmenter.pt of the project)");
  sub->add_option("--long-side", args->long_side, "Segment at this long side, px (0: the segmenter's own)")
      ->capture_default_str();
  sub->add_flag("--save-prob", args->save_prob, "Write probabilities 0..255 instead of a binary mask");
  sub->add_option("--overlay", args->overlay, "Write the photo with the mask's boundary: a .jpg or a folder");
  sub->add_option("--threads", args->threads, "Intra-op threads (0: every core this process may use)")->capture_default_str();
  sub->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  sub->add_flag("--quiet", args->quiet, "No progress or timing on stderr");
  return [args] { return run_segment(*args); };
}

}  // namespace airm::cli
