// fuzz_socket.h: the harnesses' end of a connection to the code under
// test: write an input, then read until the other end closes, and call it
// a hang only if the other end has done nothing for kHangSeconds.
//
// Not SO_RCVTIMEO / SO_SNDTIMEO on a blocking socket: libFuzzer's -timeout
// arms a periodic SIGALRM (every timeout/2 + 1 seconds: 31 s under run.sh's
// -timeout=60), and a socket call with a timeout set fails with EINTR when
// a handler runs, even with SA_RESTART (signal(7)). The fuzzer's thread,
// which spends much of a run blocked in recv() on the runtime's answer,
// took that EINTR for the timeout: invalidate_fuzz aborted with "kept its
// connection open for 30 s" about 31 s into a run (~37,000 inputs), and
// fuzz_server's recv_all stopped reading early without a word. Here every
// wait is poll() against a deadline on the steady clock, and EINTR only
// means "wait again for what is left".
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fuzz_runtime.h"

namespace sfs_fuzz {

namespace detail {

using Deadline = std::chrono::steady_clock::time_point;

inline Deadline hang_deadline() {
  return std::chrono::steady_clock::now() + std::chrono::seconds(kHangSeconds);
}

// Waits until fd is ready for `events` (or in error / hung up): true, or
// false once the deadline has passed. Signals do not end the wait.
inline bool wait_ready(int fd, short events, Deadline deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) {
      std::fprintf(stderr, "fuzz: poll: %s\n", std::strerror(errno));
      std::abort();
    }
  }
}

}  // namespace detail

// Connects fd (a blocking TCP socket) to addr: 0, or the errno. A connect
// that a signal interrupts (libFuzzer's SIGALRM, above) is not undone: it
// goes on in the kernel, and when the listener's backlog is full (thousands
// of connections a second) it waits for a SYN to be resent. So EINTR means
// wait for it to finish, not fail: a connect_fuzz run in CI aborted with
// "cannot connect to the server: Interrupted system call". A connect still
// unfinished after kHangSeconds is a hang: abort.
inline int connect_blocking(int fd, const sockaddr* addr, socklen_t len) {
  if (::connect(fd, addr, len) == 0) return 0;
  if (errno != EINTR) return errno;
  if (!detail::wait_ready(fd, POLLOUT, detail::hang_deadline())) {
    std::fprintf(stderr, "fuzz: a connect to the server has not finished in %d s\n", kHangSeconds);
    std::abort();
  }
  int err = 0;
  socklen_t n = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) != 0) return errno;
  return err;
}

// Sends size bytes, unless the peer closes first (a bad record): returns
// whether all of them went. A peer that neither reads nor closes for
// kHangSeconds is a hang: abort (libFuzzer saves the input).
inline bool send_all(int fd, const std::uint8_t* data, std::size_t size, const char* peer) {
  auto deadline = detail::hang_deadline();
  for (std::size_t off = 0; off < size;) {
    const ssize_t n = ::send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      deadline = detail::hang_deadline();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!detail::wait_ready(fd, POLLOUT, deadline)) {
        std::fprintf(stderr, "fuzz: %s read nothing for %d s while we were sending\n", peer, kHangSeconds);
        std::abort();
      }
      continue;
    }
    return false;  // EPIPE, ECONNRESET: the peer closed
  }
  return true;
}

// Reads and drops what the peer sends until it closes (end of stream or
// reset). A peer that neither sends nor closes for kHangSeconds is a hang:
// abort.
inline void recv_until_closed(int fd, const char* peer) {
  char sink[4096];
  auto deadline = detail::hang_deadline();
  for (;;) {
    const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) {
      deadline = detail::hang_deadline();
      continue;
    }
    if (n == 0) return;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;  // reset: closed too
    if (!detail::wait_ready(fd, POLLIN, deadline)) {
      std::fprintf(stderr, "fuzz: %s kept its connection open for %d s after ours closed\n", peer,
                   kHangSeconds);
      std::abort();
    }
  }
}

}  // namespace sfs_fuzz
