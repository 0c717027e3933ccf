// data_cache_test.cc: sfsd's data cache (sfsd/src/data_cache.h) on its
// own: what it serves, to whom, and when it must not. The end-to-end tests
// through sfsd are in data_cache_sfsd_test.cc.
#include <gtest/gtest.h>

#include <thread>

#include "data_cache.h"

namespace sfsd {
namespace {

using namespace std::chrono_literals;
constexpr std::uint32_t K = DataCache::kBlock;

nfs::FileHandle handle(std::uint8_t n) {
  const std::uint8_t b[4] = {1, 2, 3, n};
  return nfs::FileHandle(b);
}

nfs::Attr attr(std::uint64_t size, std::uint32_t mtime_ns = 1) {
  nfs::Attr a;
  a.type = nfs::FileType::kReg;
  a.size = size;
  a.fileid = 42;
  a.mtime = {100, mtime_ns};
  a.ctime = {100, mtime_ns};
  return a;
}

std::vector<std::byte> bytes(std::size_t n, char c) { return std::vector<std::byte>(n, std::byte(c)); }

const nfs::Cred alice(1000, 1000), bob(1001, 1001);

// One block read by alice: filled, then alice's next read of it (or of a
// part) is a hit with the right bytes, count and eof.
TEST(DataCache, AWholeBlockIsServedAgainToWhoReadIt) {
  DataCache c(8 * K, 10s);
  const auto fh = handle(1);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  ASSERT_EQ(c.lookup(fh, alice, 0, K, &hit, &gen), DataCache::Lookup::kMiss);
  auto data = bytes(K, 'a');
  data[5] = std::byte('Z');
  c.fill(fh, gen, alice, 0, data, false, attr(3 * K));
  ASSERT_EQ(c.lookup(fh, alice, 0, K, &hit, &gen), DataCache::Lookup::kHit);
  EXPECT_EQ(hit.count, K);
  EXPECT_FALSE(hit.eof);
  EXPECT_EQ(hit.block->data[hit.offset_in_block + 5], std::byte('Z'));
  ASSERT_EQ(c.lookup(fh, alice, 5, 10, &hit, &gen), DataCache::Lookup::kHit);
  EXPECT_EQ(hit.offset_in_block, 5u);
  EXPECT_EQ(hit.count, 10u);
  EXPECT_EQ(hit.block->data[hit.offset_in_block], std::byte('Z'));
  // Not held: the next block, and a read crossing into it.
  EXPECT_EQ(c.lookup(fh, alice, K, K, &hit, &gen), DataCache::Lookup::kMiss);
  EXPECT_EQ(c.lookup(fh, alice, K - 10, 20, &hit, &gen), DataCache::Lookup::kMiss);
}

TEST(DataCache, TheLastShortBlockAnswersWithEof) {
  DataCache c(8 * K, 10s);
  const auto fh = handle(1);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  c.lookup(fh, alice, K, K, &hit, &gen);
  c.fill(fh, gen, alice, K, bytes(100, 'e'), true, attr(K + 100));
  ASSERT_EQ(c.lookup(fh, alice, K, K, &hit, &gen), DataCache::Lookup::kHit);
  EXPECT_EQ(hit.count, 100u);
  EXPECT_TRUE(hit.eof);
  ASSERT_EQ(c.lookup(fh, alice, K + 50, 10, &hit, &gen), DataCache::Lookup::kHit);
  EXPECT_FALSE(hit.eof);
  // A partial block that is not the file's end is never kept.
  const auto other = handle(2);
  c.lookup(other, alice, 0, K, &hit, &gen);
  c.fill(other, gen, alice, 0, bytes(100, 'p'), false, attr(3 * K));
  EXPECT_EQ(c.lookup(other, alice, 0, 100, &hit, &gen), DataCache::Lookup::kMiss);
}

// The backend let alice read; bob has not been asked: he reads through
// (and is refused or not by the backend), never from alice's blocks.
TEST(DataCache, OthersReadThroughUntilTheBackendLetThem) {
  DataCache c(8 * K, 10s);
  const auto fh = handle(1);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  c.lookup(fh, alice, 0, K, &hit, &gen);
  c.fill(fh, gen, alice, 0, bytes(K, 'a'), false, attr(2 * K));
  EXPECT_EQ(c.lookup(fh, bob, 0, K, &hit, &gen), DataCache::Lookup::kMiss);
  nfs::Cred alice_other_group(1000, 1000, std::vector<std::uint32_t>{5});
  EXPECT_EQ(c.lookup(fh, alice_other_group, 0, K, &hit, &gen), DataCache::Lookup::kMiss)
      << "credentials are compared whole";
  c.fill(fh, gen, bob, 0, bytes(K, 'a'), false, attr(2 * K));
  EXPECT_EQ(c.lookup(fh, bob, 0, K, &hit, &gen), DataCache::Lookup::kHit);
}

// A change through sfsd drops the blocks, and a READ that looked up before
// the change (its reply may hold the old data) cannot put them back.
TEST(DataCache, AChangeDropsBlocksAndStopsReadsInFlightFromFilling) {
  DataCache c(8 * K, 10s);
  const auto fh = handle(1);
  std::uint64_t before = 0, after = 0;
  DataCache::Hit hit;
  c.lookup(fh, alice, 0, K, &hit, &before);
  c.fill(fh, before, alice, 0, bytes(K, 'o'), false, attr(2 * K));
  c.changed(fh);
  EXPECT_EQ(c.lookup(fh, alice, 0, K, &hit, &after), DataCache::Lookup::kMiss);
  c.fill(fh, before, alice, 0, bytes(K, 'o'), false, attr(2 * K));
  EXPECT_EQ(c.lookup(fh, alice, 0, K, &hit, &after), DataCache::Lookup::kMiss) << "a stale fill was kept";
  c.fill(fh, after, alice, 0, bytes(K, 'n'), false, attr(2 * K, 2));
  ASSERT_EQ(c.lookup(fh, alice, 0, K, &hit, &after), DataCache::Lookup::kHit);
  EXPECT_EQ(hit.block->data[0], std::byte('n'));
  // Also for a file the cache held nothing of when it changed.
  const auto other = handle(2);
  c.lookup(other, alice, 0, K, &hit, &before);
  c.changed(other);
  c.fill(other, before, alice, 0, bytes(K, 'o'), false, attr(2 * K));
  EXPECT_EQ(c.lookup(other, alice, 0, K, &hit, &after), DataCache::Lookup::kMiss);
}

// Attributes seen later that differ (a change behind sfsd's back, or a
// chmod) drop the blocks; the same attributes renew them.
TEST(DataCache, OtherAttributesDropTheBlocks) {
  DataCache c(8 * K, 10s);
  const auto fh = handle(1);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  c.lookup(fh, alice, 0, K, &hit, &gen);
  c.fill(fh, gen, alice, 0, bytes(K, 'a'), false, attr(2 * K));
  c.observe(fh, attr(2 * K));
  EXPECT_EQ(c.lookup(fh, alice, 0, K, &hit, &gen), DataCache::Lookup::kHit);
  c.observe(fh, attr(2 * K, 7));  // same size, new mtime
  EXPECT_EQ(c.lookup(fh, alice, 0, K, &hit, &gen), DataCache::Lookup::kMiss);
}

TEST(DataCache, OldBlocksAreRevalidatedFirst) {
  DataCache c(8 * K, 50ms);
  const auto fh = handle(1);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  c.lookup(fh, alice, 0, K, &hit, &gen);
  c.fill(fh, gen, alice, 0, bytes(K, 'a'), false, attr(2 * K));
  std::this_thread::sleep_for(80ms);
  EXPECT_EQ(c.lookup(fh, alice, 0, K, &hit, &gen), DataCache::Lookup::kRevalidate);
  c.observe(fh, attr(2 * K));  // what the GETATTR said: unchanged
  EXPECT_EQ(c.lookup(fh, alice, 0, K, &hit, &gen), DataCache::Lookup::kHit);
}

TEST(DataCache, StaysWithinItsBytesDroppingTheLeastRecentlyUsed) {
  DataCache c(3 * K, 10s);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  for (std::uint8_t f = 1; f <= 3; ++f) {
    c.lookup(handle(f), alice, 0, K, &hit, &gen);
    c.fill(handle(f), gen, alice, 0, bytes(K, 'x'), false, attr(2 * K));
  }
  ASSERT_EQ(c.lookup(handle(1), alice, 0, K, &hit, &gen), DataCache::Lookup::kHit);  // 1 is now recent
  // Full: 4 gets in at its second read (see the next test).
  for (int i = 0; i < 2; ++i) {
    c.lookup(handle(4), alice, 0, K, &hit, &gen);
    c.fill(handle(4), gen, alice, 0, bytes(K, 'x'), false, attr(2 * K));
  }
  EXPECT_LE(c.stats().bytes, 3u * K);
  EXPECT_EQ(c.lookup(handle(2), alice, 0, K, &hit, &gen), DataCache::Lookup::kMiss) << "2 was the oldest";
  EXPECT_EQ(c.lookup(handle(1), alice, 0, K, &hit, &gen), DataCache::Lookup::kHit);
  EXPECT_EQ(c.lookup(handle(4), alice, 0, K, &hit, &gen), DataCache::Lookup::kHit);
}

// A full cache takes a block at its second read while it remembers the
// first refusal (the last 3 refusals here, its size in blocks), not before.
TEST(DataCache, AFullCacheTakesABlockReadAgainSoonNotAtItsFirstRead) {
  DataCache c(3 * K, 10s);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  auto read = [&](std::uint8_t f) {
    if (c.lookup(handle(f), alice, 0, K, &hit, &gen) == DataCache::Lookup::kHit) return true;
    c.fill(handle(f), gen, alice, 0, bytes(K, static_cast<char>('a' + f)), false, attr(2 * K));
    return false;
  };
  for (std::uint8_t f = 1; f <= 3; ++f) read(f);
  EXPECT_EQ(c.stats().fills, 3u) << "room: each kept at once";
  EXPECT_FALSE(read(4));
  EXPECT_EQ(c.stats().fills, 3u) << "full: 4 was not copied at its first read";
  EXPECT_EQ(c.stats().refused, 1u);
  EXPECT_TRUE(read(1) && read(2) && read(3)) << "and nothing was evicted for it";
  EXPECT_FALSE(read(4));  // the second read, with the first remembered: kept
  EXPECT_EQ(c.stats().fills, 4u);
  EXPECT_TRUE(read(4));
  ASSERT_EQ(hit.block->data.front(), std::byte('a' + 4));
  EXPECT_EQ(c.stats().bytes, 3u * K);
  // 1 was the least recently used: it made room.
  EXPECT_EQ(c.lookup(handle(1), alice, 0, K, &hit, &gen), DataCache::Lookup::kMiss);
  // A refusal is forgotten after 3 more: 5's second read comes too late.
  EXPECT_FALSE(read(5));
  for (std::uint8_t f = 6; f <= 8; ++f) read(f);
  const auto fills = c.stats().fills;
  EXPECT_FALSE(read(5));
  EXPECT_EQ(c.stats().fills, fills);
}

// The case the rule is for: passes over more than the cache holds (one
// file of 12 blocks read whole, again and again, through 4 blocks) copy
// nothing once the cache is full and evict nothing: what it held before
// stays, and keeps hitting. (With plain LRU every block was copied and
// evicted before its next read: no hits at all.)
TEST(DataCache, PassesOverMoreThanItHoldsCopyNothingAndEvictNothing) {
  DataCache c(4 * K, 10s);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  const nfs::Attr big = attr(12ull * K);
  std::uint64_t hits = 0;
  for (int pass = 0; pass < 3; ++pass) {
    for (std::uint64_t b = 0; b < 12; ++b) {
      if (c.lookup(handle(9), alice, b * K, K, &hit, &gen) == DataCache::Lookup::kHit) {
        ++hits;
        continue;
      }
      c.fill(handle(9), gen, alice, b * K, bytes(K, 'z'), false, big);
    }
  }
  EXPECT_EQ(c.stats().fills, 4u) << "the first 4 blocks, while there was room; none after";
  EXPECT_EQ(c.stats().drops, 0u);
  EXPECT_EQ(hits, 8u) << "passes 2 and 3 hit the 4 blocks held";
}

TEST(DataCache, OffHoldsNothing) {
  DataCache c(0, 10s);
  std::uint64_t gen = 0;
  DataCache::Hit hit;
  c.fill(handle(1), gen, alice, 0, bytes(K, 'x'), false, attr(2 * K));
  EXPECT_EQ(c.lookup(handle(1), alice, 0, K, &hit, &gen), DataCache::Lookup::kMiss);
  EXPECT_EQ(c.stats().bytes, 0u);
}

}  // namespace
}  // namespace sfsd
