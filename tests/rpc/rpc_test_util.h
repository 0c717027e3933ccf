// rpc_test_util.h: a runtime on a background thread, the sfstest program
// served on loopback, and bounded waits. Every wait has a deadline, so a
// broken build fails a test instead of hanging it.
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
#include <thread>
#include <vector>

#include "asmp/rpc.h"
#include "asmp/runtime.h"
#include "sfs/sfs_test.h"

namespace asmp::rpc::test {

using namespace std::chrono_literals;

// Polls pred until it holds or the deadline passes.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A Runtime running on a thread of its own for the life of the object.
class RunningRuntime {
 public:
  explicit RunningRuntime(unsigned threads = 2) : rt_(RuntimeOptions{.threads = threads}) {
    thread_ = std::thread([this] { rt_.run(); });
  }
  ~RunningRuntime() {
    rt_.stop();
    thread_.join();
  }
  Runtime& rt() { return rt_; }

 private:
  Runtime rt_;
  std::thread thread_;
};

inline std::shared_ptr<const Interface> sfstest_interface() {
  auto i = std::make_shared<Interface>();
  i->prog = SFSTEST_PROG;
  i->vers = SFSTEST_V1;
  i->procs = {
      proc(xdr_void, xdr_void),                       // NULL
      proc(xdr_sfstest_data, xdr_sfstest_data),       // ECHO
      proc(xdr_sfstest_pair, xdr_int),                // ADD
      proc(xdr_sfstest_delay_arg, xdr_u_int),         // DELAY
      proc(xdr_u_int, xdr_void),                      // NOREPLY
      proc(xdr_void, xdr_void),                       // SEAL
  };
  return i;
}

// XOR with a key byte plus a 4-byte additive checksum: enough to prove that
// every record goes through the filter and that a damaged one is refused.
class XorFilter : public RecordFilter {
 public:
  explicit XorFilter(unsigned char key) : key_(key) {}
  bool seal(RecordBuf& r) override {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
      sum += static_cast<unsigned char>(r.data()[i]);
      r.data()[i] = static_cast<char>(r.data()[i] ^ key_);
    }
    r.append(&sum, 4);
    sealed.fetch_add(1);
    return true;
  }
  bool open(RecordBuf& r) override {
    if (r.size() < 4) return false;
    std::uint32_t want;
    std::memcpy(&want, r.data() + r.size() - 4, 4);
    r.resize(r.size() - 4);
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
      r.data()[i] = static_cast<char>(r.data()[i] ^ key_);
      sum += static_cast<unsigned char>(r.data()[i]);
    }
    opened.fetch_add(1);
    return sum == want;
  }
  std::atomic<int> sealed{0}, opened{0};

 private:
  unsigned char key_;
};

// The sfstest program, served on 127.0.0.1 with an ephemeral port.
//   ECHO    answers its argument
//   ADD     a + b, and remembers the caller's credential
//   DELAY   answers tag after delay_ms, from a timer under color 0
//   NOREPLY 0: drops the call (so SYSTEM_ERR goes back), 1: holds it
//   SEAL    answers, then turns the XOR filter on for this connection
class TestServer {
 public:
  explicit TestServer(ServerOptions opts = {}) {
    auto progs = std::make_shared<Programs>();
    Program p;
    p.iface = *sfstest_interface();
    p.dispatch = [this](Call c) { dispatch(std::move(c)); };
    p.flavors = {AUTH_NONE, AUTH_SYS};  // AuthSysReachesTheHandler checks what arrives
    progs->add(std::move(p));
    server_ = Server::create(progs, std::move(opts));
    int err = server_->listen("127.0.0.1", 0);
    EXPECT_EQ(err, 0);
  }
  ~TestServer() { shutdown(); }

  void shutdown() {
    {
      std::lock_guard lk(mu_);
      held_.clear();
    }
    server_->close();
    EXPECT_TRUE(eventually([&] { return server_->connections() == 0; }));
  }

  std::uint16_t port() const { return server_->port(); }
  Server& server() { return *server_; }

  std::mutex mu_;
  Cred last_cred;
  std::vector<Call> held_;
  std::shared_ptr<XorFilter> filter = std::make_shared<XorFilter>(0x5a);
  // Hook for tests that need a handler of their own for ADD.
  std::function<void(Call&)> on_add;
  // And for ECHO: true if it answered.
  std::function<bool(Call&)> on_echo;

 private:
  void dispatch(Call c) {
    switch (c.proc()) {
      case SFSTEST_NULL: c.reply(nullptr); break;
      case SFSTEST_ECHO:
        if (!on_echo || !on_echo(c)) c.reply(c.args<sfstest_data>());
        break;
      case SFSTEST_ADD: {
        if (on_add) on_add(c);
        {
          std::lock_guard lk(mu_);
          last_cred = c.cred();
        }
        auto* a = c.args<sfstest_pair>();
        int sum = a->a + a->b;
        c.reply(&sum);
        break;
      }
      case SFSTEST_DELAY: {
        auto* a = c.args<sfstest_delay_arg>();
        auto ms = std::chrono::milliseconds(a->delay_ms);
        auto held = std::make_shared<Call>(std::move(c));
        delaycb(ms, Closure([held] {
                  u_int tag = held->args<sfstest_delay_arg>()->tag;
                  held->reply(&tag);
                }, 0));
        break;
      }
      case SFSTEST_NOREPLY:
        if (*c.args<u_int>() == 1) {
          std::lock_guard lk(mu_);
          held_.push_back(std::move(c));
        }
        break;  // 0: c goes out of scope unanswered
      case SFSTEST_SEAL: {
        c.reply(nullptr);
        c.connection()->transport()->set_filter(filter);
        break;
      }
    }
  }

  std::shared_ptr<Server> server_;
};

// A blocking loopback socket with a 5 s receive timeout (and send timeout,
// so that a test writing to a server that stopped reading cannot hang).
// rcvbuf > 0 fixes its receive buffer (the kernel would otherwise grow it
// to tens of MiB on loopback, hiding a server's queue inside it).
class RawPeer {
 public:
  explicit RawPeer(std::uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  ~RawPeer() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  int fd() const { return fd_; }

  bool send_all(const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n) {
      ssize_t r = ::send(fd_, c, n, MSG_NOSIGNAL);
      if (r <= 0) return false;
      c += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  void send_words(std::initializer_list<std::uint32_t> words) {
    for (std::uint32_t w : words) {
      std::uint32_t be = htonl(w);
      send_all(&be, 4);
    }
  }
  // Sends words as one single-fragment record.
  void send_record(const std::vector<std::uint32_t>& words) {
    std::vector<std::uint32_t> out;
    out.push_back(htonl(0x80000000u | static_cast<std::uint32_t>(4 * words.size())));
    for (std::uint32_t w : words) out.push_back(htonl(w));
    send_all(out.data(), out.size() * 4);
  }
  // Reads one record (any number of fragments) as words; empty on EOF.
  std::vector<std::uint32_t> read_record() {
    std::vector<char> rec;
    for (;;) {
      std::uint32_t hdr;
      if (!read_exact(&hdr, 4)) return {};
      hdr = ntohl(hdr);
      std::size_t len = hdr & 0x7fffffff;
      std::size_t old = rec.size();
      rec.resize(old + len);
      if (!read_exact(rec.data() + old, len)) return {};
      if (hdr & 0x80000000u) break;
    }
    std::vector<std::uint32_t> words(rec.size() / 4);
    for (std::size_t i = 0; i < words.size(); ++i) {
      std::uint32_t w;
      std::memcpy(&w, rec.data() + 4 * i, 4);
      words[i] = ntohl(w);
    }
    return words;
  }
  // True if the peer closed the connection (EOF or reset) within 5 s.
  bool closed_by_peer() {
    char c;
    ssize_t r = ::recv(fd_, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
  }
  // A clean end of stream (not a reset, not data) within 5 s.
  bool eof() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }
  bool read_exact(void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n) {
      ssize_t r = ::recv(fd_, c, n, 0);
      if (r <= 0) return false;
      c += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }

 private:
  int fd_ = -1;
};

// xid, CALL, rpcvers, prog, vers, proc, AUTH_NONE cred and verifier.
inline std::vector<std::uint32_t> call_header(std::uint32_t xid, std::uint32_t proc,
                                       std::uint32_t prog = SFSTEST_PROG, std::uint32_t vers = SFSTEST_V1,
                                       std::uint32_t rpcvers = 2) {
  return {xid, 0, rpcvers, prog, vers, proc, 0, 0, 0, 0};
}

// Connects synchronously (from the test thread) and returns the connection.
inline std::shared_ptr<Connection> connect_to(std::uint16_t port, color_t color,
                                              TransportOptions topts = {}) {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<Connection> got;
  int error = -1;
  connect("127.0.0.1", port, color, {}, topts,
          Callback<void(std::shared_ptr<Connection>, int)>(
              [&](std::shared_ptr<Connection> c, int err) {
                std::lock_guard lk(mu);
                got = std::move(c);
                error = err;
                cv.notify_all();
              },
              color));
  std::unique_lock lk(mu);
  cv.wait_for(lk, 10s, [&] { return error != -1; });
  EXPECT_EQ(error, 0);
  return got;
}

// A call made from the test thread, waited for.
struct SyncResult {
  RpcStatus status;
  int calls = 0;
};

inline SyncResult call_sync(const Client& cl, std::uint32_t proc, xdrproc_t xargs, const void* args,
                            xdrproc_t xres, void* res, std::chrono::milliseconds limit = 10s) {
  auto out = std::make_shared<SyncResult>();
  auto done = std::make_shared<std::atomic<bool>>(false);
  cl.call(proc, xargs, args, xres, res, CallDone([out, done](RpcStatus st) {
            out->status = st;
            out->calls++;
            done->store(true);
          }, cl.connection()->color()));
  EXPECT_TRUE(eventually([&] { return done->load(); }, limit)) << "call did not complete";
  return *out;
}

// The same, with the interface's xdr routines for proc.
inline SyncResult call_sync(const Client& cl, std::uint32_t proc, const void* args, void* res,
                            std::chrono::milliseconds limit = 10s) {
  const Proc p = sfstest_interface()->procs.at(proc);
  return call_sync(cl, proc, p.xargs, args, p.xres, res, limit);
}

}  // namespace asmp::rpc::test
