// Internal: reading configuration structs from JSON the same way everywhere
// (unknown keys are errors, a wrong type names its key, the file is named).
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "airm/error.hpp"

namespace airm::json_fields {

// Throws airm::Error(source) unless `json` is an object whose keys all appear
// in `known` (`what` names the kind of config in the message).
void require_known_keys(const nlohmann::json& json, const nlohmann::json& known, const std::string& what,
                        const std::string& source);

// Sets `value` from json[key] when present; a value of the wrong type throws
// (naming prefix + key, e.g. "perturb.min_iou" for a nested object).
template <typename T>
void read(const nlohmann::json& json, const char* key, T& value, const std::string& source,
          const std::string& prefix = "") {
  auto it = json.find(key);
  if (it == json.end()) return;
  try {
    value = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(source, prefix + key + ": expected a value of the right type, got " + it->dump());
  }
}

// Parses a JSON file; throws airm::Error naming it.
nlohmann::json read_file(const std::filesystem::path& path);

// A path field of a config file: read like read(); a relative path is made
// absolute against `base_dir` (when given), so that a run folder's copy of
// the config names the same file.
void read_path(const nlohmann::json& json, const char* key, std::string& value, const std::string& source,
               const std::filesystem::path& base_dir);
// read_path's rule for a value already read: relative and base_dir given -> absolute against base_dir.
std::string resolve_path(const std::string& value, const std::filesystem::path& base_dir);

// json[key] as an object: inline, or read from the file it names (relative to
// `base_dir`); `file` receives the name as written ("" when inline). Throws
// airm::Error(source) when the key is missing.
nlohmann::json object_or_file(const nlohmann::json& json, const char* key, const std::string& source,
                              const std::filesystem::path& base_dir, std::string& file, std::string& file_source);

}  // namespace airm::json_fields
