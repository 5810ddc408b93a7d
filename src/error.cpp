#include "airm/error.hpp"

#include <utility>

namespace airm {
namespace {
std::string compose(const std::string& file, const std::string& problem) {
  return file.empty() ? problem : file + ": " + problem;
}
}  // namespace

Error::Error(std::string file, std::string problem)
    : std::runtime_error(compose(file, problem)), file_(std::move(file)), problem_(std::move(problem)) {}

Error::Error(std::string file, const std::string& expected, const std::string& got)
    : Error(std::move(file), "expected " + expected + ", got " + got) {}

}  // namespace airm
