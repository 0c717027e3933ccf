// handle_seal_test.cc: sealed file handles (sfsd/src/handle_seal.h) as a
// unit: one sealed form per handle, binding to the export, key grace
// checked when a handle is opened (not only when the keys are loaded).
#include "handle_seal.h"

#include <gtest/gtest.h>

#include <vector>

namespace sfsd {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;
namespace nfs = asmp::nfs;

constexpr std::int64_t kT0 = 1'800'000'000;  // unix seconds

Clock::time_point at(std::int64_t s) { return Clock::time_point(std::chrono::seconds(s)); }

// Keys with these ids, the first sealing; key N created N hours before kT0.
HandleKeys keys(std::initializer_list<std::uint8_t> ids) {
  HandleKeys k;
  for (std::uint8_t id : ids) {
    HandleKey h;
    h.id = id;
    h.created = kT0 - 3600 * std::int64_t{id};
    h.secret.fill(static_cast<std::uint8_t>(id * 3 + 1));
    k.keys.push_back(h);
  }
  return k;
}

nfs::FileHandle fh(std::initializer_list<std::uint8_t> b) { return nfs::FileHandle(std::vector<std::uint8_t>(b)); }

TEST(HandleSeal, OneSealedFormPerHandleThatOpensToIt) {
  HandleSealer s(keys({1}), 24h, at(kT0));
  const auto a = s.seal(fh({1, 2, 3})), b = s.seal(fh({1, 2, 3})), c = s.seal(fh({1, 2, 4}));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.size(), 3 + kSealOverhead);
  EXPECT_EQ(a[0], 2) << "version 2: bound to the export";
  EXPECT_EQ(s.open(a, at(kT0)), fh({1, 2, 3}));
  auto v1 = a;
  v1[0] = 1;
  EXPECT_TRUE(s.open(v1, at(kT0)).empty()) << "a version-1 handle (not bound to an export) must not open";
  for (std::size_t bit = 0; bit < a.size() * 8; bit += 7) {
    auto bad = a;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_TRUE(s.open(bad, at(kT0)).empty()) << "bit " << bit;
  }
}

// A directory moved aside and another put in its place: the backend still
// opens the old files by their handles, so only the binding to the root
// keeps an old sealed handle from reaching them.
TEST(HandleSeal, AHandleSealedForOneExportOpensForNoOther) {
  HandleSealer base(keys({1}), 24h, at(kT0));
  const auto old_root = base.bound_to(fh({9, 9, 1}));
  const auto new_root = base.bound_to(fh({9, 9, 2}));
  const auto sealed = old_root->seal(fh({5, 6, 7}));
  EXPECT_EQ(old_root->open(sealed, at(kT0)), fh({5, 6, 7}));
  EXPECT_EQ(base.bound_to(fh({9, 9, 1}))->open(sealed, at(kT0)), fh({5, 6, 7}))
      << "the same keys and root after a restart open it";
  EXPECT_TRUE(new_root->open(sealed, at(kT0)).empty());
  EXPECT_TRUE(base.open(sealed, at(kT0)).empty());
  EXPECT_TRUE(old_root->open(base.seal(fh({5, 6, 7})), at(kT0)).empty());
  EXPECT_NE(new_root->seal(fh({5, 6, 7})), sealed);
}

TEST(HandleSeal, ARotatedKeyOpensUntilItsGraceEndsEvenInALongRunningSealer) {
  // Key 1 was made an hour before kT0 and seals; key 2 sealed before it.
  const HandleSealer before(keys({2}), 24h, at(kT0 - 2 * 3600));
  const auto by_old = before.seal(fh({4, 4}));
  const HandleSealer now(keys({1, 2}), 24h, at(kT0));
  const std::int64_t grace_end = kT0 - 3600 + 24 * 3600;
  EXPECT_EQ(now.open(by_old, at(kT0)), fh({4, 4}));
  EXPECT_EQ(now.open(by_old, at(grace_end)), fh({4, 4}));
  EXPECT_TRUE(now.open(by_old, at(grace_end + 1)).empty())
      << "the grace is checked when a handle is opened, not only when the keys were loaded";
  EXPECT_EQ(now.open(now.seal(fh({4, 4})), at(grace_end + 365 * 24 * 3600)), fh({4, 4}))
      << "the sealing key has no end";
  const auto bound = now.bound_to(fh({1}));
  const auto bound_old = before.bound_to(fh({1}))->seal(fh({4, 4}));
  EXPECT_EQ(bound->open(bound_old, at(grace_end)), fh({4, 4}));
  EXPECT_TRUE(bound->open(bound_old, at(grace_end + 1)).empty()) << "binding keeps the grace";
  // Loaded after the grace, the old key is not there at all.
  const HandleSealer late(keys({1, 2}), 24h, at(grace_end + 1));
  EXPECT_TRUE(late.open(by_old, at(kT0)).empty());
}

}  // namespace
}  // namespace sfsd
