// fuzz_server.h: a whole sfsd in the fuzzer's process: SecureServer (the
// handshake, the channel, logins) serving FileServer (the file protocol)
// in front of the in-memory FakeBackend, listening on 127.0.0.1 on a port
// of its own. connect_fuzz and session_fuzz talk to it over loopback TCP,
// as a client would: the accept path is private to SecureServer, and
// going through the socket tests the transport's record marking as well.
//
// Everything is fixed so that seeds stay valid from run to run: the keys
// (fuzz_keys.h) and the user database (alice, uid 1000).
//
// Per input, the harness counts the connections it opened and waits
// (wait_closed) until the server has closed them all: nothing of one input
// is left running into the next, and anything still allocated afterwards
// is a leak.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <atomic>
#include <memory>

#include "fake_backend.h"
#include "fuzz_keys.h"
#include "file_server.h"
#include "fuzz_runtime.h"
#include "fuzz_socket.h"
#include "sfs/login.h"
#include "sfs/names.h"
#include "sfs/secure_rpc.h"

namespace sfs_fuzz {

class FuzzServer {
 public:
  static FuzzServer& get() {
    static FuzzServer* s = new FuzzServer;  // lives as long as the process
    return *s;
  }

  const sfs::SelfCertName& name() const { return name_; }
  std::uint16_t port() const { return port_; }

  // Starts an input: a fresh file tree. Not waited for: the backend is
  // only called on color 0, which runs this first.
  void begin() {
    runtime().cpucb(asmp::Closure([b = backend_] { b->reset(); }, 0));
  }
  // A new TCP connection to the server (blocking), counted for wait_closed.
  int dial() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    const int err = fd < 0 ? errno : connect_blocking(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    if (err != 0) {
      std::fprintf(stderr, "fuzz: cannot connect to the server: %s\n", std::strerror(err));
      std::abort();
    }
    ++opened_;
    return fd;
  }
  // Reads and drops what the server sends until it closes (or resets); a
  // server that neither sends nor closes for kHangSeconds is a hang
  // (fuzz_socket.h: a wait that a signal does not cut short).
  static void recv_all(int fd) { recv_until_closed(fd, "the server"); }
  // Counts a connection made by someone else (secure_connect; any thread).
  void count_dialled() { ++opened_; }
  // Waits until every connection counted so far has closed on the server.
  void wait_closed() { closed_.wait_for(opened_, "the server to close every connection"); }

 private:
  FuzzServer() {
    runtime();  // first: the servers take the current runtime
    auto quiet = [](const std::string&) {};
    sfsd::FileServerOptions fo;
    fo.log = quiet;
    fo.invalidate_timeout = std::chrono::seconds(2);
    backend_ = std::make_shared<FakeBackend>();
    files_ = sfsd::FileServer::create(fo, backend_, fuzz_sealer(), FakeBackend::handle(1));

    sfs::SecureServerOptions o;
    // Every client of a fuzz run comes from 127.0.0.1, thousands a second:
    // the per-source handshake limits (tested in tests/conn) would refuse
    // them and the targets would abort on "the server refused a valid
    // client".
    o.handshake_limits.per_source_per_second = 0;
    o.handshake_limits.max_in_progress = 0;
    o.handshake_limits.max_in_progress_per_source = 0;
    o.key = fuzz_server_key();
    o.users = std::make_shared<const sfs::UserDb>(sfs::UserDb::parse(
        sfs::format_user_public_key(alice_key().public_key()) + " alice 1000 1000 27\n", nullptr));
    o.programs.push_back(files_->program());
    // No timers: what an input does must not depend on how fast it runs.
    o.handshake_timeout = o.idle_timeout = o.progress_timeout = std::chrono::milliseconds(0);
    o.on_close = [this](std::uint64_t id) {
      files_->connection_closed(id);
      closed_.raise();
    };
    o.log = quiet;
    server_ = sfs::SecureServer::create(std::move(o));
    if (server_->listen("127.0.0.1", 0) != 0) std::abort();
    port_ = server_->port();
    name_ = sfs::name_for({"127.0.0.1", port_}, fuzz_server_key()->public_key());
  }

  std::shared_ptr<FakeBackend> backend_;
  std::shared_ptr<sfsd::FileServer> files_;
  std::shared_ptr<sfs::SecureServer> server_;
  std::uint16_t port_ = 0;
  sfs::SelfCertName name_;
  std::atomic<std::size_t> opened_{0};  // counted on any thread, read by the fuzzer's
  Signal closed_;
};

}  // namespace sfs_fuzz
