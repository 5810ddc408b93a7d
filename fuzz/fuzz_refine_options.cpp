// `airm refine`'s option values: --scales and --size as the CLI parses them, then RefineOptions::validate.
#include <string>

#include "../apps/airm/commands.hpp"
#include "airm/refiner.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::size_t split = text.find('\n');
  const std::string scales = text.substr(0, split);
  const std::string output_size = split == std::string::npos ? "" : text.substr(split + 1);
  airm::fuzz::refused_or_read([&] {
    airm::RefineOptions options;
    options.scales = airm::cli::parse_scales(scales);
    if (!output_size.empty()) options.output_size = airm::cli::parse_size(output_size);
    options.validate();
  });
  return 0;
}
