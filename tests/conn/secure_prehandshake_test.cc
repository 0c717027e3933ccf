// secure_prehandshake_test.cc: what a client that has not completed a
// handshake can make SecureServer do (docs/security.md, "Before the
// handshake"): only an SFS_CONNECT call is answered, records are capped at
// SFS_CONNECT's size, a flood of replayed client hellos from one address is
// refused after its burst while another client still logs in, handshakes in
// progress are capped, and clear text from either side reaches logs and
// messages only in printable form. Raw sockets speak the wire by hand;
// sources 127.0.0.2 and 127.0.0.3 play other hosts (all of 127/8 is
// loopback). Counts only, no timing assertions.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rpc/xdr.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_test_util.h"
#include "sfs/encoding.h"
#include "sfs/sfs_connect.h"
#include "sfs/sfs_login.h"

namespace sfs::test {
namespace {

std::string be32(std::uint32_t v) {
  std::string s(4, '\0');
  store_be32(reinterpret_cast<std::uint8_t*>(s.data()), v);
  return s;
}

std::uint32_t word(const std::string& s, std::size_t at) {
  return load_be32(reinterpret_cast<const std::uint8_t*>(s.data()) + at);
}

// One record-marked RPC call with an AUTH_NONE verifier.
std::string call_record(std::uint32_t xid, std::uint32_t prog, std::uint32_t vers, std::uint32_t proc,
                        const std::string& args, std::uint32_t cred_flavor = AUTH_NONE) {
  std::string body = be32(xid) + be32(0) + be32(2) + be32(prog) + be32(vers) + be32(proc);
  body += be32(cred_flavor) + (cred_flavor == AUTH_NONE ? be32(0) : be32(4) + be32(0));
  body += be32(AUTH_NONE) + be32(0) + args;
  return be32(0x80000000u | static_cast<std::uint32_t>(body.size())) + body;
}

std::string encode_connect(std::uint32_t release, const std::string& host, std::uint32_t port,
                           const std::string& hostid, const Bytes& hello) {
  std::string h = host, id = hostid;
  sfs_connect_arg a{};
  a.release = release;
  a.host = h.data();
  a.port = port;
  a.hostid = id.data();
  a.hello.hello_len = static_cast<u_int>(hello.size());
  a.hello.hello_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(hello.data()));
  std::string buf(16384, '\0');
  XDR x;
  xdrmem_create(&x, buf.data(), static_cast<u_int>(buf.size()), XDR_ENCODE);
  EXPECT_TRUE(xdr_sfs_connect_arg(&x, &a));
  buf.resize(xdr_getpos(&x));
  xdr_destroy(&x);
  return buf;
}

int connect_from(const char* source, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool read_exact(int fd, std::string& out, std::size_t n) {
  out.resize(n);
  std::size_t off = 0;
  while (off < n) {
    ssize_t r = ::recv(fd, out.data() + off, n - off, 0);
    if (r <= 0) return false;
    off += static_cast<std::size_t>(r);
  }
  return true;
}

// The body of the next record, or nullopt if the connection ended (or 10 s
// passed) first.
std::optional<std::string> read_record(int fd) {
  std::string mark, body;
  if (!read_exact(fd, mark, 4)) return std::nullopt;
  if (!read_exact(fd, body, word(mark, 0) & 0x7fffffffu)) return std::nullopt;
  return body;
}

// True if the server closed the connection without sending a single byte.
bool closed_without_reply(int fd) {
  char b;
  ssize_t n = ::recv(fd, &b, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// The sfs_connect_res status of an accepted reply body.
std::uint32_t connect_status(const std::string& reply) {
  EXPECT_GE(reply.size(), 28u);
  EXPECT_EQ(word(reply, 4), 1u);   // REPLY
  EXPECT_EQ(word(reply, 8), 0u);   // MSG_ACCEPTED
  EXPECT_EQ(word(reply, 20), 0u);  // SUCCESS
  return word(reply, 24);
}

bool has_control_chars(const std::string& s) {
  for (unsigned char ch : s)
    if (ch < 0x20 || ch == 0x7f) return true;
  return false;
}

class PreHandshakeTest : public ::testing::Test {
 protected:
  // A legitimate client from 127.0.0.1 connects and logs in as alice.
  void legit_client_logs_in(TestSecureServer& server) {
    SecureConnectOptions o;
    o.server = server.name();
    o.color = 40;
    o.log = log_.sink();
    auto s = connect_sync(o);
    ASSERT_TRUE(s.ok()) << s.error();
    auto n = login_sync(s.value(), *server.alice, "alice");
    EXPECT_TRUE(n.ok()) << n.error();
    s.value().close();
  }

  // Message 1 as a real client makes it for `server`, with the clear fields
  // it would send beside it.
  static std::string client_hello_call(TestSecureServer& server, std::uint32_t xid) {
    const SelfCertName name = server.name();
    const std::string hostid = format_hostid(name.hostid);
    ClientHandshake hs(ClientHandshakeConfig{name, default_cipher_offer()});
    Bytes m1 = hs.start(ConnectContext{SFS_RELEASE, name.location.host, name.location.port, hostid}).value();
    Bytes body(m1.begin() + kHandshakeFrameHeader, m1.end());
    return call_record(xid, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT,
                       encode_connect(SFS_RELEASE, name.location.host, name.location.port, hostid, body));
  }

  RunningRuntime run_{2};
  LogCapture log_;
};

TEST_F(PreHandshakeTest, AnythingButAnSfsConnectCallClosesTheConnectionWithoutAReply) {
  TestSecureServer server;
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"unknown program", call_record(1, 0x2fffffffu, 1, 0, "")},
      {"served program before the handshake", call_record(2, SFSTEST_PROG, SFSTEST_V1, 0, "")},
      {"SFS_CONNECT's NULL", call_record(3, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT_NULL, "")},
      {"SFS_CONNECT version 2", call_record(4, SFS_CONNECT_PROG, 2, SFS_CONNECT, "")},
      {"SFS_CONNECT procedure 7", call_record(5, SFS_CONNECT_PROG, SFS_CONNECT_V1, 7, "")},
      {"SFS_LOGIN", call_record(6, SFS_LOGIN_PROG, SFS_LOGIN_V1, 0, "")},
      {"SFS_CONNECT with AUTH_SYS", call_record(7, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT, "", 1)},
      {"a reply", be32(0x80000018u) + be32(8) + be32(1) + be32(0) + be32(0) + be32(0) + be32(0)},
      {"a short record", be32(0x80000004u) + be32(9)},
  };
  for (const auto& [what, record] : cases) {
    int fd = connect_from("127.0.0.1", server.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, record));
    EXPECT_TRUE(closed_without_reply(fd)) << what << ": the server answered in the clear";
    ::close(fd);
  }
  EXPECT_TRUE(eventually([&] { return server.server->stats().prehandshake_rejected == cases.size(); }))
      << server.server->stats().prehandshake_rejected;
  EXPECT_TRUE(server.log.contains("before the handshake; closing")) << server.log.all();
  EXPECT_EQ(server.server->stats().established, 0u);
  legit_client_logs_in(server);
}

TEST_F(PreHandshakeTest, ARecordLargerThanSfsConnectsIsRefusedFromItsMark) {
  TestSecureServer server;
  // A well-formed SFS_CONNECT call whose hello is 3000 bytes: over the
  // 2048-byte record cap, so it is never decoded (without the cap, the
  // server would answer BADHELLO in the clear).
  const std::string record =
      call_record(1, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT,
                  encode_connect(SFS_RELEASE, "127.0.0.1", server.port(), "x", Bytes(3000, 7)));
  int fd = connect_from("127.0.0.1", server.port());
  ASSERT_GE(fd, 0);
  send_all(fd, record);  // the server may close before it has all of it
  EXPECT_TRUE(closed_without_reply(fd));
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return server.log.contains("peer sent a record above the size limit"); }))
      << server.log.all();
  // After the handshake the cap no longer applies: a 256 KiB echo works.
  SecureConnectOptions o;
  o.server = server.name();
  o.color = 41;
  o.log = log_.sink();
  auto s = connect_sync(o);
  ASSERT_TRUE(s.ok()) << s.error();
  std::vector<char> big = pattern(256 * 1024, 3);
  EXPECT_TRUE(echo_sync(s.value().connection(), big));
  s.value().close();
}

// The review's attack: one captured client hello, replayed on new
// connections, each costing the server a DH and a signature. From one
// address, only the bucket's burst is answered with a handshake; after it
// a connection is told SFS_CONNECT_BUSY (before any public-key work) or,
// within a second of the last one told, closed at accept. A client
// elsewhere is not affected.
// The client side of the same rule: a "server" (whoever answers at the
// address) may send only SFS_CONNECT's reply before the handshake, so a
// record mark above that size closes the connection at once, before the
// body is read; the client neither buffers it nor waits for it.
TEST_F(PreHandshakeTest, AClientRefusesARecordLargerThanSfsConnectsReplyFromItsMark) {
  std::uint16_t port = 0;
  const int lfd = listen_loopback(&port);
  ASSERT_GE(lfd, 0);
  // The fake server: reads the call, announces a 1 MiB reply record, sends
  // 16 KiB of it, and then waits (up to 10 s) for the client to hang up.
  std::atomic<bool> client_hung_up{false};
  std::thread fake([&] {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto call = read_record(fd);
    if (call && call->size() >= 4) {
      std::string reply = be32(0x80000000u | (1u << 20)) + be32(word(*call, 0)) + be32(1) + be32(0);
      reply += std::string(16384, 'x');
      send_all(fd, reply);
      char b[4096];
      ssize_t n;
      while ((n = ::recv(fd, b, sizeof b, 0)) > 0) {
      }
      client_hung_up = n == 0 || (n < 0 && errno == ECONNRESET);
    }
    ::close(fd);
  });
  auto key = ServerKey::generate();
  SecureConnectOptions o;
  o.server = SelfCertName{Location{"127.0.0.1", port}, compute_hostid(Location{"127.0.0.1", port}, key.public_key())};
  o.color = 41;
  o.handshake_timeout = std::chrono::seconds(30);
  auto s = connect_sync(o, std::chrono::seconds(40));
  fake.join();
  ::close(lfd);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().find("timed out"), std::string::npos)
      << "the client waited for the record instead of refusing its mark: " << s.error();
  EXPECT_TRUE(client_hung_up.load()) << "the client kept the connection open";
}

TEST_F(PreHandshakeTest, AFloodOfReplayedHellosIsRefusedAfterTheBurstWhileAClientLogsIn) {
  TestSecureServer server([](SecureServerOptions& o) {
    o.handshake_limits.per_source_burst = 5;
    o.handshake_limits.per_source_per_second = 0.001;  // no refill while the test runs
  });
  const std::string replayed = client_hello_call(server, 77);
  int handshakes = 0, busy = 0, closed = 0, other = 0;
  for (int i = 0; i < 30; ++i) {
    int fd = connect_from("127.0.0.2", server.port());
    ASSERT_GE(fd, 0);
    send_all(fd, replayed);  // may fail: closed at accept
    auto reply = read_record(fd);
    if (!reply) {
      ++closed;
    } else {
      const std::uint32_t st = connect_status(*reply);
      (st == SFS_CONNECT_OK ? handshakes : st == SFS_CONNECT_BUSY ? busy : other)++;
    }
    ::close(fd);
  }
  EXPECT_EQ(handshakes, 5);
  EXPECT_GE(busy, 1);  // the first refused connection is told why
  EXPECT_EQ(busy + closed, 25);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(server.server->stats().established, 5u);
  EXPECT_EQ(server.server->stats().handshakes_rate_limited, 25u);
  EXPECT_TRUE(server.log.contains("handshakes a second from 127.0.0.2")) << server.log.all();
  legit_client_logs_in(server);
}

TEST_F(PreHandshakeTest, HandshakesInProgressAreCappedPerSourceAndInAll) {
  {
    TestSecureServer server([](SecureServerOptions& o) { o.handshake_limits.max_in_progress_per_source = 3; });
    std::vector<int> silent;
    for (int i = 0; i < 3; ++i) silent.push_back(connect_from("127.0.0.2", server.port()));
    ASSERT_TRUE(eventually([&] { return server.server->connections() == 3; }));
    int extra = connect_from("127.0.0.2", server.port());
    ASSERT_GE(extra, 0);
    EXPECT_TRUE(closed_without_reply(extra));
    ::close(extra);
    EXPECT_EQ(server.server->stats().refused_handshakes_in_progress, 1u);
    EXPECT_TRUE(server.log.contains("too many handshakes in progress from 127.0.0.2")) << server.log.all();
    legit_client_logs_in(server);  // another address: unaffected
    for (int fd : silent) ::close(fd);
  }
  TestSecureServer server([](SecureServerOptions& o) { o.handshake_limits.max_in_progress = 3; });
  std::vector<int> silent;
  for (int i = 0; i < 3; ++i) silent.push_back(connect_from("127.0.0.2", server.port()));
  ASSERT_TRUE(eventually([&] { return server.server->connections() == 3; }));
  int extra = connect_from("127.0.0.3", server.port());
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(closed_without_reply(extra));
  ::close(extra);
  EXPECT_EQ(server.server->stats().refused_handshakes_in_progress, 1u);
  // One leaves: room for a client; connections whose handshake is done no
  // longer count, so several clients in a row get in.
  ::close(silent.back());
  silent.pop_back();
  ASSERT_TRUE(eventually([&] { return server.server->connections() == 2; }));
  for (int i = 0; i < 3; ++i) legit_client_logs_in(server);
  for (int fd : silent) ::close(fd);
}

// Terminal and log injection: the clear SFS_CONNECT fields reach the
// server's log, and a server's refusal reason reaches the client's message,
// only as printable text.
TEST_F(PreHandshakeTest, ClearTextFromThePeerIsLoggedPrintableOnly) {
  TestSecureServer server;
  const std::string evil = "evil\n\x1b[2J\rsfs: forged line\x07";
  int fd = connect_from("127.0.0.1", server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, call_record(1, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT,
                                       encode_connect(SFS_RELEASE, evil, server.port(), evil, Bytes(10, 1)))));
  auto reply = read_record(fd);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(connect_status(*reply), static_cast<std::uint32_t>(SFS_CONNECT_NOSUCHHOST));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return server.log.contains("does not serve HOSTID"); })) << server.log.all();
  {
    std::lock_guard lk(server.log.mu);
    for (const auto& l : server.log.lines) EXPECT_FALSE(has_control_chars(l)) << l;
  }
  EXPECT_TRUE(server.log.contains("evil??[2J?sfs: forged line?")) << server.log.all();

  // A fake server whose refusal reason carries control characters.
  std::uint16_t fake_port = 0;
  const int lfd = listen_loopback(&fake_port);
  ASSERT_GE(lfd, 0);
  std::thread fake([lfd, evil] {
    int cfd = ::accept(lfd, nullptr, nullptr);
    if (cfd < 0) return;
    timeval tv{10, 0};
    ::setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (auto call = read_record(cfd)) {
      std::string reason = evil;
      reason.resize((reason.size() + 3) & ~std::size_t{3}, '\0');
      std::string body = call->substr(0, 4) + be32(1) + be32(0) + be32(0) + be32(0) + be32(0) +
                         be32(SFS_CONNECT_NOSUCHHOST) + be32(static_cast<std::uint32_t>(evil.size())) + reason;
      send_all(cfd, be32(0x80000000u | static_cast<std::uint32_t>(body.size())) + body);
      char b;
      (void)::recv(cfd, &b, 1, 0);  // until the client closes
    }
    ::close(cfd);
  });
  SecureConnectOptions o;
  o.server = server.name();
  o.port = fake_port;
  o.color = 42;
  o.log = log_.sink();
  auto s = connect_sync(o);
  fake.join();
  ::close(lfd);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("refused the connection"), std::string::npos) << s.error();
  EXPECT_FALSE(has_control_chars(s.error())) << s.error();
}

}  // namespace
}  // namespace sfs::test
