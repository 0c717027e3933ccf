// data_cache.h: file data sfsd has read from the backend, kept so that a
// repeated READ skips the NFS hop (Ganesha and the backend color: about a
// third of a read's CPU, docs/benchmarks.md). The `data_cache` setting
// bounds it in bytes (default 256 MiB; 0: off).
//
// What may be served from it, and why that is never staler than the lease
// rules of docs/protocol.md allow:
//   - Blocks are 1 MiB, aligned; only whole blocks (or the file's last,
//     short one) are kept, filled from READ replies.
//   - Admission: while there is room, every such block is kept. A full
//     cache takes a block only if that block was refused recently (within
//     the last `max_bytes / 1 MiB` refusals: it is read again within about
//     the cache's size of other reads, so keeping it can pay); the first
//     refusal only remembers its name. So a sequential pass over more than
//     the cache holds costs no copy and evicts nothing (with plain LRU it
//     copied every block and evicted each before it was read again),
//     while a working set that fits gets in at its second read.
//   - A file's blocks are valid for the attributes (size, mtime, ctime) the
//     backend reported when they were read. Every attribute sfsd sees from
//     the backend for that handle afterwards (any reply's post-op or wcc
//     attributes) is compared: a difference drops the file's blocks. A
//     change through sfsd (changed(): WRITE, SETATTR, ...) drops them and
//     bumps the file's generation, so a READ that was already on its way to
//     the backend cannot put the old data back (fill() checks the
//     generation it started with).
//   - A change made behind sfsd's back is seen at the latest `revalidate`
//     after the blocks were last checked: a hit older than that first asks
//     the backend for the attributes (GETATTR, with the caller's
//     credentials).
//   - Permissions: a block is served only to credentials (uid, gid, groups)
//     the backend has already let read this file since its attributes last
//     changed (a chmod or chown changes ctime, dropping everything); others
//     read through once, as before.
//
// Thread safety: one mutex. Lookups and invalidations run on color 0,
// fills on the connections' colors; each holds the lock for a map lookup
// or a pointer swap, never for a copy of data.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "asmp/nfs.h"

namespace sfsd {

namespace nfs = asmp::nfs;

class DataCache {
 public:
  static constexpr std::uint32_t kBlock = 1u << 20;

  struct Block {
    std::vector<std::byte> data;  // kBlock bytes, or fewer for the file's last block
  };

  // What a hit gives: the block holding the range, the part of it asked
  // for, and the attributes it is valid for.
  struct Hit {
    std::shared_ptr<const Block> block;
    std::uint32_t offset_in_block = 0;
    std::uint32_t count = 0;
    bool eof = false;
    nfs::Attr attr;
  };
  enum class Lookup { kMiss, kHit, kRevalidate };

  struct Stats {
    std::uint64_t hits = 0, misses = 0, fills = 0, revalidations = 0, drops = 0;
    std::uint64_t refused = 0;  // blocks not kept (full, and not read again soon)
    std::uint64_t bytes = 0;  // held now
  };

  DataCache(std::size_t max_bytes, std::chrono::milliseconds revalidate);

  bool enabled() const { return max_bytes_ > 0; }

  // A READ of [offset, offset + count) by `cred`. kHit fills *hit.
  // kRevalidate: the blocks are there but not checked for `revalidate`:
  // ask the backend for the attributes, pass them to observe(), then look
  // up again. `generation` (always set) is what fill() needs on a miss.
  Lookup lookup(const nfs::FileHandle& fh, const nfs::Cred& cred, std::uint64_t offset, std::uint32_t count,
                Hit* hit, std::uint64_t* generation);

  // A READ reply from the backend, by `cred`, for a READ that looked up
  // with `generation`. Keeps whole blocks only (offset aligned, count a
  // block or up to the end of the file).
  void fill(const nfs::FileHandle& fh, std::uint64_t generation, const nfs::Cred& cred, std::uint64_t offset,
            std::span<const std::byte> data, bool eof, const nfs::Attr& attr);

  // Attributes the backend reported for fh (any reply); drops its blocks if
  // they differ from those its blocks were read under, else marks them
  // checked now.
  void observe(const nfs::FileHandle& fh, const nfs::Attr& attr);

  // fh changed through sfsd: drop its blocks; reads in flight will not
  // fill.
  void changed(const nfs::FileHandle& fh);

  Stats stats() const;

 private:
  struct BlockRef {
    nfs::FileHandle fh;
    std::uint64_t index;
  };
  struct Entry {
    nfs::Attr attr;  // what the blocks are valid for
    bool has_attr = false;
    std::chrono::steady_clock::time_point checked{};
    std::uint64_t changed_at = 0;    // clock_ at its last change through sfsd
    std::vector<nfs::Cred> readers;  // allowed by the backend under attr
    struct Held {
      std::shared_ptr<const Block> block;
      std::list<BlockRef>::iterator lru;
    };
    std::map<std::uint64_t, Held> blocks;
  };
  struct FhHash {
    std::size_t operator()(const nfs::FileHandle& fh) const;
  };

  static bool same_version(const nfs::Attr& a, const nfs::Attr& b);
  // Whether to copy a block into a full cache (see the top); mu_ held.
  bool admit(const nfs::FileHandle& fh, std::uint64_t index, std::size_t size);
  void drop_blocks(Entry& e);  // mu_ held
  void evict_to(std::size_t bytes);  // mu_ held

  const std::size_t max_bytes_;
  const std::chrono::milliseconds revalidate_;
  mutable std::mutex mu_;
  std::unordered_map<nfs::FileHandle, Entry, FhHash> files_;
  std::list<BlockRef> lru_;  // least recently used first
  std::size_t bytes_ = 0;
  // Counts changes through sfsd. A READ notes it when it looks up; its
  // fill is refused if its file changed since (changed_at), or if entries
  // that might have said so were forgotten since (floor_).
  std::uint64_t clock_ = 0;
  std::uint64_t floor_ = 0;
  // Blocks refused while full, the latest `ghost_capacity_`, by a hash of
  // (handle, index): a collision only admits a block early.
  std::size_t ghost_capacity_;
  std::unordered_map<std::uint64_t, std::uint64_t> ghosts_;  // key -> its refusal's number
  std::deque<std::pair<std::uint64_t, std::uint64_t>> ghost_order_;  // (key, number), oldest first
  std::uint64_t refusals_ = 0;
  Stats stats_;
};

}  // namespace sfsd
