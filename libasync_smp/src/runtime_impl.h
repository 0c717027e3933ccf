// runtime_impl.h: the insides of Runtime, shared by scheduler.cc (queues,
// workers, stealing), poller.cc (epoll, fds, timers, signals) and
// runtime.cc (the public API). Not installed; nothing outside src/ sees it.
//
// Protocol, in prose
//
//   Task: one scheduled callback, exactly one cache line (next + Closure).
//
//   Slot: the unit of scheduling; color c lives in slot c & (slots-1).
//     inbox   atomic word. kIdle: the slot is in no queue and nobody runs it.
//             nullptr: it is queued or running, and nothing is in the inbox.
//             Otherwise a LIFO stack of tasks pushed by threads that are not
//             the slot's runner. Whoever swaps kIdle for a task owns the job
//             of putting the slot on a ready queue: so a slot is queued at
//             most once, and pushing to a busy slot costs one CAS.
//     head/tail  the slot's FIFO of tasks in scheduling order. Touched only
//             by the one worker that holds the slot (it popped it from a
//             ready queue); handed over with the slot through the queue lock.
//     owner   the worker whose ready queue the slot goes to. Changed only by
//             a thief, while the slot sits in the victim's queue (under the
//             victim's lock), so the slot carries its color's whole backlog
//             with it.
//   A runner that pushes to its own slot appends to head/tail directly,
//   after draining the inbox, so that a push that happened-before it stays
//   ahead (order per color is scheduling order). When head/tail is empty the
//   runner drains the inbox; when that is empty too it CASes nullptr->kIdle;
//   if that fails someone pushed, and it goes on.
//
//   Worker: a ready queue (spinlock; short critical sections), a free list
//   of tasks touched only by its own thread, counters written only by its
//   own thread (except `wakeups`), and a sleep word. The Dekker handshake
//   between a pusher and a worker going to sleep is: worker stores its
//   state (seq_cst) then re-checks its queue length; pusher stores the
//   queue length (seq_cst, under the lock) then loads the state.
//
//   Poller: epoll set holding the wake eventfd, a timerfd armed for the
//   earliest timer, the signal self-pipe and user fds (EPOLLONESHOT, re-armed
//   after each callback). Any worker may poll, one at a time (poll_busy_):
//   non-blocking when it has other work, blocking when idle. An idle worker
//   that finds the poller taken sleeps on its futex; whoever releases the
//   poller wakes such a sleeper to take it over, so that events are never
//   left waiting for a busy worker while another is idle.
//
//   Polling by time: a busy worker reads the clock every `clock_window`
//   callbacks (a countdown it sizes so that reads come about every
//   kClockCheck of callback time) and, if no one has polled for
//   poll_interval (last_poll_ns_), cuts its batch short and polls. A batch
//   that has run for a window's time since its first clock read is cut too,
//   so no color holds a worker for much more than two windows (~0.5 ms)
//   while others wait.
//
//   Event lane: a slot made ready by the poller (fd, timer or signal
//   callback woke an idle color) goes to its worker's urgent lane; a worker
//   takes from the urgent and the normal lane in turn, so an event waits for
//   at most the current batch and one other, and queued work still gets
//   every other batch however many events arrive.
//
//   Light lane: each slot keeps a running average of its batches' length
//   (wall time, Slot::avg_batch_ns, written by its runner at the batch's
//   end). A slot whose average is under RuntimeOptions::light_batch is
//   queued in the light lane, which a worker serves before the other two:
//   a color that does little per turn (a lease lookup, a small call's
//   decryption, a metadata call's send) waits for the batch in progress,
//   not behind every bulk color's batch (a 1 MiB seal each). At most
//   kLightStreak light batches run in a row while other lanes wait, so bulk
//   work still gets a turn however many light colors keep coming.
//   A slot never run (average 0) counts as light, except when an event
//   wakes it: that goes to the event lane, so that an event at start-up
//   does not wait behind every fresh color queued in the light lane.
//
//   fd registrations: each (fd, direction) has a generation, bumped by every
//   fdcb. A fired task carries the generation it was fired for and, under
//   fd_mu_, starts only if it is still current, recording the worker that
//   runs it (FdDir::runner). fdcb from any other thread then waits (fd_cv_)
//   until that run has returned, so when fdcb returns the old callback is
//   neither running elsewhere nor about to start. Waits form a graph
//   (Worker::waiting_for, under fd_mu_); a wait that would close a cycle
//   (two fd callbacks unregistering each other's fd at once) is skipped.
#pragma once

#include <signal.h>
#include <sys/epoll.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "asmp/runtime.h"

namespace asmp {

struct Task {
  Task* next = nullptr;
  Closure cb;
};
static_assert(sizeof(Task) == 64, "a task should fill exactly one cache line");

// Monotonic clock in nanoseconds (steady_clock: CLOCK_MONOTONIC, a vDSO
// read, ~30 ns here).
inline std::int64_t mono_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

inline Task* const kIdle = reinterpret_cast<Task*>(std::uintptr_t{1});

struct alignas(64) Slot {
  std::atomic<Task*> inbox{kIdle};
  Task* head = nullptr;
  Task* tail = nullptr;
  Slot* next_ready = nullptr;
  std::atomic<std::uint32_t> owner{0};
  std::atomic<std::uint64_t> runs{0};
  std::atomic<std::uint64_t> cpu_ns{0};  // RuntimeOptions::color_cpu
  // Running average of this slot's batch length (ns; see "Light lane").
  // Written by the runner before it lets the slot go (idle or queued),
  // read by whoever queues it next.
  std::atomic<std::uint32_t> avg_batch_ns{0};
};
static_assert(sizeof(Slot) == 64, "a slot should fill exactly one cache line");

// The calling thread's CPU time in nanoseconds (a system call: the vDSO
// does not serve thread clocks).
std::uint64_t thread_cpu_ns() noexcept;

class SpinLock {
 public:
  void lock() noexcept;
  bool try_lock() noexcept { return !flag_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

// A counter with one writer: increments are a plain load and store.
struct OwnedCounter {
  std::atomic<std::uint64_t> v{0};
  void bump() noexcept { v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

enum WorkerState : std::uint32_t { kRunning = 0, kSleepFutex = 1, kSleepEpoll = 2 };

struct alignas(64) Worker {
  unsigned index = 0;

  // Ready queue of slots: a normal lane, an urgent lane (slots woken by the
  // poller) and a light lane (slots whose batches are short); rq_len counts
  // all three.
  alignas(64) SpinLock lock;
  Slot* rq_head = nullptr;
  Slot* rq_tail = nullptr;
  Slot* uq_head = nullptr;
  Slot* uq_tail = nullptr;
  Slot* lq_head = nullptr;
  Slot* lq_tail = nullptr;
  bool urgent_turn = false;   // the next pop prefers the urgent lane
  unsigned light_streak = 0;  // light-lane pops since another lane's
  std::atomic<std::size_t> rq_len{0};
  std::atomic<bool> busy{false};  // inside run_slot; read by thieves

  // Sleeping.
  alignas(64) std::atomic<std::uint32_t> state{kRunning};
  std::atomic<std::uint32_t> futex{0};
  std::atomic<std::uint64_t> wakeups{0};

  // Touched only by this worker's thread.
  alignas(64) Slot* current = nullptr;  // the slot it is running
  Task* free_list = nullptr;
  std::size_t free_count = 0;
  unsigned steal_from = 0;
  // Polling by time (see the protocol above).
  unsigned clock_countdown = 1;     // callbacks until the next clock read
  unsigned clock_window = 1;        // the countdown's current size
  std::int64_t window_start = 0;    // clock at the last read (ns)
  std::int64_t next_poll_at = 0;    // no poll needed before this (ns)
  bool poll_now = false;            // a batch was cut so that it polls
  OwnedCounter callbacks, steals, sleeps, polls;
  OwnedCounter batch_cpu_ns;  // RuntimeOptions::color_cpu: CPU time in batches
  std::atomic<clockid_t> cpu_clock{0};  // this worker thread's CPU clock, once running
  std::atomic<bool> has_cpu_clock{false};

  // Under Runtime::Impl::fd_mu_: the worker whose running fd callback this
  // one waits for in fdcb, or -1.
  int waiting_for = -1;
};

struct FdDir {
  std::shared_ptr<Closure> cb;  // the registered callback, or null
  std::uint64_t gen = 0;        // generation of cb; fired tasks carry it
  bool inflight = false;        // a fired task is queued or running
  int runner = -1;              // worker running the callback, or -1
  std::uint64_t run_gen = 0;    // generation of that run
};

struct FdEntry {
  FdDir dir[2];  // [0] read, [1] write
  bool in_epoll = false;
};

struct Runtime::Impl {
  explicit Impl(Runtime* self, RuntimeOptions opts);
  ~Impl();

  // scheduler.cc
  void push(Closure&& cb);
  // What the poller pushes (fd, timer, signal callbacks); see "Event lane".
  void push_urgent(Closure&& cb);
  void worker_loop(Worker& w) noexcept;
  bool wake(Worker& w);  // false if w was not asleep
  void stop_all(int code);
  Slot& slot_for(color_t c) { return slots_[c & slot_mask_]; }

  // poller.cc
  void poller_init();
  void poller_destroy();
  // Polls once with the given timeout (ms, -1 forever) if no other worker is
  // polling; returns whether it polled.
  bool try_poll(Worker& w, int timeout_ms);
  // Releases poll_busy_ and, if a worker sleeps on its futex (it found the
  // poller taken), wakes it to take over: an idle worker must be watching
  // fds and timers while the releaser goes on to run callbacks.
  void release_poller();
  // Polls once; the caller holds poll_busy_.
  void poll_once(Worker& w, int timeout_ms);
  int fdcb(int fd, Selop op, Closure cb);
  // A fired fd task starts: true (and the calling worker recorded as its
  // runner) if generation gen is still registered.
  bool fd_begin(int fd, int dir, std::uint64_t gen, Worker* w);
  // A fired fd task has finished (ran: fd_begin said yes): re-arm.
  void fd_done(int fd, int dir, bool ran);
  // Re-arms fd in epoll for what its entry wants (ADD or MOD); on failure
  // drops the entry's callbacks into dead and returns the errno. fd_mu_ held.
  int fd_arm(int fd, FdEntry& e, std::vector<std::shared_ptr<Closure>>& dead);
  // Reports an fd that could not be re-armed (RuntimeOptions::on_fd_error,
  // or a line on stderr). Called with no lock held.
  void report_fd_error(int fd, int err);
  // Polling by time: called by a busy worker when its clock countdown runs
  // out; true if the batch should end (a poll is due: w.poll_now, or the
  // batch has run long).
  bool clock_check(Worker& w, std::int64_t& first_read);
  TimerId timecb(Clock::time_point when, Closure cb);
  bool timecb_remove(TimerId id);
  void sigcb(int sig, Closure cb);
  void poke_poller();

  Runtime* self;
  RuntimeOptions opts;
  unsigned nworkers;
  bool stealing;
  bool freelists;
  bool shared_queue;

  std::unique_ptr<Slot[]> slots_;
  std::uint32_t slot_mask_;
  std::vector<Worker*> workers_;

  // Read by every callback (stop_) or written on every sleep and wake
  // (sleepers_, poll_busy_): each on a cache line of its own, so they do not
  // evict the read-mostly fields above from every core's cache.
  alignas(64) std::atomic<bool> stop_{false};
  std::atomic<int> exit_code_{0};
  alignas(64) std::atomic<unsigned> sleepers_{0};
  std::atomic<bool> running_{false};
  bool destroying_ = false;

  // Poller state.
  int epfd_ = -1;
  int wakefd_ = -1;   // eventfd: wakes a worker blocked in epoll_wait
  int timerfd_ = -1;  // armed at the earliest timer
  int sigpipe_[2] = {-1, -1};
  alignas(64) std::atomic<bool> poll_busy_{false};
  // When a poll last started (ns, steady clock). Read by busy workers once
  // per clock window, written once per poll.
  alignas(64) std::atomic<std::int64_t> last_poll_ns_{0};
  std::int64_t poll_interval_ns_ = 1000000;
  unsigned idle_spins_ = 500;  // RuntimeOptions::idle_spins
  std::int64_t clock_check_ns_ = 250000;
  std::int64_t light_batch_ns_ = 100000;  // RuntimeOptions::light_batch; 0: no light lane

  alignas(64) std::mutex fd_mu_;
  std::condition_variable fd_cv_;  // a run that fdcb waits for has finished
  int fd_waiters_ = 0;             // fdcb calls waiting on fd_cv_
  std::unordered_map<int, FdEntry> fds_;
  std::uint64_t next_fd_gen_ = 1;

  std::mutex timer_mu_;
  std::map<std::pair<Clock::time_point, TimerId>, Closure> timers_;
  std::unordered_map<TimerId, Clock::time_point> timer_index_;
  TimerId next_timer_ = 1;
  Clock::time_point timer_armed_ = Clock::time_point::max();

  std::mutex sig_mu_;
  std::unordered_map<int, std::shared_ptr<Closure>> sigs_;
  std::unordered_map<int, struct sigaction> old_actions_;

 private:
  template <bool Urgent>
  void push_to_slot(Closure&& cb);
  Task* alloc_task(Worker* w, Closure&& cb);
  void free_task(Worker* w, Task* t);
  void foreign_push(Slot& s, Task* t, bool urgent);
  void make_ready(Slot& s, bool urgent = false);
  Worker& queue_of(Slot& s);
  void drain_inbox(Slot& s);
  void run_slot(Worker& w, Slot& s);
  Slot* pop_ready(Worker& q, Worker& w);
  Slot* steal(Worker& w);
  bool has_work(Worker& w) const;
  bool stealable(const Worker& v) const;
  void idle(Worker& w);
  void wake_sleeper();
};

// Thread-local identity of the calling worker thread.
struct ThreadContext {
  Runtime::Impl* impl = nullptr;
  Worker* worker = nullptr;
  color_t color = 0;
};
ThreadContext& tls();

}  // namespace asmp
