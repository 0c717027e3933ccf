// reset_proxy.h: a TCP forwarder on 127.0.0.1 that can drop every
// connection through it with a reset, the way a broken network path or a
// rebooted middlebox would.
//
// sfsclient dials the proxy's port (the mount's name is
// @127.0.0.1%PROXYPORT,HOSTID: the HOSTID hashes the location the client
// dialled together with the server's keys, and sfsd checks it against the
// location in SFS_CONNECT, not against its own listen port); each accepted
// connection is paired with a fresh connection to sfsd's real port. One
// thread runs a poll() loop over all pairs; reset_all() asks it (through a
// pipe, so no lock is shared with the loop) to close every pair with
// SO_LINGER 0, which sends RST to both ends at once. If sfsd is down, the
// client's connection is reset at once, like a refused connect.
//
// Loopback only; the thread stops in the destructor.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace faults {

class ResetProxy {
 public:
  // Listens on an ephemeral port of 127.0.0.1 and forwards to `target`.
  explicit ResetProxy(std::uint16_t target) : target_(target) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback(0);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 64) != 0)
      return;
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) return;
    thread_ = std::thread([this] { loop(); });
  }
  ~ResetProxy() {
    if (thread_.joinable()) {
      command('q');
      thread_.join();
    }
    for (int fd : {listen_fd_, wake_[0], wake_[1]})
      if (fd >= 0) ::close(fd);
  }
  ResetProxy(const ResetProxy&) = delete;
  ResetProxy& operator=(const ResetProxy&) = delete;

  std::uint16_t port() const { return port_; }  // 0: could not listen
  // Resets every connection open now (both ends). Returns at once; the
  // loop does it at its next turn.
  void reset_all() { command('r'); }
  std::uint64_t resets() const { return resets_.load(); }
  std::uint64_t accepted() const { return accepted_.load(); }

 private:
  // One forwarded connection: bytes read from one side and not yet
  // written to the other wait in that direction's buffer, and that side is
  // not read again until the buffer is empty (backpressure).
  struct Pair {
    int fd[2];               // 0: the client (sfsclient), 1: sfsd
    std::string pending[2];  // bytes waiting to be written to fd[i]
  };

  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }
  void command(char c) { (void)!::write(wake_[1], &c, 1); }

  static void close_with_reset(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
  }
  void drop(Pair& p) {
    close_with_reset(p.fd[0]);
    close_with_reset(p.fd[1]);
    p.fd[0] = p.fd[1] = -1;
  }

  void accept_one() {
    const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    accepted_++;
    // A blocking connect is fine on loopback: it succeeds or is refused at once.
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback(target_);
    if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (s >= 0) ::close(s);
      close_with_reset(c);
      return;
    }
    ::fcntl(s, F_SETFL, O_NONBLOCK);
    pairs_.push_back(Pair{{c, s}, {}});
  }

  // Moves bytes across one pair as poll() allows; false once either side
  // is closed or failed (then the pair goes, with a reset).
  static bool pump(Pair& p, const pollfd* pf) {
    for (int i = 0; i < 2; ++i) {
      const int other = 1 - i;
      if ((pf[i].revents & POLLOUT) && !p.pending[i].empty()) {
        const ssize_t n = ::send(p.fd[i], p.pending[i].data(), p.pending[i].size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) return false;
        if (n > 0) p.pending[i].erase(0, static_cast<std::size_t>(n));
      }
      if ((pf[i].revents & (POLLIN | POLLHUP | POLLERR)) && p.pending[other].empty()) {
        char buf[64 * 1024];
        const ssize_t n = ::recv(p.fd[i], buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return false;
        if (n > 0) p.pending[other].assign(buf, static_cast<std::size_t>(n));
      }
    }
    return true;
  }

  void loop() {
    for (;;) {
      std::vector<pollfd> pf{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
      for (auto& p : pairs_)
        for (int i = 0; i < 2; ++i)
          pf.push_back({p.fd[i], static_cast<short>((p.pending[1 - i].empty() ? POLLIN : 0) |
                                                    (p.pending[i].empty() ? 0 : POLLOUT)),
                        0});
      if (::poll(pf.data(), pf.size(), -1) < 0) continue;
      if (pf[0].revents & POLLIN) {
        char c;
        while (::read(wake_[0], &c, 1) == 1) {
          if (c == 'q') {
            for (auto& p : pairs_) drop(p);
            return;
          }
          for (auto& p : pairs_) drop(p);
          pairs_.clear();
          resets_++;
        }
        continue;  // the pollfds below may name closed descriptors
      }
      for (std::size_t k = 0; k < pairs_.size(); ++k)
        if (!pump(pairs_[k], &pf[2 + 2 * k])) drop(pairs_[k]);
      std::erase_if(pairs_, [](const Pair& p) { return p.fd[0] < 0; });
      if (pf[1].revents & POLLIN) accept_one();
    }
  }

  std::uint16_t target_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::vector<Pair> pairs_;  // the loop thread's alone
  std::atomic<std::uint64_t> resets_{0}, accepted_{0};
  std::thread thread_;
};

}  // namespace faults
