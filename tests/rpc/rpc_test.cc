// rpc_test.cc: the async RPC client and server (asmp/rpc.h) over loopback
// TCP, through rpcgen's sfstest program. Starts no processes: a runtime
// with two workers, a server on 127.0.0.1 with an ephemeral port, and
// clients in the same process.
#include <cstring>
#include <map>
#include <set>

#include "rpc_test_util.h"

namespace asmp::rpc::test {
namespace {

sfstest_data make_data(std::vector<char>& bytes) {
  sfstest_data d;
  d.sfstest_data_len = static_cast<u_int>(bytes.size());
  d.sfstest_data_val = bytes.data();
  return d;
}

std::vector<char> pattern(std::size_t n, unsigned seed) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return v;
}

// Asks the server to turn its filter on (SEAL) and turns `mine` on for
// this side at the same record boundary, from the reply's callback on the
// connection's color. True once both are on (and SEAL was answered).
bool seal_both_ways(const Client& cl, const std::shared_ptr<Connection>& conn, std::shared_ptr<RecordFilter> mine,
                    color_t color) {
  auto switched = std::make_shared<std::atomic<int>>(0);  // 1: answered, 2: failed
  cl.call(SFSTEST_SEAL, nullptr, nullptr, CallDone([conn, mine, switched](RpcStatus st) {
            conn->transport()->set_filter(mine);  // on the connection's color
            *switched = st.ok() ? 1 : 2;
          }, color));
  return eventually([&] { return switched->load() != 0; }) && switched->load() == 1;
}

class RpcTest : public ::testing::Test {
 protected:
  RunningRuntime run_;
  std::unique_ptr<TestServer> server_ = std::make_unique<TestServer>();
  std::shared_ptr<const Interface> iface_ = sfstest_interface();

  void TearDown() override { server_->shutdown(); }
};

TEST_F(RpcTest, RoundTrips) {
  auto conn = connect_to(server_->port(), 100);
  ASSERT_TRUE(conn);
  Client cl(conn, iface_);

  EXPECT_TRUE(call_sync(cl, SFSTEST_NULL, nullptr, nullptr).status.ok());

  sfstest_pair pr{40, 2};
  int sum = 0;
  auto r = call_sync(cl, SFSTEST_ADD, &pr, &sum);
  EXPECT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(sum, 42);
  EXPECT_EQ(r.calls, 1);

  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{65536},
                        std::size_t{1} << 20}) {
    auto bytes = pattern(n, 7);
    sfstest_data arg = make_data(bytes), res{};
    auto e = call_sync(cl, SFSTEST_ECHO, &arg, &res);
    ASSERT_TRUE(e.status.ok()) << n << ": " << e.status.message();
    ASSERT_EQ(res.sfstest_data_len, n);
    EXPECT_EQ(0, n ? std::memcmp(res.sfstest_data_val, bytes.data(), n) : 0);
    xdr_free(as_xdrproc(xdr_sfstest_data), &res);
  }
  conn->close();
}

// Call::reply_with_tail: the result's last opaque goes out from where its
// bytes are (sfsd's READ data). The peer decodes what reply() would have
// sent, without a filter and through one (whose seal sees the tail
// appended); a result whose encoding does not end with an empty opaque is
// answered SYSTEM_ERR rather than with wrong bytes.
TEST_F(RpcTest, AReplyWithATailDecodesAsTheWholeReply) {
  server_->on_echo = [](Call& c) {
    const auto* a = c.args<sfstest_data>();
    auto data = std::make_shared<std::string>(a->sfstest_data_val, a->sfstest_data_len);
    sfstest_data empty{};
    // 7 bytes: the argument itself as the result, not encoded empty.
    c.reply_with_tail(data->size() == 7 ? a : &empty, {data->data(), data->size()}, data);
    return true;
  };
  auto conn = connect_to(server_->port(), 115);
  ASSERT_TRUE(conn);
  Client cl(conn, iface_);
  auto echo_all = [&] {
    for (std::size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 65539u, 1u << 20}) {
      auto bytes = pattern(n, 3);
      sfstest_data arg = make_data(bytes), res{};
      auto r = call_sync(cl, SFSTEST_ECHO, &arg, &res);
      ASSERT_TRUE(r.status.ok()) << n << ": " << r.status.message();
      ASSERT_EQ(res.sfstest_data_len, n);
      EXPECT_EQ(0, n ? std::memcmp(res.sfstest_data_val, bytes.data(), n) : 0) << n;
      xdr_free(as_xdrproc(xdr_sfstest_data), &res);
    }
    auto seven = pattern(7, 1);  // no zero byte: its encoding cannot end in four
    sfstest_data arg = make_data(seven), res{};
    auto r = call_sync(cl, SFSTEST_ECHO, &arg, &res);
    EXPECT_EQ(r.status.error, RpcError::kSystemErr) << r.status.message();
  };
  echo_all();
  auto mine = std::make_shared<XorFilter>(0x5a);
  ASSERT_TRUE(seal_both_ways(cl, conn, mine, 115));
  echo_all();
  EXPECT_EQ(mine->opened.load(), 9) << "the replies came through the filter";
  conn->close();
}

// CallOptions::tail: the arguments' last opaque sent from where its bytes
// are (sfsclient's WRITE data); the server decodes the whole argument,
// without a filter and through one. Arguments that do not end with an
// empty opaque fail with kEncodeArgs and send nothing.
TEST_F(RpcTest, ACallWithATailDecodesAsTheWholeCall) {
  auto conn = connect_to(server_->port(), 116);
  ASSERT_TRUE(conn);
  auto call_with_tail = [&](std::size_t n) {
    auto bytes = std::make_shared<std::vector<char>>(pattern(n, 5));
    sfstest_data empty{}, res{};
    CallOptions co;
    co.tail = {bytes->data(), bytes->size()};
    co.tail_keep = bytes;
    std::atomic<bool> done{false};
    RpcStatus got;
    conn->call(SFSTEST_PROG, SFSTEST_V1, SFSTEST_ECHO, as_xdrproc(xdr_sfstest_data), &empty,
               as_xdrproc(xdr_sfstest_data), &res, CallDone([&](RpcStatus st) {
                 got = st;
                 done = true;
               }, 116),
               co);
    ASSERT_TRUE(eventually([&] { return done.load(); }));
    ASSERT_TRUE(got.ok()) << n << ": " << got.message();
    ASSERT_EQ(res.sfstest_data_len, n);
    EXPECT_EQ(0, n ? std::memcmp(res.sfstest_data_val, bytes->data(), n) : 0) << n;
    xdr_free(as_xdrproc(xdr_sfstest_data), &res);
  };
  for (std::size_t n : {1u, 2u, 3u, 4u, 5u, 65539u, 1u << 20}) call_with_tail(n);
  {
    sfstest_pair pr{1, 2};  // ends with b = 2, not an empty opaque
    int sum = 0;
    CallOptions co;
    const char x[3] = {1, 2, 3};
    co.tail = {x, sizeof x};
    std::atomic<bool> done{false};
    RpcStatus got;
    conn->call(SFSTEST_PROG, SFSTEST_V1, SFSTEST_ADD, as_xdrproc(xdr_sfstest_pair), &pr, as_xdrproc(xdr_int),
               &sum, CallDone([&](RpcStatus st) {
                 got = st;
                 done = true;
               }, 116),
               co);
    ASSERT_TRUE(eventually([&] { return done.load(); }));
    EXPECT_EQ(got.error, RpcError::kEncodeArgs) << got.message();
  }
  auto mine = std::make_shared<XorFilter>(0x5a);
  ASSERT_TRUE(seal_both_ways(Client(conn, iface_), conn, mine, 116));
  for (std::size_t n : {3u, 4096u, 1u << 20}) call_with_tail(n);
  EXPECT_EQ(mine->sealed.load(), 3) << "the calls went through the filter";
  conn->close();
}

TEST_F(RpcTest, AuthSysReachesTheHandler) {
  auto conn = connect_to(server_->port(), 101);
  AuthSys s;
  s.stamp = 77;
  s.machine = "client.example";
  s.uid = 1234;
  s.gid = 5678;
  s.gids = {1, 2, 3};
  Client cl(conn, iface_, Auth::sys(s));
  sfstest_pair pr{1, 2};
  int sum = 0;
  ASSERT_TRUE(call_sync(cl, SFSTEST_ADD, &pr, &sum).status.ok());
  {
    std::lock_guard lk(server_->mu_);
    const Cred& c = server_->last_cred;
    EXPECT_EQ(c.flavor, static_cast<std::uint32_t>(AUTH_SYS));
    EXPECT_EQ(c.sys.stamp, 77u);
    EXPECT_EQ(c.sys.machine, "client.example");
    EXPECT_EQ(c.sys.uid, 1234u);
    EXPECT_EQ(c.sys.gid, 5678u);
    EXPECT_EQ(c.sys.gids, (std::vector<std::uint32_t>{1, 2, 3}));
  }
  cl.set_auth(Auth::none());
  ASSERT_TRUE(call_sync(cl, SFSTEST_ADD, &pr, &sum).status.ok());
  {
    std::lock_guard lk(server_->mu_);
    EXPECT_EQ(server_->last_cred.flavor, static_cast<std::uint32_t>(AUTH_NONE));
  }
  // A flavor the program does not accept.
  cl.set_auth(Auth::raw(0x53460001, "abcd", 4));
  auto r = call_sync(cl, SFSTEST_ADD, &pr, &sum);
  EXPECT_EQ(r.status.error, RpcError::kAuthError);
  EXPECT_EQ(r.status.auth_stat, static_cast<std::uint32_t>(AUTH_REJECTEDCRED));
  conn->close();
}

// A program that does not list AUTH_SYS (the default: AUTH_NONE only)
// refuses a client's claimed AUTH_SYS credential before its handler runs.
TEST(RpcAuth, DefaultFlavorsRefuseAuthSys) {
  RunningRuntime run;
  auto progs = std::make_shared<Programs>();
  std::atomic<int> handled{0};
  Program p;
  p.iface = *sfstest_interface();
  p.dispatch = [&](Call c) {
    ++handled;
    c.reply(nullptr);
  };
  progs->add(std::move(p));
  auto server = Server::create(progs);
  ASSERT_EQ(server->listen("127.0.0.1", 0), 0);
  auto conn = connect_to(server->port(), 130);
  AuthSys s;
  s.uid = 0;  // "root", says the client
  s.machine = "anywhere";
  Client cl(conn, sfstest_interface(), Auth::sys(s));
  auto r = call_sync(cl, SFSTEST_NULL, nullptr, nullptr);
  EXPECT_EQ(r.status.error, RpcError::kAuthError) << r.status.message();
  EXPECT_EQ(r.status.auth_stat, static_cast<std::uint32_t>(AUTH_REJECTEDCRED));
  EXPECT_EQ(handled.load(), 0);
  cl.set_auth(Auth::none());
  EXPECT_TRUE(call_sync(cl, SFSTEST_NULL, nullptr, nullptr).status.ok());
  EXPECT_EQ(handled.load(), 1);
  conn->close();
  server->close();
  EXPECT_TRUE(eventually([&] { return server->connections() == 0; }));
}

// 10,000 calls issued back to back from one color, all outstanding at once.
TEST_F(RpcTest, TenThousandPipelinedCalls) {
  constexpr int kCalls = 10000;
  auto conn = connect_to(server_->port(), 102);
  Client cl(conn, iface_);
  std::vector<int> results(kCalls, -1);
  std::vector<int> times(kCalls, 0);
  std::atomic<int> done{0}, failed{0};
  std::atomic<std::size_t> max_pending{0};
  run_.rt().cpucb(Closure(
      [&] {
        for (int i = 0; i < kCalls; ++i) {
          sfstest_pair pr{i, 1000000};
          cl.call(SFSTEST_ADD, &pr, &results[i], CallDone([&, i](RpcStatus st) {
                    if (!st.ok()) failed++;
                    times[i]++;
                    done++;
                  }, 102));
        }
        max_pending = conn->pending();
      },
      102));
  ASSERT_TRUE(eventually([&] { return done.load() == kCalls; }, 60s)) << done.load();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(max_pending.load(), static_cast<std::size_t>(kCalls));
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_EQ(results[i], i + 1000000) << i;
    ASSERT_EQ(times[i], 1) << i;
  }
  conn->close();
}

// The server answers later calls first (from a timer, under color 0);
// every reply still reaches its own call.
TEST_F(RpcTest, RepliesOutOfOrder) {
  auto conn = connect_to(server_->port(), 103);
  Client cl(conn, iface_);
  constexpr int kCalls = 8;
  std::vector<u_int> res(kCalls, 0);
  std::vector<int> order;
  std::mutex mu;
  std::atomic<int> done{0};
  for (int i = 0; i < kCalls; ++i) {
    sfstest_delay_arg a{static_cast<unsigned>((kCalls - i) * 40), static_cast<unsigned>(i + 100)};
    cl.call(SFSTEST_DELAY, &a, &res[i], CallDone([&, i](RpcStatus st) {
              EXPECT_TRUE(st.ok());
              std::lock_guard lk(mu);
              order.push_back(i);
              done++;
            }, 103));
  }
  ASSERT_TRUE(eventually([&] { return done.load() == kCalls; }));
  for (int i = 0; i < kCalls; ++i) EXPECT_EQ(res[i], static_cast<u_int>(i + 100));
  std::vector<int> reversed;
  for (int i = kCalls - 1; i >= 0; --i) reversed.push_back(i);
  EXPECT_EQ(order, reversed);
  conn->close();
}

// Two connections, each with its own color: both handlers are inside at the
// same time, on different workers. Each waits (bounded) for the other.
TEST_F(RpcTest, TwoConnectionsRunInParallel) {
  std::atomic<int> inside{0};
  std::atomic<int> saw_both{0};
  std::mutex mu;
  std::set<int> workers;
  std::set<color_t> colors;
  server_->on_add = [&](Call& c) {
    inside++;
    if (eventually([&] { return inside.load() >= 2; }, 5s)) saw_both++;
    std::lock_guard lk(mu);
    workers.insert(Runtime::worker_index());
    colors.insert(Runtime::current_color());
    EXPECT_EQ(Runtime::current_color(), c.color());
  };
  auto c1 = connect_to(server_->port(), 104);
  auto c2 = connect_to(server_->port(), 105);
  Client cl1(c1, iface_), cl2(c2, iface_);
  sfstest_pair pr{1, 1};
  int s1 = 0, s2 = 0;
  std::atomic<int> done{0};
  cl1.call(SFSTEST_ADD, &pr, &s1, CallDone([&](RpcStatus st) { EXPECT_TRUE(st.ok()); done++; }, 104));
  cl2.call(SFSTEST_ADD, &pr, &s2, CallDone([&](RpcStatus st) { EXPECT_TRUE(st.ok()); done++; }, 105));
  ASSERT_TRUE(eventually([&] { return done.load() == 2; }));
  EXPECT_EQ(saw_both.load(), 2) << "the two connections' handlers never overlapped";
  EXPECT_EQ(workers.size(), 2u);
  EXPECT_EQ(colors.size(), 2u);
  EXPECT_EQ(colors.count(0), 0u) << "connection colors start at 1";
  server_->on_add = nullptr;
  c1->close();
  c2->close();
}

TEST_F(RpcTest, UnknownProgramVersionProcedure) {
  auto conn = connect_to(server_->port(), 106);
  auto bad_prog = std::make_shared<Interface>(*iface_);
  bad_prog->prog = 0x20534699;
  auto bad_vers = std::make_shared<Interface>(*iface_);
  bad_vers->vers = 7;
  Client p(conn, bad_prog), v(conn, bad_vers), ok(conn, iface_);

  auto r = call_sync(p, SFSTEST_NULL, nullptr, nullptr);
  EXPECT_EQ(r.status.error, RpcError::kProgUnavail) << r.status.message();
  r = call_sync(v, SFSTEST_NULL, nullptr, nullptr);
  EXPECT_EQ(r.status.error, RpcError::kProgMismatch) << r.status.message();
  EXPECT_EQ(r.status.low, 1u);
  EXPECT_EQ(r.status.high, 1u);
  r = call_sync(ok, 99, as_xdrproc(xdr_void), nullptr, as_xdrproc(xdr_void), nullptr);
  EXPECT_EQ(r.status.error, RpcError::kProcUnavail) << r.status.message();
  // The connection is still good.
  EXPECT_TRUE(call_sync(ok, SFSTEST_NULL, nullptr, nullptr).status.ok());
  conn->close();
}

// Arguments that do not decode: ADD with a single int.
TEST_F(RpcTest, TruncatedArgumentsAreGarbage) {
  auto conn = connect_to(server_->port(), 107);
  Client cl(conn, iface_);
  int one = 5, sum = 0;
  auto r = call_sync(cl, SFSTEST_ADD, as_xdrproc(xdr_int), &one, as_xdrproc(xdr_int), &sum);
  EXPECT_EQ(r.status.error, RpcError::kGarbageArgs) << r.status.message();
  // An echo whose length word says more than the record holds.
  u_int len = 1000;
  r = call_sync(cl, SFSTEST_ECHO, as_xdrproc(xdr_u_int), &len, as_xdrproc(xdr_void), nullptr);
  EXPECT_EQ(r.status.error, RpcError::kGarbageArgs) << r.status.message();
  EXPECT_TRUE(call_sync(cl, SFSTEST_NULL, nullptr, nullptr).status.ok());
  conn->close();
}

// A handler that drops its Call gets the caller SYSTEM_ERR, not a timeout.
TEST_F(RpcTest, DroppedCallAnswersSystemErr) {
  auto conn = connect_to(server_->port(), 108);
  Client cl(conn, iface_);
  u_int drop = 0;
  auto r = call_sync(cl, SFSTEST_NOREPLY, &drop, nullptr);
  EXPECT_EQ(r.status.error, RpcError::kSystemErr) << r.status.message();
  conn->close();
}

TEST_F(RpcTest, TimeoutFiresOnceAndLateReplyIsIgnored) {
  auto conn = connect_to(server_->port(), 109);
  Client cl(conn, iface_);
  cl.set_timeout(100ms);
  std::atomic<int> calls{0};
  std::atomic<int> timeouts{0};
  u_int hold = 1;
  auto start = std::chrono::steady_clock::now();
  cl.call(SFSTEST_NOREPLY, &hold, nullptr, CallDone([&](RpcStatus st) {
            calls++;
            if (st.error == RpcError::kTimeout) timeouts++;
          }, 109));
  ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_EQ(timeouts.load(), 1);
  // Now the server drops the held call: SYSTEM_ERR arrives for an xid that
  // is no longer pending and must be ignored.
  {
    std::lock_guard lk(server_->mu_);
    server_->held_.clear();
  }
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(calls.load(), 1);
  // The connection still works.
  EXPECT_TRUE(call_sync(cl, SFSTEST_NULL, nullptr, nullptr).status.ok());
  conn->close();
}

// The server goes away with 200 calls outstanding: each fails exactly once,
// and calls made after the loss fail at once. (The server holds all 200, so
// its limit on calls in progress is raised above that.)
TEST_F(RpcTest, ConnectionLossFailsPendingCallsOnce) {
  constexpr int kCalls = 200;
  server_->shutdown();
  ServerOptions so;
  so.max_calls_in_progress = 256;
  server_ = std::make_unique<TestServer>(so);
  auto conn = connect_to(server_->port(), 110);
  Client cl(conn, iface_);
  std::vector<std::atomic<int>> seen(kCalls);
  std::atomic<int> lost{0};
  u_int hold = 1;
  for (int i = 0; i < kCalls; ++i)
    cl.call(SFSTEST_NOREPLY, &hold, nullptr, CallDone([&, i](RpcStatus st) {
              seen[i]++;
              if (st.error == RpcError::kConnectionLost) lost++;
            }, 110));
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lk(server_->mu_);
    return server_->held_.size() == kCalls;
  }));
  server_->server().close();  // the held calls stay unanswered
  ASSERT_TRUE(eventually([&] { return lost.load() == kCalls; })) << lost.load();
  std::this_thread::sleep_for(100ms);
  for (int i = 0; i < kCalls; ++i) EXPECT_EQ(seen[i].load(), 1) << i;
  auto r = call_sync(cl, SFSTEST_NULL, nullptr, nullptr);
  EXPECT_EQ(r.status.error, RpcError::kConnectionLost);
  EXPECT_EQ(r.calls, 1);
}

// Records above the limit close the connection; pending calls fail.
TEST_F(RpcTest, OversizedCallClosesOnlyThatConnection) {
  auto other = connect_to(server_->port(), 111);
  auto conn = connect_to(server_->port(), 112);
  Client big(conn, iface_), fine(other, iface_);
  auto bytes = pattern(2u << 20, 3);
  sfstest_data arg = make_data(bytes), res{};
  auto r = call_sync(big, SFSTEST_ECHO, &arg, &res);
  EXPECT_EQ(r.status.error, RpcError::kConnectionLost) << r.status.message();
  xdr_free(as_xdrproc(xdr_sfstest_data), &res);
  sfstest_pair pr{2, 3};
  int sum = 0;
  EXPECT_TRUE(call_sync(fine, SFSTEST_ADD, &pr, &sum).status.ok());
  EXPECT_EQ(sum, 5);
  other->close();
}

// Small fragments both ways: multi-fragment records reassemble.
TEST(RpcFragments, MultiFragmentRecordsBothWays) {
  RunningRuntime run;
  ServerOptions so;
  so.transport.max_fragment = 777;
  TestServer server(so);
  TransportOptions to;
  to.max_fragment = 1000;
  auto conn = connect_to(server.port(), 120, to);
  Client cl(conn, sfstest_interface());
  for (std::size_t n : {std::size_t{0}, std::size_t{996}, std::size_t{1000}, std::size_t{100000}}) {
    auto bytes = pattern(n, 11);
    sfstest_data arg = make_data(bytes), res{};
    auto r = call_sync(cl, SFSTEST_ECHO, &arg, &res);
    ASSERT_TRUE(r.status.ok()) << r.status.message();
    ASSERT_EQ(res.sfstest_data_len, n);
    EXPECT_EQ(0, n ? std::memcmp(res.sfstest_data_val, bytes.data(), n) : 0);
    xdr_free(as_xdrproc(xdr_sfstest_data), &res);
  }
  conn->close();
  server.shutdown();
}

// The record filter: switched on at a record boundary by SEAL, then every
// record both ways goes through it; a damaged record closes the connection.
TEST_F(RpcTest, RecordFilterSealsEveryRecordAfterTheSwitch) {
  auto conn = connect_to(server_->port(), 113);
  Client cl(conn, iface_);
  auto mine = std::make_shared<XorFilter>(0x5a);
  ASSERT_TRUE(seal_both_ways(cl, conn, mine, 113));
  for (int i = 0; i < 5; ++i) {
    auto bytes = pattern(5000 + i, i);
    sfstest_data arg = make_data(bytes), res{};
    auto r = call_sync(cl, SFSTEST_ECHO, &arg, &res);
    ASSERT_TRUE(r.status.ok()) << r.status.message();
    ASSERT_EQ(res.sfstest_data_len, bytes.size());
    EXPECT_EQ(0, std::memcmp(res.sfstest_data_val, bytes.data(), bytes.size()));
    xdr_free(as_xdrproc(xdr_sfstest_data), &res);
  }
  EXPECT_EQ(mine->sealed.load(), 5);
  EXPECT_EQ(mine->opened.load(), 5);
  EXPECT_EQ(server_->filter->opened.load(), 5);
  EXPECT_EQ(server_->filter->sealed.load(), 5);

  // A client whose filter key differs: the server's open() fails and the
  // server closes the connection; the pending call fails.
  auto conn2 = connect_to(server_->port(), 114);
  Client cl2(conn2, iface_);
  auto wrong = std::make_shared<XorFilter>(0x33);
  ASSERT_TRUE(seal_both_ways(cl2, conn2, wrong, 114));
  auto r = call_sync(cl2, SFSTEST_NULL, nullptr, nullptr);
  EXPECT_EQ(r.status.error, RpcError::kConnectionLost) << r.status.message();
  conn->close();
}

TEST(RpcServer, ListensOnIpv6LoopbackAndColorsStartAtOne) {
  RunningRuntime run;
  auto progs = std::make_shared<Programs>();
  std::mutex mu;
  std::vector<color_t> colors;
  Program p;
  p.iface = *sfstest_interface();
  p.dispatch = [&](Call c) {
    {
      std::lock_guard lk(mu);
      colors.push_back(Runtime::current_color());
    }
    c.reply(nullptr);
  };
  progs->add(std::move(p));
  auto server = Server::create(progs);
  int err = server->listen("::1", 0);
  if (err == EADDRNOTAVAIL || err == EAFNOSUPPORT) GTEST_SKIP() << "no IPv6 loopback here";
  ASSERT_EQ(err, 0);
  std::atomic<int> done{0};
  std::vector<std::shared_ptr<Connection>> conns;
  for (int i = 0; i < 3; ++i) {
    std::shared_ptr<Connection> got;
    std::atomic<bool> ready{false};
    connect("::1", server->port(), 200 + i, {}, {},
            Callback<void(std::shared_ptr<Connection>, int)>([&](std::shared_ptr<Connection> c, int e) {
              EXPECT_EQ(e, 0);
              got = c;
              ready = true;
            }, 200 + i));
    ASSERT_TRUE(eventually([&] { return ready.load(); }));
    ASSERT_TRUE(got);
    Client cl(got, sfstest_interface());
    EXPECT_TRUE(call_sync(cl, SFSTEST_NULL, nullptr, nullptr).status.ok());
    conns.push_back(got);
  }
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(colors, (std::vector<color_t>{1, 2, 3}));
  }
  for (auto& c : conns) c->close();
  server->close();
  EXPECT_TRUE(eventually([&] { return server->connections() == 0; }));
}

}  // namespace
}  // namespace asmp::rpc::test
