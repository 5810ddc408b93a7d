// Weight averaging of airm weights files ("model soup", checkpoint
// averaging): the weighted mean of several files of one network, written as
// an ordinary weights file of that network.
#pragma once

#include <filesystem>
#include <vector>

#include "airm/model/weights_file.hpp"

namespace airm {

// Writes to `output` (atomically) the coefficient-weighted mean of the
// floating tensors of `inputs`; integer tensors (e.g. BatchNorm's
// num_batches_tracked) are taken from the first file. Every input must be a
// weights file of the same kind (refiner or segmenter), format version and
// config, with the same tensor names and shapes. `coefficients` is empty
// (a plain mean) or one non-negative value per input summing to 1. The mean
// is taken in fp64 and stored in the first file's dtype unless
// options.half. Throws airm::Error naming the offending file.
void average_weights_files(const std::vector<std::filesystem::path>& inputs, const std::vector<double>& coefficients,
                           const std::filesystem::path& output, const SaveOptions& options = SaveOptions());

}  // namespace airm
