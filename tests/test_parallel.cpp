// Thread counts: 0 means every core this process may use, and LibTorch and
// OpenMP really run with the count that was set.
#include <gtest/gtest.h>

#include <sched.h>

#include <atomic>
#include <omp.h>
#include <thread>

#include <torch/torch.h>

#include "airm/parallel.hpp"

namespace {

int affinity_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

TEST(Threads, ZeroMeansEveryCoreOfTheAffinityMask) {
  const int cores = affinity_count();
  ASSERT_GT(cores, 0);
  EXPECT_EQ(airm::available_cores(), cores);
  EXPECT_EQ(airm::resolve_threads(0), cores);
  EXPECT_EQ(airm::resolve_threads(3), 3);
}

TEST(Threads, SetTorchThreadsReachesLibTorchAndOpenMP) {
  for (int requested : {1, 2, 0}) {
    SCOPED_TRACE("requested=" + std::to_string(requested));
    const int expected = airm::resolve_threads(requested);
    EXPECT_EQ(airm::set_torch_threads(requested), expected);
    EXPECT_EQ(torch::get_num_threads(), expected);
    EXPECT_EQ(omp_get_max_threads(), expected);
    // The threads a parallel kernel actually runs on.
    std::atomic<int> seen{0};
    at::parallel_for(0, 1 << 20, 1, [&](int64_t, int64_t) { ++seen; });
    EXPECT_LE(seen.load(), expected);
    EXPECT_GE(seen.load(), 1);
  }
}

TEST(Threads, AffinityOfOneCoreGivesOne) {
  cpu_set_t old_set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(old_set), &old_set), 0);
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE && first < 0; ++c) {
    if (CPU_ISSET(c, &old_set)) first = c;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  const int got = airm::resolve_threads(0);
  ASSERT_EQ(sched_setaffinity(0, sizeof(old_set), &old_set), 0);
  EXPECT_EQ(got, 1);
}

}  // namespace
