// test_util.h: helpers shared by the libasync_smp tests: a watchdog that
// bounds every run(), a bounded wait for a condition, a destructor counter,
// a non-blocking pipe, and busy work.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "asmp/runtime.h"

namespace asmp::testing {

using namespace std::chrono_literals;

// Every scheduler configuration, for suites parameterized over them.
inline constexpr SchedulerKind kAllSchedulerKinds[] = {
    SchedulerKind::kSharedQueue, SchedulerKind::kPerThread, SchedulerKind::kFreelist,
    SchedulerKind::kStealing};

// The gtest parameter name of a configuration ("shared_queue", ...).
inline std::string kind_param_name(const ::testing::TestParamInfo<SchedulerKind>& pi) {
  std::string name(to_string(pi.param));
  for (char& ch : name)
    if (ch == '-') ch = '_';
  return name;
}

// Keeps the calling thread busy (a callback's work) for d.
inline void busy_for(std::chrono::nanoseconds d) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

// Exit code a watchdog gives stop(); a test never uses it otherwise.
inline constexpr int kWatchdogCode = -77;

// Bounds a test: after `soft` it stops the runtime (the test then fails on
// fired()); if run() has still not returned 5 s later, or if the guarded
// scope never ends, the process aborts with a message, so no test hangs.
// Declare it after the Runtime it guards (it must die first).
class Watchdog {
 public:
  explicit Watchdog(Runtime& rt, std::chrono::milliseconds soft = 10s) : rt_(rt), soft_(soft) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Watchdog() {
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  bool fired() const { return fired_.load(); }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    if (cv_.wait_for(lk, soft_, [&] { return done_; })) return;
    fired_ = true;
    std::fprintf(stderr, "watchdog: test still running after %lld ms; stopping the runtime\n",
                 static_cast<long long>(soft_.count()));
    rt_.stop(kWatchdogCode);
    if (cv_.wait_for(lk, 5s, [&] { return done_; })) return;
    std::fprintf(stderr, "watchdog: test did not finish within 5 s of stop(); aborting (hang)\n");
    std::abort();
  }

  Runtime& rt_;
  std::chrono::milliseconds soft_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

// run() under a watchdog; returns run()'s code (kWatchdogCode on timeout).
inline int run_bounded(Runtime& rt, std::chrono::milliseconds soft = 10s) {
  Watchdog wd(rt, soft);
  return rt.run();
}

// Runs fn on a thread of its own; aborts the process if it has not returned
// within `limit` (a deadlock cannot be recovered from inside the process).
inline void finish_within(std::chrono::milliseconds limit, const char* what,
                          std::function<void()> fn) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    fn();
    std::lock_guard lk(mu);
    done = true;
    cv.notify_all();
  });
  {
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, limit, [&] { return done; })) {
      std::fprintf(stderr, "FATAL: %s did not return within %lld ms (deadlock?); aborting\n",
                   what, static_cast<long long>(limit.count()));
      std::abort();
    }
  }
  t.join();
}

// Busy-waits (yielding) until pred() or the deadline; returns pred().
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit) {
  auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() >= end) return pred();
    std::this_thread::yield();
  }
  return true;
}

// Counts destructions of live (not moved-from) instances.
struct DtorCount {
  std::atomic<int> destroyed{0};
};
class Tracked {
 public:
  explicit Tracked(DtorCount& c) : c_(&c) {}
  Tracked(Tracked&& o) noexcept : c_(o.c_) { o.c_ = nullptr; }
  Tracked& operator=(Tracked&&) = delete;
  ~Tracked() {
    if (c_) c_->destroyed.fetch_add(1);
  }

 private:
  DtorCount* c_;
};

// A pipe with both ends non-blocking; closes on destruction.
struct Pipe {
  int rd = -1, wr = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
      rd = fds[0];
      wr = fds[1];
    }
  }
  ~Pipe() {
    if (rd >= 0) ::close(rd);
    if (wr >= 0) ::close(wr);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

}  // namespace asmp::testing
