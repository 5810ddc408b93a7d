// SPLITS.md and split files: the table (or "name: sets" lines) a dataset root names its splits with.
#include "airm/dataset.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = airm::fuzz::as_file(data, size, ".md");
  airm::fuzz::refused_or_read([&] { (void)airm::read_splits(path); });
  return 0;
}
