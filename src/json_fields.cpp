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

}  // namespace airm::json_fields
