// acceptor_test.cc: the accept loop when the process runs out of file
// descriptors. The test lowers its own RLIMIT_NOFILE (soft limit, restored
// after) and fills the descriptor table with dup()s, so accept() fails with
// EMFILE while a client waits in the listen queue. Starts no processes;
// loopback only; every wait is bounded.
#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "rpc_test_util.h"

namespace asmp::rpc::test {
namespace {

// Fills the descriptor table (soft limit lowered to a little above the
// highest descriptor in use) until dup fails; gives it all back when
// destroyed or on release().
class FullFdTable {
 public:
  explicit FullFdTable(int any_fd) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    int highest = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
      while (dirent* e = ::readdir(d)) highest = std::max(highest, std::atoi(e->d_name));
      ::closedir(d);
    }
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(highest + 32);
    ok_ = setrlimit(RLIMIT_NOFILE, &low) == 0;
    for (;;) {
      int fd = ::dup(any_fd);
      if (fd < 0) {
        full_ = errno == EMFILE;
        break;
      }
      fds_.push_back(fd);
    }
  }
  ~FullFdTable() { release(); }
  void release() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
    if (ok_) setrlimit(RLIMIT_NOFILE, &saved_);
    ok_ = false;
  }
  bool full() const { return ok_ && full_; }

 private:
  rlimit saved_{};
  bool ok_ = false, full_ = false;
  std::vector<int> fds_;
};

// A blocking client socket made while descriptors are available; connect()
// later needs none, and completes from the listen queue without accept.
int client_socket() { return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }

bool connect_to_port(int fd, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

struct Log {
  std::mutex mu;
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& s) {
      std::lock_guard lk(mu);
      lines.push_back(s);
    };
  }
  std::vector<std::string> get() {
    std::lock_guard lk(mu);
    return lines;
  }
};

// With a connection waiting and no descriptor free, accept fails at once on
// every wakeup: the old loop was woken again and again (level-triggered),
// one core spent on EMFILE. The acceptor stops watching the socket and
// retries on a timer, 10 ms doubling (capped at 40 ms here): failed accepts
// = retries + 1, one message for the episode, and once descriptors come
// back the waiting client is accepted and the socket is watched again.
TEST(Acceptor, BacksOffWhenDescriptorsRunOutAndRecovers) {
  RunningRuntime run;
  int lfd = -1;
  std::uint16_t port = 0;
  ASSERT_EQ(tcp_listen("127.0.0.1", 0, lfd, port), 0);
  Log log;
  AcceptorOptions o;
  o.min_backoff = 10ms;
  o.max_backoff = 40ms;
  o.log = log.sink();
  std::mutex mu;
  std::vector<int> accepted;
  auto acc = Acceptor::create(
      lfd, 0,
      [&](int fd) {
        std::lock_guard lk(mu);
        accepted.push_back(fd);
      },
      o);
  ASSERT_EQ(acc->start(), 0);
  auto n_accepted = [&] {
    std::lock_guard lk(mu);
    return accepted.size();
  };
  int c1 = client_socket(), c2 = client_socket();
  ASSERT_GE(c1, 0);
  ASSERT_GE(c2, 0);
  {
    FullFdTable table(lfd);
    ASSERT_TRUE(table.full()) << "could not fill the descriptor table";
    ASSERT_TRUE(connect_to_port(c1, port));
    ASSERT_TRUE(eventually([&] { return acc->stats().retries >= 4; }, 10s)) << "no retries";
    AcceptorStats st = acc->stats();
    EXPECT_TRUE(st.backing_off);
    EXPECT_EQ(st.episodes, 1u);
    EXPECT_EQ(st.accepted, 0u);
    EXPECT_GE(st.failures, st.retries);
    EXPECT_LE(st.failures, st.retries + 2) << "accept was tried outside the back-off timer (spinning)";
    auto lines = log.get();
    ASSERT_EQ(lines.size(), 1u) << "one message per episode";
    EXPECT_NE(lines[0].find("Too many open files"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("127.0.0.1:" + std::to_string(port)), std::string::npos) << lines[0];
    table.release();
  }
  ASSERT_TRUE(eventually([&] { return n_accepted() == 1; })) << "the waiting client was never accepted";
  EXPECT_TRUE(eventually([&] { return !acc->stats().backing_off; }));
  auto lines = log.get();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("again"), std::string::npos) << lines[1];
  // Watching the socket again: a new client is accepted without a timer.
  ASSERT_TRUE(connect_to_port(c2, port));
  EXPECT_TRUE(eventually([&] { return n_accepted() == 2; }));
  EXPECT_EQ(acc->stats().episodes, 1u);
  acc->close();
  ::close(c1);
  ::close(c2);
  std::lock_guard lk(mu);
  for (int fd : accepted) ::close(fd);
}

// The same through asmp::rpc::Server: it backs off (its acceptor's counters
// say so) and serves the client that waited, once descriptors are back.
TEST(Acceptor, ServerServesTheClientThatWaitedOutTheShortage) {
  RunningRuntime run;
  ServerOptions so;
  so.acceptor.min_backoff = 10ms;
  so.acceptor.max_backoff = 40ms;
  Log log;
  so.acceptor.log = log.sink();
  TestServer server(so);
  int c = client_socket();
  ASSERT_GE(c, 0);
  {
    // Any open descriptor will do for dup; the client's is one.
    FullFdTable table(c);
    ASSERT_TRUE(table.full());
    ASSERT_TRUE(connect_to_port(c, server.port()));
    ASSERT_TRUE(eventually([&] { return server.server().acceptor_stats().retries >= 3; }, 10s));
    AcceptorStats st = server.server().acceptor_stats();
    EXPECT_EQ(st.episodes, 1u);
    EXPECT_LE(st.failures, st.retries + 2);
  }
  // The client, blocking, speaks RPC on the connection that waited.
  timeval tv{5, 0};
  ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto w = call_header(42, SFSTEST_ADD);
  w.push_back(40);
  w.push_back(2);
  std::vector<std::uint32_t> out{htonl(0x80000000u | static_cast<std::uint32_t>(4 * w.size()))};
  for (std::uint32_t x : w) out.push_back(htonl(x));
  ASSERT_EQ(::send(c, out.data(), out.size() * 4, MSG_NOSIGNAL), static_cast<ssize_t>(out.size() * 4));
  std::uint32_t reply[8];
  std::size_t have = 0;
  while (have < sizeof reply) {
    ssize_t r = ::recv(c, reinterpret_cast<char*>(reply) + have, sizeof reply - have, 0);
    ASSERT_GT(r, 0) << "no reply from the server";
    have += static_cast<std::size_t>(r);
  }
  EXPECT_EQ(ntohl(reply[1]), 42u);
  EXPECT_EQ(ntohl(reply[7]), 42u) << "40 + 2";
  ::close(c);
  // "Accepting again" comes once the queue is found empty, which may be
  // after the reply.
  EXPECT_TRUE(eventually([&] { return log.get().size() == 2; }));
  EXPECT_EQ(log.get().size(), 2u);
}

}  // namespace
}  // namespace asmp::rpc::test
