// File conventions shared by the commands that read photos and weights.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace airm::cli {

// The photo extensions batch modes pick up (any case).
bool is_image_file(const std::filesystem::path& path);
// The photos in `dir`, sorted by name; throws airm::Error if it is not a folder.
std::vector<std::filesystem::path> list_images(const std::filesystem::path& dir);
// The partner of `image` in `dir` (its coarse mask, label map...): STEM.png
// first, then STEM with any photo extension; empty if none.
std::filesystem::path find_partner(const std::filesystem::path& dir, const std::filesystem::path& image);
// find_partner for a coarse mask that must exist: throws airm::Error naming the image and the folder.
std::filesystem::path require_coarse_mask(const std::filesystem::path& dir, const std::filesystem::path& image);

// A weights file: `given` (a flag's value), else $ENV_VAR, else models/FILE
// in a folder above the airm binary (its project checkout). Throws
// airm::Error naming `flag` and `env_var` when there is none.
std::filesystem::path resolve_weights(const std::string& given, const char* env_var, const char* file,
                                      const char* flag);

// Writes an image (JPEG/PNG by extension) atomically, creating its folder.
void write_image_file(const std::filesystem::path& path, const cv::Mat& image);

}  // namespace airm::cli
