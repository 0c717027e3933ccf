// signer.h: where sfsclient's logins come from: each local user's sfsagent,
// registered on a Unix socket (sfs/agent_registry.h, docs/agent.md).
// sfsclient never reads a user's private key: the agent signs the login
// for the session, and sfsclient only forwards it.
#pragma once

#include <memory>

#include "client_config.h"
#include "server_mount.h"

namespace sfsclient {

class Signer : public LoginSigner {
 public:
  // Creates the registration socket (before the runtime runs). Fails if
  // another sfsclient serves it.
  virtual sfs::Status start() = 0;
  virtual void stop() = 0;
};

// Agents registering at cfg.agent_socket, served under `color`; with
// cfg.host_key, a trusted host's logins for users without an agent.
// on_registered(uid) runs under `color` after an agent of uid registered.
sfs::Result<std::unique_ptr<Signer>> make_agent_signer(const ClientConfig& cfg, asmp::Runtime& rt,
                                                       asmp::color_t color, sfs::LogSink log,
                                                       std::function<void(uid_t)> on_registered = nullptr);

}  // namespace sfsclient
