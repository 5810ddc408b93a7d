// Parsing the option values the subcommands share: sizes, devices, scales.
#include <limits>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"

namespace airm::cli {

cv::Size parse_size(const std::string& text) {
  // Digits, 'x' or 'X', digits; each side in [1, INT_MAX] (sscanf's %d would be undefined past it).
  auto side = [&](std::size_t begin, std::size_t end, int& value) {
    if (begin == end || end - begin > 10) return false;
    long long v = 0;
    for (std::size_t i = begin; i < end; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    if (v < 1 || v > std::numeric_limits<int>::max()) return false;
    value = static_cast<int>(v);
    return true;
  };
  const std::size_t x = text.find_first_of("xX");
  int width = 0, height = 0;
  if (x == std::string::npos || !side(0, x, width) || !side(x + 1, text.size(), height)) {
    throw UsageError("expected a size WIDTHxHEIGHT such as 3840x2160, got '" + text + "'");
  }
  return {width, height};
}

torch::Device parse_device(const std::string& text) {
  try {
    torch::Device device(text);
    if (device.is_cuda() && !torch::cuda::is_available()) {
      throw UsageError("--device " + text + ": this build or machine has no CUDA device");
    }
    return device;
  } catch (const c10::Error&) {
    throw UsageError("expected --device cpu, cuda or cuda:N, got '" + text + "'");
  }
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

}  // namespace airm::cli
