// Internal: the "boundary" queries of one training crop and their targets
// (stage 7 of include/airm/train/data_loader.hpp).
#pragma once

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "../random.hpp"

namespace airm::detail {

struct QuerySet {
  torch::Tensor coord;   // [Q,2] float32, (y, x) in (-1, 1)
  torch::Tensor target;  // [Q] float32 0/1
};

// Pixels within `band` px of the boundary of gt01 or of coarse01: the union of
// their morphological gradients with an elliptical (2 band + 1)^2 kernel. CV_8UC1 0/1.
cv::Mat boundary_band(const cv::Mat& gt01, const cv::Mat& coarse01, int band);

// `count` queries, round(count * share) in boundary_band(...) (none if the band
// is empty), the rest uniform over the image; continuous positions, target =
// gt01 at the pixel containing the query.
QuerySet boundary_queries(const cv::Mat& gt01, const cv::Mat& coarse01, int count, double share, int band, Rng& rng);

}  // namespace airm::detail
