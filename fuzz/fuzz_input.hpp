// What every fuzz target shares: the input as a file (our readers take paths, as airm does), and the rule
// of what counts as a finding. A reader may refuse bad bytes with an exception (airm::Error, or a
// LibTorch/OpenCV error our code passes on); a crash, a sanitizer report, a hang or an allocation past
// libFuzzer's -rss_limit_mb / -malloc_limit_mb is a bug.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

namespace airm::fuzz {

// Writes the input to one file per process and extension (in $TMPDIR or /tmp) and returns its path.
inline std::filesystem::path as_file(const std::uint8_t* data, std::size_t size, const std::string& extension) {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    return std::filesystem::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
  }();
  const std::filesystem::path path = dir / ("airm-fuzz-" + std::to_string(::getpid()) + extension);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();  // the harness itself cannot run: not a finding in the code under test
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Runs `read`; exceptions are the reader's way to refuse input.
template <class Read>
void refused_or_read(Read&& read) {
  try {
    read();
  } catch (const std::exception&) {
  }
}

}  // namespace airm::fuzz
