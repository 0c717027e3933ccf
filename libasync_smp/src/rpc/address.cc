// address.cc: numeric socket addresses, and listening sockets, for the RPC
// client and servers (asmp::rpc::Server, and servers built on the transport).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "address.h"
#include "asmp/rpc_transport.h"

namespace asmp::rpc {

bool numeric_address(const std::string& host, std::uint16_t port, sockaddr_storage& ss,
                     socklen_t& len) {
  ss = {};
  auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    len = sizeof *in4;
    return true;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    len = sizeof *in6;
    return true;
  }
  len = 0;
  return false;
}

int tcp_listen(const std::string& host, std::uint16_t port, int& fd_out, std::uint16_t& bound_port) {
  sockaddr_storage ss;
  socklen_t sl;
  if (!numeric_address(host, port, ss, sl)) return EINVAL;
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0 || ::listen(fd, 1024) != 0) {
    int err = errno;
    ::close(fd);
    return err;
  }
  sl = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
  bound_port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                             : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  fd_out = fd;
  return 0;
}

}  // namespace asmp::rpc
