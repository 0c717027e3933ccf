// nfs_fixture.h: what the NfsClient tests share. One NFS-Ganesha per test
// process, started on first use by scripts/ganesha.sh (through
// GaneshaServer: a free privileged port pair, export and state under a fresh
// $TMPDIR/sfs-nfs.XXXXXX) and stopped by a gtest Environment after the last
// test, or by a signal handler if the process crashes. Skipped with a
// reason when ganesha is not installed or the tests do not run as root.
//
// NfsClientTest gives each test a 2-worker Runtime, a client mounted as
// root under kNfsColor, and sync() to wait for one call's callback.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "asmp/nfs.h"
#include "freeze.h"
#include "ganesha_server.h"

namespace sfs_test {

using namespace std::chrono_literals;

inline constexpr std::uint32_t kNobody = 65534;
inline constexpr asmp::color_t kTestColor = 7;  // completions run here
inline constexpr asmp::color_t kNfsColor = 3;   // the client's own color

inline GaneshaServer* g_server = nullptr;
inline std::string g_skip_reason;

// If the test process dies (assertion in a callback, crash), stop ganesha
// before going: nothing may be left running. Best effort; not async-signal-safe.
inline void stop_server_on_crash(int sig) {
  if (g_server) g_server->stop();
  signal(sig, SIG_DFL);
  raise(sig);
}

// Starts ganesha on first use (so tests that need no server pay nothing);
// the environment stops it after the last test.
class GaneshaEnvironment : public ::testing::Environment {
 public:
  static void ensure_started() {
    if (g_server || !g_skip_reason.empty()) return;
    g_skip_reason = GaneshaServer::unavailable_reason();
    if (!g_skip_reason.empty()) return;
    server_ = std::make_unique<GaneshaServer>();
    std::string err;
    if (!server_->prepare(&err) || !server_->start(&err)) {
      ADD_FAILURE() << err;
      server_.reset();
      return;
    }
    // A directory the unprivileged user owns.
    auto home = server_->export_dir() + "/nobody";
    mkdir(home.c_str(), 0755);
    EXPECT_EQ(chown(home.c_str(), kNobody, kNobody), 0);
    g_server = server_.get();
    for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTERM, SIGINT})
      signal(sig, stop_server_on_crash);
  }
  void TearDown() override {
    g_server = nullptr;
    server_.reset();  // stops ganesha, removes the directory
  }

 private:
  static inline std::unique_ptr<GaneshaServer> server_;
};

inline const auto* const g_env = ::testing::AddGlobalTestEnvironment(new GaneshaEnvironment);

inline pid_t ganesha_pid() {
  pid_t pid = 0;
  std::ifstream(g_server->state_dir() + "/ganesha.pid") >> pid;
  return pid;
}

// SIGSTOP, and wait until each of ganesha's threads has stopped (freeze.h).
inline void stop_and_wait(pid_t pid) { freeze_process(pid, 2000ms); }

// Waits for one call's callback (run under kTestColor) and returns its result.
template <class T, class Issue>
asmp::nfs::Result<T> sync(Issue issue, std::chrono::seconds limit = 60s) {
  auto p = std::make_shared<std::promise<asmp::nfs::Result<T>>>();
  auto f = p->get_future();
  issue(asmp::nfs::Done<T>([p](asmp::nfs::Result<T> r) { p->set_value(std::move(r)); }, kTestColor));
  if (f.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "no callback within " << limit.count() << " s";
    asmp::nfs::Result<T> r;
    r.error = {asmp::nfs::Failure::kTimeout, asmp::nfs::Status::kOk, "test gave up"};
    return r;
  }
  return f.get();
}

// A callback's result, collected for later (several calls outstanding).
template <class T>
struct Pending {
  std::shared_ptr<std::promise<asmp::nfs::Result<T>>> p =
      std::make_shared<std::promise<asmp::nfs::Result<T>>>();
  std::future<asmp::nfs::Result<T>> f = p->get_future();
  asmp::nfs::Done<T> done() {
    return asmp::nfs::Done<T>([q = p](asmp::nfs::Result<T> r) { q->set_value(std::move(r)); },
                              kTestColor);
  }
  asmp::nfs::Result<T> get(std::chrono::seconds limit = 60s) {
    if (f.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "no callback within " << limit.count() << " s";
      asmp::nfs::Result<T> r;
      r.error = {asmp::nfs::Failure::kTimeout, asmp::nfs::Status::kOk, "test gave up"};
      return r;
    }
    return f.get();
  }
};

// A 2-worker runtime of the test's own (started before, stopped after).
class RuntimeTest : public ::testing::Test {
 protected:
  void start_runtime() {
    asmp::RuntimeOptions ro;
    ro.threads = 2;
    rt_ = std::make_unique<asmp::Runtime>(ro);
    loop_ = std::thread([this] { rt_->run(); });
  }
  void stop_runtime() {
    if (!rt_) return;
    // Let the clients' closes run, then stop.
    std::this_thread::sleep_for(50ms);
    rt_->stop();
    loop_.join();
    rt_.reset();
  }
  std::unique_ptr<asmp::Runtime> rt_;
  std::thread loop_;
};

class NfsClientTest : public RuntimeTest {
 protected:
  void SetUp() override {
    GaneshaEnvironment::ensure_started();
    if (!g_skip_reason.empty()) GTEST_SKIP() << g_skip_reason;
    ASSERT_NE(g_server, nullptr) << "ganesha did not start (see the environment's failure)";
    start_runtime();
    client_ = make_client();
    auto r = sync<asmp::nfs::FileHandle>([&](auto d) { client_->mount(std::move(d)); });
    ASSERT_TRUE(r.ok()) << r.error.describe();
    root_ = r.value;
  }

  void TearDown() override {
    client_.reset();
    stop_runtime();
  }

  // A client of the test's ganesha; tweak changes options before it is made.
  std::unique_ptr<asmp::nfs::NfsClient> make_client(
      const std::function<void(asmp::nfs::NfsOptions&)>& tweak = {}) {
    asmp::nfs::NfsOptions o;
    o.nfs_port = g_server->nfs_port();
    o.mount_port = g_server->mnt_port();
    o.export_path = std::filesystem::canonical(g_server->export_dir()).string();
    o.color = kNfsColor;
    o.runtime = rt_.get();
    o.call_timeout = 20s;
    o.connect_timeout = 3s;
    if (tweak) tweak(o);
    return std::make_unique<asmp::nfs::NfsClient>(o);
  }

  asmp::nfs::FileHandle lookup_ok(const asmp::nfs::Cred& c, const asmp::nfs::FileHandle& dir,
                                  const std::string& name) {
    auto r = sync<asmp::nfs::LookupOk>([&](auto d) { client_->lookup(c, dir, name, std::move(d)); });
    EXPECT_TRUE(r.ok()) << "LOOKUP " << name << ": " << r.error.describe();
    return r.value.fh;
  }

  static std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 12)) & 0xff);
    return s;
  }

  std::unique_ptr<asmp::nfs::NfsClient> client_;
  asmp::nfs::FileHandle root_;
  asmp::nfs::Cred root_cred_{0, 0};
  asmp::nfs::Cred nobody_{kNobody, kNobody};
};

}  // namespace sfs_test
