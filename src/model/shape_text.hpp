// "[a,b,c]" for a shape or list of sizes, in error messages.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace airm {

template <typename Int>
std::string shape_text(const std::vector<Int>& sizes) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? "," : "") << sizes[i];
  out << "]";
  return out.str();
}

}  // namespace airm
