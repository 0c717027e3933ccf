// Timers: in order, never early, cancelled ones never run, many at once, and
// an idle worker notices them while the other worker is busy.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::run_bounded;
using namespace std::chrono_literals;

TEST(Timer, InOrderAndNeverEarly) {
  Runtime rt(RuntimeOptions{.threads = 2});
  constexpr int kTimers = 400;
  constexpr int kColors = 4;
  std::mt19937 rng(42);
  // Per color, plain state: callbacks of one color run one at a time.
  std::vector<std::pair<Clock::time_point, TimerId>> last(kColors, {Clock::time_point::min(), 0});
  std::atomic<int> early{0}, out_of_order{0}, fired{0}, wrong_color{0};
  auto start = Clock::now();
  for (int i = 0; i < kTimers; ++i) {
    color_t c = static_cast<color_t>(i % kColors);
    auto delay = std::chrono::microseconds(rng() % 80000);
    Clock::time_point when = start + delay;
    auto id = std::make_shared<TimerId>(0);
    const bool absolute = i % 2;  // colors 1 and 3
    Closure cb(
        [&, c, when, id, absolute] {
          if (Clock::now() < when) ++early;
          if (Runtime::current_color() != c) ++wrong_color;
          // Only absolute deadlines are known exactly; a delaycb's lies a
          // little after `when`, by however long the call took.
          auto key = std::make_pair(when, *id);
          if (absolute && key < last[c]) ++out_of_order;
          last[c] = key;
          if (fired.fetch_add(1) + 1 == kTimers) rt.stop();
        },
        c);
    // Half absolute, half relative (its deadline is at least `when`).
    if (absolute) {
      *id = rt.timecb(when, std::move(cb));
    } else {
      auto d = when - Clock::now();
      *id = rt.delaycb(d, std::move(cb));
    }
  }
  EXPECT_EQ(run_bounded(rt), 0) << "timed out; " << fired.load() << " of " << kTimers << " fired";
  EXPECT_EQ(fired.load(), kTimers);
  EXPECT_EQ(early.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(wrong_color.load(), 0);
}

TEST(Timer, PastDeadlinesFireAtOnce) {
  Runtime rt(RuntimeOptions{.threads = 2});
  int fired = 0;  // color 0: serial
  rt.timecb(Clock::now() - 1h, [&] { ++fired; });
  rt.timecb(Clock::time_point{}, [&] { ++fired; });
  rt.delaycb(-5ms, [&] { ++fired; });
  rt.delaycb(0ns, [&] {
    ++fired;
    rt.delaycb(0ns, [&] {
      ++fired;
      rt.stop();
    });
  });
  auto t0 = Clock::now();
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(fired, 5);
  EXPECT_LT(Clock::now() - t0, 2s);
}

TEST(Timer, CancelledTimersNeverRun) {
  Runtime rt(RuntimeOptions{.threads = 2});
  constexpr int kTimers = 3000;
  struct Entry {
    TimerId id = 0;
    std::atomic<bool> ran{false};
    std::atomic<bool> cancelled{false};  // timecb_remove returned true
  };
  std::vector<Entry> e(kTimers);
  std::atomic<int> settled{0}, ran_after_cancel{0};
  testing::DtorCount dtors;
  auto settle = [&] {
    if (settled.fetch_add(1) + 1 == kTimers) rt.stop();
  };
  auto start = Clock::now();
  for (int i = 0; i < kTimers; ++i) {
    e[i].id = rt.timecb(start + std::chrono::microseconds((i * 7919) % 60000),
                        Closure(
                            [&, i, t = testing::Tracked(dtors)] {
                              if (e[i].cancelled.load()) ++ran_after_cancel;
                              e[i].ran.store(true);
                              // Timers cancel others, racing with their firing.
                              int victim = (i * 31 + 17) % kTimers;
                              if (i % 5 == 0 && rt.timecb_remove(e[victim].id)) {
                                e[victim].cancelled.store(true);
                                settle();
                              }
                              settle();
                            },
                            static_cast<color_t>(i % 3)));
  }
  // Cancel a quarter before anything runs: those must all succeed.
  for (int i = 0; i < kTimers; i += 4) {
    ASSERT_TRUE(rt.timecb_remove(e[i].id));
    e[i].cancelled.store(true);
    ++settled;
    EXPECT_FALSE(rt.timecb_remove(e[i].id)) << "removing twice";
  }
  EXPECT_EQ(dtors.destroyed.load(), kTimers / 4) << "a removed timer's callback is destroyed";
  EXPECT_FALSE(rt.timecb_remove(0));
  EXPECT_FALSE(rt.timecb_remove(~TimerId{0}));
  // A foreign thread cancels more while they fire.
  std::thread canceller([&] {
    for (int i = 2; i < kTimers; i += 4) {
      if (rt.timecb_remove(e[i].id)) {
        e[i].cancelled.store(true);
        settle();
      }
      if (i % 64 == 2) std::this_thread::sleep_for(1ms);
    }
  });
  EXPECT_EQ(run_bounded(rt), 0) << "timed out";
  canceller.join();
  EXPECT_EQ(ran_after_cancel.load(), 0);
  int both = 0, neither = 0;
  for (auto& x : e) {
    both += x.ran.load() && x.cancelled.load();
    neither += !x.ran.load() && !x.cancelled.load();
    if (x.ran.load()) {
      EXPECT_FALSE(rt.timecb_remove(x.id)) << "a fired timer is not pending";
    }
  }
  EXPECT_EQ(both, 0) << "a timer ran although timecb_remove returned true";
  EXPECT_EQ(neither, 0);
  EXPECT_EQ(dtors.destroyed.load(), kTimers) << "every callback destroyed exactly once";
}

TEST(Timer, ManyTimersFromManyThreads) {
  Runtime rt(RuntimeOptions{.threads = 3});
  constexpr int kThreads = 3, kPerThread = 5000, kColors = 64;
  std::atomic<int> fired{0}, early{0};
  std::vector<std::atomic<int>> per_timer(kThreads * kPerThread);
  std::atomic<bool> go{false};
  rt.cpucb([&] { go = true; });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        int k = t * kPerThread + i;
        auto when = Clock::now() + std::chrono::microseconds((k * 104729) % 150000);
        rt.timecb(when, Closure(
                            [&, k, when] {
                              if (Clock::now() < when) ++early;
                              per_timer[k].fetch_add(1);
                              if (fired.fetch_add(1) + 1 == kThreads * kPerThread) rt.stop();
                            },
                            static_cast<color_t>(k % kColors)));
      }
    });
  }
  EXPECT_EQ(run_bounded(rt), 0) << "timed out; fired " << fired.load();
  for (auto& t : threads) t.join();
  EXPECT_EQ(early.load(), 0);
  int wrong = 0;
  for (auto& n : per_timer) wrong += n.load() != 1;
  EXPECT_EQ(wrong, 0) << "each timer fires exactly once";
}

// Timers are one-shot and stay ordered when added from inside timer callbacks.
TEST(Timer, RearmFromCallback) {
  Runtime rt(RuntimeOptions{.threads = 2});
  int ticks = 0;
  Clock::time_point prev = Clock::now();
  bool early = false;
  std::function<void()> tick = [&] {
    auto now = Clock::now();
    if (now < prev + 2ms) early = true;
    prev = now;
    if (++ticks == 20) {
      rt.stop();
      return;
    }
    rt.delaycb(2ms, Closure([&] { tick(); }, 11));
  };
  rt.delaycb(2ms, Closure([&] { tick(); }, 11));
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(ticks, 20);
  EXPECT_FALSE(early);
}

// An empty callback is refused (id 0) instead of being queued: firing it
// used to call an empty Closure and crash the worker.
TEST(Timer, NullCallbackIsRefused) {
  Runtime rt(RuntimeOptions{.threads = 2});
  EXPECT_EQ(rt.timecb(Clock::now(), Closure()), 0u);
  EXPECT_EQ(rt.delaycb(1ms, Closure()), 0u);
  EXPECT_EQ(rt.delaycb(0ms, nullptr), 0u);
  EXPECT_FALSE(rt.timecb_remove(0));
  std::atomic<int> fired{0};
  TimerId id = rt.delaycb(5ms, Closure([&] {
                            ++fired;
                            rt.stop();
                          }));
  EXPECT_NE(id, 0u);
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(fired.load(), 1);
}

// While one worker runs a long callback, the other, idle worker must still
// notice a timer that comes due (someone must be polling). Each round starts
// from both workers asleep and puts the long callback on whichever worker
// woke up for the first timer.
TEST(Timer, IdleWorkerPollsWhileOtherWorkerIsBusy) {
  for (auto kind : {SchedulerKind::kPerThread, SchedulerKind::kStealing}) {
    SCOPED_TRACE(std::string(to_string(kind)));
    Runtime rt(RuntimeOptions{.threads = 2, .scheduler = kind});
    constexpr int kRounds = 6;
    int late_rounds = 0;
    int round = 0;
    std::function<void()> start_round;
    start_round = [&] {
      // Let both workers go idle (one in epoll, one on its futex), then wake.
      rt.delaycb(30ms, Closure(
                           [&] {
                             int me = Runtime::worker_index();
                             auto seen = std::make_shared<std::atomic<bool>>(false);
                             // A timer for a color of the other, idle worker.
                             color_t other = static_cast<color_t>(1 - me);
                             rt.delaycb(5ms, Closure([seen] { *seen = true; }, other));
                             if (!testing::wait_until([&] { return seen->load(); }, 1s)) ++late_rounds;
                             if (++round == kRounds)
                               rt.stop();
                             else
                               start_round();
                           },
                           static_cast<color_t>(round % 2)));
    };
    start_round();
    EXPECT_EQ(run_bounded(rt, 20s), 0);
    EXPECT_EQ(late_rounds, 0) << "a due timer waited for a busy worker while another was idle";
  }
}

}  // namespace
}  // namespace asmp
