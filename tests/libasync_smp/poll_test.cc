// Events while every worker is busy: the poller runs by elapsed time and an
// event's color is served ahead of the queued backlog, so an fd callback or
// a due timer does not wait for the whole queue. These are ordering checks
// (how much of a fixed backlog ran before the event's callback), not timed
// assertions; the latency itself is measured by bench/event_latency_bench.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::busy_for;
using testing::run_bounded;
using namespace std::chrono_literals;

class PollTest : public ::testing::TestWithParam<SchedulerKind> {};

// 64 colors, each with 30 callbacks of 50 us queued (about 50 ms of work
// per worker), on 2 workers. Before run() starts, a pipe is made readable
// and a timer is due. With polling every 16 batches, and the event's color
// queued behind every other color, both callbacks ran after about
// three quarters of the backlog (measured: ~150 ms for 64 such colors
// running forever). Now each must run before half of it.
TEST_P(PollTest, EventsDoNotWaitForTheWholeBacklog) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = GetParam()});
  constexpr int kColors = 64, kEach = 30, kTotal = kColors * kEach;
  std::atomic<int> done{0};
  std::atomic<int> at_fd{-1}, at_timer{-1};
  for (int i = 0; i < kEach; ++i)
    for (color_t c = 1; c <= kColors; ++c)
      rt.cpucb(Closure(
          [&] {
            busy_for(50us);
            if (done.fetch_add(1) + 1 == kTotal) rt.stop();
          },
          c));
  testing::Pipe p;
  ASSERT_EQ(::write(p.wr, "x", 1), 1);
  ASSERT_EQ(rt.fdcb(p.rd, selread, Closure(
                                       [&] {
                                         at_fd = done.load();
                                         rt.fdcb(p.rd, selread, nullptr);
                                       },
                                       1000)),
            0);
  rt.timecb(Clock::now(), Closure([&] { at_timer = done.load(); }, 2000));
  EXPECT_EQ(run_bounded(rt, 30s), 0);
  EXPECT_EQ(done.load(), kTotal);
  EXPECT_GE(at_fd.load(), 0) << "the fd callback never ran";
  EXPECT_GE(at_timer.load(), 0) << "the timer never fired";
  EXPECT_LT(at_fd.load(), kTotal / 2) << "the fd callback waited behind the backlog";
  EXPECT_LT(at_timer.load(), kTotal / 2) << "the timer waited behind the backlog";
}

// The other side of the bargain: events arriving all the time (a pipe that
// stays readable, a timer re-armed at once) do not starve queued work.
// A cpucb chain of 2,000 callbacks on one color finishes while both event
// callbacks keep firing.
TEST_P(PollTest, ConstantEventsDoNotStarveQueuedWork) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = GetParam()});
  testing::Pipe p;
  ASSERT_EQ(::write(p.wr, "x", 1), 1);  // never read: always ready
  std::atomic<int> fd_runs{0}, timer_runs{0}, chain{0};
  ASSERT_EQ(rt.fdcb(p.rd, selread, Closure(
                                       [&] {
                                         ++fd_runs;
                                         busy_for(20us);
                                       },
                                       1000)),
            0);
  std::function<void()> rearm = [&] {
    ++timer_runs;
    busy_for(20us);
    rt.timecb(Clock::now(), Closure([&] { rearm(); }, 2000));
  };
  rt.timecb(Clock::now(), Closure([&] { rearm(); }, 2000));
  std::function<void()> step = [&] {
    busy_for(5us);
    if (++chain == 2000) {
      rt.fdcb(p.rd, selread, nullptr);
      rt.stop();
      return;
    }
    rt.cpucb(Closure([&] { step(); }, 7));
  };
  rt.cpucb(Closure([&] { step(); }, 7));
  EXPECT_EQ(run_bounded(rt, 30s), 0) << "queued work starved: chain at " << chain.load();
  EXPECT_EQ(chain.load(), 2000);
  EXPECT_GE(fd_runs.load(), 1);
  EXPECT_GE(timer_runs.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, PollTest, ::testing::ValuesIn(testing::kAllSchedulerKinds),
                         testing::kind_param_name);

}  // namespace
}  // namespace asmp
