// secure_admission.h: what SecureServer lets a client cost it before the
// handshake is done (docs/security.md, "Before the handshake"): the gate
// filter that passes only an SFS_CONNECT call, the count of handshakes in
// progress (in all and per source), and a token bucket per source that
// each handshake's public-key work draws from. Private to proto/conn/src.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "asmp/rpc.h"
#include "sfs/secure_rpc.h"

namespace sfs::conn_detail {

// "address:port" of the socket's peer. *source gets the key the per-source
// limits count under: the IPv4 address, or the IPv6 /64 (one host usually
// holds a whole /64, so counting single IPv6 addresses would limit nothing).
std::string peer_of(int fd, std::string* source);

// The record filter a server connection has until its handshake succeeds.
// It passes one kind of record: an RPC call of SFS_CONNECT (program, version
// 1, procedure 1) with AUTH_NONE credential and verifier. Anything else
// (other programs or procedures, SFS_CONNECT's NULL, replies, short
// records) is refused before the RPC layer sees it, so no cleartext reply
// is ever made to it; the transport then closes the connection. `on_reject`
// gets a sentence for the log. Outgoing records pass unchanged (the clear
// SFS_CONNECT reply).
std::shared_ptr<asmp::rpc::RecordFilter> make_prehandshake_gate(
    std::function<void(const std::string&)> on_reject);

// The handshake limits of one server. Any thread (one mutex, taken at
// accept, once per SFS_CONNECT and once when a connection leaves its
// handshake; never per record).
class HandshakeAdmission {
 public:
  enum class Verdict { kOk, kTooManyInProgress, kTooManyFromSource, kTooManySources, kRateLimited };
  explicit HandshakeAdmission(const HandshakeLimits& limits) : limits_(limits) {}

  // At accept: counts one more connection in its handshake from `source`,
  // unless that goes over a limit. A source whose bucket is empty is
  // refused here (kRateLimited), before a transport exists, except one
  // connection a second, which goes on to be told SFS_CONNECT_BUSY: a
  // flood then costs the server about what it costs the attacker, and a
  // legitimate client over its rate still gets a reason.
  Verdict enter(const std::string& source, asmp::Clock::time_point now);
  // Once per entered connection, when it leaves the handshake (open,
  // failed, or closed).
  void leave(const std::string& source);
  // Before a handshake's public-key work: takes a token from the source's
  // bucket; false if it is empty.
  bool take_token(const std::string& source, asmp::Clock::time_point now);

  std::size_t in_progress() const;

 private:
  struct Source {
    double tokens = 0;
    asmp::Clock::time_point refilled{};
    std::size_t in_progress = 0;
    asmp::Clock::time_point last_busy{};  // last connection let through to hear BUSY
  };
  // Under mu_: the source's entry (created with a full bucket), or null if
  // the table is full of sources that are not idle.
  Source* find_or_add(const std::string& source, asmp::Clock::time_point now);
  void refill(Source& s, asmp::Clock::time_point now) const;
  bool idle(const Source& s) const;
  double burst() const;

  const HandshakeLimits limits_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Source> sources_;
  std::size_t in_progress_ = 0;
  asmp::Clock::time_point last_sweep_{};
};

}  // namespace sfs::conn_detail
