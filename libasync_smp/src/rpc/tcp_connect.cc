// tcp_connect.cc: a non-blocking TCP connect on the runtime, its result
// delivered under the callback's color (asmp/rpc_transport.h).
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "address.h"
#include "asmp/rpc_transport.h"

namespace asmp::rpc {

namespace {

struct Connecting {
  int fd;
  bool done = false;
  Callback<void(int, int)> cb;
};

void finish_connect(const std::shared_ptr<Connecting>& c) {
  if (c->done) return;
  c->done = true;
  default_runtime().fdcb(c->fd, selwrite, nullptr);
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err) {
    ::close(c->fd);
    c->cb(-1, err);
  } else {
    c->cb(c->fd, 0);
  }
}

}  // namespace

void tcp_connect(const std::string& host, std::uint16_t port, Callback<void(int fd, int err)> cb) {
  Runtime& rt = default_runtime();
  sockaddr_storage ss;
  socklen_t sl;
  numeric_address(host, port, ss, sl);
  color_t color = cb.color();
  auto fail = [&](int err) {
    auto c = std::make_shared<Callback<void(int, int)>>(std::move(cb));
    rt.cpucb(Closure([c, err] { (*c)(-1, err); }, color));
  };
  if (sl == 0) return fail(EINVAL);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(errno);
  auto c = std::make_shared<Connecting>();
  c->fd = fd;
  c->cb = std::move(cb);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) == 0) {
    rt.cpucb(Closure([c] { finish_connect(c); }, color));
    return;
  }
  if (errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    rt.cpucb(Closure([c, err] { c->cb(-1, err); }, color));
    return;
  }
  rt.fdcb(fd, selwrite, Closure([c] { finish_connect(c); }, color));
}

}  // namespace asmp::rpc
