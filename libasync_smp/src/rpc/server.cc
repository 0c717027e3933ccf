// server.cc: the listening socket. Accepts under accept_color, gives each
// connection a color of its own (unless told otherwise) and a Connection
// serving the shared, frozen Programs. The set of live connections (for
// close()) is the only state shared between colors, under mu_.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "wire.h"

namespace asmp::rpc {

std::shared_ptr<Server> Server::create(std::shared_ptr<const Programs> programs, ServerOptions opts) {
  return std::shared_ptr<Server>(new Server(std::move(programs), std::move(opts)));
}

Server::Server(std::shared_ptr<const Programs> programs, ServerOptions opts)
    : programs_(std::move(programs)), opts_(std::move(opts)), rt_(&default_runtime()) {}

Server::~Server() {
  // Still listening means the runtime's fd table held the last reference
  // and is being destroyed: just close.
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

int Server::listen(const std::string& host, std::uint16_t port) {
  if (listen_fd_ >= 0) return EISCONN;
  int fd;
  if (int err = tcp_listen(host, port, fd, port_)) return err;
  listen_fd_ = fd;
  rt_->fdcb(fd, selread, Closure(wrap(opts_.accept_color, &Server::on_accept, shared_from_this())));
  return 0;
}

color_t Server::next_color() {
  if (opts_.conn_color) return *opts_.conn_color;
  color_t c;
  do c = color_counter_.fetch_add(1, std::memory_order_relaxed) + 1;
  while (c == 0);  // 0 belongs to the server's shared state
  return c;
}

void Server::on_accept() {
  for (int i = 0; i < 64; ++i) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EAGAIN: drained. EMFILE and friends: try again on the next wakeup.
      return;
    }
    serve_fd(fd);
  }
}

std::shared_ptr<Connection> Server::serve_fd(int fd) {
  auto t = Transport::create(fd, next_color(), opts_.transport);
  ConnectionOptions co;
  co.programs = programs_;
  std::weak_ptr<Server> weak = weak_from_this();
  // Filled in once the connection exists; the close handler only needs its
  // address to find it in conns_.
  auto key = std::make_shared<Connection*>(nullptr);
  co.on_close = [weak, key](CloseReason, int) {
    if (auto s = weak.lock()) {
      std::lock_guard lk(s->mu_);
      s->conns_.erase(*key);
    }
  };
  std::shared_ptr<Connection> c;
  {
    // Registered before the transport starts, so close() cannot miss it and
    // its close handler cannot run before it is in the table.
    std::lock_guard lk(mu_);
    c = Connection::create(t, std::move(co));
    *key = c.get();
    conns_.emplace(c.get(), c);
  }
  if (opts_.on_connect) opts_.on_connect(c);
  return c;
}

void Server::close() {
  // On the accept color, so that it cannot race with on_accept.
  rt_->cpucb(Closure(
      [self = shared_from_this()] {
        if (self->listen_fd_ >= 0) {
          self->rt_->fdcb(self->listen_fd_, selread, nullptr);
          ::close(self->listen_fd_);
          self->listen_fd_ = -1;
        }
        std::vector<std::shared_ptr<Connection>> live;
        {
          std::lock_guard lk(self->mu_);
          for (auto& [k, w] : self->conns_)
            if (auto c = w.lock()) live.push_back(std::move(c));
        }
        for (auto& c : live) c->close();
      },
      opts_.accept_color));
}

std::size_t Server::connections() const {
  std::lock_guard lk(mu_);
  return conns_.size();
}

}  // namespace asmp::rpc
