// Discovering image/mask pairs on disk, and named splits.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace airm {

// One image with its ground truth and optional extras. Empty paths mean
// "not present".
struct Sample {
  std::string dataset;  // folder name of the dataset the sample belongs to
  std::string name;     // base name shared by the files of the pair
  std::filesystem::path image;
  std::filesystem::path gt;
  std::filesystem::path coarse;  // optional coarse mask
  std::filesystem::path ignore;  // optional ignore mask (non-zero = ignored)
};

struct Discovery {
  std::vector<Sample> samples;                   // sorted by (dataset, name)
  std::vector<std::filesystem::path> unmatched;  // files with no partner, sorted
};

// Finds pairs under `dir`, which is one of:
//  - a CascadePSP BIG folder: NAME_im.(jpg|png|...), NAME_gt.png, optional NAME_seg.png;
//  - an images/ + masks/ folder (optional coarse/ and ignore/), matched by base name;
//  - a root whose immediate sub-folders are datasets of either kind (like ../shared/data).
// Files that have no partner (an image without ground truth, a mask without
// an image, a coarse or ignore mask without a pair) are listed in `unmatched`.
// Throws airm::Error if `dir` is missing or holds no dataset at all.
Discovery discover_dataset(const std::filesystem::path& dir);

// Named splits: split name -> dataset folder names.
using SplitTable = std::map<std::string, std::vector<std::string>>;

// Reads splits from a Markdown table like ../shared/data/SPLITS.md (first
// column the split name, second the comma-separated dataset folders) or from
// plain lines "name: set1, set2". Throws airm::Error if none is found.
SplitTable read_splits(const std::filesystem::path& file);

// discover_dataset(root), keeping only the datasets of `split` as named in
// `splits_file` (default: root/SPLITS.md). An empty `split` keeps everything.
// Throws airm::Error for an unknown split or a split dataset that is missing.
Discovery discover_split(const std::filesystem::path& root, const std::string& split,
                         const std::filesystem::path& splits_file = {});

}  // namespace airm
