// airm refine: refine coarse masks of (ultra-)high-resolution photos, one
// image or a folder of them (resumable: existing outputs are skipped). With
// no coarse mask, the coarse segmenter makes one first (photo to precise
// mask in one command).
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"
#include "airm/model/segmenter.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/refiner.hpp"
#include "cli_files.hpp"
#include "commands.hpp"
#include "photo_batch.hpp"

namespace airm::cli {
namespace {
namespace fs = std::filesystem;

struct RefineArgs {
  std::string image;
  std::string coarse;
  std::string out;
  std::string images_dir;
  std::string coarse_dir;
  std::string model;
  std::string segmenter;
  std::string save_coarse;
  std::string scales = "auto";
  std::string size;
  std::string overlay;
  std::string device = "cpu";
  bool dense = false;
  bool bf16 = false;
  bool channels_last = false;
  bool save_prob = false;
  bool labels = false;
  bool quiet = false;
  bool verbose = false;
  int threads = 0;
  long long max_pixels = 100'000'000;
  RefineOptions options;
};


// Where one image's outputs go. Without a coarse mask (coarse empty) the
// segmenter makes one, kept at coarse_out if given.
struct ImageJob {
  fs::path image, coarse, out, overlay, coarse_out;
};

struct ImageResult {
  RefineStats stats;
  double segment_seconds = -1;  // the segmenter's time (-1: a coarse mask was given)
};

// Refines one image and writes its outputs; throws on any problem.
ImageResult refine_one(const Refiner& refiner, SegmenterNet* segmenter, const RefineArgs& args, const ImageJob& job) {
  const fs::path &image_path = job.image, &coarse_path = job.coarse, &out_path = job.out, &overlay_path = job.overlay;
  const cv::Size size = read_image_size(image_path);
  const long long pixels = static_cast<long long>(size.width) * size.height;  // Size::area() is int: 65535^2 overflows
  if (args.max_pixels > 0 && pixels > args.max_pixels) {
    throw Error(image_path.string(), std::to_string(size.width) + "x" + std::to_string(size.height) + " = " +
                                         std::to_string(pixels) + " pixels, more than --max-pixels " +
                                         std::to_string(args.max_pixels));
  }
  const cv::Mat image = read_image(image_path);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  ImageResult result;
  RefineStats& stats = result.stats;
  if (args.labels) {
    const cv::Mat labels = read_label_map(coarse_path);
    try {
      const cv::Mat out = refiner.refine_labels(image, labels, args.options, &stats);
      write_label_map(out_path, out);
      if (!overlay_path.empty()) write_image_file(overlay_path, draw_boundaries(image, labels, out, true));
    } catch (const Error& e) {
      if (!e.file().empty()) throw;
      throw Error(coarse_path.string(), e.problem());
    }
    return result;
  }
  cv::Mat coarse;
  if (coarse_path.empty()) {
    const auto start = std::chrono::steady_clock::now();
    const cv::Mat mask = segment_mask(*segmenter, image);
    result.segment_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!job.coarse_out.empty()) {
      if (job.coarse_out.has_parent_path()) fs::create_directories(job.coarse_out.parent_path());
      write_mask(job.coarse_out, mask);
    }
    mask.convertTo(coarse, CV_32F, 1.0 / 255.0);  // as a coarse PNG is read: --save-coarse's file refines the same
  } else {
    coarse = fit_mask_to(read_mask(coarse_path, MaskMode::probability), image.size(), coarse_path);
  }
  const cv::Mat prob = refiner.refine(image, coarse, args.options, &stats);
  write_mask(out_path, prob, args.save_prob ? MaskMode::probability : MaskMode::binary);
  if (!overlay_path.empty()) write_image_file(overlay_path, draw_boundaries(image, coarse, prob));
  return result;
}

void print_stats(const fs::path& out, const ImageResult& result, bool verbose) {
  const RefineStats& stats = result.stats;
  std::fprintf(stderr, "wrote %s: %lld queries in %.2f s", out.string().c_str(), static_cast<long long>(stats.queries),
               stats.seconds);
  if (result.segment_seconds >= 0) std::fprintf(stderr, " (coarse mask by the segmenter in %.2f s)", result.segment_seconds);
  std::fprintf(stderr, "\n");
  if (!verbose) return;
  for (const StageStats& s : stats.stages) {
    std::fprintf(stderr, "  scale %.4g: grid %dx%d, encoder %dx%d in %d tile(s), %lld queries, %.2f s\n", s.scale,
                 s.grid.width, s.grid.height, s.encoder.width, s.encoder.height, s.tiles,
                 static_cast<long long>(s.queries), s.seconds);
  }
  if (stats.first_stage_shift_px > 0 || stats.coarse_stages_skipped) {
    std::fprintf(stderr, "  gate: the first scale moved the boundary %.2f px on average: %s\n", stats.first_stage_shift_px,
                 stats.coarse_stages_skipped ? "close mask, refined at full resolution only" : "every scale run");
  }
}

int run_batch(const Refiner& refiner, SegmenterNet* segmenter, const RefineArgs& args) {
  const fs::path images_dir = args.images_dir, coarse_dir = args.coarse_dir, out_dir = args.out;
  if (!coarse_dir.empty() && !fs::is_directory(coarse_dir)) throw Error(coarse_dir.string(), "is not a folder");
  const std::vector<fs::path> images = list_images(images_dir);
  fs::create_directories(out_dir);
  // A killed earlier batch's half-written files (outputs only ever appear whole, by rename).
  for (const std::string& dir : {out_dir.string(), args.overlay, args.save_coarse}) {
    if (!dir.empty()) remove_stale_temporaries(dir);
  }

  const auto start = std::chrono::steady_clock::now();
  int refined = 0, skipped = 0;
  long long queries = 0;
  const int failed = for_each_photo(images, "refine", !args.quiet, [&](const fs::path& image) {
    const std::string stem = image.stem().string();
    const fs::path out = out_dir / (stem + ".png");
    if (fs::exists(out)) {
      ++skipped;
      std::printf("%s: skipped (output exists)\n", stem.c_str());
      return;
    }
    ImageJob job{image, {}, out, {}, {}};
    if (!coarse_dir.empty()) job.coarse = require_coarse_mask(coarse_dir, image);
    if (!args.overlay.empty()) job.overlay = fs::path(args.overlay) / (stem + ".jpg");
    if (!args.save_coarse.empty()) job.coarse_out = fs::path(args.save_coarse) / (stem + ".png");
    const ImageResult result = refine_one(refiner, segmenter, args, job);
    queries += result.stats.queries;
    ++refined;
    std::printf("%s: refined (%lld queries, %.2f s)\n", stem.c_str(), static_cast<long long>(result.stats.queries),
                result.stats.seconds);
    if (args.verbose) print_stats(out, result, true);
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("refined %d, skipped %d (output exists), failed %d of %zu image(s) in %.1f s (%lld queries)\n", refined,
              skipped, failed, images.size(), seconds, queries);
  std::fflush(stdout);
  return batch_exit_code(failed);
}

int run_refine(RefineArgs& args) {
  const bool batch = !args.images_dir.empty() || !args.coarse_dir.empty();
  if (batch) {
    if (args.images_dir.empty() || args.out.empty() || !args.image.empty()) {
      throw UsageError("batch mode expects --images DIR [--coarse DIR] --out DIR and no IMAGE/COARSE arguments");
    }
  } else if (args.image.empty() || args.out.empty()) {
    throw UsageError("expected IMAGE [COARSE] -o OUT.png, or --images DIR [--coarse DIR] --out DIR");
  }
  const bool segment = batch ? args.coarse_dir.empty() : args.coarse.empty();
  if (segment && args.labels) throw UsageError("--labels needs a label map (COARSE or --coarse DIR)");
  if (!segment && (!args.segmenter.empty() || !args.save_coarse.empty())) {
    throw UsageError("--segmenter and --save-coarse apply only when no coarse mask is given");
  }
  if (args.labels && args.save_prob) throw UsageError("--save-prob has no meaning with --labels");
  if (args.max_pixels < 0) throw UsageError("--max-pixels must be >= 0 (0: no limit)");
  if (args.threads < 0) throw UsageError("--threads must be >= 0 (0: all cores)");
  args.options.scales = parse_scales(args.scales);
  args.options.dense = args.dense;
  args.options.bf16 = args.bf16;
  if (!args.size.empty()) {
    args.options.output_size = parse_size(args.size);
    const long long out_pixels = static_cast<long long>(args.options.output_size.width) * args.options.output_size.height;
    if (args.max_pixels > 0 && out_pixels > args.max_pixels) {
      throw UsageError("--size " + args.size + ": " + std::to_string(out_pixels) + " pixels, more than --max-pixels " +
                       std::to_string(args.max_pixels));
    }
  }
  try {
    args.options.validate();
  } catch (const Error& e) {
    throw UsageError(e.what());
  }

  const fs::path model = resolve_weights(args.model, "AIRM_MODEL", "airm.pt", "--model");
  retain_freed_memory();
  const Refiner refiner(model, RefinerOptions{args.device, args.threads, args.channels_last});
  if (args.verbose) std::fprintf(stderr, "refine: %d intra-op thread(s)\n", torch::get_num_threads());
  SegmenterNet segmenter{nullptr};
  if (segment) {
    segmenter = load_segmenter_weights(resolve_weights(args.segmenter, "AIRM_SEGMENTER", "segmenter.pt", "--segmenter"));
    segmenter->to(parse_device(args.device));
  }
  SegmenterNet* segmenter_or_null = segment ? &segmenter : nullptr;
  if (batch) return run_batch(refiner, segmenter_or_null, args);

  const ImageResult result =
      refine_one(refiner, segmenter_or_null, args, ImageJob{args.image, args.coarse, args.out, args.overlay, args.save_coarse});
  if (!args.quiet) print_stats(args.out, result, args.verbose);
  return 0;
}

}  // namespace

Runner add_refine_command(CLI::App& app) {
  auto args = std::make_shared<RefineArgs>();
  CLI::App* sub = app.add_subcommand(
      "refine", "Refine coarse masks: IMAGE [COARSE] -o OUT.png, or folders (no COARSE: the segmenter makes one)");
  sub->add_option("IMAGE", args->image, "Photo (JPEG, PNG, TIFF, WebP, BMP)");
  sub->add_option("COARSE", args->coarse,
                  "Its coarse mask (or label map with --labels); left out: the coarse segmenter's mask");
  sub->add_option("-o,--out", args->out, "Output PNG (one image) or folder (batch)");
  sub->add_option("--images", args->images_dir, "Batch: folder of photos");
  sub->add_option("--coarse", args->coarse_dir,
                  "Batch: folder of coarse masks named like the photos (STEM.png); left out: the segmenter's");
  sub->add_option("--model", args->model, "Weights file (default: $AIRM_MODEL, else models/airm.pt of the project)");
  sub->add_option("--segmenter", args->segmenter,
                  "Segmenter weights when no coarse mask is given (default: $AIRM_SEGMENTER, else models/segmenter.pt)");
  sub->add_option("--save-coarse", args->save_coarse, "Also write the segmenter's coarse mask: a .png (one image) or a folder");
  sub->add_option("--scales", args->scales, "'auto' or ascending scales in (0,1], e.g. 0.125,0.25,0.5,1")
      ->capture_default_str();
  sub->add_flag("--dense", args->dense, "Query every pixel at every scale (slow; the reference)");
  sub->add_flag("--bf16", args->bf16, "bfloat16 autocast");
  sub->add_flag("--channels-last", args->channels_last, "Encoder in channels-last memory (faster with --bf16)");
  sub->add_option("--threads", args->threads, "Intra-op threads (0: all cores)")->capture_default_str();
  sub->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  sub->add_flag("--save-prob", args->save_prob, "Write probabilities 0..255 instead of a binary mask");
  sub->add_option("--overlay", args->overlay,
                  "Write the image with the old (red) and new (green) boundary: a .jpg (one image) or a folder");
  sub->add_option("--max-pixels", args->max_pixels, "Refuse larger images (0: no limit)")->capture_default_str();
  sub->add_flag("--labels", args->labels, "COARSE is a label map of class ids; write refined ids");
  sub->add_option("--size", args->size, "Output WIDTHxHEIGHT (default: the image's)");
  sub->add_option("--tile", args->options.tile_size, "Encode every scale at full size in tiles of N px (0: cap)")
      ->capture_default_str();
  sub->add_option("--max-encoder-side", args->options.max_encoder_side, "Encoder input cap (long side, px)")
      ->capture_default_str();
  sub->add_option("--band", args->options.band, "Adaptive: re-query within N px of the boundary")
      ->capture_default_str();
  sub->add_option("--first-band", args->options.first_band,
                  "First scale: query within N px of the coarse boundary, keep the coarse mask elsewhere (0: every pixel)")
      ->capture_default_str();
  sub->add_option("--close-mask-px", args->options.close_mask_px,
                  "Automatic scales: if the first scale moves the coarse boundary by less than this many px on "
                  "average, refine at full resolution only (0: always every scale)")
      ->capture_default_str();
  sub->add_option("--chunk", args->options.chunk_size, "Queries per MLP evaluation")->capture_default_str();
  sub->add_flag("--quiet", args->quiet, "No progress line (batch mode still prints one result line per image on stdout)");
  sub->add_flag("--verbose", args->verbose, "Per-scale statistics");
  return [args] { return run_refine(*args); };
}

}  // namespace airm::cli
