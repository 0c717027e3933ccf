// Tests for callback.h: Callback storage, moves, colors and wrap().
#include "asmp/callback.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "asmp/runtime.h"
#include "test_util.h"

namespace asmp {
namespace {

using testing::DtorCount;
using testing::Tracked;

// True if the object at p lies inside cb's own bytes (stored inline).
template <class CB>
bool inside(const CB& cb, const void* p) {
  auto* lo = reinterpret_cast<const unsigned char*>(&cb);
  auto* x = static_cast<const unsigned char*>(p);
  return x >= lo && x < lo + sizeof(CB);
}

TEST(Callback, EmptyAndNull) {
  Closure a;
  Closure b = nullptr;
  EXPECT_FALSE(a);
  EXPECT_FALSE(b);
  EXPECT_EQ(a.color(), 0u);
  Closure c([] {});
  EXPECT_TRUE(c);
  c = nullptr;
  EXPECT_FALSE(c);
}

TEST(Callback, SmallCaptureIsStoredInline) {
  // A shared_ptr, two pointers and an int: the size the header promises.
  auto sp = std::make_shared<int>(1);
  int x = 0;
  int* p1 = &x;
  int* p2 = &x;
  int k = 3;
  Callback<const void*()> cb([sp, p1, p2, k]() mutable -> const void* {
    (void)p1;
    (void)p2;
    (void)k;
    return &sp;
  });
  EXPECT_TRUE(inside(cb, cb())) << "a 36-byte capture should not touch the heap";
  // Still inline after a move: the callable moved with the Callback.
  Callback<const void*()> moved = std::move(cb);
  EXPECT_TRUE(inside(moved, moved()));
  EXPECT_EQ(sp.use_count(), 2);
}

TEST(Callback, LargeOrOveralignedCaptureGoesToHeapAndWorks) {
  struct Big {
    char bytes[128];
  };
  Big big{};
  big.bytes[127] = 42;
  Callback<const void*()> cb([big]() mutable -> const void* { return &big; });
  EXPECT_FALSE(inside(cb, cb()));
  Callback<int()> cb2([big] { return int{big.bytes[127]}; });
  Callback<int()> moved = std::move(cb2);
  EXPECT_FALSE(cb2);
  EXPECT_EQ(moved(), 42);

  struct alignas(32) Wide {
    double v[4];
  };
  Wide w{{1, 2, 3, 4}};
  Callback<std::uintptr_t()> aligned([w]() mutable { return reinterpret_cast<std::uintptr_t>(&w); });
  EXPECT_EQ(aligned() % 32, 0u) << "over-aligned capture must keep its alignment";
}

TEST(Callback, MoveOnlyCapture) {
  DtorCount dc;
  {
    auto up = std::make_unique<int>(7);
    Callback<int()> cb([up = std::move(up), t = Tracked(dc)] { return *up; });
    Callback<int()> a = std::move(cb);
    Callback<int()> b;
    b = std::move(a);
    EXPECT_FALSE(cb);
    EXPECT_FALSE(a);
    EXPECT_EQ(b(), 7);
    EXPECT_EQ(b(), 7) << "a callback may be invoked more than once";
    EXPECT_EQ(dc.destroyed.load(), 0);
  }
  EXPECT_EQ(dc.destroyed.load(), 1) << "the capture is destroyed exactly once";
}

TEST(Callback, AssignmentDestroysOldCallable) {
  DtorCount first, second;
  Closure cb([t = Tracked(first)] {});
  cb = Closure([t = Tracked(second)] {});
  EXPECT_EQ(first.destroyed.load(), 1);
  EXPECT_EQ(second.destroyed.load(), 0);
  cb.reset();
  EXPECT_EQ(second.destroyed.load(), 1);
  cb = std::move(cb);  // self-move leaves it alone
  EXPECT_FALSE(cb);
}

TEST(Callback, StatefulCallableKeepsStateAcrossCalls) {
  Callback<int()> counter([n = 0]() mutable { return ++n; });
  EXPECT_EQ(counter(), 1);
  EXPECT_EQ(counter(), 2);
  EXPECT_EQ(counter(), 3);
}

int add3(int a, int b, int c) { return a * 100 + b * 10 + c; }

TEST(Wrap, BoundArguments) {
  Callback<int()> cb = wrap(add3, 1, 2, 3);
  EXPECT_EQ(cb(), 123);
  std::string s = "abc";
  Callback<std::size_t()> len = wrap([](const std::string& x) { return x.size(); }, s);
  s = "changed";  // bound by value
  EXPECT_EQ(len(), 3u);
}

TEST(Wrap, TrailingArgumentsAreAppended) {
  Callback<int(int)> one = wrap(add3, 1, 2);
  EXPECT_EQ(one(9), 129);
  Callback<int(int, int)> two = wrap(add3, 4);
  EXPECT_EQ(two(5, 6), 456);
  int seen = -1;
  Callback<void(int)> v = wrap([&seen](int bound, int late) { seen = bound * 10 + late; }, 3);
  v(4);
  EXPECT_EQ(seen, 34);
}

TEST(Wrap, ColorTravelsIntoTheCallback) {
  Closure plain = wrap(add3, 1, 2, 3);
  EXPECT_EQ(plain.color(), 0u);
  Closure colored = wrap(7, add3, 1, 2, 3);
  EXPECT_EQ(colored.color(), 7u);
  Callback<int(int)> trailing = wrap(0xdeadbeefu, add3, 1, 2);
  EXPECT_EQ(trailing.color(), 0xdeadbeefu);
  EXPECT_EQ(trailing(3), 123);
  Closure explicit_color(wrap(7, add3, 1, 2, 3), 9);
  EXPECT_EQ(explicit_color.color(), 9u) << "an explicit color wins over the wrap's";
  Closure lambda([] {}, 5);
  EXPECT_EQ(lambda.color(), 5u);
  Closure moved = std::move(lambda);
  EXPECT_EQ(moved.color(), 5u);
  moved.set_color(6);
  EXPECT_EQ(moved.color(), 6u);
}

class Conn {
 public:
  explicit Conn(DtorCount& dc) : t_(dc) {}
  int on_read(int bound, int late) { return total_ += bound + late; }
  void touch() { ++touched; }
  int touched = 0;

 private:
  int total_ = 0;
  Tracked t_;
};

TEST(Wrap, MemberFunctionKeepsObjectAlive) {
  DtorCount dc;
  auto conn = std::make_shared<Conn>(dc);
  std::weak_ptr<Conn> weak = conn;
  Callback<int(int)> cb = wrap(conn, &Conn::on_read, 10);
  conn.reset();
  EXPECT_FALSE(weak.expired()) << "the callback owns a reference";
  EXPECT_EQ(cb(1), 11);
  EXPECT_EQ(cb(2), 23) << "the same object, state kept";
  Callback<int(int)> moved = std::move(cb);
  EXPECT_EQ(weak.use_count(), 1) << "moving does not copy the reference";
  EXPECT_EQ(dc.destroyed.load(), 0);
  moved.reset();
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(dc.destroyed.load(), 1);
}

TEST(Wrap, MemberFunctionRunsOnRuntimeAndReleasesObject) {
  DtorCount dc;
  Runtime rt(RuntimeOptions{.threads = 2});
  auto conn = std::make_shared<Conn>(dc);
  std::weak_ptr<Conn> weak = conn;
  for (int i = 0; i < 100; ++i) rt.cpucb(wrap(3, conn, &Conn::touch));
  rt.cpucb(wrap(3, [&rt] { rt.stop(); }));
  conn.reset();
  EXPECT_EQ(testing::run_bounded(rt), 0);
  EXPECT_TRUE(weak.expired()) << "each callback released its reference after running";
  EXPECT_EQ(dc.destroyed.load(), 1);
  EXPECT_EQ(rt.color_stats(3).callbacks, 101u);
}

TEST(Wrap, MoveOnlyBoundArgument) {
  auto f = [](std::unique_ptr<int>& p, int late) { return *p + late; };
  Callback<int(int)> cb = wrap(f, std::make_unique<int>(40));
  EXPECT_EQ(cb(2), 42);
}

}  // namespace
}  // namespace asmp
