// secret_file.h: small files that hold secrets (private keys, the server's
// handle keys): created 0600 without ever overwriting, read only when no
// one else may read them.
//
// Contract
//   - write_secret_file creates path with O_CREAT | O_EXCL | O_NOFOLLOW and
//     mode 0600 from the start (never readable by others, even briefly),
//     writes, fsyncs; an existing file or a symlink at the path is refused.
//     replace_secret_file writes a temporary file the same way beside path
//     and renames it over path (atomic; for files a daemon rewrites).
//   - read_secret_file opens with O_NOFOLLOW | O_NONBLOCK (a symlink or a
//     FIFO planted at the path can neither redirect nor hang the reader),
//     refuses anything but a regular file, a file group or others may
//     access, and a file over max_bytes. Buffers that held the text are
//     wiped. `what` names the file in messages ("key file", ...).
//   - Pure functions; any thread.
#pragma once

#include <cstddef>
#include <string>

#include "sfs/result.h"

namespace sfs {

Status write_secret_file(const std::string& path, std::string text, const char* what = "key file");
Status replace_secret_file(const std::string& path, std::string text,
                           const char* what = "key file");
Result<std::string> read_secret_file(const std::string& path, std::size_t max_bytes,
                                     const char* what = "key file");
// Overwrites the string's bytes with zeros and empties it.
void wipe_string(std::string& s);

}  // namespace sfs
