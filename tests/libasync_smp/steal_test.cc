// Stealing: with kStealing an idle worker takes whole colors queued behind a
// long callback on another worker; without it (kPerThread) they wait.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::run_bounded;
using testing::wait_until;
using namespace std::chrono_literals;

constexpr int kColors = 40;       // colors queued behind the stuck worker
constexpr int kPerColor = 5;      // callbacks per color, run in order

struct Queued {
  std::atomic<int> worker[kColors];
  std::atomic<int> done{0};
  int next[kColors] = {};  // per color, touched only by that color
  std::atomic<int> out_of_order{0};
  Queued() {
    for (auto& w : worker) w.store(-2);
  }
};

// Schedules kPerColor callbacks on each of kColors colors whose initial
// worker is `home` (color mod 2 == home, with 2 workers).
void schedule_behind(Runtime& rt, Queued& q, int home) {
  for (int k = 0; k < kPerColor; ++k) {
    for (int i = 0; i < kColors; ++i) {
      color_t c = static_cast<color_t>(2 * (i + 1) + home);
      rt.cpucb(Closure(
          [&q, i, k] {
            q.worker[i].store(Runtime::worker_index());
            if (q.next[i]++ != k) ++q.out_of_order;
            q.done.fetch_add(1);
          },
          c));
    }
  }
}

TEST(Steal, IdleWorkerTakesColorsQueuedBehindLongCallback) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = SchedulerKind::kStealing});
  Queued q;
  int stuck = -1;
  bool all_ran_while_stuck = false;
  std::uint64_t steals_before = 0, steals_during = 0;
  rt.cpucb(Closure(
      [&] {
        stuck = Runtime::worker_index();
        ASSERT_TRUE(stuck == 0 || stuck == 1);
        steals_before = rt.worker_stats()[1 - stuck].steals;
        // Colors that live on this very worker, queued behind this callback.
        schedule_behind(rt, q, stuck);
        all_ran_while_stuck =
            wait_until([&] { return q.done.load() == kColors * kPerColor; }, 3s);
        steals_during = rt.worker_stats()[1 - stuck].steals - steals_before;
        rt.stop();
      },
      100));
  EXPECT_EQ(run_bounded(rt), 0) << "timed out";
  ASSERT_NE(stuck, -1);
  EXPECT_TRUE(all_ran_while_stuck) << "the idle worker did not steal the queued colors";
  for (int i = 0; i < kColors; ++i) {
    EXPECT_EQ(q.worker[i].load(), 1 - stuck) << "color " << 2 * (i + 1) + stuck;
    EXPECT_EQ(rt.color_stats(static_cast<color_t>(2 * (i + 1) + stuck)).worker,
              static_cast<unsigned>(1 - stuck))
        << "a stolen color lives on its thief";
  }
  EXPECT_EQ(q.out_of_order.load(), 0) << "a stolen color must carry its backlog in order";
  EXPECT_GE(steals_during, 1u);
  EXPECT_LE(steals_during, static_cast<std::uint64_t>(kColors) * kPerColor);
}

TEST(Steal, WithoutStealingQueuedColorsWait) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = SchedulerKind::kPerThread});
  Queued home0, home1;
  int stuck = -1;
  bool other_worker_ran = false;
  int ran_while_stuck = -1;
  std::atomic<bool> finished{false};
  rt.cpucb(Closure(
      [&] {
        stuck = Runtime::worker_index();  // color 0 lives on worker 0
        schedule_behind(rt, home0, 0);    // wait behind us
        schedule_behind(rt, home1, 1);    // run on the other worker
        other_worker_ran =
            wait_until([&] { return home1.done.load() == kColors * kPerColor; }, 3s);
        std::this_thread::sleep_for(50ms);  // give a thief (there is none) time
        ran_while_stuck = home0.done.load();
      },
      0));
  // Color 1000 lives on worker 0 too: it polls until the queued colors ran.
  std::function<void()> check_done = [&] {
    if (home0.done.load() == kColors * kPerColor) {
      finished = true;
      rt.stop();
    } else {
      rt.cpucb(Closure([&] { check_done(); }, 1000));
    }
  };
  rt.cpucb(Closure([&] { check_done(); }, 1000));
  EXPECT_EQ(run_bounded(rt), 0) << "timed out";
  EXPECT_EQ(stuck, 0);
  EXPECT_TRUE(other_worker_ran);
  EXPECT_EQ(ran_while_stuck, 0) << "kPerThread must not move colors between workers";
  EXPECT_TRUE(finished);
  for (int i = 0; i < kColors; ++i) {
    EXPECT_EQ(home0.worker[i].load(), 0);
    EXPECT_EQ(home1.worker[i].load(), 1);
  }
  EXPECT_EQ(home0.out_of_order.load() + home1.out_of_order.load(), 0);
  for (const WorkerStats& w : rt.worker_stats()) EXPECT_EQ(w.steals, 0u);
}

// A worker running a long chain of one color keeps it (affinity); nothing
// is stolen when there is nothing else queued behind it.
TEST(Steal, LoneColorIsNotStolenBetweenBatches) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = SchedulerKind::kStealing, .batch = 8});
  int n = 0;
  std::vector<int> workers;
  std::function<void()> step = [&] {
    workers.push_back(Runtime::worker_index());
    if (++n == 20000) {
      rt.stop();
      return;
    }
    rt.cpucb(Closure([&] { step(); }, 1));
  };
  rt.cpucb(Closure([&] { step(); }, 1));
  EXPECT_EQ(run_bounded(rt), 0);
  int moves = 0;
  for (std::size_t i = 1; i < workers.size(); ++i) moves += workers[i] != workers[i - 1];
  EXPECT_LE(moves, 2) << "a lone color bounced between workers";
}

}  // namespace
}  // namespace asmp
