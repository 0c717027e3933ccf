// procedures_write.cc: the NFSv3 procedures that change something (RFC 1813
// section 3.3): SETATTR WRITE CREATE MKDIR SYMLINK MKNOD REMOVE RMDIR RENAME
// LINK COMMIT, as NfsClient methods. Each captures its arguments in C++ form
// (so that it can be encoded again after a reconnect), says whether a
// resend is safe, and decodes libnfs's reply into nfs.h's types. A WRITE's
// data size is what it weighs against max_bytes_in_flight.
//
// Resend policy (why, in docs/nfs-backend.md): a call that was in flight
// when the connection dropped is sent again after the reconnect if doing it
// twice has the same effect as doing it once:
//   always   WRITE (same data at the same offset), COMMIT
//   if       SETATTR without a ctime guard; CREATE in EXCLUSIVE mode (the
//            verifier makes the retry exact)
//   never    SETATTR with a guard, CREATE UNCHECKED or GUARDED, MKDIR
//            SYMLINK MKNOD REMOVE RMDIR RENAME LINK: a resend after success
//            would report EEXIST/ENOENT for an operation that in fact
//            succeeded, or (UNCHECKED) truncate and re-mode a file that
//            others may have written to in between. These fail with
//            kConnectionLost: outcome unknown.
#include <algorithm>

#include "xdr_convert.h"

namespace asmp::nfs {

namespace {

constexpr bool kResend = true;
constexpr bool kNoResend = false;

// The reply of CREATE, MKDIR, SYMLINK and MKNOD.
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

void NfsClient::write(const CallOptions& o, const FileHandle& fh, std::uint64_t offset,
                      WriteData data, StableHow stable, Done<WriteOk> done) {
  const std::uint64_t bytes = data.size();
  auto call = make_call<WriteOk>(
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
      });
  call->cost_bytes = bytes;
  impl_->submit(std::move(call));
}

void NfsClient::create(const CallOptions& o, const FileHandle& dir, std::string_view name,
                       CreateMode mode, const SetAttr& attr, Verifier verf, Done<CreateOk> done) {
  impl_->submit(make_call<CreateOk>(
      "CREATE", o, mode == CreateMode::kExclusive, std::move(done),
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
