// secret_file.h: the files sfs trusts (private keys, the server's handle
// keys, the user database, config files): created 0600 without ever
// overwriting, and read only when no one else could have written them (as
// OpenSSH's StrictModes) or, for secrets, read them.
//
// Contract
//   - write_secret_file creates path with O_CREAT | O_EXCL | O_NOFOLLOW and
//     mode 0600 from the start (never readable by others, even briefly),
//     writes, fsyncs; an existing file or a symlink at the path is refused.
//     replace_secret_file writes a temporary file the same way beside path
//     and renames it over path (atomic; for files a daemon rewrites); the new
//     file keeps the owner of the one it replaces, so a root tool rotating a
//     key leaves it readable by the unprivileged daemon that owns it.
//   - read_checked_file opens with O_NOFOLLOW | O_NONBLOCK (a symlink or a
//     FIFO planted at the path can neither redirect nor hang the reader) and
//     refuses, with one line naming the file and the fix:
//       * anything but a regular file, or a file over max_bytes;
//       * a file owned by anyone but FileRules::owners (default: root or the
//         effective uid);
//       * a file group or others may write, and for secrets one they may
//         read at all;
//       * a file in a directory (any directory up to /) that is owned by
//         anyone but root or those owners, or that group or others may write
//         without the sticky bit: whoever can write a directory can replace
//         the file in it.
//     Buffers that held the text are wiped. `what` names the file in
//     messages ("key file", "user database", ...).
//   - Pure functions; any thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include "sfs/result.h"

namespace sfs {

struct FileRules {
  const char* what = "key file";
  bool secret = true;  // also refuse a file group or others may read
  // Who may own the file; empty: root or the effective uid. Directories
  // above it may also be owned by root.
  std::vector<uid_t> owners;
  // false: skip owner, mode and directory checks (a self-authenticating
  // file such as a revocation certificate; still no symlink, FIFO or size).
  bool check_writers = true;
};

Status write_secret_file(const std::string& path, std::string text, const char* what = "key file");
Status replace_secret_file(const std::string& path, std::string text,
                           const char* what = "key file");
Result<std::string> read_checked_file(const std::string& path, std::size_t max_bytes,
                                      const FileRules& rules);
// read_checked_file with secret rules and the default owners.
Result<std::string> read_secret_file(const std::string& path, std::size_t max_bytes,
                                     const char* what = "key file");
// Overwrites the string's bytes with zeros and empties it.
void wipe_string(std::string& s);
// Wipes a string that holds secret text on every path out of its scope.
struct WipeOnExit {
  std::string& s;
  ~WipeOnExit() { wipe_string(s); }
};

}  // namespace sfs
