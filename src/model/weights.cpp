#include "airm/model/weights.hpp"

#include "airm/error.hpp"

namespace airm {
namespace {
constexpr const char* kKind = "refiner";

WeightsFileContents read_refiner_file(const std::filesystem::path& path) {
  return read_weights_file(path, kKind, kWeightsFormatVersion);
}
}  // namespace

void save_weights(const std::filesystem::path& path, AirmNet& net, const SaveOptions& options) {
  write_weights_file(path, *net, kKind, kWeightsFormatVersion, net->config().to_json(), options);
}

ModelConfig read_weights_config(const std::filesystem::path& path) {
  return ModelConfig::from_json(read_refiner_file(path).config, path.string());
}

AirmNet load_weights(const std::filesystem::path& path) {
  WeightsFileContents file = read_refiner_file(path);
  AirmNet net(ModelConfig::from_json(file.config, path.string()));
  load_weights_tensors(*net, std::move(file.tensors), path.string());
  return net;
}

void load_weights_into(AirmNet& net, const std::filesystem::path& path) {
  WeightsFileContents file = read_refiner_file(path);
  const ModelConfig config = ModelConfig::from_json(file.config, path.string());
  if (config.to_json() != net->config().to_json()) {
    throw Error(path.string(), "weights for the network " + net->config().to_json().dump(),
                "weights for " + config.to_json().dump());
  }
  load_weights_tensors(*net, std::move(file.tensors), path.string());
}

}  // namespace airm
