// airm refine: refine coarse masks of (ultra-)high-resolution photos, one
// image or a folder of them (resumable: existing outputs are skipped).
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
#include "airm/progress.hpp"
#include "airm/refiner.hpp"
#include "commands.hpp"

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
  std::string scales = "auto";
  std::string size;
  std::string overlay;
  std::string device = "cpu";
  bool dense = false;
  bool bf16 = false;
  bool save_prob = false;
  bool labels = false;
  bool quiet = false;
  bool verbose = false;
  int threads = 0;
  long long max_pixels = 100'000'000;
  RefineOptions options;
};

const std::vector<std::string> kImageExtensions = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

bool is_image_file(const fs::path& path) {
  const std::string ext = lower(path.extension().string());
  return fs::is_regular_file(path) && std::find(kImageExtensions.begin(), kImageExtensions.end(), ext) !=
                                          kImageExtensions.end();
}

std::vector<double> parse_scales(const std::string& text) {
  if (text == "auto") return {};
  std::vector<double> scales;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const double value = std::strtod(item.c_str(), &end);
    if (item.empty() || end == item.c_str() || *end != '\0') {
      throw UsageError("--scales: expected 'auto' or ascending numbers in (0,1] such as 0.125,0.25,0.5,1, got '" +
                       text + "'");
    }
    scales.push_back(value);
  }
  if (scales.empty()) throw UsageError("--scales: expected at least one scale");
  return scales;
}

// --model, else $AIRM_MODEL, else models/airm.pt in a folder above the binary (its project checkout).
fs::path resolve_model(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("AIRM_MODEL"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / "models" / "airm.pt")) return dir / "models" / "airm.pt";
      if (dir == dir.root_path()) break;
    }
  }
  throw Error("", "no model: pass --model FILE or set AIRM_MODEL (no models/airm.pt found in the folders above " +
                      (ec ? std::string("the airm binary") : exe.parent_path().string()) + ")");
}

void write_overlay(const fs::path& path, const cv::Mat& overlay) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  write_atomically(path, [&](const fs::path& tmp) {
    if (!cv::imwrite(tmp.string(), overlay)) throw Error(path.string(), "could not be written");
  });
}

// Refines one image and writes its outputs; throws on any problem.
RefineStats refine_one(const Refiner& refiner, const RefineArgs& args, const fs::path& image_path,
                       const fs::path& coarse_path, const fs::path& out_path, const fs::path& overlay_path) {
  const cv::Size size = read_image_size(image_path);
  if (args.max_pixels > 0 && static_cast<long long>(size.area()) > args.max_pixels) {
    throw Error(image_path.string(), std::to_string(size.width) + "x" + std::to_string(size.height) + " = " +
                                         std::to_string(size.area()) + " pixels, more than --max-pixels " +
                                         std::to_string(args.max_pixels));
  }
  const cv::Mat image = read_image(image_path);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  RefineStats stats;
  if (args.labels) {
    const cv::Mat labels = read_label_map(coarse_path);
    try {
      const cv::Mat out = refiner.refine_labels(image, labels, args.options, &stats);
      write_label_map(out_path, out);
      if (!overlay_path.empty()) write_overlay(overlay_path, draw_boundaries(image, labels, out, true));
    } catch (const Error& e) {
      if (!e.file().empty()) throw;
      throw Error(coarse_path.string(), e.problem());
    }
    return stats;
  }
  const cv::Mat coarse = fit_mask_to(read_mask(coarse_path, MaskMode::probability), image.size(), coarse_path);
  const cv::Mat prob = refiner.refine(image, coarse, args.options, &stats);
  write_mask(out_path, prob, args.save_prob ? MaskMode::probability : MaskMode::binary);
  if (!overlay_path.empty()) write_overlay(overlay_path, draw_boundaries(image, coarse, prob));
  return stats;
}

void print_stats(const fs::path& out, const RefineStats& stats, bool verbose) {
  std::fprintf(stderr, "wrote %s: %lld queries in %.2f s\n", out.string().c_str(),
               static_cast<long long>(stats.queries), stats.seconds);
  if (!verbose) return;
  for (const StageStats& s : stats.stages) {
    std::fprintf(stderr, "  scale %.4g: grid %dx%d, encoder %dx%d in %d tile(s), %lld queries, %.2f s\n", s.scale,
                 s.grid.width, s.grid.height, s.encoder.width, s.encoder.height, s.tiles,
                 static_cast<long long>(s.queries), s.seconds);
  }
}

// The coarse mask (or label map) of an image in `dir`: STEM.png first, then any image extension.
fs::path find_partner(const fs::path& dir, const fs::path& image) {
  const std::string stem = image.stem().string();
  if (fs::exists(dir / (stem + ".png"))) return dir / (stem + ".png");
  for (const std::string& ext : kImageExtensions) {
    std::string upper = ext;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    for (const std::string& e : {ext, upper}) {
      if (fs::exists(dir / (stem + e))) return dir / (stem + e);
    }
  }
  return {};
}

int run_batch(const Refiner& refiner, const RefineArgs& args) {
  const fs::path images_dir = args.images_dir, coarse_dir = args.coarse_dir, out_dir = args.out;
  for (const fs::path& dir : {images_dir, coarse_dir}) {
    if (!fs::is_directory(dir)) throw Error(dir.string(), "is not a folder");
  }
  std::vector<fs::path> images;
  for (const auto& entry : fs::directory_iterator(images_dir)) {
    if (is_image_file(entry.path())) images.push_back(entry.path());
  }
  std::sort(images.begin(), images.end());
  fs::create_directories(out_dir);

  const auto start = std::chrono::steady_clock::now();
  int refined = 0, skipped = 0, failed = 0;
  long long queries = 0;
  Progress progress("refine", images.size(), !args.quiet);
  std::vector<std::string> seen;
  for (const fs::path& image : images) {
    const std::string stem = image.stem().string();
    const fs::path out = out_dir / (stem + ".png");
    try {
      if (std::find(seen.begin(), seen.end(), stem) != seen.end()) {
        throw Error(image.string(), "another image has the name " + stem + " (outputs would collide); skipped");
      }
      seen.push_back(stem);
      if (fs::exists(out)) {
        ++skipped;
        std::printf("%s: skipped (output exists)\n", stem.c_str());
      } else {
        const fs::path coarse = find_partner(coarse_dir, image);
        if (coarse.empty()) {
          throw Error(image.string(), "no coarse mask " + stem + ".png (or another image type) in " +
                                          coarse_dir.string());
        }
        const fs::path overlay = args.overlay.empty() ? fs::path() : fs::path(args.overlay) / (stem + ".jpg");
        const RefineStats stats = refine_one(refiner, args, image, coarse, out, overlay);
        queries += stats.queries;
        ++refined;
        std::printf("%s: refined (%lld queries, %.2f s)\n", stem.c_str(), static_cast<long long>(stats.queries),
                    stats.seconds);
        if (args.verbose) print_stats(out, stats, true);
      }
    } catch (const std::exception& e) {
      ++failed;
      std::printf("%s: failed\n", stem.c_str());
      std::fprintf(stderr, "\nerror: %s\n", e.what());
    }
    std::fflush(stdout);
    progress.advance();
  }
  progress.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("refined %d, skipped %d (output exists), failed %d of %zu image(s) in %.1f s (%lld queries)\n", refined,
              skipped, failed, images.size(), seconds, queries);
  std::fflush(stdout);
  if (failed > 0) {
    std::fprintf(stderr, "error: %d image(s) failed\n", failed);
    return 1;
  }
  return 0;
}

int run_refine(RefineArgs& args) {
  const bool batch = !args.images_dir.empty() || !args.coarse_dir.empty();
  if (batch) {
    if (args.images_dir.empty() || args.coarse_dir.empty() || args.out.empty() || !args.image.empty()) {
      throw UsageError("batch mode expects --images DIR --coarse DIR --out DIR and no IMAGE/COARSE arguments");
    }
  } else if (args.image.empty() || args.coarse.empty() || args.out.empty()) {
    throw UsageError("expected IMAGE COARSE -o OUT.png, or --images DIR --coarse DIR --out DIR");
  }
  if (args.labels && args.save_prob) throw UsageError("--save-prob has no meaning with --labels");
  if (args.max_pixels < 0) throw UsageError("--max-pixels must be >= 0 (0: no limit)");
  if (args.threads < 0) throw UsageError("--threads must be >= 0 (0: all cores)");
  args.options.scales = parse_scales(args.scales);
  args.options.dense = args.dense;
  args.options.bf16 = args.bf16;
  if (!args.size.empty()) args.options.output_size = parse_size(args.size);
  try {
    args.options.validate();
  } catch (const Error& e) {
    throw UsageError(e.what());
  }

  const fs::path model = resolve_model(args.model);
  retain_freed_memory();
  const Refiner refiner(model, RefinerOptions{args.device, args.threads});
  if (batch) return run_batch(refiner, args);

  const RefineStats stats = refine_one(refiner, args, args.image, args.coarse, args.out, args.overlay);
  if (!args.quiet) print_stats(args.out, stats, args.verbose);
  return 0;
}

}  // namespace

Runner add_refine_command(CLI::App& app) {
  auto args = std::make_shared<RefineArgs>();
  CLI::App* sub = app.add_subcommand("refine", "Refine coarse masks: IMAGE COARSE -o OUT.png, or folders");
  sub->add_option("IMAGE", args->image, "Photo (JPEG, PNG, TIFF, WebP, BMP)");
  sub->add_option("COARSE", args->coarse, "Its coarse mask (or label map with --labels)");
  sub->add_option("-o,--out", args->out, "Output PNG (one image) or folder (batch)");
  sub->add_option("--images", args->images_dir, "Batch: folder of photos");
  sub->add_option("--coarse", args->coarse_dir, "Batch: folder of coarse masks named like the photos (STEM.png)");
  sub->add_option("--model", args->model, "Weights file (default: $AIRM_MODEL, else models/airm.pt of the project)");
  sub->add_option("--scales", args->scales, "'auto' or ascending scales in (0,1], e.g. 0.125,0.25,0.5,1")
      ->capture_default_str();
  sub->add_flag("--dense", args->dense, "Query every pixel at every scale (slow; the reference)");
  sub->add_flag("--bf16", args->bf16, "bfloat16 autocast");
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
  sub->add_option("--chunk", args->options.chunk_size, "Queries per MLP evaluation")->capture_default_str();
  sub->add_flag("--quiet", args->quiet, "No progress line (batch mode still prints one result line per image on stdout)");
  sub->add_flag("--verbose", args->verbose, "Per-scale statistics");
  return [args] { return run_refine(*args); };
}

}  // namespace airm::cli
