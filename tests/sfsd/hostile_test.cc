// hostile_test.cc: clients that try to take sfsd down, while an honest
// client keeps working: one that floods calls and never reads the replies,
// one that trickles a record byte by byte (slow loris), a flood of
// connections past the process's file descriptor limit (EMFILE). sfsd's
// memory stays bounded and it never spins. Starts: ganesha.nfsd and sfsd.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

// CPU seconds a process has used.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream f(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && f >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int raw_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class HostileTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> flags = {}) {
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    ASSERT_TRUE(server_.start_sfsd(&why, flags)) << why;
    honest_ = connect(server_, 1, nullptr, &why);
    ASSERT_TRUE(honest_) << why;
  }
  void TearDown() override {
    if (honest_) honest_->close();
    if (HasFailure()) std::cerr << "sfsd said:\n" << server_.sfsd().errors();
  }
  // The honest client's GETATTR round trip still works.
  bool honest_still_served() { return getattr(*honest_, 0, honest_->root().fh).has_value(); }

  RunningRuntime run_;
  SfsdServer server_;
  std::shared_ptr<fs::FileClient> honest_;
};

TEST_F(HostileTest, AClientThatNeverReadsItsRepliesCannotGrowTheServer) {
  start();
  if (IsSkipped() || HasFatalFailure()) return;
  // A 1 MiB file to read over and over.
  const std::uint32_t root = login(*honest_, server_.user("root"));
  auto f = create(*honest_, root, honest_->root().fh, "big", 0644);
  ASSERT_TRUE(f);
  ASSERT_EQ(write(*honest_, root, *f, 0, std::string(1 << 20, 'b')), SFS_NFS3_OK);

  std::string why;
  auto flooder = connect(server_, 2, nullptr, &why);
  ASSERT_TRUE(flooder) << why;
  // Stop reading on the flooder's side, then ask for 400 MiB of replies.
  auto held = std::make_shared<Box<bool>>();
  asmp::default_runtime().cpucb(asmp::Closure(
      [flooder, held] {
        flooder->session().connection()->transport()->hold_reading();
        held->set(true);
      },
      2));
  ASSERT_TRUE(held->wait());
  const long before = static_cast<long>(status_kib(server_.sfsd().pid(), "VmRSS"));
  for (int i = 0; i < 400; ++i)
    flooder->read(0, *f, 0, 1 << 20, fs::FileClient::ReadDone([](rpc::RpcStatus, const fs::ReadView&) {}));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  // Meanwhile the honest client is served, and sfsd holds a bounded amount.
  EXPECT_TRUE(honest_still_served());
  const long after = static_cast<long>(status_kib(server_.sfsd().pid(), "VmRSS"));
  // Under AddressSanitizer freed buffers sit in its quarantine (up to
  // 256 MiB) instead of being reused, and every block has redzones: allow
  // for what the ~50 MiB of freed reply buffers cost there.
#if defined(__SANITIZE_ADDRESS__)
  constexpr long kSanitizerSlackKib = 96 * 1024;
#else
  constexpr long kSanitizerSlackKib = 0;
#endif
  EXPECT_LT(after - before, 96 * 1024 + kSanitizerSlackKib)
      << "sfsd grew from " << before << " KiB to " << after << " KiB";
  flooder->close();
}

TEST_F(HostileTest, ASlowLorisIsClosedAndCostsNothingMeanwhile) {
  start({"--progress-timeout", "1s", "--handshake-timeout", "60s"});
  if (IsSkipped() || HasFatalFailure()) return;
  // A record mark announcing a 2000-byte record (a larger one is refused at
  // once before the handshake), then a byte every 100 ms.
  const int fd = raw_connect(server_.port());
  ASSERT_GE(fd, 0);
  const unsigned char mark[4] = {0x80, 0x00, 0x07, 0xd0};
  ASSERT_EQ(::write(fd, mark, 4), 4);
  const auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  while (std::chrono::steady_clock::now() - t0 < 10s) {
    if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    char b;
    if (::recv(fd, &b, 1, MSG_DONTWAIT) == 0) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(closed) << "a trickling peer was not closed";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(honest_still_served());
  EXPECT_NE(server_.sfsd().errors().find("a record has been arriving for over"), std::string::npos);
  ::close(fd);
}

TEST_F(HostileTest, OutOfFileDescriptorsTheServerWaitsInsteadOfSpinning) {
  // sfsd with room for few descriptors: the listener, the backend, a few
  // connections.
  std::string why;
  if (!server_.setup(&why)) GTEST_SKIP() << why;
  ASSERT_TRUE(server_.start_sfsd(&why)) << why;
  rlimit lim{48, 48};
  ASSERT_EQ(::prlimit(server_.sfsd().pid(), RLIMIT_NOFILE, &lim, nullptr), 0);
  // More connections than it can take: they wait in the listen queue.
  std::vector<int> fds;
  for (int i = 0; i < 80; ++i) {
    int fd = raw_connect(server_.port());
    if (fd >= 0) fds.push_back(fd);
  }
  const double cpu0 = cpu_seconds(server_.sfsd().pid());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double cpu = cpu_seconds(server_.sfsd().pid()) - cpu0;
  EXPECT_LT(cpu, 0.5) << "sfsd spent " << cpu << " CPU-s in 2 s out of descriptors";
  // Once they go, a real client gets in.
  for (int fd : fds) ::close(fd);
  std::shared_ptr<fs::FileClient> c;
  ASSERT_TRUE(eventually([&] {
    c = connect(server_, 3, nullptr, &why);
    return c != nullptr;
  }, 20s)) << why;
  EXPECT_TRUE(getattr(*c, 0, c->root().fh).has_value());
  c->close();
  EXPECT_NE(server_.sfsd().errors().find("Too many open files"), std::string::npos) << server_.sfsd().errors();
}

}  // namespace
}  // namespace sfsd_test
