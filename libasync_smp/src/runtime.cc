// runtime.cc: Runtime's public surface: construction, run/stop, the
// libasync-style free functions and statistics.
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime_impl.h"

namespace asmp {

namespace {

// Runtime::current() outside workers: the latest live runtime. g_live keeps
// every live runtime in construction order, so that destroying the latest
// falls back to the one before it.
std::atomic<Runtime*> g_latest{nullptr};

struct LiveRuntimes {
  std::mutex mu;
  std::vector<Runtime*> list;
};
LiveRuntimes& g_live() {
  static auto* live = new LiveRuntimes;  // never destroyed: static Runtimes outlive statics
  return *live;
}

unsigned round_up_pow2(unsigned v) {
  unsigned p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

std::string_view to_string(SchedulerKind k) {
  switch (k) {
    case SchedulerKind::kSharedQueue: return "shared-queue";
    case SchedulerKind::kPerThread: return "per-thread";
    case SchedulerKind::kFreelist: return "freelist";
    case SchedulerKind::kStealing: return "stealing";
  }
  return "?";
}

std::optional<SchedulerKind> parse_scheduler(std::string_view name) {
  for (auto k : {SchedulerKind::kSharedQueue, SchedulerKind::kPerThread, SchedulerKind::kFreelist,
                 SchedulerKind::kStealing})
    if (to_string(k) == name) return k;
  return std::nullopt;
}

unsigned default_thread_count() {
  if (const char* env = std::getenv("ASMP_THREADS")) {
    char* end = nullptr;
    unsigned long v = std::strtoul(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024) return static_cast<unsigned>(v);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  return 1;
}

Runtime::Impl::Impl(Runtime* owner, RuntimeOptions o) : self(owner), opts(o) {
  nworkers = opts.threads ? opts.threads : default_thread_count();
  if (opts.batch == 0) opts.batch = 1;
  // The clock is read about four times per interval (never more often than
  // every 20 us, whatever the interval), so a due poll is late by at most a
  // quarter of it plus one callback.
  idle_spins_ = opts.idle_spins;
  poll_interval_ns_ = std::max<std::int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts.poll_interval).count(), 1000);
  clock_check_ns_ = std::max<std::int64_t>(poll_interval_ns_ / 4, 20000);
  light_batch_ns_ = std::clamp<std::int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts.light_batch).count(), 0, 1000000000);
  last_poll_ns_.store(mono_ns(), std::memory_order_relaxed);
  shared_queue = opts.scheduler == SchedulerKind::kSharedQueue;
  freelists = opts.scheduler == SchedulerKind::kFreelist || opts.scheduler == SchedulerKind::kStealing;
  stealing = opts.scheduler == SchedulerKind::kStealing && nworkers > 1;
  unsigned nslots = round_up_pow2(opts.color_slots ? opts.color_slots : 1);
  slot_mask_ = nslots - 1;
  slots_ = std::make_unique<Slot[]>(nslots);
  for (unsigned i = 0; i < nslots; ++i) slots_[i].owner.store(i % nworkers, std::memory_order_relaxed);
  workers_.reserve(nworkers);
  for (unsigned i = 0; i < nworkers; ++i) {
    workers_.push_back(new Worker);
    workers_.back()->index = i;
  }
  poller_init();
}

Runtime::Impl::~Impl() {
  destroying_ = true;
  // Pending callbacks are destroyed, not run.
  for (std::uint32_t i = 0; i <= slot_mask_; ++i) {
    Slot& s = slots_[i];
    for (Task* t = s.head; t;) {
      Task* next = t->next;
      delete t;
      t = next;
    }
    Task* in = s.inbox.load(std::memory_order_acquire);
    if (in != kIdle) {
      for (Task* t = in; t;) {
        Task* next = t->next;
        delete t;
        t = next;
      }
    }
  }
  for (Worker* w : workers_) {
    for (Task* t = w->free_list; t;) {
      Task* next = t->next;
      delete t;
      t = next;
    }
    delete w;
  }
  // Timer, fd and signal callbacks are destroyed outside the locks: their
  // destructors may call back in (cancel a timer, unregister an fd).
  decltype(timers_) timers;
  decltype(fds_) fds;
  decltype(sigs_) sigs;
  {
    std::lock_guard lk(timer_mu_);
    timers.swap(timers_);
    timer_index_.clear();
  }
  {
    std::lock_guard lk(fd_mu_);
    fds.swap(fds_);
  }
  {
    std::lock_guard lk(sig_mu_);
    sigs.swap(sigs_);
  }
  timers.clear();
  fds.clear();
  sigs.clear();
  poller_destroy();
}

Runtime::Runtime(RuntimeOptions opts) : impl_(std::make_unique<Impl>(this, opts)) {
  LiveRuntimes& live = g_live();
  std::lock_guard lk(live.mu);
  live.list.push_back(this);
  g_latest.store(this, std::memory_order_release);
}

Runtime::~Runtime() {
  {
    LiveRuntimes& live = g_live();
    std::lock_guard lk(live.mu);
    std::erase(live.list, this);
    g_latest.store(live.list.empty() ? nullptr : live.list.back(), std::memory_order_release);
  }
  // Not impl_.reset(): it nulls impl_ before ~Impl runs, and the pending
  // callbacks ~Impl destroys may call back into this Runtime.
  delete impl_.get();
  impl_.release();
}

int Runtime::run() {
  Impl& m = *impl_;
  if (m.running_.exchange(true)) throw std::logic_error("asmp::Runtime::run: already running");
  // stop_ is not cleared here: a stop() that came before run() (a runtime
  // started on a thread and stopped at once) must end this run.
  std::vector<std::thread> threads;
  threads.reserve(m.nworkers - 1);
  for (unsigned i = 1; i < m.nworkers; ++i)
    threads.emplace_back([&m, i] { m.worker_loop(*m.workers_[i]); });
  m.worker_loop(*m.workers_[0]);
  for (auto& t : threads) t.join();
  int code = m.exit_code_.load(std::memory_order_relaxed);
  m.stop_.store(false, std::memory_order_seq_cst);  // consumed: run() may be called again
  m.running_.store(false);
  return code;
}

void Runtime::stop(int code) { impl_->stop_all(code); }
bool Runtime::stopping() const { return impl_->stop_.load(std::memory_order_acquire); }
unsigned Runtime::threads() const { return impl_->nworkers; }
SchedulerKind Runtime::scheduler() const { return impl_->opts.scheduler; }

void Runtime::cpucb(Closure cb) {
  if (cb) impl_->push(std::move(cb));
}
int Runtime::fdcb(int fd, Selop op, Closure cb) { return impl_->fdcb(fd, op, std::move(cb)); }
TimerId Runtime::timecb(Clock::time_point when, Closure cb) {
  if (!cb) return 0;  // it would crash the worker that fired it
  return impl_->timecb(when, std::move(cb));
}
TimerId Runtime::delaycb(std::chrono::nanoseconds delay, Closure cb) {
  if (!cb) return 0;
  // Saturate: now + a huge delay must not overflow into the past.
  Clock::time_point now = Clock::now();
  Clock::time_point when =
      delay >= Clock::time_point::max() - now ? Clock::time_point::max() : now + delay;
  return impl_->timecb(when, std::move(cb));
}
bool Runtime::timecb_remove(TimerId id) { return impl_->timecb_remove(id); }
void Runtime::sigcb(int sig, Closure cb) { impl_->sigcb(sig, std::move(cb)); }

std::vector<WorkerStats> Runtime::worker_stats() const {
  std::vector<WorkerStats> out;
  for (Worker* w : impl_->workers_) {
    WorkerStats s;
    s.callbacks = w->callbacks.get();
    s.steals = w->steals.get();
    s.sleeps = w->sleeps.get();
    s.wakeups = w->wakeups.load(std::memory_order_relaxed);
    s.polls = w->polls.get();
    if (w->has_cpu_clock.load(std::memory_order_acquire)) {
      timespec ts{};
      if (clock_gettime(w->cpu_clock.load(std::memory_order_relaxed), &ts) == 0) {
        s.cpu_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
        const std::uint64_t in_batches = w->batch_cpu_ns.get();
        s.overhead_cpu_ns = s.cpu_ns > in_batches ? s.cpu_ns - in_batches : 0;
      }
    }
    out.push_back(s);
  }
  return out;
}

std::vector<SlotCpu> Runtime::color_cpu() const {
  std::vector<SlotCpu> out;
  if (!impl_->opts.color_cpu) return out;
  for (unsigned i = 0; i <= impl_->slot_mask_; ++i) {
    const Slot& s = impl_->slots_[i];
    const std::uint64_t ns = s.cpu_ns.load(std::memory_order_relaxed);
    if (ns) out.push_back({i, ns, s.runs.load(std::memory_order_relaxed)});
  }
  return out;
}

unsigned Runtime::color_slots() const { return impl_->slot_mask_ + 1; }

std::uint64_t thread_cpu_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

ColorStats Runtime::color_stats(color_t color) const {
  Slot& s = impl_->slot_for(color);
  return {s.runs.load(std::memory_order_relaxed), s.owner.load(std::memory_order_relaxed),
          s.cpu_ns.load(std::memory_order_relaxed)};
}

Runtime* Runtime::current() {
  ThreadContext& t = tls();
  if (t.impl) return t.impl->self;
  return g_latest.load(std::memory_order_acquire);
}

int Runtime::worker_index() {
  ThreadContext& t = tls();
  return t.worker ? static_cast<int>(t.worker->index) : -1;
}

color_t Runtime::current_color() { return tls().color; }

// ---- free functions --------------------------------------------------------

Runtime& default_runtime() {
  if (Runtime* rt = Runtime::current()) return *rt;
  static std::unique_ptr<Runtime> fallback;
  static std::mutex mu;
  std::lock_guard lk(mu);
  if (Runtime* rt = Runtime::current()) return *rt;
  fallback = std::make_unique<Runtime>();
  return *fallback;
}

void cpucb(Closure cb) { default_runtime().cpucb(std::move(cb)); }
int fdcb(int fd, Selop op, Closure cb) { return default_runtime().fdcb(fd, op, std::move(cb)); }
TimerId timecb(Clock::time_point when, Closure cb) {
  return default_runtime().timecb(when, std::move(cb));
}
TimerId delaycb(std::chrono::nanoseconds delay, Closure cb) {
  return default_runtime().delaycb(delay, std::move(cb));
}
bool timecb_remove(TimerId id) { return default_runtime().timecb_remove(id); }
void sigcb(int sig, Closure cb) { default_runtime().sigcb(sig, std::move(cb)); }
int amain() { return default_runtime().run(); }
void shutdown(int code) { default_runtime().stop(code); }

}  // namespace asmp
