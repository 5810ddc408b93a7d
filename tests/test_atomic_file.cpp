// Atomic writes and the clean-up of what killed writers leave behind.
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "airm/atomic_file.hpp"
#include "airm/mask_io.hpp"
#include "test_support.hpp"

namespace airm {
namespace {
namespace fs = std::filesystem;

// PIDs above the kernel's limit (at most 2^22) never run: a writer that was killed.
constexpr const char* kDeadPid = "999999999";

TEST(AtomicFile, StaleTemporariesOfDeadProcessesAreRemoved) {
  test::TempDir dir("airm-atomic");
  const std::string own = std::to_string(::getpid());
  test::write_bytes(dir / (std::string(".a.tmp-") + kDeadPid + "-0.png"), "half a png");
  fs::create_directories(dir / (std::string(".checkpoint.tmp-") + kDeadPid) / "inner");
  test::write_bytes(dir / (std::string(".checkpoint.tmp-") + kDeadPid) / "inner" / "weights.pt", "x");
  test::write_bytes(dir / (".b.tmp-" + own + "-3.png"), "being written by us");  // this process: kept
  test::write_bytes(dir / ".c.tmp-1-0.png", "pid 1 always runs");                  // a living writer: kept
  test::write_bytes(dir / "result.png", "an output");                            // not a temporary
  test::write_bytes(dir / ".hidden.tmp-x.png", "no pid");                         // not ours: kept
  test::write_bytes(dir / (std::string("d.tmp-") + kDeadPid + "-0.png"), "not hidden");  // not ours: kept

  EXPECT_EQ(remove_stale_temporaries(dir.path()), 2);
  EXPECT_FALSE(fs::exists(dir / (std::string(".a.tmp-") + kDeadPid + "-0.png")));
  EXPECT_FALSE(fs::exists(dir / (std::string(".checkpoint.tmp-") + kDeadPid)));
  for (const std::string& kept : {".b.tmp-" + own + "-3.png", std::string(".c.tmp-1-0.png"), std::string("result.png"),
                                  std::string(".hidden.tmp-x.png"), std::string("d.tmp-") + kDeadPid + "-0.png"}) {
    EXPECT_TRUE(fs::exists(dir / kept)) << kept;
  }
  EXPECT_EQ(remove_stale_temporaries(dir.path()), 0);
  EXPECT_EQ(remove_stale_temporaries(dir / "missing"), 0);
}

TEST(AtomicFile, RefusedWriteSaysWhyAndLeavesNothing) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only folders (tests/soak/batch_soak.sh runs as nobody)";
  test::TempDir dir("airm-atomic");
  fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
  const std::string message = test::error_message(
      [&] { write_mask(dir / "m.png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(255)), MaskMode::binary); });
  fs::permissions(dir.path(), fs::perms::owner_all);
  EXPECT_NE(message.find("m.png: could not be written: Permission denied"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
}  // namespace airm
