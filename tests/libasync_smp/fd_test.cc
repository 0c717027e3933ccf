// fdcb on pipes and socketpairs: read and write readiness, level-triggered
// re-firing, unregistering, and callbacks running under their color.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <string>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::Pipe;
using testing::run_bounded;
using namespace std::chrono_literals;

void write_bytes(int fd, int n) {
  for (int i = 0; i < n; ++i) {
    char b = static_cast<char>('a' + i % 26);
    ASSERT_EQ(::write(fd, &b, 1), 1);
  }
}

// Reads one byte per callback: the callback must fire again while data is
// left (level-triggered), stop firing when drained, fire again for new data,
// and never after it unregistered itself. It shares color 5 with a stream
// of cpucb callbacks and must never overlap them.
TEST(Fd, PipeReadIsLevelTriggeredAndUnregisters) {
  Runtime rt(RuntimeOptions{.threads = 2});
  Pipe p;
  ASSERT_GE(p.rd, 0);
  constexpr color_t kColor = 5;
  bool busy = false;  // color 5's state, plain
  int overlaps = 0, wrong_color = 0, reads = 0, reads_when_drained = -1, after_unregister = 0;
  bool unregistered = false;
  auto enter = [&] {
    if (busy) ++overlaps;
    if (Runtime::current_color() != kColor) ++wrong_color;
    busy = true;
  };
  int chain = 0;
  std::function<void()> tick = [&] {  // competes for color 5
    enter();
    busy = false;
    if (++chain < 20000 && !unregistered) rt.cpucb(Closure([&] { tick(); }, kColor));
  };
  rt.cpucb(Closure([&] { tick(); }, kColor));

  rt.fdcb(p.rd, selread, Closure(
                             [&] {
                               enter();
                               if (unregistered) ++after_unregister;
                               char b;
                               ASSERT_EQ(::read(p.rd, &b, 1), 1) << "fired without data";
                               ++reads;
                               if (reads == 10) {
                                 // Drained: nothing should fire until more data comes.
                                 rt.delaycb(30ms, Closure(
                                                      [&] {
                                                        reads_when_drained = reads;
                                                        write_bytes(p.wr, 3);
                                                      },
                                                      kColor));
                               } else if (reads == 13) {
                                 rt.fdcb(p.rd, selread, nullptr);
                                 unregistered = true;
                                 write_bytes(p.wr, 2);  // must not fire the old callback
                                 rt.delaycb(50ms, [&] { rt.stop(); });
                               }
                               busy = false;
                             },
                             kColor));
  write_bytes(p.wr, 10);
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(reads_when_drained, 10);
  EXPECT_EQ(reads, 13);
  EXPECT_EQ(after_unregister, 0);
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(wrong_color, 0);
}

TEST(Fd, PipeWriteReadinessWaitsForRoom) {
  Runtime rt(RuntimeOptions{.threads = 2});
  Pipe p;
  ASSERT_GE(p.rd, 0);
  // Fill the pipe.
  char buf[4096] = {};
  std::size_t filled = 0;
  for (;;) {
    ssize_t r = ::write(p.wr, buf, sizeof buf);
    if (r < 0) {
      ASSERT_EQ(errno, EAGAIN);
      break;
    }
    filled += static_cast<std::size_t>(r);
  }
  std::atomic<bool> drained{false};
  std::atomic<int> fired_while_full{0}, fired{0};
  rt.fdcb(p.wr, selwrite, Closure(
                              [&] {
                                if (!drained.load()) ++fired_while_full;
                                if (Runtime::current_color() != 8) ADD_FAILURE() << "wrong color";
                                ++fired;
                                rt.fdcb(p.wr, selwrite, nullptr);
                                rt.stop();
                              },
                              8));
  rt.delaycb(40ms, Closure(
                       [&] {
                         drained = true;
                         std::size_t got = 0;
                         ssize_t r;
                         while ((r = ::read(p.rd, buf, sizeof buf)) > 0) got += static_cast<std::size_t>(r);
                         EXPECT_EQ(got, filled);
                       },
                       9));
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(fired_while_full.load(), 0);
  EXPECT_EQ(fired.load(), 1);
}

// Two ends of a socketpair, each with its own color, each with read and
// write callbacks on the same fd: A sends numbered messages when writable,
// B echoes them, A checks the echo; at the end B closes and A sees EOF.
TEST(Fd, SocketpairEchoBothDirections) {
  Runtime rt(RuntimeOptions{.threads = 2});
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  const int a = sv[0];
  int b = sv[1];
  constexpr color_t kA = 21, kB = 22;
  constexpr int kRounds = 300;
  // Per-side state, each touched only under its side's color.
  int sent = 0, echoed_ok = 0, bad = 0, b_echoes = 0, wrong_color = 0;
  bool a_eof = false;
  std::string b_pending;
  std::function<void()> a_writable = [&] {
    if (Runtime::current_color() != kA) ++wrong_color;
    std::string msg = std::to_string(sent) + "\n";
    ASSERT_EQ(::write(a, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
    ++sent;
    rt.fdcb(a, selwrite, nullptr);  // one message in flight at a time
  };
  std::string a_pending;
  rt.fdcb(a, selread, Closure(
                          [&] {
                            if (Runtime::current_color() != kA) ++wrong_color;
                            char buf[256];
                            ssize_t r = ::read(a, buf, sizeof buf);
                            if (r == 0) {
                              a_eof = true;
                              rt.fdcb(a, selread, nullptr);
                              rt.stop();
                              return;
                            }
                            if (r < 0) return;  // spurious
                            a_pending.append(buf, static_cast<std::size_t>(r));
                            std::size_t nl;
                            while ((nl = a_pending.find('\n')) != std::string::npos) {
                              if (a_pending.substr(0, nl) != std::to_string(echoed_ok)) ++bad;
                              ++echoed_ok;
                              a_pending.erase(0, nl + 1);
                            }
                            if (sent < kRounds) {
                              rt.fdcb(a, selwrite, Closure([&] { a_writable(); }, kA));
                            } else if (echoed_ok == kRounds) {
                              // Tell B to finish, from B's color.
                              rt.cpucb(Closure(
                                  [&] {
                                    rt.fdcb(b, selread, nullptr);
                                    ::close(b);
                                    b = -1;
                                  },
                                  kB));
                            }
                          },
                          kA));
  rt.fdcb(b, selread, Closure(
                          [&] {
                            if (Runtime::current_color() != kB) ++wrong_color;
                            char buf[256];
                            ssize_t r = ::read(b, buf, sizeof buf);
                            if (r <= 0) return;
                            ASSERT_EQ(::write(b, buf, static_cast<std::size_t>(r)), r);
                            ++b_echoes;
                          },
                          kB));
  rt.fdcb(a, selwrite, Closure([&] { a_writable(); }, kA));
  EXPECT_EQ(run_bounded(rt), 0);
  EXPECT_EQ(sent, kRounds);
  EXPECT_EQ(echoed_ok, kRounds);
  EXPECT_EQ(bad, 0);
  EXPECT_GE(b_echoes, 1);
  EXPECT_TRUE(a_eof) << "closing the peer should make the read callback fire";
  EXPECT_EQ(wrong_color, 0);
  ::close(a);
  if (b >= 0) ::close(b);
}

// The fd stays readable; a controller unregisters or replaces its callback
// over and over. Once fdcb(fd, op, x) has returned, the old callback is not
// started again. From the callback's own color that is exact. From another
// color, a run the poller had already dispatched may still be on its way
// into the callback ("one already running may finish"): at most one such
// late start per replaced callback, never a second.
class FdReplaceTest : public ::testing::TestWithParam<bool> {};

TEST_P(FdReplaceTest, ReplacedCallbackIsNotStartedAgain) {
  const bool same_color = GetParam();
  Runtime rt(RuntimeOptions{.threads = 2});
  Pipe p;
  ASSERT_GE(p.rd, 0);
  write_bytes(p.wr, 1);  // never drained: fires continuously
  constexpr int kGenerations = 200;
  constexpr color_t kController = 7;
  struct Gen {
    std::atomic<bool> retired{false};
    std::atomic<int> runs{0}, late{0};
  };
  std::vector<Gen> gens(kGenerations);
  auto make_cb = [&](int g) {
    return Closure(
        [&, g] {
          if (gens[g].retired.load()) ++gens[g].late;
          gens[g].runs.fetch_add(1);
        },
        same_color ? kController : static_cast<color_t>(1 + g % 2));
  };
  int g = 0;  // touched only by the controller's color
  int runs_at_end = -1;
  rt.fdcb(p.rd, selread, make_cb(0));
  std::function<void()> controller = [&] {
    if (gens[g].runs.load() < 2) {  // let it fire a few times first
      rt.cpucb(Closure([&] { controller(); }, kController));
      return;
    }
    if (g + 1 == kGenerations) {
      rt.fdcb(p.rd, selread, nullptr);
      gens[g].retired = true;
      runs_at_end = gens[g].runs.load();
      rt.delaycb(30ms, [&] { rt.stop(); });
      return;
    }
    if (g % 3 == 0) {
      rt.fdcb(p.rd, selread, nullptr);  // unregister, then register anew
      gens[g].retired = true;
      rt.fdcb(p.rd, selread, make_cb(g + 1));
    } else {
      rt.fdcb(p.rd, selread, make_cb(g + 1));  // replace in one call
      gens[g].retired = true;
    }
    ++g;
    rt.cpucb(Closure([&] { controller(); }, kController));
  };
  rt.cpucb(Closure([&] { controller(); }, kController));
  EXPECT_EQ(run_bounded(rt, 20s), 0);
  EXPECT_EQ(g, kGenerations - 1);
  const int allowed = same_color ? 0 : 1;
  int worst = 0, total_late = 0;
  for (auto& x : gens) {
    worst = std::max(worst, x.late.load());
    total_late += x.late.load();
  }
  EXPECT_LE(worst, allowed) << "a replaced callback was started again after fdcb returned";
  EXPECT_LE(gens[kGenerations - 1].runs.load() - runs_at_end, allowed)
      << "the last callback kept firing after it was unregistered";
  RecordProperty("late_starts", total_late);
}

INSTANTIATE_TEST_SUITE_P(Fd, FdReplaceTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& pi) {
                           return pi.param ? "FromSameColor" : "FromOtherColor";
                         });

// A connection object owned by its own fd callback, as sfsd's are: its
// destructor unregisters its fd. Dropping the callback (by unregistering or
// replacing it) destroys the object from inside fdcb(), which must not
// deadlock.
class Conn {
 public:
  Conn(Runtime& rt, int fd) : rt_(rt), fd_(fd) {}
  ~Conn() {
    rt_.fdcb(fd_, selwrite, nullptr);
    ++destroyed;
  }
  void on_read() {}
  static inline std::atomic<int> destroyed{0};

 private:
  Runtime& rt_;
  int fd_;
};

TEST(Fd, DroppingCallbackThatOwnsItsConnectionDoesNotDeadlock) {
  Runtime rt(RuntimeOptions{.threads = 2});
  Pipe p;
  ASSERT_GE(p.rd, 0);
  Conn::destroyed = 0;
  rt.fdcb(p.rd, selread, wrap(std::make_shared<Conn>(rt, p.rd), &Conn::on_read));
  testing::finish_within(5s, "fdcb(fd, selread, nullptr) destroying a Conn", [&] {
    rt.fdcb(p.rd, selread, nullptr);
  });
  EXPECT_EQ(Conn::destroyed.load(), 1);
  rt.fdcb(p.rd, selread, wrap(std::make_shared<Conn>(rt, p.rd), &Conn::on_read));
  testing::finish_within(5s, "fdcb(fd, selread, other) destroying a Conn", [&] {
    rt.fdcb(p.rd, selread, [] {});
  });
  EXPECT_EQ(Conn::destroyed.load(), 2);
  rt.fdcb(p.rd, selread, nullptr);
}

TEST(Fd, BadArgumentsThrow) {
  Runtime rt(RuntimeOptions{.threads = 1});
  EXPECT_THROW(rt.fdcb(-1, selread, [] {}), std::invalid_argument);
  Pipe p;
  EXPECT_THROW(rt.fdcb(p.rd, static_cast<Selop>(3), [] {}), std::invalid_argument);
}

}  // namespace
}  // namespace asmp
