// inodes.h: the client's inode table: FUSE inode numbers for the files of
// every mounted server, what the kernel was told about each (its lookup
// count, the names it caches in a directory), and the attributes cached
// under the server's leases.
//
// Lives on sfsclient's metadata color (0); not thread-safe.
//
// Inode 1 is /sfs itself. A file is known by (server, sealed handle): the
// server seals one handle per file (docs/protocol.md), so hard links and
// repeated lookups map to one inode. Numbers are never reused while the
// process lives (generation 0 is then always right).
//
// Leases: an attribute cached with lease L, obtained by a call sent at T,
// is used until T + L unless INVALIDATE(handle, c) arrives first; a
// directory's names are used while its lease lasts, and forgotten when a
// lease is renewed after it lapsed (changes in the gap were not told); after an
// INVALIDATE, attributes of that handle with a change number below c are
// never cached again (they were computed before the change). Nor are the
// attributes of an inode whose handle is from before its server's last new
// root (the server sends INVALIDATE under the handle it seals now).
#pragma once

#include <fuse3/fuse_lowlevel.h>

#include <chrono>
#include <functional>
#include <vector>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "asmp/nfs.h"
#include "asmp/runtime.h"
#include "sfs/file_client.h"

namespace sfsclient {

namespace nfs = asmp::nfs;
using Clock = asmp::Clock;
using ServerId = std::uint32_t;  // index of a mounted server; 0: none (/sfs)

struct Inode {
  fuse_ino_t ino = 0;
  ServerId server = 0;
  sfs::fs::Handle fh;
  std::uint64_t nlookup = 0;  // the kernel's references (lookup count)
  bool is_server_root = false;
  // Where the file was last reached (LOOKUP, CREATE, MKDIR, SYMLINK, MKNOD,
  // LINK, a RENAME's target): to find it again by path when its handle no
  // longer opens (refind.cc). parent 0: unknown.
  fuse_ino_t parent = 0;
  std::string name;
  // The server's root epoch (InodeTable::root_epoch) when fh was learnt.
  std::uint64_t epoch = 0;
  sfs::fs::Handle old_fh;  // fh before the last rekey(), if any

  // Cached under a lease.
  std::optional<nfs::Attr> attr;
  Clock::time_point attr_until{};
  std::uint64_t invalidated_at = 0;  // highest INVALIDATE change number seen

  // Directories: names the kernel may cache, positive (-> inode) and
  // negative, valid while this directory's lease lasts.
  std::map<std::string, fuse_ino_t> children;
  std::set<std::string> negatives;
  Clock::time_point entries_until{};
  // `children` names every entry of this directory (generation
  // complete_gen): a name not there does not exist, and a LOOKUP of it is
  // answered here. Learnt from a listing read whole under the lease, or at
  // the MKDIR that made it empty; kept by this client's own changes, each
  // of which updates `children` when it succeeds; forgotten when one fails
  // (its outcome may be unknown) or a name leaves `children` otherwise.
  std::optional<std::uint64_t> complete_gen;
  bool names_complete(Clock::time_point now) const { return complete_gen == dir_gen && entries_until > now; }
  void set_complete() { complete_gen = dir_gen; }
  void forget_complete() { complete_gen.reset(); }
  // Bumped whenever what was learnt of this directory's entries is void
  // (INVALIDATE, a lost connection, a lease that lapsed before it was
  // renewed): names and listings read before are not used.
  std::uint64_t dir_gen = 0;
  // LOOKUPs in this directory that went to the server, and its listing
  // read ahead into the table at the second one (dir_scan.cc).
  struct Scan {
    std::uint64_t gen = 0;  // the dir_gen the fields below are for
    unsigned misses = 0;
    bool done = false;      // the listing was read (or tried) in generation `gen`
    // While it is read: the lookups waiting for it (also held by the reader,
    // which runs them even if this inode is gone by then).
    std::shared_ptr<std::vector<std::function<void()>>> waiters;
  } scan;

  // ACCESS answers per local uid (granted bits), under the same lease.
  std::map<uid_t, std::pair<std::uint32_t, Clock::time_point>> access;

  // Files: size and mtime at the last close, for close-to-open caching.
  // Size, mtime and ctime when the file was last closed: the kernel's
  // cached pages are kept at the next open only if all three are the same.
  struct Version {
    std::uint64_t size = 0;
    nfs::Time mtime, ctime;
    friend bool operator==(const Version&, const Version&) = default;
  };
  std::optional<Version> closed_version;
  unsigned open_count = 0;
  // Writes answered to the kernel but not yet by the server (write-behind):
  // reads wait for them, and sizes shown include them.
  unsigned writes_in_flight = 0;
  std::uint64_t pending_end = 0;  // highest offset + length among them
  std::vector<std::function<void()>> write_waiters;
  // The server may carry out calls in flight in any order (ganesha runs
  // them on several threads), so two writes that overlap are never in
  // flight together: `writing` holds the [begin, end) of the writes sent,
  // `overlapping` the writes (counted in writes_in_flight) waiting, in
  // order, for an overlapping one to be answered.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> writing;
  std::deque<std::pair<std::pair<std::uint64_t, std::uint64_t>, std::function<void()>>> overlapping;
};

class InodeTable {
 public:
  InodeTable();

  Inode* find(fuse_ino_t ino);
  Inode* find(ServerId server, const sfs::fs::Handle& fh);
  // The inode for (server, fh), made if new; counts one kernel lookup if
  // `lookup` is set. An inode made without one (a directory's entries read
  // ahead, dir_scan.cc) is unreferenced: trim_unreferenced() may drop it.
  Inode& get(ServerId server, const sfs::fs::Handle& fh, bool lookup);
  // Drops the oldest unreferenced inodes (no kernel reference, not open)
  // beyond `keep`, and their names in their parent's children.
  void trim_unreferenced(std::size_t keep);
  // The kernel forgot n references; drops the inode when none are left
  // (server roots and /sfs stay).
  void forget(fuse_ino_t ino, std::uint64_t n);

  // Attributes from a reply to a call sent at `sent`. Returns the time
  // until which they may be cached (== sent when they may not).
  Clock::time_point store_attr(Inode& in, const nfs::Attr& a, std::uint64_t change,
                               std::uint32_t lease_ms, Clock::time_point sent);
  // Valid cached attributes, if any.
  const nfs::Attr* cached_attr(const Inode& in, Clock::time_point now) const;
  // INVALIDATE(fh, change): forget attributes and entries. Returns the
  // inode (to tell the kernel), or nullptr if we know nothing of it.
  Inode* invalidate(ServerId server, const sfs::fs::Handle& fh, std::uint64_t change);
  // The server's connection was lost: every lease it carried is void.
  void drop_leases(ServerId server);
  // Every inode of a server (for the kernel notifications after a loss).
  std::vector<fuse_ino_t> inodes_of(ServerId server) const;

  // Handles after the server came back with another root for the same
  // export (its handle key was rotated): each such return starts a new root
  // epoch; inodes learnt before it may need to be found again by path.
  std::uint64_t root_epoch(ServerId server) const;
  void new_root_epoch(ServerId server);
  // The inode now has handle fh (learnt in the current epoch). Its previous
  // handle still finds it (find_any), for calls sent with it meanwhile.
  void rekey(Inode& in, const sfs::fs::Handle& fh);
  // find(), or the inode whose handle was fh before its last rekey().
  Inode* find_any(ServerId server, const sfs::fs::Handle& fh);

  std::size_t size() const { return by_ino_.size(); }

 private:
  struct Key {
    ServerId server;
    sfs::fs::Handle fh;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return std::hash<std::string>{}(k.fh) ^ (static_cast<std::size_t>(k.server) * 0x9e3779b97f4a7c15ull);
    }
  };
  std::unordered_map<fuse_ino_t, Inode> by_ino_;
  std::unordered_map<Key, fuse_ino_t, KeyHash> by_key_;
  std::unordered_map<Key, fuse_ino_t, KeyHash> by_old_key_;  // rekey()'d inodes' previous handles
  std::unordered_map<ServerId, std::uint64_t> epochs_;
  std::deque<fuse_ino_t> unreferenced_;  // made without a kernel reference, oldest first
  void unindex(const Inode& in);
  fuse_ino_t next_ino_ = 2;
};

inline bool dot_or_dotdot(std::string_view n) { return n == "." || n == ".."; }

// struct stat for FUSE from NFS attributes (the server's uids and gids).
struct stat to_stat(const nfs::Attr& a, fuse_ino_t ino);
// Seconds left until `until`, for FUSE's entry/attr timeouts (0 if past).
double seconds_left(Clock::time_point until, Clock::time_point now);

}  // namespace sfsclient
