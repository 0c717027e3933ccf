// poller.cc: the epoll poller, fd callbacks, timers and signals.
//
// The poller is not a thread: it is a step any idle or periodically-polling
// worker takes while it holds poll_busy_. It turns readiness into tasks
// pushed under each callback's color, so an fd callback runs on whichever
// worker its color lives on.
//
//   fds     registered EPOLLONESHOT. When a direction fires, it is marked
//           in flight and not re-armed until its callback has run (fd_done),
//           so a level-triggered fd never queues the same callback twice.
//           Each registration has a generation; a fired task runs only if
//           its generation is still registered when it starts (fd_begin,
//           under fd_mu_), and fdcb waits for a run in progress on another
//           thread (runtime_impl.h, "fd registrations"). An epoll_ctl that
//           fails when (re-)arming drops the fd's callbacks: fdcb returns
//           the errno; later, with no caller to tell, report_fd_error does.
//   timers  an ordered map under timer_mu_; a timerfd (CLOCK_MONOTONIC,
//           absolute, nanosecond precision) is armed at the earliest one, so
//           a timer never fires early and epoll_wait needs no timeout.
//   signals a sigaction handler writes the signal number to a non-blocking
//           self-pipe (async-signal-safe); the poller reads it.
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "runtime_impl.h"

namespace asmp {

namespace {

// The write end of the self-pipe of the Runtime that owns signals.
std::atomic<int> g_signal_fd{-1};

extern "C" void on_signal(int sig) {
  int saved = errno;
  int fd = g_signal_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    unsigned char b = static_cast<unsigned char>(sig);
    ssize_t r = ::write(fd, &b, 1);
    (void)r;  // a full pipe drops the signal; it is already pending many times
  }
  errno = saved;
}

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("asmp: ") + what + ": " + std::strerror(errno));
}

void add_to_epoll(int epfd, int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) fail("epoll_ctl(ADD)");
}

// What entry e wants armed: its registered directions not in flight.
std::uint32_t wanted_events(const FdEntry& e) {
  std::uint32_t ev = 0;
  if (e.dir[0].cb && !e.dir[0].inflight) ev |= EPOLLIN;
  if (e.dir[1].cb && !e.dir[1].inflight) ev |= EPOLLOUT;
  return ev;
}

bool has_callback(const FdEntry& e) { return e.dir[0].cb || e.dir[1].cb; }
bool in_flight(const FdEntry& e) { return e.dir[0].inflight || e.dir[1].inflight; }

}  // namespace

void Runtime::Impl::poller_init() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) fail("epoll_create1");
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd_ < 0) fail("eventfd");
  timerfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timerfd_ < 0) fail("timerfd_create");
  add_to_epoll(epfd_, wakefd_);
  add_to_epoll(epfd_, timerfd_);
}

void Runtime::Impl::poller_destroy() {
  {
    std::lock_guard lk(sig_mu_);
    for (auto& [sig, act] : old_actions_) sigaction(sig, &act, nullptr);
    old_actions_.clear();
    int fd = sigpipe_[1];
    g_signal_fd.compare_exchange_strong(fd, -1);
  }
  for (int fd : {epfd_, wakefd_, timerfd_, sigpipe_[0], sigpipe_[1]})
    if (fd >= 0) ::close(fd);
}

void Runtime::Impl::poke_poller() {
  std::uint64_t one = 1;
  ssize_t r = ::write(wakefd_, &one, sizeof one);
  (void)r;  // EAGAIN: the counter is already non-zero, a wake is pending
}

bool Runtime::Impl::try_poll(Worker& w, int timeout_ms) {
  // A plain load first: busy workers that find the poller taken should not
  // bounce its cache line with a failing exchange.
  if (poll_busy_.load(std::memory_order_relaxed) || poll_busy_.exchange(true, std::memory_order_acquire))
    return false;
  poll_once(w, timeout_ms);
  release_poller();
  return true;
}

// Dekker with idle(): we store poll_busy_ = false, then look for a futex
// sleeper; a sleeper stores its state, then re-checks poll_busy_. Either we
// see it asleep and wake it, or it sees the poller free and does not sleep.
void Runtime::Impl::release_poller() {
  poll_busy_.store(false, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
  for (Worker* v : workers_) {
    // Not one already claimed by another waker: it may be off to run work.
    if (v->state.load(std::memory_order_seq_cst) == kSleepFutex && wake(*v)) return;
  }
}

void Runtime::Impl::poll_once(Worker& w, int timeout_ms) {
  constexpr int kMaxEvents = 64;
  epoll_event evs[kMaxEvents];
  w.polls.bump();
  int n = epoll_wait(epfd_, evs, kMaxEvents, timeout_ms);
  // After the wait, not before: a blocking poll was watching all along.
  last_poll_ns_.store(mono_ns(), std::memory_order_relaxed);
  if (n < 0) {
    if (errno == EINTR) return;
    fail("epoll_wait");
  }
  bool timers_due = false;
  for (int i = 0; i < n; ++i) {
    int fd = evs[i].data.fd;
    std::uint32_t got = evs[i].events;
    if (fd == wakefd_) {
      std::uint64_t v;
      while (::read(wakefd_, &v, sizeof v) > 0) {
      }
      continue;
    }
    if (fd == timerfd_) {
      std::uint64_t v;
      while (::read(timerfd_, &v, sizeof v) > 0) {
      }
      timers_due = true;
      continue;
    }
    if (fd == sigpipe_[0]) {
      unsigned char buf[64];
      ssize_t r;
      while ((r = ::read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t k = 0; k < r; ++k) {
          std::shared_ptr<Closure> cb;
          {
            std::lock_guard lk(sig_mu_);
            auto it = sigs_.find(buf[k]);
            if (it != sigs_.end()) cb = it->second;
          }
          if (cb) {
            color_t c = cb->color();
            push_urgent(Closure([cb] { (*cb)(); }, c));
          }
        }
      }
      continue;
    }
    // A user fd. Collect its callbacks under the lock, push them after.
    std::shared_ptr<Closure> fire[2];
    std::uint64_t fire_gen[2] = {0, 0};
    std::vector<std::shared_ptr<Closure>> dead;  // destroyed unlocked
    int err = 0;
    {
      std::lock_guard lk(fd_mu_);
      auto it = fds_.find(fd);
      if (it == fds_.end()) continue;
      FdEntry& e = it->second;
      bool hup = got & (EPOLLERR | EPOLLHUP);
      bool ready[2] = {(got & (EPOLLIN | EPOLLRDHUP)) || hup, (got & EPOLLOUT) || hup};
      for (int d = 0; d < 2; ++d) {
        FdDir& x = e.dir[d];
        if (ready[d] && x.cb && !x.inflight) {
          x.inflight = true;
          fire[d] = x.cb;
          fire_gen[d] = x.gen;
        }
      }
      // ONESHOT disarmed the fd; re-arm what did not fire.
      if (wanted_events(e)) err = fd_arm(fd, e, dead);
    }
    if (err) report_fd_error(fd, err);
    for (int dir = 0; dir < 2; ++dir) {
      if (!fire[dir]) continue;
      color_t c = fire[dir]->color();
      std::uint64_t gen = fire_gen[dir];
      std::shared_ptr<Closure> cb = std::move(fire[dir]);
      push_urgent(Closure(
          [this, fd, dir, gen, cb] {
            bool ran = fd_begin(fd, dir, gen, tls().worker);
            if (ran) (*cb)();
            fd_done(fd, dir, ran);
          },
          c));
    }
  }
  if (timers_due || n == 0) {
    // Fire every timer whose time has come, in time order.
    std::vector<Closure> due;
    {
      std::lock_guard lk(timer_mu_);
      auto now = Clock::now();
      while (!timers_.empty() && timers_.begin()->first.first <= now) {
        auto node = timers_.extract(timers_.begin());
        timer_index_.erase(node.key().second);
        due.push_back(std::move(node.mapped()));
      }
      timer_armed_ = Clock::time_point::max();
      if (!timers_.empty()) {
        timer_armed_ = timers_.begin()->first.first;
        itimerspec its{};
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      timer_armed_.time_since_epoch())
                      .count();
        its.it_value.tv_sec = ns / 1000000000;
        its.it_value.tv_nsec = ns % 1000000000;
        timerfd_settime(timerfd_, TFD_TIMER_ABSTIME, &its, nullptr);
      }
    }
    for (Closure& cb : due) push_urgent(std::move(cb));
  }
}

// ---- fds -------------------------------------------------------------------

int Runtime::Impl::fd_arm(int fd, FdEntry& e, std::vector<std::shared_ptr<Closure>>& dead) {
  epoll_event ev{};
  ev.events = wanted_events(e) | EPOLLONESHOT;
  ev.data.fd = fd;
  int op = e.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(epfd_, op, fd, &ev) == 0) {
    e.in_epoll = true;
    return 0;
  }
  int err = errno;
  // EEXIST: the kernel has it although we thought not; change it instead.
  if (err == EEXIST && epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) {
    e.in_epoll = true;
    return 0;
  }
  // EBADF / ENOENT: fd was closed while registered (ENOENT: and its number
  // reused); the kernel forgot it. EPERM: not pollable. ENOMEM / ENOSPC:
  // limits. Either way these callbacks can never fire: drop them, and
  // bump the generations so that a queued task of theirs does not run.
  if (e.in_epoll) epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);  // ENOMEM case; else fails harmlessly
  e.in_epoll = false;
  for (FdDir& x : e.dir) {
    if (x.cb) dead.push_back(std::move(x.cb));
    x.gen = next_fd_gen_++;
  }
  return err;
}

void Runtime::Impl::report_fd_error(int fd, int err) {
  if (opts.on_fd_error) {
    opts.on_fd_error(fd, err);
    return;
  }
  std::fprintf(stderr,
               "asmp: fd %d: cannot re-arm its callbacks (epoll_ctl: %s); they were dropped and will "
               "not run again. Was the fd closed while registered? Unregister both directions "
               "with fdcb(fd, op, nullptr) before closing it.\n",
               fd, std::strerror(err));
}

int Runtime::Impl::fdcb(int fd, Selop op, Closure cb) {
  if (op != selread && op != selwrite) return EINVAL;
  if (fd < 0) return EBADF;
  const int d = op == selread ? 0 : 1;
  ThreadContext& t = tls();
  Worker* me = t.impl == this ? t.worker : nullptr;
  // Callbacks replaced or dropped are destroyed after the lock is released:
  // one may own an object whose destructor calls fdcb (a connection
  // unregistering itself).
  std::shared_ptr<Closure> old, fresh;
  std::vector<std::shared_ptr<Closure>> dead;
  int err = 0;
  int lost = 0;  // errno if a registration other than cb's had to be dropped
  {
    std::unique_lock lk(fd_mu_);
    auto it = fds_.find(fd);
    if (!cb && it == fds_.end()) return 0;
    FdEntry& e = cb ? fds_[fd] : it->second;
    FdDir& x = e.dir[d];
    old = std::move(x.cb);
    x.gen = next_fd_gen_++;
    const std::uint64_t my_gen = x.gen;
    if (cb) {
      fresh = std::make_shared<Closure>(std::move(cb));
      x.cb = fresh;
      bool other = static_cast<bool>(e.dir[1 - d].cb);
      err = fd_arm(fd, e, dead);
      if (err == ENOENT) {
        // The fd number was closed while registered and now names another
        // file: the stale registration is gone from the kernel. Its other
        // direction (if any) is dropped and reported; register anew.
        if (other) lost = err;
        other = false;
        e.dir[d].cb = fresh;
        e.dir[d].gen = next_fd_gen_++;
        err = fd_arm(fd, e, dead);
      }
      if (err && other) lost = err;
    } else if (!has_callback(e)) {
      if (e.in_epoll) epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);  // fails only if already gone
      e.in_epoll = false;
    } else if (e.in_epoll) {
      // Disarm this direction, keep the other. If that fails, the other
      // registration is lost (the unregistering itself succeeded).
      lost = fd_arm(fd, e, dead);
    }
    // Wait for a run of an older generation in progress on another worker:
    // when fdcb returns, the old callback is neither running nor about to.
    for (;;) {
      auto w = fds_.find(fd);
      if (w == fds_.end()) break;
      FdDir& y = w->second.dir[d];
      if (y.runner < 0 || y.run_gen >= my_gen || (me && y.runner == static_cast<int>(me->index))) break;
      if (me) {
        // Would this wait close a cycle of waits (fd callbacks unregistering
        // each other's fds at once)? Then return without waiting.
        int v = y.runner;
        bool cycle = false;
        for (unsigned steps = 0; v >= 0 && steps <= nworkers; ++steps) {
          if (v == static_cast<int>(me->index)) {
            cycle = true;
            break;
          }
          v = workers_[static_cast<unsigned>(v)]->waiting_for;
        }
        if (cycle) break;
        me->waiting_for = y.runner;
      }
      ++fd_waiters_;
      fd_cv_.wait(lk);
      --fd_waiters_;
      if (me) me->waiting_for = -1;
    }
    auto again = fds_.find(fd);
    if (again != fds_.end() && !has_callback(again->second) && !in_flight(again->second))
      fds_.erase(again);
  }
  if (lost) report_fd_error(fd, lost);
  return err;
}

bool Runtime::Impl::fd_begin(int fd, int dir, std::uint64_t gen, Worker* w) {
  std::lock_guard lk(fd_mu_);
  auto it = fds_.find(fd);
  if (it == fds_.end()) return false;
  FdDir& x = it->second.dir[dir];
  if (x.gen != gen || !x.cb) return false;
  x.runner = w ? static_cast<int>(w->index) : -1;
  x.run_gen = gen;
  return true;
}

// A fired fd task has finished: re-arm its direction, and wake fdcb calls
// waiting for this run.
void Runtime::Impl::fd_done(int fd, int dir, bool ran) {
  std::vector<std::shared_ptr<Closure>> dead;  // destroyed unlocked
  int err = 0;
  bool notify = false;
  {
    std::lock_guard lk(fd_mu_);
    auto it = fds_.find(fd);
    if (it == fds_.end()) return;
    FdEntry& e = it->second;
    FdDir& x = e.dir[dir];
    x.inflight = false;
    if (ran) {
      x.runner = -1;
      notify = fd_waiters_ > 0;
    }
    if (!has_callback(e)) {
      if (!in_flight(e)) fds_.erase(it);
    } else if (wanted_events(e)) {
      err = fd_arm(fd, e, dead);
    }
  }
  if (notify) fd_cv_.notify_all();
  if (err) report_fd_error(fd, err);
}

// ---- timers ----------------------------------------------------------------

TimerId Runtime::Impl::timecb(Clock::time_point when, Closure cb) {
  std::lock_guard lk(timer_mu_);
  TimerId id = next_timer_++;
  timers_.emplace(std::make_pair(when, id), std::move(cb));
  timer_index_.emplace(id, when);
  if (when < timer_armed_) {
    timer_armed_ = when;
    itimerspec its{};
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
    if (ns <= 0) ns = 1;  // 0 would disarm
    its.it_value.tv_sec = ns / 1000000000;
    its.it_value.tv_nsec = ns % 1000000000;
    timerfd_settime(timerfd_, TFD_TIMER_ABSTIME, &its, nullptr);
  }
  return id;
}

bool Runtime::Impl::timecb_remove(TimerId id) {
  Closure dead;  // destroyed after the lock is released
  std::lock_guard lk(timer_mu_);
  auto it = timer_index_.find(id);
  if (it == timer_index_.end()) return false;
  auto node = timers_.extract(std::make_pair(it->second, id));
  timer_index_.erase(it);
  dead = std::move(node.mapped());
  return true;
}

// ---- signals ---------------------------------------------------------------

void Runtime::Impl::sigcb(int sig, Closure cb) {
  if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
    throw std::invalid_argument("asmp::sigcb: bad signal number");
  std::shared_ptr<Closure> replaced;  // destroyed unlocked, as in fdcb
  std::lock_guard lk(sig_mu_);
  if (sigpipe_[0] < 0) {
    if (pipe2(sigpipe_, O_NONBLOCK | O_CLOEXEC) != 0) fail("pipe2");
    add_to_epoll(epfd_, sigpipe_[0]);
  }
  int expected = -1;
  if (!g_signal_fd.compare_exchange_strong(expected, sigpipe_[1]) && expected != sigpipe_[1])
    throw std::logic_error("asmp::sigcb: another Runtime owns signals");
  if (!cb) {
    if (auto it = sigs_.find(sig); it != sigs_.end()) {
      replaced = std::move(it->second);
      sigs_.erase(it);
    }
    auto it = old_actions_.find(sig);
    if (it != old_actions_.end()) {
      sigaction(sig, &it->second, nullptr);
      old_actions_.erase(it);
    }
    return;
  }
  replaced = std::exchange(sigs_[sig], std::make_shared<Closure>(std::move(cb)));
  if (!old_actions_.count(sig)) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old {};
    if (sigaction(sig, &sa, &old) != 0) fail("sigaction");
    old_actions_[sig] = old;
  }
}

}  // namespace asmp
