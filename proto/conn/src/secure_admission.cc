// secure_admission.cc: the pre-handshake gate and the handshake limits
// (secure_admission.h; the reasoning is in docs/security.md).
#include "secure_admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "sfs/encoding.h"
#include "sfs/sfs_connect.h"

namespace sfs::conn_detail {

namespace rpc = asmp::rpc;

std::string peer_of(int fd, std::string* source) {
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) return "?";
  char buf[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    port = ntohs(in->sin_port);
    *source = buf;
  } else if (ss.ss_family == AF_INET6) {
    auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof buf);
    port = ntohs(in->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in->sin6_addr)) {
      *source = buf;
    } else {
      in6_addr prefix = in->sin6_addr;
      std::memset(prefix.s6_addr + 8, 0, 8);
      char p[INET6_ADDRSTRLEN] = "?";
      ::inet_ntop(AF_INET6, &prefix, p, sizeof p);
      *source = std::string(p) + "/64";
    }
  }
  return std::string(buf) + ":" + std::to_string(port);
}

namespace {

class PreHandshakeGate : public rpc::RecordFilter {
 public:
  explicit PreHandshakeGate(std::function<void(const std::string&)> on_reject)
      : on_reject_(std::move(on_reject)) {}

  bool seal(rpc::RecordBuf&) override { return true; }

  bool open(rpc::RecordBuf& record) override {
    // RFC 5531 call header: xid, CALL (0), rpcvers 2, prog, vers, proc,
    // cred (flavor, length, body), verf (flavor, length, body). AUTH_NONE
    // has an empty body, so the words are at fixed offsets.
    constexpr std::size_t kWords = 10;
    if (record.size() < kWords * 4) return reject("a record too short for an RPC call");
    std::uint32_t w[kWords];
    for (std::size_t i = 0; i < kWords; ++i)
      w[i] = load_be32(reinterpret_cast<const std::uint8_t*>(record.data()) + 4 * i);
    if (w[1] != 0 || w[2] != 2) return reject("a record that is not an RPC call");
    if (w[3] != SFS_CONNECT_PROG || w[4] != SFS_CONNECT_V1 || w[5] != SFS_CONNECT)
      return reject("a call to program " + std::to_string(w[3]) + " version " + std::to_string(w[4]) +
                    " procedure " + std::to_string(w[5]) + " (only SFS_CONNECT is served before the handshake)");
    if (w[6] != AUTH_NONE || w[7] != 0 || w[8] != AUTH_NONE || w[9] != 0)
      return reject("an SFS_CONNECT call with a credential other than AUTH_NONE");
    return true;
  }

 private:
  bool reject(const std::string& what) {
    if (on_reject_) on_reject_(what);
    return false;
  }
  std::function<void(const std::string&)> on_reject_;
};

}  // namespace

std::shared_ptr<rpc::RecordFilter> make_prehandshake_gate(
    std::function<void(const std::string&)> on_reject) {
  return std::make_shared<PreHandshakeGate>(std::move(on_reject));
}

// ---- HandshakeAdmission ----------------------------------------------------------

double HandshakeAdmission::burst() const {
  return std::max(1u, limits_.per_source_burst);  // 0 would refuse every handshake
}

void HandshakeAdmission::refill(Source& s, asmp::Clock::time_point now) const {
  const double burst = this->burst();
  if (now > s.refilled) {
    const double secs = std::chrono::duration<double>(now - s.refilled).count();
    s.tokens = std::min(burst, s.tokens + secs * limits_.per_source_per_second);
  }
  s.refilled = std::max(s.refilled, now);
}

// An entry that remembers nothing a fresh one would not: no handshake in
// progress and a full bucket.
bool HandshakeAdmission::idle(const Source& s) const {
  return s.in_progress == 0 && s.tokens >= burst();
}

HandshakeAdmission::Source* HandshakeAdmission::find_or_add(const std::string& source,
                                                            asmp::Clock::time_point now) {
  if (auto it = sources_.find(source); it != sources_.end()) return &it->second;
  if (limits_.max_sources && sources_.size() >= limits_.max_sources) {
    // Forget idle sources, at most once a second: the sweep is O(table), and
    // an attack from many addresses must not make every accept pay it.
    if (now - last_sweep_ >= std::chrono::seconds(1)) {
      last_sweep_ = now;
      for (auto it = sources_.begin(); it != sources_.end();) {
        refill(it->second, now);
        it = idle(it->second) ? sources_.erase(it) : std::next(it);
      }
    }
    if (sources_.size() >= limits_.max_sources) return nullptr;
  }
  Source fresh;
  fresh.tokens = burst();
  fresh.refilled = now;
  return &sources_.emplace(source, fresh).first->second;
}

HandshakeAdmission::Verdict HandshakeAdmission::enter(const std::string& source,
                                                      asmp::Clock::time_point now) {
  std::lock_guard lk(mu_);
  if (limits_.max_in_progress && in_progress_ >= limits_.max_in_progress)
    return Verdict::kTooManyInProgress;
  Source* s = find_or_add(source, now);
  if (!s) return Verdict::kTooManySources;
  if (limits_.max_in_progress_per_source && s->in_progress >= limits_.max_in_progress_per_source)
    return Verdict::kTooManyFromSource;
  if (limits_.per_source_per_second > 0) {
    refill(*s, now);
    if (s->tokens < 1) {
      if (s->last_busy != asmp::Clock::time_point{} && now - s->last_busy < std::chrono::seconds(1))
        return Verdict::kRateLimited;
      s->last_busy = now;
    }
  }
  ++s->in_progress;
  ++in_progress_;
  return Verdict::kOk;
}

void HandshakeAdmission::leave(const std::string& source) {
  std::lock_guard lk(mu_);
  --in_progress_;
  auto it = sources_.find(source);
  if (it == sources_.end()) return;  // cannot happen: entries in progress are never swept
  --it->second.in_progress;
  if (idle(it->second)) sources_.erase(it);
}

bool HandshakeAdmission::take_token(const std::string& source, asmp::Clock::time_point now) {
  if (limits_.per_source_per_second <= 0) return true;
  std::lock_guard lk(mu_);
  // The connection entered (so its source has an entry); find_or_add only
  // creates one if enter() was skipped (no caller does).
  Source* s = find_or_add(source, now);
  if (!s) return false;
  refill(*s, now);
  if (s->tokens < 1) return false;
  s->tokens -= 1;
  return true;
}

std::size_t HandshakeAdmission::in_progress() const {
  std::lock_guard lk(mu_);
  return in_progress_;
}

}  // namespace sfs::conn_detail
