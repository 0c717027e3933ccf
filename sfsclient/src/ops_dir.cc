// ops_dir.cc: listing directories: opendir, readdir, readdirplus,
// releasedir. /sfs lists the servers mounted so far; a server's directory
// is listed with SFS READDIRPLUS (names, handles and attributes with their
// leases in one round trip), read in chunks of ~128 KiB (dir_read.cc): the
// kernel's calls, a few KiB each, are answered from the open directory's
// last chunk while it holds their offset, which is the server's cookie of
// the last entry the kernel took.
#include <sys/stat.h>

#include <cstring>

#include "sfs_fs_call.h"

namespace sfsclient {

namespace {

using Handle = sfs::fs::Handle;
using sfs::fs::FileClient;

mode_t type_bits(const sfs_fattr3& a) {
  switch (a.type) {
    case SFS_NF3DIR: return S_IFDIR;
    case SFS_NF3LNK: return S_IFLNK;
    case SFS_NF3BLK: return S_IFBLK;
    case SFS_NF3CHR: return S_IFCHR;
    case SFS_NF3SOCK: return S_IFSOCK;
    case SFS_NF3FIFO: return S_IFIFO;
    default: return S_IFREG;
  }
}

}  // namespace

void SfsFs::opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino != FUSE_ROOT_ID && !inodes_.find(ino)) return (void)fuse_reply_err(req, ESTALE);
  auto d = std::make_shared<DirHandle>();
  d->ino = ino;
  const std::uint64_t id = next_fh_++;
  dirs_[id] = d;
  fi->fh = id;
  // The kernel keeps the listing it read (plain entries, in the directory's
  // page cache) for the next opendir. It drops it when we tell it the
  // directory changed (INVALIDATE, a lost connection: inval_inode), when it
  // changes it itself, and at offset 0 when the directory's mtime is not
  // the one it was read under (FUSE_CAP_AUTO_INVAL_DATA: the attributes
  // are checked then, from their lease or the server).
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  if (fuse_reply_open(req, fi) != 0) dirs_.erase(id);
}

void SfsFs::releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  dirs_.erase(fi->fh);
  fuse_reply_err(req, 0);
}

// Entries of `c` from index `at`, as many as fit in `size`, each made an
// entry the kernel holds (one lookup each), under the chunk's leases.
void SfsFs::reply_dir_plus(fuse_req_t req, Inode& dir, const DirChunk& c, std::size_t at, size_t size) {
  std::vector<char> out(size);
  std::size_t used = 0;
  for (std::size_t i = at; i < c.entries.size(); ++i) {
    const auto& e = c.entries[i];
    // Room first: an entry the kernel does not take must not count as a lookup.
    const std::size_t need = fuse_add_direntry_plus(req, nullptr, 0, e.name.c_str(), nullptr, 0);
    if (need > size - used) break;
    fuse_entry_param ep{};
    if (dot_or_dotdot(e.name) || !e.has_handle || !e.attr.attributes_follow) {
      ep.attr.st_ino = e.fileid;
      if (e.attr.attributes_follow) ep.attr.st_mode = type_bits(e.attr.sfs_post_op_attr_u.attributes);
    } else if (!make_entry(ep, dir, e.name, e.fh, e.attr, c.sent)) {
      continue;
    }
    used += fuse_add_direntry_plus(req, out.data() + used, size - used, e.name.c_str(), &ep,
                                   static_cast<off_t>(e.cookie));
  }
  fuse_reply_buf(req, out.data(), used);
}

void SfsFs::readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  auto dit = dirs_.find(fi->fh);
  if (dit == dirs_.end()) return (void)fuse_reply_err(req, EBADF);
  auto dh = dit->second;
  if (ino == FUSE_ROOT_ID) {
    std::vector<char> buf(size);
    std::size_t used = 0;
    // ".", "..", then the mounted servers, at offsets 1, 2, 3, ...
    std::vector<std::string> names = {".", ".."};
    for (const auto& [name, id] : by_name_) names.push_back(name);
    for (std::size_t i = static_cast<std::size_t>(off); i < names.size(); ++i) {
      struct stat st {};
      st.st_ino = FUSE_ROOT_ID;
      st.st_mode = S_IFDIR | 0755;
      std::size_t n;
      if (plus) {
        fuse_entry_param e{};  // ino 0: the kernel takes no reference
        e.attr = st;
        n = fuse_add_direntry_plus(req, buf.data() + used, size - used, names[i].c_str(), &e,
                                   static_cast<off_t>(i + 1));
      } else {
        n = fuse_add_direntry(req, buf.data() + used, size - used, names[i].c_str(), &st,
                              static_cast<off_t>(i + 1));
      }
      if (n > size - used) break;
      used += n;
    }
    return (void)fuse_reply_buf(req, buf.data(), used);
  }

  Inode* dir = inodes_.find(ino);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  const std::uint64_t cookie = static_cast<std::uint64_t>(off);
  if (plus) {
    // The chunk read last answers while the directory's names are under
    // lease and unchanged since; else the server is asked from `off`.
    const auto& kept = dh->ahead;
    if (kept && kept->dir_gen == dir->dir_gen && dir->entries_until > Clock::now()) {
      if (auto at = kept->after(cookie); at && (*at < kept->entries.size() || kept->eof))
        return reply_dir_plus(req, *dir, *kept, *at, size);
    }
    return read_dir_chunk(fuse_req_ctx(req)->uid, ino, cookie, dh->cookieverf,
                          [this, req, ino, dh, size](int err, std::shared_ptr<DirChunk> c) {
                            if (err) return (void)fuse_reply_err(req, err);
                            Inode* d = inodes_.find(ino);
                            if (!d) return (void)fuse_reply_err(req, ESTALE);
                            std::memcpy(dh->cookieverf, c->cookieverf, 8);
                            dh->ahead = c;
                            reply_dir_plus(req, *d, *c, 0, size);
                          });
  }
  const Handle fh = dir->fh;
  char verf[8];
  std::memcpy(verf, dh->cookieverf, 8);
  // Ask for about what fits: a FUSE entry is ~40 bytes, ours ~100.
  const std::uint32_t maxcount = static_cast<std::uint32_t>(std::max<size_t>(size * 2, 8192));
  call<SFS_NFSPROC3_READDIR>(
      req, dir->server,
      [fh, cookie, verf, maxcount](sfs_READDIR3args& a) {
        a.dir = FileClient::wire(fh);
        a.cookie = cookie;
        std::memcpy(a.cookieverf, verf, 8);
        a.count = maxcount;
      },
      [this, req, ino, dh, size](sfs::fs::Reply<sfs_READDIR3res> r, Clock::time_point sent) {
        Inode* d = inodes_.find(ino);
        if (!d) return (void)fuse_reply_err(req, ESTALE);
        if (r->status != SFS_NFS3_OK) return (void)fuse_reply_err(req, errno_of(r->status));
        auto& ok = r->sfs_READDIR3res_u.resok;
        note_attr(*d, ok.dir_attributes, sent);
        std::memcpy(dh->cookieverf, ok.cookieverf, 8);
        std::vector<char> out(size);
        std::size_t used = 0;
        for (auto* e = ok.reply.entries; e; e = e->nextentry) {
          struct stat st {};
          st.st_ino = e->fileid;
          const std::size_t n = fuse_add_direntry(req, out.data() + used, size - used, e->name, &st,
                                                  static_cast<off_t>(e->cookie));
          if (n > size - used) break;
          used += n;
        }
        fuse_reply_buf(req, out.data(), used);
      });
}

}  // namespace sfsclient
