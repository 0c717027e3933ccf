// transport_test.cc: record marking and malformed input, spoken to the RPC
// server through a plain blocking socket so that the test controls every
// byte. Starts no processes; loopback only; every read has a timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "rpc_test_util.h"

namespace asmp::rpc::test {
namespace {

// A blocking loopback socket with a 5 s receive timeout.
class RawPeer {
 public:
  explicit RawPeer(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawPeer() { ::close(fd_); }

  bool send_all(const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n) {
      ssize_t r = ::send(fd_, c, n, MSG_NOSIGNAL);
      if (r <= 0) return false;
      c += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  void send_words(std::initializer_list<std::uint32_t> words) {
    for (std::uint32_t w : words) {
      std::uint32_t be = htonl(w);
      send_all(&be, 4);
    }
  }
  // Sends words as one single-fragment record.
  void send_record(const std::vector<std::uint32_t>& words) {
    std::vector<std::uint32_t> out;
    out.push_back(htonl(0x80000000u | static_cast<std::uint32_t>(4 * words.size())));
    for (std::uint32_t w : words) out.push_back(htonl(w));
    send_all(out.data(), out.size() * 4);
  }
  // Reads one record (any number of fragments) as words; empty on EOF.
  std::vector<std::uint32_t> read_record() {
    std::vector<char> rec;
    for (;;) {
      std::uint32_t hdr;
      if (!read_exact(&hdr, 4)) return {};
      hdr = ntohl(hdr);
      std::size_t len = hdr & 0x7fffffff;
      std::size_t old = rec.size();
      rec.resize(old + len);
      if (!read_exact(rec.data() + old, len)) return {};
      if (hdr & 0x80000000u) break;
    }
    std::vector<std::uint32_t> words(rec.size() / 4);
    for (std::size_t i = 0; i < words.size(); ++i) {
      std::uint32_t w;
      std::memcpy(&w, rec.data() + 4 * i, 4);
      words[i] = ntohl(w);
    }
    return words;
  }
  // True if the peer closed the connection (EOF or reset) within 5 s.
  bool closed_by_peer() {
    char c;
    ssize_t r = ::recv(fd_, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
  }

 private:
  bool read_exact(void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n) {
      ssize_t r = ::recv(fd_, c, n, 0);
      if (r <= 0) return false;
      c += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
};

// xid, CALL, rpcvers, prog, vers, proc, AUTH_NONE cred and verifier.
std::vector<std::uint32_t> call_header(std::uint32_t xid, std::uint32_t proc,
                                       std::uint32_t prog = SFSTEST_PROG, std::uint32_t vers = SFSTEST_V1,
                                       std::uint32_t rpcvers = 2) {
  return {xid, 0, rpcvers, prog, vers, proc, 0, 0, 0, 0};
}

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
