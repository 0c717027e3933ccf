// agent_control.h: what a user's own commands (sfskey, sfsagent --add) need
// to work with their agent: where things are by default, reading one's own
// key file, and a blocking client for the agent's control socket.
//
// Contract
//   - Default places, for the calling user:
//       control socket  $SFS_AGENT_SOCK, else $XDG_RUNTIME_DIR/sfs-agent.sock,
//                       else ~/.sfs/agent.sock
//       identity        ~/.sfs/identity
//     ~ is $HOME if it is set and absolute, else the password database's.
//   - read_own_user_key() reads a user key file only if it is a regular
//     file (not a symlink or FIFO) owned by `owner` that nobody else may
//     access, in directories only `owner` or root can write; it opens the
//     file once and checks what it opened (secret_file.h).
//   - ControlClient is blocking and meant for command-line tools. It talks
//     only to a socket served by the caller's own uid (SO_PEERCRED): a key
//     is never sent to someone else's process. Every wait is bounded.
//   - Errors say what happened, to which file, and what to run.
//   - Not thread-safe per object; free functions are safe on any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "sfs/agent_proto.h"
#include "sfs/keys.h"
#include "sfs/result.h"

namespace sfs {

Result<std::string> home_directory();
Result<std::string> default_control_path();
Result<std::string> default_identity_path();
// The local login name of the real uid (getpwuid), e.g. for a key's default
// SFS user name.
Result<std::string> local_user_name();

Result<UserKey> read_own_user_key(const std::string& path, uid_t owner);

class ControlClient {
 public:
  static Result<ControlClient> connect(const std::string& path,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ControlClient(ControlClient&& o) noexcept
      : fd_(o.fd_), path_(std::move(o.path_)), timeout_(o.timeout_) {
    o.fd_ = -1;
  }
  ControlClient& operator=(ControlClient&&) = delete;
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  ~ControlClient();

  // Sends one request and waits for the agent's answer (STATUS or KEYS).
  Result<AgentMessage> call(const AgentMessage& request);

 private:
  ControlClient(int fd, std::string path, std::chrono::milliseconds timeout)
      : fd_(fd), path_(std::move(path)), timeout_(timeout) {}
  Status write_all(const Bytes& frame);
  Status read_exact(std::uint8_t* p, std::size_t n);

  int fd_;
  std::string path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace sfs
