// key_change_test.cc: key change messages and the file of changed keys
// (sfs/key_change.h), without a server.
#include "sfs/key_change.h"

#include <gtest/gtest.h>

namespace sfs {
namespace {

SessionId session(std::uint8_t fill) {
  SessionId s;
  s.fill(fill);
  return s;
}

std::string line(const UserKey& k, const std::string& name, int uid) {
  return format_user_public_key(k.public_key()) + " " + name + " " + std::to_string(uid) + " " +
         std::to_string(uid) + "\n";
}

TEST(KeyChangeMessages, TheNewKeysSignatureBindsSessionNameAndKey) {
  const UserKey k = UserKey::generate(), other = UserKey::generate();
  const Bytes req = encode_key_change_request(k, "alice", session(1));
  auto ok = verify_key_change_request(session(1), req);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok.value().user, "alice");
  EXPECT_EQ(ok.value().new_key, k.public_key());
  EXPECT_FALSE(verify_key_change_request(session(2), req).ok()) << "another session";
  Bytes renamed = req;
  renamed[3] = 'b';  // "blice"
  EXPECT_FALSE(verify_key_change_request(session(1), renamed).ok()) << "another name";
  Bytes swapped = req;
  std::copy(other.public_key().ed25519.begin(), other.public_key().ed25519.end(), swapped.begin() + 8);
  EXPECT_FALSE(verify_key_change_request(session(1), swapped).ok()) << "another key";
  EXPECT_FALSE(verify_key_change_request(session(1), Bytes(req.begin(), req.end() - 1)).ok()) << "truncated";
  auto reply = decode_key_change_reply(encode_key_change_reply({false, "no"}));
  ASSERT_TRUE(reply.ok());
  EXPECT_FALSE(reply.value().changed);
  EXPECT_EQ(reply.value().reason, "no");
}

TEST(KeyChanges, AppliedOverTheAdministratorsDatabase) {
  const UserKey a = UserKey::generate(), b = UserKey::generate(), gone = UserKey::generate();
  const UserKey a2 = UserKey::generate(), gone2 = UserKey::generate();
  const UserDb db = UserDb::parse(line(a, "alice", 1000) + line(b, "bob", 1001), nullptr);
  KeyChanges ch;
  ch.set({"alice", a.public_key(), a.public_key(), a2.public_key()});
  ch.set({"carol", gone.public_key(), gone.public_key(), gone2.public_key()});  // not in db
  // Round trip through the file's text.
  std::vector<DbDiagnostic> diags;
  KeyChanges back = KeyChanges::parse(ch.format() + "garbage line\n", &diags);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(back.size(), 2u);
  std::vector<std::string> notes;
  const UserDb out = back.apply(db, &notes);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("\"carol\" ignored"), std::string::npos) << notes[0];
  EXPECT_EQ(out.find(a.public_key()), nullptr);
  ASSERT_NE(out.find(a2.public_key()), nullptr);
  EXPECT_EQ(out.find(a2.public_key())->name, "alice");
  EXPECT_EQ(out.find(a2.public_key())->uid, 1000u);
  EXPECT_EQ(out.find(a2.public_key())->admin_key, a.public_key());

  // A new key that is another user's: that entry is refused, others apply.
  KeyChanges dup;
  dup.set({"alice", a.public_key(), a.public_key(), b.public_key()});
  notes.clear();
  const UserDb out2 = dup.apply(db, &notes);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("already in the user database"), std::string::npos) << notes[0];
  EXPECT_EQ(out2.find(a.public_key())->name, "alice");
  EXPECT_EQ(out2.find(b.public_key())->name, "bob");

  // Changing back to the administrator's key removes the entry.
  ch.set({"alice", a.public_key(), a2.public_key(), a.public_key()});
  EXPECT_EQ(ch.size(), 1u);
}

}  // namespace
}  // namespace sfs
