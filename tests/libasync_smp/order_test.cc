// Order and mutual exclusion per color (runtime.h guarantees 1 and 3), for
// every scheduler kind and 2 to 8 workers.
//
// Each color's state is plain, non-atomic memory: if two callbacks of one
// color ever overlapped, the `busy` flag or the unsynchronized counters would
// show it here, and ThreadSanitizer would report the race.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::run_bounded;

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A little work inside a callback, so that overlapping runs would overlap
// for long enough to be seen.
void dawdle() {
  for (int i = 0; i < 64; ++i) asm volatile("" ::: "memory");
}

struct ColorState {
  bool busy = false;
  std::uint64_t ran = 0;
  std::uint64_t sent = 0;                                   // as a producer color
  std::vector<std::uint64_t> from_thread;                   // last seq per foreign thread
  std::unordered_map<color_t, std::uint64_t> from_color;    // last seq per producer color
};

struct Violations {
  std::atomic<std::uint64_t> overlap{0}, thread_order{0}, color_order{0}, wrong_color{0};
  std::string first;  // written once, guarded by first_set
  std::atomic<bool> first_set{false};
  void note(const std::string& what) {
    if (!first_set.exchange(true)) first = what;
  }
};

// Random 32-bit colors, some drawn twice and some sharing a slot with another
// (same low bits, different high bits).
std::vector<color_t> random_colors(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<color_t> colors;
  colors.reserve(n);
  while (colors.size() < n) {
    color_t c = static_cast<color_t>(rng());
    colors.push_back(c);
    switch (rng() % 8) {
      case 0: colors.push_back(c); break;                 // the very same color again
      case 1: colors.push_back(c ^ 0x40000000u); break;   // same slot for any slot count <= 2^30
      case 2: colors.push_back(c & 0xffu); break;         // small colors collide a lot
      default: break;
    }
  }
  colors.resize(n);
  return colors;
}

// P foreign threads each schedule M root callbacks on random colors; each
// callback (while depth remains) schedules one child on another random color
// from inside its own callback. Every (producer, color) pair must see its
// sequence numbers in order: contiguous for foreign threads, increasing for
// producer colors.
class Stress {
 public:
  Stress(Runtime& rt, std::vector<color_t> colors, unsigned producers, unsigned roots, unsigned depth)
      : rt_(rt), colors_(std::move(colors)), producers_(producers), roots_(roots), depth_(depth) {
    for (color_t c : colors_) state_[c].from_thread.assign(producers_, 0);
    total_ = std::uint64_t{producers_} * roots_ * (depth_ + 1);
  }

  void run() {
    std::atomic<bool> go{false};
    // The producers start from inside the first callback, so that they push
    // while the workers run.
    rt_.cpucb(Closure([&go] { go.store(true); }, colors_[0]));
    std::vector<std::thread> threads;
    for (unsigned p = 0; p < producers_; ++p) {
      threads.emplace_back([this, p, &go] {
        while (!go.load()) std::this_thread::yield();
        std::unordered_map<color_t, std::uint64_t> seq;
        for (unsigned i = 0; i < roots_; ++i) {
          color_t c = colors_[mix(p * 1000003ull + i) % colors_.size()];
          rt_.cpucb(task(c, /*from_thread=*/true, p, ++seq[c], depth_));
        }
      });
    }
    code_ = run_bounded(rt_);
    for (auto& t : threads) t.join();
  }

  int code() const { return code_; }
  std::uint64_t total() const { return total_; }
  std::uint64_t done() const { return done_.load(); }
  const Violations& violations() const { return v_; }
  const std::unordered_map<color_t, ColorState>& state() const { return state_; }

 private:
  Closure task(color_t c, bool from_thread, std::uint64_t producer, std::uint64_t seq,
               unsigned depth) {
    return Closure([this, c, from_thread, producer, seq, depth] { body(c, from_thread, producer, seq, depth); },
                   c);
  }

  void body(color_t c, bool from_thread, std::uint64_t producer, std::uint64_t seq, unsigned depth) {
    ColorState& s = state_.find(c)->second;  // the map is never modified while running
    if (Runtime::current_color() != c) {
      ++v_.wrong_color;
      v_.note("callback of color " + std::to_string(c) + " ran as color " +
              std::to_string(Runtime::current_color()));
    }
    if (s.busy) {
      ++v_.overlap;
      v_.note("two callbacks of color " + std::to_string(c) + " overlapped");
    }
    s.busy = true;
    if (from_thread) {
      std::uint64_t& last = s.from_thread[producer];
      if (seq != last + 1) {
        ++v_.thread_order;
        v_.note("color " + std::to_string(c) + " got seq " + std::to_string(seq) +
                " from thread " + std::to_string(producer) + " after " + std::to_string(last));
      }
      last = seq;
    } else {
      std::uint64_t& last = s.from_color[static_cast<color_t>(producer)];
      if (seq <= last) {
        ++v_.color_order;
        v_.note("color " + std::to_string(c) + " got seq " + std::to_string(seq) +
                " from color " + std::to_string(producer) + " after " + std::to_string(last));
      }
      last = seq;
    }
    dawdle();
    ++s.ran;
    if (depth > 0) {
      color_t next = colors_[mix(c ^ (s.ran << 32) ^ seq) % colors_.size()];
      rt_.cpucb(task(next, false, c, ++s.sent, depth - 1));
    }
    s.busy = false;
    if (done_.fetch_add(1) + 1 == total_) rt_.stop(0);
  }

  Runtime& rt_;
  std::vector<color_t> colors_;
  unsigned producers_, roots_, depth_;
  std::uint64_t total_;
  std::unordered_map<color_t, ColorState> state_;
  std::atomic<std::uint64_t> done_{0};
  Violations v_;
  int code_ = -1;
};

void expect_clean(const Stress& st) {
  const Violations& v = st.violations();
  EXPECT_EQ(v.overlap.load(), 0u) << v.first;
  EXPECT_EQ(v.thread_order.load(), 0u) << v.first;
  EXPECT_EQ(v.color_order.load(), 0u) << v.first;
  EXPECT_EQ(v.wrong_color.load(), 0u) << v.first;
  EXPECT_EQ(st.done(), st.total());
  std::uint64_t ran = 0;
  for (const auto& [c, s] : st.state()) {
    EXPECT_FALSE(s.busy);
    ran += s.ran;
  }
  EXPECT_EQ(ran, st.total()) << "lost or repeated callbacks (unsynchronized counters)";
}

struct OrderParam {
  SchedulerKind kind;
  unsigned threads;
};

class OrderTest : public ::testing::TestWithParam<OrderParam> {};

TEST_P(OrderTest, RandomColorsManyProducers) {
  const OrderParam p = GetParam();
  const std::uint32_t seed = 0x5eed0000u + p.threads * 7 + static_cast<unsigned>(p.kind);
  SCOPED_TRACE("seed " + std::to_string(seed));
  Runtime rt(RuntimeOptions{.threads = p.threads, .scheduler = p.kind});
  ASSERT_EQ(rt.threads(), p.threads);
  Stress st(rt, random_colors(3000, seed), /*producers=*/3, /*roots=*/2000, /*depth=*/3);
  st.run();
  EXPECT_EQ(st.code(), 0) << "timed out";
  expect_clean(st);
  // Every callback, the starter included, was counted by exactly one worker.
  std::uint64_t by_workers = 0;
  for (const WorkerStats& w : rt.worker_stats()) by_workers += w.callbacks;
  EXPECT_EQ(by_workers, st.total() + 1);
  if (p.kind != SchedulerKind::kStealing) {
    for (const WorkerStats& w : rt.worker_stats()) EXPECT_EQ(w.steals, 0u);
  }
}

// Few slots: nearly every color shares its slot with many others, so the
// slot (the unit that moves and is stolen) carries many colors at once.
TEST_P(OrderTest, HeavySlotSharing) {
  const OrderParam p = GetParam();
  const std::uint32_t seed = 0xc011u + p.threads;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Runtime rt(RuntimeOptions{.threads = p.threads, .scheduler = p.kind, .color_slots = 16, .batch = 4});
  Stress st(rt, random_colors(500, seed), 2, 1500, 3);
  st.run();
  EXPECT_EQ(st.code(), 0) << "timed out";
  expect_clean(st);
}

std::vector<OrderParam> order_params() {
  std::vector<OrderParam> out;
  for (SchedulerKind k : testing::kAllSchedulerKinds)
    for (unsigned t : {2u, 3u, 4u, 8u}) out.push_back({k, t});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllKinds, OrderTest, ::testing::ValuesIn(order_params()),
                         [](const ::testing::TestParamInfo<OrderParam>& pi) {
                           std::string name(to_string(pi.param.kind));
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name + "_" + std::to_string(pi.param.threads) + "w";
                         });

// Guarantee 3: a program that names no color runs like a single-threaded
// event program, whatever the number of workers: every callback (cpucb,
// timer, fd) runs alone, and cpucb callbacks run in the order scheduled.
class UncoloredTest : public ::testing::TestWithParam<SchedulerKind> {};

TEST_P(UncoloredTest, BehavesLikeOneThread) {
  Runtime rt(RuntimeOptions{.threads = 4, .scheduler = GetParam()});
  testing::Pipe pipe;
  ASSERT_GE(pipe.rd, 0);

  // All plain, non-atomic: only one callback may ever touch them at a time.
  bool busy = false;
  int overlaps = 0, wrong_color = 0;
  std::uint64_t scheduled = 0, next_expected = 0, out_of_order = 0, ran = 0;
  int timers = 0, fd_reads = 0;
  constexpr std::uint64_t kTotal = 20000;

  auto enter = [&] {
    if (busy) ++overlaps;
    if (Runtime::current_color() != 0) ++wrong_color;
    busy = true;
    dawdle();
  };
  std::function<void(std::uint64_t)> step;
  auto schedule = [&] {
    std::uint64_t id = scheduled++;
    rt.cpucb([&step, id] { step(id); });  // no color named
  };
  step = [&](std::uint64_t id) {
    enter();
    if (id != next_expected) ++out_of_order;
    next_expected = id + 1;
    ++ran;
    if (scheduled < kTotal) schedule();
    if (scheduled < kTotal && id % 3 == 0) schedule();  // fan out
    if (id % 1000 == 0) {
      rt.delaycb(std::chrono::microseconds(id % 7), [&] {
        enter();
        ++timers;
        busy = false;
      });
      char b = 'x';
      ASSERT_EQ(::write(pipe.wr, &b, 1), 1);
    }
    busy = false;
    if (ran == kTotal) {
      // Let the last timers and fd reads arrive, then stop.
      rt.delaycb(std::chrono::milliseconds(20), [&] { rt.stop(); });
    }
  };
  rt.fdcb(pipe.rd, selread, [&] {
    enter();
    char buf[64];
    while (::read(pipe.rd, buf, sizeof buf) > 0) ++fd_reads;
    busy = false;
  });
  for (int i = 0; i < 8; ++i) schedule();
  EXPECT_EQ(run_bounded(rt), 0) << "timed out";
  rt.fdcb(pipe.rd, selread, nullptr);
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(wrong_color, 0);
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(ran, kTotal);
  EXPECT_EQ(timers, static_cast<int>(kTotal / 1000));
  EXPECT_GE(fd_reads, 1);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, UncoloredTest, ::testing::ValuesIn(testing::kAllSchedulerKinds),
                         testing::kind_param_name);

}  // namespace
}  // namespace asmp
