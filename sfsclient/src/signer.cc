// signer.cc: see signer.h.
#include "signer.h"

#include <grp.h>
#include <pwd.h>

#include <vector>

#include "sfs/keys.h"

namespace sfsclient {

namespace {

// uid's primary gid and supplementary groups, from the system's databases.
sfs::Result<std::pair<gid_t, std::vector<std::uint32_t>>> groups_of(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return sfs::make_error("uid " + std::to_string(uid) + " has no passwd entry");
  int n = 64;
  std::vector<gid_t> gids(static_cast<std::size_t>(n));
  if (::getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &n) < 0) {
    gids.resize(static_cast<std::size_t>(n));
    if (::getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &n) < 0)
      return sfs::make_error("cannot list the groups of uid " + std::to_string(uid));
  }
  gids.resize(static_cast<std::size_t>(n));
  std::vector<std::uint32_t> out;
  for (gid_t g : gids)
    if (g != pw.pw_gid) out.push_back(g);
  // AUTH_UNIX carries 16: refuse rather than drop groups silently.
  if (out.size() > sfs::kMaxGroups)
    return sfs::make_error("uid " + std::to_string(uid) + " is in more than 16 groups, more than a host login carries");
  return std::make_pair(pw.pw_gid, out);
}

class AgentSigner final : public Signer {
 public:
  AgentSigner(asmp::Runtime& rt, asmp::color_t color, sfs::AgentRegistryOptions o,
              std::shared_ptr<const sfs::UserKey> host_key)
      : registry_(rt, color, std::move(o)), host_key_(std::move(host_key)) {}
  sfs::Status start() override { return registry_.listen(); }
  void stop() override { registry_.close(); }

  // The user's own agent first; without one, the host's key (a trusted
  // host, if configured) speaks for the user's own uid.
  void sign_login(uid_t uid, const std::string& server, const sfs::SessionId& session, std::uint64_t seqno,
                  asmp::Callback<void(sfs::Result<SignedLogin>)> cb) override {
    if (!host_key_) return registry_.sign_login(uid, server, session, seqno, std::move(cb));
    const asmp::color_t color = cb.color();
    registry_.sign_login(
        uid, server, session, seqno,
        asmp::Callback<void(sfs::Result<SignedLogin>)>(
            [host = host_key_, uid, session, seqno, cb = std::move(cb)](sfs::Result<SignedLogin> r) mutable {
              if (r.ok()) return cb(std::move(r));
              auto g = groups_of(uid);
              if (!g.ok()) return cb(sfs::make_error(r.error() + "; no host login either: " + g.error()));
              SignedLogin s;
              s.user = "host login for uid " + std::to_string(uid);
              s.key = host->public_key();
              s.request = sfs::encode_host_login_request(*host, uid, g.value().first, g.value().second, session, seqno);
              cb(std::move(s));
            },
            color));
  }

 private:
  sfs::AgentRegistry registry_;
  std::shared_ptr<const sfs::UserKey> host_key_;
};

}  // namespace

sfs::Result<std::unique_ptr<Signer>> make_agent_signer(const ClientConfig& cfg, asmp::Runtime& rt,
                                                       asmp::color_t color, sfs::LogSink log,
                                                       std::function<void(uid_t)> on_registered) {
  sfs::AgentRegistryOptions o;
  o.path = cfg.agent_socket;
  o.log = std::move(log);
  o.on_registered = std::move(on_registered);
  std::shared_ptr<const sfs::UserKey> host;
  if (!cfg.host_key.empty()) {
    auto kf = sfs::read_key_file(cfg.host_key);
    if (!kf) return sfs::make_error(kf.error());
    if (!kf.value().user)
      return sfs::make_error(cfg.host_key + " must be a user-format key (sfskey gen --user -o FILE)");
    host = std::make_shared<const sfs::UserKey>(std::move(*kf.value().user));
  }
  return std::unique_ptr<Signer>(std::make_unique<AgentSigner>(rt, color, std::move(o), std::move(host)));
}

}  // namespace sfsclient
