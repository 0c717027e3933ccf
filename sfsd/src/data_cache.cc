// data_cache.cc: see data_cache.h.
#include "data_cache.h"

#include <algorithm>
#include <cstring>

namespace sfsd {

std::size_t DataCache::FhHash::operator()(const nfs::FileHandle& fh) const {
  // FNV-1a over the handle's bytes: handles are the backend's, not a
  // client's choice (sealed), so no one picks collisions.
  std::uint64_t h = 1469598103934665603ull;
  for (std::uint8_t b : fh.bytes()) h = (h ^ b) * 1099511628211ull;
  return static_cast<std::size_t>(h);
}

DataCache::DataCache(std::size_t max_bytes, std::chrono::milliseconds revalidate)
    : max_bytes_(max_bytes), revalidate_(revalidate), ghost_capacity_(std::max<std::size_t>(max_bytes / kBlock, 1)) {}

bool DataCache::admit(const nfs::FileHandle& fh, std::uint64_t index, std::size_t size) {
  if (bytes_ + size <= max_bytes_) return true;  // room: nothing is evicted
  const std::uint64_t key = FhHash{}(fh) ^ (index * 0x9e3779b97f4a7c15ull);
  if (ghosts_.erase(key)) return true;  // refused recently, read again: keep it now
  ++stats_.refused;
  ghosts_[key] = ++refusals_;
  ghost_order_.emplace_back(key, refusals_);
  while (ghost_order_.size() > ghost_capacity_) {
    // Forgotten unless admitted or refused again since (another number).
    const auto [old_key, number] = ghost_order_.front();
    if (auto g = ghosts_.find(old_key); g != ghosts_.end() && g->second == number) ghosts_.erase(g);
    ghost_order_.pop_front();
  }
  return false;
}

// The attributes that change when a file's data may have: size, mtime and
// ctime (a write through any path moves mtime; chmod and chown move ctime,
// which also drops the readers allowed under the old permissions), and the
// file's identity.
bool DataCache::same_version(const nfs::Attr& a, const nfs::Attr& b) {
  return a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime && a.fileid == b.fileid &&
         a.fsid == b.fsid && a.type == b.type;
}

void DataCache::drop_blocks(Entry& e) {
  for (auto& [index, held] : e.blocks) {
    bytes_ -= held.block->data.size();
    lru_.erase(held.lru);
    ++stats_.drops;
  }
  e.blocks.clear();
  e.readers.clear();
}

void DataCache::evict_to(std::size_t bytes) {
  while (bytes_ > bytes && !lru_.empty()) {
    BlockRef victim = lru_.front();
    auto f = files_.find(victim.fh);
    if (f == files_.end()) {  // cannot happen: blocks live in their entry
      lru_.pop_front();
      continue;
    }
    auto b = f->second.blocks.find(victim.index);
    bytes_ -= b->second.block->data.size();
    lru_.erase(b->second.lru);
    f->second.blocks.erase(b);
    ++stats_.drops;
  }
  // Entries without blocks only remember a change time; forget them when
  // they outnumber the blocks by far. Reads that looked up before now then
  // do not fill (floor_): they might have raced one of those changes.
  if (files_.size() > 4096 && files_.size() > 4 * (lru_.size() + 1)) {
    for (auto it = files_.begin(); it != files_.end();) {
      if (it->second.blocks.empty()) it = files_.erase(it);
      else ++it;
    }
    floor_ = clock_ + 1;
  }
}

DataCache::Lookup DataCache::lookup(const nfs::FileHandle& fh, const nfs::Cred& cred, std::uint64_t offset,
                                    std::uint32_t count, Hit* hit, std::uint64_t* generation) {
  std::lock_guard lk(mu_);
  *generation = clock_;
  auto f = files_.find(fh);
  auto miss = [&] {
    ++stats_.misses;
    return Lookup::kMiss;
  };
  if (f == files_.end() || !f->second.has_attr || count == 0) return miss();
  Entry& e = f->second;
  const std::uint64_t index = offset / kBlock;
  auto b = e.blocks.find(index);
  if (b == e.blocks.end()) return miss();
  const std::uint64_t in_block = offset - index * kBlock;
  const std::size_t have = b->second.block->data.size();
  // Only a read the block holds whole: a short reply without EOF would
  // look like the end of the file to FUSE.
  if (in_block + count > have && offset + count < e.attr.size) return miss();
  if (in_block >= have) return miss();
  if (std::find(e.readers.begin(), e.readers.end(), cred) == e.readers.end()) return miss();
  if (std::chrono::steady_clock::now() - e.checked > revalidate_) {
    ++stats_.revalidations;
    return Lookup::kRevalidate;
  }
  ++stats_.hits;
  lru_.splice(lru_.end(), lru_, b->second.lru);
  hit->block = b->second.block;
  hit->offset_in_block = static_cast<std::uint32_t>(in_block);
  hit->count = static_cast<std::uint32_t>(std::min<std::uint64_t>(count, have - in_block));
  hit->eof = offset + hit->count >= e.attr.size;
  hit->attr = e.attr;
  return Lookup::kHit;
}

void DataCache::fill(const nfs::FileHandle& fh, std::uint64_t generation, const nfs::Cred& cred,
                     std::uint64_t offset, std::span<const std::byte> data, bool eof, const nfs::Attr& attr) {
  if (!enabled() || attr.type != nfs::FileType::kReg) return;
  const bool whole = offset % kBlock == 0 && (data.size() == kBlock || (eof && data.size() < kBlock));
  const std::uint64_t index = offset / kBlock;
  bool wanted = whole && data.size() <= max_bytes_;
  if (wanted) {
    std::lock_guard lk(mu_);
    wanted = admit(fh, index, data.size());
  }
  // Copy outside the lock.
  std::shared_ptr<Block> block;
  if (wanted) {
    block = std::make_shared<Block>();
    block->data.assign(data.begin(), data.end());
  }
  std::lock_guard lk(mu_);
  if (generation < floor_) return;
  Entry& e = files_[fh];
  if (e.changed_at > generation) return;  // changed through sfsd after this read was sent
  if (e.has_attr && !same_version(e.attr, attr)) drop_blocks(e);
  e.attr = attr;
  e.has_attr = true;
  e.checked = std::chrono::steady_clock::now();
  if (std::find(e.readers.begin(), e.readers.end(), cred) == e.readers.end()) {
    if (e.readers.size() >= 64) e.readers.erase(e.readers.begin());
    e.readers.push_back(cred);
  }
  if (!block) return;
  if (auto old = e.blocks.find(index); old != e.blocks.end()) {
    bytes_ -= old->second.block->data.size();
    lru_.erase(old->second.lru);
    e.blocks.erase(old);
  }
  bytes_ += block->data.size();
  auto pos = lru_.insert(lru_.end(), BlockRef{fh, index});
  e.blocks.emplace(index, Entry::Held{std::move(block), pos});
  ++stats_.fills;
  evict_to(max_bytes_);
}

void DataCache::observe(const nfs::FileHandle& fh, const nfs::Attr& attr) {
  if (!enabled()) return;
  std::lock_guard lk(mu_);
  auto f = files_.find(fh);
  if (f == files_.end()) return;
  Entry& e = f->second;
  if (e.has_attr && !same_version(e.attr, attr)) drop_blocks(e);
  e.attr = attr;
  e.has_attr = true;
  e.checked = std::chrono::steady_clock::now();
}

void DataCache::changed(const nfs::FileHandle& fh) {
  if (!enabled()) return;
  std::lock_guard lk(mu_);
  auto f = files_.find(fh);
  if (f == files_.end()) {
    // Nothing held, but a read in flight must not fill from before.
    f = files_.emplace(fh, Entry{}).first;
  }
  Entry& e = f->second;
  drop_blocks(e);
  e.has_attr = false;
  e.changed_at = ++clock_;
}

DataCache::Stats DataCache::stats() const {
  std::lock_guard lk(mu_);
  Stats s = stats_;
  s.bytes = bytes_;
  return s;
}

}  // namespace sfsd
