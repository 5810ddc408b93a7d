#include "airm/atomic_file.hpp"

#include <atomic>
#include <fstream>
#include <system_error>

#include <signal.h>
#include <unistd.h>

#include <cerrno>

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

int remove_stale_temporaries(const fs::path& dir) {
  std::error_code error;
  fs::directory_iterator it(dir, error);
  if (error) return 0;
  int removed = 0;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    const std::size_t tag = name.find(".tmp-");
    if (name.empty() || name[0] != '.' || tag == std::string::npos) continue;
    std::size_t end = tag + 5;
    while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
    if (end == tag + 5 || end - tag - 5 > 9) continue;
    const long pid = std::stol(name.substr(tag + 5, end - tag - 5));
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    std::error_code ignored;
    if (fs::remove_all(entry.path(), ignored) > 0 && !ignored) ++removed;
  }
  return removed;
}

}  // namespace airm
