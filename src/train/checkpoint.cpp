#include "checkpoint.hpp"

#include <system_error>

#include <unistd.h>

#include "airm/atomic_file.hpp"
#include "airm/error.hpp"
#include "../json_fields.hpp"

namespace airm::train_detail {
namespace fs = std::filesystem;
namespace {

fs::path old_of(const fs::path& dir) { return dir.string() + ".old"; }

bool complete(const fs::path& dir) { return fs::is_regular_file(dir / kStateFile); }

// A replacement interrupted after DIR -> DIR.old but before the new folder
// took its place: DIR.old is the latest complete checkpoint.
void recover(const fs::path& dir) {
  const fs::path old = old_of(dir);
  if (!fs::exists(dir) && complete(old)) fs::rename(old, dir);
}

}  // namespace

void write_checkpoint(const fs::path& dir, const CheckpointWeights& weights, torch::optim::Optimizer& optimizer,
                      const nlohmann::json& state) {
  recover(dir);
  const fs::path tmp = dir.parent_path() / ("." + dir.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    weights.save(tmp / kWeightsFile);
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.save_to((tmp / kOptimizerFile).string());
    write_text_atomically(tmp / kStateFile, state.dump(2) + "\n");  // last: marks the set complete
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  const fs::path old = old_of(dir);
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
}

fs::path find_checkpoint(const fs::path& dir) {
  if (complete(dir)) return dir;
  if (complete(old_of(dir))) return old_of(dir);
  return {};
}

nlohmann::json read_checkpoint(const fs::path& dir, const CheckpointWeights& weights,
                               torch::optim::Optimizer& optimizer, const torch::Device& device) {
  if (!complete(dir)) throw Error(dir.string(), "a checkpoint folder with " + std::string(kStateFile), "none");
  nlohmann::json state = json_fields::read_file(dir / kStateFile);
  weights.load(dir / kWeightsFile);
  const fs::path optimizer_file = dir / kOptimizerFile;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(optimizer_file.string(), device);
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    throw Error(optimizer_file.string(), std::string("not an optimizer state of this network (") +
                                             e.what_without_backtrace() + ")");
  }
  return state;
}

void publish_file(const fs::path& source, const fs::path& target) {
  write_atomically(target, [&](const fs::path& tmp) {
    std::error_code ec;
    fs::create_hard_link(source, tmp, ec);
    if (ec) fs::copy_file(source, tmp, fs::copy_options::overwrite_existing);
  });
}

}  // namespace airm::train_detail
