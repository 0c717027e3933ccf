// agent_registry.h: sfsclient's side of the user agents. It listens on the
// registration socket, learns each agent's uid from the kernel
// (SO_PEERCRED, never from the agent), and asks the agent of a local uid to
// sign that user's login on a server connection. sfsclient never sees a
// private key. docs/agent.md has the protocol and the trust model.
//
// Contract
//   - All state lives under one color (the constructor's `color`): accept,
//     every agent connection's reads and writes, timers. Every method may
//     be called from any thread or color; calls hop to that color.
//   - sign_login's callback runs exactly once, under its own color, never
//     inside sign_login: with a SignedLogin, or with an error saying why
//     not (no agent for that uid, the agent refused or has no key for the
//     server, it went away, it did not answer within sign_timeout, the
//     registry is closed). On an error the caller goes on as the anonymous
//     user. A SignedLogin has been checked here exactly as the server will
//     check it (AuthTable against its own key): well formed, for this
//     session, sequence number and name, with a good signature.
//   - One agent per uid: a newer agent of the same uid replaces the older,
//     which is told (REPLACED) and closed once its pending answers are in.
//   - A broken or hostile agent can only hurt its own uid: a frame above
//     64 KiB, garbage, a message out of place, an answer to a request never
//     made, an invalid login, or not reading its socket closes that
//     connection (with one log line), failing its pending requests. An
//     agent that never answers costs its own requests sign_timeout each; at
//     most max_pending_per_agent are outstanding per agent. Connections per
//     uid and in all are bounded, and a connection must say HELLO within
//     hello_timeout, so nobody can exhaust sfsclient's descriptors.
//   - close() stops listening, removes the socket file (if it is still
//     ours), closes every agent and fails pending requests. The destructor
//     calls close() and does not wait.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "asmp/callback.h"
#include "asmp/runtime.h"
#include "sfs/agent_proto.h"
#include "sfs/encoding.h"
#include "sfs/handshake.h"
#include "sfs/keys.h"
#include "sfs/result.h"

namespace sfs {

struct SignedLogin {
  std::string user;   // the SFS user name the agent signed for
  UserPublicKey key;  // the key that signed (for log lines)
  Bytes request;      // encode_login_request(...): the body of SFS_LOGIN
};

struct AgentRegistryOptions {
  std::string path = kDefaultRegistrationPath;
  // The socket's directory is created with this mode if missing (one
  // level), and refused if others may write into it.
  mode_t dir_mode = 0755;
  mode_t socket_mode = 0666;  // every local user may register an agent
  std::chrono::milliseconds sign_timeout{5000};
  std::chrono::milliseconds hello_timeout{5000};
  std::size_t max_pending_per_agent = 64;
  std::size_t max_connections_per_uid = 4;
  std::size_t max_connections = 1024;
  // One line, no newline. Null: stderr, "sfsclient: agents: ...".
  std::function<void(const std::string&)> log;
  // Called under the registry's color after an agent of uid registered.
  std::function<void(uid_t)> on_registered;
};

struct AgentInfo {
  uid_t uid = 0;
  pid_t pid = 0;  // as the kernel saw it at connect time
};

class AgentRegistry {
 public:
  AgentRegistry(asmp::Runtime& rt, asmp::color_t color, AgentRegistryOptions opts = {});
  ~AgentRegistry();
  AgentRegistry(const AgentRegistry&) = delete;
  AgentRegistry& operator=(const AgentRegistry&) = delete;

  // Creates the socket (see agent_proto.h for the default path) and starts
  // accepting. Fails if another sfsclient answers there. Any thread; once.
  Status listen();

  // Asks uid's agent to sign a login to `server_name` ("@host%port,HOSTID")
  // on the connection whose session id is `sid`, with sequence number
  // `seqno` (the caller's next number for that session).
  void sign_login(uid_t uid, const std::string& server_name, const SessionId& sid,
                  std::uint64_t seqno, asmp::Callback<void(Result<SignedLogin>)> cb);

  // Closes (see above); done runs afterwards, under its own color.
  void close(asmp::Closure done = nullptr);

  // Snapshots, any thread (they may be stale by the time they return).
  bool has_agent(uid_t uid) const;
  std::vector<AgentInfo> agents() const;

  struct State;

 private:
  std::shared_ptr<State> st_;
};

}  // namespace sfs
