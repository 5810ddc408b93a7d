// Writing files so that an interrupt never leaves a partial output.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace airm {

// Calls `write(tmp)` with a temporary path in the same directory as `path`
// (same extension, so encoders that look at it still work), then renames the
// temporary onto `path`. On any exception the temporary is removed and the
// exception propagates; `path` is either untouched or complete.
void write_atomically(const std::filesystem::path& path,
                      const std::function<void(const std::filesystem::path& tmp)>& write);

// Writes `text` to `path` atomically.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// Removes the temporaries that killed processes left in `dir` (its entries named ".NAME.tmp-PID..." whose
// PID no longer runs; files or folders); those of living processes stay. Returns how many it removed.
// A missing or unreadable `dir` removes nothing.
int remove_stale_temporaries(const std::filesystem::path& dir);

}  // namespace airm
