// procedures.cc: the NFSv3 procedures (RFC 1813 section 3.3) as NfsClient
// methods. Each one captures its arguments in C++ form (so that it can be
// encoded again after a reconnect), says whether a resend is safe, and
// decodes libnfs's reply into nfs.h's types.
//
// Resend policy (why, in docs/nfs-backend.md): a call that was in flight
// when the connection dropped is sent again after the reconnect if doing it
// twice has the same effect as doing it once:
//   always   GETATTR LOOKUP ACCESS READLINK READ READDIR READDIRPLUS FSSTAT
//            FSINFO PATHCONF COMMIT WRITE (same data at the same offset)
//   if       SETATTR without a ctime guard; CREATE in UNCHECKED or
//            EXCLUSIVE mode (the verifier makes the retry exact)
//   never    SETATTR with a guard, CREATE GUARDED, MKDIR SYMLINK MKNOD
//            REMOVE RMDIR RENAME LINK: a resend after success would report
//            EEXIST/ENOENT for an operation that in fact succeeded.
#include <algorithm>

#include "xdr_convert.h"

namespace asmp::nfs {

namespace {

constexpr bool kResend = true;
constexpr bool kNoResend = false;
constexpr std::uint32_t kMaxReadCount = 1u << 20;

// Decoders for the four reply shapes shared by several procedures.
Result<CreateOk> create_like(nfsstat3 status, const post_op_fh3* obj, const post_op_attr* attr,
                             const wcc_data& dir_wcc) {
  Result<CreateOk> r;
  if (status != NFS3_OK) r = xdr::nfs_error<CreateOk>(status);
  if (obj) r.value.fh = xdr::from(*obj);
  if (attr) r.value.attr = xdr::from(*attr);
  r.value.dir_wcc = xdr::from(dir_wcc);
  return r;
}

}  // namespace

void NfsClient::getattr(const CallOptions& o, const FileHandle& fh, Done<Attr> done) {
  impl_->submit(make_call<Attr>(
      "GETATTR", o, kResend, std::move(done),
      [fh](rpc_context* rpc, rpc_cb cb, void* priv) {
        GETATTR3args a;
        a.object = xdr::to(fh);
        return rpc_nfs3_getattr_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<GETATTR3res*>(reply);
        if (res->status != NFS3_OK) return xdr::nfs_error<Attr>(res->status);
        Result<Attr> r;
        r.value = xdr::from(res->GETATTR3res_u.resok.obj_attributes);
        return r;
      }));
}

void NfsClient::setattr(const CallOptions& o, const FileHandle& fh, const SetAttr& attr,
                        std::optional<Time> guard, Done<Wcc> done) {
  impl_->submit(make_call<Wcc>(
      "SETATTR", o, !guard.has_value(), std::move(done),
      [fh, attr, guard](rpc_context* rpc, rpc_cb cb, void* priv) {
        SETATTR3args a;
        std::memset(&a, 0, sizeof a);
        a.object = xdr::to(fh);
        a.new_attributes = xdr::to(attr);
        if (guard) {
          a.guard.check = 1;
          a.guard.sattrguard3_u.obj_ctime = xdr::to(*guard);
        }
        return rpc_nfs3_setattr_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<SETATTR3res*>(reply);
        Result<Wcc> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<Wcc>(res->status);
          r.value = xdr::from(res->SETATTR3res_u.resfail.obj_wcc);
        } else {
          r.value = xdr::from(res->SETATTR3res_u.resok.obj_wcc);
        }
        return r;
      }));
}

void NfsClient::lookup(const CallOptions& o, const FileHandle& dir, std::string_view name,
                       Done<LookupOk> done) {
  impl_->submit(make_call<LookupOk>(
      "LOOKUP", o, kResend, std::move(done),
      [dir, name = std::string(name)](rpc_context* rpc, rpc_cb cb, void* priv) {
        LOOKUP3args a;
        a.what = xdr::to(dir, name);
        return rpc_nfs3_lookup_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<LOOKUP3res*>(reply);
        Result<LookupOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<LookupOk>(res->status);
          r.value.dir_attr = xdr::from(res->LOOKUP3res_u.resfail.dir_attributes);
          return r;
        }
        const LOOKUP3resok& ok = res->LOOKUP3res_u.resok;
        r.value.fh = xdr::from(ok.object);
        r.value.attr = xdr::from(ok.obj_attributes);
        r.value.dir_attr = xdr::from(ok.dir_attributes);
        return r;
      }));
}

void NfsClient::access(const CallOptions& o, const FileHandle& fh, std::uint32_t bits,
                       Done<AccessOk> done) {
  impl_->submit(make_call<AccessOk>(
      "ACCESS", o, kResend, std::move(done),
      [fh, bits](rpc_context* rpc, rpc_cb cb, void* priv) {
        ACCESS3args a;
        a.object = xdr::to(fh);
        a.access = bits;
        return rpc_nfs3_access_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<ACCESS3res*>(reply);
        Result<AccessOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<AccessOk>(res->status);
          r.value.attr = xdr::from(res->ACCESS3res_u.resfail.obj_attributes);
          return r;
        }
        r.value.attr = xdr::from(res->ACCESS3res_u.resok.obj_attributes);
        r.value.access = res->ACCESS3res_u.resok.access;
        return r;
      }));
}

void NfsClient::readlink(const CallOptions& o, const FileHandle& fh, Done<ReadlinkOk> done) {
  impl_->submit(make_call<ReadlinkOk>(
      "READLINK", o, kResend, std::move(done),
      [fh](rpc_context* rpc, rpc_cb cb, void* priv) {
        READLINK3args a;
        a.symlink = xdr::to(fh);
        return rpc_nfs3_readlink_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<READLINK3res*>(reply);
        Result<ReadlinkOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<ReadlinkOk>(res->status);
          r.value.attr = xdr::from(res->READLINK3res_u.resfail.symlink_attributes);
          return r;
        }
        r.value.attr = xdr::from(res->READLINK3res_u.resok.symlink_attributes);
        if (res->READLINK3res_u.resok.data) r.value.target = res->READLINK3res_u.resok.data;
        return r;
      }));
}

void NfsClient::read(const CallOptions& o, const FileHandle& fh, std::uint64_t offset,
                     std::uint32_t count, Done<ReadOk> done, Buffer reuse) {
  // libnfs 4.0 drops a connection whose reply exceeds 1 MiB + 4 KiB; a
  // short read is legal NFS, a reconnect loop is not.
  count = std::min(count, kMaxReadCount);
  impl_->submit(make_call<ReadOk>(
      "READ", o, kResend, std::move(done),
      [fh, offset, count](rpc_context* rpc, rpc_cb cb, void* priv) {
        READ3args a;
        a.file = xdr::to(fh);
        a.offset = offset;
        a.count = count;
        return rpc_nfs3_read_async(rpc, cb, &a, priv);
      },
      [buf = std::move(reuse)](void* reply) mutable {
        auto* res = static_cast<READ3res*>(reply);
        Result<ReadOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<ReadOk>(res->status);
          r.value.attr = xdr::from(res->READ3res_u.resfail.file_attributes);
          return r;
        }
        const READ3resok& ok = res->READ3res_u.resok;
        r.value.attr = xdr::from(ok.file_attributes);
        r.value.count = ok.count;
        r.value.eof = ok.eof != 0;
        // The data points into libnfs's receive buffer, which is freed when
        // this returns: the one copy, into the caller's (reused) buffer.
        buf.resize(ok.data.data_len);
        if (ok.data.data_len) std::memcpy(buf.data(), ok.data.data_val, ok.data.data_len);
        r.value.data = std::move(buf);
        return r;
      }));
}

void NfsClient::write(const CallOptions& o, const FileHandle& fh, std::uint64_t offset,
                      Buffer data, StableHow stable, Done<WriteOk> done) {
  impl_->submit(make_call<WriteOk>(
      "WRITE", o, kResend, std::move(done),
      [fh, offset, data = std::move(data), stable](rpc_context* rpc, rpc_cb cb, void* priv) {
        WRITE3args a;
        a.file = xdr::to(fh);
        a.offset = offset;
        a.count = static_cast<count3>(data.size());
        a.stable = static_cast<stable_how>(stable);
        a.data.data_len = static_cast<u_int>(data.size());
        a.data.data_val = const_cast<char*>(reinterpret_cast<const char*>(data.data()));
        return rpc_nfs3_write_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<WRITE3res*>(reply);
        Result<WriteOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<WriteOk>(res->status);
          r.value.wcc = xdr::from(res->WRITE3res_u.resfail.file_wcc);
          return r;
        }
        const WRITE3resok& ok = res->WRITE3res_u.resok;
        r.value.wcc = xdr::from(ok.file_wcc);
        r.value.count = ok.count;
        r.value.committed = static_cast<StableHow>(ok.committed);
        r.value.verf = xdr::verifier(ok.verf);
        return r;
      }));
}

void NfsClient::create(const CallOptions& o, const FileHandle& dir, std::string_view name,
                       CreateMode mode, const SetAttr& attr, Verifier verf, Done<CreateOk> done) {
  impl_->submit(make_call<CreateOk>(
      "CREATE", o, mode != CreateMode::kGuarded, std::move(done),
      [dir, name = std::string(name), mode, attr, verf](rpc_context* rpc, rpc_cb cb, void* priv) {
        CREATE3args a;
        std::memset(&a, 0, sizeof a);
        a.where = xdr::to(dir, name);
        a.how.mode = static_cast<createmode3>(mode);
        if (mode == CreateMode::kExclusive) {
          std::memcpy(a.how.createhow3_u.verf, verf.data(), verf.size());
        } else {
          a.how.createhow3_u.obj_attributes = xdr::to(attr);
        }
        return rpc_nfs3_create_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<CREATE3res*>(reply);
        if (res->status != NFS3_OK)
          return create_like(res->status, nullptr, nullptr, res->CREATE3res_u.resfail.dir_wcc);
        const CREATE3resok& ok = res->CREATE3res_u.resok;
        return create_like(NFS3_OK, &ok.obj, &ok.obj_attributes, ok.dir_wcc);
      }));
}

void NfsClient::mkdir(const CallOptions& o, const FileHandle& dir, std::string_view name,
                      const SetAttr& attr, Done<CreateOk> done) {
  impl_->submit(make_call<CreateOk>(
      "MKDIR", o, kNoResend, std::move(done),
      [dir, name = std::string(name), attr](rpc_context* rpc, rpc_cb cb, void* priv) {
        MKDIR3args a;
        a.where = xdr::to(dir, name);
        a.attributes = xdr::to(attr);
        return rpc_nfs3_mkdir_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<MKDIR3res*>(reply);
        if (res->status != NFS3_OK)
          return create_like(res->status, nullptr, nullptr, res->MKDIR3res_u.resfail.dir_wcc);
        const MKDIR3resok& ok = res->MKDIR3res_u.resok;
        return create_like(NFS3_OK, &ok.obj, &ok.obj_attributes, ok.dir_wcc);
      }));
}

void NfsClient::symlink(const CallOptions& o, const FileHandle& dir, std::string_view name,
                        std::string_view target, const SetAttr& attr, Done<CreateOk> done) {
  impl_->submit(make_call<CreateOk>(
      "SYMLINK", o, kNoResend, std::move(done),
      [dir, name = std::string(name), target = std::string(target), attr](
          rpc_context* rpc, rpc_cb cb, void* priv) {
        SYMLINK3args a;
        a.where = xdr::to(dir, name);
        a.symlink.symlink_attributes = xdr::to(attr);
        a.symlink.symlink_data = xdr::to(target);
        return rpc_nfs3_symlink_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<SYMLINK3res*>(reply);
        if (res->status != NFS3_OK)
          return create_like(res->status, nullptr, nullptr, res->SYMLINK3res_u.resfail.dir_wcc);
        const SYMLINK3resok& ok = res->SYMLINK3res_u.resok;
        return create_like(NFS3_OK, &ok.obj, &ok.obj_attributes, ok.dir_wcc);
      }));
}

void NfsClient::mknod(const CallOptions& o, const FileHandle& dir, std::string_view name,
                      FileType type, const SetAttr& attr, std::uint32_t rdev_major,
                      std::uint32_t rdev_minor, Done<CreateOk> done) {
  impl_->submit(make_call<CreateOk>(
      "MKNOD", o, kNoResend, std::move(done),
      [dir, name = std::string(name), type, attr, rdev_major, rdev_minor](
          rpc_context* rpc, rpc_cb cb, void* priv) {
        MKNOD3args a;
        std::memset(&a, 0, sizeof a);
        a.where = xdr::to(dir, name);
        a.what.type = static_cast<ftype3>(type);
        switch (type) {
          case FileType::kChr:
            a.what.mknoddata3_u.chr_device.dev_attributes = xdr::to(attr);
            a.what.mknoddata3_u.chr_device.spec = {rdev_major, rdev_minor};
            break;
          case FileType::kBlk:
            a.what.mknoddata3_u.blk_device.dev_attributes = xdr::to(attr);
            a.what.mknoddata3_u.blk_device.spec = {rdev_major, rdev_minor};
            break;
          case FileType::kSock:
            a.what.mknoddata3_u.sock_attributes = xdr::to(attr);
            break;
          case FileType::kFifo:
            a.what.mknoddata3_u.pipe_attributes = xdr::to(attr);
            break;
          default:
            break;  // the server answers NFS3ERR_BADTYPE
        }
        return rpc_nfs3_mknod_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<MKNOD3res*>(reply);
        if (res->status != NFS3_OK)
          return create_like(res->status, nullptr, nullptr, res->MKNOD3res_u.resfail.dir_wcc);
        const MKNOD3resok& ok = res->MKNOD3res_u.resok;
        return create_like(NFS3_OK, &ok.obj, &ok.obj_attributes, ok.dir_wcc);
      }));
}

void NfsClient::remove(const CallOptions& o, const FileHandle& dir, std::string_view name,
                       Done<Wcc> done) {
  impl_->submit(make_call<Wcc>(
      "REMOVE", o, kNoResend, std::move(done),
      [dir, name = std::string(name)](rpc_context* rpc, rpc_cb cb, void* priv) {
        REMOVE3args a;
        a.object = xdr::to(dir, name);
        return rpc_nfs3_remove_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<REMOVE3res*>(reply);
        Result<Wcc> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<Wcc>(res->status);
          r.value = xdr::from(res->REMOVE3res_u.resfail.dir_wcc);
        } else {
          r.value = xdr::from(res->REMOVE3res_u.resok.dir_wcc);
        }
        return r;
      }));
}

void NfsClient::rmdir(const CallOptions& o, const FileHandle& dir, std::string_view name,
                      Done<Wcc> done) {
  impl_->submit(make_call<Wcc>(
      "RMDIR", o, kNoResend, std::move(done),
      [dir, name = std::string(name)](rpc_context* rpc, rpc_cb cb, void* priv) {
        RMDIR3args a;
        a.object = xdr::to(dir, name);
        return rpc_nfs3_rmdir_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<RMDIR3res*>(reply);
        Result<Wcc> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<Wcc>(res->status);
          r.value = xdr::from(res->RMDIR3res_u.resfail.dir_wcc);
        } else {
          r.value = xdr::from(res->RMDIR3res_u.resok.dir_wcc);
        }
        return r;
      }));
}

void NfsClient::rename(const CallOptions& o, const FileHandle& from_dir,
                       std::string_view from_name, const FileHandle& to_dir,
                       std::string_view to_name, Done<RenameOk> done) {
  impl_->submit(make_call<RenameOk>(
      "RENAME", o, kNoResend, std::move(done),
      [from_dir, from = std::string(from_name), to_dir, to = std::string(to_name)](
          rpc_context* rpc, rpc_cb cb, void* priv) {
        RENAME3args a;
        a.from = xdr::to(from_dir, from);
        a.to = xdr::to(to_dir, to);
        return rpc_nfs3_rename_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<RENAME3res*>(reply);
        Result<RenameOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<RenameOk>(res->status);
          r.value.from_dir_wcc = xdr::from(res->RENAME3res_u.resfail.fromdir_wcc);
          r.value.to_dir_wcc = xdr::from(res->RENAME3res_u.resfail.todir_wcc);
        } else {
          r.value.from_dir_wcc = xdr::from(res->RENAME3res_u.resok.fromdir_wcc);
          r.value.to_dir_wcc = xdr::from(res->RENAME3res_u.resok.todir_wcc);
        }
        return r;
      }));
}

void NfsClient::link(const CallOptions& o, const FileHandle& fh, const FileHandle& dir,
                     std::string_view name, Done<LinkOk> done) {
  impl_->submit(make_call<LinkOk>(
      "LINK", o, kNoResend, std::move(done),
      [fh, dir, name = std::string(name)](rpc_context* rpc, rpc_cb cb, void* priv) {
        LINK3args a;
        a.file = xdr::to(fh);
        a.link = xdr::to(dir, name);
        return rpc_nfs3_link_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<LINK3res*>(reply);
        Result<LinkOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<LinkOk>(res->status);
          r.value.attr = xdr::from(res->LINK3res_u.resfail.file_attributes);
          r.value.dir_wcc = xdr::from(res->LINK3res_u.resfail.linkdir_wcc);
        } else {
          r.value.attr = xdr::from(res->LINK3res_u.resok.file_attributes);
          r.value.dir_wcc = xdr::from(res->LINK3res_u.resok.linkdir_wcc);
        }
        return r;
      }));
}

void NfsClient::readdir(const CallOptions& o, const FileHandle& dir, std::uint64_t cookie,
                        const Verifier& cookieverf, std::uint32_t count, Done<ReaddirOk> done) {
  impl_->submit(make_call<ReaddirOk>(
      "READDIR", o, kResend, std::move(done),
      [dir, cookie, cookieverf, count](rpc_context* rpc, rpc_cb cb, void* priv) {
        READDIR3args a;
        a.dir = xdr::to(dir);
        a.cookie = cookie;
        std::memcpy(a.cookieverf, cookieverf.data(), cookieverf.size());
        a.count = count;
        return rpc_nfs3_readdir_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<READDIR3res*>(reply);
        Result<ReaddirOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<ReaddirOk>(res->status);
          r.value.dir_attr = xdr::from(res->READDIR3res_u.resfail.dir_attributes);
          return r;
        }
        const READDIR3resok& ok = res->READDIR3res_u.resok;
        r.value.dir_attr = xdr::from(ok.dir_attributes);
        r.value.cookieverf = xdr::verifier(ok.cookieverf);
        r.value.eof = ok.reply.eof != 0;
        for (const entry3* p = ok.reply.entries; p;) {
          entry3 e = xdr::load(p);
          DirEntry d;
          d.fileid = e.fileid;
          d.name = e.name ? e.name : "";
          d.cookie = e.cookie;
          r.value.entries.push_back(std::move(d));
          p = e.nextentry;
        }
        return r;
      }));
}

void NfsClient::readdirplus(const CallOptions& o, const FileHandle& dir, std::uint64_t cookie,
                            const Verifier& cookieverf, std::uint32_t dircount,
                            std::uint32_t maxcount, Done<ReaddirOk> done) {
  impl_->submit(make_call<ReaddirOk>(
      "READDIRPLUS", o, kResend, std::move(done),
      [dir, cookie, cookieverf, dircount, maxcount](rpc_context* rpc, rpc_cb cb, void* priv) {
        READDIRPLUS3args a;
        a.dir = xdr::to(dir);
        a.cookie = cookie;
        std::memcpy(a.cookieverf, cookieverf.data(), cookieverf.size());
        a.dircount = dircount;
        a.maxcount = maxcount;
        return rpc_nfs3_readdirplus_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<READDIRPLUS3res*>(reply);
        Result<ReaddirOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<ReaddirOk>(res->status);
          r.value.dir_attr = xdr::from(res->READDIRPLUS3res_u.resfail.dir_attributes);
          return r;
        }
        const READDIRPLUS3resok& ok = res->READDIRPLUS3res_u.resok;
        r.value.dir_attr = xdr::from(ok.dir_attributes);
        r.value.cookieverf = xdr::verifier(ok.cookieverf);
        r.value.eof = ok.reply.eof != 0;
        for (const entryplus3* p = ok.reply.entries; p;) {
          entryplus3 e = xdr::load(p);
          DirEntry d;
          d.fileid = e.fileid;
          d.name = e.name ? e.name : "";
          d.cookie = e.cookie;
          d.attr = xdr::from(e.name_attributes);
          d.fh = xdr::from(e.name_handle);
          r.value.entries.push_back(std::move(d));
          p = e.nextentry;
        }
        return r;
      }));
}

void NfsClient::fsstat(const CallOptions& o, const FileHandle& root, Done<FsstatOk> done) {
  impl_->submit(make_call<FsstatOk>(
      "FSSTAT", o, kResend, std::move(done),
      [root](rpc_context* rpc, rpc_cb cb, void* priv) {
        FSSTAT3args a;
        a.fsroot = xdr::to(root);
        return rpc_nfs3_fsstat_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<FSSTAT3res*>(reply);
        Result<FsstatOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<FsstatOk>(res->status);
          r.value.attr = xdr::from(res->FSSTAT3res_u.resfail.obj_attributes);
          return r;
        }
        const FSSTAT3resok& ok = res->FSSTAT3res_u.resok;
        r.value.attr = xdr::from(ok.obj_attributes);
        r.value.tbytes = ok.tbytes;
        r.value.fbytes = ok.fbytes;
        r.value.abytes = ok.abytes;
        r.value.tfiles = ok.tfiles;
        r.value.ffiles = ok.ffiles;
        r.value.afiles = ok.afiles;
        r.value.invarsec = ok.invarsec;
        return r;
      }));
}

void NfsClient::fsinfo(const CallOptions& o, const FileHandle& root, Done<FsinfoOk> done) {
  impl_->submit(make_call<FsinfoOk>(
      "FSINFO", o, kResend, std::move(done),
      [root](rpc_context* rpc, rpc_cb cb, void* priv) {
        FSINFO3args a;
        a.fsroot = xdr::to(root);
        return rpc_nfs3_fsinfo_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<FSINFO3res*>(reply);
        Result<FsinfoOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<FsinfoOk>(res->status);
          r.value.attr = xdr::from(res->FSINFO3res_u.resfail.obj_attributes);
          return r;
        }
        const FSINFO3resok& ok = res->FSINFO3res_u.resok;
        r.value.attr = xdr::from(ok.obj_attributes);
        r.value.rtmax = ok.rtmax;
        r.value.rtpref = ok.rtpref;
        r.value.rtmult = ok.rtmult;
        r.value.wtmax = ok.wtmax;
        r.value.wtpref = ok.wtpref;
        r.value.wtmult = ok.wtmult;
        r.value.dtpref = ok.dtpref;
        r.value.maxfilesize = ok.maxfilesize;
        r.value.time_delta = xdr::from(ok.time_delta);
        r.value.properties = ok.properties;
        return r;
      }));
}

void NfsClient::pathconf(const CallOptions& o, const FileHandle& fh, Done<PathconfOk> done) {
  impl_->submit(make_call<PathconfOk>(
      "PATHCONF", o, kResend, std::move(done),
      [fh](rpc_context* rpc, rpc_cb cb, void* priv) {
        PATHCONF3args a;
        a.object = xdr::to(fh);
        return rpc_nfs3_pathconf_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<PATHCONF3res*>(reply);
        Result<PathconfOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<PathconfOk>(res->status);
          r.value.attr = xdr::from(res->PATHCONF3res_u.resfail.obj_attributes);
          return r;
        }
        const PATHCONF3resok& ok = res->PATHCONF3res_u.resok;
        r.value.attr = xdr::from(ok.obj_attributes);
        r.value.linkmax = ok.linkmax;
        r.value.name_max = ok.name_max;
        r.value.no_trunc = ok.no_trunc != 0;
        r.value.chown_restricted = ok.chown_restricted != 0;
        r.value.case_insensitive = ok.case_insensitive != 0;
        r.value.case_preserving = ok.case_preserving != 0;
        return r;
      }));
}

void NfsClient::commit(const CallOptions& o, const FileHandle& fh, std::uint64_t offset,
                       std::uint32_t count, Done<CommitOk> done) {
  impl_->submit(make_call<CommitOk>(
      "COMMIT", o, kResend, std::move(done),
      [fh, offset, count](rpc_context* rpc, rpc_cb cb, void* priv) {
        COMMIT3args a;
        a.file = xdr::to(fh);
        a.offset = offset;
        a.count = count;
        return rpc_nfs3_commit_async(rpc, cb, &a, priv);
      },
      [](void* reply) {
        auto* res = static_cast<COMMIT3res*>(reply);
        Result<CommitOk> r;
        if (res->status != NFS3_OK) {
          r = xdr::nfs_error<CommitOk>(res->status);
          r.value.wcc = xdr::from(res->COMMIT3res_u.resfail.file_wcc);
          return r;
        }
        r.value.wcc = xdr::from(res->COMMIT3res_u.resok.file_wcc);
        r.value.verf = xdr::verifier(res->COMMIT3res_u.resok.verf);
        return r;
      }));
}

}  // namespace asmp::nfs
