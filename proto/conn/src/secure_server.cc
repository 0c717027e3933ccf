// secure_server.cc: the server half of sfsconn (SecureServer). See
// sfs/secure_rpc.h.
//
// Who touches what, on the server. Each connection has a Conn:
//   - on the connection's color: stage (hello -> open | failed), the session
//     id (written once, before the filter goes on), the filter;
//   - on the shared color (0): the AuthTable and the logged-out numbers.
// The Programs table is built per connection, so each dispatch finds its
// Conn without a lookup in anything shared. The only lock is the server's
// connection set (mu_), taken at accept and at close.
//
// The exact boundary: the server's SFS_CONNECT handler runs inside the
// transport's record handler, on its color; Call::reply() from there queues
// (and so would seal) the reply at once, in the clear because no filter is
// set yet, and set_filter() right after makes every later record sealed.
// The client's reply callback has the connection's color, so the connection
// runs it inside its own record handler, and set_filter() there switches
// before the next record is read.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>

#include "secure_server_conn.h"
#include "sfs/encoding.h"
#include "sfs/sfs_connect.h"
#include "sfs/sfs_login.h"

namespace sfs {

namespace rpc = asmp::rpc;
using asmp::Closure;
using asmp::color_t;
using namespace conn_detail;

bool conn_detail::auth_number_of(rpc::Call& c, std::uint32_t& number) {
  number = kAnonymousAuth;
  const rpc::Cred& cred = c.cred();
  if (cred.flavor == SFS_AUTH_NUMBER) {
    if (cred.body.size() != 4) {
      c.reject_auth(AUTH_BADCRED);
      return false;
    }
    number = load_be32(reinterpret_cast<const std::uint8_t*>(cred.body.data()));
  } else if (cred.flavor != AUTH_NONE) {
    c.reject_auth(AUTH_REJECTEDCRED);
    return false;
  }
  return true;
}

namespace {

using Conn = SecureServer::Conn;

void reply_login(rpc::Call& call, Bytes& reply) {
  sfs_login_msg res{};
  res.sfs_login_msg_len = static_cast<u_int>(reply.size());
  res.sfs_login_msg_val = reinterpret_cast<char*>(reply.data());
  call.reply(&res);
}

const UserDb& empty_db() {
  static const UserDb db = UserDb::parse("", nullptr);
  return db;
}

// Logins are checked in two steps. The costly one (decode, the key's line,
// the Ed25519 signature) runs here, on the connection's color, against a
// snapshot of the user database: a flood of bad logins costs its own
// connection's color, never color 0, where the other connections' calls
// are dispatched. What needs the connection's auth table (the replay
// window, the cap, the auth number) runs on color 0. A connection that
// fails max_failed_logins times is closed; refusals are logged at most a
// few per second.
void serve_login(const std::shared_ptr<Conn>& sc, rpc::Call c) {
  if (!sc->require_open(c)) return;
  auto& sh = *sc->shared;
  if (c.proc() == SFS_LOGIN_NULL) {
    c.reply(nullptr);
    return;
  }
  if (c.proc() == SFS_CHANGEKEY) return serve_change_key(sc, std::move(c));
  if (c.proc() == SFS_LOGOUT) {
    auto held = std::make_shared<rpc::Call>(std::move(c));
    asmp::default_runtime().cpucb(Closure(
        [sc, held] {
          if (sc->auth) sc->auth->logout(*held->args<u_int>());
          held->reply(nullptr);
        },
        sh.opts.shared_color));
    return;
  }
  const auto* m = c.args<sfs_login_msg>();
  ByteSpan req{reinterpret_cast<const std::uint8_t*>(m->sfs_login_msg_val), m->sfs_login_msg_len};
  std::shared_ptr<const UserDb> db = sh.users.load();
  auto verified = verify_login(db ? *db : empty_db(), sc->session_id, req);
  if (!verified) {
    sh.login_refusals.fetch_add(1, std::memory_order_relaxed);
    if (std::uint64_t dropped; sh.refusal_log.allow(&dropped))
      sh.log("login on connection from " + sc->peer + " refused: " + verified.error() +
             (dropped ? " (" + std::to_string(dropped) + " more refusals not logged)" : ""));
    LoginOutcome out = AuthTable::refusal(verified.error());
    std::shared_ptr<rpc::Connection> conn = c.connection();
    reply_login(c, out.reply);
    if (++sc->failed_logins >= sh.opts.max_failed_logins && sh.opts.max_failed_logins > 0) {
      sh.log("connection from " + sc->peer + ": " + std::to_string(sc->failed_logins) +
             " failed logins; closing");
      conn->close_after_flush(std::chrono::seconds(2));
    }
    return;
  }
  auto held = std::make_shared<rpc::Call>(std::move(c));
  auto v = std::make_shared<VerifiedLogin>(std::move(verified.value()));
  asmp::default_runtime().cpucb(Closure(
      [sc, held, v] {
        auto& shared = *sc->shared;
        if (!sc->auth) sc->auth.emplace(sc->session_id);
        std::shared_ptr<const UserDb> now = shared.users.load();
        LoginOutcome out = sc->auth->admit(std::move(*v), now ? *now : empty_db());
        if (out.auth) {
          shared.logins.fetch_add(1, std::memory_order_relaxed);
        } else {
          shared.login_refusals.fetch_add(1, std::memory_order_relaxed);
          if (std::uint64_t dropped; shared.refusal_log.allow(&dropped))
            shared.log("login on connection from " + sc->peer + " refused: " + out.refusal);
        }
        reply_login(*held, out.reply);
      },
      sh.opts.shared_color));
}

// A call to a program that wants the caller's identity: the auth number
// from the credential (conn color), then the lookup and the handler on the
// shared color.
void serve_as_user(const std::shared_ptr<Conn>& sc, const SecureProgram& prog, rpc::Call c) {
  std::uint32_t number = kAnonymousAuth;
  if (!auth_number_of(c, number)) return;
  if (number == kAnonymousAuth && !sc->shared->opts.allow_anonymous &&
      std::find(prog.open_procs.begin(), prog.open_procs.end(), c.proc()) == prog.open_procs.end()) {
    c.reject_auth(AUTH_TOOWEAK);
    return;
  }
  if (prog.prepare && !prog.prepare(c)) return;
  auto held = std::make_shared<rpc::Call>(std::move(c));
  asmp::default_runtime().cpucb(Closure(
      [sc, held, number, &prog] {
        const AuthResult* who = number == kAnonymousAuth ? &AuthTable::anonymous()
                                : sc->auth                ? sc->auth->find(number)
                                                          : nullptr;
        if (!who) {
          held->reject_auth(AUTH_REJECTEDCRED);
          return;
        }
        prog.dispatch_as_user(std::move(*held), Caller{sc->id, who, &sc->peer});
      },
      sc->shared->opts.shared_color));
}

// Watches an open connection on its color (where last_call lives): closes
// it once it has made no call for idle_timeout, or when a record has been
// arriving for longer than progress_timeout (a peer trickling bytes to hold
// the connection and its buffer: slow loris). Checks every half of the
// shorter of the two.
void arm_watch(asmp::Runtime* rt, const std::shared_ptr<Conn>& sc, const std::weak_ptr<rpc::Connection>& weak_conn,
               color_t color) {
  const auto& o = sc->shared->opts;
  std::chrono::milliseconds every = std::chrono::hours(24);
  if (o.idle_timeout.count() > 0) every = std::min(every, o.idle_timeout / 2);
  if (o.progress_timeout.count() > 0) every = std::min(every, o.progress_timeout / 2);
  rt->delaycb(every, Closure(
                         [rt, sc, weak_conn, color] {
                           auto conn = weak_conn.lock();
                           if (!conn) return;
                           const auto& opts = sc->shared->opts;
                           const auto now = asmp::Clock::now();
                           if (opts.idle_timeout.count() > 0 && sc->stage == Conn::Stage::kOpen &&
                               now - sc->last_call >= opts.idle_timeout) {
                             sc->shared->idle_closed.fetch_add(1, std::memory_order_relaxed);
                             conn->close();
                             return;
                           }
                           auto age = conn->transport()->partial_record_age();
                           if (opts.progress_timeout.count() > 0 && age && *age >= opts.progress_timeout) {
                             sc->shared->stalled_closed.fetch_add(1, std::memory_order_relaxed);
                             sc->shared->log("connection from " + sc->peer + ": a record has been arriving for over " +
                                             std::to_string(opts.progress_timeout.count()) + " ms; closing");
                             conn->close();
                             return;
                           }
                           arm_watch(rt, sc, weak_conn, color);
                         },
                         color));
}

}  // namespace

std::shared_ptr<SecureServer> SecureServer::create(SecureServerOptions opts) {
  if (!opts.key) throw std::invalid_argument("sfs::SecureServer: no server key");
  return std::shared_ptr<SecureServer>(new SecureServer(std::move(opts)));
}

SecureServer::SecureServer(SecureServerOptions opts)
    : shared_(std::make_shared<Shared>()), rt_(&asmp::default_runtime()) {
  shared_->opts = std::move(opts);
  shared_->admission = std::make_unique<HandshakeAdmission>(shared_->opts.handshake_limits);
  shared_->users.store(shared_->opts.users);
}

SecureServer::~SecureServer() {
  if (acceptor_) acceptor_->close();
}

int SecureServer::listen(const std::string& host, std::uint16_t port) {
  if (acceptor_) return EISCONN;
  int fd;
  if (int err = asmp::rpc::tcp_listen(host, port, fd, port_)) return err;
  // The Acceptor backs off when the process is out of descriptors (EMFILE)
  // instead of spinning a core on the shared color.
  asmp::rpc::AcceptorOptions ao;
  ao.log = [sh = shared_](const std::string& line) { sh->log(line); };
  std::weak_ptr<SecureServer> weak = weak_from_this();
  acceptor_ = asmp::rpc::Acceptor::create(
      fd, shared_->opts.shared_color,
      [weak](int cfd) {
        if (auto self = weak.lock()) self->serve_fd(cfd);
        else ::close(cfd);
      },
      ao);
  return acceptor_->start();
}

bool SecureServer::admit(const std::string& source) {
  const auto& o = shared_->opts;
  if (o.max_connections && conns_.size() >= o.max_connections) return false;
  std::size_t& n = per_source_[source];
  if (o.max_connections_per_source && n >= o.max_connections_per_source) {
    if (n == 0) per_source_.erase(source);
    return false;
  }
  ++n;
  return true;
}

void SecureServer::refuse_at_accept(int fd, const std::string& peer, const std::string& why) {
  shared_->refused_handshakes_in_progress.fetch_add(1, std::memory_order_relaxed);
  shared_->log_limited("connection from " + peer + " refused: " + why);
  ::close(fd);
}

void SecureServer::serve_fd(int fd) {
  std::string source;
  std::string peer = peer_of(fd, &source);
  // Handshakes in progress first: a connection refused there costs no more
  // than this (no transport, no color).
  switch (shared_->admission->enter(source, asmp::Clock::now())) {
    case HandshakeAdmission::Verdict::kOk:
      break;
    case HandshakeAdmission::Verdict::kTooManyInProgress:
      return refuse_at_accept(fd, peer, "too many handshakes in progress (limit " +
                                            std::to_string(shared_->opts.handshake_limits.max_in_progress) + ")");
    case HandshakeAdmission::Verdict::kTooManyFromSource:
      return refuse_at_accept(fd, peer, "too many handshakes in progress from " + source + " (limit " +
                                            std::to_string(shared_->opts.handshake_limits.max_in_progress_per_source) + ")");
    case HandshakeAdmission::Verdict::kRateLimited:
      // Counted with the BUSY answers: the same limit, refused earlier.
      shared_->handshakes_rate_limited.fetch_add(1, std::memory_order_relaxed);
      shared_->log_limited("connection from " + peer + " refused: over " +
                           std::to_string(shared_->opts.handshake_limits.per_source_per_second) +
                           " handshakes a second from " + source);
      ::close(fd);
      return;
    case HandshakeAdmission::Verdict::kTooManySources:
      return refuse_at_accept(fd, peer, "too many client addresses handshaking at once (limit " +
                                            std::to_string(shared_->opts.handshake_limits.max_sources) + ")");
  }
  bool admitted;
  {
    std::lock_guard lk(mu_);
    admitted = admit(source);
  }
  if (!admitted) {
    shared_->admission->leave(source);
    shared_->refused_over_limit.fetch_add(1, std::memory_order_relaxed);
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                           asmp::Clock::now().time_since_epoch()).count();
    if (shared_->last_limit_log_s.exchange(now_s) != now_s)
      shared_->log("connection from " + peer + " refused: too many connections (limits: " +
                   std::to_string(shared_->opts.max_connections) + " in all, " +
                   std::to_string(shared_->opts.max_connections_per_source) + " per address)");
    ::close(fd);
    return;
  }
  color_t color;
  do color = next_color_.fetch_add(1, std::memory_order_relaxed) + 1;
  while (color == shared_->opts.shared_color);
  shared_->accepted.fetch_add(1, std::memory_order_relaxed);
  auto sc = std::make_shared<Conn>();
  sc->shared = shared_;
  sc->id = shared_->next_conn_id.fetch_add(1, std::memory_order_relaxed) + 1;
  sc->peer = std::move(peer);
  sc->source = std::move(source);
  sc->in_handshake = true;

  // Per-connection program table: each dispatch holds its Conn.
  auto progs = std::make_shared<rpc::Programs>();
  {
    rpc::Program p;
    p.iface = *connect_iface();
    p.dispatch = [sc](rpc::Call c) { serve_connect(sc, std::move(c)); };
    progs->add(std::move(p));
  }
  {
    rpc::Program p;
    p.iface = *login_iface();
    p.flavors = {AUTH_NONE, SFS_AUTH_NUMBER};  // SFS_CHANGEKEY names its login
    p.dispatch = [sc](rpc::Call c) { serve_login(sc, std::move(c)); };
    progs->add(std::move(p));
  }
  for (const SecureProgram& sp : shared_->opts.programs) {
    rpc::Program p;
    p.iface = sp.iface;
    p.flavors = {AUTH_NONE, SFS_AUTH_NUMBER};
    if (sp.dispatch_as_user) {
      // The program lives in shared_->opts, which outlives every Conn.
      const SecureProgram* prog = &sp;
      p.dispatch = [sc, prog](rpc::Call c) {
        if (sc->require_open(c)) serve_as_user(sc, *prog, std::move(c));
      };
    } else {
      const auto* h = &sp.dispatch;
      p.dispatch = [sc, h](rpc::Call c) {
        if (sc->require_open(c)) (*h)(std::move(c));
      };
    }
    progs->add(std::move(p));
  }

  // Until the handshake: records no larger than SFS_CONNECT's, and only an
  // SFS_CONNECT call gets through (the gate), so nothing else is ever
  // answered in the clear. Both are set before the transport starts reading
  // (Connection::create), so no record is read without them.
  rpc::TransportOptions to = shared_->opts.transport;
  if (const std::size_t cap = shared_->opts.handshake_limits.max_record; cap && cap < to.max_record)
    to.max_record = cap;
  auto t = rpc::Transport::create(fd, color, to);
  t->set_filter(make_prehandshake_gate([sh = shared_, peer = sc->peer](const std::string& what) {
    sh->prehandshake_rejected.fetch_add(1, std::memory_order_relaxed);
    sh->log_limited("connection from " + peer + " sent " + what + " before the handshake; closing");
  }));
  rpc::ConnectionOptions co;
  co.programs = std::move(progs);
  co.max_calls_in_progress = shared_->opts.max_calls_in_progress;
  std::weak_ptr<SecureServer> weak = weak_from_this();
  co.on_close = [weak, sc](rpc::CloseReason why, int err) {
    if (why == rpc::CloseReason::kFilterRejected) {
      sc->shared->filter_rejections.fetch_add(1, std::memory_order_relaxed);
    } else if (why != rpc::CloseReason::kEof && why != rpc::CloseReason::kLocal) {
      sc->shared->log("connection from " + sc->peer + " closed: " + close_text(why, err, sc->filter.get()));
    }
    sc->filter.reset();
    sc->leave_handshake();
    if (auto s = weak.lock()) {
      std::lock_guard lk(s->mu_);
      sc->gone = true;
      s->conns_.erase(sc->id);
      auto it = s->per_source_.find(sc->source);
      if (it != s->per_source_.end() && --it->second == 0) s->per_source_.erase(it);
    }
    // The auth table and the program's per-connection state live on the
    // shared color: forget them there.
    asmp::default_runtime().cpucb(Closure(
        [sc] {
          sc->shared->live.erase(sc->id);
          sc->auth.reset();
          if (sc->shared->opts.on_close) sc->shared->opts.on_close(sc->id);
        },
        sc->shared->opts.shared_color));
  };
  // Made outside mu_: starting the transport registers its fd, which waits
  // if a callback of a closed connection that had the same fd number is
  // still running, and that callback's close handler takes mu_.
  std::shared_ptr<rpc::Connection> c = rpc::Connection::create(t, std::move(co));
  {
    std::lock_guard lk(mu_);
    if (!sc->gone) conns_.emplace(sc->id, c);  // else it closed already
  }
  rt_->cpucb(Closure([sc] { sc->shared->live.emplace(sc->id, sc); }, shared_->opts.shared_color));
  const auto limit = shared_->opts.handshake_timeout;
  if (limit.count() > 0) {
    // On the connection's color, so that it reads the stage safely.
    std::weak_ptr<rpc::Connection> weak_conn = c;
    rt_->delaycb(limit, Closure(
                            [sc, weak_conn] {
                              if (sc->stage == Conn::Stage::kOpen) return;
                              auto conn = weak_conn.lock();
                              if (!conn) return;
                              sc->shared->log("connection from " + sc->peer +
                                              ": no completed handshake in time; closing");
                              conn->close();
                            },
                            color));
  }
  if (shared_->opts.idle_timeout.count() > 0 || shared_->opts.progress_timeout.count() > 0)
    arm_watch(rt_, sc, c, color);
}

void SecureServer::close_listener() {
  if (acceptor_) acceptor_->close();
}

void SecureServer::stop_accepting() {
  rt_->cpucb(Closure([self = shared_from_this()] { self->close_listener(); },
                     shared_->opts.shared_color));
}

void SecureServer::set_users(std::shared_ptr<const UserDb> users,
                             std::function<void(std::size_t)> done) {
  rt_->cpucb(Closure(
      [sh = shared_, users = std::move(users), done = std::move(done)] {
        sh->opts.users = users;
        sh->users.store(users);
        const UserDb& db = users ? *users : empty_db();
        std::size_t revoked = 0;
        for (auto& [id, weak] : sh->live)
          if (auto sc = weak.lock(); sc && sc->auth) revoked += sc->auth->revalidate(db);
        sh->logins_revoked.fetch_add(revoked, std::memory_order_relaxed);
        if (done) done(revoked);
      },
      shared_->opts.shared_color));
}

void SecureServer::close(std::chrono::milliseconds flush) {
  rt_->cpucb(Closure(
      [self = shared_from_this(), flush] {
        self->close_listener();
        std::vector<std::shared_ptr<rpc::Connection>> live;
        {
          std::lock_guard lk(self->mu_);
          for (auto& [k, w] : self->conns_)
            if (auto c = w.lock()) live.push_back(std::move(c));
        }
        for (auto& c : live) {
          if (flush.count() > 0) c->close_after_flush(flush);
          else c->close();
        }
      },
      shared_->opts.shared_color));
}

std::size_t SecureServer::connections() const {
  std::lock_guard lk(mu_);
  return conns_.size();
}

SecureServerStats SecureServer::stats() const {
  SecureServerStats s;
  const auto r = std::memory_order_relaxed;
  s.accepted = shared_->accepted.load(r);
  s.established = shared_->established.load(r);
  s.handshake_failures = shared_->handshake_failures.load(r);
  s.logins = shared_->logins.load(r);
  s.login_refusals = shared_->login_refusals.load(r);
  s.filter_rejections = shared_->filter_rejections.load(r);
  s.refused_over_limit = shared_->refused_over_limit.load(r);
  s.idle_closed = shared_->idle_closed.load(r);
  s.logins_revoked = shared_->logins_revoked.load(r);
  s.stalled_closed = shared_->stalled_closed.load(r);
  s.handshakes_rate_limited = shared_->handshakes_rate_limited.load(r);
  s.refused_handshakes_in_progress = shared_->refused_handshakes_in_progress.load(r);
  s.prehandshake_rejected = shared_->prehandshake_rejected.load(r);
  s.key_changes = shared_->key_changes.load(r);
  return s;
}

}  // namespace sfs
