// Masks: gray, 16-bit, palette (built by hand) and RGB inputs; binary and
// probability modes; atomic 8-bit PNG output; fitting to the image size.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <zlib.h>

#include "airm/error.hpp"
#include "airm/mask_io.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using airm::MaskMode;
using airm::test::read_bytes;
using airm::test::TempDir;
using airm::test::write_bytes;

namespace {

using airm::test::error_message;

std::string big_endian_32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string png_chunk(const std::string& type, const std::string& data) {
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(type.data()), static_cast<uInt>(type.size()));
  crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size()));
  return big_endian_32(static_cast<std::uint32_t>(data.size())) + type + data +
         big_endian_32(static_cast<std::uint32_t>(crc));
}

using Rgb = std::array<std::uint8_t, 3>;

// An 8-bit palette PNG (colour type 3): `indices` row by row, `width` wide.
// `alphas`, if any, become a tRNS chunk.
std::string palette_png(int width, const std::vector<Rgb>& palette, const std::vector<std::uint8_t>& indices,
                        const std::vector<std::uint8_t>& alphas = {}) {
  const int height = static_cast<int>(indices.size()) / width;
  const std::string ihdr = big_endian_32(static_cast<std::uint32_t>(width)) +
                           big_endian_32(static_cast<std::uint32_t>(height)) +
                           std::string("\x08\x03\0\0\0", 5);  // depth 8, palette, deflate, no filter, no interlace
  std::string plte;
  for (const Rgb& colour : palette) plte += std::string(colour.begin(), colour.end());

  std::string rows;
  for (int y = 0; y < height; ++y) {
    rows += '\0';  // filter type: none
    rows += std::string(indices.begin() + y * width, indices.begin() + (y + 1) * width);
  }
  uLongf compressed_size = compressBound(static_cast<uLong>(rows.size()));
  std::string idat(compressed_size, '\0');
  EXPECT_EQ(compress(reinterpret_cast<Bytef*>(idat.data()), &compressed_size,
                     reinterpret_cast<const Bytef*>(rows.data()), static_cast<uLong>(rows.size())),
            Z_OK);
  idat.resize(compressed_size);

  std::string png = std::string("\x89PNG\r\n\x1A\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("PLTE", plte);
  if (!alphas.empty()) png += png_chunk("tRNS", std::string(alphas.begin(), alphas.end()));
  return png + png_chunk("IDAT", idat) + png_chunk("IEND", "");
}

cv::Mat row_of(std::initializer_list<float> values) {
  cv::Mat row(1, static_cast<int>(values.size()), CV_32FC1);
  int x = 0;
  for (float v : values) row.at<float>(0, x++) = v;
  return row;
}

cv::Mat u8_row_of(std::initializer_list<int> values) {
  cv::Mat row(1, static_cast<int>(values.size()), CV_8UC1);
  int x = 0;
  for (int v : values) row.at<uchar>(0, x++) = static_cast<uchar>(v);
  return row;
}

void expect_row(const cv::Mat& mask, std::initializer_list<float> expected, float tolerance = 1e-6f) {
  ASSERT_EQ(mask.type(), CV_32FC1);
  ASSERT_EQ(mask.total(), expected.size());
  int i = 0;
  for (float v : expected) {
    EXPECT_NEAR(mask.at<float>(i / mask.cols, i % mask.cols), v, tolerance) << "at index " << i;
    ++i;
  }
}

void write_image(const fs::path& path, const cv::Mat& image) { ASSERT_TRUE(cv::imwrite(path.string(), image)); }

// Palette whose index 1 is a dark red (luminance ~30) and index 0 a light gray
// (luminance 200): thresholding by luminance would get both wrong. Index 3
// repeats index 0's colour, so its pixels read as index 0.
const std::vector<Rgb> kTrickyPalette = {{200, 200, 200}, {100, 0, 0}, {0, 0, 0}, {200, 200, 200}};
const std::vector<std::uint8_t> kTrickyIndices = {0, 1, 2, 3, 1, 0, 2, 3};  // 4 wide, 2 high

}  // namespace

// ---- Reading -----------------------------------------------------------------

TEST(ReadMask, EightBitGrayBinarisedAboveHalf) {
  TempDir dir;
  const fs::path path = dir / "gray.png";
  write_image(path, u8_row_of({0, 127, 128, 255}));
  expect_row(airm::read_mask(path), {0, 0, 1, 1});
  expect_row(airm::read_mask(path, MaskMode::binary), {0, 0, 1, 1});
  EXPECT_EQ(airm::test::count_differences(airm::read_mask_u8(path), u8_row_of({0, 127, 128, 255})), 0);
}

TEST(ReadMask, ProbabilityKeepsValuesInZeroToOne) {
  TempDir dir;
  const fs::path path = dir / "soft.png";
  write_image(path, u8_row_of({0, 51, 128, 255}));
  expect_row(airm::read_mask(path, MaskMode::probability), {0.0f, 0.2f, 128.0f / 255.0f, 1.0f});
}

TEST(ReadMask, SixteenBitThresholdBetween32767And32768) {
  TempDir dir;
  const fs::path path = dir / "deep.png";
  cv::Mat deep(1, 4, CV_16UC1);
  deep.at<std::uint16_t>(0, 0) = 0;
  deep.at<std::uint16_t>(0, 1) = 32767;
  deep.at<std::uint16_t>(0, 2) = 32768;
  deep.at<std::uint16_t>(0, 3) = 65535;
  write_image(path, deep);
  expect_row(airm::read_mask(path), {0, 0, 1, 1});
  expect_row(airm::read_mask(path, MaskMode::probability), {0.0f, 32767.0f / 65535.0f, 32768.0f / 65535.0f, 1.0f});
  EXPECT_EQ(airm::test::count_differences(airm::read_mask_u8(path), u8_row_of({0, 127, 128, 255})), 0);
}

TEST(ReadMask, PaletteForegroundIsIndexAboveZeroNotLuminance) {
  TempDir dir;
  const fs::path path = dir / "palette.png";
  write_bytes(path, palette_png(4, kTrickyPalette, kTrickyIndices));
  const cv::Mat mask = airm::read_mask(path);
  ASSERT_EQ(mask.size(), cv::Size(4, 2));
  expect_row(mask, {0, 1, 1, 0, 1, 0, 1, 0});
  // Palette masks are binary even when probabilities are asked for.
  expect_row(airm::read_mask(path, MaskMode::probability), {0, 1, 1, 0, 1, 0, 1, 0});
  const cv::Mat levels = airm::read_mask_u8(path);
  ASSERT_EQ(levels.type(), CV_8UC1);
  EXPECT_EQ(levels.at<uchar>(0, 1), 255);
  EXPECT_EQ(levels.at<uchar>(0, 0), 0);
}

TEST(ReadMask, PaletteWithTransparencyChunk) {
  TempDir dir;
  const fs::path path = dir / "palette_trns.png";
  write_bytes(path, palette_png(4, kTrickyPalette, kTrickyIndices, {0, 255, 128, 0}));
  expect_row(airm::read_mask(path), {0, 1, 1, 0, 1, 0, 1, 0});
}

TEST(ReadMask, RgbMaskUsesLuminance) {
  TempDir dir;
  const fs::path path = dir / "rgb.png";
  cv::Mat bgr(1, 4, CV_8UC3);
  bgr.at<cv::Vec3b>(0, 0) = cv::Vec3b(0, 0, 0);
  bgr.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 255, 255);
  bgr.at<cv::Vec3b>(0, 2) = cv::Vec3b(0, 0, 255);  // pure red: luminance 76
  bgr.at<cv::Vec3b>(0, 3) = cv::Vec3b(0, 255, 0);  // pure green: luminance 150
  write_image(path, bgr);
  expect_row(airm::read_mask(path), {0, 1, 0, 1});

  const fs::path rgba_path = dir / "rgba.png";
  cv::Mat bgra(1, 2, CV_8UC4, cv::Scalar(255, 255, 255, 0));
  bgra.at<cv::Vec4b>(0, 0) = cv::Vec4b(0, 0, 0, 255);
  write_image(rgba_path, bgra);
  expect_row(airm::read_mask(rgba_path), {0, 1});
}

TEST(ReadMask, TinyAndOddSizes) {
  TempDir dir;
  for (const cv::Size size : {cv::Size(1, 1), cv::Size(7, 5)}) {
    const fs::path path = dir / "small.png";
    write_image(path, cv::Mat(size, CV_8UC1, cv::Scalar(255)));
    const cv::Mat mask = airm::read_mask(path);
    EXPECT_EQ(mask.size(), size);
    EXPECT_EQ(cv::countNonZero(mask), size.area());
  }
}

// ---- Bad files ---------------------------------------------------------------

TEST(ReadMaskErrors, MissingFile) {
  TempDir dir;
  const fs::path path = dir / "absent.png";
  EXPECT_EQ(error_message([&] { airm::read_mask(path); }), path.string() + ": file does not exist");
  EXPECT_EQ(error_message([&] { airm::read_mask_u8(path); }), path.string() + ": file does not exist");
}

TEST(ReadMaskErrors, EmptyFile) {
  TempDir dir;
  const fs::path path = dir / "empty.png";
  write_bytes(path, "");
  EXPECT_EQ(error_message([&] { airm::read_mask(path); }), path.string() + ": empty file");
}

TEST(ReadMaskErrors, NonFiniteFloatMask) {
  TempDir dir;
  const fs::path path = dir / "nan.tiff";
  cv::Mat mask(6, 9, CV_32FC1, cv::Scalar(0.25));
  mask.at<float>(4, 7) = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(cv::imwrite(path.string(), mask));
  const std::string expected = path.string() + ": expected finite mask values (a float mask holds [0, 1]), got NaN "
                                               "or infinity at (7, 4)";
  EXPECT_EQ(error_message([&] { airm::read_mask(path, airm::MaskMode::probability); }), expected);
  mask.at<float>(4, 7) = std::numeric_limits<float>::infinity();
  ASSERT_TRUE(cv::imwrite(path.string(), mask));
  EXPECT_EQ(error_message([&] { airm::read_mask_u8(path); }), expected);
}

TEST(ReadMaskErrors, TextFileRenamedPng) {
  TempDir dir;
  const fs::path path = dir / "notes.png";
  write_bytes(path, "label,x,y\n1,2,3\n");
  EXPECT_EQ(error_message([&] { airm::read_mask(path); }),
            path.string() + ": not a readable image (not a JPEG, PNG, TIFF, WebP or BMP file)");
}

TEST(ReadMaskErrors, TruncatedPngAndPalettePng) {
  TempDir dir;
  const fs::path whole = dir / "whole.png";
  cv::Mat noisy(40, 40, CV_8UC1);
  cv::randu(noisy, 0, 256);
  write_image(whole, noisy);
  const std::string bytes = read_bytes(whole);
  const std::string palette_bytes = palette_png(4, kTrickyPalette, kTrickyIndices);
  const std::string expected_problem = ": truncated (the PNG data has no IEND chunk)";
  for (const auto& [name, full] : {std::pair{"half.png", bytes}, std::pair{"half_palette.png", palette_bytes}}) {
    const fs::path path = dir / name;
    write_bytes(path, full.substr(0, full.size() / 2));
    EXPECT_EQ(error_message([&] { airm::read_mask(path); }), path.string() + expected_problem);
  }
}

TEST(ReadMaskErrors, TruncatedJpeg) {
  TempDir dir;
  const fs::path whole = dir / "whole.jpg";
  const fs::path path = dir / "half.jpg";
  cv::Mat noisy(40, 40, CV_8UC1);
  cv::randu(noisy, 0, 256);
  write_image(whole, noisy);
  const std::string bytes = read_bytes(whole);
  write_bytes(path, bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(error_message([&] { airm::read_mask(path); }),
            path.string() + ": truncated (the JPEG data does not end with its end-of-image marker)");
}

// ---- Writing -----------------------------------------------------------------

TEST(WriteMask, BinaryWritesZeroOr255AndLeavesNoTemporary) {
  TempDir dir;
  const fs::path path = dir / "out.png";
  airm::write_mask(path, row_of({0.0f, 0.5f, 0.51f, 1.0f}));
  const cv::Mat written = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(written.type(), CV_8UC1);
  EXPECT_EQ(airm::test::count_differences(written, u8_row_of({0, 0, 255, 255})), 0);
  EXPECT_EQ(read_bytes(path).substr(0, 8), std::string("\x89PNG\r\n\x1A\n", 8));
  std::vector<fs::path> left;
  for (const auto& entry : fs::directory_iterator(dir.path())) left.push_back(entry.path());
  EXPECT_EQ(left, std::vector<fs::path>{path});
}

TEST(WriteMask, ProbabilityWritesRoundedLevels) {
  TempDir dir;
  const fs::path path = dir / "soft.png";
  airm::write_mask(path, row_of({0.0f, 0.2f, 0.4f, 1.0f}), MaskMode::probability);
  const cv::Mat written = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(written.type(), CV_8UC1);
  EXPECT_EQ(airm::test::count_differences(written, u8_row_of({0, 51, 102, 255})), 0);
  expect_row(airm::read_mask(path, MaskMode::probability), {0.0f, 0.2f, 0.4f, 1.0f});
}

TEST(WriteMask, EightBitInputInBothModes) {
  TempDir dir;
  airm::write_mask(dir / "binary.png", u8_row_of({0, 127, 128, 255}));
  airm::write_mask(dir / "levels.png", u8_row_of({0, 127, 128, 255}), MaskMode::probability);
  EXPECT_EQ(airm::test::count_differences(cv::imread((dir / "binary.png").string(), cv::IMREAD_UNCHANGED),
                                          u8_row_of({0, 0, 255, 255})),
            0);
  EXPECT_EQ(airm::test::count_differences(cv::imread((dir / "levels.png").string(), cv::IMREAD_UNCHANGED),
                                          u8_row_of({0, 127, 128, 255})),
            0);
}

TEST(WriteMask, RejectsOtherTypesAndMissingDirectory) {
  TempDir dir;
  const fs::path path = dir / "out.png";
  EXPECT_EQ(error_message([&] { airm::write_mask(path, cv::Mat(2, 2, CV_8UC3, cv::Scalar::all(0))); }),
            path.string() + ": expected a CV_32FC1 or CV_8UC1 mask, got OpenCV type " + std::to_string(CV_8UC3));
  EXPECT_EQ(error_message([&] { airm::write_mask(path, cv::Mat()); }), path.string() + ": cannot write an empty mask");
  const fs::path nowhere = dir / "no_such_dir" / "out.png";
  EXPECT_EQ(error_message([&] { airm::write_mask(nowhere, row_of({1.0f})); }),
            nowhere.string() + ": its directory does not exist");
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// ---- Fitting to the image ------------------------------------------------------

TEST(FitMaskTo, SameSizeIsReturnedUnchanged) {
  const cv::Mat mask = row_of({0.0f, 1.0f});
  testing::internal::CaptureStderr();
  const cv::Mat fitted = airm::fit_mask_to(mask, {2, 1}, "m.png");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(fitted.data, mask.data);
}

TEST(FitMaskTo, HalfSizeMaskIsResizedBilinearlyWithNote) {
  const cv::Mat mask = row_of({0.0f, 1.0f});  // 2x1 for a 4x2 image
  testing::internal::CaptureStderr();
  const cv::Mat fitted = airm::fit_mask_to(mask, {4, 2}, "dir/m.png");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "note: dir/m.png: mask 2x1 resized to image 4x2\n");
  ASSERT_EQ(fitted.size(), cv::Size(4, 2));
  expect_row(fitted, {0.0f, 0.25f, 0.75f, 1.0f, 0.0f, 0.25f, 0.75f, 1.0f});
}

TEST(FitMaskTo, AspectWithinOnePercentIsResized) {
  const cv::Mat mask(50, 101, CV_32FC1, cv::Scalar(1.0f));  // 2.02 against 2.00: exactly 1% off
  testing::internal::CaptureStderr();
  const cv::Mat fitted = airm::fit_mask_to(mask, {200, 100}, "m.png");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "note: m.png: mask 101x50 resized to image 200x100\n");
  EXPECT_EQ(fitted.size(), cv::Size(200, 100));
  EXPECT_EQ(cv::countNonZero(fitted), 200 * 100);
}

TEST(FitMaskTo, AspectOffByFivePercentIsAnError) {
  const cv::Mat mask(100, 105, CV_32FC1, cv::Scalar(0.0f));
  EXPECT_EQ(error_message([&] { airm::fit_mask_to(mask, {200, 200}, "m.png"); }),
            "m.png: expected a mask with the aspect ratio of its image 200x200, got 105x100");
  EXPECT_EQ(error_message([&] { airm::fit_mask_to(cv::Mat(100, 100, CV_8UC1), {640, 480}, "m.png"); }),
            "m.png: expected a mask with the aspect ratio of its image 640x480, got 100x100");
}
