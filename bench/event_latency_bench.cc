// event_latency_bench: how long events and timers wait while every worker
// is busy with callbacks of other colors.
//
// Load: --colors colors (1..C), each running callbacks of --work-us
// microseconds of busy work back to back (each callback schedules the next
// one of its color with cpucb), on --threads workers, for --seconds.
// Meanwhile:
//   fd     a thread outside the runtime writes its clock (8 bytes) into a
//          pipe every --every-ms; the pipe's read callback (a color of its
//          own) reads the stamps: latency = callback time - write time.
//   timer  a chain of delaycb(--timer-ms) on a color of its own: lateness =
//          time the callback runs - the deadline it asked for.
//   hop    the fd callback hands each batch of stamps to another color
//          (cpucb), as a server hands a call from its connection's color to
//          the next stage: hop = time that callback starts - time of the
//          cpucb. Small colors go ahead of the load through the light lane
//          (RuntimeOptions::light_batch; --light-us 0 turns it off).
// Also reported: load callbacks run per second (the work the latency costs).
//
// Output: one table (min / median / p90 / max in ms, and sample counts).
// Measures; asserts nothing. Loopback only (a pipe); stops by itself.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "asmp/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  unsigned threads = 2;
  unsigned colors = 64;
  unsigned work_us = 50;
  unsigned every_ms = 5;
  unsigned timer_ms = 1;
  double seconds = 3;
  int light_us = -1;  // RuntimeOptions::light_batch; -1: the runtime's default
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

void busy_for(std::chrono::microseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

struct Samples {
  std::mutex mu;
  std::vector<double> ms;
  void add(double v) {
    std::lock_guard lk(mu);
    ms.push_back(v);
  }
};

void print_row(const char* what, Samples& s) {
  std::lock_guard lk(s.mu);
  auto& v = s.ms;
  if (v.empty()) {
    std::printf("%-22s %8s\n", what, "no samples");
    return;
  }
  std::sort(v.begin(), v.end());
  std::printf("%-22s %8zu %9.3f %9.3f %9.3f %9.3f\n", what, v.size(), v.front(), v[v.size() / 2],
              v[v.size() * 9 / 10], v.back());
}

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: event_latency_bench [--threads T] [--colors C] [--work-us W] [--every-ms E]\n"
               "                           [--timer-ms M] [--seconds S] [--light-us L]\n"
               "  defaults: --threads 2 --colors 64 --work-us 50 --every-ms 5 --timer-ms 1 --seconds 3\n"
               "            --light-us: the runtime's light_batch (0: no light lane)\n");
  std::exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") usage(0);
    if (i + 1 >= argc) usage(2);
    const char* v = argv[++i];
    if (a == "--threads") o.threads = static_cast<unsigned>(std::atoi(v));
    else if (a == "--colors") o.colors = static_cast<unsigned>(std::atoi(v));
    else if (a == "--work-us") o.work_us = static_cast<unsigned>(std::atoi(v));
    else if (a == "--every-ms") o.every_ms = static_cast<unsigned>(std::atoi(v));
    else if (a == "--timer-ms") o.timer_ms = static_cast<unsigned>(std::atoi(v));
    else if (a == "--seconds") o.seconds = std::atof(v);
    else if (a == "--light-us") o.light_us = std::atoi(v);
    else usage(2);
  }
  if (o.threads == 0 || o.every_ms == 0 || !(o.seconds > 0)) usage(2);

  asmp::RuntimeOptions ro{.threads = o.threads};
  if (o.light_us >= 0) ro.light_batch = std::chrono::microseconds(o.light_us);
  asmp::Runtime rt(ro);
  std::atomic<bool> ending{false};
  std::atomic<std::uint64_t> load_callbacks{0};
  const asmp::color_t fd_color = o.colors + 1000, timer_color = o.colors + 2000, hop_color = o.colors + 3000;

  // The load: each color keeps exactly one callback queued.
  struct Loader {
    asmp::Runtime* rt;
    std::atomic<bool>* ending;
    std::atomic<std::uint64_t>* count;
    std::chrono::microseconds work;
    void step(asmp::color_t c) {
      if (ending->load(std::memory_order_relaxed)) return;
      busy_for(work);
      count->fetch_add(1, std::memory_order_relaxed);
      rt->cpucb(asmp::Closure([this, c] { step(c); }, c));
    }
  } loader{&rt, &ending, &load_callbacks, std::chrono::microseconds(o.work_us)};
  for (asmp::color_t c = 1; c <= o.colors; ++c)
    rt.cpucb(asmp::Closure([&loader, c] { loader.step(c); }, c));

  // fd: stamps through a pipe.
  int p[2];
  if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
    std::perror("pipe2");
    return 1;
  }
  Samples fd_ms, timer_ms, hop_ms;
  rt.fdcb(p[0], asmp::selread, asmp::Closure(
                                   [&] {
                                     std::int64_t stamps[64];
                                     ssize_t r;
                                     while ((r = ::read(p[0], stamps, sizeof stamps)) > 0) {
                                       std::int64_t t = now_ns();
                                       for (ssize_t k = 0; k < r / 8; ++k)
                                         fd_ms.add(static_cast<double>(t - stamps[k]) / 1e6);
                                       std::int64_t sent = now_ns();
                                       rt.cpucb(asmp::Closure(
                                           [&hop_ms, sent] { hop_ms.add(static_cast<double>(now_ns() - sent) / 1e6); },
                                           hop_color));
                                     }
                                   },
                                   fd_color));

  // timer: a chain of short delays.
  struct Chain {
    asmp::Runtime* rt;
    std::atomic<bool>* ending;
    Samples* out;
    std::chrono::milliseconds delay;
    asmp::color_t color;
    void arm() {
      Clock::time_point due = Clock::now() + delay;
      rt->timecb(due, asmp::Closure(
                          [this, due] {
                            out->add(std::chrono::duration<double, std::milli>(Clock::now() - due).count());
                            if (!ending->load()) arm();
                          },
                          color));
    }
  } chain{&rt, &ending, &timer_ms, std::chrono::milliseconds(o.timer_ms), timer_color};
  rt.cpucb(asmp::Closure([&chain] { chain.arm(); }, timer_color));

  std::thread writer([&] {
    auto end = Clock::now() + std::chrono::duration<double>(o.seconds);
    while (Clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(o.every_ms));
      std::int64_t t = now_ns();
      if (::write(p[1], &t, sizeof t) != sizeof t) break;
    }
    ending = true;
    // Let the last stamps and timers land, then stop.
    std::this_thread::sleep_for(300ms);
    rt.stop();
  });
  auto t0 = Clock::now();
  rt.run();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  writer.join();
  rt.fdcb(p[0], asmp::selread, nullptr);
  ::close(p[0]);
  ::close(p[1]);

  std::printf("event_latency_bench: %u workers, %u colors of %u us callbacks, stamp every %u ms, "
              "timer %u ms, %.1f s, light lane %lld us\n",
              o.threads, o.colors, o.work_us, o.every_ms, o.timer_ms, o.seconds,
              static_cast<long long>(ro.light_batch.count()));
  std::printf("%-22s %8s %9s %9s %9s %9s\n", "ms", "samples", "min", "median", "p90", "max");
  print_row("fd ready -> callback", fd_ms);
  print_row("timer lateness", timer_ms);
  print_row("hop (cpucb -> start)", hop_ms);
  std::printf("load callbacks/s      %8.0f\n", static_cast<double>(load_callbacks.load()) / secs);
  return 0;
}
