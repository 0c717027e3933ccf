// Tests for sfs/replay_window.h.
#include "sfs/replay_window.h"

#include <gtest/gtest.h>

namespace sfs {
namespace {

using V = ReplayWindow::Verdict;

TEST(ReplayWindow, AcceptsEachNumberOnce) {
  ReplayWindow w;
  EXPECT_EQ(w.check_and_record(0), V::kFresh);
  EXPECT_EQ(w.check_and_record(0), V::kReplayed);
  EXPECT_EQ(w.check_and_record(1), V::kFresh);
  EXPECT_EQ(w.check_and_record(1), V::kReplayed);
  EXPECT_EQ(w.check_and_record(0), V::kReplayed);
}

TEST(ReplayWindow, AcceptsOutOfOrderWithinWindow) {
  ReplayWindow w;
  EXPECT_EQ(w.check_and_record(10), V::kFresh);
  EXPECT_EQ(w.check_and_record(7), V::kFresh);
  EXPECT_EQ(w.check_and_record(9), V::kFresh);
  EXPECT_EQ(w.check_and_record(7), V::kReplayed);
  EXPECT_EQ(w.check_and_record(8), V::kFresh);
  EXPECT_EQ(w.check_and_record(10), V::kReplayed);
}

TEST(ReplayWindow, WindowEdges) {
  ReplayWindow w;
  const std::uint64_t top = 5000;
  EXPECT_EQ(w.check_and_record(top), V::kFresh);
  EXPECT_EQ(w.check_and_record(top - ReplayWindow::kWindow + 1), V::kFresh);  // oldest kept
  EXPECT_EQ(w.check_and_record(top - ReplayWindow::kWindow), V::kTooOld);
  EXPECT_EQ(w.check_and_record(0), V::kTooOld);
}

TEST(ReplayWindow, SlidingForgetsOnlyWhatLeavesTheWindow) {
  ReplayWindow w;
  for (std::uint64_t s = 0; s < 3000; s += 3) ASSERT_EQ(w.check_and_record(s), V::kFresh);
  // Everything recorded within the last window is still remembered...
  for (std::uint64_t s = 2999 - ReplayWindow::kWindow + 1; s < 3000; ++s) {
    const V v = w.check_and_record(s);
    if (s % 3 == 0) {
      EXPECT_EQ(v, V::kReplayed) << s;
    } else {
      EXPECT_EQ(v, V::kFresh) << s;
    }
  }
  // ...and a big jump forgets all of it without confusing old bits for new.
  EXPECT_EQ(w.check_and_record(1'000'000), V::kFresh);
  EXPECT_EQ(w.check_and_record(1'000'000 - 1), V::kFresh);
  EXPECT_EQ(w.check_and_record(1'000'000 - 1024), V::kTooOld);
}

TEST(ReplayWindow, LargestNumbers) {
  ReplayWindow w;
  const std::uint64_t max = ~std::uint64_t{0};
  EXPECT_EQ(w.check_and_record(max - 1), V::kFresh);
  EXPECT_EQ(w.check_and_record(max), V::kFresh);
  EXPECT_EQ(w.check_and_record(max), V::kReplayed);
  EXPECT_EQ(w.check_and_record(max - 1), V::kReplayed);
  EXPECT_EQ(w.check_and_record(max - 2), V::kFresh);
}

}  // namespace
}  // namespace sfs
