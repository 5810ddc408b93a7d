// Reading PyTorch `torch.save(dict_of_tensors)` files and loading them into
// modules by parameter name.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include <torch/torch.h>

#include "airm/model/mit.hpp"

namespace airm {

// Name -> tensor, ordered by name.
using TensorDict = std::map<std::string, torch::Tensor>;

// Reads a file written by Python `torch.save(d)` where d is a dict of str ->
// Tensor (tensors land on CPU). Every tensor entry is returned, including
// non-parameter entries such as "__input__"; non-tensor values are skipped
// when their key starts with "__" and an error otherwise.
// Throws airm::Error naming the file when it is missing, truncated or not
// such a dict.
TensorDict read_tensor_dict(const std::filesystem::path& path);

// Writes `dict` in a form read_tensor_dict (and Python torch.load) reads.
void write_tensor_dict(const TensorDict& dict, const std::filesystem::path& path);

// Copies dict entries into the module's parameters and buffers by their
// `named_parameters()` / `named_buffers()` key. Keys for which `ignore`
// returns true are skipped. Any missing key, unexpected key or shape
// mismatch throws airm::Error(source, ...) listing all of them; the module
// is left unchanged in that case.
void load_state_dict(torch::nn::Module& module, const TensorDict& dict, const std::string& source,
                     const std::function<bool(const std::string&)>& ignore = {});

// The module's parameters and buffers by key, detached and on CPU.
TensorDict state_dict_of(const torch::nn::Module& module);

// Loads an (official SegFormer) MiT state dict: keys starting with "__" and
// a classification head "head.*" are ignored; a `patch_embed1.proj.weight`
// with fewer input channels than the model (e.g. 3 for an RGB checkpoint in
// a 4-channel RGB+mask model) fills the first channels and the extra ones
// start at zero. Throws airm::Error naming the file on any other mismatch.
void load_mit_state_dict(Mit& mit, const std::filesystem::path& path);
void load_mit_state_dict(Mit& mit, const TensorDict& dict, const std::string& source);

}  // namespace airm
