// xdr_convert.h: between libnfs's rpcgen structs and nfs.h's C++ types.
// Private to src/nfs/. Outgoing conversions point into the C++ objects
// (no copies): they are valid only while those objects live, which is long
// enough because libnfs encodes the arguments before rpc_nfs3_*_async returns.
#pragma once

#include <cstring>
#include <string>

#include "client_impl.h"

namespace asmp::nfs::xdr {

inline Time from(const nfstime3& t) { return {t.seconds, t.nseconds}; }
inline nfstime3 to(const Time& t) { return {t.seconds, t.nseconds}; }

inline Attr from(const fattr3& a) {
  Attr r;
  r.type = static_cast<FileType>(a.type);
  r.mode = a.mode;
  r.nlink = a.nlink;
  r.uid = a.uid;
  r.gid = a.gid;
  r.size = a.size;
  r.used = a.used;
  r.rdev_major = a.rdev.specdata1;
  r.rdev_minor = a.rdev.specdata2;
  r.fsid = a.fsid;
  r.fileid = a.fileid;
  r.atime = from(a.atime);
  r.mtime = from(a.mtime);
  r.ctime = from(a.ctime);
  return r;
}

inline std::optional<Attr> from(const post_op_attr& a) {
  if (!a.attributes_follow) return std::nullopt;
  return from(a.post_op_attr_u.attributes);
}

inline Wcc from(const wcc_data& w) {
  Wcc r;
  if (w.before.attributes_follow) {
    const wcc_attr& b = w.before.pre_op_attr_u.attributes;
    r.before = WccAttr{b.size, from(b.mtime), from(b.ctime)};
  }
  r.after = from(w.after);
  return r;
}

inline FileHandle from(const nfs_fh3& fh) {
  return FileHandle(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(fh.data.data_val), fh.data.data_len));
}

inline std::optional<FileHandle> from(const post_op_fh3& fh) {
  if (!fh.handle_follows) return std::nullopt;
  return from(fh.post_op_fh3_u.handle);
}

inline Verifier verifier(const char* bytes) {
  Verifier v;
  std::memcpy(v.data(), bytes, v.size());
  return v;
}

// libnfs's argument structs take non-const pointers but only read them.
inline nfs_fh3 to(const FileHandle& fh) {
  nfs_fh3 r;
  r.data.data_len = static_cast<u_int>(fh.size());
  r.data.data_val = const_cast<char*>(reinterpret_cast<const char*>(fh.bytes().data()));
  return r;
}

inline char* to(const std::string& s) { return const_cast<char*>(s.c_str()); }

inline diropargs3 to(const FileHandle& dir, const std::string& name) {
  diropargs3 r;
  r.dir = to(dir);
  r.name = to(name);
  return r;
}

inline sattr3 to(const SetAttr& a) {
  sattr3 r;
  std::memset(&r, 0, sizeof r);
  if (a.mode) {
    r.mode.set_it = 1;
    r.mode.set_mode3_u.mode = *a.mode;
  }
  if (a.uid) {
    r.uid.set_it = 1;
    r.uid.set_uid3_u.uid = *a.uid;
  }
  if (a.gid) {
    r.gid.set_it = 1;
    r.gid.set_gid3_u.gid = *a.gid;
  }
  if (a.size) {
    r.size.set_it = 1;
    r.size.set_size3_u.size = *a.size;
  }
  r.atime.set_it = static_cast<time_how>(a.atime_how);
  if (a.atime_how == TimeHow::kClientTime) r.atime.set_atime_u.atime = to(a.atime);
  r.mtime.set_it = static_cast<time_how>(a.mtime_how);
  if (a.mtime_how == TimeHow::kClientTime) r.mtime.set_mtime_u.mtime = to(a.mtime);
  return r;
}

// libnfs 4.0's decoder places the directory entries it allocates at 4-byte
// alignment, which is too little for their 64-bit members: copy each one out
// before touching its fields (UBSan flags direct access).
template <class T>
T load(const T* p) {
  T v;
  std::memcpy(&v, static_cast<const void*>(p), sizeof v);
  return v;
}

// The Result of a reply whose status is not NFS3_OK.
template <class T>
Result<T> nfs_error(nfsstat3 status) {
  Result<T> r;
  r.error.failure = Failure::kNfs;
  r.error.status = static_cast<Status>(status);
  return r;
}

}  // namespace asmp::nfs::xdr
