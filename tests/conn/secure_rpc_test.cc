// secure_rpc_test.cc: the secure RPC connection (sfs/secure_rpc.h) end to
// end over loopback TCP: handshake over SFS_CONNECT, sealed echo for each
// AEAD and implementation, HOSTID refusals, login, identities seen by the
// server, 100 concurrent handshakes, and the proof that two connections'
// crypto runs at the same time on two workers. Starts no processes: one
// runtime with two workers, a SecureServer on 127.0.0.1 (ephemeral port),
// clients in the same process.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "conn_test_util.h"
#include "sfs/sfs_login.h"

// ThreadSanitizer: libtirpc's benign padding race is suppressed by
// proto/x/tsan_suppressions.cc, linked into this binary.

namespace sfs::test {
namespace {

// ---- the filter alone -------------------------------------------------------------

SessionKeys test_keys(AeadAlg alg) {
  SessionKeys k;
  k.alg = alg;
  for (std::size_t i = 0; i < k.client_to_server.size(); ++i) {
    k.client_to_server[i] = static_cast<std::uint8_t>(i);
    k.server_to_client[i] = static_cast<std::uint8_t>(0x80 + i);
  }
  return k;
}

TEST(SecureRecordFilterTest, SealsAndOpensWholeRecords) {
  for (AeadAlg alg : {AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm}) {
    SessionKeys k = test_keys(alg);
    LogCapture log;
    SecureRecordFilter client(make_channel(k, Role::kClient), alg, "server s", log.sink());
    SecureRecordFilter server(make_channel(k, Role::kServer), alg, "client c", log.sink());
    EXPECT_EQ(client.aead(), alg);
    for (int i = 0; i < 3; ++i) {
      rpc::RecordBuf r;
      r.append("hello world", 11);
      ASSERT_TRUE(client.seal(r));
      ASSERT_EQ(r.size(), 11 + kRecordOverhead);
      EXPECT_NE(std::memcmp(r.data() + kRecordHeaderBytes, "hello world", 11), 0);
      ASSERT_TRUE(server.open(r));
      ASSERT_EQ(r.size(), 11u);
      EXPECT_EQ(std::memcmp(r.data(), "hello world", 11), 0);
    }
    // A record for the other direction does not open here (wrong key).
    rpc::RecordBuf back;
    back.append("x", 1);
    ASSERT_TRUE(client.seal(back));
    EXPECT_FALSE(client.open(back));
    EXPECT_EQ(client.failure(), ChannelError::kTampered);
    EXPECT_NE(client.failure_message().find("secure channel with server s: incoming record 0 failed"),
              std::string::npos)
        << client.failure_message();
    EXPECT_TRUE(log.contains("closing the connection"));
    // Dead afterwards: nothing more goes out either.
    rpc::RecordBuf more;
    more.append("y", 1);
    EXPECT_FALSE(client.open(more));
  }
}

// A record with a tail (a READ's data, Call::reply_with_tail) is sealed as
// the record with the tail and its padding appended: byte for byte the
// same wire record, which the peer opens to the concatenation.
TEST(SecureRecordFilterTest, ARecordsTailIsSealedAsIfAppended) {
  for (AeadAlg alg : {AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm}) {
    SessionKeys k = test_keys(alg);
    LogCapture log;
    SecureRecordFilter with_tail(make_channel(k, Role::kServer), alg, "client c", log.sink());
    SecureRecordFilter appended(make_channel(k, Role::kServer), alg, "client c", log.sink());
    SecureRecordFilter client(make_channel(k, Role::kClient), alg, "server s", log.sink());
    for (std::size_t n : {0u, 1u, 3u, 4u, 4097u, 1u << 20}) {
      auto data = std::make_shared<std::string>(n, '\0');
      for (std::size_t i = 0; i < n; ++i) (*data)[i] = static_cast<char>(i * 13 + 1);
      const rpc::RecordTail tail{{data->data(), data->size()}, static_cast<std::uint32_t>((4 - n % 4) % 4), data};
      rpc::RecordBuf head;
      head.append("head-of-reply", 13);
      rpc::RecordBuf whole;
      whole.append("head-of-reply", 13);
      tail.append_to(whole);
      ASSERT_EQ(whole.size(), 13 + n + tail.pad);
      const std::string expect(whole.data(), whole.size());
      ASSERT_TRUE(with_tail.seal_tail(head, tail));
      ASSERT_TRUE(appended.seal(whole));
      ASSERT_EQ(std::string(head.data(), head.size()), std::string(whole.data(), whole.size()))
          << aead_name(alg) << " n=" << n;
      ASSERT_TRUE(client.open(head)) << log.all();
      EXPECT_EQ(std::string(head.data(), head.size()), expect) << aead_name(alg) << " n=" << n;
    }
  }
}

TEST(SecureRecordFilterTest, OversizedRecordsAreRefusedBothWays) {
  SessionKeys k = test_keys(AeadAlg::kChaCha20Poly1305);
  ChannelConfig small;
  small.max_plaintext = 100;
  LogCapture log;
  SecureRecordFilter big(make_channel(k, Role::kClient), k.alg, "server s", log.sink());
  SecureRecordFilter tight(make_channel(k, Role::kServer, AeadImplChoice::kAuto, small), k.alg, "client c",
                           log.sink());
  rpc::RecordBuf r;
  std::vector<char> bytes(200, 'z');
  r.append(bytes.data(), bytes.size());
  ASSERT_TRUE(big.seal(r));
  EXPECT_FALSE(tight.open(r));
  EXPECT_EQ(tight.failure(), ChannelError::kOversized);
  SecureRecordFilter tight_sender(make_channel(k, Role::kClient, AeadImplChoice::kAuto, small), k.alg,
                                  "server s", log.sink());
  rpc::RecordBuf r2;
  r2.append(bytes.data(), bytes.size());
  EXPECT_FALSE(tight_sender.seal(r2));
  EXPECT_EQ(tight_sender.failure(), ChannelError::kOversized);
  // Too short to hold a tag.
  SecureRecordFilter fresh(make_channel(k, Role::kServer), k.alg, "client c", log.sink());
  rpc::RecordBuf tiny;
  tiny.append("abc", 3);
  EXPECT_FALSE(fresh.open(tiny));
  EXPECT_EQ(fresh.failure(), ChannelError::kMalformed);
}

// ---- end to end --------------------------------------------------------------------

class SecureRpcTest : public ::testing::Test {
 protected:
  RunningRuntime run_{2};

  SecureConnectOptions client_opts(const TestSecureServer& s, asmp::color_t color) {
    return client_options(s, color, log_);
  }
  LogCapture log_;
};

TEST_F(SecureRpcTest, EncryptedEchoForEachAeadAndImplementation) {
  asmp::color_t color = 100;
  for (AeadAlg alg : {AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm}) {
    for (AeadImpl impl : {AeadImpl::kSodium, AeadImpl::kOpenSsl}) {
      if (!aead_available(alg, impl)) continue;
      SCOPED_TRACE(std::string(aead_name(alg)) + " / " + std::string(aead_impl_name(impl)));
      const AeadImplChoice choice = impl == AeadImpl::kSodium ? AeadImplChoice::kSodium : AeadImplChoice::kOpenSsl;
      TestSecureServer server([&](SecureServerOptions& o) { o.channel.impl = choice; });
      auto o = client_opts(server, ++color);
      o.offer = {alg};
      o.channel.impl = choice;
      auto s = connect_sync(o);
      ASSERT_TRUE(s.ok()) << s.error();
      EXPECT_EQ(s.value().aead(), alg);
      EXPECT_EQ(s.value().impl(), impl);
      EXPECT_EQ(s.value().server_key(), server.key->public_key());
      for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4097}, std::size_t{65536},
                            std::size_t{1} << 20}) {
        auto bytes = pattern(n, static_cast<unsigned>(n));
        EXPECT_TRUE(echo_sync(s.value().connection(), bytes)) << n << " bytes";
      }
      EXPECT_EQ(server.server->stats().established, 1u);
      s.value().close();
    }
  }
}

TEST_F(SecureRpcTest, DefaultOfferPicksChaChaWithTheFasterImplementation) {
  TestSecureServer server;
  auto s = connect_sync(client_opts(server, 7));
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s.value().aead(), AeadAlg::kChaCha20Poly1305);
  EXPECT_EQ(s.value().impl(), choose_aead_impl(AeadAlg::kChaCha20Poly1305, AeadImplChoice::kAuto));
  s.value().close();
}

TEST_F(SecureRpcTest, ServerRefusesAHostIdThatIsNotItsOwn) {
  TestSecureServer server;
  auto o = client_opts(server, 9);
  o.server.hostid[0] ^= 1;  // the name of some other server at this address
  auto s = connect_sync(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("does not serve HOSTID"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("refused the connection"), std::string::npos) << s.error();
  EXPECT_EQ(server.server->stats().handshake_failures, 1u);
}

TEST_F(SecureRpcTest, ClientRefusesAnImpostorWhoseKeyDoesNotMatchTheHostId) {
  // The impostor answers for any HOSTID, as an attacker would; the client's
  // own check must catch it.
  TestSecureServer impostor([](SecureServerOptions& o) { o.refuse_other_hostids = false; });
  auto real_key = ServerKey::generate();
  auto o = client_opts(impostor, 11);
  o.server = name_for(Location{"127.0.0.1", impostor.port()}, real_key.public_key());
  auto s = connect_sync(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("server key does not match HOSTID"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("Refusing to connect"), std::string::npos) << s.error();
  EXPECT_TRUE(eventually([&] { return impostor.server->connections() == 0; }));
}

TEST_F(SecureRpcTest, NoCommonCipherIsReportedFromTheServersRefusal) {
  TestSecureServer server([](SecureServerOptions& o) { o.handshake.accept = {AeadAlg::kAes256Gcm}; });
  auto o = client_opts(server, 12);
  o.offer = {AeadAlg::kChaCha20Poly1305};
  auto s = connect_sync(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("server refused"), std::string::npos) << s.error();
}

TEST_F(SecureRpcTest, CallsInTheClearBeforeTheHandshakeCloseTheConnection) {
  TestSecureServer server;
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<rpc::Connection> conn;
  bool done = false;
  rpc::connect("127.0.0.1", server.port(), 13, {}, {},
               asmp::Callback<void(std::shared_ptr<rpc::Connection>, int)>(
                   [&](std::shared_ptr<rpc::Connection> c, int) {
                     std::lock_guard lk(mu);
                     conn = std::move(c);
                     done = true;
                     cv.notify_all();
                   },
                   13));
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return done; }));
  }
  ASSERT_TRUE(conn);
  sfstest_pair p{1, 2};
  int sum = 0;
  auto st = call_sync(conn, SFSTEST_ADD, rpc::as_xdrproc(xdr_sfstest_pair), &p, rpc::as_xdrproc(xdr_int), &sum);
  EXPECT_EQ(st.error, rpc::RpcError::kConnectionLost) << st.message();
  // The pre-handshake gate refuses it before the RPC layer sees it.
  EXPECT_TRUE(server.log.contains("only SFS_CONNECT is served before the handshake")) << server.log.all();
  EXPECT_EQ(server.server->stats().prehandshake_rejected, 1u);
}

TEST_F(SecureRpcTest, ASilentClientIsClosedAfterTheHandshakeTimeout) {
  TestSecureServer server([](SecureServerOptions& o) { o.handshake_timeout = 200ms; });
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(server.port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_TRUE(eventually([&] { return server.server->connections() == 1; }));
  // The server closes: our read sees EOF, bounded by poll.
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);
  ::close(fd);
  EXPECT_TRUE(server.log.contains("no completed handshake in time")) << server.log.all();
  // A connection that completes its handshake is not affected.
  auto s = connect_sync(client_opts(server, 14));
  ASSERT_TRUE(s.ok()) << s.error();
  std::this_thread::sleep_for(400ms);
  int sum = 0;
  EXPECT_TRUE(add_sync(s.value(), 1, 2, &sum).ok());
  s.value().close();
}

TEST_F(SecureRpcTest, LoginMapsTheKeyToItsUidAndCallsWithoutAreNobody) {
  TestSecureServer server;
  auto s = connect_sync(client_opts(server, 20));
  ASSERT_TRUE(s.ok()) << s.error();
  const SecureSession& ss = s.value();

  auto n = login_sync(ss, *server.alice, "alice");
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(n.value(), 1u);

  int sum = 0;
  rpc::Auth as_alice = auth_number_cred(n.value());
  ASSERT_TRUE(add_sync(ss, 40, 2, &sum, &as_alice).ok());
  EXPECT_EQ(sum, 42);
  ASSERT_TRUE(add_sync(ss, 1, 1, &sum).ok());  // AUTH_NONE
  rpc::Auth zero = auth_number_cred(0);
  ASSERT_TRUE(add_sync(ss, 1, 1, &sum, &zero).ok());
  {
    std::lock_guard lk(server.mu);
    ASSERT_EQ(server.seen.size(), 3u);
    EXPECT_EQ(server.seen[0].uid, 1000u);
    EXPECT_EQ(server.seen[0].gid, 100u);
    EXPECT_EQ(server.seen[0].user, "alice");
    EXPECT_EQ(server.seen[0].groups, (std::vector<std::uint32_t>{10, 20}));
    for (int i : {1, 2}) {
      EXPECT_EQ(server.seen[i].uid, kNobody);
      EXPECT_EQ(server.seen[i].gid, kNobody);
    }
  }

  // A number never handed out, and one that was logged out, are refused.
  rpc::Auth bogus = auth_number_cred(77);
  auto st = add_sync(ss, 1, 1, &sum, &bogus);
  EXPECT_EQ(st.error, rpc::RpcError::kAuthError);
  EXPECT_EQ(st.auth_stat, static_cast<std::uint32_t>(AUTH_REJECTEDCRED));
  ss.logout(n.value());
  EXPECT_TRUE(eventually([&] {
    return add_sync(ss, 1, 1, &sum, &as_alice).error == rpc::RpcError::kAuthError;
  }));
  EXPECT_EQ(server.server->stats().logins, 1u);
  ss.close();
}

TEST_F(SecureRpcTest, LoginRefusalsSayWhy) {
  TestSecureServer server;
  auto s = connect_sync(client_opts(server, 21));
  ASSERT_TRUE(s.ok()) << s.error();
  const SecureSession& ss = s.value();

  auto unknown = login_sync(ss, *server.stranger, "mallory");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().find("unknown key"), std::string::npos) << unknown.error();

  // Bad signature: alice's request signed for another session id.
  SessionId other = ss.session_id();
  other[0] ^= 0xff;
  Bytes req = encode_login_request(*server.alice, "alice", other, 5);
  sfs_login_msg arg{static_cast<u_int>(req.size()), reinterpret_cast<char*>(req.data())}, res{};
  struct Box {
    std::atomic<bool> done{false};
    rpc::RpcStatus st;
  };
  auto box = std::make_shared<Box>();
  ss.connection()->call(SFS_LOGIN_PROG, SFS_LOGIN_V1, SFS_LOGIN, rpc::as_xdrproc(xdr_sfs_login_msg), &arg,
                        rpc::as_xdrproc(xdr_sfs_login_msg), &res, rpc::CallDone([box](rpc::RpcStatus st) {
                          box->st = st;
                          box->done.store(true);
                        }));
  ASSERT_TRUE(eventually([&] { return box->done.load(); }));
  ASSERT_TRUE(box->st.ok()) << box->st.message();
  auto reply = decode_login_reply({reinterpret_cast<const std::uint8_t*>(res.sfs_login_msg_val),
                                   res.sfs_login_msg_len});
  xdr_free(rpc::as_xdrproc(xdr_sfs_login_msg), &res);
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_FALSE(reply.value().accepted);
  EXPECT_NE(reply.value().reason.find("bad signature"), std::string::npos) << reply.value().reason;

  // Replay: the same sequence number twice on one session.
  auto first = login_sync(ss, *server.alice, "alice", 9);
  ASSERT_TRUE(first.ok()) << first.error();
  auto again = login_sync(ss, *server.alice, "alice", 9);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().find("replay"), std::string::npos) << again.error();

  EXPECT_EQ(server.server->stats().login_refusals, 3u);
  EXPECT_TRUE(server.log.contains("unknown key")) << server.log.all();
  ss.close();
}

TEST_F(SecureRpcTest, HundredConcurrentHandshakesAllSucceed) {
  // All 100 come from 127.0.0.1: room for them in the per-source handshake
  // limits (tested in secure_prehandshake_test.cc).
  TestSecureServer server([](SecureServerOptions& o) {
    o.handshake_limits.per_source_burst = 100;
    o.handshake_limits.max_in_progress_per_source = 100;
  });
  constexpr int kConns = 100;
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::vector<SecureSession> sessions;
  std::string first_error;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kConns; ++i) {
    auto o = client_opts(server, static_cast<asmp::color_t>(1000 + i));
    secure_connect(std::move(o), asmp::Callback<void(Result<SecureSession>)>(
                                     [&](Result<SecureSession> r) {
                                       std::lock_guard lk(mu);
                                       if (r.ok()) {
                                         sessions.push_back(std::move(r).value());
                                         ok.fetch_add(1);
                                       } else {
                                         if (first_error.empty()) first_error = r.error();
                                         failed.fetch_add(1);
                                       }
                                     },
                                     static_cast<asmp::color_t>(1000 + i)));
  }
  ASSERT_TRUE(eventually([&] { return ok.load() + failed.load() == kConns; }, 60s));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ok.load(), kConns) << first_error;
  EXPECT_EQ(server.server->stats().established, static_cast<std::uint64_t>(kConns));
  std::printf("100 concurrent handshakes: %.1f ms\n",
              std::chrono::duration<double, std::milli>(took).count());
  // Each still works.
  std::lock_guard lk(mu);
  int sum = 0;
  for (auto& s : sessions) EXPECT_TRUE(add_sync(s, 2, 3, &sum).ok());
  for (auto& s : sessions) s.close();
}

// ---- the parallelism proof --------------------------------------------------------

// Wraps a server connection's filter. When armed, each connection's first
// open() counts itself inside, runs the real open, and waits (bounded) until
// the other connection is inside as well, so the test sees whether two
// connections' crypto ran at the same time, and on which workers.
struct OverlapProbe {
  std::atomic<bool> armed{false};
  std::atomic<int> inside{0}, peak{0}, entered{0};
  std::mutex mu;
  std::set<int> workers;
};

class ProbeFilter : public rpc::RecordFilter {
 public:
  ProbeFilter(std::shared_ptr<rpc::RecordFilter> inner, std::shared_ptr<OverlapProbe> p)
      : inner_(std::move(inner)), p_(std::move(p)) {}
  bool seal(rpc::RecordBuf& r) override { return inner_->seal(r); }
  bool open(rpc::RecordBuf& r) override {
    if (!p_->armed.load() || probed_) return inner_->open(r);
    probed_ = true;
    p_->entered.fetch_add(1);
    int now = p_->inside.fetch_add(1) + 1;
    int prev = p_->peak.load();
    while (now > prev && !p_->peak.compare_exchange_weak(prev, now)) {
    }
    {
      std::lock_guard lk(p_->mu);
      p_->workers.insert(asmp::Runtime::worker_index());
    }
    bool ok = inner_->open(r);
    auto end = std::chrono::steady_clock::now() + 5s;
    while (p_->peak.load() < 2 && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(100us);
    p_->inside.fetch_sub(1);
    return ok;
  }

 private:
  std::shared_ptr<rpc::RecordFilter> inner_;
  std::shared_ptr<OverlapProbe> p_;
  bool probed_ = false;  // on the transport's color
};

TEST_F(SecureRpcTest, TwoConnectionsCryptoRunsAtTheSameTimeOnTwoWorkers) {
  ASSERT_EQ(run_.rt().threads(), 2u);
  auto probe = std::make_shared<OverlapProbe>();
  TestSecureServer server([probe](SecureServerOptions& o) {
    o.channel.wrap_filter = [probe](std::shared_ptr<rpc::RecordFilter> f) {
      return std::make_shared<ProbeFilter>(std::move(f), probe);
    };
  });
  auto a = connect_sync(client_opts(server, 301));
  auto b = connect_sync(client_opts(server, 302));
  ASSERT_TRUE(a.ok()) << a.error();
  ASSERT_TRUE(b.ok()) << b.error();
  probe->armed.store(true);
  // One 256 KiB echo on each connection at once, from two threads.
  std::atomic<int> same{0};
  auto echo = [&](const SecureSession& s, unsigned seed) {
    auto bytes = pattern(256 * 1024, seed);
    if (echo_sync(s.connection(), bytes)) same.fetch_add(1);
  };
  std::thread ta(echo, std::cref(a.value()), 1u), tb(echo, std::cref(b.value()), 2u);
  ta.join();
  tb.join();
  EXPECT_EQ(same.load(), 2);
  EXPECT_EQ(probe->entered.load(), 2);
  EXPECT_EQ(probe->peak.load(), 2) << "the two connections' open() never overlapped";
  {
    std::lock_guard lk(probe->mu);
    EXPECT_EQ(probe->workers.size(), 2u) << "crypto of both connections ran on one worker";
    EXPECT_EQ(probe->workers.count(-1), 0u);
  }
  a.value().close();
  b.value().close();
}

}  // namespace
}  // namespace sfs::test
