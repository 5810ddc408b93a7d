// The Python module `airm._airm` (pybind11): Refiner, Segmenter, metrics, and
// airm.Error. Arrays are checked here (dtype, shape, contiguity) and copied
// into OpenCV matrices; results are new NumPy arrays that own their memory.
// The GIL is released while a network runs. python/airm/__init__.py adds the
// default model paths; python/airm/__init__.pyi documents the signatures.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "airm/error.hpp"
#include "airm/metrics.hpp"
#include "airm/model/segmenter.hpp"
#include "airm/model/segmenter_weights.hpp"
#include "airm/refiner.hpp"

namespace py = pybind11;

namespace {

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

[[noreturn]] void bad(const std::string& what, const std::string& expected, const py::array& a) {
  throw py::value_error(what + ": expected " + expected + ", got an array of dtype " + dtype_of(a) + " and shape " +
                        shape_of(a));
}

void require_contiguous(const std::string& what, const py::array& a) {
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(what + ": expected a C-contiguous array (numpy.ascontiguousarray), got strides that are not");
  }
}

// HxWx3 (BGR, or RGB with order="rgb"), HxWx4 or HxW uint8 -> CV_8UC3 BGR copy.
cv::Mat image_from(const py::array& a, const std::string& order) {
  const std::string what = "image";
  if (order != "bgr" && order != "rgb") throw py::value_error("order: expected \"bgr\" or \"rgb\", got \"" + order + "\"");
  if (!py::isinstance<py::array_t<std::uint8_t>>(a) || a.dtype().kind() != 'u' || a.itemsize() != 1) {
    bad(what, "uint8 of shape (H, W, 3), (H, W, 4) or (H, W)", a);
  }
  const bool gray = a.ndim() == 2;
  if (!(gray || (a.ndim() == 3 && (a.shape(2) == 3 || a.shape(2) == 4)))) {
    bad(what, "uint8 of shape (H, W, 3), (H, W, 4) or (H, W)", a);
  }
  if (a.shape(0) < 1 || a.shape(1) < 1) bad(what, "at least one pixel", a);
  require_contiguous(what, a);
  const int rows = static_cast<int>(a.shape(0)), cols = static_cast<int>(a.shape(1));
  const int channels = gray ? 1 : static_cast<int>(a.shape(2));
  const cv::Mat view(rows, cols, CV_8UC(channels), const_cast<void*>(a.data()));
  cv::Mat out;
  if (channels == 4) {
    cv::cvtColor(view, out, order == "rgb" ? cv::COLOR_RGBA2BGR : cv::COLOR_BGRA2BGR);
  } else if (channels == 3 && order == "rgb") {
    cv::cvtColor(view, out, cv::COLOR_RGB2BGR);
  } else {
    out = view.clone();  // BGR, or gray (the library converts it)
  }
  return out;
}

// HxW uint8 (0..255) or float32/float64 in [0, 1] -> CV_32FC1 in [0, 1]
// (uint8 divided by 255, as `airm refine` reads a coarse PNG).
cv::Mat probability_from(const std::string& what, const py::array& a) {
  if (a.ndim() != 2) bad(what, "a 2-D array (H, W) of uint8 or float", a);
  if (a.shape(0) < 1 || a.shape(1) < 1) bad(what, "at least one pixel", a);
  require_contiguous(what, a);
  const int rows = static_cast<int>(a.shape(0)), cols = static_cast<int>(a.shape(1));
  const char kind = a.dtype().kind();
  cv::Mat out;
  if (kind == 'u' && a.itemsize() == 1) {
    cv::Mat(rows, cols, CV_8UC1, const_cast<void*>(a.data())).convertTo(out, CV_32F, 1.0 / 255.0);
  } else if (kind == 'b') {
    cv::Mat(rows, cols, CV_8UC1, const_cast<void*>(a.data())).convertTo(out, CV_32F);
  } else if (kind == 'f' && a.itemsize() == 4) {
    out = cv::Mat(rows, cols, CV_32FC1, const_cast<void*>(a.data())).clone();
  } else if (kind == 'f' && a.itemsize() == 8) {
    cv::Mat(rows, cols, CV_64FC1, const_cast<void*>(a.data())).convertTo(out, CV_32F);
  } else {
    bad(what, "uint8 (0..255), bool, float32 or float64 ([0, 1])", a);
  }
  if (kind == 'f' && cv::checkRange(out, true, nullptr, 0.0, 1.0 + 1e-6) == false) {
    throw py::value_error(what + ": expected values in [0, 1] (and no NaN), got others");
  }
  return out;
}

// A binary mask for the metrics: uint8 (> 127), bool, or float (> 0.5) -> CV_8UC1 0/255.
cv::Mat binary_from(const std::string& what, const py::array& a) {
  if (a.ndim() != 2) bad(what, "a 2-D array (H, W) of uint8, bool or float", a);
  require_contiguous(what, a);
  const int rows = static_cast<int>(a.shape(0)), cols = static_cast<int>(a.shape(1));
  const char kind = a.dtype().kind();
  cv::Mat out;
  if (kind == 'u' && a.itemsize() == 1) {
    out = cv::Mat(rows, cols, CV_8UC1, const_cast<void*>(a.data())).clone();
  } else if (kind == 'b') {
    out = cv::Mat(rows, cols, CV_8UC1, const_cast<void*>(a.data())) * 255;
  } else if (kind == 'f') {
    const cv::Mat p = probability_from(what, a);
    cv::compare(p, 0.5, out, cv::CMP_GT);
  } else {
    bad(what, "uint8 (> 127 is foreground), bool or float (> 0.5)", a);
  }
  return out;
}

// A label map: HxW uint8 or uint16 class ids.
cv::Mat labels_from(const py::array& a) {
  const std::string what = "labels";
  if (a.ndim() != 2 || a.dtype().kind() != 'u' || (a.itemsize() != 1 && a.itemsize() != 2)) {
    bad(what, "a 2-D array (H, W) of uint8 or uint16 class ids", a);
  }
  require_contiguous(what, a);
  return cv::Mat(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), a.itemsize() == 1 ? CV_8UC1 : CV_16UC1,
                 const_cast<void*>(a.data()))
      .clone();
}

// A new NumPy array holding a copy of a single-channel matrix.
py::array to_numpy(const cv::Mat& m) {
  const cv::Mat c = m.isContinuous() ? m : m.clone();
  py::array out;
  switch (c.type()) {
    case CV_32FC1: out = py::array_t<float>({c.rows, c.cols}); break;
    case CV_8UC1: out = py::array_t<std::uint8_t>({c.rows, c.cols}); break;
    case CV_16UC1: out = py::array_t<std::uint16_t>({c.rows, c.cols}); break;
    default: throw airm::Error("", "internal: unexpected result type " + std::to_string(c.type()));
  }
  std::memcpy(out.mutable_data(), c.data, c.total() * c.elemSize());
  return out;
}

airm::RefineOptions refine_options(const std::optional<std::vector<double>>& scales, bool dense, bool bf16,
                                   int first_long_side, int max_encoder_side, int tile_size,
                                   const std::optional<std::pair<int, int>>& output_size, double close_mask_px) {
  airm::RefineOptions o;
  o.close_mask_px = close_mask_px;
  if (scales) o.scales = *scales;
  o.dense = dense;
  o.bf16 = bf16;
  o.first_long_side = first_long_side;
  o.max_encoder_side = max_encoder_side;
  o.tile_size = tile_size;
  if (output_size) o.output_size = cv::Size(output_size->first, output_size->second);
  return o;
}

struct PySegmenter {
  explicit PySegmenter(const std::string& weights, const std::string& device) : net(airm::load_segmenter_weights(weights)) {
    try {
      net->to(torch::Device(device));
    } catch (const c10::Error&) {
      throw py::value_error("device: expected cpu, cuda or cuda:N, got \"" + device + "\"");
    }
  }
  // The mask (uint8 0/255) or, with probabilities, float32 in [0, 1].
  py::array segment(const py::array& image, const std::string& order, bool probabilities, int long_side) {
    const cv::Mat bgr = image_from(image, order);
    cv::Mat out;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex);  // forward() changes module state (eval mode): one call at a time
      out = probabilities ? airm::segment(net, bgr, long_side) : airm::segment_mask(net, bgr, long_side);
    }
    return to_numpy(out);
  }
  airm::SegmenterNet net{nullptr};
  std::mutex mutex;
};

struct PyRefiner {
  PyRefiner(const std::string& weights, const std::string& device, int threads)
      : refiner(weights, airm::RefinerOptions{device, threads}) {}
  airm::Refiner refiner;
};

}  // namespace

PYBIND11_MODULE(_airm, m) {
  const airm::RefineOptions defaults;  // the library's defaults are the module's
  m.doc() = "airm: refine coarse segmentation masks of (ultra-)high-resolution photos (AIRM, ECCV 2024).";
  py::register_exception<airm::Error>(m, "Error", PyExc_RuntimeError);

  py::class_<PySegmenter>(m, "Segmenter", "The coarse segmenter (photo to foreground mask).")
      .def(py::init<const std::string&, const std::string&>(), py::arg("weights"), py::arg("device") = "cpu")
      .def("segment", &PySegmenter::segment, py::arg("image"), py::kw_only(), py::arg("order") = "bgr",
           py::arg("probabilities") = false, py::arg("long_side") = 0,
           "Foreground of an image: uint8 0/255 mask (H, W), or float32 probabilities with probabilities=True.");

  py::class_<PyRefiner>(m, "Refiner", "The AIRM refiner, coarse to fine at any resolution.")
      .def(py::init<const std::string&, const std::string&, int>(), py::arg("weights"), py::arg("device") = "cpu",
           py::arg("threads") = 0)
      .def(
          "refine",
          [](const PyRefiner& self, const py::array& image, const py::array& coarse, const std::string& order,
             const std::optional<std::vector<double>>& scales, bool dense, bool bf16, int first_long_side,
             int max_encoder_side, int tile_size, const std::optional<std::pair<int, int>>& output_size,
             double close_mask_px) {
            const cv::Mat bgr = image_from(image, order);
            const cv::Mat mask = probability_from("coarse", coarse);
            const airm::RefineOptions options =
                refine_options(scales, dense, bf16, first_long_side, max_encoder_side, tile_size, output_size,
                               close_mask_px);
            cv::Mat out;
            {
              py::gil_scoped_release release;
              out = self.refiner.refine(bgr, mask, options);
            }
            return to_numpy(out);
          },
          py::arg("image"), py::arg("coarse"), py::kw_only(), py::arg("order") = "bgr", py::arg("scales") = py::none(),
          py::arg("dense") = defaults.dense, py::arg("bf16") = defaults.bf16,
          py::arg("first_long_side") = defaults.first_long_side, py::arg("max_encoder_side") = defaults.max_encoder_side,
          py::arg("tile_size") = defaults.tile_size, py::arg("output_size") = py::none(),
          py::arg("close_mask_px") = defaults.close_mask_px,
          "Refined foreground probabilities, float32 (H, W) (or output_size=(W, H)).")
      .def(
          "refine_labels",
          [defaults](const PyRefiner& self, const py::array& image, const py::array& labels, const std::string& order,
             const std::optional<std::vector<double>>& scales, bool dense, bool bf16) {
            const cv::Mat bgr = image_from(image, order);
            const cv::Mat ids = labels_from(labels);
            const airm::RefineOptions options = refine_options(scales, dense, bf16, defaults.first_long_side,
                                                               defaults.max_encoder_side, defaults.tile_size, std::nullopt,
                                                               defaults.close_mask_px);
            cv::Mat out;
            {
              py::gil_scoped_release release;
              out = self.refiner.refine_labels(bgr, ids, options);
            }
            return to_numpy(out);
          },
          py::arg("image"), py::arg("labels"), py::kw_only(), py::arg("order") = "bgr", py::arg("scales") = py::none(),
          py::arg("dense") = defaults.dense, py::arg("bf16") = defaults.bf16,
          "Refined label map of the labels' dtype: every class id refined against the rest.");

  m.def(
      "metrics",
      [](const py::array& gt, const py::array& pred) {
        const cv::Mat g = binary_from("gt", gt), p = binary_from("pred", pred);
        const airm::ImageScore s = airm::score_masks(g, p);
        return py::make_tuple(s.iou, s.mba);
      },
      py::arg("gt"), py::arg("pred"),
      "(IoU, mBA) in percent, as `airm eval` scores one image (docs/METRICS.md); mBA is NaN when a boundary band is "
      "empty.");
}
