// rpc_echo_bench: Sun RPC echo through asmp_rpc against a plain blocking
// socket echo, both over loopback TCP, in the same run.
//
//   rpc    one asmp::rpc::Connection (color 1000) to an asmp::rpc::Server
//          (its connection gets color 1) in one process and one Runtime;
//          SFSTEST_ECHO with --size bytes of arguments and results, --depth
//          calls outstanding; each completion issues the next call. Both
//          sides use BytesView (asmp/rpc.h) for the data: decoded in place,
//          encoded with one copy into the record.
//   plain  a server thread and a client thread with blocking sockets: the
//          client writes a 4-byte length and --size bytes, reads the same
//          back, one request at a time (what a simple synchronous RPC does).
//
// Each implementation moves --total bytes of arguments per run (as many
// requests as fit); --runs runs each, alternated. MB/s counts argument bytes
// only (10^6 bytes per MB). Results are checked (size and a sample of bytes)
// so that neither side can win by not echoing.
//
// Output: a table (min/median/max MB/s) on stdout; with --json FILE, one
// JSON object per run: impl, bytes, seconds, mb_per_s, size, depth, run,
// cpu_seconds (process user+sys during the run), build_type.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "asmp/rpc.h"
#include "asmp/runtime.h"
#include "sfs/sfs_test.h"

#ifndef SFS_BUILD_TYPE
#define SFS_BUILD_TYPE "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using namespace asmp;
using namespace asmp::rpc;

struct Options {
  std::size_t size = 64 * 1024;
  unsigned depth = 16;
  std::size_t total = std::size_t{1} << 30;  // 1 GiB of arguments per run
  unsigned runs = 3;
  unsigned threads = 0;
  std::size_t read_chunk = TransportOptions{}.read_chunk;
  std::string json;
  std::string only;  // "rpc" or "plain": run just that one (for profiling)
};

struct Result {
  std::string impl;
  std::size_t bytes = 0;
  double seconds = 0;
  double cpu = 0;
  double mbps() const { return static_cast<double>(bytes) / seconds / 1e6; }
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rpc_echo_bench: %s\n", what.c_str());
  std::exit(1);
}

std::vector<char> payload(std::size_t n) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 7 + 3) & 0xff);
  return v;
}

bool same_sample(const char* a, const char* b, std::size_t n) {
  if (n == 0) return true;
  return a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1];
}

// ---- rpc ---------------------------------------------------------------------

std::shared_ptr<const Interface> echo_interface() {
  auto i = std::make_shared<Interface>();
  i->prog = SFSTEST_PROG;
  i->vers = SFSTEST_V1;
  // ECHO's sfstest_data (opaque<SFSTEST_MAXDATA>) as BytesView on both
  // sides: the same XDR on the wire as rpcgen's xdr_sfstest_data, but
  // decoded in place (a pointer into the record) instead of malloc + copy.
  // Encoding still copies the bytes into the record, once per direction.
  i->procs = {proc(xdr_void, xdr_void),
              Proc{xdrproc_of<xdr_bytes_view<SFSTEST_MAXDATA>>(), sizeof(BytesView),
                   xdrproc_of<xdr_bytes_view<SFSTEST_MAXDATA>>()}};
  return i;
}

// The client half: depth slots, each with its own result, re-issued from
// its own completion (on the connection's color) until `calls` were issued.
class EchoPipeline {
 public:
  EchoPipeline(Client cl, const std::vector<char>& data, std::size_t calls, unsigned depth)
      : cl_(std::move(cl)), data_(data), calls_(calls), slots_(depth) {
    arg_.len = static_cast<u_int>(data_.size());
    arg_.data = data_.data();
  }

  void start() {
    for (std::size_t i = 0; i < slots_.size() && issued_ < calls_; ++i) issue(i);
  }
  void wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return finished_; });
  }
  bool failed() const { return failed_; }

 private:
  void issue(std::size_t slot) {
    ++issued_;
    cl_.call(SFSTEST_ECHO, &arg_, &slots_[slot],
             CallDone(wrap(cl_.connection()->color(), &EchoPipeline::done, this, slot)));
  }
  void done(std::size_t slot, RpcStatus st) {
    // r points into the reply record, valid while this callback runs.
    BytesView& r = slots_[slot];
    if (!st.ok() || r.len != data_.size() || !same_sample(r.data, data_.data(), data_.size())) {
      if (!failed_) std::fprintf(stderr, "rpc_echo_bench: echo failed: %s\n", st.message().c_str());
      failed_ = true;
    }
    r = BytesView{};
    if (++completed_ == calls_) {
      std::lock_guard lk(mu_);
      finished_ = true;
      cv_.notify_all();
      return;
    }
    if (issued_ < calls_) issue(slot);
  }

  Client cl_;
  const std::vector<char>& data_;
  BytesView arg_{};
  const std::size_t calls_;
  std::vector<BytesView> slots_;
  // On the connection's color.
  std::size_t issued_ = 0, completed_ = 0;
  bool failed_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
};

class RpcEcho {
 public:
  explicit RpcEcho(const Options& o) : rt_(RuntimeOptions{.threads = o.threads}) {
    thread_ = std::thread([this] { rt_.run(); });
    auto progs = std::make_shared<Programs>();
    Program p;
    p.iface = *echo_interface();
    // The server decodes the arguments (a view into the call record, which
    // the Call owns) and encodes a result of the same size from them.
    p.dispatch = [](Call c) { c.reply(c.args<BytesView>()); };
    progs->add(std::move(p));
    ServerOptions so;
    so.transport.read_chunk = o.read_chunk;
    server_ = Server::create(progs, so);
    TransportOptions to;
    to.read_chunk = o.read_chunk;
    if (int err = server_->listen("127.0.0.1", 0)) die(std::string("listen: ") + std::strerror(err));
    std::mutex mu;
    std::condition_variable cv;
    bool ready = false;
    int error = 0;
    connect("127.0.0.1", server_->port(), kClientColor, {}, to,
            Callback<void(std::shared_ptr<Connection>, int)>(
                [&](std::shared_ptr<Connection> c, int err) {
                  std::lock_guard lk(mu);
                  conn_ = std::move(c);
                  error = err;
                  ready = true;
                  cv.notify_all();
                },
                kClientColor));
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return ready; });
    if (!conn_) die(std::string("connect: ") + std::strerror(error));
  }
  ~RpcEcho() {
    conn_->close();
    server_->close();
    auto end = Clock::now() + std::chrono::seconds(5);
    while (server_->connections() && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    rt_.stop();
    thread_.join();
  }

  Result run(const Options& o, const std::vector<char>& data) {
    std::size_t calls = o.total / o.size;
    EchoPipeline pipe(Client(conn_, echo_interface()), data, calls, o.depth);
    double cpu0 = cpu_seconds();
    auto t0 = Clock::now();
    rt_.cpucb(Closure([&] { pipe.start(); }, kClientColor));
    pipe.wait();
    auto t1 = Clock::now();
    if (pipe.failed()) die("rpc echo returned wrong data or an error");
    return {"asmp_rpc", calls * o.size, std::chrono::duration<double>(t1 - t0).count(), cpu_seconds() - cpu0};
  }

 private:
  static constexpr color_t kClientColor = 1000;
  Runtime rt_;
  std::thread thread_;
  std::shared_ptr<Server> server_;
  std::shared_ptr<Connection> conn_;
};

// ---- plain blocking socket ---------------------------------------------------

bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n) {
    ssize_t r = ::send(fd, c, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool read_all(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n) {
    ssize_t r = ::recv(fd, c, n, 0);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

Result plain_echo(const Options& o, const std::vector<char>& data) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), al) != 0 || ::listen(lfd, 1) != 0)
    die(std::string("plain listen: ") + std::strerror(errno));
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &al);
  std::thread server([lfd, size = o.size] {
    int fd = ::accept(lfd, nullptr, nullptr);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<char> buf(size);
    std::uint32_t len;
    while (read_all(fd, &len, 4)) {
      std::size_t n = ntohl(len);
      if (n > buf.size()) buf.resize(n);
      if (!read_all(fd, buf.data(), n) || !write_all(fd, &len, 4) || !write_all(fd, buf.data(), n)) break;
    }
    ::close(fd);
  });
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), al) != 0) die("plain connect");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::size_t calls = o.total / o.size;
  std::vector<char> back(o.size);
  std::uint32_t len = htonl(static_cast<std::uint32_t>(o.size));
  double cpu0 = cpu_seconds();
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < calls; ++i) {
    // Header and payload in one system call, as an RPC client would.
    iovec iov[2] = {{&len, 4}, {const_cast<char*>(data.data()), o.size}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    ssize_t w = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) die("plain send");
    if (static_cast<std::size_t>(w) < 4 + o.size) {
      std::size_t done = static_cast<std::size_t>(w);
      if (done < 4) {
        if (!write_all(fd, reinterpret_cast<char*>(&len) + done, 4 - done)) die("plain send");
        done = 4;
      }
      if (!write_all(fd, data.data() + (done - 4), o.size - (done - 4))) die("plain send");
    }
    std::uint32_t rlen;
    if (!read_all(fd, &rlen, 4) || ntohl(rlen) != o.size || !read_all(fd, back.data(), o.size))
      die("plain echo: short reply");
    if (!same_sample(back.data(), data.data(), o.size)) die("plain echo returned wrong data");
  }
  auto t1 = Clock::now();
  double cpu = cpu_seconds() - cpu0;
  ::close(fd);
  server.join();
  ::close(lfd);
  return {"plain_socket", calls * o.size, std::chrono::duration<double>(t1 - t0).count(), cpu};
}

// ---- main --------------------------------------------------------------------

std::size_t parse_size(const char* s) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  std::string unit = end ? end : "";
  if (unit == "K" || unit == "k" || unit == "KiB") v *= 1024;
  else if (unit == "M" || unit == "MiB") v *= 1024 * 1024;
  else if (unit == "G" || unit == "GiB") v *= 1024.0 * 1024 * 1024;
  else if (!unit.empty()) die(std::string("bad size: ") + s);
  return static_cast<std::size_t>(v);
}

void usage() {
  std::printf(
      "usage: rpc_echo_bench [--size BYTES] [--depth N] [--total BYTES] [--runs N]\n"
      "                      [--threads N] [--read-chunk BYTES] [--json FILE]\n"
      "                      [--only rpc|plain]\n"
      "  --size    argument (and result) bytes per call (default 64K)\n"
      "  --depth   RPC calls outstanding (default 16)\n"
      "  --total   argument bytes per run (default 1G)\n"
      "  --runs    runs per implementation (default 3)\n"
      "  --threads runtime workers (default: one per usable CPU)\n"
      "  --read-chunk  the RPC transports' read chunk (default: TransportOptions)\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--size") o.size = parse_size(next());
    else if (a == "--depth") o.depth = static_cast<unsigned>(std::atoi(next()));
    else if (a == "--total") o.total = parse_size(next());
    else if (a == "--runs") o.runs = static_cast<unsigned>(std::atoi(next()));
    else if (a == "--threads") o.threads = static_cast<unsigned>(std::atoi(next()));
    else if (a == "--read-chunk") o.read_chunk = parse_size(next());
    else if (a == "--json") o.json = next();
    else if (a == "--only") o.only = next();
    else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      usage();
      die("unknown option " + a);
    }
  }
  if (!o.only.empty() && o.only != "rpc" && o.only != "plain") die("--only takes rpc or plain");
  if (o.size == 0 || o.size > (1u << 20) || o.depth == 0 || o.runs == 0 || o.total < o.size)
    die("need 0 < size <= 1M, depth > 0, runs > 0, total >= size");

  std::vector<char> data = payload(o.size);
  std::vector<Result> rpc, plain;
  {
    std::unique_ptr<RpcEcho> echo;
    if (o.only != "plain") echo = std::make_unique<RpcEcho>(o);
    for (unsigned r = 0; r < o.runs; ++r) {
      if (echo) rpc.push_back(echo->run(o, data));
      if (o.only != "rpc") plain.push_back(plain_echo(o, data));
    }
  }

  std::printf("rpc_echo_bench: %zu-byte args and results, %zu MiB per run, rpc depth %u, %s build\n",
              o.size, o.total >> 20, o.depth, SFS_BUILD_TYPE);
  std::printf("%-14s %10s %10s %10s %12s\n", "impl", "min MB/s", "median", "max MB/s", "CPU-s/GiB");
  for (auto* set : {&rpc, &plain}) {
    if (set->empty()) continue;
    std::vector<double> v;
    double cpu = 0, bytes = 0;
    for (auto& r : *set) {
      v.push_back(r.mbps());
      cpu += r.cpu;
      bytes += static_cast<double>(r.bytes);
    }
    std::sort(v.begin(), v.end());
    std::printf("%-14s %10.0f %10.0f %10.0f %12.2f\n", set->front().impl.c_str(), v.front(),
                v[v.size() / 2], v.back(), cpu / (bytes / (1024.0 * 1024 * 1024)));
  }
  if (!o.json.empty()) {
    std::ofstream out(o.json, std::ios::app);
    if (!out) die("cannot write " + o.json);
    for (auto* set : {&rpc, &plain}) {
      unsigned run = 0;
      for (auto& r : *set) {
        char line[512];
        std::snprintf(line, sizeof line,
                      "{\"bench\":\"rpc_echo\",\"impl\":\"%s\",\"bytes\":%zu,\"seconds\":%.6f,"
                      "\"mb_per_s\":%.1f,\"size\":%zu,\"depth\":%u,\"run\":%u,\"cpu_seconds\":%.3f,"
                      "\"build_type\":\"%s\"}",
                      r.impl.c_str(), r.bytes, r.seconds, r.mbps(), o.size,
                      r.impl == "asmp_rpc" ? o.depth : 1u, run++, r.cpu, SFS_BUILD_TYPE);
        out << line << "\n";
      }
    }
  }
  return 0;
}
