#include "airm/model/weights_file.hpp"

#include <cstring>

#include "airm/error.hpp"

namespace airm {
namespace {

constexpr const char* kKindKey = "__airm_kind__";
constexpr const char* kFormatKey = "__airm_format__";
constexpr const char* kConfigKey = "__airm_config__";
constexpr const char* kDefaultKind = "refiner";  // files written before kinds existed

torch::Tensor text_tensor(const std::string& text) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(text.size())}, torch::kUInt8);
  if (!text.empty()) std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

std::string tensor_text(const torch::Tensor& t) {
  const torch::Tensor bytes = t.to(torch::kCPU).to(torch::kUInt8).contiguous().view(-1);
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<std::size_t>(bytes.numel()));
}

}  // namespace

void write_weights_file(const std::filesystem::path& path, const torch::nn::Module& module, const std::string& kind,
                        int64_t version, const nlohmann::json& config, const SaveOptions& options) {
  write_weights_file(path, state_dict_of(module), kind, version, config, options);
}

void write_weights_file(const std::filesystem::path& path, TensorDict dict, const std::string& kind,
                        int64_t version, const nlohmann::json& config, const SaveOptions& options) {
  if (options.half) {
    for (auto& [key, tensor] : dict) {
      if (tensor.is_floating_point()) tensor = tensor.to(torch::kHalf);
    }
  }
  dict[kKindKey] = text_tensor(kind);
  dict[kFormatKey] = torch::tensor({version}, torch::kInt64);
  dict[kConfigKey] = text_tensor(config.dump());
  write_tensor_dict(dict, path);
}

std::string read_weights_kind(const std::filesystem::path& path) {
  const TensorDict dict = read_tensor_dict(path);
  if (dict.find(kFormatKey) == dict.end() || dict.find(kConfigKey) == dict.end()) {
    throw Error(path.string(), "not an airm weights file (no " + std::string(kFormatKey) + " and " + kConfigKey +
                                   " entries)");
  }
  auto stored_kind = dict.find(kKindKey);
  return stored_kind == dict.end() ? kDefaultKind : tensor_text(stored_kind->second);
}

WeightsFileContents read_weights_file(const std::filesystem::path& path, const std::string& kind,
                                      int64_t max_version) {
  TensorDict dict = read_tensor_dict(path);
  const std::string source = path.string();
  auto format = dict.find(kFormatKey);
  auto config = dict.find(kConfigKey);
  if (format == dict.end() || config == dict.end()) {
    throw Error(source, "not an airm " + kind + " weights file (no " + kFormatKey + " and " + kConfigKey +
                            " entries; a bare state dict needs its config: load it with load_state_dict)");
  }
  WeightsFileContents contents;
  auto stored_kind = dict.find(kKindKey);
  contents.kind = stored_kind == dict.end() ? kDefaultKind : tensor_text(stored_kind->second);
  if (contents.kind != kind) {
    throw Error(source, "a " + kind + " weights file",
                "a " + contents.kind + " weights file (load it as the " + contents.kind + "'s weights)");
  }
  if (format->second.numel() != 1) throw Error(source, std::string(kFormatKey) + ": expected one value");
  contents.version = format->second.to(torch::kInt64).item<int64_t>();
  if (contents.version < 1 || contents.version > max_version) {
    throw Error(source, kind + " weights format version 1.." + std::to_string(max_version),
                "version " + std::to_string(contents.version) + " (written by a newer airm?)");
  }
  try {
    contents.config = nlohmann::json::parse(tensor_text(config->second));
  } catch (const nlohmann::json::exception& e) {
    throw Error(source, std::string("its stored config is not valid JSON (") + e.what() + ")");
  }
  dict.erase(kKindKey);
  dict.erase(kFormatKey);
  dict.erase(kConfigKey);
  for (const auto& [key, tensor] : dict) {  // one NaN in a weight makes every output NaN: say which
    if (tensor.is_floating_point() && !torch::isfinite(tensor).all().item<bool>()) {
      throw Error(source, "finite weights", "NaN or infinity in " + key);
    }
  }
  contents.tensors = std::move(dict);
  return contents;
}

void load_weights_tensors(torch::nn::Module& module, TensorDict tensors, const std::string& source) {
  const TensorDict own = state_dict_of(module);
  for (auto& [key, tensor] : tensors) {
    auto it = own.find(key);
    if (it != own.end() && tensor.is_floating_point() && tensor.scalar_type() != it->second.scalar_type()) {
      tensor = tensor.to(it->second.scalar_type());
    }
  }
  load_state_dict(module, tensors, source);
}

}  // namespace airm
