// scheduler.cc: slots, ready queues, the worker loop, stealing and sleep.
// The protocol is described at the top of runtime_impl.h.
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>

#include "runtime_impl.h"

namespace asmp {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

#if defined(__SANITIZE_THREAD__)
#define ASMP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ASMP_TSAN 1
#endif
#endif

// While a worker sleeps on its futex, under ThreadSanitizer only: the
// asynchronous signals are blocked in its thread. TSan runs a signal's
// handler only once the interrupted thread enters a call it intercepts
// (or is in one it counts as blocking, as epoll_wait); futex(2), which
// std::atomic::wait makes directly, is neither, so a signal the kernel gave
// a worker asleep there waited until something woke that worker: seconds
// in an idle sfsd (SIGUSR1 answered after 4.4 s and 5 s in 40 tries, and a
// test that waited 5 s for it failed in CI). Blocked here, the kernel gives
// the signal to a thread that takes it now: the one in epoll_wait, whose
// handler writes the self-pipe it waits on. Without TSan the handler runs
// at once wherever the signal lands, and this is nothing.
class SignalsElsewhere {
 public:
#ifdef ASMP_TSAN
  SignalsElsewhere() {
    sigset_t async;
    sigfillset(&async);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&async, sig);
    pthread_sigmask(SIG_BLOCK, &async, &saved_);
  }
  ~SignalsElsewhere() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

 private:
  sigset_t saved_;
#endif
};

constexpr std::size_t kMaxFreeTasks = 1 << 14;  // per worker

// Light batches run in a row at most this many times while another lane
// waits (see "Light lane" in runtime_impl.h).
constexpr unsigned kLightStreak = 8;

// The running average of a slot's batch length after a batch of `ns`: up
// fast (half way), down slowly (an eighth of the way), so that a color
// whose turns alternate between small and bulk work (a 1 MiB seal after
// each small request) stays out of the light lane, and one bulk turn keeps
// a color out of it for several short ones.
inline std::uint32_t next_avg_batch(std::uint32_t avg, std::int64_t ns) {
  const std::int64_t t = std::clamp<std::int64_t>(ns, 0, UINT32_MAX);
  const std::int64_t a = avg;
  return static_cast<std::uint32_t>(t > a ? a + (t - a) / 2 : a - (a - t) / 8);
}

}  // namespace

void SpinLock::lock() noexcept {
  for (int spins = 0;; ++spins) {
    if (!flag_.exchange(true, std::memory_order_acquire)) return;
    while (flag_.load(std::memory_order_relaxed)) {
      // The holder may have been preempted (2 cores, many threads): yield
      // rather than burn its time slice.
      if (++spins > 256) {
        sched_yield();
        spins = 0;
      } else {
        cpu_relax();
      }
    }
  }
}

ThreadContext& tls() {
  static thread_local ThreadContext ctx;
  return ctx;
}

// ---- tasks -----------------------------------------------------------------

// Both take the calling thread's worker of this runtime (nullptr if the
// caller is not one), found once per push or run by the caller: the free
// list is touched only by its own worker's thread.
inline Task* Runtime::Impl::alloc_task(Worker* w, Closure&& cb) {
  Task* task;
  if (freelists && w && w->free_list) {
    task = w->free_list;
    w->free_list = task->next;
    --w->free_count;
  } else {
    task = new Task;
  }
  task->cb = std::move(cb);
  return task;
}

inline void Runtime::Impl::free_task(Worker* w, Task* task) {
  task->cb.reset();
  if (freelists && w && w->free_count < kMaxFreeTasks) {
    task->next = w->free_list;
    w->free_list = task;
    ++w->free_count;
    return;
  }
  delete task;
}

// ---- pushing ---------------------------------------------------------------

void Runtime::Impl::push(Closure&& cb) { push_to_slot<false>(std::move(cb)); }
void Runtime::Impl::push_urgent(Closure&& cb) { push_to_slot<true>(std::move(cb)); }

// Separate instances so that the hot one (cpucb) carries no flag.
template <bool Urgent>
inline void Runtime::Impl::push_to_slot(Closure&& cb) {
  if (destroying_) return;  // a destructor run during ~Runtime scheduled more
  Slot& s = slot_for(cb.color());
  ThreadContext& t = tls();
  Worker* w = t.impl == this ? t.worker : nullptr;
  Task* task = alloc_task(w, std::move(cb));
  task->next = nullptr;
  if (w && w->current == &s) {
    // We are the slot's runner: append in order, behind anything another
    // thread pushed before us.
    if (s.inbox.load(std::memory_order_relaxed) != nullptr) drain_inbox(s);
    if (s.tail)
      s.tail->next = task;
    else
      s.head = task;
    s.tail = task;
    return;
  }
  foreign_push(s, task, Urgent);
}

void Runtime::Impl::foreign_push(Slot& s, Task* task, bool urgent) {
  Task* old = s.inbox.load(std::memory_order_relaxed);
  for (;;) {
    task->next = (old == kIdle) ? nullptr : old;
    if (s.inbox.compare_exchange_weak(old, task, std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
      break;
  }
  if (old == kIdle) make_ready(s, urgent);
}

// Moves the inbox (a LIFO stack) to the tail of the slot's FIFO.
void Runtime::Impl::drain_inbox(Slot& s) {
  Task* stack = s.inbox.exchange(nullptr, std::memory_order_acquire);
  assert(stack != kIdle);
  Task* fifo = nullptr;
  Task* last = stack;
  while (stack) {
    Task* next = stack->next;
    stack->next = fifo;
    fifo = stack;
    stack = next;
  }
  if (!fifo) return;
  if (s.tail)
    s.tail->next = fifo;
  else
    s.head = fifo;
  s.tail = last;
}

Worker& Runtime::Impl::queue_of(Slot& s) {
  if (shared_queue) return *workers_[0];
  return *workers_[s.owner.load(std::memory_order_relaxed)];
}

void Runtime::Impl::make_ready(Slot& s, bool urgent) {
  Worker& q = queue_of(s);
  // A color never run (average 0) counts as light, so that a hand-off to a
  // fresh color goes ahead; but an event's goes to the event lane. When a
  // program starts with many fresh colors queued, all of them "light" until
  // each has had a turn, an event queued behind them in the light lane
  // waited for every one (PollTest: ~20 ms, 380 of its worker's 960
  // callbacks); the event lane bounds that by kLightStreak batches.
  const std::uint32_t avg = s.avg_batch_ns.load(std::memory_order_relaxed);
  const bool light = light_batch_ns_ > 0 && avg < light_batch_ns_ && !(urgent && avg == 0);
  q.lock.lock();
  s.next_ready = nullptr;
  Slot*& head = light ? q.lq_head : urgent ? q.uq_head : q.rq_head;
  Slot*& tail = light ? q.lq_tail : urgent ? q.uq_tail : q.rq_tail;
  if (tail)
    tail->next_ready = &s;
  else
    head = &s;
  tail = &s;
  std::size_t len = q.rq_len.load(std::memory_order_relaxed) + 1;
  q.rq_len.store(len, std::memory_order_seq_cst);
  q.lock.unlock();

  if (shared_queue) {
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_sleeper();
    return;
  }
  if (q.state.load(std::memory_order_seq_cst) != kRunning) {
    wake(q);
  } else if (stealing && sleepers_.load(std::memory_order_seq_cst) > 0) {
    // Its worker is busy: let an idle one come and steal. Not when a worker
    // merely rotates its only color to the back of its own queue; a thief
    // would take it away from its cache for nothing.
    ThreadContext& t = tls();
    bool rotating_only_color = t.impl == this && t.worker == &q && q.current == nullptr && len == 1;
    if (!rotating_only_color) wake_sleeper();
  }
}

namespace {

// Unlinks the head of a lane (non-empty).
inline Slot* pop_lane(Slot*& head, Slot*& tail) {
  Slot* s = head;
  head = s->next_ready;
  if (!head) tail = nullptr;
  return s;
}

}  // namespace

// Pops the oldest slot of queue q for worker w: the light lane first (at
// most kLightStreak times in a row while another lane waits), then the
// urgent and the normal lane in turn (either one alone when the other is
// empty): an event waits for at most one normal batch, and a flood of
// events still leaves queued work every other batch. w is marked busy
// before the queue length drops, so a thief that sees the shorter queue
// also sees that w is running something and may take a lone color queued
// behind it.
Slot* Runtime::Impl::pop_ready(Worker& q, Worker& w) {
  if (q.rq_len.load(std::memory_order_relaxed) == 0) return nullptr;
  q.lock.lock();
  Slot* s = nullptr;
  if (q.lq_head && (q.light_streak < kLightStreak || (!q.uq_head && !q.rq_head))) {
    s = pop_lane(q.lq_head, q.lq_tail);
    ++q.light_streak;
  } else if (q.uq_head && (q.urgent_turn || !q.rq_head)) {
    s = pop_lane(q.uq_head, q.uq_tail);
    q.urgent_turn = false;
    q.light_streak = 0;
  } else if (q.rq_head) {
    s = pop_lane(q.rq_head, q.rq_tail);
    q.urgent_turn = true;
    q.light_streak = 0;
  }
  if (s) {
    w.busy.store(true, std::memory_order_relaxed);
    q.rq_len.store(q.rq_len.load(std::memory_order_relaxed) - 1, std::memory_order_seq_cst);
  }
  q.lock.unlock();
  return s;
}

// Worth stealing from v: it has a color queued behind the one it is
// running. A lone queued color on a worker between two batches is not taken:
// that worker is about to run it again, with its cache warm.
bool Runtime::Impl::stealable(const Worker& v) const {
  std::size_t len = v.rq_len.load(std::memory_order_seq_cst);
  return len >= 2 || (len == 1 && v.busy.load(std::memory_order_relaxed));
}

// Takes the oldest queued (hence not running) color of another worker,
// with its whole backlog.
Slot* Runtime::Impl::steal(Worker& w) {
  for (unsigned i = 0; i + 1 < nworkers; ++i) {
    // Each other worker once; the first one tried rotates after each steal.
    unsigned offset = 1 + (w.steal_from + i) % (nworkers - 1);
    Worker& v = *workers_[(w.index + offset) % nworkers];
    if (&v == &w || !stealable(v)) continue;
    if (!v.lock.try_lock()) continue;
    // A light color first, then an event's: they are the ones waiting
    // for a worker.
    Slot* s = v.lq_head   ? pop_lane(v.lq_head, v.lq_tail)
              : v.uq_head ? pop_lane(v.uq_head, v.uq_tail)
              : v.rq_head ? pop_lane(v.rq_head, v.rq_tail)
                          : nullptr;
    if (s) {
      v.rq_len.store(v.rq_len.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      s->owner.store(w.index, std::memory_order_relaxed);
    }
    v.lock.unlock();
    if (s) {
      w.steals.bump();
      ++w.steal_from;
      return s;
    }
  }
  return nullptr;
}

// ---- running ---------------------------------------------------------------

void Runtime::Impl::run_slot(Worker& w, Slot& s) {
  ThreadContext& t = tls();
  w.current = &s;
  w.busy.store(true, std::memory_order_relaxed);
  unsigned n = 0;
  unsigned limit = opts.batch;  // lowered to n to end the batch early (clock_check)
  // The clock countdown lives in a register while the batch runs: this loop
  // is the runtime's hot path (a few ns per callback).
  unsigned countdown = w.clock_countdown;
  std::int64_t first_read = 0;  // clock at this batch's first read, or 0
  std::uint64_t runs = s.runs.load(std::memory_order_relaxed);
  std::uint64_t cbs = w.callbacks.get();
  // Added once the slot is idle or queued again, when another worker may
  // already run it: hence fetch_add.
  const bool account = opts.color_cpu;
  const std::uint64_t cpu_start = account ? thread_cpu_ns() : 0;
  // The batch's length, for the light lane: stored before the slot is let
  // go (queued again or idle), so that whoever queues it next reads it.
  const bool timed = light_batch_ns_ > 0;
  const std::int64_t batch_start = timed ? mono_ns() : 0;
  const std::uint32_t avg0 = s.avg_batch_ns.load(std::memory_order_relaxed);
  auto time_batch = [&] {
    if (timed) s.avg_batch_ns.store(next_avg_batch(avg0, mono_ns() - batch_start), std::memory_order_relaxed);
  };
  auto account_batch = [&] {
    if (!account) return;
    const std::uint64_t used = thread_cpu_ns() - cpu_start;
    s.cpu_ns.fetch_add(used, std::memory_order_relaxed);
    w.batch_cpu_ns.v.store(w.batch_cpu_ns.get() + used, std::memory_order_relaxed);
  };
  for (;;) {
    if (!s.head) {
      if (s.inbox.load(std::memory_order_relaxed) != nullptr) {
        drain_inbox(s);
        continue;
      }
      time_batch();
      Task* expected = nullptr;
      if (s.inbox.compare_exchange_strong(expected, kIdle, std::memory_order_acq_rel,
                                          std::memory_order_relaxed))
        break;  // idle: the next pusher queues it again
      continue;
    }
    if (n >= limit || stop_.load(std::memory_order_relaxed)) {
      w.clock_countdown = countdown;
      w.current = nullptr;  // rotate: back to the tail of its queue
      w.busy.store(false, std::memory_order_relaxed);
      s.runs.store(runs, std::memory_order_relaxed);
      w.callbacks.v.store(cbs, std::memory_order_relaxed);
      account_batch();
      time_batch();
      make_ready(s);
      return;
    }
    Task* task = s.head;
    s.head = task->next;
    if (!s.head) s.tail = nullptr;
    t.color = task->cb.color();
    task->cb();
    ++n;
    ++runs;
    ++cbs;
    free_task(&w, task);  // run_slot runs on w's own thread
    // Polling by time: a countdown, so the clock is read once per window,
    // not per callback.
    if (--countdown == 0) {
      if (clock_check(w, first_read)) limit = n;
      countdown = w.clock_countdown;
    }
  }
  w.clock_countdown = countdown;
  t.color = 0;
  w.current = nullptr;
  w.busy.store(false, std::memory_order_relaxed);
  s.runs.store(runs, std::memory_order_relaxed);
  w.callbacks.v.store(cbs, std::memory_order_relaxed);
  account_batch();
}

bool Runtime::Impl::has_work(Worker& w) const {
  if (stop_.load(std::memory_order_seq_cst)) return true;
  const Worker& q = shared_queue ? *workers_[0] : w;
  if (q.rq_len.load(std::memory_order_seq_cst) > 0) return true;
  if (stealing) {
    for (Worker* v : workers_)
      if (v != &w && stealable(*v)) return true;
  }
  return false;
}

// noexcept: a callback that throws ends the process (std::terminate) with
// one worker as with many. Unwinding out of run() would leave the slot it
// ran neither idle nor queued (its color dead), running_ set, and this
// thread's ThreadContext pointing at the runtime after its death.
void Runtime::Impl::worker_loop(Worker& w) noexcept {
  ThreadContext& t = tls();
  ThreadContext saved = t;
  t.impl = this;
  t.worker = &w;
  t.color = 0;
  if (opts.color_cpu) {
    clockid_t cid{};
    if (pthread_getcpuclockid(pthread_self(), &cid) == 0) {
      w.cpu_clock.store(cid, std::memory_order_relaxed);
      w.has_cpu_clock.store(true, std::memory_order_release);
    }
  }
  unsigned batches = 0;
  Worker& q = shared_queue ? *workers_[0] : w;
  while (!stop_.load(std::memory_order_acquire)) {
    Slot* s = pop_ready(q, w);
    if (!s && stealing) s = steal(w);
    if (!s) {
      idle(w);
      continue;
    }
    run_slot(w, *s);
    if (w.poll_now || (opts.poll_every && ++batches >= opts.poll_every)) {
      // Due by time (or by the optional batch count): poll without blocking.
      // If another worker holds the poller it is polling now; check again
      // one interval later.
      w.poll_now = false;
      batches = 0;
      if (!try_poll(w, 0)) w.next_poll_at = mono_ns() + poll_interval_ns_;
    }
  }
  t = saved;
}

// The countdown ran out. Sizes the next window so that the clock is read
// about every clock_check_ns_ of callback time (at most every 256
// callbacks: a run of short callbacks followed by long ones is noticed
// within 256 of them). Sets w.poll_now if no one has polled for
// poll_interval. Returns whether to end the batch: when a poll is due, or
// when the batch has run for a window's time since its first read
// (first_read, set here), so that the colors queued behind it get their
// turn however long its callbacks are.
bool Runtime::Impl::clock_check(Worker& w, std::int64_t& first_read) {
  constexpr std::int64_t kMaxWindow = 256;
  std::int64_t now = mono_ns();
  std::int64_t spent = now - w.window_start;
  std::int64_t next = spent > 0 ? static_cast<std::int64_t>(w.clock_window) * clock_check_ns_ / spent
                                : kMaxWindow;
  next = std::clamp<std::int64_t>(next, 1, kMaxWindow);
  w.clock_window = static_cast<unsigned>(next);
  w.clock_countdown = w.clock_window;
  w.window_start = now;
  if (first_read == 0) first_read = now;
  bool long_batch = now - first_read >= clock_check_ns_;
  if (now < w.next_poll_at) return long_batch;
  std::int64_t last = last_poll_ns_.load(std::memory_order_relaxed);
  if (now - last < poll_interval_ns_) {
    w.next_poll_at = last + poll_interval_ns_;
    return long_batch;
  }
  w.poll_now = true;
  return true;
}

void Runtime::Impl::idle(Worker& w) {
  for (unsigned i = 0; i < idle_spins_; ++i) {
    if (has_work(w)) return;
    if ((i & 255) == 255 && try_poll(w, 0)) {
      if (has_work(w)) return;
    }
    cpu_relax();
  }
  // Nothing to do: sleep, in epoll_wait if no one else is polling.
  w.sleeps.bump();
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  if (!poll_busy_.exchange(true, std::memory_order_acquire)) {
    w.state.store(kSleepEpoll, std::memory_order_seq_cst);
    poll_once(w, has_work(w) ? 0 : -1);
    release_poller();
  } else {
    std::uint32_t seq = w.futex.load(std::memory_order_seq_cst);
    w.state.store(kSleepFutex, std::memory_order_seq_cst);
    // Not if the poller was released meanwhile: then go round and take it.
    if (!has_work(w) && poll_busy_.load(std::memory_order_seq_cst)) {
      [[maybe_unused]] SignalsElsewhere signals_elsewhere;
      w.futex.wait(seq, std::memory_order_seq_cst);
    }
  }
  w.state.store(kRunning, std::memory_order_seq_cst);
  sleepers_.fetch_sub(1, std::memory_order_seq_cst);
}

// Claims a sleeping w by setting its state back to kRunning, then wakes it;
// returns false if w was not asleep. Without the claim, two pushes in a row
// both picked the first sleeper (still marked asleep while it wakes up) and
// another sleeper stayed asleep with a stealable color queued. A pusher that
// now sees kRunning is safe: w is sure to wake and will store its state
// again before it next checks for work (the Dekker pair in idle()).
bool Runtime::Impl::wake(Worker& w) {
  std::uint32_t st = w.state.load(std::memory_order_seq_cst);
  do {
    if (st == kRunning) return false;
  } while (!w.state.compare_exchange_weak(st, kRunning, std::memory_order_seq_cst));
  if (st == kSleepFutex) {
    w.futex.fetch_add(1, std::memory_order_seq_cst);
    w.futex.notify_one();
  } else {
    poke_poller();
  }
  w.wakeups.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Runtime::Impl::wake_sleeper() {
  for (Worker* w : workers_)
    if (wake(*w)) return;
}

void Runtime::Impl::stop_all(int code) {
  exit_code_.store(code, std::memory_order_relaxed);
  stop_.store(true, std::memory_order_seq_cst);
  for (Worker* w : workers_) {
    w->futex.fetch_add(1, std::memory_order_seq_cst);
    w->futex.notify_one();
  }
  poke_poller();
}

}  // namespace asmp
