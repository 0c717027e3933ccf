// The light lane: a color whose batches are short goes ahead of the bulk
// colors queued on its worker, so a chain of hand-offs between small
// colors (a call's decryption, the lease table, the backend's send, as in
// sfsd) waits for the batch in progress at each hop, not for every queued
// color's turn. Ordering checks (how much of a fixed backlog ran before the
// chain ended), not timed assertions; the latency itself is measured by
// bench/event_latency_bench (its "hop" row) and read_bench's probe.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::busy_for;
using testing::run_bounded;
using namespace std::chrono_literals;

struct ChainResult {
  int started_at = -1;  // backlog callbacks done when the chain began
  int ended_at = -1;    // ... and when its last hop ran
  int total = 0;
};

// 64 bulk colors, each with 30 callbacks of 50 us queued (about 48 ms of
// work per worker on 2 workers). When a third of the backlog has run (every
// bulk color has had a turn, so each is known to be bulk: a color never run
// counts as light), a chain of 8 hops starts, each hop a trivial callback on a color of its
// own that schedules the next. Every hop goes to the back of its worker's
// queue unless the light lane takes it ahead.
ChainResult run_chain(SchedulerKind kind, std::chrono::microseconds light_batch) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = kind, .light_batch = light_batch});
  constexpr int kColors = 64, kEach = 30, kTotal = kColors * kEach, kHops = 8;
  std::atomic<int> done{0};
  std::atomic<int> to_finish{2};  // the backlog and the chain
  auto finished = [&] {
    if (--to_finish == 0) rt.stop();
  };
  std::atomic<bool> chain_started{false};
  ChainResult r;
  r.total = kTotal;
  std::atomic<int> started_at{-1}, ended_at{-1};
  std::function<void(int)> hop = [&](int k) {
    if (k == kHops) {
      ended_at = done.load();
      finished();
      return;
    }
    rt.cpucb(Closure([&hop, k] { hop(k + 1); }, 1000 + static_cast<color_t>(k)));
  };
  for (int i = 0; i < kEach; ++i)
    for (color_t c = 1; c <= kColors; ++c)
      rt.cpucb(Closure(
          [&] {
            busy_for(50us);
            int n = done.fetch_add(1) + 1;
            if (n >= kTotal / 3 && !chain_started.exchange(true)) {
              started_at = n;
              hop(0);
            }
            if (n == kTotal) finished();
          },
          c));
  EXPECT_EQ(run_bounded(rt, 30s), 0);
  EXPECT_EQ(done.load(), kTotal);
  r.started_at = started_at.load();
  r.ended_at = ended_at.load();
  return r;
}

class LightTest : public ::testing::TestWithParam<SchedulerKind> {};

// With the light lane (the default), the 8 hops end before another quarter
// of the backlog has run (each waits for about one batch, ~0.3 ms).
TEST_P(LightTest, HandOffsBetweenSmallColorsDoNotWaitForTheBacklog) {
  ChainResult r = run_chain(GetParam(), RuntimeOptions{}.light_batch);
  ASSERT_GE(r.started_at, 0);
  ASSERT_GE(r.ended_at, 0) << "the chain never ended";
  EXPECT_LT(r.ended_at - r.started_at, r.total / 4)
      << "the chain's hops waited behind the bulk colors: started at " << r.started_at << ", ended at "
      << r.ended_at << " of " << r.total;
}

// The control: without it (light_batch 0) each hop queues behind every
// bulk color of its worker, so the same chain ends far later. This is what
// shows the check above can fail.
TEST_P(LightTest, WithoutTheLightLaneHandOffsWaitForEveryQueuedColor) {
  ChainResult r = run_chain(GetParam(), 0us);
  ASSERT_GE(r.started_at, 0);
  ASSERT_GE(r.ended_at, 0) << "the chain never ended";
  EXPECT_GE(r.ended_at - r.started_at, r.total / 4)
      << "started at " << r.started_at << ", ended at " << r.ended_at << " of " << r.total;
}

INSTANTIATE_TEST_SUITE_P(AllKinds, LightTest, ::testing::ValuesIn(testing::kAllSchedulerKinds),
                         testing::kind_param_name);

}  // namespace
}  // namespace asmp
