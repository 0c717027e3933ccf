// users_test.cc: several local users on one mount, each logged in with
// their own key through their own sfsagent: their own permissions; a user
// without a key is anonymous; root with a key the server maps to uid 0 can
// do what root does (tar keeping owners). Starts: ganesha.nfsd, sfsd,
// sfsclient, one sfsagent per user (running as that user); creates local
// users (useradd) and removes them at the end.
#include <grp.h>
#include <pwd.h>

#include "conns_util.h"

namespace mount_test {
namespace {

struct LocalUser {
  std::string name;
  uid_t uid;
  std::string home;
};

class UsersTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    if (sh("command -v useradd && command -v setpriv") != 0) GTEST_SKIP() << "useradd/setpriv missing";
    // Other users must be able to reach their homes and the mount point.
    const std::string top = std::filesystem::path(server_.dir()).parent_path().string();
    for (const std::string& d : {top, server_.dir()}) ::chmod(d.c_str(), 0755);
    // Local users of the test's own, at uids nobody else uses here.
    for (int i = 0; i < 3; ++i) {
      LocalUser u{"sfst" + std::to_string(::getpid() % 10000) + "_" + std::to_string(i),
                  static_cast<uid_t>(43000 + (::getpid() % 500) * 4 + i), ""};
      u.home = server_.dir() + "/home-" + u.name;
      std::string out;
      ASSERT_EQ(sh("useradd -M -d " + u.home + " -u " + std::to_string(u.uid) + " -U " + u.name, &out), 0) << out;
      users_.push_back(u);
      std::filesystem::create_directories(u.home + "/.sfs");
      sh("chown -R " + u.name + ":" + u.name + " " + u.home + " && chmod 700 " + u.home + "/.sfs");
    }
    // Users 0 and 1 have keys the server knows; user 2 has none.
    for (int i = 0; i < 2; ++i) {
      auto key = sfs::UserKey::generate();
      const std::string path = users_[i].home + "/.sfs/identity";
      ASSERT_TRUE(sfs::write_key_file(path, key).ok());
      ASSERT_EQ(::chown(path.c_str(), users_[i].uid, users_[i].uid), 0);
      server_.add_user_with_key(users_[i].name, users_[i].uid, users_[i].uid,
                                std::make_shared<sfs::UserKey>(std::move(key)));
    }
    // Root's key, mapped to uid 0 explicitly.
    auto rkey = sfs::UserKey::generate();
    root_key_ = server_.dir() + "/root-identity";
    ASSERT_TRUE(sfs::write_key_file(root_key_, rkey).ok());
    server_.add_user_with_key("root", 0, 0, std::make_shared<sfs::UserKey>(std::move(rkey)));
    extra_db_lines_ = host_lines();
    server_.write_users(extra_db_lines_);
    server_.sfsd().signal(SIGHUP);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    m_ = &mount(mount_flags());
    ::chmod(std::filesystem::path(m_->path()).parent_path().c_str(), 0755);
  }
  void TearDown() override {
    for (pid_t p : agents_) {
      ::kill(p, SIGTERM);
      ::waitpid(p, nullptr, 0);
    }
    MountFixture::TearDown();
    for (auto& u : users_) sh("userdel " + u.name + " >/dev/null 2>&1; groupdel " + u.name + " >/dev/null 2>&1");
  }

  // Starts an agent for the user (as that user) holding `key_file`;
  // returns once it has registered with sfsclient.
  void start_agent(uid_t uid, gid_t gid, const std::string& home, const std::string& key_file) {
    agents_.push_back(
        start_user_agent(*m_, uid, gid, home, key_file, server_.dir() + "/agent-" + std::to_string(uid) + ".log"));
  }
  // Runs cmd as the user.
  int as(const LocalUser& u, const std::string& cmd, std::string* out = nullptr) {
    return sh("setpriv --reuid=" + std::to_string(u.uid) + " --regid=" + std::to_string(u.uid) +
                  " --clear-groups -- bash -c " + quote(cmd),
              out);
  }
  static std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  }

  virtual std::string host_lines() { return ""; }
  virtual std::vector<std::string> mount_flags() { return {}; }

  std::vector<LocalUser> users_;
  std::string extra_db_lines_;
  std::vector<pid_t> agents_;
  std::string root_key_;
  Mount* m_ = nullptr;
};

TEST_F(UsersTest, EachUserHasTheirOwnPermissionsAndNoKeyMeansAnonymous) {
  start_agent(users_[0].uid, users_[0].uid, users_[0].home, users_[0].home + "/.sfs/identity");
  start_agent(users_[1].uid, users_[1].uid, users_[1].home, users_[1].home + "/.sfs/identity");
  // Agents register with sfsclient on their own, within a moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string d = at(*m_);
  std::string out;
  ASSERT_EQ(as(users_[0], "echo mine > " + d + "/u0-secret && chmod 600 " + d + "/u0-secret && stat -c %u " + d +
                              "/u0-secret",
               &out),
            0)
      << out << m_->log();
  EXPECT_EQ(out, std::to_string(users_[0].uid) + "\n") << "a new file belongs to its creator\n" << m_->log();
  EXPECT_EQ(as(users_[0], "cat " + d + "/u0-secret", &out), 0) << out;
  EXPECT_EQ(out, "mine\n");
  // The other user: refused, by the kernel's check and by the server's.
  EXPECT_NE(as(users_[1], "cat " + d + "/u0-secret", &out), 0);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
  // The user without a key is the anonymous user: its files belong to nobody.
  ASSERT_EQ(as(users_[2], "echo anon > " + d + "/u2-file && stat -c %u " + d + "/u2-file", &out), 0) << out;
  EXPECT_EQ(out, "65534\n");
  EXPECT_NE(as(users_[2], "cat " + d + "/u0-secret", &out), 0);
}

TEST_F(UsersTest, RootWithAKeyMappedToUidZeroKeepsOwnersWithTar) {
  start_agent(0, 0, server_.dir(), root_key_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string src = server_.dir() + "/owned";
  std::filesystem::create_directories(src);
  std::ofstream(src + "/a") << "a";
  std::ofstream(src + "/b") << "b";
  ASSERT_EQ(::chown((src + "/a").c_str(), users_[0].uid, users_[0].uid), 0);
  ASSERT_EQ(::chown((src + "/b").c_str(), users_[1].uid, users_[1].uid), 0);
  std::string out;
  ASSERT_EQ(sh("tar cf " + server_.dir() + "/o.tar -C " + src + " . && mkdir " + at(*m_) + "/o && tar xpf " +
                   server_.dir() + "/o.tar -C " + at(*m_) + "/o && stat -c %u " + at(*m_) + "/o/a " + at(*m_) + "/o/b",
               &out),
            0)
      << out << m_->log();
  EXPECT_EQ(out, std::to_string(users_[0].uid) + "\n" + std::to_string(users_[1].uid) + "\n");
}

// A trusted client host: its key is listed in the server's user database
// with the uids and gids it may speak for; its users without an agent act
// as their own uid (not root: 0 is outside the range).
class TrustedHostTest : public UsersTest {
 protected:
  std::string host_lines() override {
    auto key = sfs::UserKey::generate();
    host_key_ = server_.dir() + "/client-host.key";
    EXPECT_TRUE(sfs::write_key_file(host_key_, key).ok());
    return "host " + sfs::format_user_public_key(key.public_key()) + " testhost 40000-49999 40000-49999\n";
  }
  std::vector<std::string> mount_flags() override { return {"--host-key", host_key_}; }
  std::string host_key_;
};

TEST_F(TrustedHostTest, UsersWithoutAnAgentActAsTheirOwnUidButRootDoesNot) {
  const std::string d = at(*m_);
  std::string out;
  ASSERT_EQ(as(users_[2], "echo mine > " + d + "/u2-file && chmod 600 " + d + "/u2-file && stat -c %u " + d + "/u2-file",
               &out),
            0)
      << out << m_->log();
  EXPECT_EQ(out, std::to_string(users_[2].uid) + "\n") << m_->log();
  EXPECT_EQ(as(users_[2], "cat " + d + "/u2-file", &out), 0) << out;
  // Another user (no agent either) is refused by the server, as themselves.
  EXPECT_NE(as(users_[1], "cat " + d + "/u2-file", &out), 0);
  // root is not in the host's range: anonymous.
  std::ofstream(d + "/root-file") << "r";
  struct stat st;
  ASSERT_EQ(::stat((d + "/root-file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
}

// Anonymous access off: users with a key work, users without one are
// refused, and the mount itself still comes up (GETROOT needs no login).
class AnonymousOffTest : public UsersTest {
 protected:
  std::vector<std::string> sfsd_flags() override { return {"--anonymous", "no"}; }
};

TEST_F(AnonymousOffTest, OnlyUsersWithAKeyGetIn) {
  start_agent(users_[0].uid, users_[0].uid, users_[0].home, users_[0].home + "/.sfs/identity");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string d = at(*m_);
  std::string out;
  ASSERT_EQ(as(users_[0], "echo hi > " + d + "/u0 && cat " + d + "/u0", &out), 0) << out << m_->log();
  EXPECT_EQ(out, "hi\n");
  EXPECT_NE(as(users_[2], "ls " + d, &out), 0);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
}

// Reads over the mount's extra connections (read_lanes.h) carry the
// reader's own login: a user's 0600 file read through three connections
// comes back right (a lane logged in as anybody else would be refused by
// the backend), and the lanes did carry it.
class LanesUsersTest : public UsersTest {
 protected:
  std::vector<std::string> mount_flags() override { return {"--connections", "3"}; }
};

TEST_F(LanesUsersTest, ALaneReadsAsTheUserWhoseReadItIs) {
  if (!pidfd_getfd_works()) GTEST_SKIP() << "no pidfd_getfd here";
  start_agent(users_[0].uid, users_[0].uid, users_[0].home, users_[0].home + "/.sfs/identity");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string d = at(*m_);
  std::string out;
  // Written by user 0 through the mount (so owned by them), then read back
  // cold by a second, fresh mount-side open after the cache is dropped.
  ASSERT_EQ(as(users_[0], "head -c 24M /dev/urandom > " + users_[0].home + "/ref && cp " + users_[0].home + "/ref " +
                              d + "/private && chmod 600 " + d + "/private",
               &out),
            0)
      << out << m_->log();
  Conns before = connections_to(m_->pid(), server_.port());
  std::vector<std::uint64_t> got;
  for (auto& k : before.all) got.push_back(k.received());
  ASSERT_EQ(as(users_[0], "dd if=" + d + "/private iflag=direct bs=1M status=none | cmp - " + users_[0].home + "/ref",
               &out),
            0)
      << out << m_->log();
  Conns after = connections_to(m_->pid(), server_.port());
  ASSERT_EQ(after.all.size(), 3u) << m_->log();
  // The lanes carried data for this user (new connections count from zero).
  int carried = 0;
  for (auto& k : after.all) {
    std::uint64_t was = 0;
    for (std::size_t i = 0; i < before.all.size(); ++i)
      if (before.all[i].local_port == k.local_port) was = got[i];
    carried += k.received() - was > (2u << 20);
  }
  EXPECT_EQ(carried, 3) << m_->log();
  EXPECT_EQ(m_->log().find("its reads stay on the main connection"), std::string::npos) << m_->log();
  // Another user is still refused.
  EXPECT_NE(as(users_[1], "cat " + d + "/private > /dev/null", &out), 0);
}

// A user's first call before their agent ran makes them anonymous; once the
// agent has registered, their calls log in (main connection and lanes).
// Fails without the login on registration (ServerMount::agent_registered)
// and the ACCESS answers dropped after it: the user stayed anonymous for as
// long as the connection lived.
TEST_F(LanesUsersTest, AnAgentStartedAfterTheFirstCallIsUsed) {
  using namespace std::chrono_literals;
  const LocalUser& u = users_[0];
  const std::string ref = u.home + "/ref", backend = server_.export_dir() + "/late";
  ASSERT_EQ(sh("head -c 24M /dev/urandom > " + ref + " && cp " + ref + " " + backend + " && chown " +
               std::to_string(u.uid) + ":" + std::to_string(u.uid) + " " + backend + " && chmod 600 " + backend),
            0);
  const std::string f = at(*m_) + "/late";
  const std::string read = "dd if=" + f + " iflag=direct bs=1M status=none | cmp - " + ref;
  std::string out;
  EXPECT_NE(as(u, read, &out), 0) << "read without an agent:\n" << out;
  start_agent(u.uid, u.uid, u.home, u.home + "/.sfs/identity");
  EXPECT_TRUE(eventually([&] { return as(u, read, &out) == 0; }, 30s)) << out << m_->log();
  EXPECT_NE(m_->log().find("is logged in now"), std::string::npos) << m_->log();
  // The whole file again, over every connection, as the user.
  EXPECT_EQ(as(u, read, &out), 0) << out << m_->log();
}

}  // namespace
}  // namespace mount_test
