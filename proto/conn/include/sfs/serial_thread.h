// serial_thread.h: one thread that runs posted jobs one at a time, in
// order, for work that may block and so must not run on a runtime's
// workers (SecureServerOptions::run_handshake: sfsd's handshakes ask the
// key holder, another process). A job hands its result back with
// Runtime::cpucb. Jobs still queued when it is destroyed are dropped
// without running; the one running is waited for.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace sfs {

class SerialThread {
 public:
  SerialThread() : thread_([this] { loop(); }) {}
  ~SerialThread() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      dropped.swap(jobs_);
    }
    cv_.notify_one();
    thread_.join();
  }
  SerialThread(const SerialThread&) = delete;
  SerialThread& operator=(const SerialThread&) = delete;

  void post(std::function<void()> job) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  // post() as a function object; this must outlive every call of it.
  std::function<void(std::function<void()>)> runner() {
    return [this](std::function<void()> job) { post(std::move(job)); };
  }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();
      job = nullptr;  // its captures go here, not under the lock
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the rest exists
};

}  // namespace sfs
