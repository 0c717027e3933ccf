// mount_test_util.h: a real mount to test through: NFS-Ganesha and sfsd
// (sfsd_test_util.h) plus sfsclient processes (the built binary,
// SFSCLIENT_BINARY) mounted on mount points of their own, and a shell to
// run what a person would (cp, tar, git, rsync) with a time limit.
//
// Processes started: ganesha.nfsd, sfsd, one sfsclient per mount. Each
// mount is unmounted lazily and its daemon killed when the test ends; a
// daemon that is stuck has its FUSE connection aborted, so a failed test
// never leaves a mount that needs a reboot.
#pragma once

#include <grp.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "../sfsd/sfsd_test_util.h"

namespace mount_test {

using namespace sfsd_test;

// Runs a shell command with a time limit; returns its exit status and
// (if asked) its output.
inline int sh(const std::string& cmd, std::string* out = nullptr, int seconds = 120) {
  std::string full = "timeout -k 5 " + std::to_string(seconds) + " bash -c '" + [&] {
    std::string q;
    for (char c : cmd) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q;
  }() + "' 2>&1";
  FILE* f = ::popen(full.c_str(), "r");
  if (!f) return -1;
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const int st = ::pclose(f);
  if (out) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Waits for fd to have something to read (or EOF), up to `limit`.
inline bool readable(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) > 0;
}

// Kills a child that may be stuck in the mount and reaps it if it goes
// within 5 s. A call the daemon has read and never answers cannot be
// killed (the kernel waits for its answer): such a child goes when the
// test's mount is aborted, and is not waited for here.
inline void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 50 && ::waitpid(pid, nullptr, WNOHANG) == 0; ++i) ::usleep(100000);
}

// Runs f in a child process (after `enter` there, e.g. becoming another
// user; the child exits 126 if it fails) as a program would; returns what
// f returned, or "timeout" if it had not finished after `seconds` (the
// child is then killed), so a call stuck in the mount fails a test instead
// of hanging it.
inline std::string in_child(const std::function<std::string()>& f, int seconds,
                            const std::function<bool()>& enter = {}) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    if (enter && !enter()) ::_exit(126);
    const std::string r = f();
    if (::write(p[1], r.data(), r.size()) < 0) ::_exit(1);
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  bool done = false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!done && std::chrono::steady_clock::now() < end) {
    if (!readable(p[0], std::chrono::milliseconds(100))) continue;
    char buf[4096];
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) done = true;
    else out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  if (done) {
    ::waitpid(pid, nullptr, 0);
    return out;
  }
  kill_and_reap(pid);
  return "timeout";
}

inline std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// n bytes that differ from one seed to another.
inline std::string pattern(std::size_t n, std::uint64_t seed) {
  std::string s(n, '\0');
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
  for (auto& c : s) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(x >> 56);
  }
  return s;
}

// One sfsclient process and its mount point.
class Mount {
 public:
  explicit Mount(std::string dir) : dir_(std::move(dir)) {}
  ~Mount() { stop(); }

  bool start(std::string* why, std::vector<std::string> extra = {}) {
    std::filesystem::create_directories(dir_ + "/mnt");
    log_ = dir_ + "/sfsclient.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> a = {SFSCLIENT_BINARY, "mount", "--foreground", "--agent-socket",
                                    dir_ + "/agent.sock"};
      a.insert(a.end(), extra.begin(), extra.end());
      a.push_back(dir_ + "/mnt");
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Mounted once /proc/mounts shows it.
    const bool up = eventually([&] { return mounted() || exited(); }, 20s) && mounted();
    if (!up) *why = "sfsclient did not mount:\n" + log();
    return up;
  }

  bool mounted() const {
    std::ifstream in("/proc/self/mounts");
    std::string dev, dir, type, rest;
    while (in >> dev >> dir >> type && std::getline(in, rest))
      if (dir == dir_ + "/mnt" && type == "fuse.sfs") return true;
    return false;
  }
  bool exited() {
    if (pid_ <= 0) return true;
    int st;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }

  // sfsclient umount (lazy), then the daemon must exit by itself.
  bool unmount(int* status = nullptr) {
    std::string out;
    const int rc = sh(std::string(SFSCLIENT_BINARY) + " umount " + dir_ + "/mnt", &out, 30);
    if (status) *status = rc;
    return eventually([&] { return exited(); }, 15s);
  }

  void stop() {
    if (pid_ > 0 && !eventually([&] { return exited(); }, 0ms)) {
      // A daemon that does not answer would leave the unmount waiting.
      abort_fuse_if_stuck();
    }
    if (mounted()) ::umount2((dir_ + "/mnt").c_str(), MNT_DETACH);
    if (pid_ > 0 && !eventually([&] { return exited(); }, 5s)) {
      abort_fuse();
      ::kill(pid_, SIGKILL);
      eventually([&] { return exited(); }, 5s);
    }
  }
  // Aborts this mount's FUSE connection (the kernel's way out of a stuck
  // daemon).
  // (The device number comes from mountinfo: a stat() would hang on the
  // stuck mount.)
  void abort_fuse() {
    ::mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, nullptr);
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string id, parent, devno, root, dir;
      if (!(f >> id >> parent >> devno >> root >> dir) || dir != dir_ + "/mnt") continue;
      std::ofstream("/sys/fs/fuse/connections/" + devno.substr(devno.find(':') + 1) + "/abort") << "1";
    }
  }

  void abort_fuse_if_stuck() {
    // Alive but wedged (D state, or not reading /dev/fuse): abort.
    std::ifstream st("/proc/" + std::to_string(pid_) + "/stat");
    std::string pid, comm, state;
    st >> pid >> comm >> state;
    if (state == "D") abort_fuse();
  }

  std::string path() const { return dir_ + "/mnt"; }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  pid_t pid() const { return pid_; }

 private:
  std::string dir_, log_;
  pid_t pid_ = -1;
};

// Starts sfsagent as uid/gid (no other groups) with HOME=home, holding
// key_file and registering with m's sfsclient, its output in `log`; returns
// its pid once it has registered (a call before that would be the
// anonymous user's, until the registration logs the user in).
inline pid_t start_user_agent(const Mount& m, uid_t uid, gid_t gid, const std::string& home,
                              const std::string& key_file, const std::string& log) {
  const std::string reg = std::filesystem::path(m.path()).parent_path().string() + "/agent.sock";
  std::string bin = SFSCLIENT_BINARY;
  bin = bin.substr(0, bin.rfind('/')) + "/sfsagent";
  const std::string ctl = home + "/.sfs/agent.sock";
  const pid_t p = ::fork();
  if (p == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setgroups(0, nullptr);
    if (::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(126);
    ::setenv("HOME", home.c_str(), 1);
    ::unsetenv("XDG_RUNTIME_DIR");
    ::unsetenv("SFS_AGENT_SOCK");
    ::execl(bin.c_str(), bin.c_str(), "--foreground", "--control", ctl.c_str(), "--registration", reg.c_str(),
            "--add", key_file.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  EXPECT_TRUE(eventually([&] { return contents(log).find("registered with sfsclient") != std::string::npos; }))
      << "uid " << uid << "'s agent did not register:\n" << contents(log);
  return p;
}

// Ganesha + sfsd + mounts.
class MountFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "FUSE mounts need root here";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    // The export's root open to everyone, so anonymous users can write.
    ::chmod(server_.export_dir().c_str(), 0777);
    ASSERT_TRUE(server_.start_sfsd(&why, sfsd_flags())) << why;
  }
  virtual std::vector<std::string> sfsd_flags() { return {}; }
  void TearDown() override { mounts_.clear(); }

  Mount& mount(std::vector<std::string> extra = {}) {
    const std::string d = server_.dir() + "/client" + std::to_string(mounts_.size());
    mounts_.push_back(std::make_unique<Mount>(d));
    std::string why;
    EXPECT_TRUE(mounts_.back()->start(&why, std::move(extra))) << why;
    return *mounts_.back();
  }
  // The server's directory under a mount.
  std::string at(const Mount& m) const { return m.path() + "/" + server_.name(); }

  SfsdServer server_;
  std::vector<std::unique_ptr<Mount>> mounts_;
};

}  // namespace mount_test
