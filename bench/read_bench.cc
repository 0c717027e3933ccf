// read_bench: the SFS server benchmark of the libasync-smp paper (USENIX
// 2003) through sfsd. M protocol clients, each its own FileClient
// connection under its own color, each read a different large file of the
// export (cached in the server's page cache), K READs of S bytes
// outstanding per client, with FileClient::read (the data is a view into
// the decrypted reply record, no copy). Meanwhile one more connection times
// GETATTR round trips on a small file every ~10 ms: a busy client must not
// starve the others.
//
// What it starts (unless pointed at running servers): a private NFS-Ganesha
// (tests/nfs/ganesha_server.h, through scripts/ganesha.sh, with its
// watchdog) on a mkdtemp export holding the files, and for each measured
// run fresh sfsd processes (the built binary, SFSD_BINARY) with a fresh
// server key, handle key file and user database in a mkdtemp directory,
// pinned to CPUs with sched_setaffinity. Readers are anonymous; the files
// are world-readable. Each sfsd dies with the bench (PR_SET_PDEATHSIG); a
// reaper thread owns SIGINT/SIGTERM/SIGHUP and the overall time limit and
// stops everything on them. At the end it checks that nothing it started
// is still running and says so ("left running: none").
//
// Configurations: `--server-threads k`: one sfsd with --threads k pinned
// to k CPUs. `--copies k`: k sfsd processes with --threads 1, each pinned
// to its own CPU, same export, own ports; client i uses copy i mod k (the
// paper's N-copy upper bound). `--all`: 1 thread, 2 threads and 2 copies,
// interleaved (the order rotates each round), for --rounds R; `--configs
// t1,t2,c2` picks the interleaved set (tK: K threads, cK: K copies; p:
// "probe alone", two single-thread copies with every reader on the first
// and the probe alone on the second, so that the probe's server does
// nothing else: what the probe gets on this machine under the readers'
// load however well sfsd schedules, a floor for the probe, not a target).
//
// Figures: MB/s = 10^6 bytes per second, all clients' bytes over the time
// until the last client finished. CPU seconds are utime+stime deltas from
// /proc/PID/stat of this process (the clients), every sfsd and ganesha over
// the timed phase; cpu_s_per_gib is their sum per GiB read. Before each
// timed phase every client reads the first --warmup bytes of its file
// (untimed) so connections, buffers and windows are warm.
//
// Options:
//   --clients M (4)  --depth K (4)  --chunk S (1M)  --size BYTES (256M per file)
//   --server-threads k (2)  --copies k  --all  --configs LIST  --rounds R (3)
//   --quick          2 clients x 32 MiB, 1 round (smoke run; flags given override)
//   --json FILE      append one JSON line per run
//   --aead NAME      offer only chacha20-poly1305 or aes-256-gcm (default: the
//                    client's default offer, ChaCha20-Poly1305 first)
//   --client-threads N (0: one per CPU)  --warmup BYTES (32M)
//   --probe-interval-ms MS (10)  --timeout SECONDS (overall limit; 1800)
//   --probe-shared   run the probe's connection in the readers' runtime
//                    (default: a 1-worker runtime of its own, so that its
//                    round trips measure the server, not this process's queues)
//   --perf PREFIX    record `perf record -e cpu-clock -g` of the sfsd
//                    process(es) during each timed phase into PREFIX-<config>-r<round>.data
//   --perf-dwarf     ... with --call-graph dwarf (callers inside libc/libcrypto)
//   --sfsd PATH      sfsd binary (default: the one built with this bench)
//   --sfsd-env NAME=VALUE  (repeatable) added to each sfsd's environment,
//                    e.g. GLIBC_TUNABLES=... to try malloc settings
//   --sfsd-arg ARG   (repeatable) appended to each sfsd's command line, e.g.
//                    --sfsd-arg --backend-connections --sfsd-arg 2
//   --name @HOST%PORT,HOSTID (repeatable) --export-dir DIR
//                    use running servers (DIR is their export as this
//                    machine sees it; the files are made there and kept);
//                    --sfsd-pid PID / --ganesha-pid PID (repeatable) to count
//                    their CPU, else those columns are n/a
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../tests/nfs/ganesha_server.h"
#include "read_bench_load.h"
#include "read_bench_options.h"
#include "read_bench_procs.h"
#include "read_bench_report.h"
#include "sfs/keys.h"
#include "sfs/names.h"

#ifndef SFS_BUILD_TYPE
#define SFS_BUILD_TYPE "unknown"
#endif

namespace readbench {
namespace {

// Each 8-byte word holds word_at(file, its offset), so any chunk can be
// checked without keeping the file in memory. Kept if it already has that
// size and first word.
void make_file(const std::string& path, unsigned file, std::uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  ::fchmod(fd, 0644);  // world-readable whatever the umask: the readers are anonymous
  struct stat st{};
  std::uint64_t first = 0;
  if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) == size &&
      ::pread(fd, &first, 8, 0) == 8 && first == word_at(file, 0)) {
    ::close(fd);
    return;
  }
  if (::ftruncate(fd, 0) != 0) throw std::runtime_error("cannot truncate " + path);
  std::vector<std::uint64_t> buf((1u << 20) / 8);
  for (std::uint64_t off = 0; off < size; off += buf.size() * 8) {
    for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = word_at(file, off + i * 8);
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size() * 8, size - off));
    if (::pwrite(fd, buf.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
      throw std::runtime_error("short write to " + path);
  }
  ::close(fd);
}

// Reading it once puts it in the page cache the NFS server reads from.
void warm_local(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  std::vector<char> buf(1 << 20);
  while (::read(fd, buf.data(), buf.size()) > 0) {
  }
  ::close(fd);
}

std::string file_name(unsigned i) { return "readbench-" + std::to_string(i) + ".dat"; }

// What every run shares: the servers' files and keys, the client runtime.
struct Env {
  Options opt;
  std::string export_dir, backend_url, dir;  // dir: keys, users, logs
  pid_t ganesha_pid = 0;
  asmp::Runtime* rt = nullptr;        // the readers'
  asmp::Runtime* probe_rt = nullptr;  // the probe's
  std::vector<int> cpus;
};

struct Servers {
  std::vector<Child> procs;
  std::vector<std::string> names;
  std::vector<pid_t> pids;  // whose CPU counts as sfsd's
  std::vector<std::string> cpu_reports;  // each started sfsd's cpu_report file
};

std::string cpu_report_path(const Env& env, unsigned run_no, unsigned copy) {
  return env.dir + "/cpu-" + std::to_string(run_no) + "-" + std::to_string(copy) + ".json";
}

// Starts cfg's sfsd processes, one after the other (the first creates the
// handle key file the others then share).
bool start_servers(const Env& env, const ServerConfig& cfg, unsigned run_no, Servers* s, std::string* err) {
  if (!env.opt.names.empty()) {
    s->names = env.opt.names;
    s->pids = env.opt.sfsd_pids;
    return true;
  }
  for (unsigned i = 0; i < cfg.copies; ++i) {
    std::vector<int> cpus;
    if (cfg.copies > 1) {
      cpus.push_back(env.cpus[i % env.cpus.size()]);
    } else {
      for (unsigned c = 0; c < cfg.threads && c < env.cpus.size(); ++c) cpus.push_back(env.cpus[c]);
    }
    const std::uint16_t port = free_port();
    const std::string log = env.dir + "/sfsd-" + std::to_string(run_no) + "-" + std::to_string(i) + ".log";
    std::vector<std::string> args = {env.opt.sfsd,
                                     "--listen", "127.0.0.1:" + std::to_string(port),
                                     "--server-key", env.dir + "/server.key",
                                     "--users", env.dir + "/users",
                                     "--backend", env.backend_url,
                                     "--handle-keys", env.dir + "/handle.keys",
                                     "--threads", std::to_string(cfg.threads),
                                     "--drain-timeout", "3s",
                                     "--log-level", "warn",
                                     "--cpu-report", cpu_report_path(env, run_no, i)};
    args.insert(args.end(), env.opt.sfsd_args.begin(), env.opt.sfsd_args.end());
    Child c;
    if (!c.spawn(args, cpus, true, log, env.opt.sfsd_env)) {
      *err = "cannot fork sfsd";
      return false;
    }
    std::string name = c.first_line(std::chrono::seconds(20));
    if (name.empty() || name[0] != '@') {
      *err = "sfsd did not start (" + log + "):\n" + read_head(log, 4096);
      return false;
    }
    s->pids.push_back(c.pid());
    s->cpu_reports.push_back(cpu_report_path(env, run_no, i));
    s->names.push_back(name);
    s->procs.push_back(std::move(c));
  }
  return true;
}

struct CpuSnap {
  double clients = 0, sfsd = 0, ganesha = 0;
  bool sfsd_known = true, ganesha_known = true;
  MachineCpu machine;
  std::map<pid_t, double> sfsd_threads;
  SchedInfo sfsd_sched;
  double runq_wait_s = 0;  // every process of ours
  ColorCpu colors;         // summed over the sfsd processes we started
};

CpuSnap snap(const Env& env, const Servers& s) {
  CpuSnap c;
  c.machine = machine_cpu();
  c.clients = cpu_seconds_of(::getpid());
  for (pid_t p : s.pids) {
    for (auto [tid, v] : thread_cpu_seconds(p)) c.sfsd_threads[tid] = v;
    SchedInfo si = sched_info(p);
    c.sfsd_sched.runq_wait_s += si.runq_wait_s;
    c.sfsd_sched.voluntary += si.voluntary;
    c.sfsd_sched.involuntary += si.involuntary;
  }
  for (std::size_t i = 0; i < s.cpu_reports.size(); ++i) {
    const ColorCpu one = read_color_cpu(s.pids[i], s.cpu_reports[i]);
    if (one.color0 < 0 || (i > 0 && c.colors.color0 < 0)) {
      c.colors = {};
      break;
    }
    c.colors.color0 = std::max(c.colors.color0, 0.0) + one.color0;
    c.colors.connections = std::max(c.colors.connections, 0.0) + one.connections;
    c.colors.backend = std::max(c.colors.backend, 0.0) + one.backend;
    c.colors.overhead = std::max(c.colors.overhead, 0.0) + one.overhead;
  }
  c.runq_wait_s = c.sfsd_sched.runq_wait_s + sched_info(::getpid()).runq_wait_s +
                  (env.ganesha_pid ? sched_info(env.ganesha_pid).runq_wait_s : 0);
  if (s.pids.empty()) c.sfsd_known = false;
  for (pid_t p : s.pids) {
    double v = cpu_seconds_of(p);
    if (v < 0) c.sfsd_known = false;
    c.sfsd += std::max(v, 0.0);
  }
  std::vector<pid_t> g = env.opt.ganesha_pids;
  if (env.ganesha_pid) g.push_back(env.ganesha_pid);
  if (g.empty()) c.ganesha_known = false;
  for (pid_t p : g) {
    double v = cpu_seconds_of(p);
    if (v < 0) c.ganesha_known = false;
    c.ganesha += std::max(v, 0.0);
  }
  return c;
}

// Starts `perf record` on the sfsd processes; stopped with SIGINT.
bool start_perf(const Env& env, const Servers& s, const std::string& file, Child* perf) {
  if (env.opt.perf.empty() || s.pids.empty()) return false;
  std::string pids;
  for (pid_t p : s.pids) pids += (pids.empty() ? "" : ",") + std::to_string(p);
  std::vector<std::string> args = {"/usr/bin/perf", "record", "-q", "-e", "cpu-clock", "-g"};
  if (env.opt.perf_dwarf) {
    // Frame pointers stop at libc and libcrypto (built without them);
    // DWARF unwinding names the callers of memmove and the page faults.
    args.back() = "--call-graph";
    args.insert(args.end(), {"dwarf,16384", "-F", "499"});
  }
  args.insert(args.end(), {"-p", pids, "-o", file});
  bool ok = perf->spawn(args, {}, false, env.dir + "/perf.log");
  std::this_thread::sleep_for(300ms);  // let it attach before the timed phase
  return ok;
}

// Streams one file per client through sfsd; returns false (with *err) on
// any failure.
bool measure(Env& env, const ServerConfig& cfg, unsigned round, unsigned run_no, RunResult* out, std::string* err) {
  const Options& o = env.opt;
  Servers servers;
  if (!start_servers(env, cfg, run_no, &servers, err)) return false;

  auto shutting = std::make_shared<std::atomic<bool>>(false);
  std::vector<std::shared_ptr<fs::FileClient>> clients;
  auto conn = [&](asmp::Runtime& rt, unsigned server, asmp::color_t color, std::shared_ptr<fs::FileClient>* c) {
    auto name = sfs::parse_name(servers.names[server]);
    if (!name) {
      *err = "bad name '" + servers.names[server] + "': " + name.error();
      return false;
    }
    fs::FileClientOptions fo;
    fo.server = name.value();
    fo.color = color;
    if (!o.aead.empty()) fo.offer = {*sfs::aead_from_name(o.aead)};
    fo.log = [shutting](const std::string& line) {
      if (!*shutting) std::fprintf(stderr, "read_bench: client: %s\n", line.c_str());
    };
    auto r = connect_sync(rt, std::move(fo), std::chrono::seconds(20));
    if (!r.ok()) {
      *err = "connect to " + servers.names[server] + ": " + r.error();
      return false;
    }
    *c = r.value();
    return true;
  };
  // Client i under color 1 + i; the probe under color 1000.
  std::vector<fs::Handle> fhs;
  for (unsigned i = 0; i < o.clients; ++i) {
    std::shared_ptr<fs::FileClient> c;
    const std::size_t server = cfg.probe_alone ? 0 : i % servers.names.size();
    if (!conn(*env.rt, server, 1 + i, &c)) return false;
    auto fh = lookup_sync(*c, c->root().fh, file_name(i));
    if (!fh.ok()) {
      *err = fh.error();
      return false;
    }
    clients.push_back(c);
    fhs.push_back(fh.value());
    if (i == 0) out->aead = std::string(sfs::aead_name(c->session().aead())) + " (" +
                            std::string(sfs::aead_impl_name(c->session().impl())) + ")";
  }
  std::shared_ptr<fs::FileClient> probe_client;
  const std::size_t probe_server = cfg.probe_alone ? servers.names.size() - 1 : o.clients % servers.names.size();
  if (!conn(*env.probe_rt, probe_server, 1000, &probe_client)) return false;
  auto probe_fh = lookup_sync(*probe_client, probe_client->root().fh, "probe.dat");
  if (!probe_fh.ok()) {
    *err = probe_fh.error();
    return false;
  }

  auto stream = [&](std::uint64_t bytes, std::vector<std::shared_ptr<Reader>>* readers) {
    auto latch = std::make_shared<Latch>(o.clients);
    for (unsigned i = 0; i < o.clients; ++i)
      readers->push_back(std::make_shared<Reader>(clients[i], fhs[i], i, bytes, o.chunk, o.depth, 1 + i, latch));
    for (auto& r : *readers) r->start(*env.rt);
    // Generous: 60 s plus 10 MB/s for all clients together.
    auto limit = std::chrono::seconds(60 + bytes * o.clients / 10'000'000);
    if (!latch->wait(std::chrono::duration_cast<std::chrono::milliseconds>(limit))) {
      *err = "the readers did not finish within " + std::to_string(limit.count()) + " s";
      return false;
    }
    for (auto& r : *readers)
      if (!r->error().empty()) {
        *err = r->error();
        return false;
      }
    return true;
  };

  std::vector<std::shared_ptr<Reader>> warm, readers;
  if (o.warmup && !stream(std::min(o.warmup, o.size), &warm)) return false;

  // The probe alone first: its round trip with nothing else going on.
  auto idle = std::make_shared<Probe>(probe_client, probe_fh.value(), 1000, std::chrono::milliseconds(o.probe_ms));
  idle->start(*env.probe_rt);
  std::this_thread::sleep_for(std::chrono::milliseconds(30 * o.probe_ms));
  unsigned idle_failures = 0;
  out->probe_idle = summarize_latency(idle->stop(&idle_failures));

  Child perf;
  const std::string perf_file = o.perf + "-" + cfg.key() + "-r" + std::to_string(round) + ".data";
  const bool perf_on = start_perf(env, servers, perf_file, &perf);
  auto probe = std::make_shared<Probe>(probe_client, probe_fh.value(), 1000, std::chrono::milliseconds(o.probe_ms));
  const double load1 = load_average();
  const CpuSnap c0 = snap(env, servers);
  const auto t0 = Clock::now();
  probe->start(*env.probe_rt);
  const bool ok = stream(o.size, &readers);
  const auto t1 = Clock::now();
  const CpuSnap c1 = snap(env, servers);
  unsigned probe_failures = 0;
  std::vector<double> lat = probe->stop(&probe_failures);
  if (perf_on) perf.stop(SIGINT, 10s);
  if (!ok) return false;

  out->config = cfg;
  out->round = round;
  out->load1 = load1;
  out->when = utc_now();
  out->bytes = 0;
  for (auto& r : readers) out->bytes += r->bytes();
  out->seconds = std::chrono::duration<double>(t1 - t0).count();
  out->cpu_clients = c1.clients - c0.clients;
  out->cpu_sfsd = c1.sfsd_known && c0.sfsd_known ? c1.sfsd - c0.sfsd : -1;
  out->cpu_ganesha = c1.ganesha_known && c0.ganesha_known ? c1.ganesha - c0.ganesha : -1;
  for (auto [tid, v] : c1.sfsd_threads)
    if (auto it = c0.sfsd_threads.find(tid); it != c0.sfsd_threads.end())
      out->sfsd_thread_util.push_back((v - it->second) / out->seconds);
  std::sort(out->sfsd_thread_util.rbegin(), out->sfsd_thread_util.rend());
  out->steal_s = c1.machine.steal - c0.machine.steal;
  out->runq_wait_s = c1.runq_wait_s - c0.runq_wait_s;
  out->sfsd_runq_wait_s = c1.sfsd_sched.runq_wait_s - c0.sfsd_sched.runq_wait_s;
  out->sfsd_sleeps = c1.sfsd_sched.voluntary - c0.sfsd_sched.voluntary;
  out->sfsd_preempted = c1.sfsd_sched.involuntary - c0.sfsd_sched.involuntary;
  if (c0.colors.color0 >= 0 && c1.colors.color0 >= 0) {
    out->color0_s = c1.colors.color0 - c0.colors.color0;
    out->connections_s = c1.colors.connections - c0.colors.connections;
    out->backend_s = c1.colors.backend - c0.colors.backend;
    out->overhead_s = c1.colors.overhead - c0.colors.overhead;
  }
  if (out->cpu_complete() && env.opt.names.empty())
    out->others_cpu_s = (c1.machine.busy - c0.machine.busy) - out->cpu_total();
  double slowest = 1e300, fastest = 0;
  for (auto& r : readers) {
    double mbps = static_cast<double>(r->bytes()) / 1e6 / std::chrono::duration<double>(r->finished() - t0).count();
    slowest = std::min(slowest, mbps);
    fastest = std::max(fastest, mbps);
  }
  out->client_mb_per_s_min = slowest;
  out->client_mb_per_s_max = fastest;
  out->probe = summarize_latency(lat);
  out->probe_failures += idle_failures;
  out->probe_failures += probe_failures;

  // Closing the clients first lets each sfsd drain at once on SIGTERM.
  *shutting = true;
  for (auto& c : clients) c->close();
  probe_client->close();
  std::this_thread::sleep_for(50ms);
  for (auto& p : servers.procs) {
    int st = p.stop(SIGTERM, 10s);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
      std::fprintf(stderr, "read_bench: sfsd did not exit cleanly on SIGTERM (wait status %d)\n", st);
  }
  return true;
}

// The files, keys and user database; ganesha unless given running servers.
bool prepare(Env& env, sfs_test::GaneshaServer& ganesha, std::string* err) {
  const Options& o = env.opt;
  if (o.names.empty()) {
    if (std::string why = sfs_test::GaneshaServer::unavailable_reason(); !why.empty()) {
      *err = "cannot start ganesha: " + why;
      return false;
    }
    if (!std::filesystem::exists(o.sfsd)) {
      *err = "no sfsd binary at " + o.sfsd + " (build the sfsd target, or --sfsd PATH)";
      return false;
    }
    if (!ganesha.prepare(err)) return false;
    // If the reaper ends the bench: stop ganesha, then remove its directory
    // (the export with the files in it).
    Registry::get().on_abort([&ganesha] { ganesha.stop(); });
    Registry::get().on_abort([root = std::filesystem::path(ganesha.export_dir()).parent_path()] {
      std::error_code ec;
      std::filesystem::remove_all(root, ec);
    });
    {
      ScopedUnblock open_mask;  // ganesha.sh (popen) must not inherit the blocked signals
      if (!ganesha.start(err)) {
        // Seen once under load ("ganesha.nfsd exited during startup", empty
        // log): one more try before giving up.
        std::fprintf(stderr, "read_bench: ganesha did not start, trying once more: %s\n", err->c_str());
        std::this_thread::sleep_for(1s);
        if (!ganesha.start(err)) return false;
      }
    }
    std::ifstream pf(ganesha.state_dir() + "/ganesha.pid");
    pf >> env.ganesha_pid;
    env.export_dir = ganesha.export_dir();
  } else {
    env.export_dir = o.export_dir;
  }
  env.export_dir = std::filesystem::canonical(env.export_dir).string();
  // Anonymous readers must get through our own export's root; someone
  // else's (--export-dir) is left as it is.
  if (o.names.empty()) ::chmod(env.export_dir.c_str(), 0755);
  std::fprintf(stderr, "read_bench: %u files of %llu MiB in %s (made once, then read locally to cache them)\n",
               o.clients, static_cast<unsigned long long>(o.size >> 20), env.export_dir.c_str());
  try {
    for (unsigned i = 0; i < o.clients; ++i) {
      make_file(env.export_dir + "/" + file_name(i), i, o.size);
      warm_local(env.export_dir + "/" + file_name(i));
    }
    make_file(env.export_dir + "/probe.dat", 999, 4096);
  } catch (const std::exception& e) {
    *err = e.what();
    return false;
  }
  if (!o.names.empty()) return true;

  std::string tmpl = (std::filesystem::temp_directory_path() / "sfs-readbench.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    *err = "mkdtemp failed";
    return false;
  }
  env.dir = tmpl;
  Registry::get().on_abort([dir = env.dir] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
  // Printed so that a caller (the smoke test) can check afterwards that no
  // process still names these directories.
  std::fprintf(stderr, "read_bench: sfsd dir %s, ganesha state %s\n", env.dir.c_str(), ganesha.state_dir().c_str());
  env.backend_url = "nfs://127.0.0.1" + env.export_dir + "?nfsport=" + std::to_string(ganesha.nfs_port()) +
                    "&mountport=" + std::to_string(ganesha.mnt_port());
  if (auto s = sfs::write_key_file(env.dir + "/server.key", sfs::ServerKey::generate()); !s) {
    *err = s.error();
    return false;
  }
  // One user, never logged in (the readers are anonymous): sfsd insists on
  // a readable user database.
  auto user = sfs::UserKey::generate();
  std::ofstream(env.dir + "/users") << sfs::format_user_public_key(user.public_key()) << " bench 1000 1000\n";
  return true;
}

}  // namespace
}  // namespace readbench

int main(int argc, char** argv) {
  using namespace readbench;
  Env env;
  env.opt = parse(argc, argv);
  const Options& o = env.opt;
  env.cpus = allowed_cpus();
  ::signal(SIGPIPE, SIG_IGN);

  int rc = 0;
  {
    // Outlives the reaper, whose clean-ups refer to it.
    sfs_test::GaneshaServer ganesha;
    // From here on SIGINT/SIGTERM/SIGHUP and the time limit stop everything
    // (prepare() registers what to undo as it goes).
    Reaper reaper(std::chrono::seconds(o.timeout_s));
    std::string err;
    if (!prepare(env, ganesha, &err)) {
      std::fprintf(stderr, "read_bench: %s\n", err.c_str());
      rc = 1;
    }

    std::vector<RunResult> results;
    std::vector<ServerConfig> cfgs = configurations(o);
    if (rc == 0) {
      asmp::RuntimeOptions ro;
      ro.threads = o.client_threads;
      asmp::Runtime rt(ro);
      env.rt = &rt;
      std::thread loop([&] { rt.run(); });
      // The probe's own single-worker runtime, so that its round trips
      // measure the server and not the queues of the busy clients'
      // workers in this process (--probe-shared: the clients' runtime).
      std::optional<asmp::Runtime> prt;
      std::thread probe_loop;
      if (o.probe_shared) {
        env.probe_rt = &rt;
      } else {
        prt.emplace(asmp::RuntimeOptions{.threads = 1});
        env.probe_rt = &*prt;
        probe_loop = std::thread([&] { prt->run(); });
      }
      std::FILE* json = o.json.empty() ? nullptr : std::fopen(o.json.c_str(), "a");
      unsigned run_no = 0;
      for (unsigned round = 1; rc == 0 && round <= o.rounds; ++round) {
        for (std::size_t k = 0; rc == 0 && k < cfgs.size(); ++k) {
          // The order rotates each round so that no configuration always
          // runs right after another.
          const ServerConfig& cfg = cfgs[(k + round - 1) % cfgs.size()];
          RunResult r;
          std::fprintf(stderr, "read_bench: round %u/%u, %s...\n", round, o.rounds, cfg.label.c_str());
          if (!measure(env, cfg, round, ++run_no, &r, &err)) {
            if (aborting()) std::this_thread::sleep_for(std::chrono::hours(1));  // the reaper exits
            std::fprintf(stderr, "read_bench: %s, round %u: %s\n", cfg.label.c_str(), round, err.c_str());
            rc = 1;
            break;
          }
          print_run(stderr, r);
          if (json) write_json(json, o, r, SFS_BUILD_TYPE);
          results.push_back(std::move(r));
        }
      }
      if (json) std::fclose(json);
      std::this_thread::sleep_for(50ms);  // let the clients' closes run
      rt.stop();
      loop.join();
      if (prt) {
        prt->stop();
        probe_loop.join();
      }
    }
    if (rc == 0) print_table(stdout, o, cfgs, results);
    kill_registered_children();  // none, unless a failure left one
    // ganesha.sh's processes: the server, its watchdog, an rpcbind it kept.
    std::vector<std::pair<std::string, pid_t>> theirs;
    if (ganesha.running())
      for (const char* what : {"ganesha", "watch", "rpcbind"}) {
        std::ifstream pf(ganesha.state_dir() + "/" + what + ".pid");
        pid_t p = 0;
        if (pf >> p) theirs.emplace_back(what, p);
      }
    ganesha.stop();
    reaper.finish();
    if (!env.dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(env.dir, ec);
    }
    // Whatever was started must be gone now.
    std::string left;
    for (auto& [what, p] : theirs)
      if (running(p)) left += " " + what + "(" + std::to_string(p) + ")";
    for (pid_t p : Registry::get().snapshot()) left += " child(" + std::to_string(p) + ")";
    std::printf("left running: %s\n", left.empty() ? "none" : left.c_str());
    if (!left.empty()) rc = 1;
  }
  return rc;
}
