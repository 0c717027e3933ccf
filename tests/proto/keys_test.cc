// Tests for sfs/keys.h: Ed25519 against RFC 8032, key text forms, key files
// (mode, O_EXCL, refusal of readable files, malformed contents).
#include "sfs/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "test_util.h"

namespace sfs {
namespace {

using test::counting_key;
using test::unhex;

TEST(UserKey, Rfc8032Test1) {
  // [RFC 8032] 7.1, TEST 1: empty message.
  const UserKey k = UserKey::from_seed(
      test::to_array<32>(unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")));
  EXPECT_EQ(hex_encode(k.public_key().ed25519),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  const Signature sig = k.sign({});
  EXPECT_EQ(hex_encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e397"
            "01cf9b46bd25bf5f0595bbe24655141438e7a100b");
  EXPECT_TRUE(verify_signature(k.public_key().ed25519, {}, sig));
}

TEST(Signatures, RejectChangedMessageOrSignature) {
  const UserKey k = UserKey::generate();
  const Bytes msg = {1, 2, 3};
  Signature sig = k.sign(msg);
  EXPECT_TRUE(verify_signature(k.public_key().ed25519, msg, sig));
  const Bytes other = {1, 2, 4};
  EXPECT_FALSE(verify_signature(k.public_key().ed25519, other, sig));
  sig[10] ^= 1;
  EXPECT_FALSE(verify_signature(k.public_key().ed25519, msg, sig));
  EXPECT_FALSE(verify_signature(UserKey::generate().public_key().ed25519, msg, k.sign(msg)));
}

TEST(ServerKey, DerivesPublicKeysFromSecrets) {
  // The server key of the docs/protocol.md vectors.
  const ServerKey k = ServerKey::from_secrets(counting_key(0), counting_key(0x20));
  EXPECT_EQ(hex_encode(k.public_key().x25519),
            "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f");
  EXPECT_EQ(hex_encode(k.public_key().ed25519),
            "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7");
  EXPECT_EQ(format_server_public_key(k.public_key()),
            "x25519:r5amllnwr4swesxfwikou5t2n3eu3au5hv5v4gwrxjxt4ijyfbpq "
            "ed25519:fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxlq");
}

TEST(ServerKey, GeneratedKeysDiffer) {
  const ServerKey a = ServerKey::generate();
  const ServerKey b = ServerKey::generate();
  EXPECT_NE(a.public_key(), b.public_key());
  EXPECT_NE(a.public_key().x25519, a.public_key().ed25519);
}

TEST(KeyMove, MovedFromKeyIsWiped) {
  ServerKey a = ServerKey::from_secrets(counting_key(0), counting_key(0x20));
  ServerKey b = std::move(a);
  EXPECT_EQ(a.x25519_secret(), Key32{});  // NOLINT(bugprone-use-after-move): checking the wipe
  EXPECT_EQ(a.ed25519_seed(), Key32{});
  EXPECT_EQ(b.x25519_secret(), counting_key(0));
}

TEST(PublicKeyText, UserRoundTripAndRejects) {
  const UserKey k = UserKey::from_seed(counting_key(0x80));
  const std::string text = format_user_public_key(k.public_key());
  EXPECT_EQ(text, "ed25519:zuklg74vn2ktdfh7p63twpmb3tcwdvq2ou4ass34hyngipxf6ova");
  auto back = parse_user_public_key(text);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back.value(), k.public_key());
  EXPECT_FALSE(parse_user_public_key("x25519:" + text.substr(8)).ok());
  EXPECT_FALSE(parse_user_public_key(text.substr(0, text.size() - 1)).ok());
  EXPECT_FALSE(parse_user_public_key(text + "a").ok());
  std::string upper = text;
  upper[10] = 'A';
  EXPECT_FALSE(parse_user_public_key(upper).ok());
  EXPECT_FALSE(parse_user_public_key("").ok());
}

TEST(KeyFileText, RoundTrips) {
  const ServerKey s = ServerKey::from_secrets(counting_key(0), counting_key(0x20));
  auto ps = parse_key_file(format_key_file(s), "mem");
  ASSERT_TRUE(ps.ok()) << ps.error();
  ASSERT_EQ(ps.value().kind, KeyKind::kServer);
  EXPECT_EQ(ps.value().server->public_key(), s.public_key());

  const UserKey u = UserKey::from_seed(counting_key(0x80));
  auto pu = parse_key_file(format_key_file(u), "mem");
  ASSERT_TRUE(pu.ok()) << pu.error();
  ASSERT_EQ(pu.value().kind, KeyKind::kUser);
  EXPECT_EQ(pu.value().user->public_key(), u.public_key());
}

TEST(KeyFileText, RejectsMalformedFiles) {
  const std::string seed = base32_encode(counting_key(1));
  const std::pair<std::string, std::string> bad[] = {
      {"", "empty"},
      {"sfs-server-key v2\n", "not an SFS key file"},
      {"sfs-server-key v1\nx25519-secret " + seed + "\n", "lacks"},
      {"sfs-user-key v1\ned25519-seed " + seed + "\ned25519-seed " + seed + "\n", "repeated"},
      {"sfs-user-key v1\ned25519-seed " + seed.substr(1) + "\n", "base32"},
      {"sfs-user-key v1\nx25519-secret " + seed + "\n", "unexpected field"},
      {"sfs-user-key v1\ned25519-seed\n", "name value"},
      {"sfs-user-key v1\ned25519-seed " + seed + "\n" + std::string(5000, '#'), "too large"},
  };
  for (const auto& [text, why] : bad) {
    auto r = parse_key_file(text, "k");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().find(why), std::string::npos) << r.error();
  }
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sfs_keys_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const char* f : {"/a.key", "/b.key"}) ::unlink((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
};

TEST_F(KeyFileTest, WritesMode0600AndReadsBack) {
  const std::string path = dir_ + "/a.key";
  const ServerKey k = ServerKey::generate();
  ASSERT_TRUE(write_key_file(path, k).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto back = read_key_file(path);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back.value().server->public_key(), k.public_key());
}

TEST_F(KeyFileTest, RefusesToOverwrite) {
  const std::string path = dir_ + "/a.key";
  const UserKey first = UserKey::generate();
  ASSERT_TRUE(write_key_file(path, first).ok());
  const Status s = write_key_file(path, UserKey::generate());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("refusing to overwrite"), std::string::npos) << s.error();
  auto back = read_key_file(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value().user->public_key(), first.public_key());
}

TEST_F(KeyFileTest, RefusesToFollowSymlink) {
  const std::string target = dir_ + "/b.key";
  const std::string link = dir_ + "/a.key";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_FALSE(write_key_file(link, UserKey::generate()).ok());
  EXPECT_NE(::access(target.c_str(), F_OK), 0);
}

TEST_F(KeyFileTest, RefusesFileReadableByOthers) {
  const std::string path = dir_ + "/a.key";
  ASSERT_TRUE(write_key_file(path, UserKey::generate()).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto r = read_key_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("chmod 600"), std::string::npos) << r.error();
}

TEST_F(KeyFileTest, MissingFileIsAClearError) {
  auto r = read_key_file(dir_ + "/none.key");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("none.key"), std::string::npos);
}

}  // namespace
}  // namespace sfs
