#include "airm/model/weight_averaging.hpp"

#include <cmath>
#include <sstream>

#include "airm/error.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/model/weights.hpp"

namespace airm {
namespace {

int64_t newest_format_of(const std::filesystem::path& path, const std::string& kind) {
  if (kind == "refiner") return kWeightsFormatVersion;
  if (kind == "segmenter") return kSegmenterWeightsFormatVersion;
  throw Error(path.string(), "a refiner or segmenter weights file", "kind \"" + kind + "\"");
}

std::vector<double> checked_coefficients(const std::vector<double>& given, std::size_t inputs) {
  if (given.empty()) return std::vector<double>(inputs, 1.0 / static_cast<double>(inputs));
  if (given.size() != inputs) {
    throw Error("", "one coefficient per weights file (" + std::to_string(inputs) + ")",
                std::to_string(given.size()) + " coefficients");
  }
  double sum = 0.0;
  for (double c : given) {
    if (!std::isfinite(c) || c < 0.0) {
      std::ostringstream got;
      got << c;
      throw Error("", "non-negative finite coefficients", got.str());
    }
    sum += c;
  }
  if (std::abs(sum - 1.0) > 1e-6) {
    std::ostringstream got;
    got << "a sum of " << sum;
    throw Error("", "coefficients summing to 1", got.str());
  }
  return given;
}

std::string shape_text(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// Throws unless `other` holds the same tensor names and shapes as `first`.
void check_same_tensors(const TensorDict& first, const TensorDict& other, const std::filesystem::path& other_path,
                        const std::filesystem::path& first_path) {
  for (const auto& [key, tensor] : first) {
    auto it = other.find(key);
    if (it == other.end()) throw Error(other_path.string(), "no tensor \"" + key + "\" (" + first_path.string() + " has one)");
    if (!it->second.sizes().equals(tensor.sizes())) {
      throw Error(other_path.string(), "\"" + key + "\" of shape " + shape_text(tensor) + " (as in " +
                                           first_path.string() + ")",
                  shape_text(it->second));
    }
  }
  for (const auto& [key, tensor] : other) {
    if (first.find(key) == first.end()) {
      throw Error(other_path.string(), "an extra tensor \"" + key + "\" (not in " + first_path.string() + ")");
    }
  }
}

}  // namespace

void average_weights_files(const std::vector<std::filesystem::path>& inputs, const std::vector<double>& coefficients,
                           const std::filesystem::path& output, const SaveOptions& options) {
  if (inputs.empty()) throw Error("", "at least one weights file to average", "none");
  const std::vector<double> weights = checked_coefficients(coefficients, inputs.size());

  const std::string kind = read_weights_kind(inputs.front());
  const WeightsFileContents first = read_weights_file(inputs.front(), kind, newest_format_of(inputs.front(), kind));
  TensorDict sums;
  for (const auto& [key, tensor] : first.tensors) {
    sums[key] = tensor.is_floating_point() ? tensor.to(torch::kDouble) * weights[0] : tensor.clone();
  }
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    const WeightsFileContents other = read_weights_file(inputs[i], kind, newest_format_of(inputs[i], kind));
    if (other.version != first.version) {
      throw Error(inputs[i].string(), "format version " + std::to_string(first.version) + " (as " +
                                          inputs.front().string() + ")",
                  std::to_string(other.version));
    }
    if (other.config != first.config) {
      throw Error(inputs[i].string(), "the network config of " + inputs.front().string() + ": " + first.config.dump(),
                  other.config.dump());
    }
    check_same_tensors(first.tensors, other.tensors, inputs[i], inputs.front());
    for (const auto& [key, tensor] : other.tensors) {
      if (tensor.is_floating_point()) sums[key] += tensor.to(torch::kDouble) * weights[i];
    }
  }
  for (auto& [key, tensor] : sums) {
    const torch::ScalarType stored = first.tensors.at(key).scalar_type();
    if (tensor.is_floating_point()) tensor = tensor.to(stored);
  }
  write_weights_file(output, std::move(sums), kind, first.version, first.config, options);
}

}  // namespace airm
