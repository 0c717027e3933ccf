// conn_test_util.h: a runtime on a background thread, a SecureServer
// serving the sfstest program on 127.0.0.1 (ephemeral port) with a user
// database, synchronous wrappers for connect/login/calls, and bounded
// waits. Starts no processes; every wait has a deadline.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "asmp/rpc.h"
#include "asmp/runtime.h"
#include "sfs/secure_rpc.h"
#include "sfs/sfs_test.h"

namespace sfs::test {

using namespace std::chrono_literals;
namespace rpc = asmp::rpc;

inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
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

inline rpc::Interface sfstest_iface() {
  return rpc::Interface{SFSTEST_PROG, SFSTEST_V1,
                        {rpc::proc(xdr_void, xdr_void), rpc::proc(xdr_sfstest_data, xdr_sfstest_data),
                         rpc::proc(xdr_sfstest_pair, xdr_int),
                         rpc::proc(xdr_sfstest_delay_arg, xdr_u_int), rpc::proc(xdr_u_int, xdr_void),
                         rpc::proc(xdr_void, xdr_void)}};
}

// A TCP socket listening on 127.0.0.1 at a port the kernel chose (for
// fake servers and proxies): its fd, or -1, and the port in *port.
inline int listen_loopback(std::uint16_t* port, int backlog = 4) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &sl) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

// Collects log lines (any thread).
struct LogCapture {
  std::mutex mu;
  std::vector<std::string> lines;
  LogSink sink() {
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

// The sfstest program behind a SecureServer. ADD runs as the caller's user
// (on the shared color) and records whom it saw; ECHO and NULL run on the
// connection's color.
class TestSecureServer {
 public:
  struct Seen {
    std::uint32_t uid, gid;
    std::string user;
    std::vector<std::uint32_t> groups;
    std::uint64_t conn_id;
  };

  TestSecureServer(std::function<void(SecureServerOptions&)> tweak = {}) {
    key = std::make_shared<ServerKey>(ServerKey::generate());
    alice = std::make_unique<UserKey>(UserKey::generate());
    stranger = std::make_unique<UserKey>(UserKey::generate());
    std::string db = "# test users\n" + format_user_public_key(alice->public_key()) +
                     " alice 1000 100 10,20\n";
    SecureServerOptions o;
    o.key = key;
    o.users = std::make_shared<UserDb>(UserDb::parse(db, nullptr));
    o.log = log.sink();
    SecureProgram echo;
    echo.iface = sfstest_iface();
    echo.dispatch_as_user = [this](rpc::Call c, const Caller& caller) {
      const AuthResult& who = *caller.user;
      if (c.proc() == SFSTEST_ADD) {
        {
          std::lock_guard lk(mu);
          seen.push_back({who.uid, who.gid, who.user, who.groups, caller.conn_id});
        }
        auto* a = c.args<sfstest_pair>();
        int sum = a->a + a->b;
        c.reply(&sum);
      } else if (c.proc() == SFSTEST_ECHO) {
        c.reply(c.args<sfstest_data>());
      } else {
        c.reply(nullptr);
      }
    };
    o.programs.push_back(std::move(echo));
    if (tweak) tweak(o);
    server = SecureServer::create(std::move(o));
    EXPECT_EQ(server->listen("127.0.0.1", 0), 0);
  }
  ~TestSecureServer() { shutdown(); }
  void shutdown() {
    if (!server) return;
    server->close();
    EXPECT_TRUE(eventually([&] { return server->connections() == 0; }));
    server.reset();
  }
  std::uint16_t port() const { return server->port(); }
  SelfCertName name() const { return name_for(Location{"127.0.0.1", port()}, key->public_key()); }

  std::shared_ptr<ServerKey> key;
  std::unique_ptr<UserKey> alice, stranger;
  std::shared_ptr<SecureServer> server;
  LogCapture log;
  std::mutex mu;
  std::vector<Seen> seen;
};

// What a client needs to reach `s`, its callbacks under `color`.
inline SecureConnectOptions client_options(const TestSecureServer& s, asmp::color_t color, LogCapture& log) {
  SecureConnectOptions o;
  o.server = s.name();
  o.color = color;
  o.log = log.sink();
  return o;
}

inline Result<SecureSession> connect_sync(SecureConnectOptions o, std::chrono::milliseconds limit = 20s) {
  struct Box {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<SecureSession>> r;
  };
  auto box = std::make_shared<Box>();
  asmp::color_t color = o.color;
  secure_connect(std::move(o), asmp::Callback<void(Result<SecureSession>)>(
                                   [box](Result<SecureSession> r) {
                                     std::lock_guard lk(box->mu);
                                     box->r.emplace(std::move(r));
                                     box->cv.notify_all();
                                   },
                                   color));
  std::unique_lock lk(box->mu);
  if (!box->cv.wait_for(lk, limit, [&] { return box->r.has_value(); }))
    return make_error("test: secure_connect did not call back in time");
  return std::move(*box->r);
}

inline Result<std::uint32_t> login_sync(const SecureSession& s, const UserKey& key, const std::string& user,
                                        std::uint64_t seqno = 0) {
  struct Box {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<std::uint32_t>> r;
  };
  auto box = std::make_shared<Box>();
  s.login(key, user, asmp::Callback<void(Result<std::uint32_t>)>([box](Result<std::uint32_t> r) {
            std::lock_guard lk(box->mu);
            box->r.emplace(std::move(r));
            box->cv.notify_all();
          }),
          seqno);
  std::unique_lock lk(box->mu);
  if (!box->cv.wait_for(lk, 20s, [&] { return box->r.has_value(); }))
    return make_error("test: login did not call back in time");
  return std::move(*box->r);
}

inline rpc::RpcStatus call_sync(const std::shared_ptr<rpc::Connection>& conn, std::uint32_t proc,
                                xdrproc_t xargs, const void* args, xdrproc_t xres, void* res,
                                const rpc::Auth* auth = nullptr, std::chrono::milliseconds limit = 20s) {
  struct Box {
    std::atomic<bool> done{false};
    rpc::RpcStatus st;
  };
  auto box = std::make_shared<Box>();
  rpc::CallOptions co;
  co.auth = auth;
  co.timeout = limit;
  conn->call(SFSTEST_PROG, SFSTEST_V1, proc, xargs, args, xres, res, rpc::CallDone([box](rpc::RpcStatus st) {
               box->st = st;
               box->done.store(true);
             }),
             co);
  EXPECT_TRUE(eventually([&] { return box->done.load(); }, limit + 5s)) << "call did not complete";
  return box->st;
}

inline rpc::RpcStatus add_sync(const SecureSession& s, int a, int b, int* sum, const rpc::Auth* auth = nullptr) {
  sfstest_pair p{a, b};
  return call_sync(s.connection(), SFSTEST_ADD, rpc::as_xdrproc(xdr_sfstest_pair), &p,
                   rpc::as_xdrproc(xdr_int), sum, auth);
}

// Echoes `bytes`; true if the same bytes came back.
inline bool echo_sync(const std::shared_ptr<rpc::Connection>& conn, std::vector<char>& bytes,
                      rpc::RpcStatus* st_out = nullptr) {
  sfstest_data arg{static_cast<u_int>(bytes.size()), bytes.data()}, res{};
  rpc::RpcStatus st = call_sync(conn, SFSTEST_ECHO, rpc::as_xdrproc(xdr_sfstest_data), &arg,
                                rpc::as_xdrproc(xdr_sfstest_data), &res);
  if (st_out) *st_out = st;
  bool same = st.ok() && res.sfstest_data_len == bytes.size() &&
              (bytes.empty() || std::memcmp(res.sfstest_data_val, bytes.data(), bytes.size()) == 0);
  if (st.ok()) xdr_free(rpc::as_xdrproc(xdr_sfstest_data), &res);
  return same;
}

inline std::vector<char> pattern(std::size_t n, unsigned seed) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return v;
}

}  // namespace sfs::test
