// The batch modes' loop over a folder of photos (`airm refine --images`,
// `airm segment --images`): one result line per photo on stdout, failures
// reported by name and counted, a progress line on stderr.
#pragma once

#include <filesystem>
#include <functional>
#include <vector>

namespace airm::cli {

// Runs `one` on each photo in order. A photo whose stem another one already
// had (outputs STEM.png would collide) fails without running; a photo whose
// `one` throws prints "STEM: failed" on stdout and the error on stderr. `one`
// prints the photo's own result line. Returns the number that failed.
int for_each_photo(const std::vector<std::filesystem::path>& images, const char* label, bool progress,
                   const std::function<void(const std::filesystem::path& image)>& one);

// The batch's exit code: 0, or 1 with "error: N image(s) failed" on stderr.
int batch_exit_code(int failed);

}  // namespace airm::cli
