#include "cli_files.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <opencv2/imgcodecs.hpp>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"

namespace airm::cli {
namespace fs = std::filesystem;
namespace {

const std::vector<std::string> kImageExtensions = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

}  // namespace

bool is_image_file(const fs::path& path) {
  const std::string ext = lower(path.extension().string());
  return fs::is_regular_file(path) &&
         std::find(kImageExtensions.begin(), kImageExtensions.end(), ext) != kImageExtensions.end();
}

std::vector<fs::path> list_images(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(dir.string(), "is not a folder");
  std::vector<fs::path> images;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (is_image_file(entry.path())) images.push_back(entry.path());
  }
  std::sort(images.begin(), images.end());
  return images;
}

fs::path find_partner(const fs::path& dir, const fs::path& image) {
  const std::string stem = image.stem().string();
  if (fs::exists(dir / (stem + ".png"))) return dir / (stem + ".png");
  for (const std::string& ext : kImageExtensions) {
    std::string upper = ext;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    for (const std::string& e : {ext, upper}) {
      if (fs::exists(dir / (stem + e))) return dir / (stem + e);
    }
  }
  return {};
}

fs::path require_coarse_mask(const fs::path& dir, const fs::path& image) {
  fs::path coarse = find_partner(dir, image);
  if (coarse.empty()) {
    throw Error(image.string(),
                "no coarse mask " + image.stem().string() + ".png (or another image type) in " + dir.string());
  }
  return coarse;
}

fs::path resolve_weights(const std::string& given, const char* env_var, const char* file, const char* flag) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv(env_var); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / "models" / file)) return dir / "models" / file;                              // source tree
      if (fs::exists(dir / "share/airm/models" / file)) return dir / "share/airm/models" / file;  // installed prefix
      if (dir == dir.root_path()) break;
    }
  }
  throw Error("", std::string("no weights: pass ") + flag + " FILE or set " + env_var + " (no models/" + file +
                      " or share/airm/models/" + file + " found in the folders above " +
                      (ec ? std::string("the airm binary") : exe.parent_path().string()) + ")");
}

void write_image_file(const fs::path& path, const cv::Mat& image) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  write_atomically(path, [&](const fs::path& tmp) {
    if (!cv::imwrite(tmp.string(), image)) throw Error(path.string(), "could not be written");
  });
}

}  // namespace airm::cli
