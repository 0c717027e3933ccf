// agent.h: sfsagent, the per-user key agent: it holds a user's private keys
// in memory and signs SFS logins for sfsclient, so that sfsclient (root)
// never reads a user's key file. docs/agent.md has the whole picture.
//
// Contract
//   - KeyRing: the keys, in the order added. Each private key lives in its
//     own sodium_malloc'ed block (locked into RAM where the limit allows,
//     guard pages around it) and is wiped when deleted, replaced or when the
//     ring dies. Not thread-safe: the Agent keeps it on its color.
//   - ControlSocket: the agent's own socket for the user's commands. open()
//     runs before the runtime starts (and before daemonizing, so that its
//     errors reach the terminal): it takes an exclusive lock next to the
//     socket (a second agent on the same path is refused, naming the first
//     one's pid), replaces a stale socket file, and binds mode 0600 in a
//     directory that it creates 0700 if missing and refuses if others may
//     enter it.
//   - Agent: runs on an asmp::Runtime under one color (every fd callback,
//     timer and handler; all state lives there, no locks). It serves the
//     control socket, accepting only peers whose SO_PEERCRED uid is its
//     owner's or root's. It registers with sfsclient on the registration
//     socket, but only if that socket is served by root or by its owner
//     (whoever serves it gets signatures), and reconnects with exponential
//     backoff (backoff_min doubling to backoff_max) whenever sfsclient is
//     absent or goes away, until stop(). If sfsclient says a newer agent of
//     the same uid took over, it calls on_replaced and stops registering.
//   - Which key signs: the first key whose server restriction is empty or
//     equals the server's self-certifying name. The signature covers the
//     session id (so one connection to one server key) and the sequence
//     number, so it cannot be replayed elsewhere.
//   - Agent's methods may be called from any thread; stop()'s callback runs
//     under its own color. The object is a handle: the state lives on in the
//     runtime's callbacks until stop() has closed everything.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "asmp/runtime.h"
#include "sfs/agent_proto.h"
#include "sfs/keys.h"
#include "sfs/result.h"

namespace sfs {

using AgentLogSink = std::function<void(const std::string&)>;

// ---- keys -------------------------------------------------------------------------

class KeyRing {
 public:
  // A UserKey in memory of its own: sodium_malloc (guard pages, mlock), the
  // key wiped by its destructor and the block by sodium_free.
  class LockedKey {
   public:
    explicit LockedKey(UserKey key);
    LockedKey(LockedKey&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
    LockedKey& operator=(LockedKey&& o) noexcept;
    LockedKey(const LockedKey&) = delete;
    LockedKey& operator=(const LockedKey&) = delete;
    ~LockedKey();
    const UserKey& operator*() const { return *p_; }
    const UserKey* operator->() const { return p_; }

   private:
    void release() noexcept;
    UserKey* p_;
  };

  struct Entry {
    LockedKey key;
    std::string name;     // the SFS user name it logs in as
    std::string server;   // "@host%port,HOSTID" or empty (any server)
    std::string comment;  // usually the file it came from
  };

  // Adds a key (a key already present is updated in place: same position,
  // new name, restriction and comment). Refuses an invalid name or server
  // name, or a ring already holding kMaxAgentKeys keys. Returns a sentence
  // for the user ("added ed25519:... as alice, for any server").
  Result<std::string> add(UserKey key, std::string name, std::string server, std::string comment);
  // Removes keys matching; returns how many.
  std::size_t remove(DeleteKeyRequest::By by, std::string_view what);
  std::size_t clear();
  std::vector<AgentKeyInfo> list() const;
  // The key for a login to `server`, or nullptr.
  const Entry* pick(std::string_view server) const;
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

// ---- the control socket -------------------------------------------------------------

class ControlSocket {
 public:
  // See the contract above. `owner` is the uid the directory must belong to
  // (the agent's own).
  static Result<ControlSocket> open(const std::string& path, uid_t owner);

  ControlSocket(ControlSocket&& o) noexcept;
  ControlSocket& operator=(ControlSocket&& o) noexcept;
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;
  // Removes the socket file (if it is still ours) and closes both fds.
  ~ControlSocket();

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  // Writes our pid into the lock file, for the message a second agent
  // prints. Call after daemonizing (the pid changes).
  void record_pid() const;
  // Removes the socket now (it stays removed even if the object lives on).
  void remove();

 private:
  ControlSocket() = default;
  std::string path_;
  int fd_ = -1;
  int lock_fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// ---- the agent ------------------------------------------------------------------

struct AgentOptions {
  std::string registration_path = kDefaultRegistrationPath;
  // Login name for keys added without one (normally the local user's name
  // from getpwuid). Empty: such additions are refused.
  std::string default_user;
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
  // Peers allowed on the control socket, and on the registration socket's
  // other end, besides root. Normally getuid().
  uid_t owner = 0;
  AgentLogSink log;  // one line, no newline; null: stderr, "sfsagent: ..."
  // On the agent's color, when sfsclient says a newer agent of this uid
  // took over (sfsagent exits then).
  std::function<void(const std::string& why)> on_replaced;
};

class Agent {
 public:
  Agent(asmp::Runtime& rt, asmp::color_t color, ControlSocket control, KeyRing keys,
        AgentOptions opts);
  // stop() without waiting for it.
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Starts serving the control socket and registering with sfsclient.
  // Any thread; once.
  void start();
  // Closes everything, removes the control socket, wipes the keys; then
  // runs done (under its own color). Any thread; idempotent.
  void stop(asmp::Closure done = nullptr);

  // Snapshots, any thread.
  bool registered() const;
  std::size_t key_count() const;

  struct State;

 private:
  std::shared_ptr<State> st_;
};

}  // namespace sfs
