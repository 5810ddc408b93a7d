// Internal: one training sample's crop, augmentation and coarse mask (stages
// 1-6 of include/airm/train/data_loader.hpp).
#pragma once

#include <cstddef>
#include <vector>

#include <opencv2/core.hpp>

#include "../random.hpp"
#include "airm/dataset.hpp"
#include "airm/train/data_loader.hpp"

namespace airm::detail {

// An image as CV_8UC3 BGR and its ground truth as CV_8UC1 0/1 of the same size.
struct LoadedSample {
  cv::Mat bgr;
  cv::Mat gt;
  cv::Mat coarse;  // CV_8UC1 0/1 stored coarse mask, or empty when not used
};

// read_image + read_mask_u8 (> 127), the mask fitted to the image's size.
LoadedSample load_sample(const Sample& sample);

// One augmented crop: rgb CV_32FC3 in [0,1] (RGB order), gt CV_8UC1 0/1, coarse CV_8UC1 0..255 (0/255
// unless DataOptions::soft_share keeps a low-res mask soft), all crop x crop.
struct Crop {
  cv::Mat rgb;
  cv::Mat gt;
  cv::Mat coarse;
};

// Stages 1-6 for samples[index]; every random draw comes from `rng`.
Crop make_crop(const std::vector<Sample>& samples, std::size_t index, const DataOptions& options, Rng rng);

// Brightness, contrast, saturation and hue jitter of an RGB CV_32FC3 image in
// [0,1] (in place), in an order drawn from `rng`.
void colour_jitter(cv::Mat& rgb, double strength, Rng& rng);

}  // namespace airm::detail
