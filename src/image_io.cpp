// Reading photos: file checks by bytes, decoding with OpenCV, sizes from headers.
#include "airm/image_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"

namespace airm {
namespace fs = std::filesystem;

namespace {

// Truncation is judged from this many bytes at the end of the file.
constexpr std::uintmax_t kTailBytes = 64 * 1024;

enum class Format { jpeg, png, tiff, webp, bmp, unknown };

Format sniff_format(const std::string& head) {
  auto starts_with = [&](const std::string& magic) { return head.compare(0, magic.size(), magic) == 0; };
  if (starts_with("\xFF\xD8\xFF")) return Format::jpeg;
  if (starts_with("\x89PNG\r\n\x1A\n")) return Format::png;
  if (starts_with(std::string("II*\0", 4)) || starts_with(std::string("MM\0*", 4))) return Format::tiff;
  if (starts_with("RIFF") && head.size() >= 12 && head.compare(8, 4, "WEBP") == 0) return Format::webp;
  if (starts_with("BM")) return Format::bmp;
  return Format::unknown;
}

const char* format_name(Format format) {
  switch (format) {
    case Format::jpeg: return "JPEG";
    case Format::png: return "PNG";
    case Format::tiff: return "TIFF";
    case Format::webp: return "WebP";
    case Format::bmp: return "BMP";
    case Format::unknown: break;
  }
  return "unknown";
}

unsigned byte_at(const std::string& bytes, std::size_t at) { return static_cast<unsigned char>(bytes[at]); }

unsigned big_endian_16(const std::string& bytes, std::size_t at) {
  return byte_at(bytes, at) << 8 | byte_at(bytes, at + 1);
}

std::uint32_t big_endian_32(const std::string& bytes, std::size_t at) {
  return std::uint32_t{big_endian_16(bytes, at)} << 16 | big_endian_16(bytes, at + 2);
}

// A regular, non-empty file opened for reading, with its format sniffed from
// its first bytes. Construction throws airm::Error for anything else.
class ImageFile {
 public:
  explicit ImageFile(const fs::path& path) : path_(path), name_(path.string()) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (status.type() == fs::file_type::not_found) throw Error(name_, "file does not exist");
    if (ec) throw Error(name_, "could not be examined (" + ec.message() + ")");
    if (fs::is_directory(status)) throw Error(name_, "is a directory, not an image file");
    if (!fs::is_regular_file(status)) throw Error(name_, "not a regular file");
    size_ = fs::file_size(path, ec);
    if (ec) throw Error(name_, "could not be examined (" + ec.message() + ")");
    if (size_ == 0) throw Error(name_, "empty file");
    errno = 0;
    in_.open(path, std::ios::binary);
    if (!in_) throw Error(name_, std::string("could not be opened for reading (") + std::strerror(errno) + ")");
    format_ = sniff_format(read(0, 12));
  }

  // Up to `count` bytes from `offset`; fewer where the file ends first.
  std::string read(std::uintmax_t offset, std::uintmax_t count) {
    if (offset >= size_) return {};
    count = std::min(count, size_ - offset);
    std::string bytes(static_cast<std::size_t>(count), '\0');
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(bytes.data(), static_cast<std::streamsize>(count));
    bytes.resize(static_cast<std::size_t>(std::max<std::streamsize>(in_.gcount(), 0)));
    return bytes;
  }

  const fs::path& path() const { return path_; }
  const std::string& name() const { return name_; }
  std::uintmax_t size() const { return size_; }
  Format format() const { return format_; }

 private:
  fs::path path_;
  std::string name_;
  std::ifstream in_;
  std::uintmax_t size_ = 0;
  Format format_ = Format::unknown;
};

bool is_padding(char c) { return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Decoders often fill the missing part of a truncated JPEG or PNG with gray
// and say nothing, so completeness is judged from the bytes: a JPEG ends with
// its EOI marker (trailing padding allowed), a PNG has an IEND chunk.
void check_complete(ImageFile& file) {
  const std::uintmax_t tail_size = std::min(file.size(), kTailBytes);
  if (file.format() == Format::jpeg) {
    std::string tail = file.read(file.size() - tail_size, tail_size);
    while (!tail.empty() && is_padding(tail.back())) tail.pop_back();
    if (tail.size() < 2 || tail.compare(tail.size() - 2, 2, "\xFF\xD9") != 0) {
      throw Error(file.name(), "truncated (the JPEG data does not end with its end-of-image marker)");
    }
  } else if (file.format() == Format::png) {
    const std::string tail = file.read(file.size() - tail_size, tail_size);
    if (tail.find(std::string("\0\0\0\0IEND", 8)) == std::string::npos) {
      throw Error(file.name(), "truncated (the PNG data has no IEND chunk)");
    }
  }
}

std::optional<cv::Size> jpeg_header_size(ImageFile& file);

// Width and height as the file's header states them (orientation aside), for the pixel guard; nothing when the
// header cannot be read (the decoder then judges the file, under OpenCV's own limit of 2^30 pixels).
struct Sides {
  std::int64_t width, height;
};
std::optional<Sides> header_sides(ImageFile& file) {
  auto positive = [](std::int64_t w, std::int64_t h) -> std::optional<Sides> {
    if (w <= 0 || h <= 0) return std::nullopt;
    return Sides{w, h};
  };
  switch (file.format()) {
    case Format::jpeg: {
      const std::optional<cv::Size> size = jpeg_header_size(file);
      if (!size) return std::nullopt;
      return positive(size->width, size->height);
    }
    case Format::png: {
      const std::string ihdr = file.read(8, 16);
      if (ihdr.size() < 16 || ihdr.compare(4, 4, "IHDR") != 0) return std::nullopt;
      return positive(big_endian_32(ihdr, 8), big_endian_32(ihdr, 12));
    }
    case Format::bmp: {  // BITMAPINFOHEADER (or larger): int32 width and height, little-endian; height < 0: top-down
      const std::string header = file.read(14, 12);
      if (header.size() < 12) return std::nullopt;
      auto le32 = [&](std::size_t at) {
        return static_cast<std::int32_t>(byte_at(header, at) | byte_at(header, at + 1) << 8 |
                                         byte_at(header, at + 2) << 16 | std::uint32_t{byte_at(header, at + 3)} << 24);
      };
      if (le32(0) < 40) return std::nullopt;  // an OS/2 core header (16-bit sides): OpenCV's limit judges it
      const std::int64_t height = le32(8);
      return positive(le32(4), height < 0 ? -height : height);
    }
    case Format::tiff: {  // the first IFD's ImageWidth (256) and ImageLength (257), SHORT or LONG
      const std::string head = file.read(0, 8);
      if (head.size() < 8) return std::nullopt;
      const bool little = head[0] == 'I';
      auto u16 = [&](const std::string& b, std::size_t at) -> std::uint32_t {
        return little ? byte_at(b, at) | byte_at(b, at + 1) << 8 : big_endian_16(b, at);
      };
      auto u32 = [&](const std::string& b, std::size_t at) -> std::uint32_t {
        return little ? u16(b, at) | u16(b, at + 2) << 16 : big_endian_32(b, at);
      };
      const std::uint32_t ifd = u32(head, 4);
      const std::string count_bytes = file.read(ifd, 2);
      if (count_bytes.size() < 2) return std::nullopt;
      const std::uint32_t entries = u16(count_bytes, 0);
      const std::string table = file.read(std::uintmax_t{ifd} + 2, std::uintmax_t{entries} * 12);
      std::int64_t width = 0, height = 0;
      for (std::size_t e = 0; e + 12 <= table.size(); e += 12) {
        const std::uint32_t tag = u16(table, e), type = u16(table, e + 2);
        const std::int64_t value = type == 3 ? u16(table, e + 8) : type == 4 ? u32(table, e + 8) : 0;
        if (tag == 256) width = value;
        if (tag == 257) height = value;
      }
      return positive(width, height);
    }
    case Format::webp:  // the format caps each side at 16383: at most 2^28 pixels
    case Format::unknown: break;
  }
  return std::nullopt;
}

cv::Mat decode(ImageFile& file, int imread_flags) {
  // Only the five formats we read reach OpenCV: imread would otherwise try every codec it has (JPEG 2000,
  // OpenEXR, PFM, Sun raster, ...) on bytes that are none of ours (the fuzzer drove OpenJPEG this way).
  if (file.format() == Format::unknown) {
    throw Error(file.name(), "not a readable image (not a JPEG, PNG, TIFF, WebP or BMP file)");
  }
  // The product is never formed: sides up to 2^32 - 1 would overflow it (found by fuzz_image).
  if (const std::optional<Sides> sides = header_sides(file); sides && sides->width > kMaxImagePixels / sides->height) {
    throw Error(file.name(), "at most " + std::to_string(kMaxImagePixels) + " pixels (a larger image is refused before decoding)",
                std::to_string(sides->width) + "x" + std::to_string(sides->height) + " in its header");
  }
  cv::Mat image;
  try {
    image = cv::imread(file.path().string(), imread_flags);
  } catch (const cv::Exception& e) {
    throw Error(file.name(), "not a readable image (" + e.err + ")");
  }
  if (image.empty()) {
    const std::string why = file.format() == Format::unknown
                                ? "not a JPEG, PNG, TIFF, WebP or BMP file"
                                : std::string("the ") + format_name(file.format()) + " decoder failed";
    throw Error(file.name(), "not a readable image (" + why + ")");
  }
  return image;
}

// The EXIF orientation (1..8) in a JPEG APP1 segment's payload; 1 if none.
int exif_orientation(const std::string& app1) {
  const std::string signature("Exif\0\0", 6);
  if (app1.compare(0, signature.size(), signature) != 0) return 1;
  const std::string tiff = app1.substr(signature.size());
  if (tiff.size() < 8) return 1;
  const bool little_endian = tiff.compare(0, 2, "II") == 0;
  if (!little_endian && tiff.compare(0, 2, "MM") != 0) return 1;
  auto u16 = [&](std::size_t at) -> unsigned {
    return little_endian ? byte_at(tiff, at) | byte_at(tiff, at + 1) << 8 : big_endian_16(tiff, at);
  };
  auto u32 = [&](std::size_t at) -> std::uint32_t {
    return little_endian ? u16(at) | std::uint32_t{u16(at + 2)} << 16
                         : std::uint32_t{u16(at)} << 16 | u16(at + 2);
  };
  if (u16(2) != 42) return 1;
  const std::size_t ifd = u32(4);
  if (ifd + 2 > tiff.size()) return 1;
  const unsigned entries = u16(ifd);
  constexpr unsigned kOrientationTag = 0x0112;
  for (unsigned i = 0; i < entries; ++i) {
    const std::size_t entry = ifd + 2 + 12 * std::size_t{i};
    if (entry + 12 > tiff.size()) return 1;
    if (u16(entry) == kOrientationTag) {
      const unsigned value = u16(entry + 8);
      return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
    }
  }
  return 1;
}

cv::Size oriented(cv::Size stored, int orientation) {
  // Orientations 5 to 8 turn the picture by a quarter: width and height swap.
  return orientation >= 5 ? cv::Size(stored.height, stored.width) : stored;
}

bool is_start_of_frame(unsigned marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// Width and height from the JPEG frame header, oriented by the first APP1
// segment's EXIF (as OpenCV does); nothing if the markers cannot be followed.
std::optional<cv::Size> jpeg_header_size(ImageFile& file) {
  std::uintmax_t pos = 2;  // after SOI
  bool seen_app1 = false;
  int orientation = 1;
  while (true) {
    const std::string marker_bytes = file.read(pos, 2);
    if (marker_bytes.size() < 2 || byte_at(marker_bytes, 0) != 0xFF) return std::nullopt;
    const unsigned marker = byte_at(marker_bytes, 1);
    if (marker == 0xFF) {  // fill byte before a marker
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // markers without a length
      pos += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // no frame header before the data
    const std::string length_bytes = file.read(pos + 2, 2);
    if (length_bytes.size() < 2 || big_endian_16(length_bytes, 0) < 2) return std::nullopt;
    const unsigned length = big_endian_16(length_bytes, 0);
    const std::string payload = file.read(pos + 4, length - 2);
    if (payload.size() != length - 2) return std::nullopt;
    if (marker == 0xE1 && !seen_app1) {
      seen_app1 = true;
      orientation = exif_orientation(payload);
    }
    if (is_start_of_frame(marker)) {
      if (payload.size() < 5) return std::nullopt;
      const cv::Size stored(static_cast<int>(big_endian_16(payload, 3)), static_cast<int>(big_endian_16(payload, 1)));
      if (stored.empty()) return std::nullopt;
      return oriented(stored, orientation);
    }
    pos += 2 + length;
  }
}

// Width and height from the PNG IHDR chunk; nothing when the header is odd or
// an eXIf chunk may orient the picture (then the decoder decides).
std::optional<cv::Size> png_header_size(ImageFile& file) {
  const std::string ihdr = file.read(8, 8 + 8);
  if (ihdr.size() < 16 || ihdr.compare(4, 4, "IHDR") != 0) return std::nullopt;
  const std::uint32_t width = big_endian_32(ihdr, 8);
  const std::uint32_t height = big_endian_32(ihdr, 12);
  constexpr std::uint32_t kMaxSide = 1u << 30;
  if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide) return std::nullopt;
  for (std::uintmax_t pos = 8; pos + 8 <= file.size();) {
    const std::string chunk = file.read(pos, 8);
    if (chunk.size() < 8) return std::nullopt;
    const std::string type = chunk.substr(4, 4);
    if (type == "eXIf") return std::nullopt;
    if (type == "IDAT" || type == "IEND") break;
    pos += 12 + std::uintmax_t{big_endian_32(chunk, 0)};
  }
  return cv::Size(static_cast<int>(width), static_cast<int>(height));
}

cv::Mat to_bgr8(const cv::Mat& image, const std::string& name) {
  cv::Mat eight_bit;
  switch (image.depth()) {
    case CV_8U: eight_bit = image; break;
    case CV_16U: image.convertTo(eight_bit, CV_8U, 1.0 / 257.0); break;
    case CV_32F: image.convertTo(eight_bit, CV_8U, 255.0); break;  // float images hold [0, 1]
    default: throw Error(name, "not a readable image (unsupported sample type)");
  }
  cv::Mat bgr;
  switch (eight_bit.channels()) {
    case 1: cv::cvtColor(eight_bit, bgr, cv::COLOR_GRAY2BGR); break;
    case 3: bgr = eight_bit; break;
    case 4: cv::cvtColor(eight_bit, bgr, cv::COLOR_BGRA2BGR); break;
    default: throw Error(name, "not a readable image (unsupported number of channels)");
  }
  return bgr;
}

}  // namespace

void check_image_file(const fs::path& path) {
  ImageFile file(path);
  check_complete(file);
}

cv::Mat decode_image_file(const fs::path& path, int imread_flags) {
  ImageFile file(path);
  check_complete(file);
  return decode(file, imread_flags);
}

cv::Mat read_image(const fs::path& path) {
  // IMREAD_COLOR (not IMREAD_UNCHANGED) makes OpenCV apply the EXIF orientation.
  return to_bgr8(decode_image_file(path, cv::IMREAD_COLOR | cv::IMREAD_ANYDEPTH), path.string());
}

cv::Size read_image_size(const fs::path& path) {
  ImageFile file(path);
  check_complete(file);
  std::optional<cv::Size> size;
  if (file.format() == Format::jpeg) size = jpeg_header_size(file);
  if (file.format() == Format::png) size = png_header_size(file);
  if (size) return *size;
  return decode(file, cv::IMREAD_GRAYSCALE | cv::IMREAD_ANYDEPTH).size();
}

}  // namespace airm
