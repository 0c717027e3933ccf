// secret_file.cc: see sfs/secret_file.h.
#include "sfs/secret_file.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sfs {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string mode_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

bool trusted_owner(uid_t uid, const FileRules& rules) {
  if (rules.owners.empty()) return uid == 0 || uid == ::geteuid();
  return std::find(rules.owners.begin(), rules.owners.end(), uid) != rules.owners.end();
}

std::string owners_text(const FileRules& rules) {
  if (rules.owners.size() == 1 && rules.owners[0] == ::getuid())
    return "to you (uid " + std::to_string(rules.owners[0]) + ")";
  if (rules.owners.empty()) {
    const uid_t me = ::geteuid();
    return me == 0 ? std::string("root") : "root or uid " + std::to_string(me);
  }
  std::string s;
  for (uid_t u : rules.owners) s += (s.empty() ? "uid " : " or uid ") + std::to_string(u);
  return s;
}

// Every directory from the file's up to /: whoever may write one of them
// could rename another file into place, whatever the file's own mode. A
// sticky directory (/tmp) lets no one else replace our entries. Checked by
// path, so a race with a rename is possible; the file itself is checked on
// the open descriptor.
Status check_directories(const std::string& path, const FileRules& rules) {
  const std::size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  char real[PATH_MAX];
  if (!::realpath(dir.c_str(), real))
    return make_error(std::string("cannot resolve the directory of ") + rules.what + " " + path +
                      ": " + errno_text(errno));
  std::string d = real;
  for (;;) {
    struct stat st;
    if (::stat(d.c_str(), &st) != 0)
      return make_error("cannot stat " + d + ": " + errno_text(errno));
    if (st.st_uid != 0 && !trusted_owner(st.st_uid, rules))
      return make_error("directory " + d + " holding " + rules.what + " " + path +
                        " belongs to uid " + std::to_string(st.st_uid) + ", not " +
                        owners_text(rules) + "; keep the file in a directory they own");
    if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0)
      return make_error("directory " + d + " holding " + rules.what + " " + path +
                        " is writable by group or others (mode " + mode_text(st.st_mode) +
                        "), who could replace the file; run chmod go-w " + d);
    if (d == "/") break;
    const std::size_t up = d.rfind('/');
    d = up == 0 ? "/" : d.substr(0, up);
  }
  return {};
}

// Writes all of text to a new file at path (O_EXCL); removes it on failure.
Status create_and_write(const std::string& path, const std::string& text, const char* what) {
  // O_EXCL: never overwrite. O_NOFOLLOW: never write through a symlink
  // planted at the path. Mode 0600 from the start (umask can only remove
  // bits), so the secret is never readable by others, even briefly.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST)
      return make_error("refusing to overwrite existing file " + path +
                        "; remove it first or choose another name");
    return make_error(std::string("cannot create ") + what + " " + path + ": " + errno_text(err));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(path.c_str());
      return make_error(std::string("cannot write ") + what + " " + path + ": " + errno_text(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return make_error(std::string("cannot write ") + what + " " + path + ": " + errno_text(err));
  }
  return {};
}

}  // namespace

void wipe_string(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

Status write_secret_file(const std::string& path, std::string text, const char* what) {
  WipeOnExit wipe{text};
  return create_and_write(path, text, what);
}

Status replace_secret_file(const std::string& path, std::string text, const char* what) {
  WipeOnExit wipe{text};
  const std::string tmp = path + ".new";
  ::unlink(tmp.c_str());  // a leftover of an interrupted earlier replace
  if (Status s = create_and_write(tmp, text, what); !s) return s;
  // Root rotating a file that an unprivileged daemon reads (sfsd's `user`)
  // must leave it that daemon's, or its next reload fails.
  struct stat old;
  if (::lstat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode) &&
      (old.st_uid != ::geteuid() || old.st_gid != ::getegid()) &&
      ::lchown(tmp.c_str(), old.st_uid, old.st_gid) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(std::string("cannot give the new ") + what + " " + path +
                      " its old owner: " + errno_text(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(std::string("cannot replace ") + what + " " + path + ": " + errno_text(err));
  }
  return {};
}

Result<std::string> read_secret_file(const std::string& path, std::size_t max_bytes,
                                     const char* what) {
  FileRules rules;
  rules.what = what;
  return read_checked_file(path, max_bytes, rules);
}

Result<std::string> read_checked_file(const std::string& path, std::size_t max_bytes,
                                      const FileRules& rules) {
  const std::string w(rules.what);
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP)
      return make_error(w + " " + path + " is a symbolic link; give the file itself");
    if (err == EACCES)
      return make_error("cannot read " + w + " " + path + ": permission denied (whose is it? ls -l " + path + ")");
    return make_error("cannot open " + w + " " + path + ": " + errno_text(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error("cannot stat " + w + " " + path + ": " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(w + " " + path + " is not a regular file");
  }
  if (rules.check_writers && !trusted_owner(st.st_uid, rules)) {
    ::close(fd);
    return make_error(w + " " + path + " belongs to uid " + std::to_string(st.st_uid) + ", not " +
                      owners_text(rules) + "; use a file of your own, or have root run: chown " +
                      (rules.owners.empty() ? std::to_string(::geteuid())
                                            : std::to_string(rules.owners.back())) +
                      " " + path);
  }
  const mode_t forbidden = rules.secret ? 077 : 022;
  if (rules.check_writers && (st.st_mode & forbidden) != 0) {
    ::close(fd);
    return make_error(w + " " + path + (rules.secret ? " is accessible by group or others (mode "
                                                     : " is writable by group or others (mode ") +
                      mode_text(st.st_mode) + "); run chmod " + (rules.secret ? "600 " : "go-w ") +
                      path);
  }
  if (Status s = rules.check_writers ? check_directories(path, rules) : Status{}; !s) {
    ::close(fd);
    return make_error(s.error());
  }
  // Sized by the file, not max_bytes (a 64 MiB limit need not cost 64 MiB);
  // one spare byte tells a file that grew from one that fits.
  const std::size_t cap = std::min<std::size_t>(max_bytes, static_cast<std::size_t>(st.st_size)) + 1;
  std::string text(cap, '\0');
  WipeOnExit wipe{text};
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return make_error("cannot read " + w + " " + path + ": " + errno_text(err));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (got > max_bytes)
    return make_error(w + " " + path + " is larger than " + std::to_string(max_bytes) + " bytes");
  if (got == cap) return make_error(w + " " + path + " changed while being read; try again");
  return std::string(text.data(), got);
}

}  // namespace sfs
