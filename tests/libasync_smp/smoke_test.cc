// Smoke test: the runtime runs callbacks, in color order, and stops.
#include <gtest/gtest.h>

#include <atomic>

#include "asmp/runtime.h"

namespace asmp {
namespace {

TEST(Smoke, ChainOfCallbacksStops) {
  Runtime rt(RuntimeOptions{.threads = 2});
  int count = 0;
  std::function<void()> step = [&] {
    if (++count == 1000) {
      rt.stop(7);
      return;
    }
    rt.cpucb(Closure([&] { step(); }, 5));
  };
  rt.cpucb(Closure([&] { step(); }, 5));
  EXPECT_EQ(rt.run(), 7);
  EXPECT_EQ(count, 1000);
  EXPECT_EQ(rt.color_stats(5).callbacks, 1000u);
}

}  // namespace
}  // namespace asmp
