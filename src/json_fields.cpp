#include "json_fields.hpp"

#include <fstream>

namespace airm::json_fields {

void require_known_keys(const nlohmann::json& json, const nlohmann::json& known, const std::string& what,
                        const std::string& source) {
  if (!json.is_object()) throw Error(source, what + ": expected a JSON object, got " + std::string(json.type_name()));
  for (const auto& item : json.items()) {
    if (!known.contains(item.key())) throw Error(source, "unknown " + what + " key '" + item.key() + "'");
  }
}

nlohmann::json read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string(), "cannot be opened");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string(), std::string("not valid JSON (") + e.what() + ")");
  }
}

void read_path(const nlohmann::json& json, const char* key, std::string& value, const std::string& source,
               const std::filesystem::path& base_dir) {
  read(json, key, value, source);
  value = resolve_path(value, base_dir);
}

std::string resolve_path(const std::string& value, const std::filesystem::path& base_dir) {
  if (value.empty() || std::filesystem::path(value).is_absolute() || base_dir.empty()) return value;
  return std::filesystem::absolute(base_dir / value).lexically_normal().string();
}

nlohmann::json object_or_file(const nlohmann::json& json, const char* key, const std::string& source,
                              const std::filesystem::path& base_dir, std::string& file, std::string& file_source) {
  auto it = json.find(key);
  if (it == json.end()) throw Error(source, std::string(key) + ": expected a config object or file, got none");
  file.clear();
  file_source = source;
  if (!it->is_string()) return *it;
  file = it->get<std::string>();
  std::filesystem::path path = file;
  if (path.is_relative() && !base_dir.empty()) path = base_dir / path;
  file_source = path.string();
  return read_file(path);
}

}  // namespace airm::json_fields
