// Worker counts: RuntimeOptions::threads, $ASMP_THREADS and the affinity
// mask; thread identity (worker_index, current, current_color).
#include <sched.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::run_bounded;
using namespace std::chrono_literals;

// Sets or unsets ASMP_THREADS for one scope.
class ScopedEnv {
 public:
  explicit ScopedEnv(const char* value) {
    if (const char* old = ::getenv("ASMP_THREADS")) old_ = old;
    if (value)
      ::setenv("ASMP_THREADS", value, 1);
    else
      ::unsetenv("ASMP_THREADS");
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv("ASMP_THREADS", old_->c_str(), 1);
    else
      ::unsetenv("ASMP_THREADS");
  }

 private:
  std::optional<std::string> old_;
};

unsigned affinity_count() {
  cpu_set_t set;
  EXPECT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  return static_cast<unsigned>(CPU_COUNT(&set));
}

// All `n` workers are inside a callback at the same moment, each running the
// color that lives on it (kPerThread: color c on worker c mod n).
void expect_workers_run_in_parallel(Runtime& rt, unsigned n) {
  std::atomic<unsigned> inside{0};
  std::atomic<int> misplaced{0};
  std::atomic<bool> all_met{true};
  std::set<int> seen;
  std::mutex mu;
  for (unsigned c = 0; c < n; ++c) {
    rt.cpucb(Closure(
        [&, c] {
          if (Runtime::worker_index() != static_cast<int>(c)) ++misplaced;
          {
            std::lock_guard lk(mu);
            seen.insert(Runtime::worker_index());
          }
          inside.fetch_add(1);
          if (!testing::wait_until([&] { return inside.load() >= n; }, 3s)) all_met = false;
          if (c == 0) rt.stop();
        },
        c));
  }
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_TRUE(all_met.load()) << "fewer than " << n << " workers ran at once";
  EXPECT_EQ(misplaced.load(), 0);
  EXPECT_EQ(seen.size(), n);
}

TEST(Threads, OptionSetsWorkerCount) {
  ScopedEnv env("7");  // the option wins over the environment
  for (unsigned n : {1u, 3u}) {
    Runtime rt(RuntimeOptions{.threads = n, .scheduler = SchedulerKind::kPerThread});
    EXPECT_EQ(rt.threads(), n);
    EXPECT_EQ(rt.worker_stats().size(), n);
    expect_workers_run_in_parallel(rt, n);
  }
}

TEST(Threads, EnvironmentVariableWhenOptionIsZero) {
  ScopedEnv env("3");
  EXPECT_EQ(default_thread_count(), 3u);
  Runtime rt(RuntimeOptions{.threads = 0, .scheduler = SchedulerKind::kPerThread});
  EXPECT_EQ(rt.threads(), 3u);
  expect_workers_run_in_parallel(rt, 3);
}

TEST(Threads, InvalidEnvironmentFallsBackToAffinity) {
  for (const char* bad : {"0", "abc", "", "-2", "3x", "99999"}) {
    ScopedEnv env(bad);
    EXPECT_EQ(default_thread_count(), affinity_count()) << "ASMP_THREADS=\"" << bad << "\"";
  }
}

TEST(Threads, DefaultIsAffinityMaskCount) {
  ScopedEnv env(nullptr);
  EXPECT_EQ(default_thread_count(), affinity_count());
  Runtime rt;
  EXPECT_EQ(rt.threads(), affinity_count());
  EXPECT_EQ(rt.scheduler(), SchedulerKind::kStealing);

  // As under `taskset -c <one cpu>`: one worker.
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  int first = -1;
  for (int i = 0; i < CPU_SETSIZE && first < 0; ++i)
    if (CPU_ISSET(i, &saved)) first = i;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  unsigned got = default_thread_count();
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(got, 1u);
}

TEST(Threads, IdentityInsideAndOutsideWorkers) {
  EXPECT_EQ(Runtime::worker_index(), -1);
  EXPECT_EQ(Runtime::current_color(), 0u);
  Runtime rt1(RuntimeOptions{.threads = 2});
  Runtime rt2(RuntimeOptions{.threads = 2});
  EXPECT_EQ(Runtime::current(), &rt2) << "outside workers: the latest runtime";
  Runtime* inside = nullptr;
  int index = -1;
  color_t color = 0;
  rt1.cpucb(Closure(
      [&] {
        inside = Runtime::current();
        index = Runtime::worker_index();
        color = Runtime::current_color();
        rt1.stop();
      },
      0xabcdef01u));
  EXPECT_EQ(run_bounded(rt1), 0);
  EXPECT_EQ(inside, &rt1) << "inside a worker: its own runtime";
  EXPECT_TRUE(index == 0 || index == 1);
  EXPECT_EQ(color, 0xabcdef01u);
  EXPECT_EQ(Runtime::worker_index(), -1) << "run()'s thread is no worker after run()";
  EXPECT_EQ(Runtime::current_color(), 0u);
}

// "Outside workers, the most recently constructed runtime that still
// exists": destroying the latest one falls back to the one before, so the
// free functions keep acting on a live runtime rather than creating one.
TEST(Threads, CurrentFallsBackToPreviousLiveRuntime) {
  Runtime outer(RuntimeOptions{.threads = 1});
  {
    Runtime inner(RuntimeOptions{.threads = 1});
    EXPECT_EQ(Runtime::current(), &inner);
    auto temp = std::make_unique<Runtime>(RuntimeOptions{.threads = 1});
    EXPECT_EQ(Runtime::current(), temp.get());
    Runtime* older = &inner;
    temp.reset();
    EXPECT_EQ(Runtime::current(), older);
  }
  EXPECT_EQ(Runtime::current(), &outer);
  EXPECT_EQ(&default_runtime(), &outer);
  bool ran = false;
  asmp::cpucb([&] {
    ran = true;
    asmp::shutdown();
  });
  EXPECT_EQ(run_bounded(outer), 0);
  EXPECT_TRUE(ran);
}

TEST(Threads, SchedulerNamesRoundTrip) {
  for (auto k : {SchedulerKind::kSharedQueue, SchedulerKind::kPerThread, SchedulerKind::kFreelist,
                 SchedulerKind::kStealing})
    EXPECT_EQ(parse_scheduler(to_string(k)), k);
  EXPECT_EQ(parse_scheduler("nope"), std::nullopt);
}

}  // namespace
}  // namespace asmp
