// sfsd_test_util.h: a real NFS-Ganesha (tests/nfs/ganesha_server.h) and a
// real sfsd process (the built binary, SFSD_BINARY) on ports of their own,
// a FileClient connected to it, and synchronous wrappers for the tests.
//
// Processes started: ganesha.nfsd (through scripts/ganesha.sh, with a
// watchdog that stops it if the test dies) and sfsd (a child of the test,
// SIGTERM then SIGKILL when the fixture ends). Everything lives in one
// temporary directory, removed at the end.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../nfs/freeze.h"
#include "../nfs/ganesha_server.h"
#include "asmp/runtime.h"
#include "sfs/file_client.h"
#include "sfs/keys.h"
#include "sfs/names.h"

namespace sfsd_test {

using namespace std::chrono_literals;
namespace fs = sfs::fs;
namespace rpc = asmp::rpc;

// A line of /proc/PID/status in KiB ("VmRSS", "VmHWM"); 0 if unreadable.
inline std::uint64_t status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string key = field + ":";
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + key.size(), nullptr, 10);
  return 0;
}

inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A free TCP port on 127.0.0.1 (bound and released; good enough for a test
// that binds it right away).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// One sfsd child process.
class SfsdProcess {
 public:
  ~SfsdProcess() { kill(SIGKILL); }

  // Starts sfsd with `args`; waits for the name it prints. "" on failure
  // (*out gets what it printed).
  std::string start(const std::vector<std::string>& args, std::string* out = nullptr,
                    std::chrono::milliseconds limit = 20s) {
    int outp[2], errp[2];
    if (::pipe2(outp, O_CLOEXEC) != 0 || ::pipe2(errp, O_CLOEXEC) != 0) return "";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(outp[1], 1);
      ::dup2(errp[1], 2);
      std::vector<char*> argv;
      std::string bin = SFSD_BINARY;
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(outp[1]);
    ::close(errp[1]);
    out_fd_ = outp[0];
    err_fd_ = errp[0];
    // Read stdout until the first line (the name) or the process exits.
    std::string line;
    // Why no name, for the failure message: a start that fails in CI once
    // in many runs is diagnosed from this line or not at all.
    std::string why;
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + limit;
    ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);
    ::fcntl(err_fd_, F_SETFL, O_NONBLOCK);
    for (;;) {
      if (std::chrono::steady_clock::now() >= deadline) {
        const pid_t pid = pid_;
        const bool gone = exited();
        why = "no name on stdout in " + std::to_string(limit.count()) + " ms (pid " + std::to_string(pid) +
              (gone ? ", now " + describe_status() : ", still running") + ")";
        break;
      }
      drain_err();
      char c;
      ssize_t n = ::read(out_fd_, &c, 1);
      if (n == 1) {
        if (c == '\n') break;
        line += c;
        continue;
      }
      const int read_errno = errno;
      if (n == 0 || exited()) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                              started);
        const bool gone = exited();
        why = (n == 0 ? std::string("stdout closed") : "read: " + std::string(std::strerror(read_errno))) +
              " after " + std::to_string(ms.count()) + " ms with \"" + line + "\" read; the process " +
              (gone ? describe_status() : "is still running");
        line.clear();
        break;
      }
      std::this_thread::sleep_for(2ms);
    }
    drain_err();
    if (out) *out = (why.empty() ? line : "[harness: " + why + "]") + "\n" + err_;
    if (line.empty() || line[0] != '@') return "";
    return line;
  }

  // How the child ended, once exited() said it has.
  std::string describe_status() const {
    if (status_ == -1) return "ended (status unknown)";
    if (WIFEXITED(status_)) return "exited with status " + std::to_string(WEXITSTATUS(status_));
    if (WIFSIGNALED(status_))
      return std::string("was killed by signal ") + std::to_string(WTERMSIG(status_)) + " (" +
             ::strsignal(WTERMSIG(status_)) + ")";
    return "ended (status " + std::to_string(status_) + ")";
  }

  bool exited() {
    if (pid_ <= 0) return true;
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = st;
      pid_ = -1;
      return true;
    }
    return false;
  }
  // Sends sig and waits (bounded) for the exit; returns the exit status.
  int stop(int sig = SIGTERM, std::chrono::milliseconds limit = 15s) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, sig);
    if (!eventually([&] { return exited(); }, limit)) {
      ::kill(pid_, SIGKILL);
      eventually([&] { return exited(); }, 5s);
    }
    drain_err();
    return status_;
  }
  void kill(int sig) {
    if (pid_ > 0) stop(sig, 5s);
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
    out_fd_ = err_fd_ = -1;
  }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // SIGSTOP, then wait until every thread has stopped (freeze.h); false if
  // they did not all stop within 5 s.
  bool freeze() { return pid_ > 0 && sfs_test::freeze_process(pid_, 5s); }
  pid_t pid() const { return pid_; }
  const std::string& errors() {
    drain_err();
    return err_;
  }

 private:
  void drain_err() {
    if (err_fd_ < 0) return;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(err_fd_, buf, sizeof buf)) > 0) err_.append(buf, static_cast<std::size_t>(n));
  }
  pid_t pid_ = -1;
  int status_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string err_;
};

struct TestUser {
  std::string name;
  std::uint32_t uid, gid;
  std::shared_ptr<sfs::UserKey> key;
};

// Ganesha + keys + user database + sfsd, and helpers to talk to it.
class SfsdServer {
 public:
  bool setup(std::string* why) {
    if (std::string r = sfs_test::GaneshaServer::unavailable_reason(); !r.empty()) {
      *why = r;
      return false;
    }
    if (!ganesha_.prepare(why) || !ganesha_.start(why)) return false;
    dir_ = ganesha_.export_dir() + "/../sfsd";
    std::filesystem::create_directories(dir_);
    dir_ = std::filesystem::canonical(dir_).string();
    key_path_ = dir_ + "/server.key";
    auto key = sfs::ServerKey::generate();
    server_public_ = key.public_key();
    if (auto s = sfs::write_key_file(key_path_, key); !s) {
      *why = s.error();
      return false;
    }
    users_path_ = dir_ + "/users";
    add_user("alice", 1000, 1000);
    add_user("bob", 1001, 1001);
    add_user("root", 0, 0);
    write_users();
    port_ = free_port();
    return true;
  }

  void add_user(const std::string& name, std::uint32_t uid, std::uint32_t gid) {
    users_[name] = TestUser{name, uid, gid, std::make_shared<sfs::UserKey>(sfs::UserKey::generate())};
  }
  void add_user_with_key(const std::string& name, std::uint32_t uid, std::uint32_t gid,
                         std::shared_ptr<sfs::UserKey> key) {
    users_[name] = TestUser{name, uid, gid, std::move(key)};
  }
  void remove_user(const std::string& name) { users_.erase(name); }
  void write_users(const std::string& extra_lines = "") {
    std::ofstream f(users_path_);
    f << extra_lines;
    for (auto& [n, u] : users_)
      f << sfs::format_user_public_key(u.key->public_key()) << " " << n << " " << u.uid << " " << u.gid << "\n";
  }
  const TestUser& user(const std::string& name) { return users_.at(name); }

  std::vector<std::string> args() const {
    return {"--listen",      "127.0.0.1:" + std::to_string(port_),
            "--server-key",  key_path_,
            "--users",       users_path_,
            "--backend",     backend_url(),
            "--handle-keys", dir_ + "/handle.keys",
            "--lease",       lease_,
            "--threads",     "2"};
  }
  std::string backend_url() const {
    return "nfs://127.0.0.1" + ganesha_.export_dir() + "?nfsport=" + std::to_string(ganesha_.nfs_port()) +
           "&mountport=" + std::to_string(ganesha_.mnt_port());
  }

  // Starts sfsd; name() afterwards.
  bool start_sfsd(std::string* why, std::vector<std::string> extra = {}) {
    auto a = args();
    a.insert(a.end(), extra.begin(), extra.end());
    std::string out;
    name_ = sfsd_.start(a, &out);
    if (name_.empty()) *why = "sfsd did not start:\n" + out;
    return !name_.empty();
  }
  int stop_sfsd(int sig = SIGTERM) { return sfsd_.stop(sig); }
  bool restart_ganesha(std::string* why) {
    ganesha_.stop();
    return ganesha_.start(why);
  }

  sfs::SelfCertName self_cert_name() const {
    return sfs::name_for(sfs::Location{"127.0.0.1", port_}, server_public_);
  }
  const std::string& name() const { return name_; }
  std::uint16_t port() const { return port_; }
  std::string export_dir() const { return ganesha_.export_dir(); }
  sfs_test::GaneshaServer& ganesha() { return ganesha_; }
  SfsdProcess& sfsd() { return sfsd_; }
  void set_lease(std::string l) { lease_ = std::move(l); }
  const std::string& dir() const { return dir_; }

 private:
  sfs_test::GaneshaServer ganesha_;
  SfsdProcess sfsd_;
  std::string dir_, key_path_, users_path_, name_, lease_ = "60s";
  sfs::ServerPublicKey server_public_;
  std::uint16_t port_ = 0;
  std::map<std::string, TestUser> users_;
};

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

// Waits for a callback's value.
template <class T>
struct Box {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<T> v;
  void set(T x) {
    std::lock_guard lk(mu);
    v.emplace(std::move(x));
    cv.notify_all();
  }
  std::optional<T> wait(std::chrono::milliseconds limit = 30s) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, limit, [&] { return v.has_value(); });
    return std::move(v);
  }
};

// The events one client saw, in order (INVALIDATE and replies).
struct ClientLog {
  std::mutex mu;
  std::vector<std::string> events;
  std::vector<fs::Handle> invalidated;  // the handles INVALIDATE named, in order
  std::atomic<int> invalidations{0};
  std::atomic<bool> closed{false};
  void add(std::string e) {
    std::lock_guard lk(mu);
    events.push_back(std::move(e));
  }
  // How many INVALIDATEs named fh.
  int invalidations_of(const fs::Handle& fh) {
    std::lock_guard lk(mu);
    return static_cast<int>(std::count(invalidated.begin(), invalidated.end(), fh));
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lk(mu);
    return events;
  }
};

inline std::shared_ptr<fs::FileClient> connect(const SfsdServer& s, asmp::color_t color,
                                               std::shared_ptr<ClientLog> log = nullptr,
                                               std::string* why = nullptr,
                                               std::optional<sfs::SelfCertName> name = std::nullopt) {
  fs::FileClientOptions o;
  o.server = name ? *name : s.self_cert_name();
  o.color = color;
  o.log = [](const std::string&) {};
  if (log) {
    o.on_invalidate = [log](const fs::Handle& fh, std::uint64_t change, fs::FileClientOptions::Invalidated done) {
      {
        std::lock_guard lk(log->mu);
        log->invalidated.push_back(fh);
        log->events.push_back("invalidate " + std::to_string(fh.size()) + " " + std::to_string(change));
      }
      log->invalidations++;
      done();
    };
    o.on_close = [log](const std::string&) { log->closed = true; };
  }
  auto box = std::make_shared<Box<sfs::Result<std::shared_ptr<fs::FileClient>>>>();
  fs::FileClient::connect(std::move(o), fs::FileClient::ConnectDone(
                                            [box](sfs::Result<std::shared_ptr<fs::FileClient>> r) {
                                              box->set(std::move(r));
                                            },
                                            color + 100000));
  auto r = box->wait();
  if (!r) {
    if (why) *why = "connect timed out";
    return nullptr;
  }
  if (!r->ok()) {
    if (why) *why = r->error();
    return nullptr;
  }
  return r->value();
}

inline std::uint32_t login(const fs::FileClient& c, const TestUser& u) {
  auto box = std::make_shared<Box<sfs::Result<std::uint32_t>>>();
  c.login(*u.key, u.name, asmp::Callback<void(sfs::Result<std::uint32_t>)>(
                              [box](sfs::Result<std::uint32_t> r) { box->set(std::move(r)); }));
  auto r = box->wait();
  EXPECT_TRUE(r && r->ok()) << (r ? r->error() : "login timed out");
  return r && r->ok() ? r->value() : 0;
}

// Synchronous call of procedure P.
template <std::uint32_t P>
struct Answer {
  rpc::RpcStatus st;
  fs::Reply<typename fs::ProcTraits<P>::Res> res;
  bool ok() const { return st.ok() && res && res->status == SFS_NFS3_OK; }
  sfs_nfsstat3 status() const { return st.ok() && res ? res->status : SFS_NFS3ERR_SERVERFAULT; }
};

template <std::uint32_t P>
Answer<P> call(const fs::FileClient& c, std::uint32_t auth, const typename fs::ProcTraits<P>::Args& a,
               std::chrono::milliseconds limit = 30s) {
  auto box = std::make_shared<Box<Answer<P>>>();
  c.call<P>(auth, a,
            typename fs::FileClient::template Done<P>(
                [box](rpc::RpcStatus st, fs::Reply<typename fs::ProcTraits<P>::Res> r) {
                  box->set(Answer<P>{st, std::move(r)});
                }));
  auto r = box->wait(limit);
  if (!r) {
    Answer<P> timed_out;
    timed_out.st.error = rpc::RpcError::kTimeout;
    return timed_out;
  }
  return std::move(*r);
}

// Conveniences built on call<P>.
inline std::optional<fs::Handle> lookup(const fs::FileClient& c, std::uint32_t auth, const fs::Handle& dir,
                                        const std::string& name, sfs_nfsstat3* st = nullptr) {
  sfs_LOOKUP3args a{};
  a.what.dir = fs::FileClient::wire(dir);
  a.what.name = const_cast<char*>(name.c_str());
  auto r = call<SFS_NFSPROC3_LOOKUP>(c, auth, a);
  if (st) *st = r.status();
  if (!r.ok()) return std::nullopt;
  return fs::FileClient::handle_of(r.res->sfs_LOOKUP3res_u.resok.object);
}

inline std::optional<fs::Handle> create(const fs::FileClient& c, std::uint32_t auth, const fs::Handle& dir,
                                        const std::string& name, std::uint32_t mode = 0644,
                                        sfs_nfsstat3* st = nullptr,
                                        sfs_createmode3 how = SFS_UNCHECKED) {
  sfs_CREATE3args a{};
  a.where.dir = fs::FileClient::wire(dir);
  a.where.name = const_cast<char*>(name.c_str());
  a.how.mode = how;
  a.how.sfs_createhow3_u.obj_attributes.mode.set_it = TRUE;
  a.how.sfs_createhow3_u.obj_attributes.mode.sfs_set_mode3_u.mode = mode;
  auto r = call<SFS_NFSPROC3_CREATE>(c, auth, a);
  if (st) *st = r.status();
  if (!r.ok() || !r.res->sfs_CREATE3res_u.resok.obj.handle_follows) return std::nullopt;
  return fs::FileClient::handle_of(r.res->sfs_CREATE3res_u.resok.obj.sfs_post_op_fh3_u.handle);
}

inline sfs_nfsstat3 write(const fs::FileClient& c, std::uint32_t auth, const fs::Handle& fh, std::uint64_t off,
                          const std::string& data, sfs_stable_how stable = SFS_FILE_SYNC,
                          std::string* verf = nullptr) {
  sfs_WRITE3args a{};
  a.file = fs::FileClient::wire(fh);
  a.offset = off;
  a.count = static_cast<u_int>(data.size());
  a.stable = stable;
  a.data.data_len = static_cast<u_int>(data.size());
  a.data.data_val = const_cast<char*>(data.data());
  auto r = call<SFS_NFSPROC3_WRITE>(c, auth, a);
  if (r.ok() && verf) verf->assign(r.res->sfs_WRITE3res_u.resok.verf, 8);
  if (r.ok() && r.res->sfs_WRITE3res_u.resok.count != data.size()) return SFS_NFS3ERR_IO;
  return r.status();
}

inline std::optional<std::string> read(const fs::FileClient& c, std::uint32_t auth, const fs::Handle& fh,
                                       std::uint64_t off, std::uint32_t count, sfs_nfsstat3* st = nullptr) {
  auto box = std::make_shared<Box<std::pair<sfs_nfsstat3, std::string>>>();
  c.read(auth, fh, off, count, fs::FileClient::ReadDone([box](rpc::RpcStatus s, const fs::ReadView& v) {
           if (!s.ok()) return box->set({SFS_NFS3ERR_SERVERFAULT, ""});
           box->set({v.status, v.status == SFS_NFS3_OK ? std::string(v.data.data, v.data.len) : ""});
         }));
  auto r = box->wait();
  if (!r) return std::nullopt;
  if (st) *st = r->first;
  if (r->first != SFS_NFS3_OK) return std::nullopt;
  return r->second;
}

inline std::optional<fs::LeasedAttr> getattr(const fs::FileClient& c, std::uint32_t auth, const fs::Handle& fh,
                                             sfs_nfsstat3* st = nullptr) {
  sfs_GETATTR3args a{};
  a.object = fs::FileClient::wire(fh);
  auto r = call<SFS_NFSPROC3_GETATTR>(c, auth, a);
  if (st) *st = r.status();
  if (!r.ok()) return std::nullopt;
  return fs::leased(r.res->sfs_GETATTR3res_u.resok.obj_attributes);
}

}  // namespace sfsd_test
