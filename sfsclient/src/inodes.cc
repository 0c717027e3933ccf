// inodes.cc: see inodes.h.
#include "inodes.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>

namespace sfsclient {

InodeTable::InodeTable() {
  Inode root;
  root.ino = FUSE_ROOT_ID;
  root.nlookup = 1;
  by_ino_.emplace(FUSE_ROOT_ID, std::move(root));
}

Inode* InodeTable::find(fuse_ino_t ino) {
  auto it = by_ino_.find(ino);
  return it == by_ino_.end() ? nullptr : &it->second;
}

Inode* InodeTable::find(ServerId server, const sfs::fs::Handle& fh) {
  auto it = by_key_.find(Key{server, fh});
  return it == by_key_.end() ? nullptr : find(it->second);
}

Inode& InodeTable::get(ServerId server, const sfs::fs::Handle& fh, bool lookup) {
  Inode* in = find(server, fh);
  if (!in) {
    const fuse_ino_t ino = next_ino_++;
    Inode fresh;
    fresh.ino = ino;
    fresh.server = server;
    fresh.fh = fh;
    fresh.epoch = root_epoch(server);
    in = &by_ino_.emplace(ino, std::move(fresh)).first->second;
    by_key_.emplace(Key{server, fh}, ino);
    if (!lookup) unreferenced_.push_back(ino);
  }
  if (lookup) ++in->nlookup;
  return *in;
}

void InodeTable::trim_unreferenced(std::size_t keep) {
  while (unreferenced_.size() > keep) {
    const fuse_ino_t ino = unreferenced_.front();
    unreferenced_.pop_front();
    Inode* in = find(ino);
    // Looked up since (the kernel's forget drops it), open, or a root: kept.
    if (!in || in->nlookup > 0 || in->open_count > 0 || in->writes_in_flight > 0 || in->is_server_root) continue;
    if (Inode* parent = find(in->parent)) {
      auto it = parent->children.find(in->name);
      if (it != parent->children.end() && it->second == ino) {
        parent->children.erase(it);
        parent->forget_complete();  // the name exists, but is no longer listed
      }
    }
    unindex(*in);
    by_ino_.erase(ino);
  }
}

void InodeTable::forget(fuse_ino_t ino, std::uint64_t n) {
  Inode* in = find(ino);
  if (!in) return;
  in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
  if (in->nlookup > 0 || in->is_server_root || ino == FUSE_ROOT_ID || in->open_count > 0) return;
  unindex(*in);
  by_ino_.erase(ino);
}

// Only entries that still name this inode: after a rekey() another inode of
// the same file may hold the key.
void InodeTable::unindex(const Inode& in) {
  auto drop = [&](auto& map, const sfs::fs::Handle& fh) {
    auto it = map.find(Key{in.server, fh});
    if (it != map.end() && it->second == in.ino) map.erase(it);
  };
  drop(by_key_, in.fh);
  if (!in.old_fh.empty()) drop(by_old_key_, in.old_fh);
}

std::uint64_t InodeTable::root_epoch(ServerId server) const {
  auto it = epochs_.find(server);
  return it == epochs_.end() ? 0 : it->second;
}

void InodeTable::new_root_epoch(ServerId server) { ++epochs_[server]; }

void InodeTable::rekey(Inode& in, const sfs::fs::Handle& fh) {
  in.epoch = root_epoch(in.server);
  if (fh == in.fh) return;
  unindex(in);
  in.old_fh = std::move(in.fh);
  in.fh = fh;
  by_old_key_[Key{in.server, in.old_fh}] = in.ino;
  by_key_[Key{in.server, in.fh}] = in.ino;  // this inode wins over another of the same file
}

Inode* InodeTable::find_any(ServerId server, const sfs::fs::Handle& fh) {
  if (Inode* in = find(server, fh)) return in;
  auto it = by_old_key_.find(Key{server, fh});
  return it == by_old_key_.end() ? nullptr : find(it->second);
}

Clock::time_point InodeTable::store_attr(Inode& in, const nfs::Attr& a, std::uint64_t change,
                                         std::uint32_t lease_ms, Clock::time_point sent) {
  in.attr = a;
  // Computed before a change we were told about: use it for this answer,
  // never cache it. Nor for a handle from before the server's last new
  // root: its INVALIDATEs come under the new handle, which we would miss.
  if (lease_ms == 0 || change < in.invalidated_at || in.epoch < root_epoch(in.server)) {
    in.attr_until = sent;
    return sent;
  }
  in.attr_until = sent + std::chrono::milliseconds(lease_ms);
  if (a.type == nfs::FileType::kDir) {
    // No lease was held when this call was sent: the server told us of no
    // change since the last one ended, so the names learnt under it are void.
    if (in.entries_until < sent) {
      in.children.clear();
      in.negatives.clear();
      ++in.dir_gen;
    }
    in.entries_until = std::max(in.entries_until, in.attr_until);
  }
  return in.attr_until;
}

const nfs::Attr* InodeTable::cached_attr(const Inode& in, Clock::time_point now) const {
  if (!in.attr || in.attr_until <= now) return nullptr;
  return &*in.attr;
}

Inode* InodeTable::invalidate(ServerId server, const sfs::fs::Handle& fh, std::uint64_t change) {
  Inode* in = find(server, fh);
  if (!in) return nullptr;
  in->invalidated_at = std::max(in->invalidated_at, change);
  in->attr_until = Clock::time_point{};
  in->entries_until = Clock::time_point{};
  ++in->dir_gen;
  in->access.clear();
  return in;
}

void InodeTable::drop_leases(ServerId server) {
  for (auto& [ino, in] : by_ino_) {
    if (in.server != server) continue;
    in.attr_until = Clock::time_point{};
    in.entries_until = Clock::time_point{};
    ++in.dir_gen;
    in.access.clear();
  }
}

std::vector<fuse_ino_t> InodeTable::inodes_of(ServerId server) const {
  std::vector<fuse_ino_t> out;
  for (const auto& [ino, in] : by_ino_)
    if (in.server == server) out.push_back(ino);
  return out;
}

struct stat to_stat(const nfs::Attr& a, fuse_ino_t ino) {
  struct stat st {};
  st.st_ino = ino;
  mode_t type = S_IFREG;
  switch (a.type) {
    case nfs::FileType::kReg: type = S_IFREG; break;
    case nfs::FileType::kDir: type = S_IFDIR; break;
    case nfs::FileType::kBlk: type = S_IFBLK; break;
    case nfs::FileType::kChr: type = S_IFCHR; break;
    case nfs::FileType::kLnk: type = S_IFLNK; break;
    case nfs::FileType::kSock: type = S_IFSOCK; break;
    case nfs::FileType::kFifo: type = S_IFIFO; break;
  }
  st.st_mode = type | (a.mode & 07777);
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blocks = static_cast<blkcnt_t>((a.used + 511) / 512);
  st.st_blksize = 1 << 20;
  st.st_rdev = makedev(a.rdev_major, a.rdev_minor);
  st.st_atim = {static_cast<time_t>(a.atime.seconds), static_cast<long>(a.atime.nseconds)};
  st.st_mtim = {static_cast<time_t>(a.mtime.seconds), static_cast<long>(a.mtime.nseconds)};
  st.st_ctim = {static_cast<time_t>(a.ctime.seconds), static_cast<long>(a.ctime.nseconds)};
  return st;
}

double seconds_left(Clock::time_point until, Clock::time_point now) {
  if (until <= now) return 0.0;
  return std::chrono::duration<double>(until - now).count();
}

}  // namespace sfsclient
