// fuzz_runtime.h: what the fuzz targets that need the event runtime share:
// one runtime for the whole process, run on a thread of its own, and a way
// for the fuzzer's thread to wait for something to happen on it.
//
// One worker thread: callbacks of every color then run one at a time, so
// an input's run depends on the input and the sockets only, not on how
// colors were spread over workers. The runtime is never destroyed (the
// fuzzer exits with it running); idle spinning is off because two fuzzers
// share the machine's cores.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "asmp/runtime.h"

namespace sfs_fuzz {

// How long a wait may last before it counts as a hang. Generous: the
// runtime's thread shares two cores with another fuzzer and, on a
// developer's machine, with builds; a real hang lasts forever.
inline constexpr int kHangSeconds = 30;

inline asmp::Runtime& runtime() {
  static asmp::Runtime* rt = [] {
    auto* r = new asmp::Runtime(asmp::RuntimeOptions{.threads = 1});
    std::thread([r] { r->run(); }).detach();
    return r;
  }();
  return *rt;
}

// A flag the runtime's callbacks raise and the fuzzer's thread waits for.
class Signal {
 public:
  void raise() {
    std::lock_guard lk(mu_);
    ++count_;
    cv_.notify_all();
  }
  // Waits until raised `n` times in all. A wait that lasts kHangSeconds is
  // a hang in the code under test: abort, so that libFuzzer saves the input.
  void wait_for(std::size_t n, const char* what) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, std::chrono::seconds(kHangSeconds), [&] { return count_ >= n; })) {
      std::fprintf(stderr, "fuzz: gave up waiting for %s\n", what);
      std::abort();
    }
  }
  std::size_t count() {
    std::lock_guard lk(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t count_ = 0;
};

// Runs fn on the runtime under `color` and waits for it to return.
inline void run_on(asmp::color_t color, std::function<void()> fn) {
  Signal done;
  runtime().cpucb(asmp::Closure(
      [&] {
        fn();
        done.raise();
      },
      color));
  done.wait_for(1, "a callback on the runtime");
}

}  // namespace sfs_fuzz
