// transport_test.cc: record marking and malformed input, spoken to the RPC
// server through a plain blocking socket so that the test controls every
// byte. Starts no processes; loopback only; every read has a timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "rpc_test_util.h"

namespace asmp::rpc::test {
namespace {

class TransportTest : public ::testing::Test {
 protected:
  RunningRuntime run_;
  std::unique_ptr<TestServer> server_ = std::make_unique<TestServer>();
  // A well-behaved client that must not notice anything.
  std::shared_ptr<Connection> bystander_;

  void SetUp() override { bystander_ = connect_to(server_->port(), 300); }
  void TearDown() override {
    Client cl(bystander_, sfstest_interface());
    sfstest_pair pr{20, 22};
    int sum = 0;
    auto r = call_sync(cl, SFSTEST_ADD, &pr, &sum);
    EXPECT_TRUE(r.status.ok()) << "bystander connection hurt: " << r.status.message();
    EXPECT_EQ(sum, 42);
    bystander_->close();
    server_->shutdown();
  }
};

TEST_F(TransportTest, AddOverRawSocket) {
  RawPeer p(server_->port());
  auto w = call_header(9, SFSTEST_ADD);
  w.push_back(3);
  w.push_back(4);
  p.send_record(w);
  auto r = p.read_record();
  // xid, REPLY, MSG_ACCEPTED, verf AUTH_NONE 0, SUCCESS, 7
  EXPECT_EQ(r, (std::vector<std::uint32_t>{9, 1, 0, 0, 0, 0, 7}));
}

TEST_F(TransportTest, CallSplitIntoManyFragmentsAndTinyWrites) {
  RawPeer p(server_->port());
  auto w = call_header(10, SFSTEST_ADD);
  w.push_back(30);
  w.push_back(12);
  // One word per fragment, each header written a byte at a time.
  for (std::size_t i = 0; i < w.size(); ++i) {
    std::uint32_t hdr = htonl((i + 1 == w.size() ? 0x80000000u : 0) | 4);
    for (int b = 0; b < 4; ++b) p.send_all(reinterpret_cast<char*>(&hdr) + b, 1);
    std::uint32_t be = htonl(w[i]);
    p.send_all(&be, 4);
  }
  EXPECT_EQ(p.read_record(), (std::vector<std::uint32_t>{10, 1, 0, 0, 0, 0, 42}));
}

TEST_F(TransportTest, GarbageFragmentHeaderCloses) {
  RawPeer p(server_->port());
  p.send_words({0xffffffffu, 0xdeadbeefu});
  EXPECT_TRUE(p.closed_by_peer());
}

TEST_F(TransportTest, OversizedRecordClosesBeforeItArrives) {
  RawPeer p(server_->port());
  // Announce max_record + 1 and send nothing more: the server must not wait
  // for (or allocate) the body.
  std::size_t max = TransportOptions{}.max_record;
  p.send_words({0x80000000u | static_cast<std::uint32_t>(max + 1)});
  EXPECT_TRUE(p.closed_by_peer());
}

TEST_F(TransportTest, FragmentsSummingAboveTheLimitClose) {
  RawPeer p(server_->port());
  std::size_t half = TransportOptions{}.max_record / 2 + 8;
  std::vector<char> zeros(half, 0);
  p.send_words({static_cast<std::uint32_t>(half)});  // not last
  p.send_all(zeros.data(), zeros.size());
  p.send_words({static_cast<std::uint32_t>(half)});  // sum above the limit
  EXPECT_TRUE(p.closed_by_peer());
}

TEST_F(TransportTest, TruncatedCallHeaderCloses) {
  RawPeer p(server_->port());
  p.send_record({77, 0, 2, SFSTEST_PROG});  // stops before vers
  EXPECT_TRUE(p.closed_by_peer());
}

TEST_F(TransportTest, ShortRecordCloses) {
  RawPeer p(server_->port());
  p.send_record({77});
  EXPECT_TRUE(p.closed_by_peer());
}

TEST_F(TransportTest, UnknownMessageTypeCloses) {
  RawPeer p(server_->port());
  p.send_record({77, 5, 0, 0});
  EXPECT_TRUE(p.closed_by_peer());
}

TEST_F(TransportTest, WrongRpcVersionIsRpcMismatch) {
  RawPeer p(server_->port());
  p.send_record(call_header(11, SFSTEST_NULL, SFSTEST_PROG, SFSTEST_V1, 3));
  // xid, REPLY, MSG_DENIED, RPC_MISMATCH, low 2, high 2
  EXPECT_EQ(p.read_record(), (std::vector<std::uint32_t>{11, 1, 1, 0, 2, 2}));
}

TEST_F(TransportTest, ErrorsOnRawSocketHaveTheRightShape) {
  RawPeer p(server_->port());
  p.send_record(call_header(12, 0, 0x20534699));
  EXPECT_EQ(p.read_record(), (std::vector<std::uint32_t>{12, 1, 0, 0, 0, 1}));  // PROG_UNAVAIL
  p.send_record(call_header(13, 0, SFSTEST_PROG, 9));
  EXPECT_EQ(p.read_record(), (std::vector<std::uint32_t>{13, 1, 0, 0, 0, 2, 1, 1}));  // PROG_MISMATCH 1..1
  p.send_record(call_header(14, 1000));
  EXPECT_EQ(p.read_record(), (std::vector<std::uint32_t>{14, 1, 0, 0, 0, 3}));  // PROC_UNAVAIL
  auto w = call_header(15, SFSTEST_ADD);
  w.push_back(1);  // b is missing
  p.send_record(w);
  EXPECT_EQ(p.read_record(), (std::vector<std::uint32_t>{15, 1, 0, 0, 0, 4}));  // GARBAGE_ARGS
  // AUTH_SYS whose machine name runs past the credential.
  p.send_record({16, 0, 2, SFSTEST_PROG, SFSTEST_V1, 0, 1, 8, 0, 500, 0, 0});
  EXPECT_EQ(p.read_record(), (std::vector<std::uint32_t>{16, 1, 1, 1, 1}));  // AUTH_ERROR BADCRED
  // A credential body above 400 bytes: the header itself is malformed.
  p.send_record({17, 0, 2, SFSTEST_PROG, SFSTEST_V1, 0, 1, 404});
  EXPECT_TRUE(p.closed_by_peer());
}

TEST_F(TransportTest, PeerVanishingMidRecordIsHarmless) {
  {
    RawPeer p(server_->port());
    p.send_words({0x80000000u | 1000});
    std::vector<char> some(10, 1);
    p.send_all(some.data(), some.size());
  }  // closed with 990 bytes still owed
  EXPECT_TRUE(eventually([&] { return server_->server().connections() == 1; }));
}

// close_after_flush: a server that answers and then closes must get its
// answer to the client even when the client has sent more it will never
// read, and has not read the answer yet. A plain close here dropped what
// the transport still queued, and closing with unread input made the
// kernel reset the connection and discard what it had not yet sent.
//   The handler answers a 1 MiB echo, then close_after_flush. The client
//   (receive buffer fixed at 64 KiB, so most of the answer waits on the
//   server side) sends the call and 256 KiB more, waits, then reads: the
//   whole answer, then a clean end of stream.
TEST(CloseAfterFlush, AnswerReachesThePeerBeforeTheClose) {
  RunningRuntime run;
  auto progs = std::make_shared<Programs>();
  Program p;
  p.iface = *sfstest_interface();
  p.dispatch = [](Call c) {
    std::shared_ptr<Connection> conn = c.connection();
    if (c.proc() == SFSTEST_ECHO) c.reply(c.args<sfstest_data>());
    else c.reply(nullptr);
    conn->close_after_flush();
  };
  progs->add(std::move(p));
  auto server = Server::create(progs);
  ASSERT_EQ(server->listen("127.0.0.1", 0), 0);
  RawPeer peer(server->port(), 64 * 1024);
  constexpr std::uint32_t kData = 1u << 20;
  auto w = call_header(31, SFSTEST_ECHO);
  w.push_back(kData);
  std::vector<char> rec(4 + 4 * w.size() + kData, 'd');
  std::uint32_t mark = htonl(0x80000000u | static_cast<std::uint32_t>(rec.size() - 4));
  for (int b = 0; b < 4; ++b) rec[static_cast<std::size_t>(b)] = reinterpret_cast<const char*>(&mark)[b];
  for (std::size_t i = 0; i < w.size(); ++i) {
    std::uint32_t be = htonl(w[i]);
    std::memcpy(rec.data() + 4 + 4 * i, &be, 4);
  }
  ASSERT_TRUE(peer.send_all(rec.data(), rec.size()));
  std::vector<char> more(256 * 1024, 'x');  // input the server will never read
  peer.send_all(more.data(), more.size());
  std::this_thread::sleep_for(200ms);  // let the server answer and start closing
  auto r = peer.read_record();
  ASSERT_EQ(r.size(), 7u + kData / 4) << "the answer was cut short";
  EXPECT_EQ(r[0], 31u);
  EXPECT_EQ(r[6], kData);
  EXPECT_TRUE(peer.eof()) << "expected a clean end of stream after the answer";
  ::shutdown(peer.fd(), SHUT_WR);  // the server, lingering, closes on this
  EXPECT_TRUE(eventually([&] { return server->connections() == 0; }));
  server->close();
}

// A peer that reads nothing and never closes cannot keep a closing
// connection open: the timeout closes it.
TEST(CloseAfterFlush, TimeoutClosesWhenThePeerDoesNotRead) {
  RunningRuntime run;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  int small = 16 * 1024;
  ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  auto t = Transport::create(sv[0], 410);
  std::atomic<int> closes{0};
  std::atomic<CloseReason> why{CloseReason::kEof};
  t->start([](RecordBuf) {},
           [&](CloseReason r, int) {
             why = r;
             closes++;
           });
  RecordBuf big;
  std::vector<char> bytes(1u << 20, 'b');
  big.append(bytes.data(), bytes.size());
  t->send(std::move(big));
  t->close_after_flush(100ms);
  t->send(RecordBuf(16));  // after: dropped
  ASSERT_TRUE(eventually([&] { return closes.load() == 1; })) << "closing never ended";
  EXPECT_EQ(why.load(), CloseReason::kLocal);
  EXPECT_TRUE(t->closed());
  ::close(sv[1]);
}

// With nothing queued and a peer that closes when it sees the end of the
// stream, closing is immediate and clean both ways.
TEST(CloseAfterFlush, EmptyQueueEndsTheStreamAtOnce) {
  RunningRuntime run;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto a = Transport::create(sv[0], 420);
  auto b = Transport::create(sv[1], 421);
  std::atomic<int> a_closed{0}, b_eof{0};
  a->start([](RecordBuf) {}, [&](CloseReason r, int) {
    EXPECT_EQ(r, CloseReason::kLocal);
    a_closed++;
  });
  b->start([](RecordBuf) {}, [&](CloseReason r, int) {
    if (r == CloseReason::kEof) b_eof++;
  });
  a->close_after_flush();
  // b sees the end of the stream and closes; then a's linger ends.
  ASSERT_TRUE(eventually([&] { return b_eof.load() == 1 && a_closed.load() == 1; }));
}

// Transport alone, over a socketpair, with a filter on each end.
TEST(Transport, FilterOnBothEndsOfASocketpair) {
  RunningRuntime run;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  TransportOptions small;
  small.max_fragment = 100;
  auto a = Transport::create(sv[0], 400, small);
  auto b = Transport::create(sv[1], 401);
  auto fa = std::make_shared<XorFilter>(7), fb = std::make_shared<XorFilter>(7);
  a->set_filter(fa);
  b->set_filter(fb);
  std::mutex mu;
  std::vector<std::string> got;
  std::atomic<int> closes{0};
  a->start([](RecordBuf) {}, [&](CloseReason, int) { closes++; });
  b->start(
      [&](RecordBuf r) {
        std::lock_guard lk(mu);
        got.emplace_back(r.data(), r.size());
      },
      [&](CloseReason why, int) {
        EXPECT_EQ(why, CloseReason::kEof);
        closes++;
      });
  std::vector<std::string> sent = {"", "x", std::string(1000, 'q'), "hello"};
  for (auto& s : sent) {
    RecordBuf r;
    r.append(s.data(), s.size());
    a->send(std::move(r));
  }
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lk(mu);
    return got.size() == sent.size();
  }));
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(got, sent);
  }
  EXPECT_EQ(fa->sealed.load(), 4);
  EXPECT_EQ(fb->opened.load(), 4);
  a->close();
  ASSERT_TRUE(eventually([&] { return closes.load() == 2; }));
}

}  // namespace
}  // namespace asmp::rpc::test
