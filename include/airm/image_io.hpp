// Reading photos (JPEG, PNG, TIFF, WebP, BMP; 8/16-bit; gray, RGB, RGBA).
#pragma once

#include <cstdint>
#include <filesystem>

#include <opencv2/core.hpp>

namespace airm {

// Every decode refuses an image whose header states more pixels than this (2^28: 16384x16384; 8K is
// 2^25), before allocating anything, so a small file cannot ask for gigabytes (a decompression bomb).
constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 28;

// Reads an image as CV_8UC3 in OpenCV's BGR order with its EXIF orientation
// applied. 16-bit samples are scaled to 8 bits, gray is replicated to three
// channels, alpha is dropped. Throws airm::Error naming the file for a missing
// file, a file that is not an image, a truncated file or a zero-size image.
cv::Mat read_image(const std::filesystem::path& path);

// The size of the image after EXIF orientation, read without keeping pixels
// (from the header for JPEG and PNG). Throws like read_image.
cv::Size read_image_size(const std::filesystem::path& path);

// Checks an image file without decoding it: it exists, is a non-empty regular
// file and, for JPEG and PNG, is not truncated (a JPEG ends with its
// end-of-image marker, a PNG has an IEND chunk). Throws airm::Error naming it.
void check_image_file(const std::filesystem::path& path);

// check_image_file, then cv::imread(path, imread_flags) (EXIF orientation is
// applied unless the flags say otherwise). Throws airm::Error naming the file
// when it cannot be decoded or decodes to an empty image.
cv::Mat decode_image_file(const std::filesystem::path& path, int imread_flags);

}  // namespace airm
