#include "airm/model/weights.hpp"

#include <cstring>

#include "airm/error.hpp"
#include "airm/model/state_dict.hpp"

namespace airm {
namespace {

constexpr const char* kFormatKey = "__airm_format__";
constexpr const char* kConfigKey = "__airm_config__";

torch::Tensor text_tensor(const std::string& text) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(text.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

std::string tensor_text(const torch::Tensor& t) {
  const torch::Tensor bytes = t.to(torch::kCPU).contiguous();
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<std::size_t>(bytes.numel()));
}

struct WeightsFile {
  ModelConfig config;
  TensorDict tensors;  // parameters and buffers only
};

WeightsFile read_weights_file(const std::filesystem::path& path) {
  TensorDict dict = read_tensor_dict(path);
  const std::string source = path.string();
  auto format = dict.find(kFormatKey);
  auto config = dict.find(kConfigKey);
  if (format == dict.end() || config == dict.end()) {
    throw Error(source, "not an airm weights file (no " + std::string(kFormatKey) + " and " + kConfigKey +
                            " entries; a bare state dict needs its config: load it with load_state_dict)");
  }
  const int64_t version = format->second.item<int64_t>();
  if (version < 1 || version > kWeightsFormatVersion) {
    throw Error(source, "weights format version 1.." + std::to_string(kWeightsFormatVersion),
                "version " + std::to_string(version) + " (written by a newer airm?)");
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(tensor_text(config->second));
  } catch (const nlohmann::json::exception& e) {
    throw Error(source, std::string("its stored config is not valid JSON (") + e.what() + ")");
  }
  WeightsFile file{ModelConfig::from_json(json, source), {}};
  dict.erase(kFormatKey);
  dict.erase(kConfigKey);
  file.tensors = std::move(dict);
  return file;
}

void load_tensors(AirmNet& net, TensorDict tensors, const std::string& source) {
  // fp16 storage: bring floating tensors back to the dtype of the module's own.
  const TensorDict own = state_dict_of(*net);
  for (auto& [key, tensor] : tensors) {
    auto it = own.find(key);
    if (it != own.end() && tensor.is_floating_point() && tensor.scalar_type() != it->second.scalar_type()) {
      tensor = tensor.to(it->second.scalar_type());
    }
  }
  load_state_dict(*net, tensors, source);
}

}  // namespace

void save_weights(const std::filesystem::path& path, AirmNet& net, const SaveOptions& options) {
  TensorDict dict = state_dict_of(*net);
  if (options.half) {
    for (auto& [key, tensor] : dict) {
      if (tensor.is_floating_point()) tensor = tensor.to(torch::kHalf);
    }
  }
  dict[kFormatKey] = torch::tensor({kWeightsFormatVersion}, torch::kInt64);
  dict[kConfigKey] = text_tensor(net->config().to_json().dump());
  write_tensor_dict(dict, path);
}

ModelConfig read_weights_config(const std::filesystem::path& path) { return read_weights_file(path).config; }

AirmNet load_weights(const std::filesystem::path& path) {
  WeightsFile file = read_weights_file(path);
  AirmNet net(file.config);
  load_tensors(net, std::move(file.tensors), path.string());
  return net;
}

void load_weights_into(AirmNet& net, const std::filesystem::path& path) {
  WeightsFile file = read_weights_file(path);
  if (file.config.to_json() != net->config().to_json()) {
    throw Error(path.string(), "weights for the network " + net->config().to_json().dump(),
                "weights for " + file.config.to_json().dump());
  }
  load_tensors(net, std::move(file.tensors), path.string());
}

}  // namespace airm
