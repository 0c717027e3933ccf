// acceptor.cc: the accept loop, with back-off when descriptors run out.
//
// States, all on the acceptor's color:
//   watching    the listening socket is registered (fdcb); on_ready accepts
//               up to max_per_wakeup connections per wakeup.
//   backing off accept failed for lack of resources (EMFILE, ENFILE,
//               ENOBUFS, ENOMEM). The socket is unregistered: it stays
//               readable while connections wait in its queue, so a level-
//               triggered wakeup would call accept, fail at once and come
//               back, a whole core spent doing nothing. A timer (on_retry)
//               tries again after backoff_, doubled after each failed
//               retry up to max_backoff; success, or an empty queue, goes
//               back to watching.
//   closed      unregistered, timer cancelled, socket closed.
// Whichever of the fd callback and the retry timer is armed holds the
// acceptor (shared_ptr in its closure), so nobody else has to.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "asmp/rpc_transport.h"

namespace asmp::rpc {

namespace {

bool out_of_resources(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// accept(2), "Error handling": Linux passes errors of the pending connection
// itself to accept; the listening socket is fine, try the next one.
bool connection_error(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // firewall rules
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::shared_ptr<Acceptor> Acceptor::create(int listen_fd, color_t color, std::function<void(int fd)> on_accept,
                                           AcceptorOptions opts) {
  return std::shared_ptr<Acceptor>(new Acceptor(listen_fd, color, std::move(on_accept), std::move(opts)));
}

Acceptor::Acceptor(int fd, color_t color, std::function<void(int)> on_accept, AcceptorOptions opts)
    : fd_(fd), rt_(&default_runtime()), color_(color), opts_(std::move(opts)), on_accept_(std::move(on_accept)) {}

Acceptor::~Acceptor() {
  // Still open: the runtime's fd table or timer map held the last reference
  // and is being destroyed. Nothing to unregister; just close.
  if (!closed_ && fd_ >= 0) ::close(fd_);
}

int Acceptor::start() {
  return rt_->fdcb(fd_, selread, Closure([self = shared_from_this()] { self->on_ready(); }, color_));
}

void Acceptor::close() {
  // On the color at once: a caller there (e.g. a server closing its
  // connections) must know no accept callback comes after it.
  if (Runtime::worker_index() >= 0 && Runtime::current_color() == color_ && Runtime::current() == rt_) {
    stop_now();
    return;
  }
  rt_->cpucb(Closure([self = shared_from_this()] { self->stop_now(); }, color_));
}

void Acceptor::stop_now() {
  if (closed_) return;
  closed_ = true;
  rt_->fdcb(fd_, selread, nullptr);
  if (retry_timer_) rt_->timecb_remove(retry_timer_);
  retry_timer_ = 0;
  backing_off_.store(false, std::memory_order_relaxed);
  ::close(fd_);
  fd_ = -1;
  // It may hold the server that owns us: let it go, unless it is the caller
  // (close() from inside on_accept); on_ready drops it when it returns.
  if (!in_callback_) on_accept_ = nullptr;
}

AcceptorStats Acceptor::stats() const {
  AcceptorStats s;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.episodes = episodes_.load(std::memory_order_relaxed);
  s.retries = retries_.load(std::memory_order_relaxed);
  s.backing_off = backing_off_.load(std::memory_order_relaxed);
  return s;
}

std::string Acceptor::where() const {
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
      port = ntohs(in->sin6_port);
    }
  }
  return std::string(host) + ":" + std::to_string(port);
}

void Acceptor::say(const std::string& msg) const {
  if (opts_.log) {
    opts_.log(msg);
    return;
  }
  std::fprintf(stderr, "asmp::rpc::Acceptor: %s\n", msg.c_str());
}

void Acceptor::on_ready() {
  if (closed_) return;
  bool progress = false;  // accepted something during this wakeup
  for (unsigned i = 0; i < std::max(1u, opts_.max_per_wakeup); ++i) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accepted_.fetch_add(1, std::memory_order_relaxed);
      progress = true;
      in_callback_ = true;
      on_accept_(fd);
      in_callback_ = false;
      if (closed_) {  // the callback closed us
        on_accept_ = nullptr;
        return;
      }
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) break;  // queue empty
    if (connection_error(err)) continue;
    if (out_of_resources(err)) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      ++episode_failures_;
      if (!backoff_.count()) {
        // A new episode: stop watching the socket (it stays readable and
        // would wake us at once, forever), say so once.
        episodes_.fetch_add(1, std::memory_order_relaxed);
        backing_off_.store(true, std::memory_order_relaxed);
        episode_failures_ = 1;
        backoff_ = std::max(opts_.min_backoff, std::chrono::milliseconds(1));
        rt_->fdcb(fd_, selread, nullptr);
        say("accept on " + where() + " failed: " + std::strerror(err) + "; pausing accepts for " +
            std::to_string(backoff_.count()) + " ms, then retrying with doubling delays up to " +
            std::to_string(opts_.max_backoff.count()) +
            " ms (raise the open-file limit or close idle connections)");
      } else if (progress) {
        backoff_ = std::max(opts_.min_backoff, std::chrono::milliseconds(1));  // descriptors are coming back
      } else {
        backoff_ = std::min(backoff_ * 2, std::max(opts_.max_backoff, opts_.min_backoff));
      }
      retry_timer_ = rt_->delaycb(backoff_, Closure([self = shared_from_this()] { self->on_retry(); }, color_));
      return;
    }
    say("accept on " + where() + " failed: " + std::strerror(err) + "; no longer accepting");
    stop_now();
    return;
  }
  if (backoff_.count()) {
    // The queue was emptied (or a wakeup's worth accepted) without running
    // out again: the episode is over; watch the socket again.
    say("accepting on " + where() + " again after " + std::to_string(episode_failures_) +
        " failed attempts");
    backoff_ = std::chrono::milliseconds(0);
    backing_off_.store(false, std::memory_order_relaxed);
    if (int e = rt_->fdcb(fd_, selread, Closure([self = shared_from_this()] { self->on_ready(); }, color_))) {
      say("cannot watch " + where() + " again (" + std::strerror(e) + "); no longer accepting");
      stop_now();
    }
  }
}

void Acceptor::on_retry() {
  retry_timer_ = 0;
  if (closed_) return;
  retries_.fetch_add(1, std::memory_order_relaxed);
  on_ready();
}

}  // namespace asmp::rpc
