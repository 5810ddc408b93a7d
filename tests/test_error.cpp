#include <gtest/gtest.h>

#include "airm/error.hpp"

TEST(Error, NamesFileAndProblem) {
  const airm::Error e("a/b.png", "is not an image");
  EXPECT_STREQ(e.what(), "a/b.png: is not an image");
  EXPECT_EQ(e.file(), "a/b.png");
  EXPECT_EQ(e.problem(), "is not an image");
}

TEST(Error, ExpectedAndGot) {
  const airm::Error e("m.png", "size 640x480", "size 10x10");
  EXPECT_STREQ(e.what(), "m.png: expected size 640x480, got size 10x10");
}

TEST(Error, WithoutFile) {
  const airm::Error e("", "no split named 'x'");
  EXPECT_STREQ(e.what(), "no split named 'x'");
}
