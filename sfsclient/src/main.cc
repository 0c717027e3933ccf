// sfsclient: mounts SFS servers under /sfs with FUSE. See `sfsclient
// --help` and docs/sfsclient.md.
//
//   sfsclient mount [--config FILE] [--foreground] [FLAGS] [MOUNTPOINT]
//   sfsclient umount [MOUNTPOINT]
//
// Runs as root (FUSE needs it here), with allow_other so every local user
// reaches the mount; each user's calls carry that user's own login, signed
// by their agent (sfsagent), never by a key sfsclient reads itself.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "client_config.h"
#include "fuse_driver.h"
#include "sfs_fs.h"
#include "signer.h"

namespace {

using sfsclient::ClientConfig;

// True if mountpoint is a mount of ours (fuse.sfs) right now.
bool mounted_here(const std::string& mp) {
  std::ifstream in("/proc/self/mounts");
  std::string dev, dir, type, rest;
  while (in >> dev >> dir >> type && std::getline(in, rest))
    if (dir == mp && type == "fuse.sfs") return true;
  return false;
}

// The mount's read-ahead: 1 MiB requests for sequential reads (the kernel
// default of 128 KiB would cut every read into eight). The device number
// comes from mountinfo: a stat() of the mount point would ask our own file
// system, which is not serving yet.
void set_read_ahead(const std::string& mp, unsigned kb, const sfs::LogSink& log) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, dir;
    if (!(f >> id >> parent >> devno >> root >> dir) || dir != mp) continue;
    std::ofstream out("/sys/class/bdi/" + devno + "/read_ahead_kb");
    out << kb << "\n";
    if (!out) log("sfsclient: could not set read_ahead_kb of " + mp + " (bdi " + devno + ")");
  }
}

// The FUSE connection number of the mount at mp ("" if none), from
// mountinfo (a stat() would wait on a daemon that does not answer).
std::string fuse_connection(const std::string& mp) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, dir;
    if (f >> id >> parent >> devno >> root >> dir && dir == mp) return devno.substr(devno.find(':') + 1);
  }
  return "";
}

int do_umount(std::string mp) {
  if (char* real = ::realpath(mp.c_str(), nullptr)) {
    mp = real;
    std::free(real);
  }
  const std::string conn = fuse_connection(mp);
  // Lazy: works even with calls pending or the mount busy.
  if (::umount2(mp.c_str(), MNT_DETACH) != 0) {
    const int err = errno;
    if (err == EINVAL) {
      std::fprintf(stderr, "sfsclient: %s is not mounted\n", mp.c_str());
      return 1;
    }
    std::fprintf(stderr, "sfsclient: cannot unmount %s: %s\n", mp.c_str(), std::strerror(err));
    return 1;
  }
  if (conn.empty()) return 0;
  // Files still open keep a detached mount (and its daemon) alive; so does
  // a daemon that no longer answers. End the connection: the daemon exits,
  // and those files answer ENOTCONN, as after a crash. Never a mount that
  // needs a reboot.
  ::mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, nullptr);
  const std::string dir = "/sys/fs/fuse/connections/" + conn;
  for (int i = 0; i < 20 && ::access(dir.c_str(), F_OK) == 0; ++i) ::usleep(100 * 1000);
  if (::access(dir.c_str(), F_OK) == 0) std::ofstream(dir + "/abort") << "1\n";
  return 0;
}

int do_mount(ClientConfig cfg) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "sfsclient: mount must run as root (FUSE needs it on this system)\n");
    return 1;
  }
  ::mkdir(cfg.mountpoint.c_str(), 0755);
  // The kernel names mounts by their resolved path.
  if (char* real = ::realpath(cfg.mountpoint.c_str(), nullptr)) {
    cfg.mountpoint = real;
    std::free(real);
  }
  if (mounted_here(cfg.mountpoint)) {
    std::fprintf(stderr, "sfsclient: %s is already mounted (sfsclient umount %s first)\n",
                 cfg.mountpoint.c_str(), cfg.mountpoint.c_str());
    return 1;
  }
  std::string opts = "allow_other,default_permissions,fsname=sfs,subtype=sfs,max_read=1048576";
  std::vector<std::string> argv_s = {"sfsclient", "-o", opts};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  // The log: stderr in the foreground, else the log file.
  FILE* log_file = stderr;
  if (!cfg.foreground) {
    log_file = std::fopen(cfg.log_file.c_str(), "a");
    if (!log_file) {
      std::fprintf(stderr, "sfsclient: cannot open log file %s: %s\n", cfg.log_file.c_str(), std::strerror(errno));
      return 1;
    }
  }
  auto log_mu = std::make_shared<std::mutex>();
  sfs::LogSink log = [log_file, log_mu](const std::string& line) {
    std::lock_guard lk(*log_mu);
    std::fprintf(log_file, "%s\n", line.c_str());
    std::fflush(log_file);
  };

  // The runtime exists before the fork below, but starts no thread until
  // run(); so does the agents' registration socket.
  asmp::RuntimeOptions ro;
  ro.threads = cfg.threads;
  // A daemon shares its cores (with its clients, the NFS server, ...):
  // sleep when idle rather than spin (docs/architecture.md, "Sleep").
  ro.idle_spins = 0;
  asmp::Runtime rt(ro);
  sfsclient::FsOptions fo;
  fo.timeout = cfg.timeout;
  fo.hard = cfg.hard;
  fo.log = log;
  fo.revoked_dir = cfg.revoked_dir;
  fo.max_write_behind = std::size_t{cfg.write_behind_mb} << 20;
  fo.max_uncommitted = std::size_t{cfg.uncommitted_mb} << 20;
  fo.read_ahead = static_cast<std::uint32_t>(std::min<std::uint64_t>(cfg.read_ahead_kb, 1u << 20) * 1024);
  fo.connections = cfg.connections ? cfg.connections : std::clamp(rt.threads(), 1u, 4u);
  // Agents: the registration socket every user's sfsagent connects to.
  // An agent registering: users anonymous for want of one log in (set to
  // the file system below, before the runtime runs).
  std::function<void(uid_t)> registered;
  auto made = sfsclient::make_agent_signer(cfg, rt, fo.color, log, [&registered](uid_t uid) {
    if (registered) registered(uid);
  });
  if (!made.ok()) {
    std::fprintf(stderr, "sfsclient: %s\n", made.error().c_str());
    return 1;
  }
  auto signer = std::move(made.value());
  if (sfs::Status st = signer->start(); !st) {
    std::fprintf(stderr, "sfsclient: %s\n", st.error().c_str());
    return 1;
  }
  sfsclient::SfsFs fs(fo, signer.get());
  registered = [&fs](uid_t uid) { fs.agent_registered(uid); };
  fuse_session* se = fuse_session_new(&args, sfsclient::SfsFs::ops(), sizeof(fuse_lowlevel_ops), &fs);
  if (!se) {
    std::fprintf(stderr, "sfsclient: cannot create the FUSE session\n");
    return 1;
  }
  if (fuse_session_mount(se, cfg.mountpoint.c_str()) != 0) {
    std::fprintf(stderr, "sfsclient: cannot mount FUSE at %s (is /dev/fuse there? are you root?)\n",
                 cfg.mountpoint.c_str());
    fuse_session_destroy(se);
    return 1;
  }
  set_read_ahead(cfg.mountpoint, fo.read_ahead / 1024, log);  // as capped for FUSE's INIT
  if (!cfg.foreground) {
    // Before any thread exists: the runtime's workers and the notifier
    // start after this.
    if (::daemon(0, 0) != 0) {
      std::fprintf(stderr, "sfsclient: cannot daemonize: %s\n", std::strerror(errno));
      fuse_session_unmount(se);
      fuse_session_destroy(se);
      return 1;
    }
  }
  if (!cfg.pid_file.empty()) std::ofstream(cfg.pid_file) << ::getpid() << "\n";
  log("sfsclient: mounted at " + cfg.mountpoint + " (pid " + std::to_string(::getpid()) + ")");

  sfsclient::FuseDriver driver(se, fo.color, [&] { rt.stop(0); });
  fs.set_driver(&driver);
  ::signal(SIGPIPE, SIG_IGN);
  auto quit = [&] {
    log("sfsclient: signal: unmounting " + cfg.mountpoint);
    ::umount2(cfg.mountpoint.c_str(), MNT_DETACH);
    rt.stop(0);
  };
  rt.sigcb(SIGTERM, asmp::Closure(quit, 0));
  rt.sigcb(SIGINT, asmp::Closure(quit, 0));
  driver.start();
  rt.run();
  driver.stop();
  fs.shutdown();
  signer->stop();
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  if (!cfg.pid_file.empty()) ::unlink(cfg.pid_file.c_str());
  log("sfsclient: stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // 1 MiB buffers (READ and WRITE data, records) come and go all the time:
  // keep them in the heap rather than mmap and unmap each (a fault per
  // page, ~270k faults per GiB; docs/benchmarks.md).
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto inv = sfsclient::parse_client_command_line(args);
  if (!inv.ok()) {
    std::fprintf(stderr, "sfsclient: %s\n%s", inv.error().c_str(), sfsclient::client_usage().c_str());
    return 2;
  }
  const auto& in = inv.value();
  if (in.help) {
    std::fputs(sfsclient::client_usage().c_str(), stdout);
    return 0;
  }
  if (in.command == "umount") return do_umount(in.config.mountpoint);
  return do_mount(in.config);
}
