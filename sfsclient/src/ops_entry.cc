// ops_entry.cc: the FUSE operations on names and attributes: lookup,
// getattr, setattr, readlink, mknod, mkdir, symlink, link, unlink/rmdir,
// rename, statfs. One function each; the cache rules are in inodes.h.
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include <cstring>

#include "sfs_fs_call.h"

namespace sfsclient {

namespace {

using Handle = sfs::fs::Handle;
using sfs::fs::FileClient;

constexpr std::size_t kNameMax = SFS_NFS3_MAXNAMLEN;

struct stat root_stat() {
  struct stat st {};
  st.st_ino = FUSE_ROOT_ID;
  st.st_mode = S_IFDIR | 0755;
  st.st_nlink = 2;
  return st;
}

void fill_sattr_from(sfs_sattr3& s, const struct stat& attr, int to_set) {
  s = sfs_sattr3{};
  if (to_set & FUSE_SET_ATTR_MODE) {
    s.mode.set_it = TRUE;
    s.mode.sfs_set_mode3_u.mode = attr.st_mode & 07777;
  }
  if (to_set & FUSE_SET_ATTR_UID) {
    s.uid.set_it = TRUE;
    s.uid.sfs_set_uid3_u.uid = attr.st_uid;
  }
  if (to_set & FUSE_SET_ATTR_GID) {
    s.gid.set_it = TRUE;
    s.gid.sfs_set_gid3_u.gid = attr.st_gid;
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    s.size.set_it = TRUE;
    s.size.sfs_set_size3_u.size = static_cast<std::uint64_t>(attr.st_size);
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    s.atime.set_it = SFS_SET_TO_SERVER_TIME;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    s.atime.set_it = SFS_SET_TO_CLIENT_TIME;
    s.atime.sfs_set_atime_u.atime = {static_cast<std::uint32_t>(attr.st_atim.tv_sec),
                                     static_cast<std::uint32_t>(attr.st_atim.tv_nsec)};
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    s.mtime.set_it = SFS_SET_TO_SERVER_TIME;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    s.mtime.set_it = SFS_SET_TO_CLIENT_TIME;
    s.mtime.sfs_set_mtime_u.mtime = {static_cast<std::uint32_t>(attr.st_mtim.tv_sec),
                                     static_cast<std::uint32_t>(attr.st_mtim.tv_nsec)};
  }
}

void set_mode(sfs_sattr3& s, mode_t mode) {
  s = sfs_sattr3{};
  s.mode.set_it = TRUE;
  s.mode.sfs_set_mode3_u.mode = mode & 07777;
}

}  // namespace

void SfsFs::lookup(fuse_req_t req, fuse_ino_t parent, const char* cname) {
  const std::string name(cname);
  if (parent == FUSE_ROOT_ID) return mount_server(req, name);
  if (name.size() > kNameMax) return (void)fuse_reply_err(req, ENAMETOOLONG);
  Inode* dir = inodes_.find(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  const auto now = Clock::now();
  if (dir->entries_until > now) {
    if (dir->negatives.count(name)) {
      fuse_entry_param e{};
      e.entry_timeout = seconds_left(dir->entries_until, now);
      return (void)fuse_reply_entry(req, &e);
    }
    auto it = dir->children.find(name);
    if (it != dir->children.end()) {
      Inode* child = inodes_.find(it->second);
      if (child && inodes_.cached_attr(*child, now)) {
        ++child->nlookup;
        fuse_entry_param e{};
        e.ino = child->ino;
        e.attr = stat_of(*child);
        e.attr_timeout = seconds_left(child->attr_until, now);
        e.entry_timeout = seconds_left(dir->entries_until, now);
        return (void)fuse_reply_entry(req, &e);
      }
    } else if (dir->names_complete(now)) {
      // Every name is known and this is not one (a file about to be
      // created, a search path probed): no round trip. Noted as a negative
      // so that an INVALIDATE of the directory reaches the kernel's entry.
      ++stats_.negative_hits;
      note_negative(*dir, name);
      fuse_entry_param e{};
      e.entry_timeout = seconds_left(dir->entries_until, now);
      return (void)fuse_reply_entry(req, &e);
    }
  }
  // Not known here: a directory whose names are asked one by one is read
  // whole instead, and this lookup runs again when it is in.
  if (scan_instead(*dir, fuse_req_ctx(req)->uid, [this, req, parent, name] { lookup(req, parent, name.c_str()); }))
    return;
  const Handle dfh = dir->fh;
  call<SFS_NFSPROC3_LOOKUP>(
      req, dir->server,
      [dfh, name](sfs_LOOKUP3args& a) {
        a.what.dir = FileClient::wire(dfh);
        a.what.name = const_cast<char*>(name.c_str());
      },
      [this, req, parent, name](sfs::fs::Reply<sfs_LOOKUP3res> r, Clock::time_point sent) {
        Inode* d = inodes_.find(parent);
        if (!d) return (void)fuse_reply_err(req, ESTALE);
        if (r->status != SFS_NFS3_OK) {
          note_attr(*d, r->sfs_LOOKUP3res_u.resfail.dir_attributes, sent);
          if (r->status == SFS_NFS3ERR_NOENT && d->entries_until > Clock::now()) {
            note_negative(*d, name);
            fuse_entry_param e{};
            e.entry_timeout = seconds_left(d->entries_until, Clock::now());
            return (void)fuse_reply_entry(req, &e);
          }
          return (void)fuse_reply_err(req, errno_of(r->status));
        }
        auto& ok = r->sfs_LOOKUP3res_u.resok;
        note_attr(*d, ok.dir_attributes, sent);
        fuse_entry_param e;
        if (!make_entry(e, *d, name, FileClient::handle_of(ok.object), ok.obj_attributes, sent))
          return (void)fuse_reply_err(req, EIO);
        fuse_reply_entry(req, &e);
      });
}

void SfsFs::forget(fuse_ino_t ino, std::uint64_t n) { inodes_.forget(ino, n); }

void SfsFs::getattr(fuse_req_t req, fuse_ino_t ino) {
  if (ino == FUSE_ROOT_ID) {
    struct stat st = root_stat();
    return (void)fuse_reply_attr(req, &st, 3600.0);
  }
  Inode* in = inodes_.find(ino);
  if (!in) return (void)fuse_reply_err(req, ESTALE);
  const auto now = Clock::now();
  if (inodes_.cached_attr(*in, now)) {
    ++stats_.attr_hits;
    return reply_attr(req, *in, seconds_left(in->attr_until, now));
  }
  const Handle fh = in->fh;
  const ServerId sid = in->server;
  // After this client's writes in flight, so that the size includes them.
  after_writes(ino, [this, req, ino, fh, sid] {
    call<SFS_NFSPROC3_GETATTR>(
        req, sid, [fh](sfs_GETATTR3args& a) { a.object = FileClient::wire(fh); },
        [this, req, ino](sfs::fs::Reply<sfs_GETATTR3res> r, Clock::time_point sent) {
          Inode* i = inodes_.find(ino);
          if (!i) return (void)fuse_reply_err(req, ESTALE);
          if (r->status != SFS_NFS3_OK) return (void)fuse_reply_err(req, errno_of(r->status));
          const auto& f = r->sfs_GETATTR3res_u.resok.obj_attributes;
          const auto until = inodes_.store_attr(*i, sfs::fs::from_fattr(f), f.change, f.lease_ms, sent);
          reply_attr(req, *i, seconds_left(until, Clock::now()));
        });
  });
}

void SfsFs::setattr(fuse_req_t req, fuse_ino_t ino, const struct stat& attr, int to_set, fuse_file_info*) {
  if (ino == FUSE_ROOT_ID) return (void)fuse_reply_err(req, EPERM);
  Inode* in = inodes_.find(ino);
  if (!in) return (void)fuse_reply_err(req, ESTALE);
  const Handle fh = in->fh;
  const ServerId sid = in->server;
  sfs_sattr3 s;
  fill_sattr_from(s, attr, to_set);
  // After this client's writes in flight: a truncate must not overtake them.
  after_writes(ino, [this, req, ino, fh, sid, s] {
  call<SFS_NFSPROC3_SETATTR>(
      req, sid,
      [fh, s](sfs_SETATTR3args& a) {
        a.object = FileClient::wire(fh);
        a.new_attributes = s;
      },
      [this, req, ino](sfs::fs::Reply<sfs_SETATTR3res> r, Clock::time_point sent) {
        Inode* i = inodes_.find(ino);
        if (!i) return (void)fuse_reply_err(req, ESTALE);
        if (r->status != SFS_NFS3_OK) {
          note_wcc(*i, r->sfs_SETATTR3res_u.resfail.obj_wcc, sent);
          return (void)fuse_reply_err(req, errno_of(r->status));
        }
        const double t = note_wcc(*i, r->sfs_SETATTR3res_u.resok.obj_wcc, sent);
        reply_attr(req, *i, t);
      });
  });
}

void SfsFs::readlink(fuse_req_t req, fuse_ino_t ino) {
  Inode* in = inodes_.find(ino);
  if (!in || ino == FUSE_ROOT_ID) return (void)fuse_reply_err(req, in ? EINVAL : ESTALE);
  const Handle fh = in->fh;
  call<SFS_NFSPROC3_READLINK>(
      req, in->server, [fh](sfs_READLINK3args& a) { a.symlink = FileClient::wire(fh); },
      [this, req, ino](sfs::fs::Reply<sfs_READLINK3res> r, Clock::time_point sent) {
        if (r->status != SFS_NFS3_OK) return (void)fuse_reply_err(req, errno_of(r->status));
        if (Inode* i = inodes_.find(ino)) note_attr(*i, r->sfs_READLINK3res_u.resok.symlink_attributes, sent);
        fuse_reply_readlink(req, r->sfs_READLINK3res_u.resok.data);
      });
}

namespace {

// CREATE, MKDIR, SYMLINK and MKNOD answer alike: the new object, its
// attributes, the directory's wcc.
template <std::uint32_t P>
struct MakeResult;
template <>
struct MakeResult<SFS_NFSPROC3_MKDIR> {
  static const sfs_CREATE3resok& ok(const sfs_MKDIR3res& r) { return r.sfs_MKDIR3res_u.resok; }
  static const sfs_wcc_data& fail(const sfs_MKDIR3res& r) { return r.sfs_MKDIR3res_u.resfail.dir_wcc; }
};
template <>
struct MakeResult<SFS_NFSPROC3_SYMLINK> {
  static const sfs_CREATE3resok& ok(const sfs_SYMLINK3res& r) { return r.sfs_SYMLINK3res_u.resok; }
  static const sfs_wcc_data& fail(const sfs_SYMLINK3res& r) { return r.sfs_SYMLINK3res_u.resfail.dir_wcc; }
};
template <>
struct MakeResult<SFS_NFSPROC3_MKNOD> {
  static const sfs_CREATE3resok& ok(const sfs_MKNOD3res& r) { return r.sfs_MKNOD3res_u.resok; }
  static const sfs_wcc_data& fail(const sfs_MKNOD3res& r) { return r.sfs_MKNOD3res_u.resfail.dir_wcc; }
};
template <>
struct MakeResult<SFS_NFSPROC3_CREATE> {
  static const sfs_CREATE3resok& ok(const sfs_CREATE3res& r) { return r.sfs_CREATE3res_u.resok; }
  static const sfs_wcc_data& fail(const sfs_CREATE3res& r) { return r.sfs_CREATE3res_u.resfail.dir_wcc; }
};

}  // namespace

// Shared by mknod, mkdir, symlink (and create, in ops_file.cc): make the
// object, then answer the kernel with its entry.
template <std::uint32_t P>
void make_object(SfsFs& fs, fuse_req_t req, fuse_ino_t parent, const std::string& name,
                 SfsFs::Build<P> build, std::function<void(fuse_entry_param&)> reply) {
  Inode* dir = fs.inodes().find(parent);
  if (!dir || parent == FUSE_ROOT_ID) return (void)fuse_reply_err(req, dir ? EPERM : ESTALE);
  if (name.size() > kNameMax) return (void)fuse_reply_err(req, ENAMETOOLONG);
  // Never repeated if the connection is lost (call_changing): repeating a
  // creation whose answer was lost would fail with EEXIST for something
  // we made; outcome unknown is EIO instead.
  fs.call_changing<P>(
      req, dir->server, parent, 0, std::move(build),
      [&fs, req, parent, name, reply](typename sfs::fs::Reply<typename sfs::fs::ProcTraits<P>::Res> r,
                                      Clock::time_point sent) {
        Inode* d = fs.inodes().find(parent);
        if (!d) return (void)fuse_reply_err(req, ESTALE);
        if (r->status != SFS_NFS3_OK) {
          fs.note_wcc(*d, MakeResult<P>::fail(*r), sent);
          fs.change_failed(parent);
          return (void)fuse_reply_err(req, errno_of(r->status));
        }
        const sfs_CREATE3resok& ok = MakeResult<P>::ok(*r);
        fs.note_wcc(*d, ok.dir_wcc, sent);
        fuse_entry_param e;
        if (!ok.obj.handle_follows) {
          fs.change_failed(parent);  // made, but not known here
          return (void)fuse_reply_err(req, EIO);
        }
        if (!fs.make_entry(e, *d, name, FileClient::handle_of(ok.obj.sfs_post_op_fh3_u.handle), ok.obj_attributes,
                           sent))
          return (void)fuse_reply_err(req, EIO);
        if constexpr (P == SFS_NFSPROC3_MKDIR) {
          // Made empty just now: every name of it is known.
          if (Inode* made = fs.inodes().find(e.ino); made && made->entries_until > Clock::now()) {
            made->children.clear();
            made->negatives.clear();
            made->set_complete();
          }
        }
        reply(e);
      });
}
template void make_object<SFS_NFSPROC3_CREATE>(SfsFs&, fuse_req_t, fuse_ino_t, const std::string&,
                                               SfsFs::Build<SFS_NFSPROC3_CREATE>,
                                               std::function<void(fuse_entry_param&)>);

void SfsFs::mknod(fuse_req_t req, fuse_ino_t parent, const char* cname, mode_t mode, dev_t rdev) {
  const std::string name(cname);
  Inode* dir = inodes_.find(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  const Handle dfh = dir->fh;
  auto reply = [req](fuse_entry_param& e) { fuse_reply_entry(req, &e); };
  if (S_ISREG(mode)) {
    return make_object<SFS_NFSPROC3_CREATE>(
        *this, req, parent, name,
        [dfh, name, mode](sfs_CREATE3args& a) {
          a.where.dir = FileClient::wire(dfh);
          a.where.name = const_cast<char*>(name.c_str());
          a.how.mode = SFS_GUARDED;
          set_mode(a.how.sfs_createhow3_u.obj_attributes, mode);
        },
        reply);
  }
  sfs_ftype3 type;
  if (S_ISFIFO(mode)) type = SFS_NF3FIFO;
  else if (S_ISSOCK(mode)) type = SFS_NF3SOCK;
  else if (S_ISCHR(mode)) type = SFS_NF3CHR;
  else if (S_ISBLK(mode)) type = SFS_NF3BLK;
  else return (void)fuse_reply_err(req, EINVAL);
  make_object<SFS_NFSPROC3_MKNOD>(
      *this, req, parent, name,
      [dfh, name, mode, rdev, type](sfs_MKNOD3args& a) {
        a.where.dir = FileClient::wire(dfh);
        a.where.name = const_cast<char*>(name.c_str());
        a.what.type = type;
        if (type == SFS_NF3CHR || type == SFS_NF3BLK) {
          set_mode(a.what.sfs_mknoddata3_u.device.dev_attributes, mode);
          a.what.sfs_mknoddata3_u.device.spec = {major(rdev), minor(rdev)};
        } else {
          set_mode(a.what.sfs_mknoddata3_u.pipe_attributes, mode);
        }
      },
      reply);
}

void SfsFs::mkdir(fuse_req_t req, fuse_ino_t parent, const char* cname, mode_t mode) {
  const std::string name(cname);
  Inode* dir = inodes_.find(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  const Handle dfh = dir->fh;
  make_object<SFS_NFSPROC3_MKDIR>(
      *this, req, parent, name,
      [dfh, name, mode](sfs_MKDIR3args& a) {
        a.where.dir = FileClient::wire(dfh);
        a.where.name = const_cast<char*>(name.c_str());
        set_mode(a.attributes, mode);
      },
      [req](fuse_entry_param& e) { fuse_reply_entry(req, &e); });
}

void SfsFs::symlink(fuse_req_t req, const char* ctarget, fuse_ino_t parent, const char* cname) {
  const std::string name(cname), target(ctarget);
  if (target.size() > SFS_NFS3_MAXPATHLEN) return (void)fuse_reply_err(req, ENAMETOOLONG);
  Inode* dir = inodes_.find(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  const Handle dfh = dir->fh;
  make_object<SFS_NFSPROC3_SYMLINK>(
      *this, req, parent, name,
      [dfh, name, target](sfs_SYMLINK3args& a) {
        a.where.dir = FileClient::wire(dfh);
        a.where.name = const_cast<char*>(name.c_str());
        a.symlink.symlink_data = const_cast<char*>(target.c_str());
      },
      [req](fuse_entry_param& e) { fuse_reply_entry(req, &e); });
}

void SfsFs::link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* cname) {
  const std::string name(cname);
  if (name.size() > kNameMax) return (void)fuse_reply_err(req, ENAMETOOLONG);
  Inode* in = inodes_.find(ino);
  Inode* dir = inodes_.find(newparent);
  if (!in || !dir) return (void)fuse_reply_err(req, ESTALE);
  if (in->server != dir->server) return (void)fuse_reply_err(req, EXDEV);
  const Handle fh = in->fh, dfh = dir->fh;
  call_changing<SFS_NFSPROC3_LINK>(
      req, in->server, newparent, 0,
      [fh, dfh, name](sfs_LINK3args& a) {
        a.file = FileClient::wire(fh);
        a.link.dir = FileClient::wire(dfh);
        a.link.name = const_cast<char*>(name.c_str());
      },
      [this, req, ino, newparent, name, fh](sfs::fs::Reply<sfs_LINK3res> r, Clock::time_point sent) {
        Inode* d = inodes_.find(newparent);
        Inode* i = inodes_.find(ino);
        if (!d || !i) return (void)fuse_reply_err(req, ESTALE);
        auto& w = r->status == SFS_NFS3_OK ? r->sfs_LINK3res_u.resok : r->sfs_LINK3res_u.resfail;
        note_wcc(*d, w.linkdir_wcc, sent);
        if (r->status != SFS_NFS3_OK) {
          change_failed(newparent);
          return (void)fuse_reply_err(req, errno_of(r->status));
        }
        fuse_entry_param e;
        if (!make_entry(e, *d, name, fh, w.file_attributes, sent)) return (void)fuse_reply_err(req, EIO);
        fuse_reply_entry(req, &e);
      });
}

void SfsFs::unlink(fuse_req_t req, fuse_ino_t parent, const char* cname, bool is_dir) {
  const std::string name(cname);
  Inode* dir = inodes_.find(parent);
  if (!dir || parent == FUSE_ROOT_ID) return (void)fuse_reply_err(req, dir ? EPERM : ESTALE);
  if (name.size() > kNameMax) return (void)fuse_reply_err(req, ENAMETOOLONG);
  const Handle dfh = dir->fh;
  auto done = [this, req, parent, name](const sfs_wcc_data& wcc, sfs_nfsstat3 st, Clock::time_point sent) {
    Inode* d = inodes_.find(parent);
    if (!d) return (void)fuse_reply_err(req, ESTALE);
    note_wcc(*d, wcc, sent);
    if (st != SFS_NFS3_OK) {
      change_failed(parent);
      return (void)fuse_reply_err(req, errno_of(st));
    }
    // The object lost a link: its cached attributes are stale.
    auto it = d->children.find(name);
    if (it != d->children.end())
      if (Inode* child = inodes_.find(it->second)) {
        child->attr_until = Clock::time_point{};
        if (child->parent == parent && child->name == name) child->parent = 0;  // no path to it now
      }
    forget_name(*d, name);
    fuse_reply_err(req, 0);
  };
  if (is_dir) {
    call_changing<SFS_NFSPROC3_RMDIR>(
        req, dir->server, parent, 0,
        [dfh, name](sfs_RMDIR3args& a) {
          a.object.dir = FileClient::wire(dfh);
          a.object.name = const_cast<char*>(name.c_str());
        },
        [done](sfs::fs::Reply<sfs_RMDIR3res> r, Clock::time_point sent) {
          done(r->status == SFS_NFS3_OK ? r->sfs_RMDIR3res_u.resok.dir_wcc : r->sfs_RMDIR3res_u.resfail.dir_wcc,
               r->status, sent);
        });
  } else {
    call_changing<SFS_NFSPROC3_REMOVE>(
        req, dir->server, parent, 0,
        [dfh, name](sfs_REMOVE3args& a) {
          a.object.dir = FileClient::wire(dfh);
          a.object.name = const_cast<char*>(name.c_str());
        },
        [done](sfs::fs::Reply<sfs_REMOVE3res> r, Clock::time_point sent) {
          done(r->status == SFS_NFS3_OK ? r->sfs_REMOVE3res_u.resok.dir_wcc : r->sfs_REMOVE3res_u.resfail.dir_wcc,
               r->status, sent);
        });
  }
}

void SfsFs::rename(fuse_req_t req, fuse_ino_t parent, const char* cname, fuse_ino_t newparent,
                   const char* cnewname, unsigned flags) {
  // NFSv3 cannot exchange two names or refuse to replace atomically.
  if (flags) return (void)fuse_reply_err(req, EINVAL);
  const std::string name(cname), newname(cnewname);
  if (name.size() > kNameMax || newname.size() > kNameMax) return (void)fuse_reply_err(req, ENAMETOOLONG);
  Inode* from = inodes_.find(parent);
  Inode* to = inodes_.find(newparent);
  if (!from || !to) return (void)fuse_reply_err(req, ESTALE);
  if (parent == FUSE_ROOT_ID || newparent == FUSE_ROOT_ID) return (void)fuse_reply_err(req, EPERM);
  if (from->server != to->server) return (void)fuse_reply_err(req, EXDEV);
  const Handle ffh = from->fh, tfh = to->fh;
  // Lost with the connection (EIO): the server may have renamed or not.
  // The kernel kept both names as they were; make it ask again.
  auto unknown = [this, req, parent, newparent, name, newname](int err) {
    change_failed(parent);
    change_failed(newparent);
    if (driver_) {
      driver_->inval_entry(parent, name);
      driver_->inval_entry(newparent, newname);
    }
    fuse_reply_err(req, err);
  };
  call_as<SFS_NFSPROC3_RENAME>(
      fuse_req_ctx(req)->uid, from->server,
      [ffh, tfh, name, newname](sfs_RENAME3args& a) {
        a.from.dir = FileClient::wire(ffh);
        a.from.name = const_cast<char*>(name.c_str());
        a.to.dir = FileClient::wire(tfh);
        a.to.name = const_cast<char*>(newname.c_str());
      },
      [this, req, parent, newparent, name, newname](sfs::fs::Reply<sfs_RENAME3res> r, Clock::time_point sent) {
        Inode* f = inodes_.find(parent);
        Inode* t = inodes_.find(newparent);
        if (!f || !t) return (void)fuse_reply_err(req, ESTALE);
        auto& w = r->status == SFS_NFS3_OK ? r->sfs_RENAME3res_u.resok : r->sfs_RENAME3res_u.resfail;
        note_wcc(*f, w.fromdir_wcc, sent);
        note_wcc(*t, w.todir_wcc, sent);
        if (r->status != SFS_NFS3_OK) {
          change_failed(parent);
          change_failed(newparent);
          return (void)fuse_reply_err(req, errno_of(r->status));
        }
        auto it = f->children.find(name);
        const fuse_ino_t moved = it == f->children.end() ? 0 : it->second;
        if (auto old = t->children.find(newname); old != t->children.end())
          if (Inode* replaced = inodes_.find(old->second)) {
            replaced->attr_until = Clock::time_point{};
            if (replaced->parent == newparent && replaced->name == newname) replaced->parent = 0;
          }
        forget_name(*f, name);
        forget_name(*t, newname);
        if (moved) {
          if (Inode* m = inodes_.find(moved)) {
            m->attr_until = Clock::time_point{};  // ctime changed
            m->parent = newparent;
            m->name = newname;
          }
          // The kernel moves its entry to the new name and keeps it: note it
          // here too, so that a lost connection or an INVALIDATE of the
          // directory drops it (a forgotten one stayed, stale, after the
          // server renamed it away: tests/faults).
          t->children[newname] = moved;
        } else {
          t->forget_complete();  // the new name exists, but is not known here
        }
        fuse_reply_err(req, 0);
      },
      unknown, false);
}

void SfsFs::statfs(fuse_req_t req, fuse_ino_t ino) {
  Inode* in = inodes_.find(ino);
  ServerMount* s = in ? server(in->server) : nullptr;
  if (!s) {
    struct statvfs st {};
    st.f_bsize = st.f_frsize = 4096;
    st.f_namemax = kNameMax;
    return (void)fuse_reply_statfs(req, &st);
  }
  const Handle root = s->root().fh;
  call<SFS_NFSPROC3_FSSTAT>(
      req, in->server, [root](sfs_FSSTAT3args& a) { a.fsroot = FileClient::wire(root); },
      [req](sfs::fs::Reply<sfs_FSSTAT3res> r, Clock::time_point) {
        if (r->status != SFS_NFS3_OK) return (void)fuse_reply_err(req, errno_of(r->status));
        const auto& ok = r->sfs_FSSTAT3res_u.resok;
        struct statvfs st {};
        st.f_bsize = st.f_frsize = 4096;
        st.f_blocks = ok.tbytes / 4096;
        st.f_bfree = ok.fbytes / 4096;
        st.f_bavail = ok.abytes / 4096;
        st.f_files = ok.tfiles;
        st.f_ffree = ok.ffiles;
        st.f_favail = ok.afiles;
        st.f_namemax = kNameMax;
        fuse_reply_statfs(req, &st);
      });
}

}  // namespace sfsclient
