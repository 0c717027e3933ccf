// server_mount.cc: see server_mount.h.
#include "server_mount.h"

#include <cerrno>

#include "sfs/revocation.h"

namespace sfsclient {

using asmp::Closure;

ServerMount::ServerMount(ServerId id, sfs::SelfCertName name, ServerMountOptions opts,
                         LoginSigner* signer, Invalidate on_invalidate, Lost on_lost, NewRoot on_new_root)
    : id_(id),
      name_(std::move(name)),
      name_text_(sfs::format_name(name_)),
      opts_(std::move(opts)),
      signer_(signer),
      on_invalidate_(std::move(on_invalidate)),
      on_lost_(std::move(on_lost)),
      on_new_root_(std::move(on_new_root)) {
  if (opts_.connections > 1) {
    ReadLanesOptions lo;
    lo.color = opts_.color;
    lo.first_color = opts_.conn_color + 1;
    lo.count = opts_.connections - 1;
    lo.backoff_initial = opts_.backoff_initial;
    lo.backoff_max = opts_.backoff_max;
    lo.log = opts_.log;
    lanes_ = std::make_shared<ReadLanes>(name_, name_text_, lo, signer_);
  }
}

void ServerMount::start(std::function<void(int, const std::string&)> done) {
  start_done_ = std::move(done);
  connect();
}

// A revoked HOSTID is refused before any packet goes out, on the first
// mount and on every reconnect, so a certificate dropped into the directory
// takes effect the next time the connection is made.
bool ServerMount::refuse_if_revoked() {
  if (opts_.revoked_dir.empty()) return false;
  auto found = sfs::find_revocation(opts_.revoked_dir, name_.hostid,
                                    [this](const std::string& w) { opts_.log("sfsclient: " + w); });
  std::string why;
  if (!found) why = found.error() + "; refusing every server until it can be read";  // fail closed
  else if (found.value()) why = "revoked by the certificate " + *found.value();
  else return false;
  opts_.log("sfsclient: refusing " + name_text_ + ": " + why);
  if (start_done_) {
    auto done = std::move(start_done_);
    start_done_ = nullptr;
    done(EACCES, why);
    return true;
  }
  closed_ = true;
  closed_errno_ = EACCES;
  for (auto& w : waiting_) w.fail(EACCES);
  waiting_.clear();
  return true;
}

void ServerMount::connect() {
  if (connecting_ || client_ || closed_) return;
  if (refuse_if_revoked()) return;
  connecting_ = true;
  const std::uint64_t gen = ++generation_;
  sfs::fs::FileClientOptions o;
  o.server = name_;
  o.color = opts_.conn_color;
  o.log = opts_.log;
  std::weak_ptr<ServerMount> weak = weak_from_this();
  const asmp::color_t color = opts_.color;
  // Both run on the connection's color; hop to ours, in channel order.
  o.on_invalidate = [weak, color](const sfs::fs::Handle& fh, std::uint64_t change, std::function<void()> done) {
    asmp::default_runtime().cpucb(Closure(
        [weak, fh, change, done] {
          if (auto self = weak.lock()) self->on_invalidate_(self->id_, fh, change, done);
          else done();
        },
        color));
  };
  o.on_close = [weak, color, gen](const std::string& why) {
    asmp::default_runtime().cpucb(Closure(
        [weak, gen, why] {
          if (auto self = weak.lock()) self->on_lost(gen, why);
        },
        color));
  };
  sfs::fs::FileClient::connect(
      std::move(o), sfs::fs::FileClient::ConnectDone(
                        [weak](sfs::Result<std::shared_ptr<sfs::fs::FileClient>> r) {
                          if (auto self = weak.lock()) self->on_connected(std::move(r));
                          else if (r.ok()) r.value()->close();
                        },
                        color));
}

namespace {

// The errno a caller sees when the first connection fails.
int classify(const std::string& why) {
  if (why.find("does not match HOSTID") != std::string::npos ||
      why.find("does not serve HOSTID") != std::string::npos)
    return EACCES;
  if (why.find("TCP connect") != std::string::npos) return EHOSTUNREACH;
  return EIO;
}

// Two roots of the same export directory: the same file system and file
// (GETROOT's attributes; without them, not known to be the same).
bool same_export(const sfs::fs::Root& a, const sfs::fs::Root& b) {
  return a.attr && b.attr && a.attr->attr.fsid == b.attr->attr.fsid && a.attr->attr.fileid == b.attr->attr.fileid;
}

}  // namespace

void ServerMount::on_connected(sfs::Result<std::shared_ptr<sfs::fs::FileClient>> r) {
  connecting_ = false;
  if (closed_) {
    if (r.ok()) r.value()->close();
    return;
  }
  if (!r.ok()) {
    if (start_done_) {
      auto done = std::move(start_done_);
      start_done_ = nullptr;
      done(classify(r.error()), r.error());
      return;
    }
    // Reconnecting: try again later, unless nobody waits.
    backoff_ = backoff_.count() ? std::min(backoff_ * 2, opts_.backoff_max) : opts_.backoff_initial;
    opts_.log("sfsclient: reconnecting to " + name_text_ + " failed (" + r.error() + "); retrying in " +
              std::to_string(backoff_.count()) + " ms");
    std::weak_ptr<ServerMount> weak = weak_from_this();
    asmp::default_runtime().delaycb(backoff_, Closure(
                                                  [weak] {
                                                    if (auto self = weak.lock()) self->connect();
                                                  },
                                                  opts_.color));
    return;
  }
  client_ = r.value();
  ++connections_;
  backoff_ = std::chrono::milliseconds(0);
  const bool first = static_cast<bool>(start_done_);
  if (first) {
    root_ = client_->root();
  } else if (client_->root().fh != root_.fh) {
    if (!same_export(root_, client_->root())) {
      // Another export behind the same name: every handle we hold is
      // meaningless; refuse rather than mix files up.
      opts_.log("sfsclient: " + name_text_ + " came back with another root handle; refusing its files");
      client_->close();
      client_.reset();
      closed_ = true;
      for (auto& w : waiting_) w.fail(ESTALE);
      waiting_.clear();
      return;
    }
    // The same directory under a new handle key: the owner re-keys the root
    // and finds the other files again by path when their handles fail.
    opts_.log("sfsclient: " + name_text_ +
              " came back with another root handle for the same export; re-finding files by path");
    const sfs::fs::Handle old_root = root_.fh;
    root_ = client_->root();
    if (on_new_root_) on_new_root_(id_, old_root);
  } else {
    opts_.log("sfsclient: reconnected to " + name_text_);
  }
  logins_.clear();
  if (first) {
    auto done = std::move(start_done_);
    start_done_ = nullptr;
    done(0, "");
  }
  std::deque<Waiter> ready;
  ready.swap(waiting_);
  for (auto& w : ready) dispatch(std::move(w));
}

void ServerMount::on_lost(std::uint64_t generation, const std::string& why) {
  if (generation != generation_ || !client_) return;
  opts_.log("sfsclient: lost the connection to " + name_text_ + ": " + why);
  client_.reset();
  // Logins were per connection; waiters for a login wait for the next one.
  for (auto& [uid, l] : logins_)
    for (auto& w : l.waiting) waiting_.push_back(std::move(w));
  logins_.clear();
  on_lost_(id_);
  if (!closed_) connect();
}

void ServerMount::run(uid_t uid, Run fn, Fail fail) {
  Waiter w{uid, std::move(fn), std::move(fail), asmp::Clock::now() + opts_.timeout};
  if (closed_) return w.fail(closed_errno_);
  if (!client_) {
    waiting_.push_back(std::move(w));
    arm_expiry();
    connect();
    return;
  }
  dispatch(std::move(w));
}

void ServerMount::run_read(uid_t uid, Run fn, Fail fail) {
  if (lanes_ && client_ && !closed_) {
    // A lane only for a user already logged in on the main connection: the
    // lanes copy that login (anonymous stays anonymous).
    auto it = logins_.find(uid);
    if (it != logins_.end() && it->second.ready)
      if (auto p = lanes_->next(uid, it->second.auth, root_.fh)) return fn(p->client, p->auth);
  }
  run(uid, std::move(fn), std::move(fail));
}

void ServerMount::agent_registered(uid_t uid) {
  auto it = logins_.find(uid);
  if (!client_ || it == logins_.end() || !it->second.ready || !it->second.agentless || it->second.retrying) return;
  it->second.retrying = true;
  login(uid);
}

void ServerMount::dispatch(Waiter w) {
  if (!client_) {
    waiting_.push_back(std::move(w));
    arm_expiry();
    return;
  }
  Login& l = logins_[w.uid];
  if (l.ready) return w.fn(client_, l.auth);
  const bool first = l.waiting.empty();
  const uid_t uid = w.uid;
  l.waiting.push_back(std::move(w));
  arm_expiry();
  if (first) login(uid);
}

void ServerMount::login(uid_t uid) {
  // agentless: anonymous because no agent signed (a later agent is asked);
  // a login the server refused is not sent again on this connection.
  auto finish = [this, uid](std::uint32_t auth, bool agentless = false) {
    auto it = logins_.find(uid);
    if (it == logins_.end()) return;  // the connection went away meanwhile
    const bool relogin = it->second.retrying && auth != 0;
    it->second.ready = true;
    it->second.auth = auth;
    it->second.retrying = false;
    it->second.agentless = auth == 0 && agentless;
    if (relogin) {
      opts_.log("sfsclient: uid " + std::to_string(uid) + " at " + name_text_ + " is logged in now");
      if (on_login_changed_) on_login_changed_(id_, uid);
    }
    auto waiters = std::move(it->second.waiting);
    it->second.waiting.clear();
    for (auto& w : waiters) w.fn(client_, auth);
  };
  if (!signer_) return finish(0);
  // A retry of an anonymous user says nothing unless it succeeds.
  const bool quiet = logins_[uid].retrying;
  auto client = client_;
  const std::uint64_t seqno = client->session().next_seqno();
  std::weak_ptr<ServerMount> weak = weak_from_this();
  signer_->sign_login(
      uid, name_text_, client->session().session_id(), seqno,
      asmp::Callback<void(sfs::Result<SignedLogin>)>(
          [weak, client, uid, finish, quiet](sfs::Result<SignedLogin> s) {
            auto self = weak.lock();
            if (!self || self->client_ != client) return;
            if (!s.ok()) {
              // No agent, or no key for this server: the anonymous user.
              if (!quiet)
                self->opts_.log("sfsclient: uid " + std::to_string(uid) + " at " + self->name_text_ +
                              " is anonymous: " + s.error());
              return finish(0, true);
            }
            client->login_signed(
                std::move(s.value().request), s.value().user,
                asmp::Callback<void(sfs::Result<std::uint32_t>)>(
                    [weak, client, uid, finish, quiet](sfs::Result<std::uint32_t> n) {
                      auto me = weak.lock();
                      if (!me || me->client_ != client) return;
                      if (!n.ok()) {
                        if (!quiet)
                          me->opts_.log("sfsclient: uid " + std::to_string(uid) + " at " + me->name_text_ +
                                      " is anonymous: " + n.error());
                        return finish(0);
                      }
                      finish(n.value());
                    },
                    self->opts_.color));
          },
          opts_.color));
}

void ServerMount::arm_expiry() {
  if (expiry_armed_ || opts_.hard) return;
  expiry_armed_ = true;
  std::weak_ptr<ServerMount> weak = weak_from_this();
  asmp::default_runtime().delaycb(std::chrono::milliseconds(500), Closure(
                                                                       [weak] {
                                                                         if (auto self = weak.lock()) {
                                                                           self->expiry_armed_ = false;
                                                                           self->expire_waiters();
                                                                         }
                                                                       },
                                                                       opts_.color));
}

void ServerMount::expire_waiters() {
  const auto now = asmp::Clock::now();
  // Both queues: calls waiting for a connection, and calls waiting for their
  // user's login (an agent that never answers must not hold them forever).
  // Taken out first: a failure may queue a new call (a write waiting behind
  // this one) into them.
  std::deque<Waiter> expired, all;
  all.swap(waiting_);
  for (auto& w : all) {
    if (w.deadline <= now) expired.push_back(std::move(w));
    else waiting_.push_back(std::move(w));
  }
  for (auto& [uid, l] : logins_) {
    decltype(l.waiting) keep;
    for (auto& w : l.waiting) {
      if (w.deadline <= now) expired.push_back(std::move(w));
      else keep.push_back(std::move(w));
    }
    l.waiting.swap(keep);
  }
  for (auto& w : expired) w.fail(EIO);
  if (!waiting_.empty() || any_login_waiting()) arm_expiry();
}

bool ServerMount::any_login_waiting() const {
  for (const auto& [uid, l] : logins_)
    if (!l.waiting.empty()) return true;
  return false;
}

void ServerMount::close() {
  closed_ = true;
  if (lanes_) lanes_->close();
  if (client_) client_->close();
  client_.reset();
  std::deque<Waiter> all;
  all.swap(waiting_);
  for (auto& [uid, l] : logins_)
    for (auto& w : l.waiting) all.push_back(std::move(w));
  logins_.clear();
  for (auto& w : all) w.fail(EIO);
}

}  // namespace sfsclient
