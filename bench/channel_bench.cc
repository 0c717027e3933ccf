// channel_bench: the secure channel's cost, alone and over RPC.
//
//   seal/open  SealState::seal and OpenState::open (out of place, as
//              SecureRecordFilter uses them) for each AEAD x implementation
//              at 16 KiB, 64 KiB and 1 MiB records, on 1 and 2 threads. Each
//              thread has its own states and a 1 MiB working set (records
//              sealed, then opened, in batches). Throughput is per core:
//              bytes per second of that thread's CPU time
//              (CLOCK_THREAD_CPUTIME_ID), averaged over the threads; the
//              2-thread lines also give the wall-clock total.
//   echo       SFSTEST_ECHO with --size bytes (64 KiB) of arguments over
//              loopback, --depth calls outstanding per connection, on 1 and
//              2 connections: plaintext (asmp::rpc::Server) and encrypted
//              (sfs::SecureServer, default implementation, each AEAD), in
//              the same run, alternated. The server runs in a child process
//              (this program with --serve), started afresh for every run;
//              its CPU time is the child's RUSAGE_SELF as wait4() reports
//              it (user + sys, whole life: start, handshakes, echo), divided
//              by the argument bytes it echoed. MB/s counts argument bytes
//              (10^6 bytes per MB), like rpc_echo_bench.
//
// --runs runs of each (default 3); the table and the JSON lines give
// min/median/max. --json FILE appends one JSON object per configuration.
// The load average is printed and recorded: this machine is shared.
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "asmp/rpc.h"
#include "asmp/runtime.h"
#include "sfs/channel.h"
#include "sfs/secure_rpc.h"
#include "sfs/sfs_test.h"
#include "child_process.h"

#ifndef SFS_BUILD_TYPE
#define SFS_BUILD_TYPE "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;
namespace rpc = asmp::rpc;
using namespace std::chrono_literals;

struct Options {
  unsigned runs = 3;
  std::size_t size = 64 * 1024;
  unsigned depth = 8;
  double echo_seconds = 1.5;
  std::size_t crypto_bytes = 128u << 20;  // per thread per run
  std::string json;
  bool skip_crypto = false, skip_echo = false;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "channel_bench: %s\n", what.c_str());
  std::exit(1);
}

double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct Stats {
  double min = 0, median = 0, max = 0;
};
Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v.front(), v[v.size() / 2], v.back()};
}

std::ofstream* g_json = nullptr;

void emit(const std::string& fields) {
  if (g_json) *g_json << "{\"bench\":\"channel_bench\",\"build_type\":\"" SFS_BUILD_TYPE "\"," << fields
                      << "}\n";
}

std::string fmt(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

// ---- seal / open -----------------------------------------------------------------

struct ThreadResult {
  double seal_cpu = 0, open_cpu = 0;
  std::size_t bytes = 0;
  bool ok = true;
};

ThreadResult crypto_thread(sfs::AeadAlg alg, sfs::AeadImpl impl, std::size_t rec, std::size_t total) {
  sfs::AeadKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  sfs::ChannelConfig cfg;
  cfg.max_plaintext = std::max(rec, sfs::kDefaultMaxRecordPlaintext);
  sfs::SealState seal(alg, impl, key, cfg);
  sfs::OpenState open(alg, impl, key, cfg);
  const std::size_t batch = std::max<std::size_t>(1, (1u << 20) / rec);
  std::vector<std::uint8_t> plain(rec * batch, 0x5a), opened(rec * batch);
  std::vector<std::uint8_t> sealed(sfs::SealState::sealed_size(rec) * batch);
  const std::size_t srec = sfs::SealState::sealed_size(rec);
  ThreadResult r;
  // One warm-up batch, untimed.
  for (int warm = 0; warm < 2; ++warm) {
    std::size_t done = 0;
    const std::size_t goal = warm == 0 ? rec * batch : total;
    while (done < goal) {
      double t0 = thread_cpu();
      for (std::size_t i = 0; i < batch; ++i) {
        auto res = seal.seal({plain.data() + i * rec, rec}, {sealed.data() + i * srec, srec});
        r.ok &= res.ok();
      }
      double t1 = thread_cpu();
      for (std::size_t i = 0; i < batch; ++i) {
        auto res = open.open({sealed.data() + i * srec, srec}, {opened.data() + i * rec, rec});
        r.ok &= res.ok();
      }
      double t2 = thread_cpu();
      done += rec * batch;
      if (warm == 1) {
        r.seal_cpu += t1 - t0;
        r.open_cpu += t2 - t1;
      }
    }
    if (warm == 1) r.bytes = done;
  }
  return r;
}

void bench_crypto(const Options& o) {
  std::printf("\nseal/open, per core (bytes per thread-CPU-second), MB/s min / median / max of %u runs\n",
              o.runs);
  std::printf("%-18s %-8s %8s %3s  %-26s %-26s %s\n", "aead", "impl", "record", "thr", "seal MB/s/core",
              "open MB/s/core", "wall total seal+open MB/s");
  for (sfs::AeadAlg alg : {sfs::AeadAlg::kChaCha20Poly1305, sfs::AeadAlg::kAes256Gcm}) {
    for (sfs::AeadImpl impl : {sfs::AeadImpl::kOpenSsl, sfs::AeadImpl::kSodium}) {
      if (!sfs::aead_available(alg, impl)) continue;
      for (std::size_t rec : {std::size_t{16} << 10, std::size_t{64} << 10, std::size_t{1} << 20}) {
        for (unsigned threads : {1u, 2u}) {
          std::vector<double> seal_v, open_v, wall_v;
          for (unsigned run = 0; run < o.runs; ++run) {
            std::vector<ThreadResult> res(threads);
            std::vector<std::thread> ts;
            auto w0 = Clock::now();
            for (unsigned t = 0; t < threads; ++t)
              ts.emplace_back([&, t] { res[t] = crypto_thread(alg, impl, rec, o.crypto_bytes); });
            for (auto& t : ts) t.join();
            double wall = std::chrono::duration<double>(Clock::now() - w0).count();
            double s = 0, op = 0, bytes = 0;
            for (auto& r : res) {
              if (!r.ok) die("a record failed to seal or open");
              s += static_cast<double>(r.bytes) / r.seal_cpu / 1e6;
              op += static_cast<double>(r.bytes) / r.open_cpu / 1e6;
              bytes += static_cast<double>(r.bytes);
            }
            seal_v.push_back(s / threads);
            open_v.push_back(op / threads);
            wall_v.push_back(bytes / wall / 1e6);  // records sealed and opened per wall second
          }
          Stats s = stats_of(seal_v), op = stats_of(open_v), w = stats_of(wall_v);
          std::printf("%-18s %-8s %8zu %3u  %7.0f / %7.0f / %7.0f  %7.0f / %7.0f / %7.0f  %7.0f / %7.0f / %7.0f\n",
                      std::string(sfs::aead_name(alg)).c_str(),
                      std::string(sfs::aead_impl_name(impl)).c_str(), rec, threads, s.min, s.median,
                      s.max, op.min, op.median, op.max, w.min, w.median, w.max);
          std::fflush(stdout);
          for (int which = 0; which < 2; ++which) {
            Stats x = which == 0 ? s : op;
            std::ostringstream f;
            f << "\"op\":\"" << (which == 0 ? "seal" : "open") << "\",\"impl\":\""
              << sfs::aead_impl_name(impl) << "\",\"aead\":\"" << sfs::aead_name(alg)
              << "\",\"record_bytes\":" << rec << ",\"threads\":" << threads
              << ",\"connections\":0,\"mb_per_s\":" << fmt(x.median) << ",\"mb_per_s_min\":" << fmt(x.min)
              << ",\"mb_per_s_max\":" << fmt(x.max)
              << ",\"per\":\"core (thread CPU time)\",\"wall_total_seal_and_open_mb_per_s\":" << fmt(w.median)
              << ",\"runs\":" << o.runs << ",\"load\":\"" << loadavg() << "\"";
            emit(f.str());
          }
        }
      }
    }
  }
}

// ---- echo server (child process) -----------------------------------------------

rpc::Interface sfstest_iface() {
  return rpc::Interface{SFSTEST_PROG, SFSTEST_V1,
                        {rpc::proc(xdr_void, xdr_void), rpc::proc(xdr_sfstest_data, xdr_sfstest_data)}};
}

// --serve: a plaintext and a secure echo server; prints
// "PORTS plain secure hostid" and serves until stdin closes.
int serve() {
  asmp::Runtime rt(asmp::RuntimeOptions{.threads = 2});
  auto echo = [](rpc::Call c) {
    if (c.proc() == SFSTEST_ECHO) c.reply(c.args<sfstest_data>());
    else c.reply(nullptr);
  };
  auto progs = std::make_shared<rpc::Programs>();
  rpc::Program p;
  p.iface = sfstest_iface();
  p.dispatch = echo;
  progs->add(std::move(p));
  auto plain = rpc::Server::create(progs);
  if (plain->listen("127.0.0.1", 0) != 0) die("server: listen failed");

  sfs::SecureServerOptions so;
  so.key = std::make_shared<sfs::ServerKey>(sfs::ServerKey::generate());
  sfs::SecureProgram sp;
  sp.iface = sfstest_iface();
  sp.dispatch = echo;
  so.programs.push_back(std::move(sp));
  auto pub = so.key->public_key();
  auto secure = sfs::SecureServer::create(std::move(so));
  if (secure->listen("127.0.0.1", 0) != 0) die("server: listen failed");
  auto name = sfs::name_for(sfs::Location{"127.0.0.1", secure->port()}, pub);
  std::printf("PORTS %u %u %s\n", plain->port(), secure->port(), sfs::format_hostid(name.hostid).c_str());
  std::fflush(stdout);
  std::thread waiter([&] {
    char c;
    while (::read(0, &c, 1) > 0) {
    }
    rt.stop();
  });
  rt.run();
  waiter.join();
  return 0;
}

struct Child {
  bench::ChildProcess proc;
  std::uint16_t plain_port = 0, secure_port = 0;
  std::string hostid;
};

Child spawn_server() {
  Child c;
  c.proc = bench::spawn_self({"--serve"});
  if (c.proc.pid < 0) die("spawn failed");
  const std::string line = bench::read_line(c.proc.from_child);
  ::close(c.proc.from_child);
  unsigned a = 0, b = 0;
  char hid[64] = {0};
  if (std::sscanf(line.c_str(), "PORTS %u %u %63s", &a, &b, hid) != 3) die("server did not start: " + line);
  c.plain_port = static_cast<std::uint16_t>(a);
  c.secure_port = static_cast<std::uint16_t>(b);
  c.hostid = hid;
  return c;
}

// Stops the child and returns its CPU seconds (user + sys, RUSAGE of the child).
double stop_server(Child& c) {
  ::close(c.proc.to_child);
  const double cpu = bench::wait_cpu_seconds(c.proc.pid);
  if (cpu < 0) die("wait4 failed");
  return cpu;
}

// ---- echo client -----------------------------------------------------------------

// Keeps `depth` echo calls outstanding on one connection, on its color.
struct Pump : std::enable_shared_from_this<Pump> {
  std::shared_ptr<rpc::Connection> conn;
  std::vector<char> payload;
  sfstest_data arg{};
  std::vector<sfstest_data> res;
  std::atomic<std::uint64_t> bytes{0}, measured{0};
  std::atomic<bool> measuring{false}, stop{false}, failed{false};
  std::atomic<int> outstanding{0};

  void issue(std::size_t slot) {
    outstanding.fetch_add(1);
    rpc::CallOptions co;
    co.timeout = 30s;
    conn->call(SFSTEST_PROG, SFSTEST_V1, SFSTEST_ECHO, rpc::as_xdrproc(xdr_sfstest_data), &arg,
               rpc::as_xdrproc(xdr_sfstest_data), &res[slot],
               rpc::CallDone(
                   [self = shared_from_this(), slot](rpc::RpcStatus st) {
                     if (!st.ok() || self->res[slot].sfstest_data_len != self->arg.sfstest_data_len) {
                       self->failed.store(true);
                     } else {
                       self->bytes.fetch_add(self->arg.sfstest_data_len, std::memory_order_relaxed);
                       if (self->measuring.load(std::memory_order_relaxed))
                         self->measured.fetch_add(self->arg.sfstest_data_len, std::memory_order_relaxed);
                     }
                     if (st.ok()) xdr_free(rpc::as_xdrproc(xdr_sfstest_data), &self->res[slot]);
                     self->outstanding.fetch_sub(1);
                     if (!self->stop.load() && !self->failed.load()) self->issue(slot);
                   },
                   conn->color()),
               co);
  }
};

struct EchoResult {
  double mb_per_s = 0, server_cpu_s_per_gb = 0;
};

template <class T>
T wait_box(std::function<void(std::function<void(T)>)> start) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<T> got;
  start([&](T v) {
    std::lock_guard lk(mu);
    got.emplace(std::move(v));
    cv.notify_all();
  });
  std::unique_lock lk(mu);
  if (!cv.wait_for(lk, 30s, [&] { return got.has_value(); })) die("connect timed out");
  return std::move(*got);
}

// mode: "plain" or an AEAD name.
EchoResult echo_run(const Options& o, const std::string& mode, unsigned conns) {
  Child child = spawn_server();
  std::vector<std::shared_ptr<Pump>> pumps;
  std::vector<sfs::SecureSession> sessions;
  for (unsigned i = 0; i < conns; ++i) {
    auto pump = std::make_shared<Pump>();
    const asmp::color_t color = 500 + i;
    if (mode == "plain") {
      pump->conn = wait_box<std::shared_ptr<rpc::Connection>>([&](auto done) {
        rpc::connect("127.0.0.1", child.plain_port, color, {}, {},
                     asmp::Callback<void(std::shared_ptr<rpc::Connection>, int)>(
                         [done](std::shared_ptr<rpc::Connection> c, int) { done(std::move(c)); }, color));
      });
      if (!pump->conn) die("plain connect failed");
    } else {
      sfs::SecureConnectOptions so;
      auto hid = sfs::parse_hostid(child.hostid);
      if (!hid.ok()) die("bad hostid from server");
      so.server = sfs::SelfCertName{sfs::Location{"127.0.0.1", child.secure_port}, hid.value()};
      so.offer = {*sfs::aead_from_name(mode)};
      so.color = color;
      auto r = wait_box<std::shared_ptr<sfs::Result<sfs::SecureSession>>>([&](auto done) {
        sfs::secure_connect(std::move(so), asmp::Callback<void(sfs::Result<sfs::SecureSession>)>(
                                               [done](sfs::Result<sfs::SecureSession> got) {
                                                 done(std::make_shared<sfs::Result<sfs::SecureSession>>(std::move(got)));
                                               },
                                               color));
      });
      if (!r->ok()) die("secure connect failed: " + r->error());
      pump->conn = r->value().connection();
      sessions.push_back(r->value());
    }
    pump->payload.assign(o.size, 'x');
    pump->arg = {static_cast<u_int>(o.size), pump->payload.data()};
    pump->res.assign(o.depth, sfstest_data{});
    pumps.push_back(pump);
  }
  for (auto& p : pumps)
    for (unsigned d = 0; d < o.depth; ++d) p->issue(d);
  std::this_thread::sleep_for(300ms);  // warm-up
  for (auto& p : pumps) p->measuring.store(true);
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.echo_seconds));
  for (auto& p : pumps) p->measuring.store(false);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& p : pumps) p->stop.store(true);
  auto end = Clock::now() + 30s;
  for (auto& p : pumps)
    while (p->outstanding.load() > 0 && Clock::now() < end) std::this_thread::sleep_for(1ms);
  std::uint64_t measured = 0, total = 0;
  for (auto& p : pumps) {
    if (p->failed.load()) die("an echo call failed (" + mode + ")");
    measured += p->measured.load();
    total += p->bytes.load();
    p->conn->close();
  }
  double cpu = stop_server(child);
  EchoResult r;
  r.mb_per_s = static_cast<double>(measured) / secs / 1e6;
  r.server_cpu_s_per_gb = cpu / (static_cast<double>(total) / 1e9);
  return r;
}

void bench_echo(const Options& o) {
  asmp::Runtime rt(asmp::RuntimeOptions{.threads = 2});
  std::thread runner([&] { rt.run(); });
  std::vector<std::string> modes = {"plain", "chacha20-poly1305", "aes-256-gcm"};
  std::printf("\necho of %zu-byte arguments, depth %u per connection, %.1f s per run; server in a child "
              "process (CPU = its RUSAGE_SELF via wait4, per GB of arguments)\n",
              o.size, o.depth, o.echo_seconds);
  std::printf("default implementation here: chacha20-poly1305 -> %s, aes-256-gcm -> %s\n",
              std::string(sfs::aead_impl_name(sfs::choose_aead_impl(sfs::AeadAlg::kChaCha20Poly1305))).c_str(),
              std::string(sfs::aead_impl_name(sfs::choose_aead_impl(sfs::AeadAlg::kAes256Gcm))).c_str());
  std::printf("%-18s %5s  %-26s %-22s %s\n", "mode", "conns", "MB/s min / median / max", "server CPU-s/GB",
              "vs plain (median)");
  for (unsigned conns : {1u, 2u}) {
    std::vector<std::vector<EchoResult>> res(modes.size());
    for (unsigned run = 0; run < o.runs; ++run)
      for (std::size_t m = 0; m < modes.size(); ++m) res[m].push_back(echo_run(o, modes[m], conns));
    double plain_median = 0;
    for (std::size_t m = 0; m < modes.size(); ++m) {
      std::vector<double> mb, cpu;
      for (auto& r : res[m]) {
        mb.push_back(r.mb_per_s);
        cpu.push_back(r.server_cpu_s_per_gb);
      }
      Stats s = stats_of(mb), c = stats_of(cpu);
      if (m == 0) plain_median = s.median;
      std::printf("%-18s %5u  %7.0f / %7.0f / %7.0f  %5.2f / %5.2f / %5.2f  %.2fx\n", modes[m].c_str(), conns,
                  s.min, s.median, s.max, c.min, c.median, c.max, s.median / plain_median);
      std::fflush(stdout);
      std::string impl = m == 0 ? "none"
                                : std::string(sfs::aead_impl_name(
                                      sfs::choose_aead_impl(*sfs::aead_from_name(modes[m]))));
      std::ostringstream f;
      f << "\"op\":\"echo\",\"impl\":\"" << impl << "\",\"aead\":\"" << (m == 0 ? "none" : modes[m])
        << "\",\"record_bytes\":" << o.size << ",\"threads\":2,\"connections\":" << conns
        << ",\"depth\":" << o.depth << ",\"mb_per_s\":" << fmt(s.median) << ",\"mb_per_s_min\":" << fmt(s.min)
        << ",\"mb_per_s_max\":" << fmt(s.max) << ",\"vs_plain\":" << (s.median / plain_median)
        << ",\"server_cpu_s_per_gb\":" << c.median << ",\"server_cpu_s_per_gb_min\":" << c.min
        << ",\"server_cpu_s_per_gb_max\":" << c.max
        << ",\"server_cpu\":\"child process RUSAGE_SELF (wait4), user+sys, per 1e9 argument bytes\""
        << ",\"runs\":" << o.runs << ",\"load\":\"" << loadavg() << "\"";
      emit(f.str());
    }
  }
  rt.stop();
  runner.join();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--serve") return serve();
    if (a == "--json") o.json = next();
    else if (a == "--runs") o.runs = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--size") o.size = std::stoul(next());
    else if (a == "--depth") o.depth = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--seconds") o.echo_seconds = std::stod(next());
    else if (a == "--crypto-mb") o.crypto_bytes = std::stoul(next()) << 20;
    else if (a == "--no-crypto") o.skip_crypto = true;
    else if (a == "--no-echo") o.skip_echo = true;
    else {
      std::fprintf(stderr,
                   "usage: channel_bench [--json FILE] [--runs N] [--size BYTES] [--depth N] [--seconds S]\n"
                   "                     [--crypto-mb MB] [--no-crypto] [--no-echo]\n");
      return 2;
    }
  }
  std::ofstream json;
  if (!o.json.empty()) {
    json.open(o.json, std::ios::app);
    if (!json) die("cannot write " + o.json);
    g_json = &json;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::printf("channel_bench (%s build), load average at start: %s, CPUs: %u\n", SFS_BUILD_TYPE,
              loadavg().c_str(), std::thread::hardware_concurrency());
  if (!o.skip_crypto) bench_crypto(o);
  if (!o.skip_echo) bench_echo(o);
  std::printf("\nload average at end: %s\n", loadavg().c_str());
  return 0;
}
