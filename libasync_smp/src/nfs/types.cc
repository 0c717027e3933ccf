// types.cc: the small value types of nfs.h (errors, handles, buffers).
#include <cerrno>
#include <cstring>

#include "asmp/nfs.h"

namespace asmp::nfs {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::kOk: return "NFS3_OK";
    case Status::kPerm: return "NFS3ERR_PERM";
    case Status::kNoent: return "NFS3ERR_NOENT";
    case Status::kIo: return "NFS3ERR_IO";
    case Status::kNxio: return "NFS3ERR_NXIO";
    case Status::kAcces: return "NFS3ERR_ACCES";
    case Status::kExist: return "NFS3ERR_EXIST";
    case Status::kXdev: return "NFS3ERR_XDEV";
    case Status::kNodev: return "NFS3ERR_NODEV";
    case Status::kNotdir: return "NFS3ERR_NOTDIR";
    case Status::kIsdir: return "NFS3ERR_ISDIR";
    case Status::kInval: return "NFS3ERR_INVAL";
    case Status::kFbig: return "NFS3ERR_FBIG";
    case Status::kNospc: return "NFS3ERR_NOSPC";
    case Status::kRofs: return "NFS3ERR_ROFS";
    case Status::kMlink: return "NFS3ERR_MLINK";
    case Status::kNametoolong: return "NFS3ERR_NAMETOOLONG";
    case Status::kNotempty: return "NFS3ERR_NOTEMPTY";
    case Status::kDquot: return "NFS3ERR_DQUOT";
    case Status::kStale: return "NFS3ERR_STALE";
    case Status::kRemote: return "NFS3ERR_REMOTE";
    case Status::kBadhandle: return "NFS3ERR_BADHANDLE";
    case Status::kNotSync: return "NFS3ERR_NOT_SYNC";
    case Status::kBadCookie: return "NFS3ERR_BAD_COOKIE";
    case Status::kNotsupp: return "NFS3ERR_NOTSUPP";
    case Status::kToosmall: return "NFS3ERR_TOOSMALL";
    case Status::kServerfault: return "NFS3ERR_SERVERFAULT";
    case Status::kBadtype: return "NFS3ERR_BADTYPE";
    case Status::kJukebox: return "NFS3ERR_JUKEBOX";
  }
  return "NFS3ERR_?";
}

int to_errno(Status s) {
  switch (s) {
    case Status::kOk: return 0;
    case Status::kPerm: return EPERM;
    case Status::kNoent: return ENOENT;
    case Status::kIo: return EIO;
    case Status::kNxio: return ENXIO;
    case Status::kAcces: return EACCES;
    case Status::kExist: return EEXIST;
    case Status::kXdev: return EXDEV;
    case Status::kNodev: return ENODEV;
    case Status::kNotdir: return ENOTDIR;
    case Status::kIsdir: return EISDIR;
    case Status::kInval: return EINVAL;
    case Status::kFbig: return EFBIG;
    case Status::kNospc: return ENOSPC;
    case Status::kRofs: return EROFS;
    case Status::kMlink: return EMLINK;
    case Status::kNametoolong: return ENAMETOOLONG;
    case Status::kNotempty: return ENOTEMPTY;
    case Status::kDquot: return EDQUOT;
    case Status::kStale: return ESTALE;
    case Status::kRemote: return EREMOTE;
    case Status::kBadhandle: return ESTALE;
    case Status::kNotSync: return EAGAIN;
    case Status::kBadCookie: return EINVAL;
    case Status::kNotsupp: return EOPNOTSUPP;
    case Status::kToosmall: return ERANGE;
    case Status::kServerfault: return EIO;
    case Status::kBadtype: return EINVAL;
    case Status::kJukebox: return EAGAIN;
  }
  return EIO;
}

std::string_view to_string(Failure f) {
  switch (f) {
    case Failure::kNone: return "ok";
    case Failure::kNfs: return "nfs error";
    case Failure::kTimeout: return "timeout";
    case Failure::kConnectionLost: return "connection lost";
    case Failure::kUnavailable: return "server unavailable";
    case Failure::kRpc: return "rpc error";
    case Failure::kClosed: return "client closed";
    case Failure::kRootChanged: return "export root changed";
  }
  return "?";
}

int Error::to_errno() const {
  switch (failure) {
    case Failure::kNone: return 0;
    case Failure::kNfs: return nfs::to_errno(status);
    case Failure::kTimeout: return ETIMEDOUT;
    case Failure::kConnectionLost: return EIO;
    case Failure::kUnavailable: return ENOTCONN;
    case Failure::kRpc: return EIO;
    case Failure::kClosed: return ESHUTDOWN;
    case Failure::kRootChanged: return ESTALE;
  }
  return EIO;
}

std::string Error::describe() const {
  if (failure == Failure::kNfs) return std::string(to_string(status));
  std::string s(to_string(failure));
  if (!message.empty()) s += ": " + message;
  return s;
}

FileHandle::FileHandle(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > kMaxSize) return;
  std::memcpy(data_.data(), bytes.data(), bytes.size());
  size_ = static_cast<std::uint8_t>(bytes.size());
}

std::string FileHandle::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(size_ * 2);
  for (std::size_t i = 0; i < size_; ++i) {
    s += kDigits[data_[i] >> 4];
    s += kDigits[data_[i] & 15];
  }
  return s;
}

Buffer Buffer::copy_of(std::span<const std::byte> bytes) {
  Buffer b(bytes.size());
  if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());
  return b;
}

void Buffer::resize(std::size_t size) {
  if (size > capacity_) {
    data_ = std::make_unique_for_overwrite<std::byte[]>(size);
    capacity_ = size;
  }
  size_ = size;
}

Cred::Cred(std::uint32_t u, std::uint32_t g, std::span<const std::uint32_t> gs) : uid(u), gid(g) {
  ngroups = static_cast<std::uint8_t>(std::min(gs.size(), kMaxGroups));
  std::copy_n(gs.begin(), ngroups, groups.begin());
}

}  // namespace asmp::nfs
