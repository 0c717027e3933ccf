// agent.cc: the user's side (ControlSocket and Agent in sfs/agent.h).
//
// All of Agent::State below the "on the color" line belongs to the agent's
// color. Two kinds of connection live there:
//   control       the user's commands (sfskey): one request, one answer;
//                 only the owner's uid or root gets past accept.
//   registration  one outgoing connection to sfsclient: HELLO, WELCOME,
//                 then SIGN_LOGIN requests answered in order of arrival.
//                 When it closes, a timer reconnects (backoff doubling from
//                 backoff_min to backoff_max, reset by a WELCOME).
#include "sfs/agent.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <unordered_map>

#include "message_stream.h"
#include "sfs/login.h"
#include "unix_socket.h"

namespace sfs {

using agent_detail::errno_text;
using agent_detail::MessageStream;

// ---- ControlSocket -----------------------------------------------------------------

namespace {

std::string lock_path_for(const std::string& path) { return path + ".lock"; }

// The pid a running agent wrote into its lock file, or "".
std::string read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, static_cast<std::size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char c : s)
    if (c < '0' || c > '9') return "";
  return s;
}

}  // namespace

Result<ControlSocket> ControlSocket::open(const std::string& path, uid_t owner) {
  if (path.empty() || path[0] != '/')
    return make_error("control socket path \"" + path + "\" must be absolute");
  const std::string dir = agent_detail::parent_dir(path);
  if (Status s = agent_detail::check_private_dir(dir, owner, 0700, true); !s)
    return make_error("control socket: " + s.error());

  // The lock, not the socket, decides who runs: two agents started at the
  // same moment would both find no socket. An agent that died leaves the
  // file, but its lock went with it. If the file we locked was meanwhile
  // removed by an exiting agent, lock the new one instead.
  const std::string lpath = lock_path_for(path);
  int lfd = -1;
  for (int attempt = 0; attempt < 5 && lfd < 0; ++attempt) {
    const int fd = ::open(lpath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return make_error("cannot open the lock file " + lpath + ": " + errno_text(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string pid = read_pid(fd);
      ::close(fd);
      if (err == EWOULDBLOCK)
        return make_error("an sfsagent" + (pid.empty() ? std::string() : " (pid " + pid + ")") +
                          " is already running for " + path + "; use it, or stop it first" +
                          (pid.empty() ? std::string() : " (kill " + pid + ")"));
      return make_error("cannot lock " + lpath + ": " + errno_text(err));
    }
    struct stat a, b;
    if (::fstat(fd, &a) == 0 && ::lstat(lpath.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
      lfd = fd;
    } else {
      ::close(fd);
    }
  }
  if (lfd < 0) return make_error("cannot lock " + lpath + ": it keeps being replaced");

  auto sock = agent_detail::listen_unix(path, 0600, "an sfsagent (one not using " + lpath + ")");
  if (!sock) {
    ::unlink(lpath.c_str());
    ::close(lfd);
    return make_error(sock.error());
  }
  ControlSocket cs;
  cs.path_ = path;
  cs.fd_ = sock.value().fd;
  cs.lock_fd_ = lfd;
  cs.dev_ = sock.value().dev;
  cs.ino_ = sock.value().ino;
  cs.record_pid();
  return cs;
}

ControlSocket::ControlSocket(ControlSocket&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), lock_fd_(o.lock_fd_), dev_(o.dev_), ino_(o.ino_) {
  o.fd_ = o.lock_fd_ = -1;
}

ControlSocket& ControlSocket::operator=(ControlSocket&& o) noexcept {
  if (this != &o) {
    remove();
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    lock_fd_ = o.lock_fd_;
    dev_ = o.dev_;
    ino_ = o.ino_;
    o.fd_ = o.lock_fd_ = -1;
  }
  return *this;
}

ControlSocket::~ControlSocket() { remove(); }

void ControlSocket::record_pid() const {
  if (lock_fd_ < 0) return;
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) == 0) {
    const ssize_t n = ::pwrite(lock_fd_, pid.data(), pid.size(), 0);
    (void)n;  // only a courtesy for the message a second agent prints
  }
}

void ControlSocket::remove() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    agent_detail::unlink_if_ours(path_, agent_detail::ListeningSocket{-1, dev_, ino_});
  }
  if (lock_fd_ >= 0) {
    // Unlinked while still locked; open() re-checks the file it locked.
    ::unlink(lock_path_for(path_).c_str());
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
}

// ---- Agent -------------------------------------------------------------------------

namespace {

void log_to_stderr(const std::string& line) {
  std::fprintf(stderr, "sfsagent: %s\n", line.c_str());
}

constexpr std::size_t kMaxControlConnections = 16;

}  // namespace

struct Agent::State : std::enable_shared_from_this<State> {
  State(asmp::Runtime& r, asmp::color_t c, ControlSocket cs, KeyRing k, AgentOptions o)
      : rt(r), color(c), opts(std::move(o)), control(std::move(cs)), keys(std::move(k)) {
    if (!opts.log) opts.log = log_to_stderr;
    backoff = opts.backoff_min;
    key_count.store(keys.size());
  }

  asmp::Runtime& rt;
  const asmp::color_t color;
  AgentOptions opts;
  std::atomic<bool> registered{false};
  std::atomic<std::size_t> key_count{0};

  // ---- on the color ----
  ControlSocket control;
  KeyRing keys;
  bool started = false;
  bool stopped = false;
  bool replaced = false;
  std::uint64_t next_control = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<MessageStream>> controls;
  std::shared_ptr<MessageStream> reg;
  bool welcomed = false;
  bool said_unreachable = false;  // one log line per outage, not per retry
  asmp::TimerId retry_timer = 0;
  std::chrono::milliseconds backoff;

  void post(std::function<void(State&)> fn) {
    rt.cpucb(asmp::Closure([self = shared_from_this(), fn = std::move(fn)] { fn(*self); }, color));
  }

  void begin() {
    if (started || stopped) return;
    started = true;
    rt.fdcb(control.fd(), asmp::selread,
            asmp::Closure([self = shared_from_this()] { self->on_control_accept(); }, color));
    connect_registration();
  }

  // ---- the control socket ----

  void on_control_accept() {
    for (int i = 0; i < 16 && !stopped; ++i) {
      const int fd = ::accept4(control.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of descriptors: the next wakeup tries again
      }
      const auto cred = agent_detail::peer_cred(fd);
      auto stream = MessageStream::create(rt, color, fd);
      if (!cred || (cred->uid != opts.owner && cred->uid != 0)) {
        const std::string who = cred ? "uid " + std::to_string(cred->uid) : "an unknown peer";
        opts.log("refused a control connection from " + who);
        stream->send_and_close(ControlStatus{false, who + " may not use the sfsagent of uid " +
                                                        std::to_string(opts.owner)},
                               "refused");
        continue;
      }
      if (controls.size() >= kMaxControlConnections) {
        stream->send_and_close(ControlStatus{false, "the agent is busy; try again"}, "busy");
        continue;
      }
      const std::uint64_t id = next_control++;
      controls.emplace(id, stream);
      std::weak_ptr<State> weak = weak_from_this();
      stream->start(
          [weak, id](ByteSpan body) {
            if (auto s = weak.lock()) s->on_control_message(id, body);
          },
          [weak, id](const std::string&) {
            if (auto s = weak.lock()) s->controls.erase(id);
          });
    }
  }

  void on_control_message(std::uint64_t id, ByteSpan body) {
    auto it = controls.find(id);
    if (it == controls.end()) return;
    std::shared_ptr<MessageStream> stream = it->second;
    auto msg = decode_agent_message(body);
    if (!msg) {
      stream->send_and_close(ControlStatus{false, "bad request: " + msg.error()}, "bad request");
      return;
    }
    AgentMessage& m = msg.value();
    if (auto* add = std::get_if<AddKeyRequest>(&m)) {
      stream->send(handle_add(*add));
    } else if (std::holds_alternative<ListKeysRequest>(m)) {
      stream->send(KeyListReply{keys.list()});
    } else if (auto* del = std::get_if<DeleteKeyRequest>(&m)) {
      const std::size_t n = keys.remove(del->by, del->what);
      key_count.store(keys.size(), std::memory_order_release);
      if (n == 0)
        stream->send(ControlStatus{false, "no key in the agent matches " + del->what});
      else
        stream->send(
            ControlStatus{true, "deleted " + std::to_string(n) + " key" + (n == 1 ? "" : "s")});
    } else if (std::holds_alternative<RemoveAllRequest>(m)) {
      const std::size_t n = keys.clear();
      key_count.store(0, std::memory_order_release);
      stream->send(
          ControlStatus{true, "deleted " + std::to_string(n) + " key" + (n == 1 ? "" : "s")});
    } else {
      stream->send_and_close(
          ControlStatus{false, std::string("a ") + to_string(agent_message_type(m)) +
                                   " message is not a command"},
          "bad request");
    }
  }

  ControlStatus handle_add(AddKeyRequest& add) {
    std::string name = add.name.empty() ? opts.default_user : add.name;
    if (name.empty())
      return {false, "no login name for this key: give one (sfskey add --name NAME)"};
    auto r = keys.add(UserKey::from_seed(add.seed), std::move(name), std::move(add.server),
                      std::move(add.comment));
    key_count.store(keys.size(), std::memory_order_release);
    if (!r) return {false, r.error()};
    opts.log(r.value());
    return {true, r.value()};
  }

  // ---- the registration socket ----

  void connect_registration() {
    retry_timer = 0;
    if (stopped || replaced || reg) return;
    int err = 0;
    const int fd = agent_detail::connect_unix(opts.registration_path, true, &err);
    if (fd < 0) {
      if (!said_unreachable)
        opts.log("sfsclient is not reachable at " + opts.registration_path + " (" +
                 errno_text(err) + "); will keep trying");
      said_unreachable = true;
      retry_later();
      return;
    }
    // Whoever serves this socket gets our signatures, and with them logins
    // as this user on connections it chose: only root (sfsclient) or
    // ourselves may.
    const auto cred = agent_detail::peer_cred(fd);
    if (!cred || (cred->uid != 0 && cred->uid != opts.owner)) {
      ::close(fd);
      opts.log("not registering at " + opts.registration_path + ": it is served by " +
               (cred ? "uid " + std::to_string(cred->uid) : std::string("an unknown peer")) +
               ", not by root");
      said_unreachable = true;
      retry_later();
      return;
    }
    reg = MessageStream::create(rt, color, fd);
    welcomed = false;
    std::weak_ptr<State> weak = weak_from_this();
    reg->start(
        [weak](ByteSpan body) {
          if (auto s = weak.lock()) s->on_registry_message(body);
        },
        [weak](const std::string& why) {
          if (auto s = weak.lock()) s->on_registry_closed(why);
        });
    reg->send(AgentHello{});
  }

  void retry_later() {
    if (stopped || replaced || retry_timer) return;
    std::weak_ptr<State> weak = weak_from_this();
    asmp::Closure retry(
        [weak] {
          if (auto s = weak.lock()) s->connect_registration();
        },
        color);
    retry_timer = rt.delaycb(backoff, std::move(retry));
    backoff = std::min(backoff * 2, opts.backoff_max);
  }

  void on_registry_message(ByteSpan body) {
    auto msg = decode_agent_message(body);
    if (!msg) {
      reg->close("sfsclient sent a " + msg.error());
      return;
    }
    AgentMessage& m = msg.value();
    if (auto* w = std::get_if<AgentWelcome>(&m)) {
      if (welcomed || w->version != kAgentProtocolVersion) {
        reg->close("sfsclient sent an unexpected WELCOME");
        return;
      }
      welcomed = true;
      said_unreachable = false;
      backoff = opts.backoff_min;
      registered.store(true, std::memory_order_release);
      opts.log("registered with sfsclient at " + opts.registration_path + " as uid " +
               std::to_string(w->uid));
    } else if (auto* s = std::get_if<SignLoginRequest>(&m)) {
      if (!welcomed) {
        reg->close("sfsclient asked for a signature before WELCOME");
        return;
      }
      reg->send(sign(*s));
    } else if (auto* r = std::get_if<AgentReplaced>(&m)) {
      replaced = true;
      const std::string why = "another sfsagent of this user (pid " + std::to_string(r->new_pid) +
                              ") registered with sfsclient and replaces this one";
      opts.log(why);
      reg->close("replaced");
      if (opts.on_replaced) opts.on_replaced(why);
    } else {
      reg->close(std::string("sfsclient sent a ") + to_string(agent_message_type(m)) + " message");
    }
  }

  SignLoginReply sign(const SignLoginRequest& req) {
    SignLoginReply out;
    out.id = req.id;
    const KeyRing::Entry* e = keys.pick(req.server);
    if (!e) {
      out.reason = keys.size() == 0 ? "the agent holds no keys (run sfskey add)"
                                    : "the agent holds no key for " + req.server;
      opts.log("no key to log in to " + printable_text(req.server));
      return out;
    }
    out.ok = true;
    out.user = e->name;
    out.request = encode_login_request(*e->key, e->name, req.session, req.seqno);
    opts.log("signed a login to " + printable_text(req.server) + " as " + e->name);
    return out;
  }

  void on_registry_closed(const std::string& why) {
    reg = nullptr;
    const bool was = welcomed;
    welcomed = false;
    registered.store(false, std::memory_order_release);
    if (stopped || replaced) return;
    if (was) {
      opts.log("lost sfsclient (" + why + "); reconnecting");
      said_unreachable = true;  // the reconnect attempts need not say it again
    }
    retry_later();
  }

  // ---- stopping ----

  void shut(asmp::Closure done) {
    if (!stopped) {
      stopped = true;
      if (started) rt.fdcb(control.fd(), asmp::selread, nullptr);
      control.remove();
      if (retry_timer) rt.timecb_remove(retry_timer);
      retry_timer = 0;
      if (auto r = reg) r->close("agent stopping");
      std::vector<std::shared_ptr<MessageStream>> streams;
      for (auto& [id, s] : controls) streams.push_back(s);
      for (auto& s : streams) s->close("agent stopping");
      keys.clear();
      key_count.store(0, std::memory_order_release);
      registered.store(false, std::memory_order_release);
    }
    if (done) rt.cpucb(std::move(done));
  }
};

Agent::Agent(asmp::Runtime& rt, asmp::color_t color, ControlSocket control, KeyRing keys,
             AgentOptions opts)
    : st_(std::make_shared<State>(rt, color, std::move(control), std::move(keys),
                                  std::move(opts))) {}

Agent::~Agent() { stop(); }

void Agent::start() {
  st_->post([](State& s) { s.begin(); });
}

void Agent::stop(asmp::Closure done) {
  auto st = st_;
  st->rt.cpucb(asmp::Closure([st, done = std::move(done)]() mutable { st->shut(std::move(done)); },
                             st->color));
}

bool Agent::registered() const { return st_->registered.load(std::memory_order_acquire); }
std::size_t Agent::key_count() const { return st_->key_count.load(std::memory_order_acquire); }

}  // namespace sfs
