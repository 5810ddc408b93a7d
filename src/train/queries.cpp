// Boundary-weighted continuous queries of a training crop ("all" needs no
// sampling: data_loader.cpp uses make_pixel_grid).
#include "queries.hpp"

#include <cmath>
#include <vector>

#include <opencv2/imgproc.hpp>

namespace airm::detail {

cv::Mat boundary_band(const cv::Mat& gt01, const cv::Mat& coarse01, int band) {
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * band + 1, 2 * band + 1));
  cv::Mat a, b, out;
  cv::morphologyEx(gt01, a, cv::MORPH_GRADIENT, kernel);
  cv::morphologyEx(coarse01, b, cv::MORPH_GRADIENT, kernel);
  cv::bitwise_or(a, b, out);
  return out;
}

QuerySet boundary_queries(const cv::Mat& gt01, const cv::Mat& coarse01, int count, double share, int band,
                          Rng& rng) {
  const int H = gt01.rows, W = gt01.cols;
  std::vector<cv::Point> in_band;
  cv::findNonZero(boundary_band(gt01, coarse01, band), in_band);
  const int n_band = in_band.empty() ? 0 : static_cast<int>(std::lround(count * share));

  std::vector<float> coord(static_cast<std::size_t>(count) * 2);
  std::vector<float> target(static_cast<std::size_t>(count));
  for (int k = 0; k < count; ++k) {
    int py, px;
    if (k < n_band) {
      const cv::Point& p = in_band[rng.below(in_band.size())];
      py = p.y;
      px = p.x;
    } else {
      py = static_cast<int>(rng.below(static_cast<std::uint64_t>(H)));
      px = static_cast<int>(rng.below(static_cast<std::uint64_t>(W)));
    }
    // A uniform position inside the pixel, kept 0.5% of a pixel away from its
    // edges so that rounding the float32 coordinate cannot move it to a neighbour.
    const double uy = 0.005 + 0.99 * rng.uniform();
    const double ux = 0.005 + 0.99 * rng.uniform();
    coord[2 * k] = static_cast<float>(-1.0 + 2.0 * (py + uy) / H);
    coord[2 * k + 1] = static_cast<float>(-1.0 + 2.0 * (px + ux) / W);
    target[k] = gt01.at<uchar>(py, px) ? 1.f : 0.f;
  }
  QuerySet q;
  q.coord = torch::from_blob(coord.data(), {count, 2}, torch::kFloat32).clone();
  q.target = torch::from_blob(target.data(), {count}, torch::kFloat32).clone();
  return q;
}

}  // namespace airm::detail
