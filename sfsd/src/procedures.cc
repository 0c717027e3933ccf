// procedures.cc: one function per SFS_NFS procedure. Each runs on color 0:
// it reads the call's arguments (whose handles prepare() already opened),
// calls the backend with the caller's credentials, and in the completion
// (color 0 again) fills the reply: attributes with their change number and
// lease, backend handles to be sealed on the way out; a change first
// invalidates the other lease holders (changed()).
#include <algorithm>
#include <cstring>

#include "file_server_internal.h"

namespace sfsd {

namespace {

using sfs::fs::fill_post_op;

// Largest directory reply asked of the backend: libnfs drops a connection
// whose reply exceeds ~1 MiB, and a directory reply grows here (longer
// handles, lease fields), so keep well under.
constexpr std::uint32_t kMaxDirBackend = 256 * 1024;
constexpr std::uint32_t kMinDir = 1024;

std::string_view name_of(const char* n) { return n ? std::string_view(n) : std::string_view(); }

// A change may have happened unless the backend said plainly that it did not.
bool maybe_changed(const nfs::Error& e) { return e.failure != nfs::Failure::kNfs; }

template <class T>
std::shared_ptr<void> keep(T value) {
  return std::make_shared<T>(std::move(value));
}

void copy_verf(char* out, const nfs::Verifier& v) { std::memcpy(out, v.data(), v.size()); }
nfs::Verifier verf_of(const char* in) {
  nfs::Verifier v;
  std::memcpy(v.data(), in, v.size());
  return v;
}

}  // namespace

void FileServer::do_null(const std::shared_ptr<Req>& r) {
  rt_.cpucb(asmp::Closure([r] { r->call.reply(nullptr); }, r->call.color()));
}

void FileServer::do_getattr(const std::shared_ptr<Req>& r) {
  const nfs::FileHandle fh = fh_of(r->call.args<sfs_GETATTR3args>()->object);
  backend_->getattr(r->cred, fh, on_shared<nfs::Attr>([this, r, fh](nfs::Result<nfs::Attr> res) {
    auto out = std::make_shared<ReplyOf<sfs_GETATTR3res>>();
    out->res.status = status_of(res.error, false);
    if (res.ok())
      sfs::fs::fill_fattr(out->res.sfs_GETATTR3res_u.resok.obj_attributes, res.value, r->sample,
                          lease_for(*r, fh));
    send(r, out);
  }));
}

void FileServer::do_setattr(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_SETATTR3args>();
  const nfs::FileHandle fh = fh_of(a->object);
  std::optional<nfs::Time> guard;
  if (a->guard.check) guard = sfs::fs::from_time(a->guard.sfs_sattrguard3_u.obj_ctime);
  backend_->setattr(r->cred, fh, sfs::fs::from_sattr(a->new_attributes), guard,
                    on_shared<nfs::Wcc>([this, r, fh](nfs::Result<nfs::Wcc> res) {
                      auto out = std::make_shared<ReplyOf<sfs_SETATTR3res>>();
                      out->res.status = status_of(res.error, true);
                      wcc(res.ok() ? out->res.sfs_SETATTR3res_u.resok.obj_wcc
                                   : out->res.sfs_SETATTR3res_u.resfail.obj_wcc,
                          *r, fh, res.value);
                      if (!maybe_changed(res.error)) return send(r, out);
                      changed(r, {fh}, [this, r, out] { send(r, out); });
                    }));
}

void FileServer::do_lookup(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_LOOKUP3args>();
  const nfs::FileHandle dir = fh_of(a->what.dir);
  const std::string_view name = name_of(a->what.name);
  auto done = on_shared<nfs::LookupOk>([this, r, dir](nfs::Result<nfs::LookupOk> res) {
    auto out = std::make_shared<ReplyOf<sfs_LOOKUP3res>>();
    out->res.status = status_of(res.error, false);
    if (res.ok()) {
      auto& ok = out->res.sfs_LOOKUP3res_u.resok;
      out->handles.emplace_back(&ok.object, res.value.fh);
      post_op(ok.obj_attributes, *r, res.value.fh, res.value.attr);
      post_op(ok.dir_attributes, *r, dir, res.value.dir_attr);
    } else {
      post_op(out->res.sfs_LOOKUP3res_u.resfail.dir_attributes, *r, dir, res.value.dir_attr);
    }
    send(r, out);
  });
  if (name == ".." && dir == root_) {
    // The export's root has no parent the client may see: ".." there is the
    // root itself, whatever the backend would answer.
    backend_->getattr(r->cred, root_,
                      on_shared<nfs::Attr>([this, done = std::move(done)](nfs::Result<nfs::Attr> attr) mutable {
                        nfs::Result<nfs::LookupOk> res;
                        res.error = attr.error;
                        res.value.fh = root_;
                        if (attr.ok()) res.value.attr = res.value.dir_attr = attr.value;
                        done(std::move(res));
                      }));
    return;
  }
  backend_->lookup(r->cred, dir, name, std::move(done));
}

void FileServer::do_access(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_ACCESS3args>();
  const nfs::FileHandle fh = fh_of(a->object);
  backend_->access(r->cred, fh, a->access,
                   on_shared<nfs::AccessOk>([this, r, fh](nfs::Result<nfs::AccessOk> res) {
                     auto out = std::make_shared<ReplyOf<sfs_ACCESS3res>>();
                     out->res.status = status_of(res.error, false);
                     if (res.ok()) {
                       post_op(out->res.sfs_ACCESS3res_u.resok.obj_attributes, *r, fh, res.value.attr);
                       out->res.sfs_ACCESS3res_u.resok.access = res.value.access;
                     } else {
                       post_op(out->res.sfs_ACCESS3res_u.resfail.obj_attributes, *r, fh, res.value.attr);
                     }
                     send(r, out);
                   }));
}

void FileServer::do_readlink(const std::shared_ptr<Req>& r) {
  const nfs::FileHandle fh = fh_of(r->call.args<sfs_READLINK3args>()->symlink);
  backend_->readlink(r->cred, fh, on_shared<nfs::ReadlinkOk>([this, r, fh](nfs::Result<nfs::ReadlinkOk> res) {
    auto out = std::make_shared<ReplyOf<sfs_READLINK3res>>();
    out->res.status = status_of(res.error, false);
    if (res.ok()) {
      auto& ok = out->res.sfs_READLINK3res_u.resok;
      post_op(ok.symlink_attributes, *r, fh, res.value.attr);
      auto target = std::make_shared<std::string>(std::move(res.value.target));
      ok.data = target->data();
      out->keep.push_back(target);
    } else {
      post_op(out->res.sfs_READLINK3res_u.resfail.symlink_attributes, *r, fh, res.value.attr);
    }
    send(r, out);
  }));
}

void FileServer::do_write(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<WriteArgs>();
  if (a->count != a->data.len) return send_status(r, SFS_NFS3ERR_INVAL);
  // Any number decodes as stable_how (sfs::fs::wire_value); the backend
  // gets only RFC 1813's three.
  const std::uint32_t stable = sfs::fs::wire_value(a->stable);
  if (stable > SFS_FILE_SYNC) return send_status(r, SFS_NFS3ERR_INVAL);
  const nfs::FileHandle fh = fh_of(a->file);
  // A view into the call's record, kept by r (which holds the Call) until
  // the backend's WRITE is done.
  nfs::WriteData data(std::as_bytes(std::span<const char>(a->data.data, a->data.len)), r);
  backend_->write(r->cred, fh, a->offset, std::move(data), static_cast<nfs::StableHow>(stable),
                  on_shared<nfs::WriteOk>([this, r, fh](nfs::Result<nfs::WriteOk> res) {
                    auto out = std::make_shared<ReplyOf<sfs_WRITE3res>>();
                    out->res.status = status_of(res.error, true);
                    if (res.ok()) {
                      auto& ok = out->res.sfs_WRITE3res_u.resok;
                      wcc(ok.file_wcc, *r, fh, res.value.wcc);
                      ok.count = res.value.count;
                      ok.committed = static_cast<sfs_stable_how>(res.value.committed);
                      copy_verf(ok.verf, client_verifier(res.value.verf));
                    } else {
                      wcc(out->res.sfs_WRITE3res_u.resfail.file_wcc, *r, fh, res.value.wcc);
                    }
                    if (!maybe_changed(res.error)) return send(r, out);
                    changed(r, {fh}, [this, r, out] { send(r, out); });
                  }));
}

void FileServer::finish_create(const std::shared_ptr<Req>& r, const nfs::FileHandle& dir,
                               nfs::Result<nfs::CreateOk> res) {
  // CREATE, MKDIR, SYMLINK and MKNOD results share one layout.
  auto out = std::make_shared<ReplyOf<sfs_CREATE3res>>();
  out->res.status = status_of(res.error, true);
  if (res.ok()) {
    auto& ok = out->res.sfs_CREATE3res_u.resok;
    ok.obj.handle_follows = res.value.fh.has_value();
    if (res.value.fh) {
      out->handles.emplace_back(&ok.obj.sfs_post_op_fh3_u.handle, *res.value.fh);
      post_op(ok.obj_attributes, *r, *res.value.fh, res.value.attr);
    }
    wcc(ok.dir_wcc, *r, dir, res.value.dir_wcc);
  } else {
    wcc(out->res.sfs_CREATE3res_u.resfail.dir_wcc, *r, dir, res.value.dir_wcc);
  }
  if (!maybe_changed(res.error)) return send(r, out);
  changed(r, {dir}, [this, r, out] { send(r, out); });
}

void FileServer::do_create(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_CREATE3args>();
  const nfs::FileHandle dir = fh_of(a->where.dir);
  const auto mode = static_cast<nfs::CreateMode>(a->how.mode);
  nfs::SetAttr attr;
  nfs::Verifier verf{};
  if (mode == nfs::CreateMode::kExclusive) verf = verf_of(a->how.sfs_createhow3_u.verf);
  else attr = sfs::fs::from_sattr(a->how.sfs_createhow3_u.obj_attributes);
  backend_->create(r->cred, dir, name_of(a->where.name), mode, attr, verf,
                   on_shared<nfs::CreateOk>([this, r, dir](nfs::Result<nfs::CreateOk> res) {
                     finish_create(r, dir, std::move(res));
                   }));
}

void FileServer::do_mkdir(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_MKDIR3args>();
  const nfs::FileHandle dir = fh_of(a->where.dir);
  backend_->mkdir(r->cred, dir, name_of(a->where.name), sfs::fs::from_sattr(a->attributes),
                  on_shared<nfs::CreateOk>([this, r, dir](nfs::Result<nfs::CreateOk> res) {
                    finish_create(r, dir, std::move(res));
                  }));
}

void FileServer::do_symlink(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_SYMLINK3args>();
  const nfs::FileHandle dir = fh_of(a->where.dir);
  backend_->symlink(r->cred, dir, name_of(a->where.name), name_of(a->symlink.symlink_data),
                    sfs::fs::from_sattr(a->symlink.symlink_attributes),
                    on_shared<nfs::CreateOk>([this, r, dir](nfs::Result<nfs::CreateOk> res) {
                      finish_create(r, dir, std::move(res));
                    }));
}

void FileServer::do_mknod(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_MKNOD3args>();
  const nfs::FileHandle dir = fh_of(a->where.dir);
  // Any number decodes here (the union's default arm): read it as one.
  const std::uint32_t wire_type = sfs::fs::wire_value(a->what.type);
  const auto type = static_cast<nfs::FileType>(wire_type);
  nfs::SetAttr attr;
  std::uint32_t major = 0, minor = 0;
  switch (wire_type) {
    case SFS_NF3CHR:
    case SFS_NF3BLK:
      attr = sfs::fs::from_sattr(a->what.sfs_mknoddata3_u.device.dev_attributes);
      major = a->what.sfs_mknoddata3_u.device.spec.specdata1;
      minor = a->what.sfs_mknoddata3_u.device.spec.specdata2;
      break;
    case SFS_NF3SOCK:
    case SFS_NF3FIFO:
      attr = sfs::fs::from_sattr(a->what.sfs_mknoddata3_u.pipe_attributes);
      break;
    default:
      return send_status(r, SFS_NFS3ERR_BADTYPE);
  }
  backend_->mknod(r->cred, dir, name_of(a->where.name), type, attr, major, minor,
                  on_shared<nfs::CreateOk>([this, r, dir](nfs::Result<nfs::CreateOk> res) {
                    finish_create(r, dir, std::move(res));
                  }));
}

void FileServer::do_remove(const std::shared_ptr<Req>& r, bool is_dir) {
  const sfs_diropargs3& what = is_dir ? r->call.args<sfs_RMDIR3args>()->object
                                      : r->call.args<sfs_REMOVE3args>()->object;
  const nfs::FileHandle dir = fh_of(what.dir);
  const std::string name(name_of(what.name));
  // The object loses a link (its attributes change): find its handle first
  // when another connection may hold a lease on it.
  auto remove = [this, r, dir, name, is_dir](nfs::FileHandle object) {
    auto done = on_shared<nfs::Wcc>([this, r, dir, object](nfs::Result<nfs::Wcc> res) {
      auto out = std::make_shared<ReplyOf<sfs_REMOVE3res>>();
      out->res.status = status_of(res.error, true);
      wcc(res.ok() ? out->res.sfs_REMOVE3res_u.resok.dir_wcc : out->res.sfs_REMOVE3res_u.resfail.dir_wcc,
          *r, dir, res.value);
      if (!maybe_changed(res.error)) return send(r, out);
      changed(r, {dir, object}, [this, r, out] { send(r, out); });
    });
    if (is_dir) backend_->rmdir(r->cred, dir, name, std::move(done));
    else backend_->remove(r->cred, dir, name, std::move(done));
  };
  if (!leases_.others_hold_any(r->conn)) return remove({});
  backend_->lookup(r->cred, dir, name,
                   on_shared<nfs::LookupOk>([remove](nfs::Result<nfs::LookupOk> l) {
                     remove(l.ok() ? l.value.fh : nfs::FileHandle());
                   }));
}

void FileServer::do_rename(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_RENAME3args>();
  const nfs::FileHandle from_dir = fh_of(a->from.dir), to_dir = fh_of(a->to.dir);
  const std::string from_name(name_of(a->from.name)), to_name(name_of(a->to.name));
  // The moved object (ctime, and ".." for a directory) and a replaced
  // target (a link fewer) change too: look them up first when another
  // connection may hold leases.
  auto rename = [this, r, from_dir, to_dir, from_name, to_name](std::vector<nfs::FileHandle> objects) {
    backend_->rename(
        r->cred, from_dir, from_name, to_dir, to_name,
        on_shared<nfs::RenameOk>([this, r, from_dir, to_dir, objects](nfs::Result<nfs::RenameOk> res) {
          auto out = std::make_shared<ReplyOf<sfs_RENAME3res>>();
          out->res.status = status_of(res.error, true);
          auto& w = res.ok() ? out->res.sfs_RENAME3res_u.resok : out->res.sfs_RENAME3res_u.resfail;
          wcc(w.fromdir_wcc, *r, from_dir, res.value.from_dir_wcc);
          wcc(w.todir_wcc, *r, to_dir, res.value.to_dir_wcc);
          if (!maybe_changed(res.error)) return send(r, out);
          std::vector<nfs::FileHandle> affected = objects;
          affected.push_back(from_dir);
          if (!(to_dir == from_dir)) affected.push_back(to_dir);
          changed(r, affected, [this, r, out] { send(r, out); });
        }));
  };
  if (!leases_.others_hold_any(r->conn)) return rename({});
  auto found = std::make_shared<std::vector<nfs::FileHandle>>();
  backend_->lookup(
      r->cred, from_dir, from_name,
      on_shared<nfs::LookupOk>([this, r, to_dir, to_name, found, rename](nfs::Result<nfs::LookupOk> l) {
        if (l.ok()) found->push_back(l.value.fh);
        backend_->lookup(r->cred, to_dir, to_name,
                         on_shared<nfs::LookupOk>([found, rename](nfs::Result<nfs::LookupOk> t) {
                           if (t.ok()) found->push_back(t.value.fh);
                           rename(*found);
                         }));
      }));
}

void FileServer::do_link(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_LINK3args>();
  const nfs::FileHandle fh = fh_of(a->file), dir = fh_of(a->link.dir);
  backend_->link(r->cred, fh, dir, name_of(a->link.name),
                 on_shared<nfs::LinkOk>([this, r, fh, dir](nfs::Result<nfs::LinkOk> res) {
                   auto out = std::make_shared<ReplyOf<sfs_LINK3res>>();
                   out->res.status = status_of(res.error, true);
                   auto& w = res.ok() ? out->res.sfs_LINK3res_u.resok : out->res.sfs_LINK3res_u.resfail;
                   post_op(w.file_attributes, *r, fh, res.value.attr);
                   wcc(w.linkdir_wcc, *r, dir, res.value.dir_wcc);
                   if (!maybe_changed(res.error)) return send(r, out);
                   changed(r, {fh, dir}, [this, r, out] { send(r, out); });
                 }));
}

void FileServer::do_readdir(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_READDIR3args>();
  const nfs::FileHandle dir = fh_of(a->dir);
  const std::uint32_t count = std::clamp<std::uint32_t>(a->count, kMinDir, kMaxData);
  backend_->readdir(
      r->cred, dir, a->cookie, verf_of(a->cookieverf), std::min(count, kMaxDirBackend),
      on_shared<nfs::ReaddirOk>([this, r, dir, count](nfs::Result<nfs::ReaddirOk> res) {
        auto out = std::make_shared<ReplyOf<sfs_READDIR3res>>();
        out->res.status = status_of(res.error, false);
        if (!res.ok()) {
          post_op(out->res.sfs_READDIR3res_u.resfail.dir_attributes, *r, dir, res.value.dir_attr);
          return send(r, out);
        }
        auto& ok = out->res.sfs_READDIR3res_u.resok;
        post_op(ok.dir_attributes, *r, dir, res.value.dir_attr);
        copy_verf(ok.cookieverf, res.value.cookieverf);
        auto kept = std::make_shared<nfs::ReaddirOk>(std::move(res.value));
        out->keep.push_back(kept);
        // Keep the reply within the client's count: status, attributes,
        // verifier, the end-of-list word and eof, then whole entries.
        std::size_t size = 4 + sfs::fs::kPostOpAttrSize + 8 + 4 + 4;
        auto entries = std::make_shared<std::vector<sfs_entry3>>();
        entries->reserve(kept->entries.size());
        bool eof = kept->eof;
        for (const nfs::DirEntry& e : kept->entries) {
          size += sfs::fs::entry_size(e.name.size());
          if (size > count) {
            eof = false;
            break;
          }
          sfs_entry3 x{};
          x.fileid = e.fileid;
          x.name = const_cast<char*>(e.name.c_str());
          x.cookie = e.cookie;
          entries->push_back(x);
        }
        if (entries->empty() && !kept->entries.empty()) return send_status(r, SFS_NFS3ERR_TOOSMALL);
        for (std::size_t i = 0; i + 1 < entries->size(); ++i) (*entries)[i].nextentry = &(*entries)[i + 1];
        ok.reply.entries = entries->empty() ? nullptr : entries->data();
        ok.reply.eof = eof;
        out->keep.push_back(entries);
        send(r, out);
      }));
}

void FileServer::do_readdirplus(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_READDIRPLUS3args>();
  const nfs::FileHandle dir = fh_of(a->dir);
  const std::uint32_t maxcount = std::clamp<std::uint32_t>(a->maxcount, kMinDir, kMaxData);
  // Our entries are longer than the backend's (sealed handles, lease
  // fields): ask for about two thirds of the client's count, then trim.
  const std::uint32_t backend_max = std::clamp<std::uint32_t>(maxcount / 3 * 2, kMinDir, kMaxDirBackend);
  const std::uint32_t dircount = std::clamp<std::uint32_t>(a->dircount, kMinDir, backend_max);
  backend_->readdirplus(
      r->cred, dir, a->cookie, verf_of(a->cookieverf), dircount, backend_max,
      on_shared<nfs::ReaddirOk>([this, r, dir, maxcount](nfs::Result<nfs::ReaddirOk> res) {
        auto out = std::make_shared<ReplyOf<sfs_READDIRPLUS3res>>();
        out->res.status = status_of(res.error, false);
        if (!res.ok()) {
          post_op(out->res.sfs_READDIRPLUS3res_u.resfail.dir_attributes, *r, dir, res.value.dir_attr);
          return send(r, out);
        }
        auto& ok = out->res.sfs_READDIRPLUS3res_u.resok;
        post_op(ok.dir_attributes, *r, dir, res.value.dir_attr);
        copy_verf(ok.cookieverf, res.value.cookieverf);
        auto kept = std::make_shared<nfs::ReaddirOk>(std::move(res.value));
        out->keep.push_back(kept);
        std::size_t size = 4 + sfs::fs::kPostOpAttrSize + 8 + 4 + 4;
        auto entries = std::make_shared<std::vector<sfs_entryplus3>>();
        entries->reserve(kept->entries.size());
        bool eof = kept->eof;
        for (const nfs::DirEntry& e : kept->entries) {
          const std::size_t sealed_len = e.fh ? e.fh->size() + kSealOverhead : 0;
          size += sfs::fs::entryplus_size(e.name.size(), e.attr.has_value(), sealed_len);
          if (size > maxcount) {
            eof = false;
            break;
          }
          sfs_entryplus3 x{};
          x.fileid = e.fileid;
          x.name = const_cast<char*>(e.name.c_str());
          x.cookie = e.cookie;
          entries->push_back(x);
        }
        if (entries->empty() && !kept->entries.empty()) return send_status(r, SFS_NFS3ERR_TOOSMALL);
        // Pointers into `entries` only once it no longer grows.
        for (std::size_t i = 0; i < entries->size(); ++i) {
          sfs_entryplus3& x = (*entries)[i];
          const nfs::DirEntry& e = kept->entries[i];
          if (e.fh) {
            x.name_handle.handle_follows = true;
            out->handles.emplace_back(&x.name_handle.sfs_post_op_fh3_u.handle, *e.fh);
            post_op(x.name_attributes, *r, *e.fh, e.attr);
          } else {
            fill_post_op(x.name_attributes, e.attr, r->sample, 0);
          }
          if (i + 1 < entries->size()) x.nextentry = &(*entries)[i + 1];
        }
        ok.reply.entries = entries->empty() ? nullptr : entries->data();
        ok.reply.eof = eof;
        out->keep.push_back(entries);
        send(r, out);
      }));
}

void FileServer::do_fsstat(const std::shared_ptr<Req>& r) {
  const nfs::FileHandle fh = fh_of(r->call.args<sfs_FSSTAT3args>()->fsroot);
  backend_->fsstat(r->cred, fh, on_shared<nfs::FsstatOk>([this, r, fh](nfs::Result<nfs::FsstatOk> res) {
    auto out = std::make_shared<ReplyOf<sfs_FSSTAT3res>>();
    out->res.status = status_of(res.error, false);
    if (res.ok()) {
      auto& ok = out->res.sfs_FSSTAT3res_u.resok;
      post_op(ok.obj_attributes, *r, fh, res.value.attr);
      ok.tbytes = res.value.tbytes;
      ok.fbytes = res.value.fbytes;
      ok.abytes = res.value.abytes;
      ok.tfiles = res.value.tfiles;
      ok.ffiles = res.value.ffiles;
      ok.afiles = res.value.afiles;
      ok.invarsec = res.value.invarsec;
    } else {
      post_op(out->res.sfs_FSSTAT3res_u.resfail.obj_attributes, *r, fh, res.value.attr);
    }
    send(r, out);
  }));
}

namespace {

// FSINFO as sfsd announces it: 1 MiB reads and writes (the secure
// channel's record limit), whatever the backend prefers.
void fill_fsinfo(sfs_FSINFO3resok& ok, const nfs::FsinfoOk& v) {
  ok.rtmax = std::min(std::max(v.rtmax, kMaxData), kMaxData);
  ok.rtpref = kMaxData;
  ok.rtmult = v.rtmult ? v.rtmult : 4096;
  ok.wtmax = std::min(std::max(v.wtmax, kMaxData), kMaxData);
  ok.wtpref = kMaxData;
  ok.wtmult = v.wtmult ? v.wtmult : 4096;
  ok.dtpref = std::min(v.dtpref ? v.dtpref : 65536u, kMaxDirBackend);
  ok.maxfilesize = v.maxfilesize;
  ok.time_delta = sfs::fs::to_time(v.time_delta);
  ok.properties = v.properties;
}

}  // namespace

void FileServer::do_fsinfo(const std::shared_ptr<Req>& r) {
  const nfs::FileHandle fh = fh_of(r->call.args<sfs_FSINFO3args>()->fsroot);
  backend_->fsinfo(r->cred, fh, on_shared<nfs::FsinfoOk>([this, r, fh](nfs::Result<nfs::FsinfoOk> res) {
    auto out = std::make_shared<ReplyOf<sfs_FSINFO3res>>();
    out->res.status = status_of(res.error, false);
    if (res.ok()) {
      post_op(out->res.sfs_FSINFO3res_u.resok.obj_attributes, *r, fh, res.value.attr);
      fill_fsinfo(out->res.sfs_FSINFO3res_u.resok, res.value);
    } else {
      post_op(out->res.sfs_FSINFO3res_u.resfail.obj_attributes, *r, fh, res.value.attr);
    }
    send(r, out);
  }));
}

void FileServer::do_pathconf(const std::shared_ptr<Req>& r) {
  const nfs::FileHandle fh = fh_of(r->call.args<sfs_PATHCONF3args>()->object);
  backend_->pathconf(r->cred, fh, on_shared<nfs::PathconfOk>([this, r, fh](nfs::Result<nfs::PathconfOk> res) {
    auto out = std::make_shared<ReplyOf<sfs_PATHCONF3res>>();
    out->res.status = status_of(res.error, false);
    if (res.ok()) {
      auto& ok = out->res.sfs_PATHCONF3res_u.resok;
      post_op(ok.obj_attributes, *r, fh, res.value.attr);
      ok.linkmax = res.value.linkmax;
      ok.name_max = std::min<std::uint32_t>(res.value.name_max, SFS_NFS3_MAXNAMLEN);
      ok.no_trunc = res.value.no_trunc;
      ok.chown_restricted = res.value.chown_restricted;
      ok.case_insensitive = res.value.case_insensitive;
      ok.case_preserving = res.value.case_preserving;
    } else {
      post_op(out->res.sfs_PATHCONF3res_u.resfail.obj_attributes, *r, fh, res.value.attr);
    }
    send(r, out);
  }));
}

void FileServer::do_commit(const std::shared_ptr<Req>& r) {
  const auto* a = r->call.args<sfs_COMMIT3args>();
  const nfs::FileHandle fh = fh_of(a->file);
  backend_->commit(r->cred, fh, a->offset, a->count,
                   on_shared<nfs::CommitOk>([this, r, fh](nfs::Result<nfs::CommitOk> res) {
                     auto out = std::make_shared<ReplyOf<sfs_COMMIT3res>>();
                     // COMMIT changes no attributes a client caches, and
                     // resending it is harmless: never "outcome unknown".
                     out->res.status = status_of(res.error, false);
                     if (res.ok()) {
                       wcc(out->res.sfs_COMMIT3res_u.resok.file_wcc, *r, fh, res.value.wcc);
                       copy_verf(out->res.sfs_COMMIT3res_u.resok.verf, client_verifier(res.value.verf));
                     } else {
                       wcc(out->res.sfs_COMMIT3res_u.resfail.file_wcc, *r, fh, res.value.wcc);
                     }
                     send(r, out);
                   }));
}

void FileServer::do_getroot(const std::shared_ptr<Req>& r) {
  backend_->getattr(r->cred, root_, on_shared<nfs::Attr>([this, r](nfs::Result<nfs::Attr> attr) {
    if (!attr.ok()) return send_status(r, status_of(attr.error, false));
    backend_->fsinfo(r->cred, root_,
                     on_shared<nfs::FsinfoOk>([this, r, attr](nfs::Result<nfs::FsinfoOk> info) {
                       if (!info.ok()) return send_status(r, status_of(info.error, false));
                       auto out = std::make_shared<ReplyOf<sfs_GETROOT3res>>();
                       out->res.status = SFS_NFS3_OK;
                       auto& ok = out->res.sfs_GETROOT3res_u.resok;
                       out->handles.emplace_back(&ok.root, root_);
                       post_op(ok.root_attributes, *r, root_, attr.value);
                       fill_post_op(ok.fsinfo.obj_attributes, attr.value, r->sample, 0);
                       fill_fsinfo(ok.fsinfo, info.value);
                       ok.lease_ms = static_cast<std::uint32_t>(opts_.lease.count());
                       send(r, out);
                     }));
  }));
}

}  // namespace sfsd
