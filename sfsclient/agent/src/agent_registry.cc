// agent_registry.cc: sfsclient's registry of user agents (agent_registry.h).
//
// Everything below State's "on the color" line is touched only by callbacks
// of the registry's color: accept, each agent's stream handlers, timers,
// and the closures that public methods post. The one lock guards the
// snapshot that has_agent()/agents() read from other threads.
//
// Life of a connection: accept -> SO_PEERCRED gives uid and pid -> limits
// checked -> Conn, HELLO timer -> HELLO: replaces the uid's older agent,
// WELCOME -> SIGN_LOGIN out, SIGN_REPLY in (matched by request id) -> the
// stream closes (peer, violation, replacement, close()) -> Conn dropped,
// its pending requests failed. A connection that breaks the protocol is
// closed; nothing an agent sends reaches another uid's state.
#include "sfs/agent_registry.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>

#include "message_stream.h"
#include "sfs/login.h"
#include "unix_socket.h"

namespace sfs {

using agent_detail::MessageStream;
using agent_detail::PeerCred;

namespace {

using SignCallback = asmp::Callback<void(Result<SignedLogin>)>;

struct Pending {
  std::string server;
  SessionId session{};
  std::uint64_t seqno = 0;
  SignCallback cb;
  asmp::TimerId timer = 0;
};

struct Conn {
  std::uint64_t id = 0;
  PeerCred cred;
  std::shared_ptr<MessageStream> stream;
  bool hello = false;
  bool retired = false;  // replaced by a newer agent; closes when pending is empty
  asmp::TimerId hello_timer = 0;
  std::uint32_t next_request = 1;
  std::map<std::uint32_t, Pending> pending;

  std::string who() const {
    return "sfsagent of uid " + std::to_string(cred.uid) + " (pid " + std::to_string(cred.pid) +
           ")";
  }
};

void log_to_stderr(const std::string& line) {
  std::fprintf(stderr, "sfsclient: agents: %s\n", line.c_str());
}

}  // namespace

struct AgentRegistry::State : std::enable_shared_from_this<State> {
  State(asmp::Runtime& r, asmp::color_t c, AgentRegistryOptions o)
      : rt(r), color(c), opts(std::move(o)) {
    if (!opts.log) opts.log = log_to_stderr;
  }
  // Normally close() has run. If the runtime was destroyed first (it held
  // the last references), its callbacks are gone: close the socket here.
  ~State() {
    if (listening) {
      ::close(listener.fd);
      agent_detail::unlink_if_ours(opts.path, listener);
    }
  }

  asmp::Runtime& rt;
  const asmp::color_t color;
  AgentRegistryOptions opts;

  mutable std::mutex snap_mu;
  std::map<uid_t, pid_t> snapshot;  // uid -> registered agent's pid

  // ---- on the color ----
  bool closed = false;
  bool listening = false;
  agent_detail::ListeningSocket listener;
  asmp::TimerId accept_resume = 0;
  std::uint64_t next_conn = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<Conn>> conns;
  std::unordered_map<uid_t, std::uint64_t> by_uid;  // registered agents
  std::unordered_map<uid_t, std::size_t> per_uid;   // all connections
  asmp::Clock::time_point last_limit_log{};

  void post(std::function<void(State&)> fn) {
    rt.cpucb(asmp::Closure([self = shared_from_this(), fn = std::move(fn)] { fn(*self); }, color));
  }

  void publish() {
    std::map<uid_t, pid_t> snap;
    for (auto& [uid, id] : by_uid) snap[uid] = conns.at(id)->cred.pid;
    std::lock_guard lk(snap_mu);
    snapshot.swap(snap);
  }

  // Runs cb under its own color with r; never inline, so that a caller of
  // sign_login is never re-entered.
  void deliver(SignCallback cb, Result<SignedLogin> r) {
    if (!cb) return;
    const asmp::color_t c = cb.color();
    rt.cpucb(
        asmp::Closure([cb = std::move(cb), r = std::move(r)]() mutable { cb(std::move(r)); }, c));
  }

  void fail(Pending& p, const std::string& why) {
    if (p.timer) rt.timecb_remove(p.timer);
    deliver(std::move(p.cb), make_error(why));
  }

  // ---- listening ----

  void install(agent_detail::ListeningSocket s) {
    if (closed) {  // close() overtook listen()
      ::close(s.fd);
      agent_detail::unlink_if_ours(opts.path, s);
      return;
    }
    listener = s;
    listening = true;
    arm_accept();
  }

  void arm_accept() {
    rt.fdcb(listener.fd, asmp::selread,
            asmp::Closure([self = shared_from_this()] { self->on_accept(); }, color));
  }

  void on_accept() {
    for (int i = 0; i < 32 && listening; ++i) {
      const int fd = ::accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // Out of descriptors or memory: the listening socket stays readable,
        // so stop watching it for a moment instead of spinning.
        limit_log("cannot accept an agent connection: " + agent_detail::errno_text(errno) +
                  "; pausing for 100 ms");
        rt.fdcb(listener.fd, asmp::selread, nullptr);
        std::weak_ptr<State> weak = weak_from_this();
        asmp::Closure resume(
            [weak] {
              if (auto s = weak.lock(); s && s->listening) s->arm_accept();
            },
            color);
        accept_resume = rt.delaycb(std::chrono::milliseconds(100), std::move(resume));
        return;
      }
      admit(fd);
    }
  }

  // A limit hit by someone hostile could otherwise fill the log.
  void limit_log(const std::string& line) {
    const auto now = asmp::Clock::now();
    if (now - last_limit_log < std::chrono::seconds(1)) return;
    last_limit_log = now;
    opts.log(line);
  }

  void admit(int fd) {
    const auto cred = agent_detail::peer_cred(fd);
    if (!cred) {
      ::close(fd);
      return;
    }
    if (conns.size() >= opts.max_connections) {
      limit_log("refusing a connection from uid " + std::to_string(cred->uid) + ": already " +
                std::to_string(conns.size()) + " agent connections");
      ::close(fd);
      return;
    }
    std::size_t& mine = per_uid[cred->uid];
    if (mine >= opts.max_connections_per_uid) {
      limit_log("refusing a connection from uid " + std::to_string(cred->uid) +
                ": it already has " + std::to_string(mine) +
                " connections to the registration socket");
      ::close(fd);
      return;
    }
    ++mine;
    auto c = std::make_shared<Conn>();
    c->id = next_conn++;
    c->cred = *cred;
    c->stream = MessageStream::create(rt, color, fd);
    conns.emplace(c->id, c);
    std::weak_ptr<State> weak = weak_from_this();
    const std::uint64_t id = c->id;
    asmp::Closure on_timeout(
        [weak, id] {
          if (auto s = weak.lock()) s->on_hello_timeout(id);
        },
        color);
    c->hello_timer = rt.delaycb(opts.hello_timeout, std::move(on_timeout));
    c->stream->start(
        [weak, id](ByteSpan body) {
          if (auto s = weak.lock()) s->on_message(id, body);
        },
        [weak, id](const std::string& why) {
          if (auto s = weak.lock()) s->on_closed(id, why);
        });
  }

  Conn* find(std::uint64_t id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.get();
  }

  void on_hello_timeout(std::uint64_t id) {
    Conn* c = find(id);
    if (!c || c->hello) return;
    c->hello_timer = 0;
    c->stream->close("did not say HELLO within " + std::to_string(opts.hello_timeout.count()) +
                     " ms");
  }

  // ---- messages ----

  void on_message(std::uint64_t id, ByteSpan body) {
    Conn* c = find(id);
    if (!c) return;
    auto msg = decode_agent_message(body);
    if (!msg) {
      c->stream->close("sent a " + msg.error());
      return;
    }
    if (auto* h = std::get_if<AgentHello>(&msg.value())) {
      on_hello(*c, *h);
    } else if (auto* r = std::get_if<SignLoginReply>(&msg.value())) {
      on_sign_reply(*c, *r);
    } else {
      c->stream->close(std::string("sent a ") + to_string(agent_message_type(msg.value())) +
                       " message, which agents do not send");
    }
  }

  void on_hello(Conn& c, const AgentHello& h) {
    if (c.hello) {
      c.stream->close("said HELLO twice");
      return;
    }
    if (h.version != kAgentProtocolVersion) {
      c.stream->close("speaks agent protocol version " + std::to_string(h.version) +
                      "; this sfsclient speaks " + std::to_string(kAgentProtocolVersion));
      return;
    }
    if (c.hello_timer) rt.timecb_remove(c.hello_timer);
    c.hello_timer = 0;
    c.hello = true;
    const uid_t uid = c.cred.uid;
    if (auto it = by_uid.find(uid); it != by_uid.end()) {
      // Out of the table first: closing the old one below runs on_closed,
      // which must not find it there.
      const std::uint64_t old_id = it->second;
      by_uid.erase(it);
      if (Conn* old = find(old_id)) {
        opts.log(old->who() + " is replaced by a newer one (pid " + std::to_string(c.cred.pid) +
                 ")");
        old->retired = true;
        const AgentReplaced note{static_cast<std::uint32_t>(c.cred.pid)};
        // Its answers still in flight are waited for; it gets no new work.
        if (old->pending.empty())
          old->stream->send_and_close(note, "replaced by a newer agent");
        else
          old->stream->send(note);
      }
    }
    by_uid[uid] = c.id;
    publish();
    opts.log(c.who() + " registered");
    c.stream->send(AgentWelcome{kAgentProtocolVersion, static_cast<std::uint32_t>(uid)});
    if (opts.on_registered) opts.on_registered(uid);
  }

  void on_sign_reply(Conn& c, SignLoginReply& m) {
    if (!c.hello) {
      c.stream->close("answered before saying HELLO");
      return;
    }
    if (m.id == 0 || m.id >= c.next_request) {
      c.stream->close("answered request " + std::to_string(m.id) + ", which was never made");
      return;
    }
    auto it = c.pending.find(m.id);
    if (it == c.pending.end()) return;  // answered after its timeout: nobody waits for it
    Pending p = std::move(it->second);
    c.pending.erase(it);
    if (p.timer) rt.timecb_remove(p.timer);
    p.timer = 0;
    bool violation = false;
    Result<SignedLogin> r = check_reply(c, p, m, &violation);
    deliver(std::move(p.cb), std::move(r));
    if (violation) {
      c.stream->close("returned a login request that does not verify");
      return;
    }
    if (c.retired && c.pending.empty()) c.stream->close("replaced by a newer agent");
  }

  // Checks an answer as the server will (so that a buggy agent is caught
  // here, with its uid in the message, and does not burn a server-side
  // sequence number): decode, same seqno, same name, and AuthTable's own
  // signature check against a one-line user database holding the key.
  Result<SignedLogin> check_reply(const Conn& c, const Pending& p, SignLoginReply& m,
                                  bool* violation) {
    const std::string what = c.who() + " for " + p.server;
    if (!m.ok) return make_error(what + " refused to sign: " + printable_text(m.reason));
    *violation = true;
    auto req = decode_login_request(m.request);
    if (!req) return make_error(what + " returned a bad login request: " + req.error());
    if (req.value().seqno != p.seqno)
      return make_error(what + " signed sequence number " + std::to_string(req.value().seqno) +
                        ", not " + std::to_string(p.seqno));
    if (req.value().user != m.user)
      return make_error(what + " signed for \"" + req.value().user + "\" but said \"" + m.user +
                        "\"");
    const std::string line = format_user_public_key(req.value().key) + " " + m.user + " " +
                             std::to_string(kNobody) + " " + std::to_string(kNobody) + "\n";
    const UserDb one = UserDb::parse(line, nullptr);
    AuthTable check(p.session, 1);
    LoginOutcome out = check.login(one, m.request);
    if (!out.auth)
      return make_error(what + " returned a login that does not verify: " + out.refusal);
    *violation = false;
    return SignedLogin{m.user, req.value().key, std::move(m.request)};
  }

  // ---- requests ----

  void sign(uid_t uid, std::string server, SessionId sid, std::uint64_t seqno, SignCallback cb) {
    if (closed) {
      deliver(std::move(cb), make_error("the agent registry is closed"));
      return;
    }
    if (server.empty() || server.size() > kMaxNameChars) {
      deliver(std::move(cb), make_error("cannot ask an agent to sign for a server name of " +
                                        std::to_string(server.size()) + " characters"));
      return;
    }
    auto it = by_uid.find(uid);
    Conn* c = it == by_uid.end() ? nullptr : find(it->second);
    if (!c) {
      deliver(std::move(cb), make_error("no sfsagent is registered for uid " + std::to_string(uid) +
                                        " (the user may start one: sfsagent)"));
      return;
    }
    if (c->pending.size() >= opts.max_pending_per_agent) {
      deliver(std::move(cb),
              make_error(c->who() + " already has " + std::to_string(c->pending.size()) +
                         " requests outstanding"));
      return;
    }
    const std::uint32_t rid = c->next_request++;
    const std::uint64_t cid = c->id;
    std::weak_ptr<State> weak = weak_from_this();
    Pending& p = c->pending[rid];
    p.server = server;
    p.session = sid;
    p.seqno = seqno;
    p.cb = std::move(cb);
    asmp::Closure on_timeout(
        [weak, cid, rid] {
          if (auto s = weak.lock()) s->on_sign_timeout(cid, rid);
        },
        color);
    p.timer = rt.delaycb(opts.sign_timeout, std::move(on_timeout));
    // Ids only grow, which is how a late answer is told from a forged one;
    // a connection that used them all up is retired (the agent reconnects).
    if (c->next_request == std::numeric_limits<std::uint32_t>::max()) {
      c->retired = true;
      by_uid.erase(uid);
      publish();
    }
    // After the entry exists: if the write fails, the close path fails it.
    c->stream->send(SignLoginRequest{rid, std::move(server), sid, seqno});
  }

  void on_sign_timeout(std::uint64_t cid, std::uint32_t rid) {
    Conn* c = find(cid);
    if (!c) return;
    auto it = c->pending.find(rid);
    if (it == c->pending.end()) return;
    Pending p = std::move(it->second);
    c->pending.erase(it);
    p.timer = 0;
    fail(p, c->who() + " did not answer within " + std::to_string(opts.sign_timeout.count()) +
                " ms (login to " + p.server + ")");
    if (c->retired && c->pending.empty()) c->stream->close("replaced by a newer agent");
  }

  // ---- closing ----

  void on_closed(std::uint64_t id, const std::string& why) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    std::shared_ptr<Conn> c = std::move(it->second);
    conns.erase(it);
    if (auto u = per_uid.find(c->cred.uid); u != per_uid.end() && --u->second == 0)
      per_uid.erase(u);
    if (c->hello_timer) rt.timecb_remove(c->hello_timer);
    if (auto r = by_uid.find(c->cred.uid); r != by_uid.end() && r->second == id) {
      by_uid.erase(r);
      publish();
    }
    if (c->hello || why != "closed the connection") opts.log(c->who() + ": " + why);
    for (auto& [rid, p] : c->pending) fail(p, c->who() + " went away (" + why + ")");
    c->pending.clear();
  }

  void shut(asmp::Closure done) {
    if (!closed) {
      closed = true;
      if (listening) {
        listening = false;
        rt.fdcb(listener.fd, asmp::selread, nullptr);
        if (accept_resume) rt.timecb_remove(accept_resume);
        ::close(listener.fd);
        agent_detail::unlink_if_ours(opts.path, listener);
      }
      std::vector<std::shared_ptr<MessageStream>> streams;
      for (auto& [id, c] : conns) streams.push_back(c->stream);
      for (auto& s : streams) s->close("sfsclient is shutting down");
    }
    if (done) rt.cpucb(std::move(done));
  }
};

AgentRegistry::AgentRegistry(asmp::Runtime& rt, asmp::color_t color, AgentRegistryOptions opts)
    : st_(std::make_shared<State>(rt, color, std::move(opts))) {}

AgentRegistry::~AgentRegistry() { close(); }

Status AgentRegistry::listen() {
  const AgentRegistryOptions& o = st_->opts;
  if (Status s = agent_detail::check_private_dir(agent_detail::parent_dir(o.path), ::geteuid(),
                                                 o.dir_mode, true);
      !s)
    return make_error("agent registration socket: " + s.error());
  auto sock = agent_detail::listen_unix(o.path, o.socket_mode, "another sfsclient");
  if (!sock) return make_error("agent registration socket: " + sock.error());
  st_->post([s = sock.value()](State& st) { st.install(s); });
  return {};
}

void AgentRegistry::sign_login(uid_t uid, const std::string& server_name, const SessionId& sid,
                               std::uint64_t seqno, asmp::Callback<void(Result<SignedLogin>)> cb) {
  // Closure, not std::function: cb is move-only.
  auto st = st_;
  st->rt.cpucb(asmp::Closure(
      [st, uid, server = server_name, sid, seqno, cb = std::move(cb)]() mutable {
        st->sign(uid, std::move(server), sid, seqno, std::move(cb));
      },
      st->color));
}

void AgentRegistry::close(asmp::Closure done) {
  auto st = st_;
  st->rt.cpucb(asmp::Closure([st, done = std::move(done)]() mutable { st->shut(std::move(done)); },
                             st->color));
}

bool AgentRegistry::has_agent(uid_t uid) const {
  std::lock_guard lk(st_->snap_mu);
  return st_->snapshot.count(uid) != 0;
}

std::vector<AgentInfo> AgentRegistry::agents() const {
  std::lock_guard lk(st_->snap_mu);
  std::vector<AgentInfo> out;
  for (auto& [uid, pid] : st_->snapshot) out.push_back({uid, pid});
  return out;
}

}  // namespace sfs
