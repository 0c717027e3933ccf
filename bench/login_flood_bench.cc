// login_flood_bench: the "color 0 stall" attack of issue 11, re-measured.
//
// An anonymous attacker floods logins that name a registered public key
// (alice's) with a bad signature: each one costs the server an Ed25519
// verification and, unthrottled, a log line. Meanwhile alice, logged in on
// her own connection, makes one call every 10 ms that runs on the server's
// shared color (color 0, where logins are admitted and the uid map lives,
// as sfsd's file calls are mapped there); the bench records how long each
// takes. The review that found the attack measured alice's call at 10.8 s
// instead of 0.09 ms and 100,000 log lines in 20 s.
//
// The server runs in a child process (this program with --serve MODE),
// 2 worker threads, started afresh for each configuration:
//   quiet      no attacker (alice's baseline);
//   defaults   the attack against SecureServerOptions' defaults (a
//              connection closed after 8 failed logins, 20 handshakes a
//              second per source with a burst of 64, refusals logged at most
//              5 lines a second);
//   unlimited  the same attack with max_failed_logins and the handshake
//              limits off (the signature check still runs on the
//              attacker's own connection color, not color 0).
// The attacker reconnects whenever its connection is closed and keeps 32
// logins in flight. Server CPU is the child's user + system time (wait4),
// its log lines are counted by the child. --json FILE appends one JSON
// object per configuration and round. Never a test: a program that prints.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "asmp/rpc.h"
#include "asmp/runtime.h"
#include "sfs/login.h"
#include "sfs/names.h"
#include "sfs/secure_rpc.h"
#include "sfs/sfs_test.h"
#include "child_process.h"

namespace {

namespace rpc = asmp::rpc;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "login_flood_bench: %s\n", why.c_str());
  std::exit(1);
}

rpc::Interface sfstest_iface() {
  return rpc::Interface{SFSTEST_PROG, SFSTEST_V1,
                        {rpc::proc(xdr_void, xdr_void), rpc::proc(xdr_sfstest_data, xdr_sfstest_data),
                         rpc::proc(xdr_sfstest_pair, xdr_int)}};
}

// ---- the server (child) ------------------------------------------------------

// --serve MODE KEY: prints "PORT port hostid", serves until stdin closes,
// then prints "LOG lines".
int serve(const std::string& mode, const std::string& alice_key) {
  std::atomic<std::uint64_t> log_lines{0};
  {
    asmp::Runtime rt(asmp::RuntimeOptions{.threads = 2});
    sfs::SecureServerOptions so;
    so.key = std::make_shared<sfs::ServerKey>(sfs::ServerKey::generate());
    so.users = std::make_shared<sfs::UserDb>(sfs::UserDb::parse(alice_key + " alice 1000 100\n", nullptr));
    so.log = [&log_lines](const std::string&) { log_lines.fetch_add(1, std::memory_order_relaxed); };
    if (mode == "unlimited") {
      so.max_failed_logins = 0;
      so.handshake_limits.per_source_per_second = 0;
      so.handshake_limits.max_in_progress = 0;
      so.handshake_limits.max_in_progress_per_source = 0;
    }
    sfs::SecureProgram p;
    p.iface = sfstest_iface();
    p.dispatch_as_user = [](rpc::Call c, const sfs::Caller&) {  // on the shared color
      if (c.proc() == SFSTEST_ADD) {
        const auto* a = c.args<sfstest_pair>();
        int sum = a->a + a->b;
        c.reply(&sum);
      } else {
        c.reply(nullptr);
      }
    };
    so.programs.push_back(std::move(p));
    const sfs::ServerPublicKey pub = so.key->public_key();
    auto server = sfs::SecureServer::create(std::move(so));
    if (server->listen("127.0.0.1", 0) != 0) die("server: listen failed");
    const auto name = sfs::name_for(sfs::Location{"127.0.0.1", server->port()}, pub);
    std::printf("PORT %u %s\n", server->port(), sfs::format_hostid(name.hostid).c_str());
    std::fflush(stdout);
    std::thread waiter([&] {
      char c;
      while (::read(0, &c, 1) > 0) {
      }
      server->close();
      rt.stop();
    });
    rt.run();
    waiter.join();
  }
  std::printf("LOG %llu\n", static_cast<unsigned long long>(log_lines.load()));
  return 0;
}

struct Child {
  bench::ChildProcess proc;
  sfs::SelfCertName name;
};

Child spawn_server(const std::string& mode, const std::string& alice_key) {
  Child c;
  c.proc = bench::spawn_self({"--serve", mode, alice_key});
  if (c.proc.pid < 0) die("spawn failed");
  const std::string line = bench::read_line(c.proc.from_child);
  unsigned port = 0;
  char hid[128] = {0};
  if (std::sscanf(line.c_str(), "PORT %u %127s", &port, hid) != 2) die("server did not start: " + line);
  auto hostid = sfs::parse_hostid(hid);
  if (!hostid.ok()) die("bad HOSTID from the server");
  c.name = sfs::SelfCertName{sfs::Location{"127.0.0.1", static_cast<std::uint16_t>(port)}, hostid.value()};
  return c;
}

// Stops the child; its CPU seconds and log lines.
std::pair<double, std::uint64_t> stop_server(Child& c) {
  ::close(c.proc.to_child);
  const std::string line = bench::read_line(c.proc.from_child);
  ::close(c.proc.from_child);
  const double cpu = bench::wait_cpu_seconds(c.proc.pid);
  if (cpu < 0) die("wait4 failed");
  unsigned long long lines = 0;
  std::sscanf(line.c_str(), "LOG %llu", &lines);
  return {cpu, lines};
}

// ---- the client side ---------------------------------------------------------

template <typename T>
struct Box {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<T> v;
  void set(T x) {
    std::lock_guard lk(mu);
    v = std::move(x);
    cv.notify_all();
  }
  std::optional<T> wait(std::chrono::milliseconds limit = 20s) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, limit, [&] { return v.has_value(); });
    return std::move(v);
  }
};

sfs::Result<sfs::SecureSession> connect(const sfs::SelfCertName& name, asmp::color_t color,
                                        std::shared_ptr<std::atomic<bool>> closed = nullptr) {
  sfs::SecureConnectOptions o;
  o.server = name;
  o.color = color;
  o.log = [](const std::string&) {};
  if (closed) o.on_close = [closed](const std::string&) { closed->store(true); };
  auto box = std::make_shared<Box<sfs::Result<sfs::SecureSession>>>();
  sfs::secure_connect(std::move(o), asmp::Callback<void(sfs::Result<sfs::SecureSession>)>(
                                        [box](sfs::Result<sfs::SecureSession> r) { box->set(std::move(r)); },
                                        color + 1000));
  auto r = box->wait();
  if (!r) return sfs::make_error("connect timed out");
  return std::move(*r);
}

struct AttackCounts {
  std::atomic<std::uint64_t> sent{0}, refused{0}, connections{0}, connect_failures{0};
};

// Floods until `stop`: one connection at a time, kDepth bad logins in
// flight on it, a new connection when it closes.
void attack(const sfs::SelfCertName& name, const sfs::UserKey& alice, const std::atomic<bool>& stop,
            AttackCounts& n) {
  constexpr int kDepth = 32;
  constexpr asmp::color_t kColor = 200;
  while (!stop.load()) {
    auto closed = std::make_shared<std::atomic<bool>>(false);
    auto s = connect(name, kColor, closed);
    if (!s.ok()) {
      n.connect_failures.fetch_add(1);
      std::this_thread::sleep_for(5ms);
      continue;
    }
    n.connections.fetch_add(1);
    sfs::SecureSession session = s.value();
    auto in_flight = std::make_shared<std::atomic<int>>(0);
    std::uint64_t seqno = 1;
    while (!stop.load() && !closed->load()) {
      if (in_flight->load() >= kDepth) {
        std::this_thread::sleep_for(100us);
        continue;
      }
      sfs::Bytes req = sfs::encode_login_request(alice, "alice", session.session_id(), seqno++);
      req.back() ^= 0x01;  // the signature's last byte: the key is registered, the signature is not hers
      in_flight->fetch_add(1);
      n.sent.fetch_add(1);
      session.login_signed(std::move(req), "alice",
                           asmp::Callback<void(sfs::Result<std::uint32_t>)>(
                               [in_flight, &n](sfs::Result<std::uint32_t> r) {
                                 if (!r.ok() && r.error().find("refused by the server") != std::string::npos)
                                   n.refused.fetch_add(1);
                                 in_flight->fetch_sub(1);
                               },
                               kColor));
    }
    session.close();
  }
}

struct Latencies {
  std::vector<double> ms;
  std::uint64_t failed = 0;
};

// Alice: logged in, one ADD every 10 ms until `stop`.
Latencies victim(const sfs::SelfCertName& name, const sfs::UserKey& alice, const std::atomic<bool>& stop) {
  constexpr asmp::color_t kColor = 100;
  auto s = connect(name, kColor);
  if (!s.ok()) die("alice cannot connect: " + s.error());
  auto login = std::make_shared<Box<sfs::Result<std::uint32_t>>>();
  s.value().login(alice, "alice", asmp::Callback<void(sfs::Result<std::uint32_t>)>(
                                      [login](sfs::Result<std::uint32_t> r) { login->set(std::move(r)); },
                                      kColor + 1000));
  auto auth = login->wait();
  if (!auth || !auth->ok()) die("alice cannot log in");
  const rpc::Auth cred = sfs::auth_number_cred(auth->value());
  Latencies out;
  while (!stop.load()) {
    auto done = std::make_shared<Box<bool>>();
    auto args = std::make_shared<sfstest_pair>(sfstest_pair{2, 3});
    auto sum = std::make_shared<int>(0);
    rpc::CallOptions co;
    co.auth = &cred;
    co.timeout = 60s;
    const auto t0 = Clock::now();
    s.value().connection()->call(SFSTEST_PROG, SFSTEST_V1, SFSTEST_ADD, rpc::as_xdrproc(xdr_sfstest_pair),
                                 args.get(), rpc::as_xdrproc(xdr_int), sum.get(),
                                 rpc::CallDone([done, args, sum](rpc::RpcStatus st) { done->set(st.ok() && *sum == 5); }),
                                 co);
    auto ok = done->wait(70s);
    if (!ok || !*ok) {
      ++out.failed;
    } else {
      out.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::this_thread::sleep_for(10ms);
  }
  s.value().close();
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  unsigned rounds = 1;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--serve" && i + 2 < argc) return serve(argv[i + 1], argv[i + 2]);
    if (a == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = static_cast<unsigned>(std::stoul(argv[++i]));
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: login_flood_bench [--seconds S (10)] [--rounds R (1)] [--json FILE]\n");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::ofstream json;
  if (!json_path.empty()) {
    json.open(json_path, std::ios::app);
    if (!json) die("cannot write " + json_path);
  }
  const sfs::UserKey alice = sfs::UserKey::generate();
  const std::string alice_key = sfs::format_user_public_key(alice.public_key());
  asmp::Runtime rt(asmp::RuntimeOptions{.threads = 2});
  std::thread loop([&] { rt.run(); });

  std::printf("login_flood_bench: %.0f s per configuration, server: 2 workers (child process)\n", seconds);
  std::printf("%-10s %5s %10s %9s %8s %9s %8s %8s %8s %7s %9s %8s\n", "config", "round", "logins", "refused",
              "conns", "conn_fail", "p50_ms", "p99_ms", "max_ms", "calls", "log_lines", "srv_cpu");
  for (unsigned round = 1; round <= rounds; ++round) {
    for (const std::string mode : {"quiet", "defaults", "unlimited"}) {
      Child child = spawn_server(mode == "quiet" ? "defaults" : mode, alice_key);
      std::atomic<bool> stop{false};
      AttackCounts counts;
      std::thread attacker;
      if (mode != "quiet") attacker = std::thread([&] { attack(child.name, alice, stop, counts); });
      Latencies lat;
      std::thread alice_thread([&] { lat = victim(child.name, alice, stop); });
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      stop = true;
      alice_thread.join();
      if (attacker.joinable()) attacker.join();
      auto [cpu, lines] = stop_server(child);
      const double p50 = percentile(lat.ms, 0.5), p99 = percentile(lat.ms, 0.99), mx = percentile(lat.ms, 1.0);
      std::printf("%-10s %5u %10llu %9llu %8llu %9llu %8.3f %8.3f %8.3f %7zu %9llu %8.2f%s\n", mode.c_str(), round,
                  static_cast<unsigned long long>(counts.sent.load()),
                  static_cast<unsigned long long>(counts.refused.load()),
                  static_cast<unsigned long long>(counts.connections.load()),
                  static_cast<unsigned long long>(counts.connect_failures.load()), p50, p99, mx, lat.ms.size(),
                  static_cast<unsigned long long>(lines), cpu,
                  lat.failed ? (" (" + std::to_string(lat.failed) + " calls failed)").c_str() : "");
      std::fflush(stdout);
      if (json)
        json << "{\"bench\":\"login_flood_bench\",\"config\":\"" << mode << "\",\"round\":" << round
             << ",\"seconds\":" << seconds << ",\"attack_logins\":" << counts.sent.load()
             << ",\"attack_refused\":" << counts.refused.load()
             << ",\"attack_connections\":" << counts.connections.load()
             << ",\"attack_connect_failures\":" << counts.connect_failures.load() << ",\"victim_calls\":"
             << lat.ms.size() << ",\"victim_failed\":" << lat.failed << ",\"victim_p50_ms\":" << p50
             << ",\"victim_p99_ms\":" << p99 << ",\"victim_max_ms\":" << mx << ",\"server_log_lines\":" << lines
             << ",\"server_cpu_s\":" << cpu << "}\n";
    }
  }
  rt.stop();
  loop.join();
  return 0;
}
