// sched_bench: the synthetic benchmark of the libasync-smp paper (USENIX
// 2003, Table 1), against libasync_smp's four scheduler configurations and
// Boost.Asio strands.
//
// C callbacks of C distinct colors start. Each one does about W ns of
// integer work (a calibrated loop of dependent multiply-adds), then schedules
// a child of its own color through the runtime (asmp: Runtime::cpucb;
// asio: post to the color's strand), until N callbacks have run in total;
// then the runtime stops. Color c runs exactly N/C (+1 for the first N%C
// colors) callbacks, so the total is exactly N; the last callback of the last
// color to finish stops the runtime. Timing covers the whole run: from
// scheduling the first C callbacks to run() returning with its threads
// joined (the runtime object and the strands are built before the clock
// starts).
//
// Checks, per run (any failure: message on stderr, exit status 1):
//   - every color ran its callbacks in order: each child carries its
//     sequence number, compared with the color's counter in plain memory;
//   - no two callbacks of one color overlapped (a plain in-callback flag);
//   - every color ran exactly its quota, and the total is exactly N;
//   - asmp only: the runtime's own per-worker callback counters sum to N.
// Per-color state is one cache line per color, so that colors running on
// different workers never share a line.
//
// Output: a table on stdout, one JSON object per line to --json FILE (the
// schema is in docs/benchmarks.md, "Scheduler (sched_bench)").
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "asmp/runtime.h"

#ifndef SFS_BUILD_TYPE
#define SFS_BUILD_TYPE "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;

// ---- the work --------------------------------------------------------------

// `iters` dependent multiply-adds (an LCG step; about 4 cycles each). The
// empty asm keeps the compiler from vectorizing or skipping the chain.
inline std::uint64_t spin(std::uint64_t x, std::uint64_t iters) {
  for (std::uint64_t i = 0; i < iters; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(x));
  }
  return x;
}

// Nanoseconds per spin() iteration: the best of several timed rounds (the
// machine is shared; the minimum is the undisturbed figure).
double calibrate_ns_per_iter() {
  constexpr std::uint64_t kIters = 1 << 22;
  double best = 1e9;
  std::uint64_t sink = 1;
  for (int round = 0; round < 15; ++round) {
    auto t0 = Clock::now();
    sink = spin(sink, kIters);
    auto t1 = Clock::now();
    double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / kIters;
    best = std::min(best, ns);
  }
  asm volatile("" : : "r"(sink));
  return best;
}

// ---- shared benchmark state ----------------------------------------------

// Touched only by callbacks of its color (which the runtime serializes).
struct alignas(64) ColorState {
  std::uint64_t next = 0;   // the sequence number expected next
  std::uint64_t quota = 0;  // callbacks this color runs
  std::uint64_t sink = 1;   // the work's result, so that it stays live
  std::uint64_t order_errors = 0;
  std::uint64_t overlap_errors = 0;
  bool in_callback = false;
};
static_assert(sizeof(ColorState) == 64);

struct Bench {
  std::unique_ptr<ColorState[]> colors;
  unsigned ncolors = 0;
  std::uint64_t work_iters = 0;
  alignas(64) std::atomic<unsigned> colors_left{0};
  alignas(64) asmp::Runtime* rt = nullptr;
};

// The part common to both runtimes: check order, do the work. Returns
// whether a child must be scheduled.
inline bool step_body(Bench& b, ColorState& cs, std::uint64_t seq) {
  if (cs.in_callback) ++cs.overlap_errors;
  cs.in_callback = true;
  if (cs.next != seq) ++cs.order_errors;
  cs.next = seq + 1;
  cs.sink = spin(cs.sink, b.work_iters);
  cs.in_callback = false;
  return seq + 1 < cs.quota;
}

struct AsmpStep {
  Bench* b;
  std::uint64_t seq;
  asmp::color_t color;

  void operator()() const {
    Bench& bench = *b;
    if (step_body(bench, bench.colors[color], seq)) {
      bench.rt->cpucb(asmp::Closure(AsmpStep{b, seq + 1, color}, color));
    } else if (bench.colors_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      bench.rt->stop(0);
    }
  }
};

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

struct AsioStep {
  Bench* b;
  Strand* strand;
  std::uint64_t seq;
  unsigned color;

  void operator()() const {
    Bench& bench = *b;
    if (step_body(bench, bench.colors[color], seq)) {
      boost::asio::post(*strand, AsioStep{b, strand, seq + 1, color});
    } else {
      // The io_context runs out of work and run() returns by itself.
      bench.colors_left.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
};

// ---- one run -------------------------------------------------------------

struct RunResult {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system of the whole process
  std::uint64_t tasks = 0;
  std::uint64_t steals = 0;
  std::uint64_t sleeps = 0;
  double load1 = -1;
  bool ok = false;
};

double load_average() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

double cpu_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](timeval t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

void reset_colors(Bench& b, std::uint64_t tasks) {
  std::uint64_t per = tasks / b.ncolors, extra = tasks % b.ncolors;
  for (unsigned c = 0; c < b.ncolors; ++c) {
    ColorState& cs = b.colors[c];
    cs.next = 0;
    cs.quota = per + (c < extra ? 1 : 0);
    cs.order_errors = cs.overlap_errors = 0;
    cs.in_callback = false;
  }
  b.colors_left.store(b.ncolors, std::memory_order_relaxed);
}

// Verifies a finished run; prints what is wrong. Returns the total run.
bool verify(const Bench& b, std::uint64_t tasks, std::string_view what, std::uint64_t* total) {
  bool ok = true;
  std::uint64_t sum = 0;
  int reported = 0;
  for (unsigned c = 0; c < b.ncolors; ++c) {
    const ColorState& cs = b.colors[c];
    sum += cs.next;
    if (cs.order_errors || cs.overlap_errors || cs.next != cs.quota) {
      ok = false;
      if (reported++ < 10)
        std::fprintf(stderr,
                     "sched_bench: %.*s: color %u: ran %" PRIu64 " of %" PRIu64
                     ", %" PRIu64 " out of order, %" PRIu64 " overlapping\n",
                     static_cast<int>(what.size()), what.data(), c, cs.next, cs.quota,
                     cs.order_errors, cs.overlap_errors);
    }
  }
  if (sum != tasks) {
    ok = false;
    std::fprintf(stderr, "sched_bench: %.*s: %" PRIu64 " callbacks ran, expected %" PRIu64 "\n",
                 static_cast<int>(what.size()), what.data(), sum, tasks);
  }
  if (b.colors_left.load() != 0) {
    ok = false;
    std::fprintf(stderr, "sched_bench: %.*s: %u colors did not finish\n",
                 static_cast<int>(what.size()), what.data(), b.colors_left.load());
  }
  *total = sum;
  return ok;
}

RunResult run_asmp(asmp::SchedulerKind kind, unsigned threads, unsigned batch, Bench& b,
                   std::uint64_t tasks) {
  asmp::RuntimeOptions opts;
  opts.threads = threads;
  opts.scheduler = kind;
  if (batch) opts.batch = batch;
  opts.color_slots = std::max(opts.color_slots, b.ncolors);  // one color per slot
  asmp::Runtime rt(opts);
  b.rt = &rt;
  reset_colors(b, tasks);

  RunResult r;
  r.load1 = load_average();
  double cpu0 = cpu_now();
  auto t0 = Clock::now();
  for (unsigned c = 0; c < b.ncolors; ++c) rt.cpucb(asmp::Closure(AsmpStep{&b, 0, c}, c));
  int rc = rt.run();
  auto t1 = Clock::now();
  r.cpu_seconds = cpu_now() - cpu0;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  b.rt = nullptr;

  std::string what = std::string(asmp::to_string(kind)) + "/" + std::to_string(threads) + "T";
  r.ok = verify(b, tasks, what, &r.tasks) && rc == 0;
  std::uint64_t counted = 0;
  for (const auto& ws : rt.worker_stats()) {
    counted += ws.callbacks;
    r.steals += ws.steals;
    r.sleeps += ws.sleeps;
  }
  if (counted != tasks) {
    r.ok = false;
    std::fprintf(stderr, "sched_bench: %s: runtime counted %" PRIu64 " callbacks, expected %" PRIu64 "\n",
                 what.c_str(), counted, tasks);
  }
  return r;
}

RunResult run_asio(unsigned threads, Bench& b, std::uint64_t tasks) {
  boost::asio::io_context ioc(static_cast<int>(threads));
  std::vector<Strand> strands;
  strands.reserve(b.ncolors);
  for (unsigned c = 0; c < b.ncolors; ++c) strands.push_back(boost::asio::make_strand(ioc));
  reset_colors(b, tasks);

  RunResult r;
  r.load1 = load_average();
  double cpu0 = cpu_now();
  auto t0 = Clock::now();
  for (unsigned c = 0; c < b.ncolors; ++c) boost::asio::post(strands[c], AsioStep{&b, &strands[c], 0, c});
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
  auto t1 = Clock::now();
  r.cpu_seconds = cpu_now() - cpu0;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  r.ok = verify(b, tasks, "asio-strand/" + std::to_string(threads) + "T", &r.tasks);
  return r;
}

// ---- configurations ------------------------------------------------------

const std::vector<std::string> kAllImpls = {"shared-queue", "per-thread", "freelist", "stealing",
                                            "asio-strand"};

RunResult run_one(const std::string& impl, unsigned threads, unsigned batch, Bench& b,
                  std::uint64_t tasks) {
  if (impl == "asio-strand") return run_asio(threads, b, tasks);
  return run_asmp(*asmp::parse_scheduler(impl), threads, batch, b, tasks);
}

// Rounds to two significant digits (a readable N).
std::uint64_t round2(double v) {
  if (v < 100) return static_cast<std::uint64_t>(std::max(v, 1.0));
  double p = std::pow(10.0, std::floor(std::log10(v)) - 1);
  return static_cast<std::uint64_t>(std::round(v / p) * p);
}

struct Options {
  std::vector<unsigned> threads = {1, 2};
  std::vector<std::uint64_t> work_ns = {70, 0};
  unsigned colors = 1000;
  std::optional<std::uint64_t> tasks;  // nullopt: auto (about target_seconds per run)
  std::string impl = "all";
  unsigned runs = 3;
  unsigned batch = 0;  // 0: the runtime's default (RuntimeOptions::batch)
  double target_seconds = 0.4;
  std::string json;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: sched_bench [--threads T[,T...]] [--colors C] [--work-ns W[,W...]]\n"
               "                   [--tasks N|auto] [--impl NAME] [--runs R] [--json FILE]\n"
               "                   [--target-seconds S] [--batch B]\n"
               "  NAME: shared-queue, per-thread, freelist, stealing, asio-strand, or all\n"
               "  defaults: --threads 1,2 --colors 1000 --work-ns 70,0 --tasks auto\n"
               "            --impl all --runs 3 --target-seconds 0.4 (auto: N so that one\n"
               "            run takes about S seconds, found by warm-up runs)\n"
               "  --batch B: RuntimeOptions::batch for the asmp configurations (callbacks of\n"
               "            one color run back to back); default: the runtime's own\n");
  std::exit(code);
}

template <class T>
std::vector<T> parse_list(const char* s) {
  std::vector<T> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0') usage(2);
    out.push_back(static_cast<T>(v));
  }
  if (out.empty()) usage(2);
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage(0);
    if (i + 1 >= argc) usage(2);
    const char* v = argv[++i];
    if (a == "--threads") {
      o.threads = parse_list<unsigned>(v);
    } else if (a == "--work-ns") {
      o.work_ns = parse_list<std::uint64_t>(v);
    } else if (a == "--colors") {
      o.colors = parse_list<unsigned>(v).at(0);
    } else if (a == "--tasks") {
      if (std::string_view(v) == "auto")
        o.tasks.reset();
      else
        o.tasks = parse_list<std::uint64_t>(v).at(0);
    } else if (a == "--impl") {
      o.impl = v;
    } else if (a == "--runs") {
      o.runs = parse_list<unsigned>(v).at(0);
    } else if (a == "--json") {
      o.json = v;
    } else if (a == "--batch") {
      o.batch = parse_list<unsigned>(v).at(0);
    } else if (a == "--target-seconds") {
      o.target_seconds = std::atof(v);
    } else {
      usage(2);
    }
  }
  if (o.impl != "all" && std::find(kAllImpls.begin(), kAllImpls.end(), o.impl) == kAllImpls.end())
    usage(2);
  for (unsigned t : o.threads)
    if (t == 0) usage(2);
  if (o.colors == 0 || o.runs == 0 || !(o.target_seconds > 0)) usage(2);
  if (o.tasks && *o.tasks < o.colors) {
    std::fprintf(stderr, "sched_bench: --tasks must be at least --colors\n");
    std::exit(2);
  }
  return o;
}

struct Summary {
  std::string impl;
  unsigned threads;
  std::uint64_t work_ns;
  std::uint64_t tasks;
  double min, median, max;  // tasks per second
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  std::vector<std::string> impls = o.impl == "all" ? kAllImpls : std::vector<std::string>{o.impl};

  std::FILE* json = nullptr;
  if (!o.json.empty()) {
    json = std::fopen(o.json.c_str(), "w");
    if (!json) {
      std::perror(o.json.c_str());
      return 2;
    }
  }

  double ns_per_iter = calibrate_ns_per_iter();
  utsname un{};
  uname(&un);
  unsigned batch = o.batch ? o.batch : asmp::RuntimeOptions{}.batch;
  std::printf("sched_bench: %u colors, %u runs each, batch %u, build %s, %u CPUs, load %.2f\n",
              o.colors, o.runs, batch, SFS_BUILD_TYPE, std::thread::hardware_concurrency(),
              load_average());
  std::printf("work loop: %.3f ns per dependent multiply-add\n\n", ns_per_iter);
  std::printf("%-13s %3s %6s %10s  %8s %8s %8s  %8s %6s %8s\n", "impl", "T", "W(ns)", "tasks",
              "min", "median", "max", "ns/task", "cpu", "steals");
  std::printf("%-13s %3s %6s %10s  %26s  %8s %6s %8s\n", "", "", "", "", "(M tasks/s)",
              "(median)", "(%)", "(median)");

  Bench b;
  b.ncolors = o.colors;
  b.colors = std::make_unique<ColorState[]>(o.colors);
  bool all_ok = true;
  std::vector<Summary> summaries;

  for (std::uint64_t w : o.work_ns) {
    b.work_iters = static_cast<std::uint64_t>(std::llround(static_cast<double>(w) / ns_per_iter));
    double work_actual = static_cast<double>(b.work_iters) * ns_per_iter;
    for (unsigned threads : o.threads) {
      for (const std::string& impl : impls) {
        // Warm-up (and, for --tasks auto, sizing): runs that grow until one
        // takes 1/8 of the target; N then aims at the target.
        std::uint64_t tasks;
        if (o.tasks) {
          tasks = *o.tasks;
          all_ok &= run_one(impl, threads, o.batch, b, std::max<std::uint64_t>(tasks / 10, o.colors)).ok;
        } else {
          std::uint64_t n = std::max<std::uint64_t>(20ull * o.colors, 50000);
          RunResult r;
          for (;;) {
            r = run_one(impl, threads, o.batch, b, n);
            all_ok &= r.ok;
            if (!r.ok || r.seconds >= o.target_seconds / 8 || n > (1ull << 40)) break;
            n *= 4;
          }
          tasks = std::max<std::uint64_t>(round2(n / r.seconds * o.target_seconds), o.colors);
        }

        std::vector<double> rates, cpus;
        std::vector<std::uint64_t> steals;
        for (unsigned run = 0; run < o.runs; ++run) {
          RunResult r = run_one(impl, threads, o.batch, b, tasks);
          all_ok &= r.ok;
          double rate = static_cast<double>(r.tasks) / r.seconds;
          rates.push_back(rate);
          cpus.push_back(r.cpu_seconds / r.seconds * 100);
          steals.push_back(r.steals);
          if (json)
            std::fprintf(json,
                         "{\"type\":\"run\",\"impl\":\"%s\",\"threads\":%u,\"colors\":%u,"
                         "\"work_ns\":%" PRIu64 ",\"work_iters\":%" PRIu64
                         ",\"work_ns_actual\":%.1f,\"tasks\":%" PRIu64
                         ",\"run\":%u,\"seconds\":%.6f,\"tasks_per_sec\":%.0f,\"ns_per_task\":%.3f,"
                         "\"cpu_seconds\":%.6f,\"steals\":%" PRIu64 ",\"sleeps\":%" PRIu64
                         ",\"load1\":%.2f,\"ok\":%s,\"batch\":%u,\"build\":\"%s\",\"host_cpus\":%u}\n",
                         impl.c_str(), threads, o.colors, w, b.work_iters, work_actual, tasks, run,
                         r.seconds, rate, 1e9 / rate, r.cpu_seconds, r.steals, r.sleeps, r.load1,
                         r.ok ? "true" : "false", impl == "asio-strand" ? 0 : batch, SFS_BUILD_TYPE,
                         std::thread::hardware_concurrency());
        }
        double mn = *std::min_element(rates.begin(), rates.end());
        double mx = *std::max_element(rates.begin(), rates.end());
        double md = median_of(rates);
        std::vector<double> st(steals.begin(), steals.end());
        std::printf("%-13s %3u %6" PRIu64 " %10" PRIu64 "  %8.2f %8.2f %8.2f  %8.2f %6.0f %8.0f\n",
                    impl.c_str(), threads, w, tasks, mn / 1e6, md / 1e6, mx / 1e6, 1e9 / md,
                    median_of(cpus), median_of(st));
        std::fflush(stdout);
        summaries.push_back({impl, threads, w, tasks, mn, md, mx});
        if (json) {
          std::fprintf(json,
                       "{\"type\":\"summary\",\"impl\":\"%s\",\"threads\":%u,\"colors\":%u,"
                       "\"work_ns\":%" PRIu64 ",\"tasks\":%" PRIu64
                       ",\"runs\":%u,\"tasks_per_sec_min\":%.0f,"
                       "\"tasks_per_sec_median\":%.0f,\"tasks_per_sec_max\":%.0f,"
                       "\"tasks_per_sec\":%.0f,\"seconds\":%.6f}\n",
                       impl.c_str(), threads, o.colors, w, tasks, o.runs, mn, md, mx, md,
                       static_cast<double>(tasks) / md);
          std::fflush(json);
        }
      }
    }
  }

  // The targets, where this invocation measured what they compare.
  auto find = [&](const char* impl, unsigned t, std::uint64_t w) -> const Summary* {
    for (const auto& s : summaries)
      if (s.impl == impl && s.threads == t && s.work_ns == w) return &s;
    return nullptr;
  };
  std::printf("\ntargets (medians; C=%u):\n", o.colors);
  bool any = false;
  const Summary* s1 = find("stealing", 1, 70);
  const Summary* s2 = find("stealing", 2, 70);
  const Summary* a2 = find("asio-strand", 2, 70);
  const Summary* z1 = find("stealing", 1, 0);
  if (s1 && s2) {
    double x = s2->median / s1->median;
    std::printf("  W=70: stealing 2T / stealing 1T    = %6.2fx  (target >= 1.8x)  %s\n", x,
                x >= 1.8 ? "met" : "MISSED");
    any = true;
  }
  if (s2 && a2) {
    double x = s2->median / a2->median;
    std::printf("  W=70: stealing 2T / asio-strand 2T = %6.1fx  (target >= 20x)   %s\n", x,
                x >= 20 ? "met" : "MISSED");
    any = true;
  }
  if (z1) {
    double ns = 1e9 / z1->median;
    std::printf("  W=0:  stealing 1T overhead          = %6.2f ns (target <= 15 ns, >= 65 M/s)  %s\n",
                ns, ns <= 15 ? "met" : "MISSED");
    any = true;
  }
  if (!any) std::printf("  (not measured in this invocation)\n");
  if (json) std::fclose(json);
  if (!all_ok) {
    std::fprintf(stderr, "sched_bench: FAILED: a run broke per-color order or lost callbacks\n");
    return 1;
  }
  return 0;
}
