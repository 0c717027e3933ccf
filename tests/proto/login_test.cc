// Tests for sfs/login.h: login good / unknown key / bad signature / wrong
// session / name mismatch / replayed; malformed messages; the user database
// parser with malformed lines reported by line number.
#include "sfs/login.h"

#include <gtest/gtest.h>

#include <tuple>

#include "test_util.h"

namespace sfs {
namespace {

using test::counting_key;

SessionId session(std::uint8_t b) {
  SessionId s;
  s.fill(b);
  return s;
}

struct Fixture {
  UserKey alice = UserKey::from_seed(counting_key(0x80));
  UserKey bob = UserKey::from_seed(counting_key(0xa0));
  UserKey mallory = UserKey::from_seed(counting_key(0xc0));
  UserDb db;
  std::vector<DbDiagnostic> diags;

  Fixture() {
    const std::string text = "# users of this server\n" +
                             format_user_public_key(alice.public_key()) +
                             " alice 1000 1000 27,100\n" +
                             format_user_public_key(bob.public_key()) + "  bob\t1001 1001 # no groups\n";
    db = UserDb::parse(text, &diags);
  }
};

TEST(Login, GoodLogins) {
  Fixture f;
  ASSERT_TRUE(f.diags.empty());
  ASSERT_EQ(f.db.size(), 2u);
  AuthTable table(session(7));
  LoginOutcome a = table.login(f.db, encode_login_request(f.alice, "alice", session(7), 1));
  ASSERT_TRUE(a.auth.has_value()) << a.refusal;
  EXPECT_EQ(a.auth->auth_number, 1u);
  EXPECT_EQ(a.auth->uid, 1000u);
  EXPECT_EQ(a.auth->gid, 1000u);
  EXPECT_EQ(a.auth->groups, (std::vector<std::uint32_t>{27, 100}));
  EXPECT_EQ(a.auth->user, "alice");
  LoginOutcome b = table.login(f.db, encode_login_request(f.bob, "bob", session(7), 2));
  ASSERT_TRUE(b.auth.has_value()) << b.refusal;
  EXPECT_EQ(b.auth->auth_number, 2u);
  EXPECT_TRUE(b.auth->groups.empty());

  auto reply = decode_login_reply(a.reply);
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_TRUE(reply.value().accepted);
  EXPECT_EQ(reply.value().auth_number, 1u);

  ASSERT_NE(table.find(2), nullptr);
  EXPECT_EQ(table.find(2)->uid, 1001u);
  ASSERT_NE(table.find(0), nullptr);
  EXPECT_EQ(table.find(0)->uid, kNobody);  // anonymous
  EXPECT_EQ(table.find(3), nullptr);
}

void expect_refused(const LoginOutcome& o, std::string_view why) {
  EXPECT_FALSE(o.auth.has_value());
  EXPECT_NE(o.refusal.find(why), std::string::npos) << o.refusal;
  auto reply = decode_login_reply(o.reply);
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_FALSE(reply.value().accepted);
  EXPECT_EQ(reply.value().auth_number, kAnonymousAuth);
  EXPECT_NE(reply.value().reason.find(why), std::string::npos);
}

TEST(Login, UnknownKeyIsRefused) {
  Fixture f;
  AuthTable table(session(7));
  expect_refused(table.login(f.db, encode_login_request(f.mallory, "alice", session(7), 1)),
                 "unknown key");
  EXPECT_EQ(table.size(), 0u);
}

TEST(Login, BadSignatureIsRefused) {
  Fixture f;
  AuthTable table(session(7));
  Bytes req = encode_login_request(f.alice, "alice", session(7), 1);
  req.back() ^= 1;
  expect_refused(table.login(f.db, req), "bad signature");
}

TEST(Login, SignatureForAnotherSessionIsRefused) {
  Fixture f;
  AuthTable table(session(7));
  expect_refused(table.login(f.db, encode_login_request(f.alice, "alice", session(8), 1)),
                 "bad signature");
}

TEST(Login, ChangedSequenceNumberBreaksSignature) {
  Fixture f;
  AuthTable table(session(7));
  Bytes req = encode_login_request(f.alice, "alice", session(7), 1);
  req[9] = 2;  // u64 seqno occupies bytes 2..9
  expect_refused(table.login(f.db, req), "bad signature");
}

TEST(Login, NameMustMatchTheDatabase) {
  Fixture f;
  AuthTable table(session(7));
  expect_refused(table.login(f.db, encode_login_request(f.alice, "bob", session(7), 1)),
                 "registered to user \"alice\"");
}

TEST(Login, ForgerDoesNotLearnTheRegisteredName) {
  // Someone who knows only alice's public key guesses a name: the refusal
  // must not reveal "alice".
  Fixture f;
  AuthTable table(session(7));
  Bytes req = encode_login_request(f.mallory, "bob", session(7), 1);
  std::copy(f.alice.public_key().ed25519.begin(), f.alice.public_key().ed25519.end(),
            req.begin() + 10);  // the key field follows type, version, seqno
  LoginOutcome o = table.login(f.db, req);
  expect_refused(o, "bad signature");
  EXPECT_EQ(o.refusal.find("alice"), std::string::npos) << o.refusal;
}

TEST(Login, ReplayIsRefused) {
  Fixture f;
  AuthTable table(session(7));
  const Bytes req = encode_login_request(f.alice, "alice", session(7), 5);
  ASSERT_TRUE(table.login(f.db, req).auth.has_value());
  expect_refused(table.login(f.db, req), "replay");
  // A fresh, lower number is still fine (agents answer out of order).
  EXPECT_TRUE(table.login(f.db, encode_login_request(f.bob, "bob", session(7), 3)).auth);
  // A forged request does not burn a number: 4 is still usable afterwards.
  Bytes forged = encode_login_request(f.alice, "alice", session(7), 4);
  forged.back() ^= 1;
  EXPECT_FALSE(table.login(f.db, forged).auth);
  EXPECT_TRUE(table.login(f.db, encode_login_request(f.alice, "alice", session(7), 4)).auth);
}

TEST(Login, TooManyLogins) {
  Fixture f;
  AuthTable table(session(7), 2);
  EXPECT_TRUE(table.login(f.db, encode_login_request(f.alice, "alice", session(7), 1)).auth);
  EXPECT_TRUE(table.login(f.db, encode_login_request(f.alice, "alice", session(7), 2)).auth);
  expect_refused(table.login(f.db, encode_login_request(f.alice, "alice", session(7), 3)),
                 "too many logins");
}

TEST(Login, MalformedRequestsAreRefusedCleanly) {
  Fixture f;
  AuthTable table(session(7));
  const Bytes good = encode_login_request(f.alice, "alice", session(7), 1);
  std::vector<Bytes> bad = {{}, {1}, {1, 1}, Bytes(good.begin(), good.end() - 1)};
  Bytes b = good;
  b.push_back(0);
  bad.push_back(b);
  b = good;
  b[0] = 9;
  bad.push_back(b);
  b = good;
  b[1] = 2;
  bad.push_back(b);
  b = good;
  b[42] = 200;  // name length beyond the message
  bad.push_back(b);
  for (std::size_t i = 0; i < bad.size(); ++i) {
    LoginOutcome o = table.login(f.db, bad[i]);
    EXPECT_FALSE(o.auth.has_value()) << i;
    EXPECT_NE(o.refusal.find("login refused"), std::string::npos) << o.refusal;
  }
  // An invalid name, correctly signed, is refused before lookup.
  expect_refused(table.login(f.db, encode_login_request(f.alice, "Alice", session(7), 9)),
                 "invalid user name");
}

TEST(HostLogin, ATrustedHostSpeaksForItsUsersWithinItsRanges) {
  UserKey host = UserKey::from_seed(counting_key(0x40));
  UserKey stranger = UserKey::from_seed(counting_key(0x50));
  std::vector<DbDiagnostic> diags;
  UserDb db = UserDb::parse("host " + format_user_public_key(host.public_key()) + " lab 1000-1999 100-200\n",
                            &diags);
  ASSERT_TRUE(diags.empty()) << diags[0].message;
  ASSERT_EQ(db.hosts(), 1u);
  AuthTable t(session(7));
  // Within the ranges: that uid, gid and those groups, marked as a host login.
  auto ok = t.login(db, encode_host_login_request(host, 1500, 150, {100, 200}, session(7), 1));
  ASSERT_TRUE(ok.auth) << ok.refusal;
  EXPECT_EQ(ok.auth->uid, 1500u);
  EXPECT_EQ(ok.auth->gid, 150u);
  EXPECT_EQ(ok.auth->groups, (std::vector<std::uint32_t>{100, 200}));
  EXPECT_TRUE(ok.auth->host);
  EXPECT_EQ(ok.auth->user, "lab:1500");
  // Outside: another uid (root is outside unless the range says 0), a gid,
  // one group.
  for (auto [uid, gid, groups] : std::vector<std::tuple<std::uint32_t, std::uint32_t, std::vector<std::uint32_t>>>{
           {0, 150, {}}, {2000, 150, {}}, {1500, 99, {}}, {1500, 150, {100, 300}}}) {
    auto r = t.login(db, encode_host_login_request(host, uid, gid, groups, session(7), 10 + uid + gid));
    EXPECT_FALSE(r.auth) << uid << " " << gid;
    EXPECT_NE(r.refusal.find("outside the uids and gids"), std::string::npos) << r.refusal;
  }
  // Unknown host, a signature for another session, a replay.
  auto u = t.login(db, encode_host_login_request(stranger, 1500, 150, {}, session(7), 50));
  EXPECT_FALSE(u.auth);
  EXPECT_NE(u.refusal.find("unknown host key"), std::string::npos);
  auto s = t.login(db, encode_host_login_request(host, 1500, 150, {}, session(8), 51));
  EXPECT_FALSE(s.auth);
  EXPECT_NE(s.refusal.find("bad signature"), std::string::npos);
  auto replay = t.login(db, encode_host_login_request(host, 1500, 150, {100, 200}, session(7), 1));
  EXPECT_FALSE(replay.auth);
  EXPECT_NE(replay.refusal.find("replay"), std::string::npos);
  // A host's key is not a user's: it cannot log in as a user, and vice versa.
  EXPECT_FALSE(t.login(db, encode_login_request(host, "lab", session(7), 60)).auth);
  // The host line goes: its logins are revoked.
  EXPECT_EQ(t.revalidate(UserDb::parse("", nullptr)), 1u);
  EXPECT_EQ(t.find(ok.auth->auth_number), nullptr);
}

TEST(HostLogin, RootOnlyWhenTheRangeSaysSoAndBadLinesAreReported) {
  UserKey host = UserKey::from_seed(counting_key(0x40));
  std::vector<DbDiagnostic> diags;
  const std::string k = format_user_public_key(host.public_key());
  UserDb db = UserDb::parse("host " + k + " admin 0-0 0-0\nhost " + k + " dup 1-2 1-2\nhost " + k +
                                " bad 5-1 1-2\nhost nonsense x 1 1\n",
                            &diags);
  ASSERT_EQ(diags.size(), 3u);
  EXPECT_EQ(diags[0].line, 2u);
  AuthTable t(session(3));
  // A key on two lines is an error: neither line lets the host in.
  EXPECT_FALSE(t.login(db, encode_host_login_request(host, 0, 0, {}, session(3), 1)).auth);
  const UserDb one = UserDb::parse("host " + k + " admin 0-0 0-0\n", nullptr);
  auto r = t.login(one, encode_host_login_request(host, 0, 0, {}, session(3), 2));
  ASSERT_TRUE(r.auth) << r.refusal;
  EXPECT_EQ(r.auth->uid, 0u);
  EXPECT_TRUE(decode_host_login_request(Bytes{3, 1, 0}).ok() == false);
}

TEST(LoginReply, RoundTripAndMalformed) {
  const LoginReply r{false, 0, "no such user"};
  auto back = decode_login_reply(encode_login_reply(r));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back.value().accepted);
  EXPECT_EQ(back.value().reason, "no such user");
  Bytes bad = encode_login_reply(LoginReply{true, 3, ""});
  bad[3] = bad[4] = bad[5] = bad[6] = 0;  // accepted with auth number 0
  EXPECT_FALSE(decode_login_reply(bad).ok());
  EXPECT_FALSE(decode_login_reply(Bytes{2, 1}).ok());
}

TEST(UserDb, MalformedLinesAreReportedAndSkipped) {
  const UserKey a = UserKey::from_seed(counting_key(1));
  const UserKey b = UserKey::from_seed(counting_key(2));
  const UserKey c = UserKey::from_seed(counting_key(3));
  const std::string ka = format_user_public_key(a.public_key());
  const std::string kb = format_user_public_key(b.public_key());
  const std::string kc = format_user_public_key(c.public_key());
  const std::string text =
      "# comment\n"                                            // 1
      "\n"                                                     // 2
      + ka + " alice 1000 1000\n"                              // 3 good
      + kb + " bob 1001\n"                                     // 4 too few fields
      + "ed25519:notbase32 carol 1 1\n"                        // 5 bad key
      + kb + " Bob 1001 1001\n"                                // 6 bad name
      + kb + " bob -1 1001\n"                                  // 7 bad uid
      + kb + " bob 1001 4294967295\n"                          // 8 gid out of range
      + kb + " bob 1001 1001 1,,2\n"                           // 9 bad group list
      + kb + " bob 1001 1001 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n"  // 10 > 16 groups
      + ka + " alice2 1 1\n"                                   // 11 duplicate key
      + kb + " bob 1001 1001 20 extra\n"                       // 12 too many fields
      + kb + " bob 01001 1001\n"                               // 13 leading zero
      + kc + " carol 0 0 0   # root, allowed\r\n"              // 14 good (CRLF)
      + std::string(5000, 'x') + "\n"                          // 15 overlong
      + kb + " bob 1001 1001 1,2\n";                           // 16 good
  std::vector<DbDiagnostic> diags;
  const UserDb db = UserDb::parse(text, &diags);
  std::vector<std::size_t> lines;
  for (const auto& d : diags) lines.push_back(d.line);
  EXPECT_EQ(lines, (std::vector<std::size_t>{4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15}));
  EXPECT_EQ(db.size(), 2u);
  // A key on two lines is an error: neither alice nor alice2 gets in.
  EXPECT_EQ(db.find(a.public_key()), nullptr);
  EXPECT_NE(diags[7].message.find("line 3"), std::string::npos) << diags[7].message;
  ASSERT_NE(db.find(b.public_key()), nullptr);
  EXPECT_EQ(db.find(b.public_key())->groups, (std::vector<std::uint32_t>{1, 2}));
  ASSERT_NE(db.find(c.public_key()), nullptr);
  EXPECT_EQ(db.find(c.public_key())->uid, 0u);
  for (const auto& d : diags) EXPECT_FALSE(d.message.empty());
}

TEST(UserDb, LoadMissingFileIsAClearError) {
  auto r = UserDb::load("/nonexistent/sfs-users", nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("/nonexistent/sfs-users"), std::string::npos);
}

TEST(UserNames, Validity) {
  EXPECT_TRUE(valid_user_name("alice"));
  EXPECT_TRUE(valid_user_name("_svc-backup.1"));
  EXPECT_FALSE(valid_user_name(""));
  EXPECT_FALSE(valid_user_name("1alice"));
  EXPECT_FALSE(valid_user_name("Alice"));
  EXPECT_FALSE(valid_user_name("al ice"));
  EXPECT_FALSE(valid_user_name(std::string(33, 'a')));
  EXPECT_TRUE(valid_user_name(std::string(32, 'a')));
}

}  // namespace
}  // namespace sfs

namespace sfs {
namespace {

TEST(LoginVector, FrozenRequest) {
  // docs/protocol.md, "Login": user seed 80..9f, "alice", seqno 1, the
  // session id of the handshake vector of handshake version 1.
  const UserKey alice = UserKey::from_seed(test::counting_key(0x80));
  const SessionId sid = test::to_array<64>(test::unhex(
      "59de969d96486abbda1ed022ad12405e665624c004f3f25b403504892e5fb74d"
      "98a98826f6d7e7b469cce98cd5513caf0a3e99fb9f416b546b3274c33b089f78"));
  const Bytes req = encode_login_request(alice, "alice", sid, 1);
  EXPECT_EQ(hex_encode(req),
            "01010000000000000001cd14b37f956e953194ff7fb73b3d81dcc561d61a7538094b7c3e1a643ee5f3aa"
            "05616c6963653d526745337491123b1a62e05b8fced53b21523c624f7951ad796aababe12c83a47cc6b5"
            "b2e25897d41f1e3354599e8a581cabb35efe06494ba39e4f1a8c9806");
  auto parsed = decode_login_request(req);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value().seqno, 1u);
  EXPECT_EQ(parsed.value().user, "alice");
  EXPECT_EQ(parsed.value().key, alice.public_key());
}

}  // namespace
}  // namespace sfs
