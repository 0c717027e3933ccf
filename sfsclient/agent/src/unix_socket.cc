// unix_socket.cc: see unix_socket.h.
#include "unix_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sfs::agent_detail {

namespace {

// sockaddr_un has room for 107 characters and a NUL; a longer path would be
// silently truncated by some callers, so refuse it up front.
bool make_addr(const std::string& path, sockaddr_un* addr) {
  if (path.empty() || path.size() >= sizeof addr->sun_path) return false;
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

}  // namespace

std::string errno_text(int err) { return std::strerror(err); }

std::optional<PeerCred> peer_cred(int fd) {
  ucred c{};
  socklen_t len = sizeof c;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0 || len != sizeof c)
    return std::nullopt;
  return PeerCred{c.pid, c.uid, c.gid};
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

int connect_unix(const std::string& path, bool nonblocking, int* err) {
  sockaddr_un addr;
  if (!make_addr(path, &addr)) {
    *err = ENAMETOOLONG;
    return -1;
  }
  const int fd =
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  int r;
  do r = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  while (r != 0 && errno == EINTR);
  if (r != 0) {
    *err = errno;
    ::close(fd);
    return -1;
  }
  *err = 0;
  return fd;
}

Result<ListeningSocket> listen_unix(const std::string& path, mode_t mode, const std::string& what) {
  sockaddr_un addr;
  if (!make_addr(path, &addr))
    return make_error("socket path \"" + path + "\" is empty or longer than " +
                      std::to_string(sizeof addr.sun_path - 1) + " characters");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error(path +
                        " exists and is not a socket; refusing to replace it (remove it "
                        "yourself if it is not needed)");
    int err = 0;
    const int probe = connect_unix(path, false, &err);
    if (probe >= 0) {
      ::close(probe);
      return make_error(what + " is already listening on " + path);
    }
    // ECONNREFUSED: nobody listens, the file was left by a process that
    // died. Anything else (EACCES...) we cannot judge: do not touch it.
    if (err != ECONNREFUSED)
      return make_error("cannot check the existing socket " + path + ": " + errno_text(err));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return make_error("cannot remove the stale socket " + path + ": " + errno_text(errno));
  } else if (errno != ENOENT) {
    return make_error("cannot stat " + path + ": " + errno_text(errno));
  }

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_error("cannot create a socket for " + path + ": " + errno_text(errno));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EADDRINUSE)
      return make_error(what + " started on " + path + " at the same moment; not replacing it");
    return make_error("cannot bind " + path + ": " + errno_text(err));
  }
  // bind() created the file with 0777 & ~umask (the umask is per process,
  // so changing it around bind() would race with other threads). Set the
  // mode we mean now; in between, a peer that got in is still checked by
  // SO_PEERCRED, and private sockets sit in directories nobody else enters.
  if (::chmod(path.c_str(), mode) != 0 || ::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return make_error("cannot set the mode of " + path + ": " + errno_text(err));
  }
  if (::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return make_error("cannot listen on " + path + ": " + errno_text(err));
  }
  return ListeningSocket{fd, st.st_dev, st.st_ino};
}

void unlink_if_ours(const std::string& path, const ListeningSocket& s) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && st.st_dev == s.dev && st.st_ino == s.ino)
    ::unlink(path.c_str());
}

Status check_private_dir(const std::string& dir, uid_t owner, mode_t mode, bool create) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || !create)
      return make_error("cannot use directory " + dir + ": " + errno_text(errno));
    if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST)
      return make_error("cannot create directory " + dir + ": " + errno_text(errno));
    // mkdir applied the umask; the mode we create with is the one we mean.
    if (::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid())
      ::chmod(dir.c_str(), mode);
    if (::lstat(dir.c_str(), &st) != 0)
      return make_error("cannot use directory " + dir + ": " + errno_text(errno));
  }
  if (!S_ISDIR(st.st_mode)) return make_error(dir + " is not a directory");
  if (st.st_uid != owner && st.st_uid != 0)
    return make_error("directory " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                      ", not uid " + std::to_string(owner) +
                      "; use a directory of your own (e.g. ~/.sfs)");
  // Whoever may write into the directory may replace our socket with one of
  // their own; for a private directory (mode 0700) nobody else may even
  // look in.
  const mode_t forbidden = (mode & 077) == 0 ? 077 : 022;
  if ((st.st_mode & forbidden) != 0)
    return make_error("directory " + dir + " has mode " + mode_text(st.st_mode) +
                      ", open to other users; run chmod " + mode_text(mode & 0777).substr(1) + " " +
                      dir + " or use another directory");
  return {};
}

}  // namespace sfs::agent_detail
