// cli_test.cc: sfsd as an administrator meets it: bad settings named with
// file and line, one clear line per start-up failure, --check, handle key
// rotation. Starts: sfsd (the built binary); ganesha.nfsd for the tests
// that need a backend.
#include <sys/socket.h>

#include <fstream>

#include "config.h"
#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

// Runs sfsd to completion; returns the exit code, stdout+stderr in *out.
int run_sfsd(const std::vector<std::string>& args, std::string* out) {
  SfsdProcess p;
  p.start(args, out, 30s);
  int st = p.stop(0, 30s);  // signal 0: just wait
  *out += p.errors();
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(SfsdConfig, EverySettingParsesAndBadLinesNameFileAndLine) {
  sfsd::Config c;
  auto s = sfsd::parse_config_text(
      "# comment\nlisten 127.0.0.1:4444\nlease 90s\nthreads 3\nanonymous no\n"
      "backend nfs://127.0.0.1/srv?nfsport=700&mountport=701\nidle_timeout 2m\n",
      "t.conf", c);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(c.port, 4444);
  EXPECT_EQ(c.lease, std::chrono::seconds(90));
  EXPECT_EQ(c.threads, 3u);
  EXPECT_FALSE(c.allow_anonymous);
  EXPECT_EQ(c.idle_timeout, std::chrono::minutes(2));
  EXPECT_EQ(c.data_cache, 256u << 20) << "the default";
  for (auto [text, want] : {std::pair{"data_cache 0\n", std::size_t{0}}, {"data_cache 512K\n", std::size_t{512} << 10},
                            {"data_cache 3G\n", std::size_t{3} << 30}, {"data_cache 1048576\n", std::size_t{1} << 20}}) {
    sfsd::Config d;
    ASSERT_TRUE(sfsd::parse_config_text(text, "t.conf", d).ok()) << text;
    EXPECT_EQ(d.data_cache, want) << text;
  }

  struct Bad {
    const char* text;
    const char* want;
  } bad[] = {
      {"listen 127.0.0.1\n", "t.conf:1: listen: expected ADDRESS:PORT"},
      {"\n\nlease forever\n", "t.conf:3: lease: expected a duration"},
      {"colour blue\n", "t.conf:1: unknown setting \"colour\""},
      {"threads\n", "t.conf:1: threads needs a value"},
      {"backend http://x/y\n", "t.conf:1: backend: backend URL"},
      {"backend nfs://127.0.0.1/srv?nfsport=1\n", "mountport is required"},
      {"anonymous maybe\n", "expected yes or no"},
      {"lease 2d\n", "at most 24h"},
      {"data_cache lots\n", "expected a size like"},
      {"data_cache 12T\n", "expected a size like"},
  };
  for (const Bad& b : bad) {
    sfsd::Config d;
    auto r = sfsd::parse_config_text(b.text, "t.conf", d);
    ASSERT_FALSE(r.ok()) << b.text;
    EXPECT_NE(r.error().find(b.want), std::string::npos) << r.error();
  }
}

TEST(SfsdConfig, FlagsOverrideTheFile) {
  const std::string path = testing::TempDir() + "/flags.conf";
  std::ofstream(path) << "listen 127.0.0.1:5000\nlease 10s\n";
  auto inv = sfsd::parse_command_line({"--lease", "20s", "--config", path, "--threads", "1"});
  ASSERT_TRUE(inv.ok()) << inv.error();
  EXPECT_EQ(inv.value().config.lease, std::chrono::seconds(20));
  EXPECT_EQ(inv.value().config.port, 5000);
  EXPECT_FALSE(sfsd::parse_command_line({"--no-such-flag", "1"}).ok());
  EXPECT_FALSE(sfsd::parse_command_line({"--lease"}).ok());
}

TEST(SfsdCli, StartupFailuresAreOneClearLineAndNonZero) {
  const std::string dir = testing::TempDir() + "/sfsd-cli-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::string out;
  // A config file with a bad line.
  std::ofstream(dir + "/bad.conf") << "listen 127.0.0.1:4000\nlease soon\n";
  EXPECT_EQ(run_sfsd({"--config", dir + "/bad.conf"}, &out), 2);
  EXPECT_NE(out.find(dir + "/bad.conf:2: lease"), std::string::npos) << out;
  // A missing server key.
  const std::vector<std::string> base = {"--backend", "nfs://127.0.0.1/x?nfsport=700&mountport=701",
                                         "--handle-keys", dir + "/hk", "--listen",
                                         "127.0.0.1:" + std::to_string(free_port())};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  EXPECT_EQ(run_sfsd(with({"--server-key", dir + "/nokey"}), &out), 1);
  EXPECT_NE(out.find("cannot open key file " + dir + "/nokey"), std::string::npos) << out;
  // A key others can read.
  ASSERT_TRUE(sfs::write_key_file(dir + "/key", sfs::ServerKey::generate()).ok());
  ::chmod((dir + "/key").c_str(), 0644);
  EXPECT_EQ(run_sfsd(with({"--server-key", dir + "/key"}), &out), 1);
  EXPECT_NE(out.find("run chmod 600"), std::string::npos) << out;
  ::chmod((dir + "/key").c_str(), 0600);
  // A user key where the server key should be.
  ASSERT_TRUE(sfs::write_key_file(dir + "/ukey", sfs::UserKey::generate()).ok());
  EXPECT_EQ(run_sfsd(with({"--server-key", dir + "/ukey"}), &out), 1);
  EXPECT_NE(out.find("is a user key"), std::string::npos) << out;
  // A bad user database line.
  std::ofstream(dir + "/users") << "ed25519:nonsense alice 1000 1000\n";
  EXPECT_EQ(run_sfsd(with({"--server-key", dir + "/key", "--users", dir + "/users"}), &out), 1);
  EXPECT_NE(out.find(dir + "/users:1:"), std::string::npos) << out;
  // --check with good settings prints the name without starting.
  EXPECT_EQ(run_sfsd(with({"--server-key", dir + "/key", "--check"}), &out), 0);
  EXPECT_NE(out.find("configuration OK; this server is @127.0.0.1%"), std::string::npos) << out;
  // A backend nobody serves.
  EXPECT_EQ(run_sfsd(with({"--server-key", dir + "/key"}), &out), 1);
  EXPECT_NE(out.find("cannot mount the backend nfs://127.0.0.1/x"), std::string::npos) << out;
  std::filesystem::remove_all(dir);
}

TEST(SfsdCli, APortInUseIsReported) {
  SfsdServer server;
  std::string why;
  if (!server.setup(&why)) GTEST_SKIP() << why;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(server.port());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  std::string out;
  EXPECT_EQ(run_sfsd(server.args(), &out), 1);
  EXPECT_NE(out.find("cannot listen on 127.0.0.1:" + std::to_string(server.port()) + ": Address already in use"),
            std::string::npos)
      << out;
  ::close(fd);
}

TEST(SfsdCli, ARotatedHandleKeySealsWhileTheOldStillOpens) {
  RunningRuntime run;
  SfsdServer server;
  std::string why;
  if (!server.setup(&why)) GTEST_SKIP() << why;
  ASSERT_TRUE(server.start_sfsd(&why)) << why;
  auto c = connect(server, 1, nullptr, &why);
  ASSERT_TRUE(c) << why;
  const fs::Handle old_root = c->root().fh;
  const std::uint32_t root = login(*c, server.user("root"));
  auto f = create(*c, root, old_root, "f");
  ASSERT_TRUE(f);

  std::string out;
  EXPECT_EQ(run_sfsd({"--rotate-handle-key", "--handle-keys", server.dir() + "/handle.keys"}, &out), 0);
  EXPECT_NE(out.find("new handle key 2 now seals"), std::string::npos) << out;
  server.sfsd().signal(SIGHUP);
  // New handles come sealed with key 2 (byte 1 of a sealed handle).
  ASSERT_TRUE(eventually([&] {
    auto h = lookup(*c, root, old_root, "f");
    return h && static_cast<unsigned char>((*h)[1]) == 2;
  }, 10s));
  // Handles sealed with key 1 still open.
  EXPECT_TRUE(getattr(*c, root, *f));
  EXPECT_TRUE(getattr(*c, root, old_root));
  c->close();
}

}  // namespace
}  // namespace sfsd_test
