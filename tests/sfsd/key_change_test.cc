// key_change_test.cc: a user replacing their own key (SFS_CHANGEKEY, as
// SFS's `sfskey update`) against a real sfsd: the new key logs in and the
// old one is refused from the next login on, across a restart and a
// SIGHUP; refusals for the anonymous user, a signature by another key, a
// key another user has, and the feature turned off.
// Starts: ganesha.nfsd and sfsd (restarted by one test).
#include <pwd.h>
#include <sys/stat.h>

#include "sfs/key_change.h"
#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

class KeyChangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
  }
  void start(std::vector<std::string> extra = {}) {
    std::string why;
    ASSERT_TRUE(server_.start_sfsd(&why, std::move(extra))) << why;
  }
  std::shared_ptr<fs::FileClient> client(asmp::color_t color) {
    std::string why;
    auto c = connect(server_, color, nullptr, &why);
    EXPECT_TRUE(c) << why;
    return c;
  }
  // A login that may be refused.
  static sfs::Result<std::uint32_t> try_login(const fs::FileClient& c, const sfs::UserKey& key,
                                              const std::string& name) {
    auto box = std::make_shared<Box<sfs::Result<std::uint32_t>>>();
    c.login(key, name, asmp::Callback<void(sfs::Result<std::uint32_t>)>(
                           [box](sfs::Result<std::uint32_t> r) { box->set(std::move(r)); }));
    auto r = box->wait();
    if (!r) return sfs::make_error("login timed out");
    return std::move(*r);
  }
  // A fresh connection: does (key, name) log in?
  sfs::Result<std::uint32_t> login_fresh(const sfs::UserKey& key, const std::string& name) {
    auto c = client(next_color_++);
    if (!c) return sfs::make_error("no connection");
    auto r = try_login(*c, key, name);
    c->close();
    return r;
  }
  static sfs::Status change(const fs::FileClient& c, std::uint32_t auth, const sfs::UserKey& next,
                            const std::string& name) {
    auto box = std::make_shared<Box<sfs::Status>>();
    c.session().change_key(next, name, auth,
                           asmp::Callback<void(sfs::Status)>([box](sfs::Status s) { box->set(std::move(s)); }));
    auto r = box->wait();
    return r ? *r : sfs::Status(sfs::make_error("key change timed out"));
  }
  static sfs::Status change_signed(const fs::FileClient& c, std::uint32_t auth, sfs::Bytes req) {
    auto box = std::make_shared<Box<sfs::Status>>();
    c.session().change_key_signed(std::move(req), auth,
                                  asmp::Callback<void(sfs::Status)>([box](sfs::Status s) { box->set(std::move(s)); }));
    auto r = box->wait();
    return r ? *r : sfs::Status(sfs::make_error("key change timed out"));
  }
  // The old key refused, the new one accepted, on fresh connections.
  void expect_only_new_key(const sfs::UserKey& old_key, const sfs::UserKey& new_key, const std::string& name) {
    auto n = login_fresh(new_key, name);
    EXPECT_TRUE(n.ok()) << "the new key logs in: " << (n.ok() ? "" : n.error()) << "\n" << server_.sfsd().errors();
    auto o = login_fresh(old_key, name);
    ASSERT_FALSE(o.ok()) << "the old key must be refused";
    EXPECT_NE(o.error().find("unknown key"), std::string::npos) << o.error();
  }

  RunningRuntime run_;
  SfsdServer server_;
  asmp::color_t next_color_ = 10;
};

TEST_F(KeyChangeTest, TheNewKeyLogsInAndTheOldOneIsRefused) {
  start();
  const auto old_key = server_.user("alice").key;
  const sfs::UserKey new_key = sfs::UserKey::generate();
  auto c = client(1);
  ASSERT_TRUE(c);
  const std::uint32_t auth = login(*c, server_.user("alice"));
  ASSERT_NE(auth, 0u);
  sfs::Status s = change(*c, auth, new_key, "alice");
  ASSERT_TRUE(s.ok()) << s.error() << "\n" << server_.sfsd().errors();
  EXPECT_TRUE(getattr(*c, auth, c->root().fh)) << "the login made with the old key stays valid";
  expect_only_new_key(*old_key, new_key, "alice");
  // ... also across a SIGHUP, which revokes logins whose key is gone.
  server_.sfsd().signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return server_.sfsd().errors().find("SIGHUP: user database reloaded") != std::string::npos; }))
      << server_.sfsd().errors();
  EXPECT_TRUE(getattr(*c, auth, c->root().fh)) << "the login made with the old key survives a reload";

  // Kept in a file of sfsd's own, 0600, beside the handle keys; the
  // administrator's database is untouched.
  struct stat st;
  ASSERT_EQ(::stat((server_.dir() + "/key_changes").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text;
  {
    std::ifstream users(server_.dir() + "/users");
    for (std::string line; std::getline(users, line);) text += line + "\n";
  }
  EXPECT_NE(text.find(sfs::format_user_public_key(old_key->public_key())), std::string::npos);
  EXPECT_EQ(text.find(sfs::format_user_public_key(new_key.public_key())), std::string::npos);

  // A second change from the new key's login replaces it again.
  const sfs::UserKey third = sfs::UserKey::generate();
  auto c2 = client(2);
  ASSERT_TRUE(c2);
  auto a2 = try_login(*c2, new_key, "alice");
  ASSERT_TRUE(a2.ok()) << a2.error();
  ASSERT_TRUE(change(*c2, a2.value(), third, "alice").ok());
  expect_only_new_key(new_key, third, "alice");
}

TEST_F(KeyChangeTest, TheChangeSurvivesARestartAndASighup) {
  start();
  const auto old_key = server_.user("alice").key;
  const sfs::UserKey new_key = sfs::UserKey::generate();
  {
    auto c = client(1);
    ASSERT_TRUE(c);
    const std::uint32_t auth = login(*c, server_.user("alice"));
    ASSERT_TRUE(change(*c, auth, new_key, "alice").ok());
    c->close();
  }
  ASSERT_EQ(server_.stop_sfsd(), 0) << server_.sfsd().errors();
  start();
  expect_only_new_key(*old_key, new_key, "alice");

  // SIGHUP rereads both files; a login made with the new key survives it.
  auto c = client(2);
  ASSERT_TRUE(c);
  auto a = try_login(*c, new_key, "alice");
  ASSERT_TRUE(a.ok()) << a.error();
  server_.write_users();  // rewritten as an administrator would, old key still listed
  server_.sfsd().signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return server_.sfsd().errors().find("SIGHUP: user database reloaded") != std::string::npos; }))
      << server_.sfsd().errors();
  expect_only_new_key(*old_key, new_key, "alice");
  EXPECT_TRUE(getattr(*c, a.value(), c->root().fh)) << "the new key's login is not revoked by the reload";

  // The administrator gives alice another key in the database: that wins,
  // and her earlier change is ignored (with a log line).
  const auto admin_key = std::make_shared<sfs::UserKey>(sfs::UserKey::generate());
  server_.add_user_with_key("alice", 1000, 1000, admin_key);
  server_.write_users();
  server_.sfsd().signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return server_.sfsd().errors().find("key change of \"alice\" ignored") != std::string::npos; }))
      << server_.sfsd().errors();
  EXPECT_TRUE(eventually([&] { return login_fresh(*admin_key, "alice").ok(); }, 5s));
  EXPECT_FALSE(login_fresh(new_key, "alice").ok());
}

TEST_F(KeyChangeTest, TheAnonymousUserAndOtherUsersAreRefused) {
  start();
  const sfs::UserKey new_key = sfs::UserKey::generate();
  auto c = client(1);
  ASSERT_TRUE(c);
  sfs::Status s = change(*c, 0, new_key, "alice");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("not logged in"), std::string::npos) << s.error();
  // bob, logged in, cannot change alice's key.
  const std::uint32_t bob = login(*c, server_.user("bob"));
  s = change(*c, bob, new_key, "alice");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("not \"alice\""), std::string::npos) << s.error();
  // An auth number that is not a login here.
  s = change(*c, 77, new_key, "alice");
  EXPECT_FALSE(s.ok());
  expect_only_new_key(new_key, *server_.user("alice").key, "alice");  // nothing changed
}

TEST_F(KeyChangeTest, ARequestSignedByAnotherKeyIsRefused) {
  start();
  const sfs::UserKey wanted = sfs::UserKey::generate();
  const sfs::UserKey signer = sfs::UserKey::generate();
  auto c = client(1);
  ASSERT_TRUE(c);
  const std::uint32_t auth = login(*c, server_.user("alice"));
  // Signed by `signer`, naming `wanted`: u8 type, u8 version, u8 len,
  // "alice", then the key.
  sfs::Bytes req = sfs::encode_key_change_request(signer, "alice", c->session().session_id());
  ASSERT_EQ(req.size(), 3u + 5 + 32 + 64);
  std::copy(wanted.public_key().ed25519.begin(), wanted.public_key().ed25519.end(), req.begin() + 8);
  sfs::Status s = change_signed(*c, auth, req);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("bad signature"), std::string::npos) << s.error();
  // Signed by the new key but for another session.
  auto other = client(2);
  ASSERT_TRUE(other);
  s = change_signed(*c, auth, sfs::encode_key_change_request(wanted, "alice", other->session().session_id()));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("bad signature"), std::string::npos) << s.error();
  EXPECT_FALSE(login_fresh(wanted, "alice").ok());
  EXPECT_TRUE(login_fresh(*server_.user("alice").key, "alice").ok());
}

TEST_F(KeyChangeTest, AKeyAnotherUserHasIsRefused) {
  start();
  auto c = client(1);
  ASSERT_TRUE(c);
  const std::uint32_t auth = login(*c, server_.user("alice"));
  sfs::Status s = change(*c, auth, *server_.user("bob").key, "alice");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("already in the user database"), std::string::npos) << s.error();
  auto bob = login_fresh(*server_.user("bob").key, "bob");
  EXPECT_TRUE(bob.ok()) << "bob's key is still bob's";
  EXPECT_TRUE(login_fresh(*server_.user("alice").key, "alice").ok());
  // Her own current key is listed too.
  s = change(*c, auth, *server_.user("alice").key, "alice");
  EXPECT_FALSE(s.ok());
}

TEST_F(KeyChangeTest, TurnedOffItIsRefused) {
  start({"--user-key-changes", "no"});
  const sfs::UserKey new_key = sfs::UserKey::generate();
  auto c = client(1);
  ASSERT_TRUE(c);
  const std::uint32_t auth = login(*c, server_.user("alice"));
  sfs::Status s = change(*c, auth, new_key, "alice");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("turned off"), std::string::npos) << s.error();
  EXPECT_FALSE(login_fresh(new_key, "alice").ok());
  struct stat st;
  EXPECT_NE(::stat((server_.dir() + "/key_changes").c_str(), &st), 0) << "no file written";
}

// The reason for a file of sfsd's own: dropped to `user`, sfsd cannot write
// the administrator's database, and must still save changes, in a
// directory that user can write; where it cannot, a change is refused and
// not applied.
TEST_F(KeyChangeTest, AnUnprivilegedSfsdSavesChangesInItsOwnFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "sfsd drops privileges only when started as root";
  const passwd* pw = ::getpwnam("nobody");
  if (!pw) GTEST_SKIP() << "no user nobody";
  const uid_t nobody = pw->pw_uid;
  const gid_t nogroup = pw->pw_gid;
  // nobody must reach the files SIGHUP rereads (as privileges_test).
  for (auto d = std::filesystem::path(server_.dir()); d != d.root_path(); d = d.parent_path()) {
    struct stat st;
    if (::stat(d.c_str(), &st) == 0 && (st.st_mode & 0005) != 0005 && !(st.st_mode & S_ISVTX))
      ::chmod(d.c_str(), (st.st_mode & 07777) | 0055);
  }
  const auto old_key = server_.user("alice").key;
  const sfs::UserKey new_key = sfs::UserKey::generate();

  // Default place, beside the handle keys, in a directory root owns.
  start({"--user", "nobody"});
  EXPECT_NE(server_.sfsd().errors().find("cannot write"), std::string::npos) << server_.sfsd().errors();
  {
    auto c = client(1);
    ASSERT_TRUE(c);
    const std::uint32_t auth = login(*c, server_.user("alice"));
    sfs::Status s = change(*c, auth, new_key, "alice");
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().find("could not save"), std::string::npos) << s.error();
    c->close();
  }
  EXPECT_TRUE(login_fresh(*old_key, "alice").ok()) << "an unsaved change is not applied";
  EXPECT_FALSE(login_fresh(new_key, "alice").ok());
  ASSERT_EQ(server_.stop_sfsd(), 0) << server_.sfsd().errors();

  // A state directory that is nobody's.
  const std::string state = server_.dir() + "/state";
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  ASSERT_EQ(::chown(state.c_str(), nobody, nogroup), 0);
  start({"--user", "nobody", "--key-changes", state + "/key_changes"});
  {
    auto c = client(2);
    ASSERT_TRUE(c);
    const std::uint32_t auth = login(*c, server_.user("alice"));
    sfs::Status s = change(*c, auth, new_key, "alice");
    ASSERT_TRUE(s.ok()) << s.error() << "\n" << server_.sfsd().errors();
    c->close();
  }
  struct stat st;
  ASSERT_EQ(::stat((state + "/key_changes").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, nobody);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  server_.sfsd().signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return server_.sfsd().errors().find("SIGHUP: user database reloaded") != std::string::npos; }))
      << server_.sfsd().errors();
  expect_only_new_key(*old_key, new_key, "alice");
}

#ifdef SFSKEY_BINARY
// Runs a command; its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST_F(KeyChangeTest, SfskeyUpdateEndToEnd) {
  start();
  const std::string dir = server_.dir();
  const std::string old_file = dir + "/alice.old", new_file = dir + "/alice.new", other = dir + "/other";
  ASSERT_TRUE(sfs::write_key_file(old_file, *server_.user("alice").key).ok());
  const sfs::UserKey new_key = sfs::UserKey::generate();
  ASSERT_TRUE(sfs::write_key_file(new_file, new_key).ok());
  ASSERT_TRUE(sfs::write_key_file(other, *server_.user("bob").key).ok());
  const std::string base = std::string(SFSKEY_BINARY) + " update --server '" + server_.name() + "' --user alice";

  // Refused: the new key is bob's. One line, non-zero exit.
  auto [rc1, out1] = run(base + " --key " + old_file + " --new " + other);
  EXPECT_EQ(rc1, 1) << out1;
  EXPECT_NE(out1.find("already in the user database"), std::string::npos) << out1;

  auto [rc2, out2] = run(base + " --key " + old_file + " --new " + new_file);
  EXPECT_EQ(rc2, 0) << out2 << server_.sfsd().errors();
  EXPECT_NE(out2.find(sfs::format_user_public_key(new_key.public_key())), std::string::npos) << out2;
  expect_only_new_key(*server_.user("alice").key, new_key, "alice");

  // The old key no longer logs in, so it cannot change anything either.
  auto [rc3, out3] = run(base + " --key " + old_file + " --new " + other);
  EXPECT_EQ(rc3, 1) << out3;
  EXPECT_NE(out3.find("unknown key"), std::string::npos) << out3;
}
#endif

}  // namespace
}  // namespace sfsd_test
