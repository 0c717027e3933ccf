// agent_test_util.h: helpers for the agent tests: a runtime on background
// threads, a temporary directory (removed afterwards), a synchronous
// sign_login, the server's own check of a signed login, raw sockets that
// play a hostile agent, and a child process running the real sfsagent (or
// any function) under another uid. Every wait has a deadline; every child
// is killed and reaped, every file removed, when its object dies.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "asmp/runtime.h"
#include "sfs/agent.h"
#include "sfs/agent_proto.h"
#include "sfs/agent_registry.h"
#include "sfs/login.h"

extern char** environ;

namespace sfs::test {

using namespace std::chrono_literals;

inline constexpr uid_t kNobodyUid = 65534;
inline constexpr uid_t kStrangerUid = 54321;  // no passwd entry needed for setuid
inline const std::string kServerA = "@127.0.0.1%4000,7dxcrcj3cnnrlte6xsmu2ocz2wygnrap";
inline const std::string kServerB = "@sfs.example.org%4000,hu2wplgqvkirijt7f3lvvxgaeo6ed2ww";

inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

class RunningRuntime {
 public:
  explicit RunningRuntime(unsigned threads = 2) : rt_(asmp::RuntimeOptions{.threads = threads}) {
    thread_ = std::thread([this] { rt_.run(); });
  }
  ~RunningRuntime() {
    rt_.stop();
    thread_.join();
  }
  asmp::Runtime& rt() { return rt_; }

 private:
  asmp::Runtime rt_;
  std::thread thread_;
};

// A directory under /tmp, mode 0755 (so that a child running as another
// uid can reach sockets inside), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sfs-agent-test.XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (!p) std::abort();
    path_ = p;
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  // A subdirectory owned by uid:gid with mode.
  std::string subdir(const std::string& name, uid_t uid, gid_t gid, mode_t mode) const {
    const std::string d = path_ + "/" + name;
    ::mkdir(d.c_str(), mode);
    if (::chown(d.c_str(), uid, gid) != 0 || ::chmod(d.c_str(), mode) != 0) std::abort();
    return d;
  }

 private:
  std::string path_;
};

struct LogCapture {
  std::mutex mu;
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& l) {
      std::lock_guard lk(mu);
      lines.push_back(l);
    };
  }
  bool contains(const std::string& what) {
    std::lock_guard lk(mu);
    for (auto& l : lines)
      if (l.find(what) != std::string::npos) return true;
    return false;
  }
  std::string all() {
    std::lock_guard lk(mu);
    std::string s;
    for (auto& l : lines) s += l + "\n";
    return s;
  }
};

inline UserKey key_n(int n) {
  Key32 seed;
  seed.fill(static_cast<std::uint8_t>(n));
  return UserKey::from_seed(seed);
}

inline SessionId session_n(int n) {
  SessionId s;
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(n + i);
  return s;
}

// sign_login, waited for. The callback runs under color 9 (not the
// registry's), as a caller's would.
inline Result<SignedLogin> sign_sync(AgentRegistry& reg, uid_t uid, const std::string& server,
                                     const SessionId& sid, std::uint64_t seqno,
                                     std::chrono::milliseconds limit = 15s) {
  struct Box {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<SignedLogin>> r;
  };
  auto box = std::make_shared<Box>();
  reg.sign_login(uid, server, sid, seqno,
                 asmp::Callback<void(Result<SignedLogin>)>(
                     [box](Result<SignedLogin> r) {
                       std::lock_guard lk(box->mu);
                       box->r.emplace(std::move(r));
                       box->cv.notify_all();
                     },
                     9));
  std::unique_lock lk(box->mu);
  if (!box->cv.wait_for(lk, limit, [&] { return box->r.has_value(); }))
    return make_error("test: sign_login did not call back within the limit");
  return std::move(*box->r);
}

// What the server does with it: AuthTable::login against a user database
// that lists `key` as `name`.
inline LoginOutcome server_check(const SignedLogin& s, const UserPublicKey& key,
                                 const std::string& name, const SessionId& sid) {
  const UserDb db =
      UserDb::parse(format_user_public_key(key) + " " + name + " 1000 1000\n", nullptr);
  AuthTable table(sid);
  return table.login(db, s.request);
}

// ---- raw sockets: a hostile or hand-driven peer --------------------------------

inline int raw_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool raw_send(int fd, ByteSpan b) {
  return ::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size());
}
inline bool raw_send(int fd, const AgentMessage& m) { return raw_send(fd, frame_agent_message(m)); }

// Reads exactly n bytes before the deadline.
inline bool raw_read(int fd, std::uint8_t* p, std::size_t n, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  std::size_t got = 0;
  while (got < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd pf{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pf, 1, static_cast<int>(left.count())) <= 0) return false;
    const ssize_t r = ::recv(fd, p + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

// The next message from the peer, or an error (closed, timed out, garbage).
inline Result<AgentMessage> raw_receive(int fd, std::chrono::milliseconds limit = 10s) {
  std::uint8_t hdr[4];
  if (!raw_read(fd, hdr, 4, limit)) return make_error("no frame header (closed or timed out)");
  std::string why;
  auto len = agent_frame_length(ByteSpan(hdr, 4), &why);
  if (!len) return make_error(why);
  Bytes body(*len);
  if (!raw_read(fd, body.data(), body.size(), limit)) return make_error("short frame");
  return decode_agent_message(body);
}

// True once the peer has closed the connection (EOF or reset), skipping
// whatever it still sent.
inline bool raw_closed_by_peer(int fd, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd pf{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pf, 1, static_cast<int>(left.count())) <= 0) return false;
    std::uint8_t buf[512];
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return true;
  }
}

// ---- child processes -----------------------------------------------------------

// A child process running as uid:gid (all groups dropped), either the real
// sfsagent binary or a function. Killed (SIGKILL) and reaped when the
// object dies, if it still runs.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }

  // Runs `program args...` with stdout and stderr into log_path.
  bool exec(const std::string& program, const std::vector<std::string>& args, uid_t uid, gid_t gid,
            const std::string& log_path) {
    // Everything the child needs is built before fork: after fork, only
    // async-signal-safe calls (the parent has threads).
    std::vector<std::string> all{program};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    log_path_ = log_path;
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log < 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(126);
      ::execve(argv[0], argv.data(), environ);
      ::_exit(127);
    }
    ::close(log);
    return pid_ > 0;
  }

  // Runs fn (async-signal-safe calls only) as uid:gid; its return value is
  // the exit code.
  bool run(const std::function<int()>& fn, uid_t uid, gid_t gid) {
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(126);
      ::_exit(fn());
    }
    return pid_ > 0;
  }

  pid_t pid() const { return pid_; }

  // The exit code (or 128 + signal), or nullopt if it is still running
  // after `limit`.
  std::optional<int> wait(std::chrono::milliseconds limit = 10s) {
    if (pid_ <= 0) return status_;
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int st;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
      }
      if (std::chrono::steady_clock::now() > end) return std::nullopt;
      std::this_thread::sleep_for(2ms);
    }
  }

  // Sends sig, then waits; SIGKILL if it has not exited after `limit`.
  std::optional<int> stop(int sig = SIGTERM, std::chrono::milliseconds limit = 10s) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, sig);
    auto r = wait(limit);
    if (!r) {
      ::kill(pid_, SIGKILL);
      wait(5s);
    }
    return r;
  }

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

}  // namespace sfs::test
