#include "photo_batch.hpp"

#include <cstdio>
#include <set>
#include <string>

#include "airm/error.hpp"
#include "airm/progress.hpp"

namespace airm::cli {

int for_each_photo(const std::vector<std::filesystem::path>& images, const char* label, bool progress,
                   const std::function<void(const std::filesystem::path& image)>& one) {
  Progress bar(label, images.size(), progress);
  std::set<std::string> seen;
  int failed = 0;
  for (const std::filesystem::path& image : images) {
    const std::string stem = image.stem().string();
    try {
      if (!seen.insert(stem).second) {
        throw Error(image.string(), "another image has the name " + stem + " (outputs would collide); skipped");
      }
      one(image);
    } catch (const std::exception& e) {
      ++failed;
      std::printf("%s: failed\n", stem.c_str());
      std::fprintf(stderr, "\nerror: %s\n", e.what());
    }
    std::fflush(stdout);
    bar.advance();
  }
  bar.finish();
  return failed;
}

int batch_exit_code(int failed) {
  if (failed == 0) return 0;
  std::fprintf(stderr, "error: %d image(s) failed\n", failed);
  return 1;
}

}  // namespace airm::cli
