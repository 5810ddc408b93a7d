// Reading and writing masks: 8/16-bit gray, palette or RGB PNG.
#pragma once

#include <filesystem>

#include <opencv2/core.hpp>

namespace airm {

enum class MaskMode {
  binary,       // 0 or 1: foreground is more than half of full scale
  probability,  // kept as a value in [0, 1]
};

// Reads a mask as CV_8UC1 levels 0..255: 16-bit scaled by 1/257, RGB (or
// RGBA) converted to luminance, palette PNG taken as index > 0 -> 255.
// Throws airm::Error naming the file for a missing, unreadable, truncated or
// zero-size file.
cv::Mat read_mask_u8(const std::filesystem::path& path);

// Reads a mask as CV_32FC1 in [0, 1]. Binary: 1 where the stored value is
// more than half of full scale (> 127 of 255, > 32767 of 65535; palette
// index > 0), else 0. Probability: value / full scale.
cv::Mat read_mask(const std::filesystem::path& path, MaskMode mode = MaskMode::binary);

// Returns `mask` at `image_size`. A mask of another size whose aspect ratio is
// within 1% of the image's is resized bilinearly, with a note on stderr; any
// other size mismatch throws airm::Error naming `mask_path`.
cv::Mat fit_mask_to(const cv::Mat& mask, cv::Size image_size, const std::filesystem::path& mask_path);

// Writes an 8-bit PNG atomically (temporary name, then rename). `mask` is
// CV_32FC1 in [0, 1] or CV_8UC1 0..255. Binary writes 0/255 (threshold at
// half scale), probability writes round(255 * p).
void write_mask(const std::filesystem::path& path, const cv::Mat& mask, MaskMode mode = MaskMode::binary);

}  // namespace airm
