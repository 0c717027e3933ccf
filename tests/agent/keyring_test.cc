// keyring_test.cc: the agent's key ring (KeyRing in sfs/agent.h): which key
// signs for which server, updates in place, deletion by key and by file,
// limits, and refusal of bad names. Starts no processes.
#include <gtest/gtest.h>

#include "sfs/agent.h"
#include "sfs/names.h"

namespace sfs {
namespace {

const std::string kServerA = "@127.0.0.1%4000,7dxcrcj3cnnrlte6xsmu2ocz2wygnrap";
const std::string kServerB = "@sfs.example.org%4000,hu2wplgqvkirijt7f3lvvxgaeo6ed2ww";

UserKey key_n(int n) {
  Key32 seed;
  seed.fill(static_cast<std::uint8_t>(n));
  return UserKey::from_seed(seed);
}

std::string pub(int n) { return format_user_public_key(key_n(n).public_key()); }

TEST(KeyRing, FirstKeyServesAnyServer) {
  KeyRing ring;
  EXPECT_EQ(ring.pick(kServerA), nullptr);
  ASSERT_TRUE(ring.add(key_n(1), "alice", "", "/k1").ok());
  ASSERT_TRUE(ring.add(key_n(2), "bob", "", "/k2").ok());
  const KeyRing::Entry* e = ring.pick(kServerA);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->name, "alice");
  EXPECT_EQ(ring.pick(kServerB), e);
}

TEST(KeyRing, ServerRestrictionPicksTheFirstMatch) {
  KeyRing ring;
  auto r = ring.add(key_n(1), "alice", kServerA, "/k1");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_NE(r.value().find("for " + kServerA), std::string::npos) << r.value();
  ASSERT_TRUE(ring.add(key_n(2), "bob", "", "/k2").ok());
  EXPECT_EQ(ring.pick(kServerA)->name, "alice");
  EXPECT_EQ(ring.pick(kServerB)->name, "bob");  // alice's key is for A only
  ring.remove(DeleteKeyRequest::By::kComment, "/k2");
  EXPECT_EQ(ring.pick(kServerB), nullptr);
}

TEST(KeyRing, AddingAKeyAgainUpdatesItInPlace) {
  KeyRing ring;
  ASSERT_TRUE(ring.add(key_n(1), "alice", "", "/k1").ok());
  ASSERT_TRUE(ring.add(key_n(2), "bob", "", "/k2").ok());
  auto r = ring.add(key_n(1), "carol", kServerA, "/elsewhere");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().rfind("updated ", 0), 0u) << r.value();
  auto list = ring.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0], (AgentKeyInfo{pub(1), "carol", kServerA, "/elsewhere"}));
  EXPECT_EQ(list[1], (AgentKeyInfo{pub(2), "bob", "", "/k2"}));
}

TEST(KeyRing, DeleteByPublicKeyOrByComment) {
  KeyRing ring;
  ASSERT_TRUE(ring.add(key_n(1), "alice", "", "/same").ok());
  ASSERT_TRUE(ring.add(key_n(2), "bob", "", "/same").ok());
  ASSERT_TRUE(ring.add(key_n(3), "carol", "", "/other").ok());
  EXPECT_EQ(ring.remove(DeleteKeyRequest::By::kPublicKey, pub(3)), 1u);
  EXPECT_EQ(ring.remove(DeleteKeyRequest::By::kPublicKey, pub(3)), 0u);
  EXPECT_EQ(ring.remove(DeleteKeyRequest::By::kComment, "/same"), 2u);
  EXPECT_EQ(ring.size(), 0u);
  ASSERT_TRUE(ring.add(key_n(4), "dave", "", "").ok());
  EXPECT_EQ(ring.clear(), 1u);
  EXPECT_EQ(ring.pick(kServerA), nullptr);
}

TEST(KeyRing, RefusesBadNamesAndServers) {
  KeyRing ring;
  auto r = ring.add(key_n(1), "Alice", "", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("--name"), std::string::npos) << r.error();
  EXPECT_FALSE(ring.add(key_n(1), "", "", "").ok());
  EXPECT_FALSE(ring.add(key_n(1), "alice", "@127.0.0.1%4000", "").ok());
  EXPECT_FALSE(ring.add(key_n(1), "alice", "127.0.0.1:4000", "").ok());
  EXPECT_EQ(ring.size(), 0u);
}

TEST(KeyRing, HoldsAtMostTheLimit) {
  KeyRing ring;
  for (std::size_t i = 0; i < kMaxAgentKeys; ++i)
    ASSERT_TRUE(ring.add(key_n(static_cast<int>(i) + 1), "alice", "", "/k").ok());
  auto r = ring.add(key_n(200), "alice", "", "/k");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("sfskey delete"), std::string::npos) << r.error();
  // Updating one that is there still works at the limit.
  EXPECT_TRUE(ring.add(key_n(1), "bob", "", "/k").ok());
  // And the list still fits in one message.
  KeyListReply reply{ring.list()};
  for (auto& k : reply.keys) k.comment = std::string(kMaxAgentCommentChars, 'c');
  for (auto& k : reply.keys) k.server = kServerB;
  EXPECT_LE(encode_agent_message(reply).size(), kMaxAgentMessageBytes);
}

TEST(KeyRing, SignsWithTheKeyItHolds) {
  KeyRing ring;
  ASSERT_TRUE(ring.add(key_n(7), "alice", "", "").ok());
  const KeyRing::Entry* e = ring.pick(kServerA);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->key->public_key(), key_n(7).public_key());
  EXPECT_EQ(e->key->ed25519_seed(), key_n(7).ed25519_seed());
}

}  // namespace
}  // namespace sfs
