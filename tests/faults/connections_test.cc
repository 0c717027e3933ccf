// connections_test.cc: many protocol clients (FileClient, as sfsclient
// uses it) connected to one sfsd at once and held, while a normal client
// keeps working; sfsd's memory is reported and bounded.
//
// Starts: ganesha.nfsd and sfsd (sfsd_test_util.h). The count and the hold
// come from SFS_FAULTS_CONNECTIONS (default 500) and
// SFS_FAULTS_HOLD_SECONDS (default 20 in CI; the issue asks for 60: set it
// to run the full minute).
#include <sys/resource.h>

#include <cstdlib>

#include "../sfsd/sfsd_test_util.h"
#include "settings.h"

namespace faults {
namespace {

using namespace sfsd_test;

// What one idle connection may cost sfsd, from the documented per-connection
// buffers: the transport's read chunk (TransportOptions::read_chunk,
// 256 KiB, allocated at start; docs/rpc.md) plus 64 KiB for everything
// else a connection owns (channel keys and replay window, the connection
// and its call table, a handshake-sized record, the socket's bookkeeping).
// The backpressure limits (max_calls_per_connection,
// max_queued_bytes_per_connection) bound connections under load and do not
// apply here: these connections make one call and then wait.
constexpr std::uint64_t kPerConnectionKib = 256 + 64;

class ConnectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    count_ = env_number("SFS_FAULTS_CONNECTIONS", 500);
    hold_ = std::chrono::seconds(env_number("SFS_FAULTS_HOLD_SECONDS", 20));
    // Each side needs a descriptor per connection (sfsd inherits the
    // limit): raise the soft limit, within the hard one, before sfsd starts.
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    const rlim_t want = count_ + 512;
    if (lim.rlim_cur < want) {
      if (lim.rlim_max < want) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max << " < " << want;
      lim.rlim_cur = want;
      ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0) << std::strerror(errno);
    }
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    // All the connections come from 127.0.0.1: one source, so its
    // per-source limits (connections, and the handshake rate that stops a
    // flood of handshakes from one address) are raised to let 500 in.
    const std::string room = std::to_string(count_ + 64);
    ASSERT_TRUE(server_.start_sfsd(&why, {"--max-connections", room, "--max-connections-per-source", room,
                                          "--handshakes-per-source", "0", "--max-handshakes-in-progress-per-source",
                                          room, "--max-handshakes-in-progress", room}))
        << why;
  }

  // A client as an ordinary user would be one: connect, log in, create,
  // write, read back. Every call must be answered (30 s limit per call).
  void a_normal_client_works(int round) {
    std::string why;
    auto c = connect(server_, 5, nullptr, &why);
    ASSERT_TRUE(c) << "round " << round << ": a new client could not connect: " << why;
    const std::uint32_t root = login(*c, server_.user("root"));
    const std::string name = "probe-" + std::to_string(round);
    auto f = create(*c, root, c->root().fh, name);
    ASSERT_TRUE(f) << "round " << round;
    ASSERT_EQ(write(*c, root, *f, 0, name), SFS_NFS3_OK) << "round " << round;
    EXPECT_EQ(read(*c, root, *f, 0, 100), name) << "round " << round;
    c->close();
  }

  std::uint64_t count_ = 0;
  std::chrono::seconds hold_{0};
  RunningRuntime run_;
  SfsdServer server_;
};

TEST_F(ConnectionsTest, FiveHundredClientsHeldWhileAnotherWorksAndSfsdMemoryStaysBounded) {
  const pid_t pid = server_.sfsd().pid();
  a_normal_client_works(0);  // warmed up: the baseline includes one client's worth of buffers
  const std::uint64_t base = status_kib(pid, "VmRSS");

  std::vector<std::shared_ptr<fs::FileClient>> held;
  for (std::uint64_t i = 0; i < count_; ++i) {
    std::string why;
    auto c = connect(server_, static_cast<asmp::color_t>(10 + i), nullptr, &why);
    ASSERT_TRUE(c) << "connection " << i << " of " << count_ << ": " << why;
    held.push_back(std::move(c));
  }
  const std::uint64_t connected = status_kib(pid, "VmRSS");

  // Held: every few seconds a normal client must still get its work done.
  std::uint64_t peak = connected;
  const auto end = std::chrono::steady_clock::now() + hold_;
  for (int round = 1; std::chrono::steady_clock::now() < end; ++round) {
    a_normal_client_works(round);
    peak = std::max(peak, status_kib(pid, "VmRSS"));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(5s, end - std::chrono::steady_clock::now()));
  }
  // Every held connection is still open and answers.
  int answered = 0;
  for (auto& c : held)
    if (!c->closed() && getattr(*c, 0, c->root().fh)) ++answered;
  EXPECT_EQ(answered, static_cast<int>(count_)) << "held connections that no longer answer";
  peak = std::max(peak, status_kib(pid, "VmRSS"));
  const std::uint64_t hwm = status_kib(pid, "VmHWM");

  const std::uint64_t per = count_ ? (peak > base ? peak - base : 0) / count_ : 0;
  const std::uint64_t bound = base + count_ * kPerConnectionKib;
  std::printf("sfsd memory: VmRSS %llu KiB before, %llu KiB with %llu connections, peak %llu KiB "
              "(%llu KiB per connection), VmHWM %llu KiB; bound %llu KiB (%llu KiB per connection)\n",
              static_cast<unsigned long long>(base), static_cast<unsigned long long>(connected),
              static_cast<unsigned long long>(count_), static_cast<unsigned long long>(peak),
              static_cast<unsigned long long>(per), static_cast<unsigned long long>(hwm),
              static_cast<unsigned long long>(bound), static_cast<unsigned long long>(kPerConnectionKib));
  ASSERT_GT(base, 0u) << "could not read /proc/" << pid << "/status";
  EXPECT_LE(peak, bound) << "sfsd holds more per idle connection than its buffers account for";

  for (auto& c : held) c->close();
  held.clear();
  a_normal_client_works(1000);
  std::printf("sfsd memory after closing them: VmRSS %llu KiB\n",
              static_cast<unsigned long long>(status_kib(pid, "VmRSS")));
}

}  // namespace
}  // namespace faults
