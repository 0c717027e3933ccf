// secure_server_test.cc: what SecureServer adds for a daemon: reloading the
// user database without dropping connections, anonymous access off, the
// prepare step on the connection's color, connection limits, the idle
// timeout, and the close notification. Starts no processes: server and
// clients run in this process on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_test_util.h"

namespace sfs::test {
namespace {

class SecureServerTest : public ::testing::Test {
 protected:
  RunningRuntime run_{2};
  LogCapture log_;
};

TEST_F(SecureServerTest, ReloadRevokesARemovedUserWithoutDroppingTheConnection) {
  TestSecureServer server;
  auto s = connect_sync(client_options(server, 30, log_));
  ASSERT_TRUE(s.ok()) << s.error();
  auto n = login_sync(s.value(), *server.alice, "alice");
  ASSERT_TRUE(n.ok()) << n.error();
  rpc::Auth as_alice = auth_number_cred(n.value());
  int sum = 0;
  ASSERT_TRUE(add_sync(s.value(), 2, 3, &sum, &as_alice).ok());

  // Same key, new uid: the login follows the new mapping.
  std::string db2 = format_user_public_key(server.alice->public_key()) + " alice 2000 200\n";
  std::atomic<int> revoked{-1};
  server.server->set_users(std::make_shared<UserDb>(UserDb::parse(db2, nullptr)),
                           [&](std::size_t r) { revoked = static_cast<int>(r); });
  ASSERT_TRUE(eventually([&] { return revoked.load() >= 0; }));
  EXPECT_EQ(revoked.load(), 0);
  ASSERT_TRUE(add_sync(s.value(), 1, 1, &sum, &as_alice).ok());

  // Alice removed: her auth number is refused, anonymous calls still work
  // on the same connection.
  revoked = -1;
  server.server->set_users(std::make_shared<UserDb>(UserDb::parse("", nullptr)),
                           [&](std::size_t r) { revoked = static_cast<int>(r); });
  ASSERT_TRUE(eventually([&] { return revoked.load() >= 0; }));
  EXPECT_EQ(revoked.load(), 1);
  auto st = add_sync(s.value(), 1, 1, &sum, &as_alice);
  EXPECT_EQ(st.error, rpc::RpcError::kAuthError);
  EXPECT_EQ(st.auth_stat, static_cast<std::uint32_t>(AUTH_REJECTEDCRED));
  EXPECT_TRUE(add_sync(s.value(), 1, 1, &sum).ok());
  // And she cannot log in again.
  EXPECT_FALSE(login_sync(s.value(), *server.alice, "alice").ok());
  {
    std::lock_guard lk(server.mu);
    ASSERT_EQ(server.seen.size(), 3u);
    EXPECT_EQ(server.seen[0].uid, 1000u);
    EXPECT_EQ(server.seen[1].uid, 2000u);
    EXPECT_EQ(server.seen[1].gid, 200u);
    EXPECT_EQ(server.seen[2].uid, kNobody);
  }
  EXPECT_EQ(server.server->stats().logins_revoked, 1u);
  s.value().close();
}

TEST_F(SecureServerTest, AnonymousCallsAreRefusedWhenAnonymousAccessIsOff) {
  TestSecureServer server([](SecureServerOptions& o) { o.allow_anonymous = false; });
  auto s = connect_sync(client_options(server, 31, log_));
  ASSERT_TRUE(s.ok()) << s.error();
  int sum = 0;
  auto st = add_sync(s.value(), 1, 1, &sum);
  EXPECT_EQ(st.error, rpc::RpcError::kAuthError);
  EXPECT_EQ(st.auth_stat, static_cast<std::uint32_t>(AUTH_TOOWEAK));
  auto n = login_sync(s.value(), *server.alice, "alice");
  ASSERT_TRUE(n.ok()) << n.error();
  rpc::Auth as_alice = auth_number_cred(n.value());
  EXPECT_TRUE(add_sync(s.value(), 1, 1, &sum, &as_alice).ok());
  s.value().close();
}

TEST_F(SecureServerTest, PrepareRunsOnTheConnectionsColorAndMayAnswerItself) {
  std::atomic<asmp::color_t> prepare_color{0};
  std::atomic<int> prepared{0};
  TestSecureServer server([&](SecureServerOptions& o) {
    o.programs[0].prepare = [&](rpc::Call& c) {
      prepare_color = asmp::Runtime::current_color();
      ++prepared;
      if (c.proc() != SFSTEST_ADD) return true;
      auto* a = c.args<sfstest_pair>();
      if (a->a < 0) {  // answered here: never reaches the shared color
        int minus = -1;
        c.reply(&minus);
        return false;
      }
      a->b += 100;  // rewritten in place before the hop
      return true;
    };
  });
  auto s = connect_sync(client_options(server, 32, log_));
  ASSERT_TRUE(s.ok()) << s.error();
  int sum = 0;
  ASSERT_TRUE(add_sync(s.value(), 1, 2, &sum).ok());
  EXPECT_EQ(sum, 103);
  ASSERT_TRUE(add_sync(s.value(), -5, 2, &sum).ok());
  EXPECT_EQ(sum, -1);
  EXPECT_EQ(prepared.load(), 2);
  EXPECT_NE(prepare_color.load(), 0u) << "prepare must run on the connection's color";
  {
    std::lock_guard lk(server.mu);
    EXPECT_EQ(server.seen.size(), 1u);  // only the call prepare let through
  }
  s.value().close();
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

// True once the server has closed fd (read returns 0 or an error).
bool closed_by_peer(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b;
  return ::read(fd, &b, 1) <= 0;
}

TEST_F(SecureServerTest, ConnectionsOverThePerSourceLimitAreClosedAtOnce) {
  TestSecureServer server([](SecureServerOptions& o) { o.max_connections_per_source = 3; });
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(raw_connect(server.port()));
  ASSERT_TRUE(eventually([&] { return server.server->connections() == 3; }));
  int extra = raw_connect(server.port());
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(closed_by_peer(extra));
  EXPECT_TRUE(eventually([&] { return server.server->stats().refused_over_limit == 1; }));
  EXPECT_TRUE(server.log.contains("too many connections"));
  ::close(extra);
  // One closes: room for one more, which completes a handshake.
  ::close(held.back());
  held.pop_back();
  ASSERT_TRUE(eventually([&] { return server.server->connections() == 2; }));
  auto s = connect_sync(client_options(server, 33, log_));
  EXPECT_TRUE(s.ok()) << s.error();
  if (s.ok()) s.value().close();
  for (int fd : held) ::close(fd);
}

TEST_F(SecureServerTest, AnIdleConnectionIsClosedAndReportedOnTheSharedColor) {
  std::atomic<std::uint64_t> closed_id{0};
  std::atomic<asmp::color_t> closed_color{99};
  TestSecureServer server([&](SecureServerOptions& o) {
    o.idle_timeout = 300ms;
    o.on_close = [&](std::uint64_t id) {
      closed_color = asmp::Runtime::current_color();
      closed_id = id;
    };
  });
  std::atomic<bool> lost{false};
  auto o = client_options(server, 34, log_);
  o.on_close = [&](const std::string&) { lost = true; };
  auto s = connect_sync(std::move(o));
  ASSERT_TRUE(s.ok()) << s.error();
  int sum = 0;
  // Busy: calls every 50 ms keep it open past the timeout.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(add_sync(s.value(), i, 1, &sum).ok());
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_FALSE(lost.load());
  // Idle: closed.
  EXPECT_TRUE(eventually([&] { return lost.load(); }, 5s));
  EXPECT_TRUE(eventually([&] { return closed_id.load() != 0; }));
  EXPECT_EQ(closed_color.load(), 0u);
  std::uint64_t id;
  {
    std::lock_guard lk(server.mu);
    ASSERT_FALSE(server.seen.empty());
    id = server.seen[0].conn_id;
  }
  EXPECT_EQ(closed_id.load(), id);
  EXPECT_EQ(server.server->stats().idle_closed, 1u);
}

}  // namespace
}  // namespace sfs::test

namespace sfs::test {
namespace {

TEST_F(SecureServerTest, AFloodOfBadLoginsClosesItsConnectionAndIsLoggedSparingly) {
  TestSecureServer server;
  auto bad = connect_sync(client_options(server, 40, log_));
  ASSERT_TRUE(bad.ok()) << bad.error();
  auto good = connect_sync(client_options(server, 41, log_));
  ASSERT_TRUE(good.ok()) << good.error();
  auto n = login_sync(good.value(), *server.alice, "alice");
  ASSERT_TRUE(n.ok()) << n.error();
  // The stranger's key is not in the database; 50 tries.
  int refused = 0, lost = 0;
  for (int i = 0; i < 50; ++i) {
    auto r = login_sync(bad.value(), *server.stranger, "mallory");
    if (r.ok()) continue;
    if (r.error().find("refused by the server") != std::string::npos) ++refused;
    else ++lost;
  }
  EXPECT_EQ(refused, 8) << "the connection must close after 8 failed logins";
  EXPECT_EQ(lost, 42);
  EXPECT_TRUE(server.log.contains("8 failed logins; closing"));
  std::size_t refusal_lines = 0;
  {
    std::lock_guard lk(server.log.mu);
    for (auto& l : server.log.lines)
      if (l.find("refused: login refused") != std::string::npos) ++refusal_lines;
  }
  EXPECT_LE(refusal_lines, 5u) << "refusals are logged at most 5 a second";
  // The other connection and its login are untouched.
  int sum = 0;
  rpc::Auth as_alice = auth_number_cred(n.value());
  EXPECT_TRUE(add_sync(good.value(), 2, 2, &sum, &as_alice).ok());
  EXPECT_EQ(sum, 4);
  good.value().close();
}

}  // namespace
}  // namespace sfs::test
