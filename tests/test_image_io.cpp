// read_image / read_image_size on fixtures made here: every format, depth and
// channel layout, EXIF orientation, and each way a file can be bad.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "airm/mask_io.hpp"
#include "airm/refiner.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using airm::test::read_bytes;
using airm::test::TempDir;
using airm::test::write_bytes;

namespace {

using airm::test::error_message;

// A colourful BGR test picture: gradients plus a white block at the top left.
cv::Mat test_picture(cv::Size size) {
  cv::Mat image(size, CV_8UC3);
  for (int y = 0; y < size.height; ++y) {
    for (int x = 0; x < size.width; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(255 * x / std::max(1, size.width - 1)),
                                            static_cast<uchar>(255 * y / std::max(1, size.height - 1)), 128);
    }
  }
  image(cv::Rect(0, 0, std::min(8, size.width), std::min(8, size.height))).setTo(cv::Scalar::all(255));
  return image;
}

double mean_abs_difference(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  const cv::Scalar per_channel = cv::mean(diff);
  return (per_channel[0] + per_channel[1] + per_channel[2]) / 3.0;
}

void write_image(const fs::path& path, const cv::Mat& image) { ASSERT_TRUE(cv::imwrite(path.string(), image)); }

std::string big_endian_32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// CRC-32 as PNG chunks use it (polynomial 0xEDB88320), bit by bit.
std::uint32_t png_crc(const std::string& bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

// A big-endian TIFF block whose IFD0 holds one tag: Orientation = `orientation`.
std::string exif_tiff_block(int orientation) {
  std::string tiff("MM\0\x2A\0\0\0\x08", 8);       // byte order, 42, IFD0 at offset 8
  tiff += std::string("\0\x01", 2);                 // one entry
  tiff += std::string("\x01\x12\0\x03\0\0\0\x01", 8);  // tag 0x0112, type SHORT, count 1
  tiff += std::string{'\0', static_cast<char>(orientation), '\0', '\0'};
  tiff += std::string(4, '\0');  // no next IFD
  return tiff;
}

// A JPEG of `image` with an EXIF APP1 segment right after SOI.
std::string jpeg_with_exif_orientation(const cv::Mat& image, int orientation) {
  std::vector<uchar> encoded;
  EXPECT_TRUE(cv::imencode(".jpg", image, encoded, {cv::IMWRITE_JPEG_QUALITY, 95}));
  const std::string payload = std::string("Exif\0\0", 6) + exif_tiff_block(orientation);
  const std::size_t length = payload.size() + 2;
  const std::string app1 = std::string("\xFF\xE1") + static_cast<char>(length >> 8) +
                           static_cast<char>(length & 0xFF) + payload;
  const std::string jpeg(encoded.begin(), encoded.end());
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

// A PNG of `image` with an eXIf chunk right after IHDR.
std::string png_with_exif_orientation(const cv::Mat& image, int orientation) {
  std::vector<uchar> encoded;
  EXPECT_TRUE(cv::imencode(".png", image, encoded));
  const std::string png(encoded.begin(), encoded.end());
  const std::string type_and_data = "eXIf" + exif_tiff_block(orientation);
  const std::string chunk = big_endian_32(static_cast<std::uint32_t>(type_and_data.size() - 4)) + type_and_data +
                            big_endian_32(png_crc(type_and_data));
  const std::size_t after_ihdr = 8 + 8 + 13 + 4;
  return png.substr(0, after_ihdr) + chunk + png.substr(after_ihdr);
}

const std::vector<std::string> kFormats = {"jpg", "png", "tif", "webp", "bmp"};

}  // namespace

// ---- Formats, depths and channel layouts ----------------------------------

class ImageFormatTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool lossy() const { return GetParam() == "jpg" || GetParam() == "webp"; }
};

TEST_P(ImageFormatTest, RoundTripKeepsSizeAndContent) {
  TempDir dir;
  const fs::path path = dir / ("picture." + GetParam());
  const cv::Mat original = test_picture({64, 48});
  write_image(path, original);

  const cv::Mat read = airm::read_image(path);
  EXPECT_EQ(read.type(), CV_8UC3);
  EXPECT_EQ(read.size(), cv::Size(64, 48));
  EXPECT_LE(mean_abs_difference(read, original), lossy() ? 6.0 : 0.0);
  EXPECT_EQ(airm::read_image_size(path), cv::Size(64, 48));
}

TEST_P(ImageFormatTest, OddAndTinySizes) {
  TempDir dir;
  for (const cv::Size size : {cv::Size(7, 5), cv::Size(1, 1), cv::Size(5, 7)}) {
    const fs::path path = dir / ("odd." + GetParam());
    write_image(path, test_picture(size));
    EXPECT_EQ(airm::read_image(path).size(), size) << path;
    EXPECT_EQ(airm::read_image_size(path), size) << path;
  }
}

TEST_P(ImageFormatTest, GrayIsReplicatedToThreeChannels) {
  TempDir dir;
  const fs::path path = dir / ("gray." + GetParam());
  cv::Mat gray(6, 10, CV_8UC1, cv::Scalar(90));
  gray(cv::Rect(0, 0, 5, 6)).setTo(200);
  write_image(path, gray);

  const cv::Mat read = airm::read_image(path);
  ASSERT_EQ(read.type(), CV_8UC3);
  const int tolerance = lossy() ? 6 : 0;
  for (const cv::Point at : {cv::Point(1, 1), cv::Point(8, 4)}) {
    const cv::Vec3b pixel = read.at<cv::Vec3b>(at);
    EXPECT_EQ(pixel[0], pixel[1]);
    EXPECT_EQ(pixel[1], pixel[2]);
    EXPECT_NEAR(pixel[0], gray.at<uchar>(at), tolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, ImageFormatTest, ::testing::ValuesIn(kFormats),
                         [](const auto& info) { return info.param; });

TEST(ReadImage, SixteenBitPngAndTiffAreScaledToEightBits) {
  TempDir dir;
  cv::Mat deep(4, 6, CV_16UC3, cv::Scalar(0, 257 * 100, 65535));
  deep.at<cv::Vec3w>(3, 5) = cv::Vec3w(65535, 0, 257 * 7);
  for (const std::string ext : {"png", "tif"}) {
    const fs::path path = dir / ("deep." + ext);
    write_image(path, deep);
    const cv::Mat read = airm::read_image(path);
    ASSERT_EQ(read.type(), CV_8UC3) << ext;
    EXPECT_EQ(read.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 100, 255)) << ext;
    EXPECT_EQ(read.at<cv::Vec3b>(3, 5), cv::Vec3b(255, 0, 7)) << ext;
  }
}

TEST(ReadImage, SixteenBitGrayIsScaledAndReplicated) {
  TempDir dir;
  const fs::path path = dir / "deep_gray.png";
  write_image(path, cv::Mat(3, 3, CV_16UC1, cv::Scalar(257 * 40)));
  const cv::Mat read = airm::read_image(path);
  ASSERT_EQ(read.type(), CV_8UC3);
  EXPECT_EQ(read.at<cv::Vec3b>(1, 1), cv::Vec3b(40, 40, 40));
}

TEST(ReadImage, RgbaDropsAlphaAndKeepsColour) {
  TempDir dir;
  for (const std::string ext : {"png", "tif", "webp"}) {
    const fs::path path = dir / ("rgba." + ext);
    cv::Mat rgba(4, 4, CV_8UC4, cv::Scalar(10, 120, 230, 255));
    rgba.at<cv::Vec4b>(0, 0) = cv::Vec4b(10, 120, 230, 0);  // fully transparent, colour kept
    ASSERT_TRUE(cv::imwrite(path.string(), rgba, {cv::IMWRITE_WEBP_QUALITY, 101}));  // 101: lossless WebP
    const cv::Mat read = airm::read_image(path);
    ASSERT_EQ(read.type(), CV_8UC3) << ext;
    EXPECT_EQ(read.at<cv::Vec3b>(2, 2), cv::Vec3b(10, 120, 230)) << ext;
  }
}

// ---- EXIF orientation -------------------------------------------------------

TEST(ReadImage, JpegExifOrientation6IsTurnedClockwise) {
  TempDir dir;
  const fs::path path = dir / "turned.jpg";
  cv::Mat stored(20, 40, CV_8UC3, cv::Scalar::all(0));  // 40 wide, 20 high
  stored(cv::Rect(0, 0, 8, 8)).setTo(cv::Scalar::all(255));  // marks the stored top-left corner
  write_bytes(path, jpeg_with_exif_orientation(stored, 6));

  // Orientation 6: shown turned a quarter clockwise, so the stored top-left
  // corner is shown at the top right and the picture is 20 wide, 40 high.
  const cv::Mat read = airm::read_image(path);
  ASSERT_EQ(read.size(), cv::Size(20, 40));
  EXPECT_GT(read.at<cv::Vec3b>(2, 17)[0], 200);  // top right: marked
  EXPECT_LT(read.at<cv::Vec3b>(2, 2)[0], 50);    // top left
  EXPECT_LT(read.at<cv::Vec3b>(37, 17)[0], 50);  // bottom right
  EXPECT_EQ(airm::read_image_size(path), cv::Size(20, 40));
}

TEST(ReadImage, JpegExifOrientation1IsLeftAlone) {
  TempDir dir;
  const fs::path path = dir / "upright.jpg";
  cv::Mat stored(20, 40, CV_8UC3, cv::Scalar::all(0));
  stored(cv::Rect(0, 0, 8, 8)).setTo(cv::Scalar::all(255));
  write_bytes(path, jpeg_with_exif_orientation(stored, 1));
  const cv::Mat read = airm::read_image(path);
  ASSERT_EQ(read.size(), cv::Size(40, 20));
  EXPECT_GT(read.at<cv::Vec3b>(2, 2)[0], 200);
  EXPECT_EQ(airm::read_image_size(path), cv::Size(40, 20));
}

TEST(ReadImageSize, PngWithExifChunkAgreesWithDecodedImage) {
  TempDir dir;
  const fs::path path = dir / "exif.png";
  write_bytes(path, png_with_exif_orientation(test_picture({30, 10}), 6));
  // Whether OpenCV honours a PNG eXIf chunk or not, the two must agree.
  EXPECT_EQ(airm::read_image_size(path), airm::read_image(path).size());
}

// ---- Bad files --------------------------------------------------------------

TEST(ReadImageErrors, MissingFile) {
  TempDir dir;
  const fs::path path = dir / "absent.png";
  EXPECT_EQ(error_message([&] { airm::read_image(path); }), path.string() + ": file does not exist");
  EXPECT_EQ(error_message([&] { airm::read_image_size(path); }), path.string() + ": file does not exist");
}

TEST(ReadImageErrors, EmptyFile) {
  TempDir dir;
  const fs::path path = dir / "empty.jpg";
  write_bytes(path, "");
  EXPECT_EQ(error_message([&] { airm::read_image(path); }), path.string() + ": empty file");
  EXPECT_EQ(error_message([&] { airm::read_image_size(path); }), path.string() + ": empty file");
}

TEST(ReadImageErrors, Directory) {
  TempDir dir;
  EXPECT_EQ(error_message([&] { airm::read_image(dir.path()); }),
            dir.path().string() + ": is a directory, not an image file");
}

TEST(ReadImageErrors, TextFileRenamedPng) {
  TempDir dir;
  const fs::path path = dir / "notes.png";
  write_bytes(path, "These are notes, not a picture.\n");
  const std::string expected = path.string() + ": not a readable image (not a JPEG, PNG, TIFF, WebP or BMP file)";
  EXPECT_EQ(error_message([&] { airm::read_image(path); }), expected);
  EXPECT_EQ(error_message([&] { airm::read_image_size(path); }), expected);
}

TEST(ReadImageErrors, TruncatedJpeg) {
  TempDir dir;
  const fs::path whole = dir / "whole.jpg";
  const fs::path path = dir / "half.jpg";
  write_image(whole, test_picture({64, 48}));
  const std::string bytes = read_bytes(whole);
  write_bytes(path, bytes.substr(0, bytes.size() / 2));
  const std::string expected = path.string() + ": truncated (the JPEG data does not end with its end-of-image marker)";
  EXPECT_EQ(error_message([&] { airm::read_image(path); }), expected);
  EXPECT_EQ(error_message([&] { airm::read_image_size(path); }), expected);
}

TEST(ReadImageErrors, TruncatedPng) {
  TempDir dir;
  const fs::path whole = dir / "whole.png";
  const fs::path path = dir / "half.png";
  write_image(whole, test_picture({64, 48}));
  const std::string bytes = read_bytes(whole);
  write_bytes(path, bytes.substr(0, bytes.size() / 2));
  const std::string expected = path.string() + ": truncated (the PNG data has no IEND chunk)";
  EXPECT_EQ(error_message([&] { airm::read_image(path); }), expected);
  EXPECT_EQ(error_message([&] { airm::read_image_size(path); }), expected);
}

TEST(ReadImageErrors, TruncatedTiffWebpBmpFailInTheirDecoders) {
  TempDir dir;
  cv::Mat noisy(48, 64, CV_8UC3);
  cv::randu(noisy, 0, 256);
  for (const auto& [ext, format] : {std::pair{"tif", "TIFF"}, std::pair{"webp", "WebP"}, std::pair{"bmp", "BMP"}}) {
    const fs::path whole = dir / (std::string("whole.") + ext);
    const fs::path path = dir / (std::string("half.") + ext);
    write_image(whole, noisy);
    const std::string bytes = read_bytes(whole);
    write_bytes(path, bytes.substr(0, bytes.size() / 2));
    EXPECT_EQ(error_message([&] { airm::read_image(path); }),
              path.string() + ": not a readable image (the " + format + " decoder failed)");
  }
}

TEST(ReadImageErrors, PngWithoutImageData) {
  TempDir dir;
  const fs::path whole = dir / "whole.png";
  const fs::path path = dir / "headless.png";
  write_image(whole, test_picture({8, 8}));
  const std::string bytes = read_bytes(whole);
  const std::string iend("\0\0\0\0IEND\xAE\x42\x60\x82", 12);
  write_bytes(path, bytes.substr(0, 8 + 8 + 13 + 4) + iend);  // signature, IHDR, IEND: no IDAT
  EXPECT_EQ(error_message([&] { airm::read_image(path); }),
            path.string() + ": not a readable image (the PNG decoder failed)");
}

TEST(ReadImage, JpegWithTrailingPaddingIsComplete) {
  TempDir dir;
  const fs::path whole = dir / "whole.jpg";
  const fs::path path = dir / "padded.jpg";
  write_image(whole, test_picture({16, 16}));
  write_bytes(path, read_bytes(whole) + std::string(5, '\0') + "\r\n ");
  EXPECT_EQ(airm::read_image(path).size(), cv::Size(16, 16));
  EXPECT_EQ(airm::read_image_size(path), cv::Size(16, 16));
}

// ---- Limits: a small file may not ask for gigabytes --------------------------
// A PNG whose IHDR says WIDTH x HEIGHT, 1-bit gray, over one tiny (too short) IDAT: 100k x 100k is a
// 200-byte decompression bomb that would decode to 10 Gpx.
static std::string png_bomb(std::uint32_t width, std::uint32_t height) {
  auto chunk = [](const std::string& type_and_data) {
    return big_endian_32(static_cast<std::uint32_t>(type_and_data.size() - 4)) + type_and_data +
           big_endian_32(png_crc(type_and_data));
  };
  const std::string ihdr = "IHDR" + big_endian_32(width) + big_endian_32(height) + std::string("\x01\0\0\0\0", 5);
  const std::string idat = "IDAT" + std::string("\x78\x9c\x63\0\0\0\x01\0\x01", 9);
  return std::string("\x89PNG\r\n\x1A\n", 8) + chunk(ihdr) + chunk(idat) + chunk("IEND");
}

TEST(ReadImageLimits, DecompressionBombIsRefusedFromItsHeader) {
  TempDir dir;
  const fs::path path = dir / "bomb.png";
  write_bytes(path, png_bomb(100000, 100000));
  const std::string expected = path.string() + ": expected at most 268435456 pixels (a larger image is refused "
                               "before decoding), got 100000x100000 in its header";
  EXPECT_EQ(error_message([&] { airm::read_image(path); }), expected);
  EXPECT_EQ(error_message([&] { airm::read_mask(path); }), expected);
  EXPECT_EQ(error_message([&] { airm::read_label_map(path); }), expected);
  // Sides whose product overflows 64 bits (fuzz_image's first finding: UB in the guard itself).
  write_bytes(path, png_bomb(3974949888u, 3974950124u));
  EXPECT_NE(error_message([&] { airm::read_image(path); }).find("got 3974949888x3974950124 in its header"),
            std::string::npos);
  // A 1 x 100000 strip is small: it reaches the decoder (which finds the data short), not the guard.
  write_bytes(path, png_bomb(1, 100000));
  EXPECT_EQ(error_message([&] { airm::read_image(path); }).find("pixels"), std::string::npos);
}

TEST(ReadImageLimits, BmpAndTiffHeadersAreJudgedToo) {
  TempDir dir;
  auto le32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 24)};
  };
  const fs::path bmp = dir / "huge.bmp";
  // File header, then BITMAPINFOHEADER: 40, width 70000, height -70000 (top-down), 1 plane, 24 bits.
  write_bytes(bmp, "BM" + le32(54 + 16) + le32(0) + le32(54) + le32(40) + le32(70000) + le32(static_cast<std::uint32_t>(-70000)) +
                       std::string("\x01\0\x18\0", 4) + std::string(24, '\0') + std::string(16, '\0'));
  EXPECT_NE(error_message([&] { airm::read_image(bmp); }).find("got 70000x70000 in its header"), std::string::npos);
  const fs::path tiff = dir / "huge.tif";
  // Little-endian TIFF, IFD0 at 8 with ImageWidth (LONG) 65536 and ImageLength (LONG) 65536.
  auto le16 = [](unsigned v) { return std::string{static_cast<char>(v), static_cast<char>(v >> 8)}; };
  write_bytes(tiff, std::string("II*\0", 4) + le32(8) + le16(2) + le16(256) + le16(4) + le32(1) + le32(65536) +
                        le16(257) + le16(4) + le32(1) + le32(65536) + le32(0));
  EXPECT_NE(error_message([&] { airm::read_image(tiff); }).find("got 65536x65536 in its header"), std::string::npos);
}
