// server_mount.h: one SFS server as sfsclient sees it: the secure
// connection (FileClient), reconnecting with backoff when it is lost, and
// one login per local uid, made through that user's agent.
//
// Colors: everything here runs on sfsclient's metadata color (given to the
// constructor); FileClient callbacks hop there. INVALIDATE and connection
// loss are handed to the owner on that color, in the order the connection
// delivered them relative to replies.
//
// Calls: run(uid, fn) calls fn(client, auth) once the server is connected
// and uid has a login (its agent signed one, or the anonymous user if it has
// no agent or the server does not know its key). A user anonymous for want
// of an agent's signature logs in when an agent of theirs registers
// (agent_registered): an agent started after the user's first call, or
// re-registered after sfsclient restarted, is used from then on; a login
// the server refused is not sent again on that connection (the server
// closes a connection after a few refusals). While the connection is
// down, run() waits (reconnecting) up to `timeout`, then fails with EIO;
// hard mounts wait forever. A first connection that fails for good (wrong
// HOSTID, refused) fails with the errno documented in docs/sfsclient.md.
// A reconnect that finds another root handle goes on if the root's fsid and
// fileid are the same (the export's handle key was rotated: NewRoot tells
// the owner); otherwise every call fails with ESTALE from then on.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "sfs/agent_registry.h"
#include "sfs/file_client.h"
#include "sfs/names.h"
#include "read_lanes.h"

namespace sfsclient {

using ServerId = std::uint32_t;

using SignedLogin = sfs::SignedLogin;  // agent_registry.h

// Where logins come from: the users' agents (agent.h), or a test double.
class LoginSigner {
 public:
  virtual ~LoginSigner() = default;
  // cb runs once, under its own color.
  virtual void sign_login(uid_t uid, const std::string& server_name, const sfs::SessionId& session,
                          std::uint64_t seqno, asmp::Callback<void(sfs::Result<SignedLogin>)> cb) = 0;
};

struct ServerMountOptions {
  asmp::color_t color = 0;                        // sfsclient's metadata color
  asmp::color_t conn_color = 1;                   // the connection's color
  std::chrono::milliseconds timeout{60000};       // calls wait this long for a connection
  bool hard = false;                              // ...or forever
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  sfs::LogSink log = sfs::log_to_stderr;
  // Revocation certificates (sfs/revocation.h); empty: none checked. A
  // revoked HOSTID fails with EACCES at mount and at every reconnect.
  std::string revoked_dir;
  // Connections to the server: the main one, plus connections-1 read
  // lanes (read_lanes.h) under the colors after conn_color.
  unsigned connections = 1;
};

class ServerMount : public std::enable_shared_from_this<ServerMount> {
 public:
  // done: call once the caches (the kernel's too) no longer hold it.
  using Invalidate =
      std::function<void(ServerId, const sfs::fs::Handle&, std::uint64_t change, std::function<void()> done)>;
  using Lost = std::function<void(ServerId)>;
  // The server came back with another root handle for the same export
  // (same fsid and fileid: its handle key was rotated); root() is the new one.
  using NewRoot = std::function<void(ServerId, const sfs::fs::Handle& old_root)>;
  using Run = std::function<void(const std::shared_ptr<sfs::fs::FileClient>&, std::uint32_t auth)>;
  using Fail = std::function<void(int err)>;

  ServerMount(ServerId id, sfs::SelfCertName name, ServerMountOptions opts, LoginSigner* signer,
              Invalidate on_invalidate, Lost on_lost, NewRoot on_new_root = nullptr);

  // First connection. done(0) or an errno: EACCES (the server's key does
  // not match the HOSTID), EHOSTUNREACH (nothing answers), EIO (other).
  void start(std::function<void(int err, const std::string& why)> done);
  void run(uid_t uid, Run fn, Fail fail);
  // For READ: like run(), but in turn over the main connection and the read
  // lanes (read_lanes.h); the main connection whenever a lane is not ready.
  void run_read(uid_t uid, Run fn, Fail fail);
  void close();
  // An agent of uid registered: a user anonymous for want of one logs in
  // (in the background; calls go on as anonymous until it is in).
  void agent_registered(uid_t uid);
  // Told when such a login is in: what was cached for uid (ACCESS answers)
  // was the anonymous user's. Set before start().
  using LoginChanged = std::function<void(ServerId, uid_t)>;
  void set_on_login_changed(LoginChanged f) { on_login_changed_ = std::move(f); }

  ServerId id() const { return id_; }
  const std::string& name() const { return name_text_; }
  const sfs::fs::Root& root() const { return root_; }
  bool connected() const { return client_ != nullptr; }
  std::uint64_t connections() const { return connections_; }

 private:
  struct Waiter {
    uid_t uid;
    Run fn;
    Fail fail;
    asmp::Clock::time_point deadline;
  };
  struct Login {
    bool ready = false;
    std::uint32_t auth = 0;
    std::vector<Waiter> waiting;
    // Anonymous (auth 0) because no agent signed: an agent that registers
    // later is asked (retrying: under way; calls go on as anonymous).
    bool agentless = false;
    bool retrying = false;
  };

  void connect();
  bool refuse_if_revoked();  // true: refused (callers told), do not connect
  void on_connected(sfs::Result<std::shared_ptr<sfs::fs::FileClient>> r);
  void on_lost(std::uint64_t generation, const std::string& why);
  void dispatch(Waiter w);
  void login(uid_t uid);
  bool any_login_waiting() const;
  void expire_waiters();
  void arm_expiry();

  const ServerId id_;
  const sfs::SelfCertName name_;
  const std::string name_text_;
  const ServerMountOptions opts_;
  LoginSigner* const signer_;
  const Invalidate on_invalidate_;
  const Lost on_lost_;
  const NewRoot on_new_root_;
  LoginChanged on_login_changed_;

  std::shared_ptr<sfs::fs::FileClient> client_;  // null while down
  sfs::fs::Root root_;
  std::uint64_t generation_ = 0;  // bumped per connection
  std::uint64_t connections_ = 0;
  bool connecting_ = false;
  bool closed_ = false;
  int closed_errno_ = ESTALE;  // what calls get once closed_ (EACCES: revoked)
  std::chrono::milliseconds backoff_{0};
  std::function<void(int, const std::string&)> start_done_;
  std::deque<Waiter> waiting_;                 // for a connection
  std::unordered_map<uid_t, Login> logins_;    // this connection's logins
  bool expiry_armed_ = false;
  std::shared_ptr<ReadLanes> lanes_;  // null: one connection
};

}  // namespace sfsclient
