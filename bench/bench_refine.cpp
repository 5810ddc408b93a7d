// Refinement cost on generated scenes (1K-8K): wall time, peak RSS and
// queries of dense fp32, adaptive fp32 and adaptive bf16 (and, on request,
// the tiled encoder, every automatic stage without the close-mask gate
// (`stages`), one full-resolution stage (`scales1`), or any of them with a
// second model: `baseline:adaptive` runs --baseline FILE), as ratios to the
// first config (dense by default). A config ending in `-small-pages` runs
// with AIRM_NO_HUGE_PAGES=1 (no huge pages for the retained heap, see
// retain_freed_memory()), one ending in `-glibc-huge-pages` with that and
// glibc's own GLIBC_TUNABLES=glibc.malloc.hugetlb=1 instead. A config ending
// in `-cl` (before those) runs the encoder in channels-last memory
// (RefinerOptions::channels_last).
//
//   bench_refine [--threads N] [--model FILE] [--baseline FILE] [--sizes 1K,2K,4K,6K,8K]
//                [--configs dense,adaptive,adaptive-bf16[,tiled,stages,scales1,baseline:adaptive]]
//                [--repeat N] [--keep DIR] [--verbose]
//
// --repeat N runs every case N times (each in a fresh child) and reports the
// run of median wall time: on a shared VM single runs vary by 20-30%.
//
// The scenes (generate_scene + a boundary perturbation to IoU 0.9) are
// written as PNG files first; every (size, config) then runs in a child
// process of its own (this program re-executed with --child) that reads
// them like `airm refine` does, so each peak RSS is that case's alone. The
// model is --model, else $AIRM_MODEL, else models/airm.pt of the checkout,
// else a random configs/airm_mit_b0.json network (seed 0) made to follow the
// coarse mask (tests/refine/follower_net.hpp: a purely random network is
// uncertain everywhere, which makes adaptive = dense). The parent prints one
// Markdown table.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "airm/degrade.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"
#include "airm/model/weights.hpp"
#include "airm/refiner.hpp"
#include "airm/synth.hpp"
#include "../tests/refine/follower_net.hpp"

namespace fs = std::filesystem;

namespace {

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

const std::map<std::string, cv::Size> kSizes = {{"1K", {1024, 768}},  {"2K", {2048, 1080}}, {"4K", {3840, 2160}},
                                                {"6K", {6000, 4000}}, {"8K", {7680, 4320}}};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

std::string default_model() {
  if (const char* env = std::getenv("AIRM_MODEL"); env != nullptr && *env != '\0') return env;
  const fs::path checkout = fs::path(AIRM_SOURCE_DIR) / "models" / "airm.pt";
  return fs::exists(checkout) ? checkout.string() : std::string();
}

const std::string kSmallPages = "-small-pages";
const std::string kGlibcHugePages = "-glibc-huge-pages";
const std::string kChannelsLast = "-cl";

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The config without its page suffix (the environment of its child).
std::string without_page_suffix(std::string config) {
  for (const std::string& suffix : {kSmallPages, kGlibcHugePages}) {
    if (ends_with(config, suffix)) config.resize(config.size() - suffix.size());
  }
  return config;
}

// -cl comes before a page suffix: adaptive-cl-small-pages.
bool wants_channels_last(const std::string& config) { return ends_with(without_page_suffix(config), kChannelsLast); }

airm::RefineOptions options_for(const std::string& full_config) {
  std::string config = without_page_suffix(full_config);
  if (ends_with(config, kChannelsLast)) config.resize(config.size() - kChannelsLast.size());
  airm::RefineOptions options;
  if (config == "dense") {
    options.dense = true;
  } else if (config == "adaptive-bf16") {
    options.bf16 = true;
  } else if (config == "tiled") {
    options.tile_size = 1024;
  } else if (config == "stages") {
    options.close_mask_px = 0;
  } else if (config == "scales1") {
    options.scales = {1.0};
  } else if (config != "adaptive") {
    throw std::runtime_error("unknown config " + config);
  }
  return options;
}

double iou(const cv::Mat& a, const cv::Mat& b) {
  const double inter = cv::countNonZero(a & b), uni = cv::countNonZero(a | b);
  return uni == 0 ? 100.0 : 100.0 * inter / uni;
}

// One measurement in this process: prints one JSON line.
int child(const std::string& config, const fs::path& dir, const std::string& model, int threads) {
  airm::AirmNet net{nullptr};
  if (model.empty()) {
    torch::manual_seed(0);
    net = airm::AirmNet(airm::ModelConfig::load(fs::path(AIRM_SOURCE_DIR) / "configs" / "airm_mit_b0.json"));
    airm::test::make_mask_following(net);
  } else {
    net = airm::load_weights(model);
  }
  airm::retain_freed_memory();  // as `airm refine` does
  const airm::Refiner refiner(net, airm::RefinerOptions{"cpu", threads, wants_channels_last(config)});
  const airm::RefineOptions options = options_for(config);
  // Warm-up on a small input (thread pools, oneDNN kernels).
  {
    cv::Mat small(256, 256, CV_8UC3, cv::Scalar(90, 120, 150)), mask(256, 256, CV_8UC1, cv::Scalar(0));
    mask(cv::Rect(64, 64, 128, 128)).setTo(255);
    refiner.refine(small, mask, options);
  }
  const double baseline = peak_rss_mib();
  const double cpu_start = cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  const cv::Mat image = airm::read_image(dir / "image.png");
  const cv::Mat coarse = airm::read_mask(dir / "coarse.png", airm::MaskMode::probability);
  airm::RefineStats stats;
  const cv::Mat prob = refiner.refine(image, coarse, options, &stats);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_start;
  const double rss = peak_rss_mib();
  const cv::Mat gt = airm::read_mask_u8(dir / "gt.png") > 127;
  nlohmann::json stages = nlohmann::json::array();
  for (const airm::StageStats& s : stats.stages) {
    stages.push_back({{"scale", s.scale},
                      {"grid", {s.grid.width, s.grid.height}},
                      {"encoder", {s.encoder.width, s.encoder.height}},
                      {"tiles", s.tiles},
                      {"encode_seconds", s.encode_seconds},
                      {"queries", s.queries},
                      {"seconds", s.seconds}});
  }
  const nlohmann::json out = {{"stages", stages},
                              {"config", config},
                              {"coarse_stages_skipped", stats.coarse_stages_skipped},
                              {"first_stage_shift_px", stats.first_stage_shift_px},
                              {"seconds", seconds},
                              {"refine_seconds", stats.seconds},
                              {"cpu_seconds", cpu},
                              {"peak_rss_mib", rss},
                              {"baseline_rss_mib", baseline},
                              {"queries", stats.queries},
                              {"iou_coarse", iou(coarse > 0.5, gt)},
                              {"iou_refined", iou(prob > 0.5, gt)}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

nlohmann::json run_child(const std::string& config, const fs::path& dir, const std::string& model, int threads) {
  const std::string env = ends_with(config, kSmallPages)        ? "AIRM_NO_HUGE_PAGES=1 "
                          : ends_with(config, kGlibcHugePages) ? "AIRM_NO_HUGE_PAGES=1 GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "
                                                               : "";
  const std::string command = env + "'" + fs::read_symlink("/proc/self/exe").string() +
                              "' --child " + config + " --dir '" +
                              dir.string() + "' --threads " + std::to_string(threads) +
                              (model.empty() ? std::string() : " --model '" + model + "'");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string text;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) text += buffer.data();
  if (pclose(pipe) != 0) throw std::runtime_error("child failed: " + command + "\n" + text);
  const size_t line = text.rfind("\n{");  // the child's JSON is its last line
  return nlohmann::json::parse(line == std::string::npos ? text : text.substr(line + 1));
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::string model = default_model();
  std::string baseline_model;
  std::string sizes = "1K,2K,4K,6K,8K";
  std::string configs = "dense,adaptive,adaptive-bf16";
  std::string child_config, dir, keep;
  bool verbose = false;
  int repeat = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--threads") threads = std::atoi(next().c_str());
    else if (arg == "--model") model = next();
    else if (arg == "--baseline") baseline_model = next();
    else if (arg == "--sizes") sizes = next();
    else if (arg == "--configs") configs = next();
    else if (arg == "--child") child_config = next();
    else if (arg == "--dir") dir = next();
    else if (arg == "--keep") keep = next();
    else if (arg == "--verbose") verbose = true;
    else if (arg == "--repeat") repeat = std::max(1, std::atoi(next().c_str()));
    else {
      std::fprintf(stderr, "usage: bench_refine [--threads N] [--model FILE] [--baseline FILE] [--sizes 1K,2K,...] [--configs ...] [--repeat N]\n");
      return 2;
    }
  }
  if (!child_config.empty()) return child(child_config, dir, model, threads);

  const fs::path work = keep.empty() ? fs::temp_directory_path() / ("airm-bench-refine-" + std::to_string(getpid()))
                                     : fs::path(keep);
  fs::create_directories(work);
  std::printf("model: %s; %d thread(s); median of %d run(s); generated scenes, coarse = boundary perturbation "
              "to IoU 0.9\n",
              model.empty() ? "random configs/airm_mit_b0.json made mask-following (no trained weights found)"
                            : model.c_str(), threads, repeat);
  if (!baseline_model.empty()) std::printf("baseline model (baseline:* configs): %s\n", baseline_model.c_str());
  std::printf("\n");
  const std::vector<std::string> config_list = split(configs);
  if (config_list.empty()) {
    std::fprintf(stderr, "expected at least one config\n");
    return 2;
  }
  const char* ref = config_list.front().c_str();  // the ratios' reference
  std::printf("| size | config | time (s) | CPU (s) | time / %s | peak RSS (MiB) | RSS / %s | queries (M) | "
              "queries / %s | IoU coarse -> refined (%%) |\n|---|---|---|---|---|---|---|---|---|---|\n", ref, ref, ref);
  std::fflush(stdout);
  for (const std::string& name : split(sizes)) {
    const auto found = kSizes.find(name);
    if (found == kSizes.end()) {
      std::fprintf(stderr, "unknown size %s\n", name.c_str());
      return 2;
    }
    const fs::path scene_dir = work / name;
    if (!fs::exists(scene_dir / "coarse.png")) {
      fs::create_directories(scene_dir);
      airm::SynthOptions synth;
      synth.size = found->second;
      const airm::Scene scene = airm::generate_scene(synth, 2024);
      cv::imwrite((scene_dir / "image.png").string(), scene.image);
      cv::imwrite((scene_dir / "gt.png").string(), scene.mask);
      cv::imwrite((scene_dir / "coarse.png").string(), airm::perturb_mask(scene.mask, 0.9, 2024));
    }
    nlohmann::json reference;
    for (const std::string& config : config_list) {
      const bool of_baseline = config.rfind("baseline:", 0) == 0;
      if (of_baseline && baseline_model.empty()) {
        std::fprintf(stderr, "config %s needs --baseline FILE\n", config.c_str());
        return 2;
      }
      std::vector<nlohmann::json> runs;
      for (int k = 0; k < repeat; ++k) {
        runs.push_back(of_baseline ? run_child(config.substr(9), scene_dir, baseline_model, threads)
                                   : run_child(config, scene_dir, model, threads));
      }
      std::sort(runs.begin(), runs.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
        return a["seconds"].get<double>() < b["seconds"].get<double>();
      });
      const nlohmann::json r = runs[runs.size() / 2];  // the median run
      if (reference.is_null()) reference = r;  // the first config (dense by default) is the reference
      const double t = r["seconds"], rss = r["peak_rss_mib"];
      const double q = r["queries"].get<double>();
      std::printf("| %s %dx%d | %s | %.2f | %.2f | %.3f | %.0f | %.3f | %.2f | %.4f | %.2f -> %.2f |\n", name.c_str(),
                  found->second.width, found->second.height, config.c_str(), t, r["cpu_seconds"].get<double>(),
                  t / reference["seconds"].get<double>(),
                  rss, rss / reference["peak_rss_mib"].get<double>(), q / 1e6,
                  q / reference["queries"].get<double>(), r["iou_coarse"].get<double>(),
                  r["iou_refined"].get<double>());
      std::fflush(stdout);
      if (verbose) {
        std::fprintf(stderr, "%s %s: %s; gate: shift %.2f px, coarse stages %s\n", name.c_str(), config.c_str(),
                     r["stages"].dump().c_str(), r["first_stage_shift_px"].get<double>(),
                     r["coarse_stages_skipped"].get<bool>() ? "skipped" : "run");
      }
    }
  }
  if (keep.empty()) fs::remove_all(work);
  return 0;
}
