// The light lane: a color whose batches are short goes ahead of the bulk
// colors queued on its worker, so a chain of hand-offs between small
// colors (a call's decryption, the lease table, the backend's send, as in
// sfsd) waits for the batch in progress at each hop, not for every queued
// color's turn. An ordering check on one worker (which bulk colors ran
// between a hop being scheduled and its start), so that the kernel's
// preemption of a worker cannot change the answer; the latency itself is
// measured by bench/event_latency_bench (its "hop" row) and read_bench's
// probe.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <functional>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::busy_for;
using testing::run_bounded;
using namespace std::chrono_literals;

constexpr int kColors = 64, kEach = 30, kTotal = kColors * kEach, kHops = 8;

// 64 bulk colors, each with 30 callbacks of 50 us queued, on one worker.
// When half of the backlog has run (every bulk color has had a turn, so
// each is known to be bulk: a color never run counts as light), a chain of
// 8 hops starts, each hop a trivial callback on a color of its own that
// schedules the next. Returns the most distinct bulk colors that ran
// between a hop's scheduling and its start.
int bulk_colors_passed_by_a_hop(SchedulerKind kind, std::chrono::microseconds light_batch) {
  Runtime rt(RuntimeOptions{.threads = 1, .scheduler = kind, .light_batch = light_batch});
  std::atomic<int> done{0};
  std::atomic<int> to_finish{2};  // the backlog and the chain
  auto finished = [&] {
    if (--to_finish == 0) rt.stop();
  };
  std::atomic<bool> chain_started{false};
  // Each bulk callback stamps its color with a running count.
  std::atomic<std::uint64_t> stamp{0};
  std::array<std::atomic<std::uint64_t>, kColors + 1> last_run{};
  std::atomic<int> worst{-1};
  std::function<void(int)> hop = [&](int k) {
    if (k == kHops) {
      finished();
      return;
    }
    const std::uint64_t scheduled_at = stamp.load();
    rt.cpucb(Closure(
        [&, k, scheduled_at] {
          int passed = 0;
          for (color_t c = 1; c <= kColors; ++c) passed += last_run[c].load() > scheduled_at ? 1 : 0;
          worst = std::max(worst.load(), passed);
          hop(k + 1);
        },
        1000 + static_cast<color_t>(k)));
  };
  for (int i = 0; i < kEach; ++i)
    for (color_t c = 1; c <= kColors; ++c)
      rt.cpucb(Closure(
          [&, c] {
            busy_for(50us);
            last_run[c] = ++stamp;
            const int n = done.fetch_add(1) + 1;
            if (n >= kTotal / 2 && !chain_started.exchange(true)) hop(0);
            if (n == kTotal) finished();
          },
          c));
  EXPECT_EQ(run_bounded(rt, 30s), 0);
  EXPECT_EQ(done.load(), kTotal);
  EXPECT_TRUE(chain_started.load());
  return worst.load();
}

class LightTest : public ::testing::TestWithParam<SchedulerKind> {};

// With the light lane (the default), a hop waits at most for the batch it
// was scheduled from: at most that one bulk color runs before it.
TEST_P(LightTest, HandOffsBetweenSmallColorsDoNotWaitForTheBacklog) {
  const int worst = bulk_colors_passed_by_a_hop(GetParam(), RuntimeOptions{}.light_batch);
  ASSERT_GE(worst, 0) << "the chain never ran";
  EXPECT_LE(worst, 1) << "a hop waited behind " << worst << " bulk colors";
}

// The control: without it (light_batch 0) a hop queues behind every bulk
// color that is ready, so the same chain lets most of them run first. This
// is what shows the check above can fail.
TEST_P(LightTest, WithoutTheLightLaneHandOffsWaitForEveryQueuedColor) {
  const int worst = bulk_colors_passed_by_a_hop(GetParam(), 0us);
  ASSERT_GE(worst, 0) << "the chain never ran";
  EXPECT_GE(worst, kColors / 2);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, LightTest, ::testing::ValuesIn(testing::kAllSchedulerKinds),
                         testing::kind_param_name);

}  // namespace
}  // namespace asmp
