// ops_file.cc: the FUSE operations on file contents: open, create, read,
// write, flush, fsync, release.
//
// Reads: one SFS READ per FUSE read (1 MiB with the mount's read-ahead),
// answered to the kernel from the connection's color straight out of the
// decrypted record (no copy, no hop). Several are in flight at once
// (FUSE_CAP_ASYNC_READ, max_background), spread in turn over the server's
// connections (`connections`, read_lanes.h) so that decryption here and
// encryption in sfsd run on more than one core.
//
// Writes: behind. A write is answered to the writer as soon as it is sent
// (UNSTABLE), up to max_write_behind bytes in flight per open file (more
// waits), so a sequential writer keeps many 1 MiB writes in flight. The data
// stays here until a COMMIT under the same write verifier makes it stable
// (at flush/close, fsync, or in the background once an open file holds
// max_uncommitted bytes; writers wait at twice that, so what is kept is
// bounded). One COMMIT round at a time per open file; fsync() commits every
// open file of the inode (POSIX: the file's data, whichever descriptor
// wrote it), close() only its own. If the verifier changed (the server or
// its backend restarted in between), everything not yet committed is
// written again, FILE_SYNC, before flush/fsync answer: data acknowledged by
// close() or fsync() is never lost, and an error the server reports on a
// write reaches the writer at its next write, and at its next
// close()/fsync() even if a write reported it already. Reads and attribute
// calls of a file wait for its writes in flight; sizes shown meanwhile
// include them. Close-to-open: data cached by the kernel is kept at open if
// the file's size, mtime and ctime are what they were at the last close.
#include <fcntl.h>

#include <algorithm>
#include <cstring>

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
  const fuse_file_info fi_copy = *fi;
  const uid_t uid = fuse_req_ctx(req)->uid;
  // What the open needs: the server decides with the caller's identity
  // there (a local root may be anyone remotely), cached under the lease.
  std::uint32_t need = 0;
  const int mode = fi->flags & O_ACCMODE;
  if (mode == O_RDONLY || mode == O_RDWR) need |= SFS_ACCESS3_READ;
  if (mode == O_WRONLY || mode == O_RDWR || (fi->flags & O_TRUNC)) need |= SFS_ACCESS3_MODIFY;

  auto finish = [this, req, ino, fi_copy, uid]() {
    Inode* i = inodes_.find(ino);
    if (!i || !i->attr) return (void)fuse_reply_err(req, ESTALE);
    auto f = std::make_shared<OpenFile>();
    f->ino = ino;
    f->server = i->server;
    f->fh = i->fh;
    f->uid = uid;
    const std::uint64_t id = next_fh_++;
    files_[id] = f;
    ++i->open_count;
    fuse_file_info out = fi_copy;
    out.fh = id;
    out.keep_cache = i->closed_version && *i->closed_version == Inode::Version{i->attr->size, i->attr->mtime,
                                                                              i->attr->ctime};
    if (fuse_reply_open(req, &out) != 0) {
      files_.erase(id);  // the opener went away
      --i->open_count;
    }
  };
  // O_TRUNC arrives here (libfuse asks for atomic O_TRUNC): truncate first.
  auto truncate = [this, req, ino, fi_copy, finish]() {
    if (!(fi_copy.flags & O_TRUNC)) return finish();
    Inode* i = inodes_.find(ino);
    if (!i) return (void)fuse_reply_err(req, ESTALE);
    const Handle fh = i->fh;
    call<SFS_NFSPROC3_SETATTR>(
        req, i->server,
        [fh](sfs_SETATTR3args& a) {
          a.object = FileClient::wire(fh);
          a.new_attributes.size.set_it = TRUE;
          a.new_attributes.size.sfs_set_size3_u.size = 0;
        },
        [this, req, ino, finish](sfs::fs::Reply<sfs_SETATTR3res> r, Clock::time_point sent) {
          Inode* i2 = inodes_.find(ino);
          if (!i2) return (void)fuse_reply_err(req, ESTALE);
          const bool ok = r->status == SFS_NFS3_OK;
          note_wcc(*i2, ok ? r->sfs_SETATTR3res_u.resok.obj_wcc : r->sfs_SETATTR3res_u.resfail.obj_wcc, sent);
          if (!ok) return (void)fuse_reply_err(req, errno_of(r->status));
          if (!i2->attr) i2->attr_until = Clock::time_point{};
          finish();
        });
  };
  const auto now = Clock::now();
  auto cached = in->access.find(uid);
  if (cached != in->access.end() && cached->second.second > now && inodes_.cached_attr(*in, now)) {
    if ((cached->second.first & need) != need) return (void)fuse_reply_err(req, EACCES);
    return after_writes(ino, truncate);
  }
  // Close-to-open: fresh attributes with the answer (ACCESS returns them).
  const Handle fh = in->fh;
  const std::uint32_t ask = SFS_ACCESS3_READ | SFS_ACCESS3_MODIFY | SFS_ACCESS3_EXTEND | SFS_ACCESS3_EXECUTE;
  call<SFS_NFSPROC3_ACCESS>(
      req, in->server,
      [fh, ask](sfs_ACCESS3args& a) {
        a.object = FileClient::wire(fh);
        a.access = ask;
      },
      [this, req, ino, uid, need, truncate](sfs::fs::Reply<sfs_ACCESS3res> r, Clock::time_point sent) {
        Inode* i = inodes_.find(ino);
        if (!i) return (void)fuse_reply_err(req, ESTALE);
        if (r->status != SFS_NFS3_OK) {
          note_attr(*i, r->sfs_ACCESS3res_u.resfail.obj_attributes, sent);
          return (void)fuse_reply_err(req, errno_of(r->status));
        }
        const auto& ok = r->sfs_ACCESS3res_u.resok;
        note_attr(*i, ok.obj_attributes, sent);
        if (!i->attr) return (void)fuse_reply_err(req, EIO);
        i->access[uid] = {ok.access, i->attr_until};
        if ((ok.access & need) != need) return (void)fuse_reply_err(req, EACCES);
        after_writes(ino, truncate);
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

void SfsFs::read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
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
    bool refound = false;
    // Refused handle (refind.cc): once, with the handle found again by path.
    void recover(sfs_nfsstat3 st) {
      refound = true;
      auto self = shared_from_this();
      fs->recover_handles(sid, uid, {fh}, [self, st](SfsFs::Remap found) {
        if (found.empty()) return (void)fuse_reply_err(self->req, errno_of(st));
        self->fh = found.front().second;
        self->go();
      });
    }
    void go() {
      ServerMount* s = fs->server(sid);
      if (!s) return (void)fuse_reply_err(req, ESTALE);
      auto self = shared_from_this();
      // In turn over the server's connections (read_lanes.h).
      s->run_read(
          uid,
          [self](const std::shared_ptr<FileClient>& c, std::uint32_t auth) {
            // Answered on the connection's color, from the record itself.
            c->read(auth, self->fh, self->off, self->size,
                    FileClient::ReadDone(
                        [self](asmp::rpc::RpcStatus st, const sfs::fs::ReadView& v) {
                          if (st.ok() && v.status == SFS_NFS3_OK)
                            return (void)fuse_reply_buf(self->req, v.data.data, v.data.len);
                          if (st.ok() && handle_refused(v.status) && !self->refound) {
                            const sfs_nfsstat3 refused = v.status;
                            return asmp::default_runtime().cpucb(
                                asmp::Closure([self, refused] { self->recover(refused); }, self->fs->options().color));
                          }
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
  // What this client wrote must be there before it is read back.
  after_writes(ino, [a] { a->go(); });
}

namespace {

using Extent = std::pair<std::uint64_t, std::uint64_t>;  // [begin, end)

bool overlaps_any(const std::vector<Extent>& sent, const Extent& e) {
  for (const auto& s : sent)
    if (s.first < e.second && e.first < s.second) return true;
  return false;
}

// A write was answered: forget its extent, and send the waiting writes
// that overlap nothing in flight any more, in the order they came.
void end_extent(Inode& in, const Extent& e) {
  if (auto it = std::find(in.writing.begin(), in.writing.end(), e); it != in.writing.end()) in.writing.erase(it);
  while (!in.overlapping.empty() && !overlaps_any(in.writing, in.overlapping.front().first)) {
    auto next = std::move(in.overlapping.front());
    in.overlapping.pop_front();
    in.writing.push_back(next.first);
    next.second();  // may answer at once (server gone) and come back here
  }
}

}  // namespace

void SfsFs::send_write(const std::shared_ptr<OpenFile>& f, std::uint64_t off, std::shared_ptr<const WrittenBytes> data,
                       bool stable, std::function<void(int)> done) {
  const std::size_t size = data->size();
  const fuse_ino_t ino = f->ino;
  const Extent extent{off, off + size};
  if (Inode* in = inodes_.find(ino)) {
    ++in->writes_in_flight;
    in->pending_end = std::max(in->pending_end, off + size);
  }
  f->bytes_in_flight += size;
  // Runs once, on the metadata color, whatever happened.
  auto finish = [this, f, ino, size, extent, done](int err) {
    f->bytes_in_flight -= size;
    f->note_error(err);
    if (Inode* in = inodes_.find(ino)) end_extent(*in, extent);
    if (Inode* in = inodes_.find(ino); in && in->writes_in_flight && --in->writes_in_flight == 0) {
      in->pending_end = 0;
      auto waiters = std::move(in->write_waiters);
      in->write_waiters.clear();
      for (auto& w : waiters) w();
    }
    release_writers(*f, false);
    done(err);
  };
  const Handle fh = f->fh;
  auto send = [this, f, fh, off, data, stable, finish] {
    call_as<SFS_NFSPROC3_WRITE>(
        f->uid, f->server,
        [fh, off, data, stable](sfs_WRITE3args& a) {
          a.file = FileClient::wire(fh);
          a.offset = off;
          a.count = static_cast<u_int>(data->size());
          a.stable = stable ? SFS_FILE_SYNC : SFS_UNSTABLE;
          a.data.data_len = static_cast<u_int>(data->size());
          a.data.data_val = const_cast<char*>(data->data());  // only encoded
        },
        [this, f, off, data, finish](sfs::fs::Reply<sfs_WRITE3res> r, Clock::time_point sent) {
          Inode* in = inodes_.find(f->ino);
          if (r->status != SFS_NFS3_OK) {
            if (in) note_wcc(*in, r->sfs_WRITE3res_u.resfail.file_wcc, sent);
            return finish(errno_of(r->status));
          }
          const auto& ok = r->sfs_WRITE3res_u.resok;
          if (in) note_wcc(*in, ok.file_wcc, sent);
          if (ok.count < data->size()) return finish(EIO);  // the server took less: never silently
          if (ok.committed != SFS_FILE_SYNC) {
            const std::string verf(ok.verf, sizeof ok.verf);
            if (f->uncommitted.empty() && f->verf.empty()) f->verf = verf;
            // A new verifier: the server lost what it had not committed; the
            // next commit writes everything again (see the top).
            else if (verf != f->verf) f->verf = "changed";
            f->uncommitted.push_back({off, data});
            f->uncommitted_bytes += data->size();
          }
          finish(0);
        },
        finish);
  };
  // Behind an overlapping write in flight (or one already waiting): later.
  if (Inode* in = inodes_.find(ino); in && (!in->overlapping.empty() || overlaps_any(in->writing, extent))) {
    in->overlapping.emplace_back(extent, std::move(send));
    return;
  }
  if (Inode* in = inodes_.find(ino)) in->writing.push_back(extent);
  send();
}

void SfsFs::write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, EBADF);
  auto f = it->second;
  if (f->error) return (void)fuse_reply_err(req, std::exchange(f->error, 0));
  // Kept until committed (a resend after a verifier change needs them):
  // the request buffer itself when the write fills most of it, else a copy
  // (the driver reuses its buffer for the next request).
  auto data = std::make_shared<WrittenBytes>();
  if (driver_) data->owner = driver_->take_request_buffer(buf, size);
  if (!data->owner) {
    auto copy = std::make_shared<std::string>(buf, size);
    buf = copy->data();
    data->owner = std::move(copy);
  }
  data->bytes = std::string_view(buf, size);
  send_write(f, static_cast<std::uint64_t>(off), std::move(data), false, [this, f](int) { commit_behind(f); });
  if (f->blocked.empty() && room_for_writes(*f)) return (void)fuse_reply_write(req, size);
  f->blocked.push_back([req, size] { fuse_reply_write(req, size); });
}

bool SfsFs::room_for_writes(const OpenFile& f) const {
  return f.bytes_in_flight <= opts_.max_write_behind && f.uncommitted_bytes <= 2 * opts_.max_uncommitted;
}

void SfsFs::release_writers(OpenFile& f, bool all) {
  while (!f.blocked.empty() && (all || room_for_writes(f))) {
    auto b = std::move(f.blocked.front());
    f.blocked.erase(f.blocked.begin());
    b();
  }
}

void SfsFs::commit_behind(const std::shared_ptr<OpenFile>& f) {
  // Too much at risk: make it stable in the background, without waiting
  // for the writes in flight (a writer that keeps some in flight all the
  // time would never see that COMMIT go, and what it wrote would pile up
  // here). Writers wait once twice this much is held (room_for_writes).
  if (f->uncommitted_bytes < opts_.max_uncommitted || f->committing) return;
  commit(f, [f](int err) { f->note_error(err); }, false);
}

void SfsFs::commit(const std::shared_ptr<OpenFile>& f, std::function<void(int)> done, bool all) {
  // Rounds never overlap: a round counts the writes it covers at its COMMIT
  // and forgets that many at the answer, which only holds if no other
  // round took some of them meanwhile.
  if (f->committing) return f->commit_next.push_back(std::move(done));
  f->committing = true;
  commit_round(f, all, [this, f, done](int err) {
    f->committing = false;
    auto waiting = std::move(f->commit_next);
    f->commit_next.clear();
    // Writers held back for room: on, and after a failed COMMIT at once
    // (their next write() or fsync() reports the error).
    release_writers(*f, err != 0);
    done(err);
    if (!waiting.empty()) {
      // Their writes may have come after this round's COMMIT: one more.
      return commit(f, [waiting](int e) {
        for (const auto& w : waiting) w(e);
      });
    }
    if (!err) commit_behind(f);
  });
}

void SfsFs::commit_round(const std::shared_ptr<OpenFile>& f, bool all, std::function<void(int)> done) {
  // The COMMIT covers the writes answered before it goes: with `all`,
  // after the writes in flight, so it covers every write made so far.
  auto go = [this, f, done] {
    if (f->uncommitted.empty()) return done(0);
    const Handle fh = f->fh;
    const std::size_t count = f->uncommitted.size();
    call_as<SFS_NFSPROC3_COMMIT>(
        f->uid, f->server, [fh](sfs_COMMIT3args& a) { a.file = FileClient::wire(fh); },
        [this, f, count, done](sfs::fs::Reply<sfs_COMMIT3res> r, Clock::time_point) {
          if (r->status != SFS_NFS3_OK) return done(errno_of(r->status));
          const std::string verf(r->sfs_COMMIT3res_u.resok.verf, 8);
          // Writes answered since the COMMIT went out were only added at
          // the end: the first `count` are the ones it covered.
          if (verf == f->verf) {
            f->uncommitted.erase(f->uncommitted.begin(), f->uncommitted.begin() + static_cast<long>(count));
            f->uncommitted_bytes = 0;
            for (const auto& e : f->uncommitted) f->uncommitted_bytes += e.data->size();
            if (f->uncommitted.empty()) f->verf.clear();
            return done(0);
          }
          // The server restarted since those writes: write them again,
          // FILE_SYNC (stable when answered).
          auto extents = std::move(f->uncommitted);
          f->uncommitted.clear();
          f->uncommitted_bytes = 0;
          f->verf.clear();
          if (extents.empty()) return done(0);
          auto left = std::make_shared<std::size_t>(extents.size());
          auto first_err = std::make_shared<int>(0);
          for (auto& e : extents) {
            send_write(f, e.off, e.data, true, [left, first_err, done](int err) {
              if (err && !*first_err) *first_err = err;
              if (--*left == 0) done(*first_err);
            });
          }
        },
        done);
  };
  if (all) return after_writes(f->ino, go);
  go();
}

void SfsFs::flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, EBADF);
  auto f = it->second;
  commit(f, [req, f](int err) {
    if (!err) err = f->sync_error;
    if (err) f->error = 0;  // reported: the next write need not say it again
    f->sync_error = 0;
    fuse_reply_err(req, err);
  });
}

void SfsFs::fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, EBADF);
  auto f = it->second;
  // fsync() makes the file stable, not only what this descriptor wrote:
  // the writes made through the file's other open descriptors (each kept by
  // its own OpenFile) and through descriptors closed while their COMMIT is
  // still under way are committed too, and fsync() answers after all of
  // them. Their failure is this fsync()'s error as well as theirs.
  std::vector<std::shared_ptr<OpenFile>> others;
  for (const auto& [fh, o] : files_)
    if (o != f && o->ino == f->ino && o->server == f->server) others.push_back(o);
  for (const auto& o : closing_)
    if (o->ino == f->ino && o->server == f->server) others.push_back(o);
  auto left = std::make_shared<std::size_t>(others.size() + 1);
  auto first_err = std::make_shared<int>(0);
  auto one_done = [req, f, left, first_err](int err) {
    if (err && !*first_err) *first_err = err;
    if (--*left) return;
    err = *first_err ? *first_err : f->sync_error;
    if (err) f->error = 0;  // reported: the next write need not say it again
    f->sync_error = 0;
    fuse_reply_err(req, err);
  };
  for (const auto& o : others) {
    commit(o, [o, one_done](int err) {
      o->note_error(err);  // its own descriptor hears of it too
      one_done(err);
    });
  }
  commit(f, one_done);
}

void SfsFs::release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto it = files_.find(fi->fh);
  if (it == files_.end()) return (void)fuse_reply_err(req, 0);
  auto f = it->second;
  files_.erase(it);
  fuse_reply_err(req, 0);  // close() already had its answer from flush
  closing_.insert(f);  // until committed: another descriptor's fsync() waits for it
  commit(f, [this, f, ino](int err) {
    closing_.erase(f);
    if (err) opts_.log("sfsclient: data written to a file closed without flush may be lost: " + std::string(std::strerror(err)));
    Inode* in = inodes_.find(ino);
    if (!in) return;
    if (in->open_count) --in->open_count;
    // What the file looked like when we let go of it, if we still know.
    if (inodes_.cached_attr(*in, Clock::now()))
      in->closed_version = Inode::Version{in->attr->size, in->attr->mtime, in->attr->ctime};
    else
      in->closed_version.reset();
    if (in->nlookup == 0) inodes_.forget(ino, 0);
  });
}

}  // namespace sfsclient
