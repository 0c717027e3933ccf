// conns_util.h: a process's TCP connections to a server, seen from outside:
// copies of its sockets taken with pidfd_getfd (the test runs as root), so
// a test can read TCP_INFO (bytes each connection received) and cut one
// (shutdown on the copy shuts the socket the process holds).
#pragma once

#include <linux/tcp.h>  // tcp_info with tcpi_bytes_received
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "mount_test_util.h"

namespace mount_test {

// A copy of one of sfsclient's TCP connections to the server.
struct Conn {
  int fd = -1;  // ours; shares the socket with sfsclient
  std::uint16_t local_port = 0;
  std::uint64_t received() const {
    tcp_info ti{};
    socklen_t len = sizeof ti;
    return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_bytes_received : 0;
  }
};

class Conns {
 public:
  ~Conns() { clear(); }
  Conns() = default;
  Conns(Conns&& o) noexcept : all(std::move(o.all)) { o.all.clear(); }
  void clear() {
    for (auto& c : all) ::close(c.fd);
    all.clear();
  }
  std::vector<Conn> all;
};

// pid's established TCP connections to 127.0.0.1:port.
inline Conns connections_to(pid_t pid, std::uint16_t port) {
  Conns out;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code lec;
    const auto target = std::filesystem::read_symlink(e.path(), lec).string();
    if (lec || target.rfind("socket:", 0) != 0) continue;
    const int n = std::atoi(e.path().filename().c_str());
    const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, n, 0));
    if (fd < 0) continue;
    sockaddr_in peer{}, self{};
    socklen_t pl = sizeof peer, sl = sizeof self;
    tcp_info ti{};
    socklen_t tl = sizeof ti;
    const bool ours = ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0 &&
                      peer.sin_family == AF_INET && ntohs(peer.sin_port) == port &&
                      ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &sl) == 0 &&
                      ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == 1 /* TCP_ESTABLISHED */;
    if (ours) out.all.push_back({fd, ntohs(self.sin_port)});
    else ::close(fd);
  }
  ::close(pidfd);
  return out;
}

// Whether this kernel lets us take another process's descriptors.
inline bool pidfd_getfd_works() {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  if (pidfd < 0) return false;
  const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, pidfd, 0));
  ::close(pidfd);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

}  // namespace mount_test
