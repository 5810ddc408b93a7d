#include "airm/model/segmenter_weights.hpp"

#include <cstring>
#include <string>

#include "airm/error.hpp"
#include "airm/model/state_dict.hpp"

namespace airm {
namespace {

constexpr const char* kKindKey = "__airm_kind__";
constexpr const char* kKind = "segmenter";
constexpr const char* kFormatKey = "__airm_segmenter_format__";
constexpr const char* kConfigKey = "__airm_segmenter_config__";
// What a refiner weights file (weights.hpp) carries.
constexpr const char* kRefinerFormatKey = "__airm_format__";
constexpr const char* kRefinerConfigKey = "__airm_config__";

torch::Tensor text_tensor(const std::string& text) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(text.size())}, torch::kUInt8);
  if (!text.empty()) std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

std::string tensor_text(const torch::Tensor& t) {
  const torch::Tensor bytes = t.to(torch::kCPU).to(torch::kUInt8).contiguous().view(-1);
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<std::size_t>(bytes.numel()));
}

struct SegmenterFile {
  SegmenterConfig config;
  TensorDict tensors;  // parameters and buffers only
};

SegmenterFile read_segmenter_file(const std::filesystem::path& path) {
  TensorDict dict = read_tensor_dict(path);
  const std::string source = path.string();
  auto kind = dict.find(kKindKey);
  if (kind == dict.end()) {
    if (dict.count(kRefinerFormatKey) || dict.count(kRefinerConfigKey)) {
      throw Error(source, "a segmenter weights file", "a refiner weights file (load it as the refiner's weights)");
    }
    throw Error(source, "not an airm segmenter weights file (no " + std::string(kKindKey) + " entry)");
  }
  const std::string kind_text = tensor_text(kind->second);
  if (kind_text != kKind) throw Error(source, "a segmenter weights file", "a '" + kind_text + "' weights file");
  auto format = dict.find(kFormatKey);
  auto config = dict.find(kConfigKey);
  if (format == dict.end() || config == dict.end()) {
    throw Error(source, "a segmenter weights file with " + std::string(kFormatKey) + " and " + kConfigKey +
                            " entries (truncated or hand-made?)");
  }
  if (format->second.numel() != 1) throw Error(source, std::string(kFormatKey) + ": expected one value");
  const int64_t version = format->second.to(torch::kInt64).item<int64_t>();
  if (version < 1 || version > kSegmenterWeightsFormatVersion) {
    throw Error(source, "segmenter weights format version 1.." + std::to_string(kSegmenterWeightsFormatVersion),
                "version " + std::to_string(version) + " (written by a newer airm?)");
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(tensor_text(config->second));
  } catch (const nlohmann::json::exception& e) {
    throw Error(source, std::string("its stored segmenter config is not valid JSON (") + e.what() + ")");
  }
  SegmenterFile file{SegmenterConfig::from_json(json, source), {}};
  dict.erase(kKindKey);
  dict.erase(kFormatKey);
  dict.erase(kConfigKey);
  file.tensors = std::move(dict);
  return file;
}

void load_tensors(SegmenterNet& net, TensorDict tensors, const std::string& source) {
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

void save_segmenter_weights(const std::filesystem::path& path, SegmenterNet& net, const SaveOptions& options) {
  if (net.is_empty()) throw Error(path.string(), "save_segmenter_weights: expected a network, got none");
  TensorDict dict = state_dict_of(*net);
  if (options.half) {
    for (auto& [key, tensor] : dict) {
      if (tensor.is_floating_point()) tensor = tensor.to(torch::kHalf);
    }
  }
  dict[kKindKey] = text_tensor(kKind);
  dict[kFormatKey] = torch::tensor({kSegmenterWeightsFormatVersion}, torch::kInt64);
  dict[kConfigKey] = text_tensor(net->config().to_json().dump());
  write_tensor_dict(dict, path);
}

SegmenterConfig read_segmenter_weights_config(const std::filesystem::path& path) {
  return read_segmenter_file(path).config;
}

SegmenterNet load_segmenter_weights(const std::filesystem::path& path) {
  SegmenterFile file = read_segmenter_file(path);
  SegmenterNet net(file.config);
  load_tensors(net, std::move(file.tensors), path.string());
  return net;
}

void load_segmenter_weights_into(SegmenterNet& net, const std::filesystem::path& path) {
  SegmenterFile file = read_segmenter_file(path);
  if (file.config.to_json() != net->config().to_json()) {
    throw Error(path.string(), "weights for the segmenter " + net->config().to_json().dump(),
                "weights for " + file.config.to_json().dump());
  }
  load_tensors(net, std::move(file.tensors), path.string());
}

void load_segmenter_backbone(SegmenterNet& net, const std::filesystem::path& path) {
  load_mit_state_dict(net->backbone_, path);
}

}  // namespace airm
