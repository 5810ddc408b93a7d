// Generated scenes with exact ground truth at any size up to 8K.
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

namespace airm {

struct SynthOptions {
  cv::Size size{3840, 2160};
  int min_objects = 2;
  int max_objects = 5;
  bool thin_structures = true;  // 1-3 px wide lines and curves at full resolution
  bool holes = true;
  // One large object near the centre, painted apart from the background (no
  // camouflage, no occluding bar, no free-standing wires): the scene a
  // salient-object segmenter is meant for. min_objects/max_objects are then
  // not used; thin_structures and holes still shape the object.
  bool main_object = false;
};

struct Scene {
  cv::Mat image;  // CV_8UC3, BGR
  cv::Mat mask;   // CV_8UC1, 0/255, exact
};

// A textured background with foreground objects: smooth curved blobs, shapes
// with sharp corners, objects with holes and thin structures (or one main
// object, see SynthOptions::main_object). Deterministic
// for a given (options, seed). Throws airm::Error for a size outside
// 1x1..7680x4320 (or its transpose) or bad object counts.
Scene generate_scene(const SynthOptions& options, std::uint64_t seed);

}  // namespace airm
