// Reading photos (JPEG, PNG, TIFF, WebP, BMP; 8/16-bit; gray, RGB, RGBA).
#pragma once

#include <filesystem>

#include <opencv2/core.hpp>

namespace airm {

// Reads an image as CV_8UC3 in OpenCV's BGR order with its EXIF orientation
// applied. 16-bit samples are scaled to 8 bits, gray is replicated to three
// channels, alpha is dropped. Throws airm::Error naming the file for a missing
// file, a file that is not an image, a truncated file or a zero-size image.
cv::Mat read_image(const std::filesystem::path& path);

// The size of the image after EXIF orientation, read without keeping pixels.
cv::Size read_image_size(const std::filesystem::path& path);

}  // namespace airm
