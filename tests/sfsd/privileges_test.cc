// privileges_test.cc: sfsd started as root with `user nobody` runs as
// nobody with only CAP_NET_BIND_SERVICE, still serves files through the
// backend, reconnects to a restarted backend from a reserved port, rereads
// its user database on SIGHUP, and a root --rotate-handle-key keeps the
// handle key file nobody's.
// Starts: ganesha.nfsd (killed and restarted once), sfsd.
#include <pwd.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

// "Uid:", "Gid:", "Groups:", "CapEff:", ... of /proc/PID/status.
std::map<std::string, std::string> proc_status(pid_t pid) {
  std::map<std::string, std::string> m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    m[line.substr(0, colon)] = v;
  }
  return m;
}

class PrivilegesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "sfsd drops privileges only when started as root";
    const passwd* pw = ::getpwnam("nobody");
    if (!pw) GTEST_SKIP() << "no user nobody";
    nobody_ = pw->pw_uid;
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    // nobody must reach the files SIGHUP rereads: open the directories on
    // the way (mkdtemp made them 0700).
    for (auto d = std::filesystem::path(server_.dir()); d != d.root_path(); d = d.parent_path()) {
      struct stat st;
      if (::stat(d.c_str(), &st) == 0 && (st.st_mode & 0005) != 0005 && !(st.st_mode & S_ISVTX))
        ::chmod(d.c_str(), (st.st_mode & 07777) | 0055);
    }
  }
  RunningRuntime run_;
  SfsdServer server_;
  uid_t nobody_ = 65534;
};

TEST_F(PrivilegesTest, RunsAsTheUserWithOnlyNetBindServiceAndStillServes) {
  std::string why;
  ASSERT_TRUE(server_.start_sfsd(&why, {"--user", "nobody"})) << why;
  auto st = proc_status(server_.sfsd().pid());
  const std::string id = std::to_string(nobody_);
  EXPECT_EQ(st["Uid"], id + "\t" + id + "\t" + id + "\t" + id);
  EXPECT_EQ(st["Groups"], "");
  EXPECT_EQ(st["CapEff"], "0000000000000400") << "CAP_NET_BIND_SERVICE (bit 10) and nothing else";
  EXPECT_EQ(st["CapPrm"], "0000000000000400");
  EXPECT_EQ(st["CapInh"], "0000000000000000");
  EXPECT_EQ(st["NoNewPrivs"], "1");
  EXPECT_NE(st["Threads"], "1") << "the runtime's threads started after the drop";
  // Every thread, not just the main one, dropped (the kernel keeps
  // credentials per thread).
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(server_.sfsd().pid()) + "/task")) {
    std::ifstream in(t.path() / "status");
    std::string s((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(s.find("CapEff:\t0000000000000400"), std::string::npos) << t.path();
  }
  struct stat hk;
  ASSERT_EQ(::stat((server_.dir() + "/handle.keys").c_str(), &hk), 0);
  EXPECT_EQ(hk.st_uid, nobody_) << "sfsd's own state became the user's, so SIGHUP can reread it";
  EXPECT_EQ(hk.st_mode & 07777, 0600u);

  auto c = connect(server_, 1, nullptr, &why);
  ASSERT_TRUE(c) << why;
  const std::uint32_t root = login(*c, server_.user("root"));
  auto f = create(*c, root, c->root().fh, "as-nobody");
  ASSERT_TRUE(f);
  ASSERT_EQ(write(*c, root, *f, 0, "served"), SFS_NFS3_OK) << "AUTH_UNIX from a reserved port";

  // The backend restarts: libnfs reconnects, binding a reserved port again.
  ASSERT_TRUE(server_.restart_ganesha(&why)) << why;
  ASSERT_EQ(write(*c, root, *f, 6, " again"), SFS_NFS3_OK) << server_.sfsd().errors();
  EXPECT_EQ(read(*c, root, *f, 0, 100), "served again");
  EXPECT_EQ(server_.sfsd().errors().find("not reserved"), std::string::npos) << server_.sfsd().errors();

  // SIGHUP rereads the user database as nobody.
  server_.remove_user("bob");
  server_.write_users();
  server_.sfsd().signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return server_.sfsd().errors().find("user database reloaded") != std::string::npos; }, 10s))
      << server_.sfsd().errors();
  EXPECT_EQ(server_.sfsd().errors().find("keeping the old"), std::string::npos) << server_.sfsd().errors();
  c->close();

  // Rotation as root keeps the file nobody's.
  EXPECT_EQ(std::system((std::string(SFSD_BINARY) + " --handle-keys " + server_.dir() +
                         "/handle.keys --user nobody --rotate-handle-key >/dev/null").c_str()),
            0);
  ASSERT_EQ(::stat((server_.dir() + "/handle.keys").c_str(), &hk), 0);
  EXPECT_EQ(hk.st_uid, nobody_);
}

TEST_F(PrivilegesTest, AUserDatabaseTheUserCannotReadFailsAtStartNotAtTheFirstSighup) {
  ::chmod((server_.dir() + "/users").c_str(), 0600);
  std::string why;
  EXPECT_FALSE(server_.start_sfsd(&why, {"--user", "nobody"}));
  EXPECT_NE(why.find("SIGHUP could not reread the user database"), std::string::npos) << why;
}

TEST_F(PrivilegesTest, AnUnknownUserIsAClearError) {
  std::string why;
  EXPECT_FALSE(server_.start_sfsd(&why, {"--user", "no-such-user-here"}));
  EXPECT_NE(why.find("user \"no-such-user-here\" does not exist"), std::string::npos) << why;
}

}  // namespace
}  // namespace sfsd_test
