// Multi-class refinement (one binary refinement per class id, then argmax),
// label-map files, and the boundary overlay.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"
#include "airm/image_io.hpp"
#include "airm/refiner.hpp"
#include "refine_internal.hpp"

namespace airm {
namespace fs = std::filesystem;
namespace {

template <typename T>
std::vector<int> present_ids(const cv::Mat& labels) {
  std::vector<bool> seen(static_cast<size_t>(std::numeric_limits<T>::max()) + 1, false);
  for (int y = 0; y < labels.rows; ++y) {
    const T* row = labels.ptr<T>(y);
    for (int x = 0; x < labels.cols; ++x) seen[row[x]] = true;
  }
  std::vector<int> ids;
  for (size_t id = 1; id < seen.size(); ++id) {
    if (seen[id]) ids.push_back(static_cast<int>(id));
  }
  return ids;
}

// Keeps, per pixel, the largest probability so far and its id (strictly larger: lower ids win ties).
template <typename T>
void keep_best(const cv::Mat& prob, int id, cv::Mat& best_prob, cv::Mat& best_id) {
  for (int y = 0; y < prob.rows; ++y) {
    const float* p = prob.ptr<float>(y);
    float* bp = best_prob.ptr<float>(y);
    T* bi = best_id.ptr<T>(y);
    for (int x = 0; x < prob.cols; ++x) {
      if (p[x] > bp[x]) {
        bp[x] = p[x];
        bi[x] = static_cast<T>(id);
      }
    }
  }
}

std::uint32_t big_endian_32(const unsigned char* b) {
  return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
}

// The PLTE colours (0xRRGGBB, index order) of a palette PNG; empty for any other file.
std::vector<std::uint32_t> png_palette(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char head[33];
  if (!in.read(reinterpret_cast<char*>(head), sizeof head)) return {};
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (!std::equal(kSignature, kSignature + 8, head) || head[25] != 3) return {};  // colour type 3: palette
  in.seekg(8);
  unsigned char chunk[8];
  while (in.read(reinterpret_cast<char*>(chunk), sizeof chunk)) {
    const std::uint32_t length = big_endian_32(chunk);
    const std::string type(reinterpret_cast<const char*>(chunk + 4), 4);
    if (type == "IDAT" || type == "IEND") break;
    if (type != "PLTE") {
      in.seekg(static_cast<std::streamoff>(length) + 4, std::ios::cur);
      continue;
    }
    if (length == 0 || length % 3 != 0 || length > 768) break;
    std::vector<unsigned char> rgb(length);
    if (!in.read(reinterpret_cast<char*>(rgb.data()), length)) break;
    std::vector<std::uint32_t> colours;
    for (size_t i = 0; i < length; i += 3) colours.push_back(std::uint32_t{rgb[i]} << 16 | rgb[i + 1] << 8 | rgb[i + 2]);
    return colours;
  }
  throw Error(path.string(), "not a readable label map (palette PNG without a valid PLTE chunk)");
}

cv::Mat boundary_of(const cv::Mat& mask, cv::Size size, bool labels, int thickness) {
  cv::Mat values;
  if (labels) {
    values = mask.size() == size ? mask : cv::Mat();
    if (values.empty()) cv::resize(mask, values, size, 0, 0, cv::INTER_NEAREST);
  } else {
    const cv::Mat binary = mask.type() == CV_32FC1 ? mask > 0.5 : mask > 127;
    if (binary.size() == size) {
      values = binary;
    } else {
      cv::resize(binary, values, size, 0, 0, cv::INTER_NEAREST);
    }
  }
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_RECT, {2 * thickness + 1, 2 * thickness + 1});
  cv::Mat dilated, eroded;
  cv::dilate(values, dilated, kernel);
  cv::erode(values, eroded, kernel);
  return dilated != eroded;
}

}  // namespace

cv::Mat Refiner::refine_labels(const cv::Mat& image, const cv::Mat& labels, const RefineOptions& options,
                               RefineStats* stats) const {
  if (labels.empty() || (labels.type() != CV_8UC1 && labels.type() != CV_16UC1)) {
    throw Error("", "refine_labels: expected a CV_8UC1 or CV_16UC1 label map, got " +
                        (labels.empty() ? std::string("an empty one") : "OpenCV type " + std::to_string(labels.type())));
  }
  options.validate();
  if (image.empty()) throw Error("", "refine_labels: the image is empty");
  refine_detail::check_same_aspect(labels.size(), image.size(), "label map");
  const cv::Size output = options.output_size.empty() ? image.size() : options.output_size;
  const bool wide = labels.type() == CV_16UC1;
  const std::vector<int> ids = wide ? present_ids<std::uint16_t>(labels) : present_ids<std::uint8_t>(labels);

  cv::Mat best_prob(output, CV_32FC1, cv::Scalar(0.5f));  // background wins unless a class exceeds 0.5
  cv::Mat best_id(output, labels.type(), cv::Scalar(0));
  RefineStats total;
  for (const int id : ids) {
    RefineStats one;
    const cv::Mat prob = refine(image, labels == id, options, &one);
    if (wide) {
      keep_best<std::uint16_t>(prob, id, best_prob, best_id);
    } else {
      keep_best<std::uint8_t>(prob, id, best_prob, best_id);
    }
    total.queries += one.queries;
    total.seconds += one.seconds;
    total.stages.insert(total.stages.end(), one.stages.begin(), one.stages.end());
  }
  if (stats != nullptr) *stats = std::move(total);
  return best_id;
}

cv::Mat read_label_map(const fs::path& path) {
  const std::vector<std::uint32_t> palette = png_palette(path);
  if (!palette.empty()) {
    const cv::Mat bgr = decode_image_file(path, cv::IMREAD_COLOR);
    std::unordered_map<std::uint32_t, int> index;
    for (size_t i = 0; i < palette.size(); ++i) index.emplace(palette[i], static_cast<int>(i));
    cv::Mat ids(bgr.size(), CV_8UC1);
    for (int y = 0; y < bgr.rows; ++y) {
      const cv::Vec3b* in = bgr.ptr<cv::Vec3b>(y);
      unsigned char* out = ids.ptr<unsigned char>(y);
      for (int x = 0; x < bgr.cols; ++x) {
        const auto found = index.find(std::uint32_t{in[x][2]} << 16 | std::uint32_t{in[x][1]} << 8 | in[x][0]);
        if (found == index.end()) throw Error(path.string(), "not a readable label map (colour not in the palette)");
        out[x] = static_cast<unsigned char>(found->second);
      }
    }
    return ids;
  }
  cv::Mat raw = decode_image_file(path, cv::IMREAD_UNCHANGED);
  if (raw.depth() != CV_8U && raw.depth() != CV_16U) {
    throw Error(path.string(), "an 8- or 16-bit label map", "OpenCV depth " + std::to_string(raw.depth()));
  }
  if (raw.channels() == 1) return raw;
  // A gray label map stored as colour: every channel must agree.
  std::vector<cv::Mat> channels;
  cv::split(raw, channels);
  for (int c = 1; c < std::min(3, raw.channels()); ++c) {
    if (cv::countNonZero(channels[c] != channels[0]) != 0) {
      throw Error(path.string(), "a single-channel (or palette) label map of class ids", "a colour image");
    }
  }
  return channels[0];
}

void write_label_map(const fs::path& path, const cv::Mat& labels) {
  if (labels.empty() || (labels.type() != CV_8UC1 && labels.type() != CV_16UC1)) {
    throw Error(path.string(), "cannot write a label map that is not CV_8UC1 or CV_16UC1");
  }
  write_atomically(path, [&](const fs::path& tmp) {
    if (!cv::imwrite(tmp.string(), labels)) throw Error(path.string(), "could not be written");
  });
}

cv::Mat draw_boundaries(const cv::Mat& image, const cv::Mat& before, const cv::Mat& after, bool labels) {
  const cv::Size size = after.size();
  cv::Mat canvas;
  if (image.channels() == 1) {
    cv::cvtColor(image, canvas, cv::COLOR_GRAY2BGR);
  } else if (image.channels() == 4) {
    cv::cvtColor(image, canvas, cv::COLOR_BGRA2BGR);
  } else {
    canvas = image.clone();
  }
  canvas = refine_detail::resize_to(canvas, size).clone();
  const int thickness = std::max(1, std::max(size.width, size.height) / 1500);
  canvas.setTo(cv::Scalar(0, 0, 255), boundary_of(before, size, labels, thickness));  // old: red
  canvas.setTo(cv::Scalar(0, 255, 0), boundary_of(after, size, labels, thickness));   // new: green
  return canvas;
}

}  // namespace airm
