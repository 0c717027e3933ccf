// review_test.cc: regression tests from a concurrency review of the runtime.
// Each one pins down a specific interleaving that once went wrong (see the
// commit that added it for the story).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::finish_within;
using testing::busy_for;
using testing::run_bounded;
using testing::wait_until;
using namespace std::chrono_literals;

// Two colors become stealable behind a stuck worker, one right after the
// other, while two workers sleep (one on its futex, one in epoll_wait). Each
// push must wake a *different* sleeper: waking the same one twice leaves the
// second color waiting for the stuck worker although a worker sleeps.
//   3 workers; color c starts on worker c % 3.
//   color 0 (W0): busy 100 ms, so that W2 goes idle first and sleeps in
//                 epoll; W0 then sleeps on its futex.
//   color 1 (W1): after 250 ms pushes B (color 4) and C (color 7), both on
//                 W1, and stays stuck until B has finished.
//   B waits (up to 2 s) for C to have run: only another worker can run C.
TEST(Review, EachStealablePushWakesADistinctSleeper) {
  Runtime rt(RuntimeOptions{.threads = 3, .scheduler = SchedulerKind::kStealing});
  std::atomic<bool> c_ran{false}, b_done{false};
  bool b_saw_c = false;
  rt.cpucb(Closure([] { busy_for(100ms); }, 0));
  rt.cpucb(Closure(
      [&] {
        std::this_thread::sleep_for(250ms);
        rt.cpucb(Closure(
            [&] {
              b_saw_c = wait_until([&] { return c_ran.load(); }, 2000ms);
              b_done = true;
            },
            4));
        rt.cpucb(Closure([&] { c_ran = true; }, 7));
        wait_until([&] { return b_done.load(); }, 3000ms);
        rt.stop(0);
      },
      1));
  ASSERT_EQ(run_bounded(rt), 0);
  EXPECT_TRUE(b_saw_c) << "color 7 stayed queued behind a stuck worker while a worker slept";
}

// A callback that throws ends the process, whatever the number of workers.
// With one worker the exception used to escape run() and leave the runtime
// half-run: its slot neither idle nor queued, run() "already running", and
// the thread's worker identity pointing at the runtime after its death.
TEST(ReviewDeathTest, ThrowingCallbackTerminatesWithOneWorker) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Runtime rt(RuntimeOptions{.threads = 1});
        rt.cpucb(Closure([] { throw std::runtime_error("boom"); }));
        try {
          rt.run();
        } catch (...) {
          // The exception escaped run(): leave quietly, so that the death
          // test sees no death and fails.
          std::_Exit(0);
        }
      },
      "");
}

// fdcb() on an fd that epoll refuses (a regular file: EPERM) returns the
// error; the callback it was given must be destroyed outside fd_mu_, because
// its destructor may call fdcb (an object unregistering itself).
TEST(Review, FdcbAddFailureDestroysCallbackUnlocked) {
  Runtime rt(RuntimeOptions{.threads = 1});
  testing::Pipe p;
  int file = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(file, 0);
  struct Unregisters {
    Runtime& rt;
    int fd;
    ~Unregisters() { rt.fdcb(fd, selread, nullptr); }
  };
  finish_within(5s, "fdcb on /dev/null", [&] {
    std::shared_ptr<Unregisters> guard(new Unregisters{rt, p.rd});
    Closure cb([g = std::move(guard)] {});
    EXPECT_EQ(rt.fdcb(file, selread, std::move(cb)), EPERM);
  });
  ::close(file);
}

// delaycb(nanoseconds::max()) means "practically never". now + delay used to
// overflow (signed, undefined; in practice it wrapped to a deadline in the
// past) and the timer fired at once: early by about 292 years.
TEST(Review, HugeDelayDoesNotWrapIntoThePast) {
  Runtime rt(RuntimeOptions{.threads = 1});
  std::atomic<bool> fired{false};
  TimerId id = rt.delaycb(std::chrono::nanoseconds::max(), Closure([&] { fired = true; }));
  rt.delaycb(100ms, Closure([&] { rt.stop(0); }));
  ASSERT_EQ(run_bounded(rt), 0);
  EXPECT_FALSE(fired.load());
  EXPECT_TRUE(rt.timecb_remove(id));
}

}  // namespace
}  // namespace asmp
