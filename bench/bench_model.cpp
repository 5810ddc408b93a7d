// Network cost per configuration: forward and forward+backward of a batch of
// 8 at 224x224 (every pixel queried, as in training), and the implicit
// function per million queries; fp32 vs bf16 (inference: a bf16 copy of the
// network, as airm::Refiner runs; training: fp32 encoder, bf16 autocast for
// the queries, as airm train runs); peak RSS.
//
//   bench_model [--threads N] [--reps N] CONFIG.json...   one row pair per config
//
// Each (config, precision) runs in a child process of its own so that its
// peak RSS is its own; the parent prints one Markdown table.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "airm/model/airm_net.hpp"
#include "../src/refine/refine_internal.hpp"
#include "../src/train/autocast.hpp"

namespace {

constexpr int64_t kBatch = 8;
constexpr int64_t kSize = 224;
constexpr int64_t kQueries = 1000000;

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

template <typename F>
double median_seconds(int reps, F&& work) {
  work();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

nlohmann::json measure(const std::string& config_path, bool bf16, int reps) {
  torch::manual_seed(0);
  airm::ModelConfig config = airm::ModelConfig::load(config_path);
  airm::AirmNet net(config);
  const torch::Tensor input =
      airm::normalize_input(torch::rand({kBatch, 3, kSize, kSize}), (torch::rand({kBatch, 1, kSize, kSize}) > 0.5).to(torch::kFloat));
  const torch::Tensor gt = (torch::rand({kBatch, 1, kSize, kSize}) > 0.5).to(torch::kFloat);
  const torch::Tensor coord = airm::make_pixel_grid(kSize, kSize).unsqueeze(0).expand({kBatch, -1, -1}).contiguous();
  const torch::Tensor cell = airm::cell_for(kSize, kSize);
  const torch::Tensor target = gt.flatten(1);

  // Inference in bf16 is what airm::Refiner does: a bf16 copy of the whole network (LibTorch 1.13's CPU
  // autocast cannot run MiT's LayerNorm), coordinates in fp32.
  net->eval();
  airm::AirmNet inference = bf16 ? airm::refine_detail::bf16_copy(net, torch::kCPU) : net;
  const torch::Tensor inference_input = input.to(inference->parameters().front().scalar_type());
  const double forward = median_seconds(reps, [&] {
    torch::NoGradGuard no_grad;
    const airm::Encoded encoded = inference->encode(inference_input);
    inference->query(encoded, inference_input, coord, cell);
  });

  net->train();
  const double train_step = median_seconds(reps, [&] {
    net->zero_grad();
    torch::Tensor loss;
    {
      // Training in bf16 is what airm train does: the encoder in fp32, the queries under autocast.
      const airm::Encoded encoded = net->encode(input, config.affinity);
      airm::train_detail::AutocastScope autocast(bf16, torch::kCPU);
      const torch::Tensor logits = net->query(encoded, input, coord, cell).to(torch::kFloat);
      loss = torch::binary_cross_entropy_with_logits(logits, target);
      if (config.affinity) loss = loss + net->affinity_loss(encoded, gt).to(torch::kFloat);
    }
    loss.backward();
  });

  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor one = inference_input.slice(0, 0, 1);
  const airm::Encoded encoded = inference->encode(one);
  const torch::Tensor queries = torch::rand({1, kQueries, 2}) * 2 - 1;
  const torch::Tensor query_cell = airm::cell_for(4 * kSize, 4 * kSize);
  const double per_million = median_seconds(reps, [&] { inference->query(encoded, one, queries, query_cell); });

  int64_t parameters = 0;
  for (const auto& p : net->parameters()) parameters += p.numel();
  return {{"config", config.name},      {"precision", bf16 ? "bf16" : "fp32"},
          {"parameters", parameters},   {"forward_s", forward},
          {"train_step_s", train_step}, {"million_queries_s", per_million},
          {"peak_rss_mib", peak_rss_mib()}};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  int reps = 3;
  std::vector<std::string> configs;
  std::string one_precision;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (arg == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (arg == "--one" && i + 1 < argc) one_precision = argv[++i];
    else configs.push_back(arg);
  }
  if (configs.empty()) {
    std::fprintf(stderr, "usage: bench_model [--threads N] [--reps N] CONFIG.json...\n");
    return 2;
  }
  torch::set_num_threads(threads);
  if (!one_precision.empty()) {  // child: one measurement, one JSON line
    std::printf("%s\n", measure(configs.front(), one_precision == "bf16", reps).dump().c_str());
    return 0;
  }

  std::printf("batch %lld at %lldx%lld, every pixel queried; %d thread(s); median of %d after a warm-up\n\n",
              static_cast<long long>(kBatch), static_cast<long long>(kSize), static_cast<long long>(kSize), threads,
              reps);
  std::printf("| config | params (M) | precision | forward (s) | fwd+bwd (s) | 1M queries (s) | peak RSS (MiB) | "
              "fwd bf16/fp32 | fwd+bwd bf16/fp32 | queries bf16/fp32 |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const std::string& config : configs) {
    nlohmann::json rows[2];
    for (int p = 0; p < 2; ++p) {
      const std::string command = std::string(argv[0]) + " --threads " + std::to_string(threads) + " --reps " +
                                  std::to_string(reps) + " --one " + (p ? "bf16" : "fp32") + " '" + config + "'";
      FILE* pipe = popen(command.c_str(), "r");
      std::string out;
      char buf[4096];
      while (pipe && std::fgets(buf, sizeof buf, pipe)) out += buf;
      if (!pipe || pclose(pipe) != 0) {
        std::fprintf(stderr, "error: %s failed\n", command.c_str());
        return 1;
      }
      rows[p] = nlohmann::json::parse(out);
    }
    for (int p = 0; p < 2; ++p) {
      const auto& r = rows[p];
      std::printf("| %s | %.2f | %s | %.3f | %.3f | %.3f | %.0f |", r["config"].get<std::string>().c_str(),
                  r["parameters"].get<double>() / 1e6, r["precision"].get<std::string>().c_str(),
                  r["forward_s"].get<double>(), r["train_step_s"].get<double>(), r["million_queries_s"].get<double>(),
                  r["peak_rss_mib"].get<double>());
      if (p == 0) {
        std::printf(" | | |\n");
      } else {
        auto ratio = [&](const char* key) { return rows[1][key].get<double>() / rows[0][key].get<double>(); };
        std::printf(" %.2f | %.2f | %.2f |\n", ratio("forward_s"), ratio("train_step_s"), ratio("million_queries_s"));
      }
    }
    std::fflush(stdout);
  }
  return 0;
}
