// Reading masks (gray, palette or RGB; 8/16-bit) and writing them as 8-bit PNG.
#include "airm/mask_io.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <unordered_map>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"
#include "airm/image_io.hpp"

namespace airm {
namespace fs = std::filesystem;

namespace {

const std::string kPngSignature("\x89PNG\r\n\x1A\n", 8);
constexpr unsigned kPaletteColourType = 3;

std::uint32_t big_endian_32(const unsigned char* bytes) {
  return std::uint32_t{bytes[0]} << 24 | std::uint32_t{bytes[1]} << 16 | std::uint32_t{bytes[2]} << 8 | bytes[3];
}

// True for a PNG whose IHDR says colour type 3 (byte 25 of the file).
bool is_palette_png(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(26, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  return in.gcount() == 26 && head.compare(0, 8, kPngSignature) == 0 &&
         static_cast<unsigned char>(head[25]) == kPaletteColourType;
}

// The PLTE chunk's colours, packed as 0xRRGGBB, in index order.
std::vector<std::uint32_t> read_png_palette(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(kPngSignature.size()));
  unsigned char header[8];
  while (in.read(reinterpret_cast<char*>(header), sizeof header)) {
    const std::uint32_t length = big_endian_32(header);
    const std::string type(reinterpret_cast<const char*>(header + 4), 4);
    if (type == "IDAT" || type == "IEND") break;
    if (type != "PLTE") {
      in.seekg(static_cast<std::streamoff>(length) + 4, std::ios::cur);  // data and CRC
      continue;
    }
    if (length % 3 != 0 || length == 0 || length > 3 * 256) break;
    std::vector<unsigned char> rgb(length);
    if (!in.read(reinterpret_cast<char*>(rgb.data()), static_cast<std::streamsize>(length))) break;
    std::vector<std::uint32_t> palette;
    for (std::size_t i = 0; i + 2 < rgb.size(); i += 3) {
      palette.push_back(std::uint32_t{rgb[i]} << 16 | std::uint32_t{rgb[i + 1]} << 8 | rgb[i + 2]);
    }
    return palette;
  }
  throw Error(path.string(), "not a readable image (palette PNG without a valid PLTE chunk)");
}

// OpenCV expands palette PNGs to colours; map each colour back to its first
// palette index. Foreground (255) is index > 0.
cv::Mat palette_foreground(const fs::path& path) {
  const cv::Mat bgr = decode_image_file(path, cv::IMREAD_COLOR);  // checks the file first
  const std::vector<std::uint32_t> palette = read_png_palette(path);
  std::unordered_map<std::uint32_t, std::size_t> first_index;
  for (std::size_t i = 0; i < palette.size(); ++i) first_index.emplace(palette[i], i);

  cv::Mat foreground(bgr.size(), CV_8UC1);
  for (int y = 0; y < bgr.rows; ++y) {
    const cv::Vec3b* in = bgr.ptr<cv::Vec3b>(y);
    unsigned char* out = foreground.ptr<unsigned char>(y);
    for (int x = 0; x < bgr.cols; ++x) {
      const std::uint32_t rgb = std::uint32_t{in[x][2]} << 16 | std::uint32_t{in[x][1]} << 8 | in[x][0];
      const auto found = first_index.find(rgb);
      if (found == first_index.end()) {
        throw Error(path.string(), "not a readable image (a pixel colour is not in the PNG palette)");
      }
      out[x] = found->second > 0 ? 255 : 0;
    }
  }
  return foreground;
}

// A mask as stored: one channel of 8U, 16U or 32F samples and the value of
// full scale (255, 65535 or 1).
struct StoredMask {
  cv::Mat levels;
  double full_scale = 255.0;
};

StoredMask read_stored_mask(const fs::path& path) {
  if (is_palette_png(path)) return {palette_foreground(path), 255.0};

  const cv::Mat decoded = decode_image_file(path, cv::IMREAD_ANYCOLOR | cv::IMREAD_ANYDEPTH);
  cv::Mat gray;
  switch (decoded.channels()) {
    case 1: gray = decoded; break;
    case 3: cv::cvtColor(decoded, gray, cv::COLOR_BGR2GRAY); break;
    case 4: cv::cvtColor(decoded, gray, cv::COLOR_BGRA2GRAY); break;
    default: throw Error(path.string(), "not a readable mask (unsupported number of channels)");
  }
  switch (gray.depth()) {
    case CV_8U: return {gray, 255.0};
    case CV_16U: return {gray, 65535.0};
    case CV_32F: {
      cv::Point at;
      if (!cv::checkRange(gray, true, &at)) {
        throw Error(path.string(), "finite mask values (a float mask holds [0, 1])",
                    "NaN or infinity at (" + std::to_string(at.x) + ", " + std::to_string(at.y) + ")");
      }
      return {gray, 1.0};
    }
    default: throw Error(path.string(), "not a readable mask (unsupported sample type)");
  }
}

std::string size_text(cv::Size size) { return std::to_string(size.width) + "x" + std::to_string(size.height); }

// 0..255 levels of `mask` (CV_32FC1 in [0, 1] or CV_8UC1), binarised if asked.
cv::Mat to_u8_levels(const cv::Mat& mask, MaskMode mode) {
  const bool is_float = mask.type() == CV_32FC1;
  cv::Mat levels;
  if (mode == MaskMode::binary) {
    cv::compare(mask, cv::Scalar(is_float ? 0.5 : 127.0), levels, cv::CMP_GT);  // 255 where true
  } else if (is_float) {
    mask.convertTo(levels, CV_8U, 255.0);  // rounds and saturates
  } else {
    levels = mask;
  }
  return levels;
}

}  // namespace

cv::Mat read_mask_u8(const fs::path& path) {
  const StoredMask stored = read_stored_mask(path);
  if (stored.levels.depth() == CV_8U) return stored.levels;
  cv::Mat levels;
  stored.levels.convertTo(levels, CV_8U, 255.0 / stored.full_scale);
  return levels;
}

cv::Mat read_mask(const fs::path& path, MaskMode mode) {
  const StoredMask stored = read_stored_mask(path);
  cv::Mat mask;
  if (mode == MaskMode::probability) {
    stored.levels.convertTo(mask, CV_32F, 1.0 / stored.full_scale);
    return mask;
  }
  // More than half of full scale: > 127 of 255, > 32767 of 65535, > 0.5 of 1.
  const double half = stored.levels.depth() == CV_32F ? 0.5 : std::floor(stored.full_scale / 2.0);
  cv::Mat foreground;
  cv::compare(stored.levels, cv::Scalar(half), foreground, cv::CMP_GT);
  foreground.convertTo(mask, CV_32F, 1.0 / 255.0);
  return mask;
}

cv::Mat fit_mask_to(const cv::Mat& mask, cv::Size image_size, const fs::path& mask_path) {
  if (mask.size() == image_size) return mask;
  const std::string name = mask_path.string();
  const std::string expected = "a mask with the aspect ratio of its image " + size_text(image_size);
  if (mask.empty() || image_size.empty()) throw Error(name, expected, size_text(mask.size()));
  const double mask_aspect = static_cast<double>(mask.cols) / mask.rows;
  const double image_aspect = static_cast<double>(image_size.width) / image_size.height;
  constexpr double kAspectTolerance = 0.01 + 1e-9;  // 1%, with room for rounding
  if (std::abs(mask_aspect / image_aspect - 1.0) > kAspectTolerance) {
    throw Error(name, expected, size_text(mask.size()));
  }
  cv::Mat resized;
  cv::resize(mask, resized, image_size, 0, 0, cv::INTER_LINEAR);
  std::cerr << "note: " << name << ": mask " << size_text(mask.size()) << " resized to image "
            << size_text(image_size) << "\n";
  return resized;
}

void write_mask(const fs::path& path, const cv::Mat& mask, MaskMode mode) {
  const std::string name = path.string();
  if (mask.empty()) throw Error(name, "cannot write an empty mask");
  if (mask.type() != CV_32FC1 && mask.type() != CV_8UC1) {
    throw Error(name, "a CV_32FC1 or CV_8UC1 mask", "OpenCV type " + std::to_string(mask.type()));
  }
  std::vector<unsigned char> png;
  if (!cv::imencode(".png", to_u8_levels(mask, mode), png)) throw Error(name, "could not be encoded as PNG");
  write_atomically(path, [&](const fs::path& tmp) {
    errno = 0;
    std::ofstream out(tmp, std::ios::binary);
    if (!out.is_open()) throw Error(name, std::string("could not be written: ") + std::strerror(errno));
    out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
    out.close();
    if (!out) throw Error(name, std::string("could not be written: ") + std::strerror(errno));
  });
}

}  // namespace airm
