// fake_nfs_server.h: a scripted MOUNT3 + NFSv3 server on 127.0.0.1, for
// tests of NfsClient's connection handling that a real server cannot be
// made to do on cue: hold replies (a slow server that still answers NULL),
// answer nothing at all (a dead one), drop the connection when a given
// procedure arrives (a call that breaks the connection), and count how many
// calls and bytes the client has at the server at once.
//
// One thread (poll) serves every connection on one ephemeral port; MOUNT
// and NFS are told apart by program number, so a client may use the same
// port for both. The replies are minimal but well-formed: MNT gives a fixed
// root handle; GETATTR a directory's attributes; READ `count` zero bytes;
// WRITE FILE_SYNC of all bytes; READDIR(PLUS) an empty, complete listing;
// every other procedure NFS3ERR_NOTSUPP. NULL is answered at once unless
// the server is mute. All methods may be called from any thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sfs_test {

class FakeNfsServer {
 public:
  static constexpr std::uint32_t kMountProg = 100005, kNfsProg = 100003;
  enum Proc : std::uint32_t {
    kNull = 0, kGetattr = 1, kSetattr = 2, kLookup = 3, kAccess = 4, kReadlink = 5, kRead = 6,
    kWrite = 7, kCreate = 8, kMkdir = 9, kSymlink = 10, kMknod = 11, kRemove = 12, kRmdir = 13,
    kRename = 14, kLink = 15, kReaddir = 16, kReaddirplus = 17, kFsstat = 18, kFsinfo = 19,
    kPathconf = 20, kCommit = 21,
  };

  // What one NFS call asked for (the counts the client's caps care about).
  struct Received {
    std::uint32_t proc = 0;
    std::uint64_t bytes = 0;     // READ count or WRITE data length
    std::uint32_t count = 0;     // READ/READDIR count, READDIRPLUS maxcount
    std::uint32_t dircount = 0;  // READDIRPLUS dircount
    std::uint32_t uid = 0;       // from its AUTH_UNIX credentials
  };

  FakeNfsServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 16) != 0)
      return;
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) return;
    thread_ = std::thread([this] { run(); });
  }

  ~FakeNfsServer() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    wake();
    if (thread_.joinable()) thread_.join();
    for (auto& [fd, c] : conns_) close(fd);
    if (listen_fd_ >= 0) close(listen_fd_);
    for (int fd : wake_)
      if (fd >= 0) close(fd);
  }

  std::uint16_t port() const { return port_; }
  static std::vector<std::uint8_t> root_handle() { return {'f', 'a', 'k', 'e', '-', 'r', 'o', 'o', 't'}; }

  // Hold the replies to NFS calls (not NULL) of the given procedures until
  // release() / set_hold({}); an empty set holds nothing.
  void set_hold(std::set<std::uint32_t> procs) {
    bool none = procs.empty();
    {
      std::lock_guard lk(mu_);
      hold_ = std::move(procs);
    }
    if (none) release();
  }
  void release() {
    {
      std::lock_guard lk(mu_);
      release_ = true;
    }
    wake();
  }
  // Mute: answer nothing, not even NULL (a stopped server: TCP stays open).
  // Unmuting answers what was held.
  void set_mute(bool m) {
    {
      std::lock_guard lk(mu_);
      mute_ = m;
      if (!m) release_ = true;
    }
    wake();
  }
  // Close the connection as soon as a call of this procedure arrives.
  void set_close_on(std::uint32_t proc) {
    std::lock_guard lk(mu_);
    close_on_ = proc;
  }

  int outstanding() const {
    std::lock_guard lk(mu_);
    return outstanding_;
  }
  int max_outstanding() const {
    std::lock_guard lk(mu_);
    return max_outstanding_;
  }
  std::uint64_t max_outstanding_bytes() const {
    std::lock_guard lk(mu_);
    return max_outstanding_bytes_;
  }
  int connections() const {
    std::lock_guard lk(mu_);
    return accepted_;
  }
  int nulls() const {
    std::lock_guard lk(mu_);
    return nulls_;
  }
  // The source port of every connection accepted so far.
  std::vector<int> peer_ports() const {
    std::lock_guard lk(mu_);
    return peer_ports_;
  }
  std::vector<Received> received() const {
    std::lock_guard lk(mu_);
    return received_;
  }
  int count(std::uint32_t proc) const {
    std::lock_guard lk(mu_);
    return static_cast<int>(std::count_if(received_.begin(), received_.end(),
                                          [proc](const Received& r) { return r.proc == proc; }));
  }

  // Waits (bounded) until pred() holds; true if it did.
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

 private:
  struct Held {
    std::vector<std::uint8_t> reply;
    std::uint64_t bytes = 0;
    bool counted = false;  // in outstanding_ (an NFS call other than NULL)
  };
  struct Conn {
    std::vector<std::uint8_t> in;
    std::vector<Held> held;
  };

  void wake() {
    char b = 1;
    [[maybe_unused]] auto n = write(wake_[1], &b, 1);
  }

  static void put(std::vector<std::uint8_t>& v, std::uint32_t w) {
    v.push_back(static_cast<std::uint8_t>(w >> 24));
    v.push_back(static_cast<std::uint8_t>(w >> 16));
    v.push_back(static_cast<std::uint8_t>(w >> 8));
    v.push_back(static_cast<std::uint8_t>(w));
  }
  static void put64(std::vector<std::uint8_t>& v, std::uint64_t w) {
    put(v, static_cast<std::uint32_t>(w >> 32));
    put(v, static_cast<std::uint32_t>(w));
  }
  static void put_opaque(std::vector<std::uint8_t>& v, const std::vector<std::uint8_t>& b) {
    put(v, static_cast<std::uint32_t>(b.size()));
    v.insert(v.end(), b.begin(), b.end());
    while (v.size() % 4) v.push_back(0);
  }

  // A big-endian reader over one call's bytes.
  struct Reader {
    const std::uint8_t* p;
    std::size_t n, at = 0;
    std::uint32_t u32() {
      if (at + 4 > n) {
        at = n;
        return 0;
      }
      std::uint32_t w = (std::uint32_t(p[at]) << 24) | (std::uint32_t(p[at + 1]) << 16) |
                        (std::uint32_t(p[at + 2]) << 8) | p[at + 3];
      at += 4;
      return w;
    }
    std::uint64_t u64() {
      std::uint64_t hi = u32();
      return (hi << 32) | u32();
    }
    std::uint32_t opaque() {  // skips it, returns its length
      std::uint32_t len = u32();
      at = std::min(n, at + ((len + 3u) & ~3u));
      return len;
    }
  };

  static std::vector<std::uint8_t> reply_header(std::uint32_t xid) {
    std::vector<std::uint8_t> v;
    put(v, 0);  // record mark, filled in later
    put(v, xid);
    put(v, 1);  // REPLY
    put(v, 0);  // MSG_ACCEPTED
    put(v, 0);  // verifier AUTH_NONE
    put(v, 0);
    put(v, 0);  // SUCCESS
    return v;
  }
  static void seal(std::vector<std::uint8_t>& v) {
    std::uint32_t len = static_cast<std::uint32_t>(v.size() - 4) | 0x80000000u;
    v[0] = static_cast<std::uint8_t>(len >> 24);
    v[1] = static_cast<std::uint8_t>(len >> 16);
    v[2] = static_cast<std::uint8_t>(len >> 8);
    v[3] = static_cast<std::uint8_t>(len);
  }

  static void fattr_dir(std::vector<std::uint8_t>& v) {
    put(v, 2);  // NF3DIR
    put(v, 0755);
    put(v, 2);  // nlink
    put(v, 0);  // uid
    put(v, 0);  // gid
    put64(v, 4096);
    put64(v, 4096);
    put(v, 0);
    put(v, 0);  // rdev
    put64(v, 1);  // fsid
    put64(v, 1);  // fileid
    for (int i = 0; i < 6; ++i) put(v, 0);  // atime mtime ctime
  }

  // Words of `false` that a NOTSUPP reply of each procedure carries (its
  // resfail: post_op_attr and wcc_data booleans), RFC 1813.
  static int resfail_words(std::uint32_t proc) {
    switch (proc) {
      case kGetattr: return 0;
      case kLookup: case kAccess: case kReadlink: case kRead: case kReaddir: case kReaddirplus:
      case kFsstat: case kFsinfo: case kPathconf: return 1;
      case kLink: return 3;
      case kRename: return 4;
      default: return 2;
    }
  }

  // Builds the reply to one call and fills in r (what it asked for).
  static std::vector<std::uint8_t> answer(std::uint32_t xid, std::uint32_t prog, std::uint32_t proc,
                                          Reader& args, Received& r) {
    std::vector<std::uint8_t> v = reply_header(xid);
    r.proc = proc;
    if (proc == kNull) {
      seal(v);
      return v;
    }
    if (prog == kMountProg) {  // MNT (proc 1): ok, the root handle, AUTH_UNIX
      put(v, 0);
      put_opaque(v, root_handle());
      put(v, 1);
      put(v, 1);
      seal(v);
      return v;
    }
    args.opaque();  // every NFSv3 call starts with a file handle (or diropargs)
    switch (proc) {
      case kGetattr:
        put(v, 0);
        fattr_dir(v);
        break;
      case kRead: {
        args.u64();
        r.count = args.u32();
        r.bytes = r.count;
        put(v, 0);
        put(v, 0);  // no post_op_attr
        put(v, r.count);
        put(v, 0);  // eof false
        put_opaque(v, std::vector<std::uint8_t>(r.count, 0));
        break;
      }
      case kWrite: {
        args.u64();
        args.u32();  // count
        args.u32();  // stable
        r.bytes = args.opaque();
        put(v, 0);
        put(v, 0);
        put(v, 0);  // wcc_data: nothing before, nothing after
        put(v, static_cast<std::uint32_t>(r.bytes));
        put(v, 2);  // FILE_SYNC
        put64(v, 0x5645524946494552ull);  // "VERIFIER"
        break;
      }
      case kReaddir:
      case kReaddirplus:
        args.u64();  // cookie
        args.u64();  // cookieverf
        if (proc == kReaddir) {
          r.count = args.u32();
        } else {
          r.dircount = args.u32();
          r.count = args.u32();
        }
        put(v, 0);
        put(v, 0);   // no dir attributes
        put64(v, 0);  // cookieverf
        put(v, 0);   // no entries
        put(v, 1);   // eof
        break;
      default:
        put(v, 10004);  // NFS3ERR_NOTSUPP
        for (int i = 0; i < resfail_words(proc); ++i) put(v, 0);
        break;
    }
    seal(v);
    return v;
  }

  // Handles the complete records in c.in; false if the connection must close.
  bool on_records(int fd, Conn& c) {
    for (;;) {
      if (c.in.size() < 4) return true;
      std::uint32_t mark = (std::uint32_t(c.in[0]) << 24) | (std::uint32_t(c.in[1]) << 16) |
                           (std::uint32_t(c.in[2]) << 8) | c.in[3];
      std::size_t len = mark & 0x7fffffffu;  // libnfs sends one fragment per record
      if (c.in.size() < 4 + len) return true;
      Reader rd{c.in.data() + 4, len};
      std::uint32_t xid = rd.u32();
      rd.u32();  // CALL
      rd.u32();  // RPC version
      std::uint32_t prog = rd.u32();
      rd.u32();  // version
      std::uint32_t proc = rd.u32();
      Received r;
      std::uint32_t flavor = rd.u32();
      std::size_t cred_end = rd.at + 4 + ((Reader{rd.p, rd.n, rd.at}.u32() + 3u) & ~3u);
      if (flavor == 1) {  // AUTH_UNIX: stamp, machinename, uid, ...
        rd.u32();
        rd.u32();
        rd.opaque();
        r.uid = rd.u32();
      }
      rd.at = std::min(rd.n, cred_end);
      rd.u32();
      rd.opaque();  // verifier
      Held h;
      h.reply = answer(xid, prog, proc, rd, r);
      h.bytes = r.bytes;
      h.counted = prog == kNfsProg && proc != kNull;
      c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(4 + len));
      if (h.counted) received_.push_back(r);
      if (proc == kNull) ++nulls_;
      if (prog == kNfsProg && close_on_ && proc == *close_on_) return false;
      bool hold = mute_ || (h.counted && hold_.count(proc));
      if (hold) {
        if (h.counted) {
          ++outstanding_;
          outstanding_bytes_ += h.bytes;
          max_outstanding_ = std::max(max_outstanding_, outstanding_);
          max_outstanding_bytes_ = std::max(max_outstanding_bytes_, outstanding_bytes_);
        }
        c.held.push_back(std::move(h));
      } else if (!send_all(fd, h.reply)) {
        return false;
      }
    }
  }

  static bool send_all(int fd, const std::vector<std::uint8_t>& b) {
    std::size_t off = 0;
    while (off < b.size()) {
      ssize_t n = send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // blocking socket: only errors end here
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  void drop(int fd) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    for (auto& h : it->second.held) {
      if (!h.counted) continue;
      --outstanding_;
      outstanding_bytes_ -= h.bytes;
    }
    conns_.erase(it);
    close(fd);
  }

  void run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
      if (release_ && !mute_) {
        release_ = false;
        std::vector<int> dead;
        for (auto& [fd, c] : conns_) {
          std::vector<Held> held;
          held.swap(c.held);
          for (auto& h : held) {
            if (h.counted) {
              --outstanding_;
              outstanding_bytes_ -= h.bytes;
            }
            if (!send_all(fd, h.reply)) {
              dead.push_back(fd);
              break;
            }
          }
        }
        for (int fd : dead) drop(fd);
      }
      std::vector<pollfd> fds;
      fds.push_back({listen_fd_, POLLIN, 0});
      fds.push_back({wake_[0], POLLIN, 0});
      for (auto& [fd, c] : conns_) fds.push_back({fd, POLLIN, 0});
      lk.unlock();
      poll(fds.data(), fds.size(), 1000);
      lk.lock();
      if (fds[1].revents) {
        char buf[64];
        while (read(wake_[0], buf, sizeof buf) > 0) {
        }
      }
      if (fds[0].revents & POLLIN) {
        sockaddr_in peer{};
        socklen_t plen = sizeof peer;
        int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
        if (fd >= 0) {
          conns_[fd];
          ++accepted_;
          peer_ports_.push_back(ntohs(peer.sin_port));
        }
      }
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        int fd = fds[i].fd;
        auto it = conns_.find(fd);
        if (it == conns_.end()) continue;
        std::uint8_t buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          drop(fd);
          continue;
        }
        if (n < 0) continue;
        it->second.in.insert(it->second.in.end(), buf, buf + n);
        if (!on_records(fd, it->second)) drop(fd);
      }
    }
  }

  mutable std::mutex mu_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread thread_;
  bool stop_ = false;
  bool release_ = false;
  bool mute_ = false;
  std::set<std::uint32_t> hold_;
  std::optional<std::uint32_t> close_on_;
  std::map<int, Conn> conns_;
  std::vector<Received> received_;
  std::vector<int> peer_ports_;
  int outstanding_ = 0, max_outstanding_ = 0, accepted_ = 0, nulls_ = 0;
  std::uint64_t outstanding_bytes_ = 0, max_outstanding_bytes_ = 0;
};

}  // namespace sfs_test
