// read_lanes.h: the extra connections one mount opens to one server for
// file data (as NFS's nconnect), so one client's reads are not bound to one
// color on each side: each lane is its own FileClient under its own color
// here and under its own connection's color in sfsd, so decryption here and
// encryption there run on as many cores as there are lanes.
//
// What goes over a lane: READ only. Everything else (lookups, attributes,
// writes, COMMIT; the leases and INVALIDATEs the caches depend on) stays on
// ServerMount's main connection, so the cache rules of docs/protocol.md are
// those of one connection. A lane does not cache attributes: an INVALIDATE
// it receives (sfsd counts a READ's attributes as a lease) is acknowledged
// at once. Reads need no ordering against the main connection beyond what
// the caller already keeps: a read waits for this client's writes in flight
// to be answered (ops_file.cc), and an answered write is in the backend.
//
// Turns: next() rotates over the main connection and the lanes; a lane that
// is not ready (connecting, down, or the user not yet logged in on it)
// gives its turn to the main connection and gets ready in the background.
// Logins mirror the main connection's: a user who is anonymous there is
// anonymous on the lanes; otherwise the user's agent signs a login for the
// lane's own session, and a lane where that fails never carries that user's
// reads (they stay on the main connection). A lost lane is reconnected
// after a backoff; reads in flight on it fail with "connection lost" and
// are sent again (ops_file.cc), in turn.
//
// Colors: everything here runs on sfsclient's metadata color; lane i's
// FileClient runs on its own color (first_color + i).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sfs/file_client.h"
#include "sfs/names.h"

namespace sfsclient {

class LoginSigner;

struct ReadLanesOptions {
  asmp::color_t color = 0;         // the metadata color
  asmp::color_t first_color = 2;   // lane i runs under first_color + i
  unsigned count = 1;              // lanes besides the main connection
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  sfs::LogSink log = sfs::log_to_stderr;
};

class ReadLanes : public std::enable_shared_from_this<ReadLanes> {
 public:
  ReadLanes(sfs::SelfCertName name, std::string name_text, ReadLanesOptions opts, LoginSigner* signer);

  struct Pick {
    std::shared_ptr<sfs::fs::FileClient> client;
    std::uint32_t auth;
  };
  // The lane whose turn it is, if it is ready for uid; nullopt: the main
  // connection's turn (or the lane is not ready; it gets ready meanwhile).
  // main_auth: uid's login on the main connection (0: anonymous). root:
  // the main connection's root handle; a lane that finds another one (the
  // server came back with a new handle key) is not used.
  std::optional<Pick> next(uid_t uid, std::uint32_t main_auth, const sfs::fs::Handle& root);

  void reset();  // drops every lane (they reconnect when next asked)
  void close();  // for good

 private:
  struct Login {
    enum State { kPending, kReady, kFailed } state = kPending;
    std::uint32_t auth = 0;
    std::uint32_t main_auth = 0;  // the main connection's login this one mirrors
  };
  struct Lane {
    std::shared_ptr<sfs::fs::FileClient> client;  // null while down
    bool connecting = false;
    std::uint64_t generation = 0;
    std::chrono::milliseconds backoff{0};
    asmp::Clock::time_point not_before{};
    std::unordered_map<uid_t, Login> logins;
  };

  void connect(unsigned i);
  void on_connected(unsigned i, std::uint64_t gen, sfs::Result<std::shared_ptr<sfs::fs::FileClient>> r);
  void on_lost(unsigned i, std::uint64_t gen, const std::string& why);
  void drop(unsigned i);  // closes lane i; next connect after its backoff
  void login(unsigned i, uid_t uid, std::uint32_t main_auth);

  const sfs::SelfCertName name_;
  const std::string name_text_;
  const ReadLanesOptions opts_;
  LoginSigner* const signer_;
  std::vector<Lane> lanes_;
  sfs::fs::Handle root_;  // the main connection's, as last seen
  unsigned turn_ = 0;
  bool closed_ = false;
};

}  // namespace sfsclient
