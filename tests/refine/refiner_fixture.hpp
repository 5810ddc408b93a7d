// The test fixture shared by test_refiner and test_refine_labels: two
// refiners over random configs/airm_mit_b0.json networks.
#pragma once

#include <gtest/gtest.h>

#include "refine_test_util.hpp"

namespace airm::test {

using airm::RefineOptions;
using airm::Refiner;

// One intra-op thread: OpenMP's spinning barriers make 2 threads crawl on a shared, loaded machine.
class RefinerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new airm::test::TempDir("airm-refiner");
    refiner_ = new Refiner(airm::test::random_weights(*dir_), airm::RefinerOptions{"cpu", 1});
    follower_ = new Refiner(airm::test::follower_weights(*dir_), airm::RefinerOptions{"cpu", 1});
  }
  static void TearDownTestSuite() {
    delete follower_;
    delete refiner_;
    delete dir_;
  }
  // A random network (its probabilities stay near 0.5) and one that follows the coarse mask (see
  // follower_weights): exact properties are checked on both or either, tolerances on the follower.
  static const Refiner& refiner() { return *refiner_; }
  static const Refiner& follower() { return *follower_; }

  inline static airm::test::TempDir* dir_ = nullptr;
  inline static Refiner* refiner_ = nullptr;
  inline static Refiner* follower_ = nullptr;
};

}  // namespace airm::test
