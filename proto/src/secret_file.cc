// secret_file.cc: see sfs/secret_file.h.
#include "sfs/secret_file.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sfs {

namespace {

struct WipeOnExit {
  std::string& s;
  ~WipeOnExit() { wipe_string(s); }
};

std::string errno_text(int err) { return std::strerror(err); }

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
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(std::string("cannot replace ") + what + " " + path + ": " + errno_text(err));
  }
  return {};
}

Result<std::string> read_secret_file(const std::string& path, std::size_t max_bytes,
                                     const char* what) {
  const std::string w(what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP)
      return make_error(w + " " + path + " is a symbolic link; give the file itself");
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
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(w + " " + path + " is accessible by group or others (mode " + mode +
                      "); run chmod 600 " + path);
  }
  std::string text(max_bytes + 1, '\0');
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
  return std::string(text.data(), got);
}

}  // namespace sfs
