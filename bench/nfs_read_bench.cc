// nfs_read_bench: reads one large, cached file from a loopback NFS-Ganesha
// through asmp::nfs::NfsClient (K reads of S bytes outstanding) and, in the
// same run, with nfs-cat (libnfs-utils) as the peer. Prints a table of
// min/median/max MB/s over the runs and writes one JSON line per run.
//
//   nfs_read_bench [--size 1G] [--depth 8] [--chunk 1M] [--runs 3]
//                  [--threads 2] [--cb-color 1] [--json FILE]
//                  [--nfs-port N --mnt-port M --export DIR]   use a running ganesha
//
// Without --nfs-port it starts its own ganesha (scripts/ganesha.sh, free
// port pair in 300..511, everything under a mkdtemp dir) and stops it at
// the end, also on SIGINT/SIGTERM. With --nfs-port, DIR is the exported
// directory as both the server and this machine see it; the bench file is
// created there (bench.dat) and left in place.
//
// The client runs under color 0 and the read completions under --cb-color
// (default 1: a hop per completion, as in sfsd where replies go to the
// connection's color; 0 puts both on one color, so each next read is issued
// without a hop).
//
// MB/s is 10^6 bytes per second. CPU seconds are the client's (this
// process, or the nfs-cat child) and, when the bench started ganesha, the
// server's, both per GiB read.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "../tests/nfs/ganesha_server.h"
#include "asmp/nfs.h"

namespace {

using namespace std::chrono_literals;
using asmp::nfs::Buffer;
using asmp::nfs::Done;
using asmp::nfs::FileHandle;
using asmp::nfs::NfsClient;
using asmp::nfs::ReadOk;
using asmp::nfs::Result;

struct Args {
  std::uint64_t size = 1ull << 30;
  unsigned depth = 8;
  std::uint32_t chunk = 1u << 20;
  unsigned runs = 3;
  unsigned threads = 2;
  asmp::color_t cb_color = 1;
  std::string json;
  std::uint16_t nfs_port = 0, mnt_port = 0;
  std::string export_dir;
};

std::uint64_t parse_size(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::uint64_t mult = 1;
  if (end && *end) {
    switch (*end) {
      case 'k': case 'K': mult = 1ull << 10; break;
      case 'm': case 'M': mult = 1ull << 20; break;
      case 'g': case 'G': mult = 1ull << 30; break;
      default: throw std::invalid_argument("bad size '" + s + "' (use e.g. 512M, 1G)");
    }
  }
  return static_cast<std::uint64_t>(v * static_cast<double>(mult));
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "nfs_read_bench: %s\nusage: nfs_read_bench [--size 1G] [--depth 8] [--chunk 1M] "
               "[--runs 3] [--threads 2] [--cb-color 1] [--json FILE]\n"
               "       [--nfs-port N --mnt-port M --export DIR]\n",
               msg);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + k).c_str());
      return argv[++i];
    };
    if (k == "--size") a.size = parse_size(val());
    else if (k == "--depth") a.depth = static_cast<unsigned>(std::stoul(val()));
    else if (k == "--chunk") a.chunk = static_cast<std::uint32_t>(parse_size(val()));
    else if (k == "--runs") a.runs = static_cast<unsigned>(std::stoul(val()));
    else if (k == "--threads") a.threads = static_cast<unsigned>(std::stoul(val()));
    else if (k == "--cb-color") a.cb_color = static_cast<asmp::color_t>(std::stoul(val()));
    else if (k == "--json") a.json = val();
    else if (k == "--nfs-port") a.nfs_port = static_cast<std::uint16_t>(std::stoul(val()));
    else if (k == "--mnt-port") a.mnt_port = static_cast<std::uint16_t>(std::stoul(val()));
    else if (k == "--export") a.export_dir = val();
    else if (k == "-h" || k == "--help") usage("help");
    else usage(("unknown argument " + k).c_str());
  }
  if (a.depth == 0 || a.chunk == 0 || a.runs == 0 || a.size == 0) usage("values must be > 0");
  if (a.nfs_port && (!a.mnt_port || a.export_dir.empty()))
    usage("--nfs-port needs --mnt-port and --export");
  return a;
}

sfs_test::GaneshaServer* g_server = nullptr;
void stop_and_exit(int sig) {
  if (g_server) g_server->stop();
  signal(sig, SIG_DFL);
  raise(sig);
}

// Every 8-byte word of the file holds its own offset, so that any chunk can
// be checked without keeping the file in memory.
void make_file(const std::string& path, std::uint64_t size) {
  struct stat st{};
  if (stat(path.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) == size) return;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  std::vector<std::uint64_t> buf((1u << 20) / 8);
  for (std::uint64_t off = 0; off < size; off += buf.size() * 8) {
    for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = off + i * 8;
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size() * 8, size - off));
    if (pwrite(fd, buf.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
      throw std::runtime_error("short write to " + path);
  }
  close(fd);
}

void warm_local(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  std::vector<char> buf(1 << 20);
  while (read(fd, buf.data(), buf.size()) > 0) {
  }
  close(fd);
}

double cpu_seconds_self() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime + stime of a process from /proc (0 if unknown).
double cpu_seconds_of(pid_t pid) {
  if (pid <= 0) return 0;
  std::string s;
  if (std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r")) {
    char buf[1024];
    if (std::fgets(buf, sizeof buf, f)) s = buf;
    std::fclose(f);
  }
  auto p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::vector<std::string> fields;
  std::string cur;
  if (p + 2 >= s.size()) return 0;
  for (char ch : s.substr(p + 2)) {
    if (ch == ' ') {
      fields.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (fields.size() < 13) return 0;
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;  // fields 14, 15 of stat
}

pid_t ganesha_pid(const std::string& state_dir) {
  std::ifstream f(state_dir + "/ganesha.pid");
  pid_t p = 0;
  f >> p;
  return p;
}

struct Sample {
  double seconds = 0;
  double client_cpu = 0;
  double server_cpu = 0;
  std::uint64_t bytes = 0;
};

// K reads outstanding; each completion (under color_) issues the next read
// into the buffer it just got back, so no buffer is allocated after the
// first K.
class PipelinedRead {
 public:
  PipelinedRead(NfsClient& c, FileHandle fh, std::uint64_t size, std::uint32_t chunk, unsigned depth,
                asmp::color_t color)
      : c_(c), fh_(fh), size_(size), chunk_(chunk), depth_(depth), color_(color) {}

  // Returns an empty string on success, else what went wrong.
  std::string run() {
    // Start from color_ so the state below is only touched there.
    asmp::Runtime& rt = *c_.options().runtime;
    rt.cpucb(asmp::Closure([this] {
      for (unsigned i = 0; i < depth_ && next_ < size_; ++i) issue(Buffer());
    }, color_));
    auto f = done_.get_future();
    if (f.wait_for(600s) != std::future_status::ready) return "no completion within 600 s";
    return error_;
  }
  std::uint64_t bytes() const { return bytes_; }

 private:
  void issue(Buffer b) {
    std::uint64_t off = next_;
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_, size_ - off));
    next_ += n;
    ++inflight_;
    c_.read(asmp::nfs::Cred(0, 0), fh_, off, n,
            Done<ReadOk>(asmp::wrap(color_, &PipelinedRead::on_read, this, off, n)), std::move(b));
  }

  void on_read(std::uint64_t off, std::uint32_t n, Result<ReadOk> r) {
    --inflight_;
    if (!r.ok()) {
      if (error_.empty()) error_ = "READ at " + std::to_string(off) + ": " + r.error.describe();
    } else if (r.value.count != n || !check(off, r.value.data)) {
      if (error_.empty()) error_ = "READ at " + std::to_string(off) + ": wrong data or short read";
    } else {
      bytes_ += n;
    }
    if (error_.empty() && next_ < size_) {
      issue(std::move(r.value.data));
    } else if (inflight_ == 0) {
      done_.set_value();
    }
  }

  static bool check(std::uint64_t off, const Buffer& b) {
    if (b.size() < 8) return true;
    std::uint64_t first, last;
    std::memcpy(&first, b.data(), 8);
    std::size_t lo = (b.size() - 8) & ~std::size_t{7};
    std::memcpy(&last, b.data() + lo, 8);
    return first == off && last == off + lo;
  }

  NfsClient& c_;
  FileHandle fh_;
  std::uint64_t size_;
  std::uint32_t chunk_;
  unsigned depth_;
  asmp::color_t color_;
  std::uint64_t next_ = 0, bytes_ = 0;
  unsigned inflight_ = 0;
  std::string error_;
  std::promise<void> done_;
};

template <class T, class Issue>
Result<T> sync(Issue issue) {
  auto p = std::make_shared<std::promise<Result<T>>>();
  auto f = p->get_future();
  issue(Done<T>([p](Result<T> r) { p->set_value(std::move(r)); }, 1));
  f.wait();
  return f.get();
}

// Runs nfs-cat URL > /dev/null; returns wall seconds and child CPU seconds.
bool run_nfs_cat(const std::string& url, double* seconds, double* cpu) {
  rusage before{}, after{};
  getrusage(RUSAGE_CHILDREN, &before);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execlp("nfs-cat", "nfs-cat", url.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  getrusage(RUSAGE_CHILDREN, &after);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  *cpu = tv(after.ru_utime) - tv(before.ru_utime) + tv(after.ru_stime) - tv(before.ru_stime);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void print_row(const std::string& impl, std::vector<Sample> s, bool server_known) {
  std::vector<double> mbps;
  double ccpu = 0, scpu = 0;
  for (auto& x : s) {
    mbps.push_back(static_cast<double>(x.bytes) / 1e6 / x.seconds);
    ccpu += x.client_cpu / (static_cast<double>(x.bytes) / (1 << 30));
    scpu += x.server_cpu / (static_cast<double>(x.bytes) / (1 << 30));
  }
  std::sort(mbps.begin(), mbps.end());
  std::string server = "n/a";
  if (server_known) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", scpu / static_cast<double>(s.size()));
    server = b;
  }
  std::printf("%-12s %8.0f %8.0f %8.0f %16.2f %16s\n", impl.c_str(), mbps.front(),
              mbps[mbps.size() / 2], mbps.back(), ccpu / static_cast<double>(s.size()),
              server.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);

  sfs_test::GaneshaServer own;
  std::string export_dir = args.export_dir;
  std::uint16_t nfs_port = args.nfs_port, mnt_port = args.mnt_port;
  pid_t server_pid = 0;
  if (!nfs_port) {
    std::string why = sfs_test::GaneshaServer::unavailable_reason();
    if (!why.empty()) {
      std::fprintf(stderr, "nfs_read_bench: cannot start ganesha: %s\n", why.c_str());
      return 1;
    }
    std::string err;
    if (!own.prepare(&err)) {
      std::fprintf(stderr, "nfs_read_bench: %s\n", err.c_str());
      return 1;
    }
    g_server = &own;
    for (int sig : {SIGINT, SIGTERM, SIGSEGV, SIGABRT}) signal(sig, stop_and_exit);
    export_dir = own.export_dir();
    if (!own.start(&err)) {
      std::fprintf(stderr, "nfs_read_bench: %s\n", err.c_str());
      return 1;
    }
    nfs_port = own.nfs_port();
    mnt_port = own.mnt_port();
    server_pid = ganesha_pid(own.state_dir());
  }
  export_dir = std::filesystem::canonical(export_dir).string();
  const std::string path = export_dir + "/bench.dat";
  std::fprintf(stderr, "creating %s (%llu bytes)...\n", path.c_str(),
               static_cast<unsigned long long>(args.size));
  make_file(path, args.size);
  warm_local(path);

  asmp::RuntimeOptions ro;
  ro.threads = args.threads;
  asmp::Runtime rt(ro);
  std::thread loop([&] { rt.run(); });

  int rc = 0;
  std::vector<Sample> ours, peer;
  std::FILE* json = args.json.empty() ? nullptr : std::fopen(args.json.c_str(), "a");
  {
    asmp::nfs::NfsOptions o;
    o.nfs_port = nfs_port;
    o.mount_port = mnt_port;
    o.export_path = export_dir;
    o.runtime = &rt;
    o.color = 0;
    NfsClient client(o);
    auto m = sync<FileHandle>([&](auto d) { client.mount(std::move(d)); });
    if (!m.ok()) {
      std::fprintf(stderr, "nfs_read_bench: mount failed: %s\n", m.error.describe().c_str());
      rc = 1;
    }
    FileHandle fh;
    if (rc == 0) {
      auto l = sync<asmp::nfs::LookupOk>(
          [&](auto d) { client.lookup(asmp::nfs::Cred(0, 0), m.value, "bench.dat", std::move(d)); });
      if (!l.ok()) {
        std::fprintf(stderr, "nfs_read_bench: LOOKUP bench.dat: %s\n", l.error.describe().c_str());
        rc = 1;
      }
      fh = l.value.fh;
    }
    const std::string url = "nfs://127.0.0.1" + export_dir + "/bench.dat?nfsport=" +
                            std::to_string(nfs_port) + "&mountport=" + std::to_string(mnt_port);
    // One untimed pass of each warms ganesha's caches and both code paths.
    for (unsigned run = 0; rc == 0 && run <= args.runs; ++run) {
      Sample s;
      double c0 = cpu_seconds_self(), s0 = cpu_seconds_of(server_pid);
      auto t0 = std::chrono::steady_clock::now();
      PipelinedRead pr(client, fh, args.size, args.chunk, args.depth, args.cb_color);
      std::string err = pr.run();
      s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      s.client_cpu = cpu_seconds_self() - c0;
      s.server_cpu = cpu_seconds_of(server_pid) - s0;
      s.bytes = pr.bytes();
      if (!err.empty()) {
        std::fprintf(stderr, "nfs_read_bench: asmp_nfs run %u: %s\n", run, err.c_str());
        rc = 1;
        break;
      }
      if (run > 0) ours.push_back(s);

      Sample p;
      s0 = cpu_seconds_of(server_pid);
      if (!run_nfs_cat(url, &p.seconds, &p.client_cpu)) {
        std::fprintf(stderr, "nfs_read_bench: nfs-cat %s failed\n", url.c_str());
        rc = 1;
        break;
      }
      p.server_cpu = cpu_seconds_of(server_pid) - s0;
      p.bytes = args.size;
      if (run > 0) peer.push_back(p);

      if (json && run > 0) {
        for (auto [impl, x] : {std::pair<const char*, Sample&>{"asmp_nfs", s}, {"nfs-cat", p}}) {
          std::fprintf(json,
                       "{\"bench\":\"nfs_read\",\"impl\":\"%s\",\"run\":%u,\"bytes\":%llu,"
                       "\"seconds\":%.6f,\"mb_per_s\":%.1f,\"depth\":%u,\"chunk\":%u,"
                       "\"threads\":%u,\"cb_color\":%u,\"client_cpu_s\":%.3f,\"server_cpu_s\":%.3f}\n",
                       impl, run, static_cast<unsigned long long>(x.bytes), x.seconds,
                       static_cast<double>(x.bytes) / 1e6 / x.seconds,
                       std::string(impl) == "asmp_nfs" ? args.depth : 1u,
                       std::string(impl) == "asmp_nfs" ? args.chunk : 0u, args.threads, args.cb_color,
                       x.client_cpu, x.server_cpu);
        }
        std::fflush(json);
      }
    }
  }
  if (json) std::fclose(json);
  std::this_thread::sleep_for(50ms);  // let the client's close run
  rt.stop();
  loop.join();

  if (rc == 0) {
    std::printf("nfs_read_bench: %llu MiB file, %u runs, asmp_nfs depth %u x %u KiB, %u threads, "
                "completions under color %u\n",
                static_cast<unsigned long long>(args.size >> 20), args.runs, args.depth,
                args.chunk >> 10, args.threads, args.cb_color);
    std::printf("%-12s %8s %8s %8s %16s %16s\n", "impl", "min MB/s", "median", "max",
                "client CPU-s/GiB", "server CPU-s/GiB");
    print_row("asmp_nfs", ours, server_pid > 0);
    print_row("nfs-cat", peer, server_pid > 0);
  }
  own.stop();
  g_server = nullptr;
  return rc;
}
