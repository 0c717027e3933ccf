// fs_wire.cc: see sfs/fs_wire.h.
#include "sfs/fs_wire.h"

namespace sfs::fs {

void fill_fattr(sfs_fattr3& out, const nfs::Attr& a, std::uint64_t change, std::uint32_t lease_ms) {
  out.type = static_cast<sfs_ftype3>(a.type);
  out.mode = a.mode;
  out.nlink = a.nlink;
  out.uid = a.uid;
  out.gid = a.gid;
  out.size = a.size;
  out.used = a.used;
  out.rdev.specdata1 = a.rdev_major;
  out.rdev.specdata2 = a.rdev_minor;
  out.fsid = a.fsid;
  out.fileid = a.fileid;
  out.atime = to_time(a.atime);
  out.mtime = to_time(a.mtime);
  out.ctime = to_time(a.ctime);
  out.change = change;
  out.lease_ms = lease_ms;
}

nfs::Attr from_fattr(const sfs_fattr3& f) {
  nfs::Attr a;
  a.type = static_cast<nfs::FileType>(wire_value(f.type));  // the server's: any number
  a.mode = f.mode;
  a.nlink = f.nlink;
  a.uid = f.uid;
  a.gid = f.gid;
  a.size = f.size;
  a.used = f.used;
  a.rdev_major = f.rdev.specdata1;
  a.rdev_minor = f.rdev.specdata2;
  a.fsid = f.fsid;
  a.fileid = f.fileid;
  a.atime = from_time(f.atime);
  a.mtime = from_time(f.mtime);
  a.ctime = from_time(f.ctime);
  return a;
}

void fill_post_op(sfs_post_op_attr& out, const std::optional<nfs::Attr>& a, std::uint64_t change,
                  std::uint32_t lease_ms) {
  out.attributes_follow = a.has_value();
  if (a) fill_fattr(out.sfs_post_op_attr_u.attributes, *a, change, lease_ms);
}

LeasedAttr leased(const sfs_fattr3& f) { return {from_fattr(f), f.change, f.lease_ms}; }

std::optional<LeasedAttr> from_post_op(const sfs_post_op_attr& p) {
  if (!p.attributes_follow) return std::nullopt;
  return leased(p.sfs_post_op_attr_u.attributes);
}

void fill_wcc(sfs_wcc_data& out, const nfs::Wcc& w, std::uint64_t change, std::uint32_t lease_ms) {
  out.before.attributes_follow = w.before.has_value();
  if (w.before) {
    auto& b = out.before.sfs_pre_op_attr_u.attributes;
    b.size = w.before->size;
    b.mtime = to_time(w.before->mtime);
    b.ctime = to_time(w.before->ctime);
  }
  fill_post_op(out.after, w.after, change, lease_ms);
}

nfs::SetAttr from_sattr(const sfs_sattr3& s) {
  nfs::SetAttr a;
  if (s.mode.set_it) a.mode = s.mode.sfs_set_mode3_u.mode;
  if (s.uid.set_it) a.uid = s.uid.sfs_set_uid3_u.uid;
  if (s.gid.set_it) a.gid = s.gid.sfs_set_gid3_u.gid;
  if (s.size.set_it) a.size = s.size.sfs_set_size3_u.size;
  // An unknown time_how decoded through the union's void arm: no time.
  const auto how = [](std::uint32_t v) {
    return v <= SFS_SET_TO_CLIENT_TIME ? static_cast<nfs::TimeHow>(v) : nfs::TimeHow::kDontChange;
  };
  a.atime_how = how(wire_value(s.atime.set_it));
  if (a.atime_how == nfs::TimeHow::kClientTime) a.atime = from_time(s.atime.sfs_set_atime_u.atime);
  a.mtime_how = how(wire_value(s.mtime.set_it));
  if (a.mtime_how == nfs::TimeHow::kClientTime) a.mtime = from_time(s.mtime.sfs_set_mtime_u.mtime);
  return a;
}

void fill_sattr(sfs_sattr3& out, const nfs::SetAttr& s) {
  out = sfs_sattr3{};
  out.mode.set_it = s.mode.has_value();
  if (s.mode) out.mode.sfs_set_mode3_u.mode = *s.mode;
  out.uid.set_it = s.uid.has_value();
  if (s.uid) out.uid.sfs_set_uid3_u.uid = *s.uid;
  out.gid.set_it = s.gid.has_value();
  if (s.gid) out.gid.sfs_set_gid3_u.gid = *s.gid;
  out.size.set_it = s.size.has_value();
  if (s.size) out.size.sfs_set_size3_u.size = *s.size;
  out.atime.set_it = static_cast<sfs_time_how>(s.atime_how);
  if (s.atime_how == nfs::TimeHow::kClientTime) out.atime.sfs_set_atime_u.atime = to_time(s.atime);
  out.mtime.set_it = static_cast<sfs_time_how>(s.mtime_how);
  if (s.mtime_how == nfs::TimeHow::kClientTime) out.mtime.sfs_set_mtime_u.mtime = to_time(s.mtime);
}

std::size_t entryplus_size(std::size_t name_len, bool has_attr, std::size_t handle_len) {
  std::size_t n = 4 + 8 + 4 + xdr_pad(name_len) + 8;
  n += has_attr ? kPostOpAttrSize : 4;
  n += handle_len ? 4 + 4 + xdr_pad(handle_len) : 4;
  return n;
}

std::size_t entry_size(std::size_t name_len) { return 4 + 8 + 4 + xdr_pad(name_len) + 8; }

}  // namespace sfs::fs
