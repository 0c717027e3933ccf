// stop() with work still pending, run() again, and destruction of a Runtime
// that still holds callbacks, timers, fd and signal callbacks.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::DtorCount;
using testing::Pipe;
using testing::run_bounded;
using testing::Tracked;
using namespace std::chrono_literals;

class ShutdownTest : public ::testing::TestWithParam<SchedulerKind> {};

TEST_P(ShutdownTest, StopWithPendingWorkDestroysItWithoutRunning) {
  DtorCount dc;
  std::atomic<int> ran{0};
  constexpr int kCallbacks = 2000;
  Pipe p;
  ASSERT_GE(p.rd, 0);
  {
    Runtime rt(RuntimeOptions{.threads = 2, .scheduler = GetParam()});
    for (int i = 0; i < kCallbacks; ++i) {
      rt.cpucb(Closure(
          [&, i, t = Tracked(dc)] {
            ran.fetch_add(1);
            if (i == 10) rt.stop(3);
          },
          static_cast<color_t>(i % 7)));
    }
    rt.delaycb(1h, [t = Tracked(dc)] { ADD_FAILURE() << "timer ran"; });
    rt.fdcb(p.rd, selread, [t = Tracked(dc)] { ADD_FAILURE() << "fd callback ran"; });
    rt.sigcb(SIGUSR1, [t = Tracked(dc)] { ADD_FAILURE() << "signal callback ran"; });
    EXPECT_EQ(run_bounded(rt), 3);
    EXPECT_LT(ran.load(), kCallbacks) << "stop() should leave work pending";
    EXPECT_EQ(dc.destroyed.load(), ran.load()) << "only callbacks that ran are gone so far";
    rt.fdcb(p.rd, selread, [t = Tracked(dc)] {});  // replaces: the old one is destroyed
    EXPECT_EQ(dc.destroyed.load(), ran.load() + 1);
  }
  EXPECT_EQ(dc.destroyed.load(), kCallbacks + 4) << "~Runtime destroys every pending callback once";
}

// stop() from a foreign thread while every worker is busy with endless
// chains on many colors: run() returns promptly, and destruction frees every
// chain's pending callback.
TEST_P(ShutdownTest, StopFromForeignThreadDuringEndlessWork) {
  DtorCount dc;
  std::atomic<int> created{0};
  {
    Runtime rt(RuntimeOptions{.threads = 3, .scheduler = GetParam()});
    std::function<void(color_t)> step = [&](color_t c) {
      created.fetch_add(1);
      rt.cpucb(Closure([&, c, t = Tracked(dc)] { step(c); }, c));
    };
    for (color_t c = 0; c < 100; ++c) step(c);
    std::thread stopper([&] {
      std::this_thread::sleep_for(50ms);
      rt.stop(9);
    });
    auto t0 = Clock::now();
    EXPECT_EQ(run_bounded(rt), 9);
    EXPECT_LT(Clock::now() - t0, 3s);
    stopper.join();
    EXPECT_EQ(created.load() - dc.destroyed.load(), 100) << "one pending callback per chain";
  }
  EXPECT_EQ(dc.destroyed.load(), created.load());
}

// run() after stop() picks up where it left off, order per color intact.
TEST_P(ShutdownTest, RunAgainContinuesPendingWork) {
  Runtime rt(RuntimeOptions{.threads = 2, .scheduler = GetParam()});
  constexpr int kColors = 30, kEach = 100;
  std::vector<int> next(kColors, 0);  // per color, plain
  std::atomic<int> total{0}, out_of_order{0};
  for (int k = 0; k < kEach; ++k) {
    for (int c = 0; c < kColors; ++c) {
      rt.cpucb(Closure(
          [&, c, k] {
            if (next[c]++ != k) ++out_of_order;
            int n = total.fetch_add(1) + 1;
            if (n == kColors * kEach / 3) rt.stop(1);
            if (n == kColors * kEach) rt.stop(2);
          },
          static_cast<color_t>(c)));
    }
  }
  EXPECT_EQ(run_bounded(rt), 1);
  int after_first = total.load();
  EXPECT_LT(after_first, kColors * kEach);
  EXPECT_EQ(run_bounded(rt), 2) << "the second run should finish the pending work";
  EXPECT_EQ(total.load(), kColors * kEach);
  EXPECT_EQ(out_of_order.load(), 0);
  // And a third run with fresh work.
  rt.cpucb([&] { rt.stop(4); });
  EXPECT_EQ(run_bounded(rt), 4);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, ShutdownTest, ::testing::ValuesIn(testing::kAllSchedulerKinds),
                         testing::kind_param_name);

TEST(Shutdown, StopFromInsideWithOneWorkerLeavesRestQueued) {
  Runtime rt(RuntimeOptions{.threads = 1});
  int ran = 0;
  for (int i = 0; i < 10; ++i)
    rt.cpucb([&, i] {
      ++ran;
      if (i == 3) rt.stop();
    });
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(ran, 4) << "the worker finishes the callback it is in, and no more";
  rt.cpucb([&] { rt.stop(); });
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(ran, 10);
}

// The pattern of a runtime on a thread of its own: start run() on a thread,
// later stop() and join. stop() may land before the thread reaches run();
// that run() must still return (with stop's code), not wait forever.
TEST(Shutdown, StopBeforeRunStillEndsThatRun) {
  testing::finish_within(20s, "run() on a thread after an early stop()", [] {
    for (int i = 0; i < 50; ++i) {  // before the fix, the first try hung
      Runtime rt(RuntimeOptions{.threads = 2});
      int code = -1;
      std::thread loop([&] { code = rt.run(); });
      rt.stop(i);
      loop.join();
      ASSERT_EQ(code, i);
    }
  });
  // The stop is consumed by the run it ended: the next run() runs normally.
  Runtime rt(RuntimeOptions{.threads = 2});
  rt.stop(1);
  EXPECT_EQ(run_bounded(rt), 1);
  bool ran = false;
  rt.cpucb([&] {
    ran = true;
    rt.stop(2);
  });
  EXPECT_EQ(run_bounded(rt), 2);
  EXPECT_TRUE(ran);
}

// Objects whose destructors talk to the runtime (cancel their timer,
// unregister their fd, schedule a last callback), destroyed by ~Runtime.
class Session {
 public:
  Session(Runtime& rt, int fd) : rt_(rt), fd_(fd) {}
  ~Session() {
    rt_.timecb_remove(timer);
    rt_.fdcb(fd_, selread, nullptr);
    rt_.cpucb([] {});
    ++destroyed;
  }
  void on_timer() {}
  void on_read() {}
  TimerId timer = 0;
  static inline std::atomic<int> destroyed{0};

 private:
  Runtime& rt_;
  int fd_;
};

TEST(Shutdown, DestroyingRuntimeWhoseCallbacksOwnObjectsThatCallBack) {
  Pipe p1, p2;
  ASSERT_GE(p2.rd, 0);
  Session::destroyed = 0;
  testing::finish_within(5s, "~Runtime with self-cancelling objects", [&] {
    Runtime rt(RuntimeOptions{.threads = 2});
    {
      auto timed = std::make_shared<Session>(rt, p1.rd);
      timed->timer = rt.delaycb(1h, wrap(timed, &Session::on_timer));
      auto reading = std::make_shared<Session>(rt, p2.rd);
      rt.fdcb(p2.rd, selread, wrap(reading, &Session::on_read));
      auto queued = std::make_shared<Session>(rt, p1.wr);
      rt.cpucb(wrap(queued, &Session::on_read));
    }
    EXPECT_EQ(Session::destroyed.load(), 0);
  });
  EXPECT_EQ(Session::destroyed.load(), 3);
}

TEST(Shutdown, FreeFunctionsActOnCurrentRuntime) {
  Runtime rt(RuntimeOptions{.threads = 2});
  EXPECT_EQ(Runtime::current(), &rt);
  EXPECT_EQ(&default_runtime(), &rt);
  int n = 0;
  asmp::cpucb([&] { ++n; });
  asmp::delaycb(1ms, [&] {
    ++n;
    EXPECT_EQ(Runtime::current(), &rt);
    asmp::shutdown(6);
  });
  testing::Watchdog wd(rt);
  EXPECT_EQ(amain(), 6);
  EXPECT_FALSE(wd.fired());
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace asmp
