// ganesha_server.h: a private NFS-Ganesha for tests and benchmarks, started
// and stopped through scripts/ganesha.sh (which see).
//
// GaneshaServer makes a directory under $TMPDIR (mkdtemp) holding export/
// and state/, picks a free port pair on 127.0.0.1 in 300..511 (privileged:
// see prepare()), and starts ganesha on it.
// stop() (and the destructor) stop only that ganesha, by the pid file the
// script wrote, and remove the directory. The script's watchdog stops it
// too if this process dies without doing so (abort, sanitizer exit).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace sfs_test {

class GaneshaServer {
 public:
  // Port pairs (NFS, MOUNT) = (kFirstPort + 2i, kFirstPort + 2i + 1).
  static constexpr unsigned kFirstPort = 300;
  static constexpr unsigned kPairs = 106;  // up to port 511
  GaneshaServer() = default;
  ~GaneshaServer() {
    stop();
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
    if (port_lock_fd_ >= 0) close(port_lock_fd_);
  }
  GaneshaServer(const GaneshaServer&) = delete;
  GaneshaServer& operator=(const GaneshaServer&) = delete;

  // Why ganesha cannot run here, or "" if it can.
  static std::string unavailable_reason() {
    if (std::system("command -v ganesha.nfsd >/dev/null 2>&1") != 0)
      return "ganesha.nfsd is not installed (apt-get install nfs-ganesha nfs-ganesha-vfs)";
    if (std::system("command -v rpcinfo >/dev/null 2>&1") != 0)
      return "rpcinfo is not installed (apt-get install rpcbind)";
    if (std::system("command -v nfs-ls >/dev/null 2>&1") != 0)
      return "nfs-ls is not installed (apt-get install libnfs-utils)";
    if (script().empty()) return "scripts/ganesha.sh not found (set SFS_GANESHA_SCRIPT)";
    if (geteuid() != 0) return "ganesha needs root to serve other uids' files";
    return "";
  }

  // scripts/ganesha.sh: $SFS_GANESHA_SCRIPT, else next to this source tree.
  static std::string script() {
    if (const char* s = std::getenv("SFS_GANESHA_SCRIPT")) return s;
    std::filesystem::path here(__FILE__);
    for (auto p = here.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
      auto candidate = p / "scripts" / "ganesha.sh";
      if (std::filesystem::exists(candidate)) return candidate.string();
    }
    return "";
  }

  // Creates the directories and picks ports; does not start anything.
  bool prepare(std::string* err) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sfs-nfs.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      *err = "mkdtemp failed";
      return false;
    }
    root_ = tmpl;
    std::filesystem::create_directories(export_dir());
    std::filesystem::create_directories(state_dir());
    // The ports are below 1024 because ganesha.sh insists (only root may
    // listen there, so no local user can pose as the server), and below 512
    // because libnfs (and bindresvport) take the *source* ports of root's
    // client connections from 512..1023: a test server there could find its
    // port held by some client's connection, or by its TIME_WAIT, when it
    // starts or restarts.
    //
    // Spread concurrent test processes over the range. A pair is ours once
    // we hold its lock file (flock, released when this process exits, even
    // by a crash) and both ports are free: a bind test alone races with a
    // concurrent process whose ganesha has not bound yet, or with our own
    // restart.
    // The lock files stay (empty) in $TMPDIR/sfs-nfs-ports: removing a lock
    // file safely would need a second lock.
    auto lock_dir = std::filesystem::temp_directory_path() / "sfs-nfs-ports";
    std::filesystem::create_directories(lock_dir);
    unsigned start = static_cast<unsigned>(getpid()) % kPairs;
    for (unsigned i = 0; i < kPairs; ++i) {
      unsigned p = kFirstPort + 2 * ((start + i) % kPairs);
      std::string lock = (lock_dir / (std::to_string(p) + ".lock")).string();
      int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) != 0 || !port_free(static_cast<std::uint16_t>(p)) ||
          !port_free(static_cast<std::uint16_t>(p + 1))) {
        close(fd);
        continue;
      }
      port_lock_fd_ = fd;
      nfs_port_ = static_cast<std::uint16_t>(p);
      mnt_port_ = static_cast<std::uint16_t>(p + 1);
      return true;
    }
    *err = "no free port pair in " + std::to_string(kFirstPort) + ".." +
           std::to_string(kFirstPort + 2 * kPairs - 1) + " on 127.0.0.1";
    return false;
  }

  bool start(std::string* err) {
    std::string cmd = script() + " start --export " + export_dir() + " --state " + state_dir() +
                      " --nfs-port " + std::to_string(nfs_port_) + " --mnt-port " +
                      std::to_string(mnt_port_) + " --watch-pid " + std::to_string(getpid()) +
                      " 2>&1";
    std::string out;
    int rc = run(cmd, &out);
    if (rc != 0) {
      *err = "ganesha.sh start failed (exit " + std::to_string(rc) + "):\n" + out;
      return false;
    }
    running_ = true;
    return true;
  }

  void stop() {
    if (!running_) return;
    std::string out;
    run(script() + " stop --state " + state_dir() + " 2>&1", &out);
    running_ = false;
  }

  std::string export_dir() const { return root_ + "/export"; }
  std::string state_dir() const { return root_ + "/state"; }
  std::uint16_t nfs_port() const { return nfs_port_; }
  std::uint16_t mnt_port() const { return mnt_port_; }
  bool running() const { return running_; }

 private:
  static bool port_free(std::uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  }

  static int run(const std::string& cmd, std::string* out) {
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) return -1;
    char buf[512];
    while (std::fgets(buf, sizeof buf, f)) *out += buf;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  std::string root_;
  std::uint16_t nfs_port_ = 0, mnt_port_ = 0;
  bool running_ = false;
  int port_lock_fd_ = -1;
};

}  // namespace sfs_test
