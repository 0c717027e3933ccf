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

std::uint32_t wanted_events(const FdEntry& e) {
  std::uint32_t ev = 0;
  if (e.cb[0] && !e.inflight[0]) ev |= EPOLLIN;
  if (e.cb[1] && !e.inflight[1]) ev |= EPOLLOUT;
  return ev;
}

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
  if (poll_busy_.exchange(true, std::memory_order_acquire)) return false;
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
            push(Closure([cb] { (*cb)(); }, c));
          }
        }
      }
      continue;
    }
    // A user fd. Collect its callbacks under the lock, push them after.
    std::shared_ptr<Closure> fire[2];
    {
      std::lock_guard lk(fd_mu_);
      auto it = fds_.find(fd);
      if (it == fds_.end()) continue;
      FdEntry& e = it->second;
      bool err = got & (EPOLLERR | EPOLLHUP);
      bool rd = (got & (EPOLLIN | EPOLLRDHUP)) || err;
      bool wr = (got & EPOLLOUT) || err;
      if (rd && e.cb[0] && !e.inflight[0]) {
        e.inflight[0] = true;
        fire[0] = e.cb[0];
      }
      if (wr && e.cb[1] && !e.inflight[1]) {
        e.inflight[1] = true;
        fire[1] = e.cb[1];
      }
      // ONESHOT disarmed the fd; re-arm what did not fire.
      std::uint32_t ev = wanted_events(e);
      if (ev) {
        epoll_event mod{};
        mod.events = ev | EPOLLONESHOT;
        mod.data.fd = fd;
        epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &mod);
      }
    }
    for (int dir = 0; dir < 2; ++dir) {
      if (!fire[dir]) continue;
      color_t c = fire[dir]->color();
      std::shared_ptr<Closure> cb = std::move(fire[dir]);
      push(Closure(
          [this, fd, dir, cb] {
            bool current;
            {
              std::lock_guard lk(fd_mu_);
              auto it = fds_.find(fd);
              current = it != fds_.end() && it->second.cb[dir] == cb;
            }
            if (current) (*cb)();
            fd_done(fd, dir);
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
    for (Closure& cb : due) push(std::move(cb));
  }
}

// ---- fds -------------------------------------------------------------------

void Runtime::Impl::fdcb(int fd, Selop op, Closure cb) {
  if (fd < 0 || (op != selread && op != selwrite)) throw std::invalid_argument("asmp::fdcb: bad fd or op");
  int dir = op == selread ? 0 : 1;
  // The callback replaced, destroyed after the lock is released: it may own
  // an object whose destructor calls fdcb (a connection unregistering itself).
  // Likewise the callbacks of an entry dropped because epoll refused the fd.
  std::shared_ptr<Closure> old, refused[2];
  std::lock_guard lk(fd_mu_);
  FdEntry& e = fds_[fd];
  old = std::exchange(e.cb[dir], cb ? std::make_shared<Closure>(std::move(cb)) : nullptr);
  std::uint32_t ev = wanted_events(e);
  epoll_event mod{};
  mod.events = ev | EPOLLONESHOT;
  mod.data.fd = fd;
  if (!e.cb[0] && !e.cb[1]) {
    if (e.in_epoll) epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    if (!e.inflight[0] && !e.inflight[1]) fds_.erase(fd);
    else e.in_epoll = false;
    return;
  }
  if (!e.in_epoll) {
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &mod) != 0) {
      int err = errno;
      refused[0] = std::move(e.cb[0]);
      refused[1] = std::move(e.cb[1]);
      fds_.erase(fd);
      errno = err;
      fail("fdcb: epoll_ctl(ADD)");
    }
    e.in_epoll = true;
  } else if (ev) {
    epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &mod);
  }
}

// A fired fd callback has finished: re-arm its direction.
void Runtime::Impl::fd_done(int fd, int dir) {
  std::lock_guard lk(fd_mu_);
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;
  FdEntry& e = it->second;
  e.inflight[dir] = false;
  if (!e.cb[0] && !e.cb[1] && !e.inflight[0] && !e.inflight[1]) {
    fds_.erase(it);
    return;
  }
  if (!e.in_epoll) {
    // Unregistered and registered again while in flight.
    if (!e.cb[0] && !e.cb[1]) return;
  }
  std::uint32_t ev = wanted_events(e);
  if (!ev) return;
  epoll_event mod{};
  mod.events = ev | EPOLLONESHOT;
  mod.data.fd = fd;
  if (!e.in_epoll) {
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &mod) == 0) e.in_epoll = true;
  } else {
    epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &mod);
  }
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
