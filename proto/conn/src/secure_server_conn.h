// secure_server_conn.h: SecureServer's shared state and per-connection
// state, shared by secure_server.cc (accept, login, calls) and
// secure_server_connect.cc (SFS_CONNECT, the handshake). Private to
// proto/conn/src; who touches what on which color is at the top of
// secure_server.cc.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "secure_admission.h"
#include "secure_internal.h"

namespace sfs {

namespace rpc = asmp::rpc;

struct SecureServer::Shared {
  SecureServerOptions opts;  // opts.users: read and replaced on the shared color only
  std::atomic<std::uint64_t> accepted{0}, established{0}, handshake_failures{0}, logins{0},
      login_refusals{0}, filter_rejections{0}, refused_over_limit{0}, idle_closed{0},
      logins_revoked{0}, stalled_closed{0}, handshakes_rate_limited{0},
      refused_handshakes_in_progress{0}, prehandshake_rejected{0}, key_changes{0};
  std::atomic<std::uint64_t> next_conn_id{0};
  std::atomic<std::int64_t> last_limit_log_s{-1};
  // On the shared color: every connection whose auth table may exist.
  std::unordered_map<std::uint64_t, std::weak_ptr<Conn>> live;
  // The user database now (read on connection colors, replaced by set_users).
  std::atomic<std::shared_ptr<const UserDb>> users;
  conn_detail::LogLimiter refusal_log{5};  // login refusals logged per second
  // Lines per second about the handshake limits and the pre-handshake
  // gate: a flood of refused handshakes must not become a flood of lines.
  conn_detail::LogLimiter admission_log{5};
  std::unique_ptr<conn_detail::HandshakeAdmission> admission;  // set once, before any accept
  void log_limited(const std::string& s) {
    if (std::uint64_t dropped; admission_log.allow(&dropped))
      log(s + (dropped ? " (" + std::to_string(dropped) + " similar lines not logged)" : ""));
  }
  void log(const std::string& s) const { opts.log ? opts.log(s) : log_to_stderr(s); }
};

struct SecureServer::Conn {
  // kHandshaking: SFS_CONNECT's DH and signature are being computed off
  // the workers (SecureServerOptions::run_handshake); any record closes.
  enum class Stage { kHello, kHandshaking, kOpen, kFailed };
  std::shared_ptr<Shared> shared;
  std::uint64_t id = 0;
  std::string peer;    // address:port
  std::string source;  // address (the per-source limit's key)
  bool gone = false;   // closed (under the server's mu_)
  // Counted in HandshakeAdmission until the handshake succeeds or fails, or
  // the connection closes, whichever comes first (different colors: hence
  // the exchange).
  std::atomic<bool> in_handshake{false};
  unsigned failed_logins = 0;  // on the connection's color
  // On the connection's color.
  Stage stage = Stage::kHello;
  std::shared_ptr<SecureRecordFilter> filter;
  SessionId session_id{};  // written before the filter goes on, then read-only
  asmp::Clock::time_point last_call{};
  // On the shared color.
  std::optional<AuthTable> auth;

  void leave_handshake() {
    if (in_handshake.exchange(false)) shared->admission->leave(source);
  }

  // A call that may only come after the handshake; false: connection closed.
  bool require_open(const rpc::Call& c) {
    if (stage == Stage::kOpen) {
      last_call = asmp::Clock::now();
      return true;
    }
    shared->log("connection from " + peer + ": call to program " + std::to_string(c.prog()) +
                " before the secure channel is up; closing");
    c.connection()->close();
    return false;
  }
};

namespace conn_detail {

// SFS_CONNECT (and its NULL, once the channel is on), on the connection's
// color: the handshake, then the switch to the sealed channel.
void serve_connect(const std::shared_ptr<SecureServer::Conn>& sc, rpc::Call c);
// SFS_CHANGEKEY (secure_server_keychange.cc): the signature on the
// connection's color, the change on the shared color.
void serve_change_key(const std::shared_ptr<SecureServer::Conn>& sc, rpc::Call c);
// The auth number a call's credential names (0: none); false: the call was
// rejected for a malformed or foreign credential.
bool auth_number_of(rpc::Call& c, std::uint32_t& number);

}  // namespace conn_detail

}  // namespace sfs
