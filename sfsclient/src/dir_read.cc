// dir_read.cc: reading directories in large pieces. One READDIRPLUS brings
// up to kDirChunkBytes of names with their handles and leased attributes;
// ops_dir.cc answers the kernel's readdir calls on an open directory from
// the last chunk read, and a LOOKUP miss in a directory that already missed
// once reads the whole listing into the inode table (scan_instead), so a
// walk that stats every file of a directory costs a few round trips, not
// one per file. What is read this way obeys the same leases as a LOOKUP's
// answer (inodes.h): an INVALIDATE or a lapsed lease voids it.
#include <cstring>

#include "sfs_fs_call.h"

namespace sfsclient {

namespace {

using sfs::fs::FileClient;

// 128 KiB of reply: ~500 entries of short names.
constexpr std::uint32_t kDirChunkBytes = 128 * 1024;
// The largest listing read ahead for a lookup, and the largest directory
// (in the server's own bytes) it is tried on: a single stat in a directory
// of a million names must not read them all.
constexpr std::size_t kScanMaxEntries = 8192;
constexpr std::uint64_t kScanMaxDirBytes = 1 << 20;
// Unreferenced inodes kept (read ahead, not yet looked up by the kernel).
constexpr std::size_t kKeepUnreferenced = 32768;

}  // namespace

std::optional<std::size_t> SfsFs::DirChunk::after(std::uint64_t cookie) const {
  if (cookie == from) return 0;
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (entries[i].cookie == cookie) return i + 1;
  return std::nullopt;
}

void SfsFs::read_dir_chunk(uid_t uid, fuse_ino_t ino, std::uint64_t cookie, const char* cookieverf,
                           std::function<void(int, std::shared_ptr<DirChunk>)> done) {
  Inode* dir = inodes_.find(ino);
  if (!dir) return done(ESTALE, nullptr);
  const sfs::fs::Handle fh = dir->fh;
  char verf[8];
  std::memcpy(verf, cookieverf, 8);
  call_as<SFS_NFSPROC3_READDIRPLUS>(
      uid, dir->server,
      [fh, cookie, verf](sfs_READDIRPLUS3args& a) {
        a.dir = FileClient::wire(fh);
        a.cookie = cookie;
        std::memcpy(a.cookieverf, verf, 8);
        a.dircount = kDirChunkBytes;
        a.maxcount = kDirChunkBytes;
      },
      [this, ino, cookie, done](sfs::fs::Reply<sfs_READDIRPLUS3res> r, Clock::time_point sent) {
        Inode* d = inodes_.find(ino);
        if (!d) return done(ESTALE, nullptr);
        if (r->status != SFS_NFS3_OK) {
          note_attr(*d, r->sfs_READDIRPLUS3res_u.resfail.dir_attributes, sent);
          return done(errno_of(r->status), nullptr);
        }
        auto& ok = r->sfs_READDIRPLUS3res_u.resok;
        note_attr(*d, ok.dir_attributes, sent);
        auto c = std::make_shared<DirChunk>();
        c->from = cookie;
        c->eof = ok.reply.eof;
        std::memcpy(c->cookieverf, ok.cookieverf, 8);
        c->sent = sent;
        c->dir_gen = d->dir_gen;
        for (auto* e = ok.reply.entries; e; e = e->nextentry) {
          DirChunk::Entry& out = c->entries.emplace_back();
          out.name = e->name;
          out.cookie = e->cookie;
          out.fileid = e->fileid;
          out.attr = e->name_attributes;
          out.has_handle = e->name_handle.handle_follows;
          if (out.has_handle) out.fh = FileClient::handle_of(e->name_handle.sfs_post_op_fh3_u.handle);
        }
        done(0, std::move(c));
      },
      [done](int err) { done(err, nullptr); });
}

bool SfsFs::scan_instead(Inode& dir, uid_t uid, std::function<void()> again) {
  auto& s = dir.scan;
  if (s.waiters) {
    s.waiters->push_back(std::move(again));
    return true;
  }
  if (s.gen != dir.dir_gen) {
    s.gen = dir.dir_gen;
    s.misses = 0;
    s.done = false;
  }
  // Read under this lease already: the name was not among what was read
  // (or its attributes lapsed); the LOOKUP says which.
  const auto now = Clock::now();
  if (s.done || dir.entries_until <= now) return false;
  const nfs::Attr* a = inodes_.cached_attr(dir, now);
  if (!a || a->type != nfs::FileType::kDir || a->size > kScanMaxDirBytes) return false;
  if (++s.misses < 2) return false;

  struct Job {
    fuse_ino_t ino;
    uid_t uid;
    std::uint64_t gen;
    std::shared_ptr<std::vector<std::function<void()>>> waiters;
    std::size_t entries = 0;
    bool whole = false;  // read to the end, every name learnt
    bool skipped = false;
    char verf[8] = {};
  };
  auto job = std::make_shared<Job>(Job{dir.ino, uid, dir.dir_gen, std::make_shared<std::vector<std::function<void()>>>()});
  job->waiters->push_back(std::move(again));
  s.waiters = job->waiters;
  // Tried once per generation, whole or not (an error, a listing cut at
  // kScanMaxEntries): the lookups it did not answer go to the server.
  auto finish = [this, job] {
    if (Inode* d = inodes_.find(job->ino); d && d->scan.waiters == job->waiters) {
      d->scan.waiters.reset();
      d->scan.done = true;
      // Every name of the directory is in the table now: a name not
      // there is answered ENOENT here while the lease lasts. (Before the
      // trim, which forgets this again if it drops one of them.)
      if (job->whole && d->dir_gen == job->gen && d->entries_until > Clock::now()) d->set_complete();
    }
    inodes_.trim_unreferenced(kKeepUnreferenced);
    for (auto& w : *job->waiters) w();
  };
  auto next = std::make_shared<std::function<void(std::uint64_t)>>();
  *next = [this, job, finish, next](std::uint64_t cookie) {
    read_dir_chunk(job->uid, job->ino, cookie, job->verf, [this, job, finish, next](int err, std::shared_ptr<DirChunk> c) {
      Inode* d = inodes_.find(job->ino);
      // An error, or the directory changed meanwhile: the lookups go to the server.
      if (err || !d || c->dir_gen != job->gen) {
        *next = nullptr;  // the cycle next -> lambda -> next ends here
        return finish();
      }
      std::memcpy(job->verf, c->cookieverf, 8);
      for (const auto& e : c->entries) {
        if (dot_or_dotdot(e.name)) continue;
        if (!e.has_handle || !e.attr.attributes_follow || !learn_child(*d, e.name, e.fh, e.attr, c->sent, false))
          job->skipped = true;
      }
      job->entries += c->entries.size();
      if (c->eof || c->entries.empty() || job->entries >= kScanMaxEntries) {
        job->whole = c->eof && !job->skipped;
        *next = nullptr;
        return finish();
      }
      (*next)(c->entries.back().cookie);
    });
  };
  (*next)(0);
  return true;
}

}  // namespace sfsclient
