// ops_file.cc: the FUSE operations on file contents: open, create, read,
// write, flush, fsync, release.
//
// Reads: one SFS READ per FUSE read (1 MiB with the mount's read-ahead),
// answered to the kernel from the connection's color straight out of the
// decrypted record (no copy, no hop). Several are in flight at once
// (FUSE_CAP_ASYNC_READ, max_background).
//
// Writes: UNSTABLE, answered to the writer when the server has them; the
// data stays here until a COMMIT under the same write verifier makes it
// stable (at flush/close, fsync, or when an open file holds
// max_uncommitted bytes). If the verifier changed (the server or its
// backend restarted in between), everything not yet committed is written
// again, FILE_SYNC, before flush/fsync answer: an acknowledged write is
// never lost. Close-to-open: data cached by the kernel is kept at open if
// the file's size and mtime are what they were at the last close.
#include <fcntl.h>

#include "sfs_fs_call.h"

namespace sfsclient {

namespace {

using Handle = sfs::fs::Handle;
using sfs::fs::FileClient;

}  // namespace

template <std::uint32_t P>
void make_object(SfsFs& fs, fuse_req_t req, fuse_ino_t parent, const std::string& name,
                 SfsFs::Build<P> build, std::function<void(fuse_entry_param&)> reply);

void SfsFs::open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Inode* in = inodes_.find(ino);
  if (!in || ino == FUSE_ROOT_ID) return (void)fuse_reply_err(req, in ? EISDIR : ESTALE);
  auto finish = [this, req, ino, fi_copy = *fi]() mutable {
    Inode* i = inodes_.find(ino);
    if (!i || !i->attr) return (void)fuse_reply_err(req, ESTALE);
    auto f = std::make_shared<OpenFile>();
    f->ino = ino;
    f->server = i->server;
    f->fh = i->fh;
    f->uid = fuse_req_ctx(req)->uid;
    const std::uint64_t id = next_fh_++;
    files_[id] = f;
    ++i->open_count;
    fi_copy.fh = id;
    fi_copy.keep_cache =
        i->closed_version && i->closed_version->first == i->attr->size && i->closed_version->second == i->attr->mtime;
    if (fuse_reply_open(req, &fi_copy) != 0) {
      files_.erase(id);  // the opener went away
      --i->open_count;
    }
  };
  // Close-to-open: fresh attributes, unless a lease says ours are current.
  if (inodes_.cached_attr(*in, Clock::now())) return finish();
  const Handle fh = in->fh;
  call<SFS_NFSPROC3_GETATTR>(
      req, in->server, [fh](sfs_GETATTR3args& a) { a.object = FileClient::wire(fh); },
      [this, req, ino, finish](sfs::fs::Reply<sfs_GETATTR3res> r, Clock::time_point sent) mutable {
        if (r->status != SFS_NFS3_OK) return (void)fuse_reply_err(req, errno_of(r->status));
        Inode* i = inodes_.find(ino);
        if (!i) return (void)fuse_reply_err(req, ESTALE);
        const auto& a = r->sfs_GETATTR3res_u.resok.obj_attributes;
        inodes_.store_attr(*i, sfs::fs::from_fattr(a), a.change, a.lease_ms, sent);
        finish();
      });
}

void SfsFs::create(fuse_req_t req, fuse_ino_t parent, const char* cname, mode_t mode, fuse_file_info* fi) {
  const std::string name(cname);
  Inode* dir = inodes_.find(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  const Handle dfh = dir->fh;
  const bool excl = (fi->flags & O_EXCL) != 0;
  const fuse_file_info fi_copy = *fi;
  make_object<SFS_NFSPROC3_CREATE>(
      *this, req, parent, name,
      [dfh, name, mode, excl](sfs_CREATE3args& a) {
        a.where.dir = FileClient::wire(dfh);
        a.where.name = const_cast<char*>(name.c_str());
        a.how.mode = excl ? SFS_GUARDED : SFS_UNCHECKED;
        auto& s = a.how.sfs_createhow3_u.obj_attributes;
        s = sfs_sattr3{};
        s.mode.set_it = TRUE;
        s.mode.sfs_set_mode3_u.mode = mode & 07777;
      },
      [this, req, fi_copy](fuse_entry_param& e) {
        Inode* i = inodes_.find(e.ino);
        if (!i) return (void)fuse_reply_err(req, ESTALE);
        auto f = std::make_shared<OpenFile>();
        f->ino = e.ino;
        f->server = i->server;
        f->fh = i->fh;
        f->uid = fuse_req_ctx(req)->uid;
        const std::uint64_t id = next_fh_++;
        files_[id] = f;
        ++i->open_count;
        fuse_file_info out = fi_copy;
        out.fh = id;
        if (fuse_reply_create(req, &e, &out) != 0) {
          files_.erase(id);
          --i->open_count;
        }
      });
}

void SfsFs::read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, EBADF);
  struct ReadAttempt : std::enable_shared_from_this<ReadAttempt> {
    SfsFs* fs;
    fuse_req_t req;
    ServerId sid;
    Handle fh;
    uid_t uid;
    std::uint64_t off;
    std::uint32_t size;
    Clock::time_point deadline;
    unsigned tries = 0;
    void go() {
      ServerMount* s = fs->server(sid);
      if (!s) return (void)fuse_reply_err(req, ESTALE);
      auto self = shared_from_this();
      s->run(
          uid,
          [self](const std::shared_ptr<FileClient>& c, std::uint32_t auth) {
            // Answered on the connection's color, from the record itself.
            c->read(auth, self->fh, self->off, self->size,
                    FileClient::ReadDone(
                        [self](asmp::rpc::RpcStatus st, const sfs::fs::ReadView& v) {
                          if (st.ok() && v.status == SFS_NFS3_OK)
                            return (void)fuse_reply_buf(self->req, v.data.data, v.data.len);
                          if (st.ok() && v.status != SFS_NFS3ERR_JUKEBOX)
                            return (void)fuse_reply_err(self->req, errno_of(v.status));
                          const bool again = (st.ok() || st.error == asmp::rpc::RpcError::kConnectionLost) &&
                                             (self->fs->options().hard || Clock::now() < self->deadline);
                          if (!again) return (void)fuse_reply_err(self->req, EIO);
                          // Lost, or JUKEBOX: try again from the metadata color.
                          auto delay = std::chrono::milliseconds(st.ok() ? 100 * (1 << std::min(self->tries++, 5u)) : 0);
                          asmp::default_runtime().delaycb(
                              delay, asmp::Closure([self] { self->go(); }, self->fs->options().color));
                        }));
          },
          [self](int err) { fuse_reply_err(self->req, err); });
    }
  };
  auto a = std::make_shared<ReadAttempt>();
  a->fs = this;
  a->req = req;
  a->sid = it->second->server;
  a->fh = it->second->fh;
  a->uid = fuse_req_ctx(req)->uid;
  a->off = static_cast<std::uint64_t>(off);
  a->size = static_cast<std::uint32_t>(std::min<size_t>(size, SFS_NFS3_MAXDATA));
  a->deadline = Clock::now() + opts_.timeout;
  a->go();
}

void SfsFs::send_write(fuse_req_t req, const std::shared_ptr<OpenFile>& f, std::uint64_t off,
                       std::shared_ptr<std::string> data, std::function<void(int, std::size_t)> done) {
  const Handle fh = f->fh;
  ++f->writes_in_flight;
  call<SFS_NFSPROC3_WRITE>(
      req, f->server,
      [fh, off, data](sfs_WRITE3args& a) {
        a.file = FileClient::wire(fh);
        a.offset = off;
        a.count = static_cast<u_int>(data->size());
        a.stable = SFS_UNSTABLE;
        a.data.data_len = static_cast<u_int>(data->size());
        a.data.data_val = data->data();
      },
      [this, f, off, data, done](sfs::fs::Reply<sfs_WRITE3res> r, Clock::time_point sent) {
        --f->writes_in_flight;
        Inode* in = inodes_.find(f->ino);
        if (r->status != SFS_NFS3_OK) {
          if (in) note_wcc(*in, r->sfs_WRITE3res_u.resfail.file_wcc, sent);
          return done(errno_of(r->status), 0);
        }
        const auto& ok = r->sfs_WRITE3res_u.resok;
        if (in) note_wcc(*in, ok.file_wcc, sent);
        std::size_t n = std::min<std::size_t>(ok.count, data->size());
        if (ok.committed != SFS_FILE_SYNC) {
          const std::string verf(ok.verf, sizeof ok.verf);
          if (f->uncommitted.empty() && f->verf.empty()) f->verf = verf;
          // A new verifier: the server lost what it had not committed; the
          // next commit writes everything again (see the top).
          else if (verf != f->verf) f->verf = "changed";
          f->uncommitted.push_back({off, n < data->size() ? std::make_shared<std::string>(data->substr(0, n)) : data});
          f->uncommitted_bytes += n;
        }
        done(0, n);
      });
}

void SfsFs::write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, EBADF);
  auto f = it->second;
  // The request buffer is reused for the next request: keep a copy (also
  // what a resend after a verifier change needs).
  auto data = std::make_shared<std::string>(buf, size);
  send_write(req, f, static_cast<std::uint64_t>(off), std::move(data), [this, req, f](int err, std::size_t n) {
    if (err) return (void)fuse_reply_err(req, err);
    if (f->uncommitted_bytes < opts_.max_uncommitted) return (void)fuse_reply_write(req, n);
    // Too much at risk: make it stable before taking more.
    commit(req, f, 0, [req, n](int cerr) {
      if (cerr) fuse_reply_err(req, cerr);
      else fuse_reply_write(req, n);
    });
  });
}

void SfsFs::commit(fuse_req_t req, const std::shared_ptr<OpenFile>& keep, int attempt,
                   std::function<void(int)> done) {
  if (keep->uncommitted.empty()) return done(0);
  const Handle fh = keep->fh;
  const std::size_t count = keep->uncommitted.size();
  call<SFS_NFSPROC3_COMMIT>(
      req, keep->server, [fh](sfs_COMMIT3args& a) { a.file = FileClient::wire(fh); },
      [this, req, keep, attempt, count, done](sfs::fs::Reply<sfs_COMMIT3res> r, Clock::time_point) {
        OpenFile& f = *keep;
        if (r->status != SFS_NFS3_OK) return done(errno_of(r->status));
        const std::string verf(r->sfs_COMMIT3res_u.resok.verf, 8);
        if (verf == f.verf) {
          // Everything written before this COMMIT is stable.
          f.uncommitted.erase(f.uncommitted.begin(), f.uncommitted.begin() + static_cast<long>(count));
          f.uncommitted_bytes = 0;
          for (const auto& e : f.uncommitted) f.uncommitted_bytes += e.data->size();
          if (f.uncommitted.empty()) f.verf.clear();
          return done(0);
        }
        if (attempt >= 3) return done(EIO);
        // The server restarted since those writes: write them again, then
        // commit again.
        auto extents = std::move(f.uncommitted);
        f.uncommitted.clear();
        f.uncommitted_bytes = 0;
        f.verf.clear();
        auto left = std::make_shared<std::size_t>(extents.size());
        auto first_err = std::make_shared<int>(0);
        for (auto& e : extents) {
          send_write(req, keep, e.off, e.data, [this, req, keep, attempt, left, first_err, done](int err, std::size_t) {
            if (err && !*first_err) *first_err = err;
            if (--*left) return;
            if (*first_err) return done(*first_err);
            commit(req, keep, attempt + 1, done);
          });
        }
      });
}

void SfsFs::flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, EBADF);
  auto f = it->second;
  commit(req, f, 0, [req, f](int err) {
    if (!err && f->error) err = std::exchange(f->error, 0);
    fuse_reply_err(req, err);
  });
}

void SfsFs::fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) { flush(req, ino, fi); }

void SfsFs::release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, 0);
  auto f = it->second;
  files_.erase(it);
  auto finish = [this, req, ino](int) {
    Inode* in = inodes_.find(ino);
    if (in) {
      if (in->open_count) --in->open_count;
      // What the file looked like when we let go of it, if we still know.
      if (inodes_.cached_attr(*in, Clock::now()))
        in->closed_version = std::make_pair(in->attr->size, in->attr->mtime);
      else
        in->closed_version.reset();
      if (in->nlookup == 0) inodes_.forget(ino, 0);
    }
    fuse_reply_err(req, 0);
  };
  commit(req, f, 0, [f, finish](int err) { finish(err); });
}

}  // namespace sfsclient
