// secure_rpc_mitm_test.cc: an attacker in the middle of a secure RPC
// connection. A proxy written here (one thread, blocking sockets on
// 127.0.0.1, stops within 20 ms of being asked) forwards the TCP stream
// record by record and, after the handshake, flips a bit in, replays,
// reorders or truncates one record in one direction. The receiving end must
// close the connection with a logged reason, never crash, and no call may
// hang. Starts no processes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_test_util.h"

namespace sfs::test {
namespace {

// kEditHostId, kEditPort: edit a clear field of SFS_CONNECT's call (record
// 0, client to server), which the handshake's prologue binds.
enum class Attack { kNone, kFlipBit, kReplay, kReorder, kTruncate, kEditHostId, kEditPort };

const char* attack_name(Attack a) {
  switch (a) {
    case Attack::kNone: return "none";
    case Attack::kFlipBit: return "flip";
    case Attack::kReplay: return "replay";
    case Attack::kReorder: return "reorder";
    case Attack::kTruncate: return "truncate";
    case Attack::kEditHostId: return "edit_hostid";
    case Attack::kEditPort: return "edit_port";
  }
  return "?";
}

// Forwards one connection to 127.0.0.1:upstream. Records are RPC record
// marks + bodies; index 0 in each direction is SFS_CONNECT's call or reply
// (in the clear), so the attack targets record `target` >= 1 of direction
// `c2s` (client to server) or server to client.
class MitmProxy {
 public:
  MitmProxy(std::uint16_t upstream, Attack attack, bool c2s, int target)
      : upstream_(upstream), attack_(attack), c2s_(c2s), target_(target) {
    lfd_ = listen_loopback(&port_);
    EXPECT_GE(lfd_, 0);
    thread_ = std::thread([this] { run(); });
  }
  ~MitmProxy() {
    stop_.store(true);
    thread_.join();
    ::close(lfd_);
  }
  std::uint16_t port() const { return port_; }
  bool attacked() const { return attacked_.load(); }
  std::string captured_c2s() {
    std::lock_guard lk(mu_);
    return captured_;
  }

 private:
  struct Direction {
    int from, to;
    bool c2s;
    std::string buf;  // bytes not yet forwarded (an incomplete record)
    int index = 0;
    std::string held;  // reorder: the record held back
  };

  bool wait_readable(int fd) {
    while (!stop_.load()) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }

  static bool write_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  void run() {
    if (!wait_readable(lfd_)) return;
    int cfd = ::accept(lfd_, nullptr, nullptr);
    if (cfd < 0) return;
    int sfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(upstream_);
    if (::connect(sfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(cfd);
      ::close(sfd);
      return;
    }
    Direction up{cfd, sfd, true, {}, 0, {}}, down{sfd, cfd, false, {}, 0, {}};
    std::vector<char> chunk(1 << 16);
    while (!stop_.load()) {
      pollfd p[2] = {{cfd, POLLIN, 0}, {sfd, POLLIN, 0}};
      if (::poll(p, 2, 20) <= 0) continue;
      bool alive = true;
      for (int i = 0; i < 2 && alive; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Direction& d = i == 0 ? up : down;
        ssize_t n = ::recv(d.from, chunk.data(), chunk.size(), 0);
        if (n <= 0) {
          alive = false;
          break;
        }
        if (d.c2s) {
          std::lock_guard lk(mu_);
          captured_.append(chunk.data(), static_cast<std::size_t>(n));
        }
        d.buf.append(chunk.data(), static_cast<std::size_t>(n));
        alive = forward_records(d);
      }
      if (!alive) break;
    }
    ::close(cfd);
    ::close(sfd);
  }

  // Forwards every complete record in d.buf, attacking the target one.
  bool forward_records(Direction& d) {
    while (d.buf.size() >= 4) {
      std::uint32_t mark = (std::uint32_t{static_cast<unsigned char>(d.buf[0])} << 24) |
                           (std::uint32_t{static_cast<unsigned char>(d.buf[1])} << 16) |
                           (std::uint32_t{static_cast<unsigned char>(d.buf[2])} << 8) |
                           std::uint32_t{static_cast<unsigned char>(d.buf[3])};
      std::size_t len = mark & 0x7fffffffu;
      if (d.buf.size() < 4 + len) return true;
      std::string rec = d.buf.substr(0, 4 + len);
      d.buf.erase(0, 4 + len);
      const int index = d.index++;
      std::string out;
      if (d.c2s == c2s_ && attack_ != Attack::kNone && index == target_) {
        attacked_.store(true);
        switch (attack_) {
          case Attack::kFlipBit:
            rec[4 + len / 2] = static_cast<char>(rec[4 + len / 2] ^ 0x10);
            out = rec;
            break;
          case Attack::kReplay:
            out = rec + rec;
            break;
          case Attack::kReorder:
            d.held = rec;  // sent after the next one
            break;
          case Attack::kTruncate: {
            std::size_t cut = 10;
            std::uint32_t m = 0x80000000u | static_cast<std::uint32_t>(len - cut);
            rec[0] = static_cast<char>(m >> 24);
            rec[1] = static_cast<char>(m >> 16);
            rec[2] = static_cast<char>(m >> 8);
            rec[3] = static_cast<char>(m);
            rec.resize(rec.size() - cut);
            out = rec;
            break;
          }
          case Attack::kEditHostId:
          case Attack::kEditPort: {
            // Record mark (4), call header (40: AUTH_NONE), release (4),
            // host (length word + padded bytes), port (4), hostid.
            const std::size_t host_at = 4 + 40 + 4;
            const std::size_t host_len = be32(rec, host_at);
            const std::size_t port_at = host_at + 4 + ((host_len + 3) & ~std::size_t{3});
            if (attack_ == Attack::kEditPort) rec[port_at + 3] = static_cast<char>(rec[port_at + 3] ^ 1);
            else rec[port_at + 4 + 4] = rec[port_at + 4 + 4] == 'a' ? 'b' : 'a';  // still base32
            out = rec;
            break;
          }
          case Attack::kNone:
            break;
        }
      } else {
        out = rec;
        if (!d.held.empty()) {
          out += d.held;
          d.held.clear();
        }
      }
      if (!out.empty() && !write_all(d.to, out)) return false;
    }
    return true;
  }

  static std::size_t be32(const std::string& s, std::size_t at) {
    return (std::size_t{static_cast<unsigned char>(s[at])} << 24) |
           (std::size_t{static_cast<unsigned char>(s[at + 1])} << 16) |
           (std::size_t{static_cast<unsigned char>(s[at + 2])} << 8) | static_cast<unsigned char>(s[at + 3]);
  }

  std::uint16_t upstream_;
  Attack attack_;
  bool c2s_;
  int target_;
  int lfd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false}, attacked_{false};
  std::mutex mu_;
  std::string captured_;
  std::thread thread_;
};

struct Case {
  Attack attack;
  bool c2s;
};

class SecureRpcMitmTest : public ::testing::TestWithParam<Case> {
 protected:
  RunningRuntime run_{2};
};

TEST_P(SecureRpcMitmTest, TamperedStreamClosesTheConnection) {
  const Case c = GetParam();
  TestSecureServer server;
  // Record 1 in each direction: the first sealed echo call / reply.
  MitmProxy proxy(server.port(), c.attack, c.c2s, 1);
  LogCapture client_log;
  struct Closed {
    std::mutex mu;
    std::string why;
    std::atomic<bool> yes{false};
  };
  auto closed = std::make_shared<Closed>();
  SecureConnectOptions o;
  o.server = server.name();
  o.port = proxy.port();
  o.color = 50;
  o.log = client_log.sink();
  o.on_close = [closed](const std::string& why) {
    std::lock_guard lk(closed->mu);
    closed->why = why;
    closed->yes.store(true);
  };
  auto s = connect_sync(o);
  ASSERT_TRUE(s.ok()) << s.error();

  // Two echo calls at once (reordering needs a second record), each bounded.
  const std::string marker = "PLAINTEXT-MARKER-that-must-not-appear-on-the-wire";
  struct Pending {
    std::vector<char> bytes;
    sfstest_data arg{}, res{};
    std::atomic<bool> done{false};
    rpc::RpcStatus st;
  };
  std::vector<std::shared_ptr<Pending>> calls;
  for (int i = 0; i < 2; ++i) {
    auto p = std::make_shared<Pending>();
    p->bytes.assign(marker.begin(), marker.end());
    p->bytes.resize(8192, static_cast<char>('a' + i));
    p->arg = {static_cast<u_int>(p->bytes.size()), p->bytes.data()};
    rpc::CallOptions co;
    co.timeout = 10s;
    s.value().connection()->call(SFSTEST_PROG, SFSTEST_V1, SFSTEST_ECHO, rpc::as_xdrproc(xdr_sfstest_data),
                                 &p->arg, rpc::as_xdrproc(xdr_sfstest_data), &p->res,
                                 rpc::CallDone([p](rpc::RpcStatus st) {
                                   p->st = st;
                                   p->done.store(true);
                                 }),
                                 co);
    calls.push_back(p);
  }
  for (auto& p : calls) ASSERT_TRUE(eventually([&] { return p->done.load(); }, 15s));

  if (c.attack == Attack::kNone) {
    for (auto& p : calls) {
      EXPECT_TRUE(p->st.ok()) << p->st.message();
      EXPECT_EQ(p->res.sfstest_data_len, p->bytes.size());
      xdr_free(rpc::as_xdrproc(xdr_sfstest_data), &p->res);
    }
    EXPECT_EQ(proxy.captured_c2s().find(marker), std::string::npos) << "plaintext seen on the wire";
    EXPECT_FALSE(closed->yes.load());
    s.value().close();
    return;
  }

  EXPECT_TRUE(proxy.attacked());
  // At least the attacked record's call fails; whatever else, the
  // connection ends, on both sides.
  int failed = 0;
  for (auto& p : calls) {
    if (p->st.ok()) xdr_free(rpc::as_xdrproc(xdr_sfstest_data), &p->res);
    else ++failed;
  }
  EXPECT_GE(failed, 1);
  ASSERT_TRUE(eventually([&] { return closed->yes.load(); }, 15s)) << "client connection still open";
  EXPECT_TRUE(eventually([&] { return server.server->connections() == 0; }, 15s));
  if (c.c2s) {
    EXPECT_TRUE(eventually([&] { return server.server->stats().filter_rejections == 1; }));
    EXPECT_TRUE(server.log.contains("secure channel with client 127.0.0.1:")) << server.log.all();
    EXPECT_TRUE(server.log.contains("closing the connection")) << server.log.all();
  } else {
    std::lock_guard lk(closed->mu);
    EXPECT_NE(closed->why.find("incoming record"), std::string::npos) << closed->why;
    EXPECT_NE(closed->why.find("failed: record"), std::string::npos) << closed->why;
    EXPECT_TRUE(client_log.contains("secure channel with server")) << client_log.all();
  }
}

// The clear fields of SFS_CONNECT are in the handshake's prologue: a man in
// the middle who edits one (here against a server that does not check
// HOSTIDs itself, so only the binding can catch it) makes the client's
// check of message 2 fail, and no session comes up.
TEST(SecureRpcMitm, EditingAClearConnectFieldFailsTheHandshake) {
  RunningRuntime run(2);
  for (Attack attack : {Attack::kEditHostId, Attack::kEditPort}) {
    TestSecureServer server([](SecureServerOptions& o) { o.refuse_other_hostids = false; });
    MitmProxy proxy(server.port(), attack, true, 0);
    SecureConnectOptions o;
    o.server = server.name();
    o.port = proxy.port();
    o.color = 51;
    LogCapture client_log;
    o.log = client_log.sink();
    auto s = connect_sync(o);
    EXPECT_TRUE(proxy.attacked()) << attack_name(attack);
    ASSERT_FALSE(s.ok()) << attack_name(attack) << ": the edited handshake succeeded";
    EXPECT_NE(s.error().find("failed authentication"), std::string::npos) << s.error();
    EXPECT_EQ(server.server->stats().logins, 0u);
  }
  // Control: the same proxy without an edit lets the handshake through.
  TestSecureServer server([](SecureServerOptions& o) { o.refuse_other_hostids = false; });
  MitmProxy proxy(server.port(), Attack::kNone, true, 0);
  SecureConnectOptions o;
  o.server = server.name();
  o.port = proxy.port();
  o.color = 51;
  auto s = connect_sync(o);
  ASSERT_TRUE(s.ok()) << s.error();
  s.value().close();
}

INSTANTIATE_TEST_SUITE_P(
    Attacks, SecureRpcMitmTest,
    ::testing::Values(Case{Attack::kNone, true}, Case{Attack::kFlipBit, true}, Case{Attack::kReplay, true},
                      Case{Attack::kReorder, true}, Case{Attack::kTruncate, true},
                      Case{Attack::kFlipBit, false}, Case{Attack::kTruncate, false},
                      Case{Attack::kReplay, false}),
    [](const ::testing::TestParamInfo<Case>& i) {
      return std::string(attack_name(i.param.attack)) + (i.param.c2s ? "_client_to_server" : "_server_to_client");
    });

}  // namespace
}  // namespace sfs::test
