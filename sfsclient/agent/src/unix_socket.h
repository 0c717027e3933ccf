// unix_socket.h (internal): the Unix-domain socket chores shared by the
// registry, the agent and sfskey: binding a listening socket at a path
// without stealing a live one, connecting, and asking the kernel who the
// peer is (SO_PEERCRED), which is the only identity these sockets trust.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

#include "sfs/result.h"

namespace sfs::agent_detail {

std::string errno_text(int err);

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The kernel's record of who is at the other end of a connected Unix
// socket: for an accepted socket the process that connected, for a
// connected one the process that called listen(). Never what the peer says.
std::optional<PeerCred> peer_cred(int fd);

struct ListeningSocket {
  int fd = -1;
  dev_t dev = 0;  // the socket file's identity, so that we remove only our
  ino_t ino = 0;  // own file at exit, never a successor's
};

// Binds and listens (non-blocking, close-on-exec) at `path`, then sets the
// file's mode. If a socket file is already there and something answers on
// it, fails with a message naming `what` ("an sfsagent", "sfsclient");
// if nobody answers, the file is stale and is replaced. A file there that
// is not a socket is never removed.
Result<ListeningSocket> listen_unix(const std::string& path, mode_t mode, const std::string& what);

// Removes the socket file at `path` if it is still the one `s` created.
void unlink_if_ours(const std::string& path, const ListeningSocket& s);

// Connects to the socket at `path`. Returns the fd (close-on-exec; non-blocking
// if asked) or -1 with *err set. A full backlog shows up as EAGAIN.
int connect_unix(const std::string& path, bool nonblocking, int* err);

// Checks that `dir` exists, is a directory owned by `owner` and that nobody
// else may write into it; if it does not exist and create is true, creates
// it (one level) with `mode`. `mode` also bounds what is accepted: with
// 0700, group/other access of any kind is refused. Messages say what to run.
Status check_private_dir(const std::string& dir, uid_t owner, mode_t mode, bool create);

// dirname for our purposes: "a/b/c" -> "a/b", "c" -> ".", "/c" -> "/".
std::string parent_dir(const std::string& path);

}  // namespace sfs::agent_detail
