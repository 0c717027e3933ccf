// signer.h: where sfsclient's logins come from: the users' agents, which
// register on a Unix socket (docs/agent.md). make_signer builds the one
// sfsclient uses.
#pragma once

#include <memory>

#include "client_config.h"
#include "server_mount.h"

namespace sfsclient {

class Signer : public LoginSigner {
 public:
  virtual void start() = 0;  // after the runtime exists
  virtual void stop() = 0;
};

sfs::Result<std::unique_ptr<Signer>> make_signer(const ClientConfig& cfg, sfs::LogSink log);

}  // namespace sfsclient
