// procedures_read.cc: the NFSv3 procedures that only read (RFC 1813 section
// 3.3): GETATTR LOOKUP ACCESS READLINK READ READDIR READDIRPLUS FSSTAT FSINFO
// PATHCONF, as NfsClient methods. Each captures its arguments in C++ form
// (so that it can be encoded again after a reconnect) and decodes libnfs's
// reply into nfs.h's types. Reading twice is reading once, so all of them
// are resent after a lost connection (docs/nfs-backend.md).
//
// Reply sizes: libnfs 4.0 drops a connection whose reply exceeds 1 MiB +
// 4 KiB (and with it every call in flight), so READ counts and READDIR(PLUS)
// counts are capped at 1 MiB here; a short reply is legal NFS. A READ's
// count is also what it weighs against max_bytes_in_flight.
#include <algorithm>

#include "xdr_convert.h"

namespace asmp::nfs {

namespace {

constexpr bool kResend = true;
constexpr std::uint32_t kMaxReadCount = 1u << 20;
constexpr std::uint32_t kMaxReaddirCount = NfsClient::kMaxReaddirCount;

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
  auto call = make_call<ReadOk>(
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
      });
  call->cost_bytes = count;
  impl_->submit(std::move(call));
}

void NfsClient::readdir(const CallOptions& o, const FileHandle& dir, std::uint64_t cookie,
                        const Verifier& cookieverf, std::uint32_t count, Done<ReaddirOk> done) {
  count = std::min(count, kMaxReaddirCount);
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
  maxcount = std::min(maxcount, kMaxReaddirCount);
  dircount = std::min(dircount, maxcount);
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

}  // namespace asmp::nfs
