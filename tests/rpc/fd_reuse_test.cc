// fd_reuse_test.cc: connections closed by their peer one after another,
// each socketpair taking the fd numbers the previous one just gave up,
// with the next connection registered from a thread that is not a worker
// while the previous one's read callback may still be returning on the
// worker (the pattern of invalidate_fuzz, and of sfsd, which reuses fd
// numbers across clients all the time). Every end of stream must be seen:
// the transport closes, the peer reads its end of stream, and the close
// handler runs once with the reason the stream calls for. A registration
// lost to, or delivered to, a stale entry of a reused fd would hang one of
// them (bounded here: the test fails instead).
//
// Bounded in count and in time (a TSan build is many times slower).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <string>

#include "rpc_test_util.h"

namespace asmp::rpc::test {
namespace {

constexpr color_t kConnColor = 7;

void put_be32(std::string& s, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

// Streams that end the client's connection from inside its read callback
// (the two fuzz reproducers, and a plain one), with the reason expected.
struct Stream {
  std::string bytes;
  CloseReason why;
};

std::array<Stream, 3> streams() {
  // A 17-byte non-final fragment, then a header announcing 255 bytes of
  // which 40 follow, then the end of the stream.
  std::string cut;
  put_be32(cut, 17);
  cut.append(17, 'a');
  put_be32(cut, 255);
  cut.append(40, 'b');
  // A CALL with RPC version 126 (answered RPC_MISMATCH), empty non-final
  // fragments, then a header announcing 2 GB: above max_record, closed.
  std::string big;
  std::string call;
  for (std::uint32_t w : {1u, 0u, 126u, 0x20534600u, 0u, 0u, 0u, 0u, 0u, 0u}) put_be32(call, w);
  put_be32(big, 0x80000000u | static_cast<std::uint32_t>(call.size()));
  big += call;
  for (int i = 0; i < 3; ++i) put_be32(big, 0);
  put_be32(big, 0x7ffffff0u);
  big.append(8, 'c');
  // Nothing at all: the end of the stream at once.
  return {Stream{cut, CloseReason::kEof}, Stream{big, CloseReason::kRecordTooLarge},
          Stream{std::string(), CloseReason::kEof}};
}

// Reads until the end of the stream (or a reset): true, or false if
// nothing ended it within `limit`. Signals do not cut the wait short.
bool read_to_end(int fd, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  char sink[4096];
  for (;;) {
    ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()) + 1);
  }
}

class FdReuse : public ::testing::TestWithParam<unsigned> {};

TEST_P(FdReuse, EveryEndOfStreamIsSeenWhenTheNextConnectionTakesItsFds) {
  RunningRuntime run(GetParam());
  constexpr int kRounds = 3000;
  const auto budget = std::chrono::steady_clock::now() + 20s;
  const auto all = streams();
  int reused = 0, rounds = 0, prev_fd = -1;
  for (int i = 0; i < kRounds && std::chrono::steady_clock::now() < budget; ++i, ++rounds) {
    const Stream& s = all[static_cast<std::size_t>(i) % all.size()];
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (sv[0] == prev_fd) ++reused;
    prev_fd = sv[0];
    // Shared with the handler, which may still be returning when this
    // round ends.
    struct Closed {
      std::mutex mu;
      std::condition_variable cv;
      int count = 0;
      CloseReason why = CloseReason::kLocal;
    };
    auto closed = std::make_shared<Closed>();
    ConnectionOptions co;
    // Every other round the handler lingers after telling this thread, so
    // that the read callback that closed is surely still running on the
    // worker when the next round registers the same fd number.
    const bool linger = i % 2 == 1;
    co.on_close = [closed, linger](CloseReason r, int) {
      {
        std::lock_guard lk(closed->mu);
        ++closed->count;
        closed->why = r;
        closed->cv.notify_all();
      }
      if (linger) std::this_thread::sleep_for(200us);
    };
    // Registered from this thread, not a worker: the previous round's read
    // callback may not have returned yet.
    Connection::create(Transport::create(sv[0], kConnColor), std::move(co));
    std::size_t off = 0;
    while (off < s.bytes.size()) {
      ssize_t n = ::send(sv[1], s.bytes.data() + off, s.bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the client closed first
      off += static_cast<std::size_t>(n);
    }
    ::shutdown(sv[1], SHUT_WR);
    ASSERT_TRUE(read_to_end(sv[1], 10s)) << "round " << i << " (fd " << sv[0]
                                         << "): the client neither closed nor answered";
    ::close(sv[1]);
    std::unique_lock lk(closed->mu);
    ASSERT_TRUE(closed->cv.wait_for(lk, 10s, [&] { return closed->count > 0; }))
        << "round " << i << ": no close handler";
    EXPECT_EQ(closed->count, 1) << "round " << i;
    EXPECT_EQ(closed->why, s.why) << "round " << i << ": " << to_string(closed->why);
  }
  EXPECT_GE(rounds, 300) << "too few rounds to mean anything";
  EXPECT_GT(reused, rounds / 2) << "the fd numbers were not reused: the test tests nothing";
}

INSTANTIATE_TEST_SUITE_P(Workers, FdReuse, ::testing::Values(1u, 2u),
                         [](const ::testing::TestParamInfo<unsigned>& p) {
                           return std::to_string(p.param) + "_workers";
                         });

}  // namespace
}  // namespace asmp::rpc::test
