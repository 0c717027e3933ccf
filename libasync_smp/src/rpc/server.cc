// server.cc: the listening socket. An Acceptor accepts under accept_color
// (backing off when descriptors run out); each connection gets a color of
// its own (unless told otherwise) and a Connection serving the shared,
// frozen Programs. The set of live connections (for close()) and the
// acceptor handle are the only state shared between colors, under mu_.
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

// The acceptor owns the listening socket (and closes it when it goes).
Server::~Server() = default;

int Server::listen(const std::string& host, std::uint16_t port) {
  if (listening_) return EISCONN;
  int fd;
  if (int err = tcp_listen(host, port, fd, port_)) return err;
  // The accept callback holds the server, as the fd callback did before the
  // acceptor: a server keeps serving while it listens, until close().
  auto acc = Acceptor::create(
      fd, opts_.accept_color, [self = shared_from_this()](int cfd) { self->serve_fd(cfd); }, opts_.acceptor);
  if (int err = acc->start()) {
    acc->close();
    return err;
  }
  listening_ = true;
  std::lock_guard lk(mu_);
  acceptor_ = acc;
  return 0;
}

AcceptorStats Server::acceptor_stats() const {
  std::lock_guard lk(mu_);
  auto acc = acceptor_.lock();
  return acc ? acc->stats() : AcceptorStats{};
}

color_t Server::next_color() {
  if (opts_.conn_color) return *opts_.conn_color;
  color_t c;
  do c = color_counter_.fetch_add(1, std::memory_order_relaxed) + 1;
  while (c == 0);  // 0 belongs to the server's shared state
  return c;
}

std::shared_ptr<Connection> Server::serve_fd(int fd) {
  auto t = Transport::create(fd, next_color(), opts_.transport);
  ConnectionOptions co;
  co.programs = programs_;
  co.max_calls_in_progress = opts_.max_calls_in_progress;
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
  // On the accept color, so that it cannot race with accepting.
  rt_->cpucb(Closure(
      [self = shared_from_this()] {
        std::vector<std::shared_ptr<Connection>> live;
        std::shared_ptr<Acceptor> acc;
        {
          std::lock_guard lk(self->mu_);
          acc = self->acceptor_.lock();
          self->acceptor_.reset();
          for (auto& [k, w] : self->conns_)
            if (auto c = w.lock()) live.push_back(std::move(c));
        }
        // Not under mu_: closing unregisters fds (fdcb may wait for a run
        // in progress, which must not need mu_).
        if (acc) acc->close();  // on its color: no accept after this
        for (auto& c : live) c->close();
      },
      opts_.accept_color));
}

std::size_t Server::connections() const {
  std::lock_guard lk(mu_);
  return conns_.size();
}

}  // namespace asmp::rpc
