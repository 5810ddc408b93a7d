#include "airm/atomic_file.hpp"

#include <atomic>
#include <fstream>
#include <system_error>

#include <unistd.h>

#include "airm/error.hpp"

namespace airm {
namespace fs = std::filesystem;

namespace {
fs::path temporary_beside(const fs::path& path) {
  static std::atomic<unsigned> counter{0};
  // ".NAME.tmp-PID-N.EXT": hidden, unique per process and call, same extension.
  const std::string stem = path.stem().string();
  const std::string tag = ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  return path.parent_path() / ("." + stem + tag + path.extension().string());
}
}  // namespace

void write_atomically(const fs::path& path, const std::function<void(const fs::path& tmp)>& write) {
  if (path.has_parent_path() && !fs::is_directory(path.parent_path())) {
    throw Error(path.string(), "its directory does not exist");
  }
  const fs::path tmp = temporary_beside(path);
  try {
    write(tmp);
    if (!fs::exists(tmp)) throw Error(path.string(), "nothing was written");
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  write_atomically(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) throw Error(path.string(), "could not be written");
  });
}

}  // namespace airm
