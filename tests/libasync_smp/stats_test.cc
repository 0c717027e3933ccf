// Counters: per-worker callbacks add up to what ran, per-color counts, and
// sleeps, wakeups and polls move when workers idle.
#include <gtest/gtest.h>

#include <time.h>

#include <atomic>
#include <thread>
#include <map>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::run_bounded;
using namespace std::chrono_literals;

std::uint64_t thread_cpu_ns_for_test() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t sum_callbacks(const Runtime& rt) {
  std::uint64_t n = 0;
  for (const WorkerStats& w : rt.worker_stats()) n += w.callbacks;
  return n;
}

class StatsTest : public ::testing::TestWithParam<SchedulerKind> {};

TEST_P(StatsTest, CallbacksAddUpPerWorkerAndPerColor) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = GetParam()});
  std::map<color_t, std::uint64_t> expected;
  std::atomic<std::uint64_t> ran{0};
  std::uint64_t total = 0;
  for (int i = 0; i < 5000; ++i) {
    color_t c = static_cast<color_t>((i * i) % 37 + 1000);
    ++expected[c];
    ++total;
  }
  for (auto& [c, n] : expected)
    for (std::uint64_t k = 0; k < n; ++k)
      rt.cpucb(Closure(
          [&] {
            if (ran.fetch_add(1) + 1 == total) rt.stop();
          },
          c));
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(sum_callbacks(rt), total);
  for (auto& [c, n] : expected) {
    ColorStats cs = rt.color_stats(c);
    EXPECT_EQ(cs.callbacks, n) << "color " << c;
    EXPECT_LT(cs.worker, 2u);
    if (GetParam() == SchedulerKind::kPerThread || GetParam() == SchedulerKind::kFreelist) {
      EXPECT_EQ(cs.worker, c % 2) << "without stealing a color stays at color mod N";
    }
  }
  EXPECT_EQ(rt.color_stats(1).callbacks, 0u);

  // Counters accumulate over runs.
  rt.cpucb(Closure([&] { rt.stop(); }, 1000));
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(sum_callbacks(rt), total + 1);
  EXPECT_EQ(rt.color_stats(1000).callbacks, expected[1000] + 1);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, StatsTest, ::testing::ValuesIn(testing::kAllSchedulerKinds),
                         testing::kind_param_name);

TEST(Stats, ColorsSharingASlotAreCountedTogether) {
  Runtime rt(RuntimeOptions{.threads = 2, .color_slots = 16});
  std::atomic<int> ran{0};
  auto count = [&] {
    if (++ran == 43) rt.stop();
  };
  for (int i = 0; i < 30; ++i) rt.cpucb(Closure(count, 3));
  for (int i = 0; i < 12; ++i) rt.cpucb(Closure(count, 19));  // 19 mod 16 == 3
  rt.cpucb(Closure(count, 4));
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(ran.load(), 43);
  EXPECT_EQ(rt.color_stats(3).callbacks, 42u);
  EXPECT_EQ(rt.color_stats(19).callbacks, 42u);
  EXPECT_EQ(rt.color_stats(4).callbacks, 1u);
}

TEST(Stats, IdleWorkersSleepPollAndAreWoken) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = SchedulerKind::kPerThread});
  // Both workers idle for a while, then color 0 wakes color 1's worker.
  rt.delaycb(30ms, Closure(
                       [&] {
                         rt.cpucb(Closure([&] { rt.delaycb(30ms, Closure([&] { rt.stop(); }, 0)); },
                                          1));
                       },
                       0));
  EXPECT_EQ(run_bounded(rt), 0);
  std::uint64_t sleeps = 0, wakeups = 0, polls = 0;
  for (const WorkerStats& w : rt.worker_stats()) {
    sleeps += w.sleeps;
    wakeups += w.wakeups;
    polls += w.polls;
    EXPECT_EQ(w.steals, 0u);
  }
  EXPECT_GE(sleeps, 2u) << "idle workers should sleep, not spin";
  EXPECT_GE(wakeups, 1u);
  EXPECT_GE(polls, 1u);
  EXPECT_EQ(sum_callbacks(rt), 3u);  // two timers and one cpucb
  // An idle runtime does not spin: over 60 ms, few polls and sleeps.
  EXPECT_LT(sleeps, 200u);
}

// color_cpu: a color that burns CPU is charged with it and one that only
// sleeps is not (sleeping is wall time, not CPU time), so the per-color
// shares a daemon reports are what its callbacks used.
TEST(ColorCpuTest, BurningColorIsChargedAndSleepingColorIsNot) {
  Runtime rt(RuntimeOptions{.threads = 2, .idle_spins = 0, .color_cpu = true});
  constexpr color_t kBurn = 7, kSleep = 8;
  std::atomic<int> done{0};
  auto finish = [&] {
    if (done.fetch_add(1) + 1 == 2) rt.stop();
  };
  rt.cpucb(Closure(
      [&] {
        // 100 ms of this thread's CPU time, however busy the machine is.
        const std::uint64_t start = thread_cpu_ns_for_test();
        while (thread_cpu_ns_for_test() - start < 100'000'000u) {
        }
        finish();
      },
      kBurn));
  rt.cpucb(Closure(
      [&] {
        std::this_thread::sleep_for(100ms);
        finish();
      },
      kSleep));
  EXPECT_EQ(run_bounded(rt), 0);
  const std::uint64_t burn = rt.color_stats(kBurn).cpu_ns;
  const std::uint64_t slept = rt.color_stats(kSleep).cpu_ns;
  EXPECT_GE(burn, 100'000'000u);
  EXPECT_LT(burn, 150'000'000u);
  EXPECT_LT(slept, 20'000'000u);
  bool listed = false;
  for (const SlotCpu& s : rt.color_cpu())
    if (s.slot == (kBurn & (rt.color_slots() - 1))) listed = s.cpu_ns == burn && s.callbacks == 1;
  EXPECT_TRUE(listed);
}

TEST(ColorCpuTest, OffByDefault) {
  Runtime rt(RuntimeOptions{.threads = 1});
  rt.cpucb(Closure([&] { rt.stop(); }, 3));
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(rt.color_stats(3).cpu_ns, 0u);
  EXPECT_TRUE(rt.color_cpu().empty());
}

}  // namespace
}  // namespace asmp
