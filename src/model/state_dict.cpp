// Reading torch.save dicts and loading them into modules by key.
#include "airm/model/state_dict.hpp"

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <vector>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"
#include "archive_screen.hpp"

namespace airm {

namespace {

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// "a, b, c" with at most `limit` names, then "... (N in all)".
std::string list_names(const std::vector<std::string>& names, size_t limit = 12) {
  std::ostringstream out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out << (i ? ", " : "") << names[i];
  if (names.size() > limit) out << ", ... (" << names.size() << " in all)";
  return out.str();
}

bool is_mit_extra_key(const std::string& key) {
  return key.rfind("__", 0) == 0 || key.rfind("head.", 0) == 0;
}

}  // namespace

TensorDict read_tensor_dict(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(name, "cannot open the state dict file");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(name, "cannot read the state dict file");
  if (bytes.empty()) throw Error(name, "state dict file is empty");

  TorchArchive archive = read_torch_archive(name, bytes);
  const torch::IValue& value = archive.value;
  if (!value.isGenericDict()) {
    throw Error(name, "a torch.save dict of tensors", std::string("a ") + value.tagKind());
  }
  TensorDict dict;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString()) throw Error(name, "state dict has a key that is not a string");
    const std::string key = entry.key().toStringRef();
    if (!entry.value().isTensor()) {
      if (key.rfind("__", 0) == 0) continue;
      throw Error(name, "state dict entry '" + key + "' is a " + entry.value().tagKind() + ", not a tensor");
    }
    const torch::Tensor tensor = entry.value().toTensor();
    check_archive_tensor(name, key, tensor, archive);
    dict.emplace(key, tensor);
  }
  return dict;
}

void write_tensor_dict(const TensorDict& dict, const std::filesystem::path& path) {
  c10::Dict<std::string, torch::Tensor> generic;
  for (const auto& [key, tensor] : dict) generic.insert(key, tensor.detach().to(torch::kCPU).contiguous());
  const std::vector<char> bytes = torch::pickle_save(torch::IValue(generic));
  write_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw Error(path.string(), "cannot write the state dict file");
  });
}

TensorDict state_dict_of(const torch::nn::Module& module) {
  TensorDict dict;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    dict.emplace(item.key(), item.value().detach().to(torch::kCPU));
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    dict.emplace(item.key(), item.value().detach().to(torch::kCPU));
  }
  return dict;
}

void load_state_dict(torch::nn::Module& module, const TensorDict& dict, const std::string& source,
                     const std::function<bool(const std::string&)>& ignore) {
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) targets.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) targets.emplace_back(item.key(), item.value());

  std::vector<std::string> missing;
  std::vector<std::string> mismatched;
  std::set<std::string> known;
  for (const auto& [key, target] : targets) {
    known.insert(key);
    const auto it = dict.find(key);
    if (it == dict.end()) {
      missing.push_back(key);
    } else if (!it->second.sizes().equals(target.sizes())) {
      mismatched.push_back(key + " (file " + shape_of(it->second) + ", model " + shape_of(target) + ")");
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [key, tensor] : dict) {
    if (known.count(key) == 0 && !(ignore && ignore(key))) unexpected.push_back(key);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::ostringstream problem;
    problem << "state dict does not fit the model:";
    if (!missing.empty()) problem << " missing keys: " << list_names(missing) << ";";
    if (!unexpected.empty()) problem << " unexpected keys: " << list_names(unexpected) << ";";
    if (!mismatched.empty()) problem << " shape mismatches: " << list_names(mismatched) << ";";
    std::string text = problem.str();
    text.pop_back();
    throw Error(source, text);
  }

  torch::NoGradGuard no_grad;
  for (auto& [key, target] : targets) target.copy_(dict.at(key));
}

void load_mit_state_dict(Mit& mit, const TensorDict& dict, const std::string& source) {
  TensorDict adapted = dict;
  const std::string stem = "patch_embed1.proj.weight";
  const auto it = adapted.find(stem);
  const int64_t in_channels = mit->options().in_channels();
  if (it != adapted.end() && it->second.dim() == 4 && it->second.size(1) < in_channels) {
    // Fewer input channels in the file (RGB checkpoint, RGB+mask model):
    // the file's weights fill the first channels, the rest start at zero.
    const torch::Tensor& src = it->second;
    torch::Tensor widened = torch::zeros({src.size(0), in_channels, src.size(2), src.size(3)}, src.options());
    widened.narrow(1, 0, src.size(1)).copy_(src);
    it->second = widened;
  }
  load_state_dict(*mit, adapted, source, is_mit_extra_key);
}

void load_mit_state_dict(Mit& mit, const std::filesystem::path& path) {
  load_mit_state_dict(mit, read_tensor_dict(path), path.string());
}

}  // namespace airm
