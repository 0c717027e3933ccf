// read_lanes.cc: see read_lanes.h.
#include "read_lanes.h"

#include "server_mount.h"

namespace sfsclient {

using asmp::Closure;

ReadLanes::ReadLanes(sfs::SelfCertName name, std::string name_text, ReadLanesOptions opts, LoginSigner* signer)
    : name_(std::move(name)),
      name_text_(std::move(name_text)),
      opts_(std::move(opts)),
      signer_(signer),
      lanes_(opts_.count) {}

std::optional<ReadLanes::Pick> ReadLanes::next(uid_t uid, std::uint32_t main_auth, const sfs::fs::Handle& root) {
  if (closed_ || lanes_.empty()) return std::nullopt;
  if (root != root_) {
    // The main connection's root changed: lanes made under the old one go.
    if (!root_.empty()) reset();
    root_ = root;
  }
  const unsigned slot = turn_++ % (static_cast<unsigned>(lanes_.size()) + 1);
  if (slot == 0) return std::nullopt;  // the main connection's turn
  const unsigned i = slot - 1;
  Lane& l = lanes_[i];
  if (!l.client) {
    if (!l.connecting && asmp::Clock::now() >= l.not_before) connect(i);
    return std::nullopt;
  }
  auto it = l.logins.find(uid);
  // The user logged in on the main connection since (an agent that came
  // late): log in here too.
  if (it != l.logins.end() && it->second.state != Login::kPending && it->second.main_auth != main_auth) {
    l.logins.erase(it);
    it = l.logins.end();
  }
  if (it == l.logins.end()) {
    login(i, uid, main_auth);
    return std::nullopt;
  }
  if (it->second.state != Login::kReady) return std::nullopt;
  return Pick{l.client, it->second.auth};
}

void ReadLanes::connect(unsigned i) {
  Lane& l = lanes_[i];
  l.connecting = true;
  const std::uint64_t gen = ++l.generation;
  sfs::fs::FileClientOptions o;
  o.server = name_;
  o.color = opts_.first_color + i;
  o.log = opts_.log;
  // No attributes are cached from a lane's replies: nothing to drop.
  o.on_invalidate = [](const sfs::fs::Handle&, std::uint64_t, std::function<void()> done) { done(); };
  std::weak_ptr<ReadLanes> weak = weak_from_this();
  const asmp::color_t color = opts_.color;
  o.on_close = [weak, color, i, gen](const std::string& why) {
    asmp::default_runtime().cpucb(Closure(
        [weak, i, gen, why] {
          if (auto self = weak.lock()) self->on_lost(i, gen, why);
        },
        color));
  };
  sfs::fs::FileClient::connect(
      std::move(o), sfs::fs::FileClient::ConnectDone(
                        [weak, i, gen](sfs::Result<std::shared_ptr<sfs::fs::FileClient>> r) {
                          if (auto self = weak.lock()) self->on_connected(i, gen, std::move(r));
                          else if (r.ok()) r.value()->close();
                        },
                        color));
}

void ReadLanes::on_connected(unsigned i, std::uint64_t gen, sfs::Result<std::shared_ptr<sfs::fs::FileClient>> r) {
  Lane& l = lanes_[i];
  if (gen != l.generation) {  // reset() meanwhile
    if (r.ok()) r.value()->close();
    return;
  }
  l.connecting = false;
  if (closed_) {
    if (r.ok()) r.value()->close();
    return;
  }
  if (!r.ok()) {
    if (l.backoff.count() == 0)  // once per run of failures
        opts_.log("sfsclient: read connection " + std::to_string(i + 2) + " to " + name_text_ + " failed (" +
                r.error() + "); its reads go over the main connection meanwhile");
    return drop(i);
  }
  if (r.value()->root().fh != root_) {
    opts_.log("sfsclient: read connection " + std::to_string(i + 2) + " to " + name_text_ +
              " found another root handle than the main connection; not used");
    r.value()->close();
    return drop(i);
  }
  l.client = r.value();
  l.backoff = std::chrono::milliseconds(0);
}

void ReadLanes::on_lost(unsigned i, std::uint64_t gen, const std::string& why) {
  Lane& l = lanes_[i];
  if (gen != l.generation || !l.client) return;
  if (!closed_)
    opts_.log("sfsclient: lost read connection " + std::to_string(i + 2) + " to " + name_text_ + ": " + why);
  drop(i);
}

void ReadLanes::drop(unsigned i) {
  Lane& l = lanes_[i];
  if (l.client) l.client->close();
  l.client.reset();
  l.connecting = false;
  ++l.generation;  // what was under way for the old one is ignored
  l.logins.clear();
  l.backoff = l.backoff.count() ? std::min(l.backoff * 2, opts_.backoff_max) : opts_.backoff_initial;
  l.not_before = asmp::Clock::now() + l.backoff;
}

void ReadLanes::reset() {
  for (unsigned i = 0; i < lanes_.size(); ++i) {
    drop(i);
    lanes_[i].backoff = std::chrono::milliseconds(0);
    lanes_[i].not_before = {};
  }
}

void ReadLanes::close() {
  closed_ = true;
  for (unsigned i = 0; i < lanes_.size(); ++i) drop(i);
}

void ReadLanes::login(unsigned i, uid_t uid, std::uint32_t main_auth) {
  Lane& l = lanes_[i];
  Login& lg = l.logins[uid];
  lg.main_auth = main_auth;
  // Anonymous on the main connection: anonymous here too, no login.
  if (main_auth == 0 || !signer_) {
    lg.state = Login::kReady;
    lg.auth = 0;
    return;
  }
  auto client = l.client;
  const std::uint64_t gen = l.generation;
  std::weak_ptr<ReadLanes> weak = weak_from_this();
  // The lane's login as it stands, or null if the lane went away meanwhile.
  auto entry = [weak, i, gen, uid]() -> Login* {
    auto self = weak.lock();
    if (!self || self->closed_ || self->lanes_[i].generation != gen) return nullptr;
    auto it = self->lanes_[i].logins.find(uid);
    return it == self->lanes_[i].logins.end() ? nullptr : &it->second;
  };
  auto failed = [weak, i, uid, entry](const std::string& why) {
    Login* e = entry();
    if (!e) return;
    e->state = Login::kFailed;
    if (auto self = weak.lock())
      self->opts_.log("sfsclient: uid " + std::to_string(uid) + " on read connection " + std::to_string(i + 2) +
                      " to " + self->name_text_ + ": " + why + "; its reads stay on the main connection");
  };
  const std::uint64_t seqno = client->session().next_seqno();
  signer_->sign_login(
      uid, name_text_, client->session().session_id(), seqno,
      asmp::Callback<void(sfs::Result<SignedLogin>)>(
          [client, entry, failed, color = opts_.color](sfs::Result<SignedLogin> s) {
            if (!entry()) return;
            if (!s.ok()) return failed(s.error());
            client->login_signed(std::move(s.value().request), s.value().user,
                                 asmp::Callback<void(sfs::Result<std::uint32_t>)>(
                                     [entry, failed](sfs::Result<std::uint32_t> n) {
                                       Login* e = entry();
                                       if (!e) return;
                                       if (!n.ok()) return failed(n.error());
                                       e->state = Login::kReady;
                                       e->auth = n.value();
                                     },
                                     color));
          },
          opts_.color));
}

}  // namespace sfsclient
