// agent_control.cc: default places, one's own key file, and the blocking
// control-socket client (sfs/agent_control.h).
#include "sfs/agent_control.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "unix_socket.h"

namespace sfs {

using agent_detail::errno_text;

namespace {

constexpr std::size_t kMaxKeyFileBytes = 4096;  // docs/protocol.md, "Keys"

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

}  // namespace

Result<std::string> home_directory() {
  if (std::string h = env("HOME"); !h.empty() && h[0] == '/') return h;
  const passwd* pw = ::getpwuid(::getuid());
  if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
    return make_error("cannot find your home directory (set HOME)");
  return std::string(pw->pw_dir);
}

Result<std::string> default_control_path() {
  if (std::string s = env("SFS_AGENT_SOCK"); !s.empty()) return s;
  if (std::string x = env("XDG_RUNTIME_DIR"); !x.empty() && x[0] == '/')
    return x + "/sfs-agent.sock";
  auto home = home_directory();
  if (!home) return home;
  return home.value() + "/.sfs/agent.sock";
}

Result<std::string> default_identity_path() {
  auto home = home_directory();
  if (!home) return home;
  return home.value() + "/.sfs/identity";
}

Result<std::string> local_user_name() {
  const passwd* pw = ::getpwuid(::getuid());
  if (!pw || !pw->pw_name) return make_error("uid " + std::to_string(::getuid()) + " has no name");
  return std::string(pw->pw_name);
}

Result<UserKey> read_own_user_key(const std::string& path, uid_t owner) {
  // The key must be the caller's own: a file someone else owns or could
  // write might hold a key they know (secret_file.h has the rules).
  FileRules rules;
  rules.owners = {owner};
  auto text = read_checked_file(path, kMaxKeyFileBytes, rules);
  if (!text) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT)
      return make_error("no key file " + path + "; create one with: sfskey gen --user -o " + path);
    return make_error(text.error());
  }
  auto kf = parse_key_file(text.value(), path);
  wipe_string(text.value());
  if (!kf) return make_error(kf.error());
  if (kf.value().kind != KeyKind::kUser || !kf.value().user)
    return make_error(path + " holds a server key, not a user key");
  return std::move(*kf.value().user);
}

// ---- ControlClient ---------------------------------------------------------------

Result<ControlClient> ControlClient::connect(const std::string& path,
                                             std::chrono::milliseconds timeout) {
  int err = 0;
  const int fd = agent_detail::connect_unix(path, true, &err);
  if (fd < 0) {
    if (err == ENOENT || err == ECONNREFUSED)
      return make_error("no sfsagent is running (nothing answers at " + path +
                        "); start sfsagent first");
    if (err == EACCES)
      return make_error("cannot reach the agent at " + path +
                        ": permission denied (is SFS_AGENT_SOCK another user's socket?)");
    if (err == EAGAIN) return make_error("the sfsagent at " + path + " is too busy; try again");
    return make_error("cannot reach the agent at " + path + ": " + errno_text(err));
  }
  const auto cred = agent_detail::peer_cred(fd);
  if (!cred || cred->uid != ::getuid()) {
    ::close(fd);
    return make_error(path + " is served by " +
                      (cred ? "uid " + std::to_string(cred->uid) : std::string("an unknown peer")) +
                      ", not by you (uid " + std::to_string(::getuid()) +
                      "); refusing to talk to it. Start your own sfsagent.");
  }
  return ControlClient(fd, path, timeout);
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status ControlClient::write_all(const Bytes& frame) {
  std::size_t off = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (off < frame.size()) {
    const ssize_t n = ::send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n >= 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return make_error("cannot write to the agent at " + path_ + ": " + errno_text(errno));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLOUT, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0)
      return make_error("the agent at " + path_ + " does not take requests (timed out)");
  }
  return {};
}

Status ControlClient::read_exact(std::uint8_t* p, std::size_t n) {
  std::size_t got = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (got < n) {
    const ssize_t r = ::recv(fd_, p + got, n - got, 0);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) return make_error("the agent at " + path_ + " closed the connection");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return make_error("cannot read from the agent at " + path_ + ": " + errno_text(errno));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pf{fd_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pf, 1, static_cast<int>(left.count())) == 0)
      return make_error("the agent at " + path_ + " did not answer (timed out)");
  }
  return {};
}

Result<AgentMessage> ControlClient::call(const AgentMessage& request) {
  Bytes frame = frame_agent_message(request);
  Status w = write_all(frame);
  wipe_bytes(frame);  // an ADD carries a private key
  if (!w) return make_error(w.error());
  std::uint8_t hdr[kAgentFrameHeaderBytes];
  if (Status s = read_exact(hdr, sizeof hdr); !s) return make_error(s.error());
  std::string why;
  const auto len = agent_frame_length(ByteSpan(hdr, sizeof hdr), &why);
  if (!len) return make_error("the agent at " + path_ + " sent a frame whose " + why);
  Bytes body(*len);
  if (Status s = read_exact(body.data(), body.size()); !s) return make_error(s.error());
  auto msg = decode_agent_message(body);
  if (!msg) return make_error("the agent at " + path_ + " sent a " + msg.error());
  const AgentMsgType t = agent_message_type(msg.value());
  if (t != AgentMsgType::kStatus && t != AgentMsgType::kKeys)
    return make_error(std::string("the agent at ") + path_ + " answered with a " + to_string(t) +
                      " message");
  return msg;
}

}  // namespace sfs
