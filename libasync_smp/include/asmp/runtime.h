// runtime.h: the colored-callback event runtime (libasync-smp).
//
// Guarantees
//   1. Callbacks of one color never run concurrently, and they run in the
//      order they were scheduled (cpucb, or the event that fired them).
//   2. Callbacks of different colors may run in parallel on different
//      workers (threads).
//   3. A program that names no color runs every callback under color 0, one
//      at a time, in order: it behaves exactly like a single-threaded event
//      program (SPED), whatever the number of workers.
//
// A callback must not throw: an exception that escapes one calls
// std::terminate, whatever the number of workers.
//
// Colors are hashed into `color_slots` slots (slot = color mod slots). A slot
// is the unit the scheduler queues, moves and steals; two colors that share a
// slot are serialized together, which the guarantees allow. Colors below
// `color_slots` never share.
//
// Thread safety: every method of Runtime may be called from any thread,
// inside or outside a callback, before or during run(). fd callbacks,
// timers and signal callbacks run under their own callback's color.
//
// Scheduler (see docs/architecture.md for the picture): one ready queue per
// worker; a color lives on one worker at a time (initially color mod N); an
// idle worker steals a whole color that is not running; a worker runs up to
// `batch` callbacks of the color it is on before rotating (affinity), fewer
// if they are long (a batch ends after about half a millisecond). The epoll
// poller runs as a task: when a worker's queue is empty, and, while every
// worker is busy, whenever `poll_interval` has passed since the last poll;
// it blocks only when its worker has nothing else to do. A color woken by
// an event (fd, timer, signal) is queued in its worker's event lane, which
// the worker serves in turn with its other queued colors: an event waits
// for about one poll interval and two batches, not for the whole queue,
// and queued work still gets every other batch. A color whose batches are
// short (`light_batch`) goes ahead of both, in the light lane. Idle workers spin briefly,
// then sleep on a futex (or in epoll_wait, for the one holding the poller)
// and are woken when work arrives for them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "asmp/callback.h"

namespace asmp {

// The four configurations of the paper's Table 1, selectable at run time.
enum class SchedulerKind {
  kSharedQueue,  // (a) one ready queue shared by every worker
  kPerThread,    // (b) one ready queue per worker, tasks from new/delete
  kFreelist,     // (c) (b) + per-worker free lists of task objects
  kStealing,     // (d) (c) + idle workers steal colors (the default)
};
std::string_view to_string(SchedulerKind k);
std::optional<SchedulerKind> parse_scheduler(std::string_view name);

struct RuntimeOptions {
  // Worker threads. 0: $ASMP_THREADS if set, else the number of CPUs in this
  // process's affinity mask (so `taskset -c 0 prog` gets one worker).
  unsigned threads = 0;
  SchedulerKind scheduler = SchedulerKind::kStealing;
  unsigned color_slots = 16384;  // rounded up to a power of two
  unsigned batch = 64;           // callbacks of one color run back to back
  // Events and timers are polled for (non-blocking) at least this often
  // while workers are busy; the clock is read about every quarter of it.
  std::chrono::microseconds poll_interval{1000};
  // If non-zero, also poll after this many batches (the paper's rule, off by
  // default: by batch count, 64 colors of 50 us callbacks made events wait
  // ~150 ms).
  unsigned poll_every = 0;
  // A color whose batches average less than this (wall time) is queued
  // ahead of the others (the light lane, served first; at most a few light
  // batches in a row while other colors wait): small calls and hand-offs
  // wait for the batch in progress, not behind every bulk color's turn.
  // 0: no light lane (colors queue in arrival order, events in turn).
  std::chrono::microseconds light_batch{100};
  // How many times an idle worker checks for work before it sleeps. Spinning
  // saves a futex wake (~10 us) when work comes back at once, and pays when
  // the program has cores to itself (micro-benchmarks); it wastes CPU when
  // the machine is shared (daemons on a client's or server's cores): sfsd
  // spent a third of its CPU spinning under small-file load. 0: sleep at once.
  unsigned idle_spins = 500;
  // Called when the runtime cannot re-arm an fd registration after its
  // callback ran or fired (epoll_ctl failed: the fd was closed while
  // registered, or the kernel is out of memory). The fd's callbacks have
  // been dropped (never run again). Runs on the thread that found the
  // error, with no runtime lock held; must be thread-safe and quick. Null:
  // one line on stderr naming the fd and the error.
  std::function<void(int fd, int err)> on_fd_error = nullptr;
  // Account the CPU time of each color slot's batches (the thread's CPU
  // clock read before and after each batch: one clock_gettime system call
  // each, ~0.2 us, so a few per cent on small-call workloads; off by
  // default). Read with color_cpu(); what a worker's thread used outside
  // batches (polling, spinning, stealing) is WorkerStats::overhead_cpu_ns.
  bool color_cpu = false;
};

// Resolves RuntimeOptions::threads == 0 as described above.
unsigned default_thread_count();

enum Selop : unsigned { selread = 1, selwrite = 2 };

using Clock = std::chrono::steady_clock;
using TimerId = std::uint64_t;

struct WorkerStats {
  std::uint64_t callbacks = 0;  // callbacks run by this worker
  std::uint64_t steals = 0;     // colors this worker took from another
  std::uint64_t sleeps = 0;     // times it went to sleep (futex or epoll)
  std::uint64_t wakeups = 0;    // times another thread woke it
  std::uint64_t polls = 0;      // epoll_wait calls it made
  // With RuntimeOptions::color_cpu: the thread's CPU time so far, and the
  // part of it not spent in batches of callbacks.
  std::uint64_t cpu_ns = 0;
  std::uint64_t overhead_cpu_ns = 0;
};

struct ColorStats {
  std::uint64_t callbacks = 0;  // callbacks run in this color's slot
  unsigned worker = 0;          // the worker the color lives on now
  std::uint64_t cpu_ns = 0;     // CPU time of its batches (RuntimeOptions::color_cpu)
};

// One color slot's CPU time (RuntimeOptions::color_cpu), from color_cpu().
struct SlotCpu {
  unsigned slot = 0;  // color & (color_slots - 1)
  std::uint64_t cpu_ns = 0;
  std::uint64_t callbacks = 0;
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions opts = {});
  ~Runtime();  // pending callbacks are destroyed without running
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs worker 0 on the calling thread and the others on threads of their
  // own until stop(); returns stop's code. May be called again afterwards.
  int run();
  // Makes run() return: each worker finishes the callback it is in and
  // exits; callbacks still queued stay queued. Callable from anywhere; if
  // no run() is under way, the next run() returns at once.
  void stop(int code = 0);
  bool stopping() const;

  unsigned threads() const;
  SchedulerKind scheduler() const;

  // Runs cb soon, under cb.color().
  void cpucb(Closure cb);

  // Runs cb (under its color) each time fd is ready for op, until replaced or
  // unregistered with a null cb.
  //
  // When fdcb(fd, op, x) returns, the old callback for (fd, op) will not be
  // started again, and it is not running on any other thread: if another
  // worker was running it, fdcb waited for it to return. So an fd may be
  // unregistered from any color and closed at once. Called from inside that
  // very callback, fdcb returns at once (the callback then finishes). Do
  // not hold a lock the callback may take while calling fdcb. Two fd
  // callbacks that unregister each other's fds at the same moment would wait
  // for each other forever; the runtime sees that cycle and lets the second
  // caller return without waiting (its old callback may still be finishing
  // on the other worker).
  //
  // Returns 0, or an errno value and registers nothing (cb is destroyed):
  //   EBADF   fd is negative or not open
  //   EPERM   epoll cannot watch fd (a regular file or a directory)
  //   EINVAL  op is not selread or selwrite
  //   ENOMEM, ENOSPC  kernel limits (fs.epoll.max_user_watches)
  // Unregistering (null cb) returns 0 (or EBADF / EINVAL for a negative fd
  // or a bad op), whether or not anything was registered.
  // Unregister both ops before closing fd: an fd closed while registered
  // can no longer be re-armed; the runtime then drops its callbacks and
  // reports it (RuntimeOptions::on_fd_error).
  int fdcb(int fd, Selop op, Closure cb);

  // Runs cb once, never before `when`. timecb_remove returns true if the
  // timer was still pending: then cb will never run. A null (empty) cb is
  // refused: no timer, and the id returned is 0, which names no timer
  // (timecb_remove(0) returns false).
  TimerId timecb(Clock::time_point when, Closure cb);
  TimerId delaycb(std::chrono::nanoseconds delay, Closure cb);
  bool timecb_remove(TimerId id);

  // Runs cb each time signal sig arrives (a null cb restores the default
  // action). Only one Runtime at a time may own signals.
  void sigcb(int sig, Closure cb);

  std::vector<WorkerStats> worker_stats() const;
  ColorStats color_stats(color_t color) const;
  // Every slot that has used CPU time so far (empty unless color_cpu).
  std::vector<SlotCpu> color_cpu() const;
  unsigned color_slots() const;

  // The runtime of the calling worker thread; outside workers, the most
  // recently constructed runtime that still exists (nullptr if none).
  static Runtime* current();
  // The calling thread's worker index, or -1 outside workers.
  static int worker_index();
  // The color of the callback running on this thread (0 outside callbacks).
  static color_t current_color();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// libasync-style free functions; they act on Runtime::current(), creating a
// default runtime (RuntimeOptions{}) on first use if there is none.
Runtime& default_runtime();
void cpucb(Closure cb);
int fdcb(int fd, Selop op, Closure cb);
TimerId timecb(Clock::time_point when, Closure cb);
TimerId delaycb(std::chrono::nanoseconds delay, Closure cb);
bool timecb_remove(TimerId id);
void sigcb(int sig, Closure cb);
// Runs the default runtime until shutdown(); returns shutdown's code.
int amain();
void shutdown(int code = 0);

}  // namespace asmp
