// key_holder.cc: the server key in a process of its own (key_holder.h).
#include "key_holder.h"

#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>

namespace sfsd {

namespace {

constexpr std::uint8_t kOpDh = 1;
constexpr std::uint8_t kOpSign = 2;
constexpr std::size_t kMaxSigned = 256;
constexpr std::size_t kSeq = 8;  // the sequence number heading both ways
constexpr int kReplyTimeoutMs = 2000;

// ---- the holder (child) ------------------------------------------------------

// Closes every descriptor but `keep` (stdin, stdout and stderr included:
// the holder writes nothing).
void close_all_but(int keep) {
  for (int fd = 0; fd < keep; ++fd) ::close(fd);
  ::close_range(static_cast<unsigned>(keep) + 1, ~0u, 0);
}

[[noreturn]] void hold(int fd, pid_t parent, const sfs::ServerKey& key) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);  // sfsd died before the line above
  ::prctl(PR_SET_DUMPABLE, 0);
  ::prctl(PR_SET_NAME, "sfsd-key");
  // sfsd's handlers are not ours; its signals (SIGTERM to drain, SIGHUP)
  // must not stop the holder before sfsd has finished with it.
  for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE}) ::signal(sig, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  close_all_but(fd);
  std::uint8_t in[1 + kSeq + kMaxSigned];
  // The larger of the two answers: a DH result or a signature.
  std::uint8_t out[kSeq + std::max<std::size_t>(1 + sfs::kKeyBytes, sizeof(sfs::Signature))];
  constexpr ssize_t kHead = 1 + kSeq;
  for (;;) {
    const ssize_t n = ::recv(fd, in, sizeof in, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // sfsd closed its end (or is gone)
    ssize_t sent = -1;
    if (n >= kHead) std::memcpy(out, in + 1, kSeq);  // the answer carries the question's number
    if (in[0] == kOpDh && n == kHead + static_cast<ssize_t>(sfs::kKeyBytes)) {
      std::span<std::uint8_t, sfs::kKeyBytes> shared(out + kSeq + 1, sfs::kKeyBytes);
      out[kSeq] = key.dh(shared, {in + kHead, sfs::kKeyBytes}) ? 1 : 0;
      sent = ::send(fd, out, kSeq + 1 + sfs::kKeyBytes, MSG_NOSIGNAL);
      sodium_memzero(out, sizeof out);
    } else if (in[0] == kOpSign && n >= kHead) {
      const sfs::Signature sig = key.sign({in + kHead, static_cast<std::size_t>(n - kHead)});
      std::memcpy(out + kSeq, sig.data(), sig.size());
      sent = ::send(fd, out, kSeq + sig.size(), MSG_NOSIGNAL);
    }
    if (sent < 0) break;  // a malformed request or a broken pair: stop
  }
  ::_exit(0);
}

// ---- sfsd's side -------------------------------------------------------------

class HeldServerKey final : public sfs::ServerKeyOps {
 public:
  HeldServerKey(int fd, pid_t pid, sfs::ServerPublicKey pub, std::function<void(const std::string&)> log)
      : fd_(fd), pid_(pid), pub_(pub), log_(std::move(log)) {}
  ~HeldServerKey() override {
    ::close(fd_);  // the holder sees end of file and exits
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }

  const sfs::ServerPublicKey& public_key() const override { return pub_; }

  bool dh(std::span<std::uint8_t, sfs::kKeyBytes> out, sfs::ByteSpan peer_public) const override {
    if (peer_public.size() != sfs::kKeyBytes) return false;
    std::uint8_t req[1 + kSeq + sfs::kKeyBytes];
    req[0] = kOpDh;
    std::memcpy(req + 1 + kSeq, peer_public.data(), sfs::kKeyBytes);
    std::uint8_t reply[1 + sfs::kKeyBytes];
    const bool ok = ask(req, sizeof req, reply, sizeof reply) && reply[0] == 1;
    if (ok) std::memcpy(out.data(), reply + 1, sfs::kKeyBytes);
    sodium_memzero(reply, sizeof reply);
    return ok;
  }

  sfs::Signature sign(sfs::ByteSpan message) const override {
    sfs::Signature sig{};
    if (message.size() > kMaxSigned) return sig;
    std::uint8_t req[1 + kSeq + kMaxSigned];
    req[0] = kOpSign;
    std::memcpy(req + 1 + kSeq, message.data(), message.size());
    if (!ask(req, 1 + kSeq + message.size(), sig.data(), sig.size())) sig.fill(0);
    return sig;
  }

 private:
  // One question (req: op, room for the sequence number, the payload) and
  // its answer (reply_len bytes after the number), under the lock (the pair
  // carries one exchange at a time). An answer to an earlier question, one
  // that came after its asker gave up, is dropped. No answer in time fails
  // this question only; a holder gone or answering garbage fails every
  // later one.
  bool ask(std::uint8_t* req, std::size_t req_len, std::uint8_t* reply, std::size_t reply_len) const {
    std::lock_guard lk(mu_);
    if (broken_) return false;
    const std::uint64_t seq = ++seq_;
    std::memcpy(req + 1, &seq, kSeq);
    const char* why = nullptr;
    ssize_t n;
    while ((n = ::send(fd_, req, req_len, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    // Room for either answer and then some: a longer one is malformed.
    std::uint8_t in[kSeq + 1 + sfs::kKeyBytes + sizeof(sfs::Signature)];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
    if (n != static_cast<ssize_t>(req_len)) why = "cannot reach it";
    while (!why) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      int r;
      while ((r = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)))) < 0 && errno == EINTR) {
      }
      if (r == 0) {
        sodium_memzero(in, sizeof in);
        if (log_) log_("server key holder did not answer in 2 s: this handshake fails; its answer will be dropped");
        return false;
      }
      while ((n = ::recv(fd_, in, sizeof in, 0)) < 0 && errno == EINTR) {
      }
      std::uint64_t got = 0;
      if (n >= static_cast<ssize_t>(kSeq)) std::memcpy(&got, in, kSeq);
      if (n == 0) {
        why = "it has exited";
      } else if (n < static_cast<ssize_t>(kSeq) || got > seq) {
        why = "its answer was malformed";
      } else if (got < seq) {
        continue;  // a late answer to a question already given up on
      } else if (n != static_cast<ssize_t>(kSeq + reply_len)) {
        why = "its answer was malformed";
      } else {
        std::memcpy(reply, in + kSeq, reply_len);
        sodium_memzero(in, sizeof in);
        return true;
      }
    }
    sodium_memzero(in, sizeof in);
    broken_ = true;
    if (log_) log_(std::string("server key holder lost (") + why + "): every new handshake fails until sfsd restarts");
    return false;
  }

  const int fd_;
  const pid_t pid_;
  const sfs::ServerPublicKey pub_;
  const std::function<void(const std::string&)> log_;
  mutable std::mutex mu_;
  mutable bool broken_ = false;    // under mu_
  mutable std::uint64_t seq_ = 0;  // under mu_: the last question's number
};

}  // namespace

sfs::Result<std::shared_ptr<const sfs::ServerKeyOps>> start_key_holder(
    std::shared_ptr<const sfs::ServerKey> key, std::function<void(const std::string&)> log) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return sfs::make_error(std::string("server key holder: socketpair: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    return sfs::make_error(std::string("server key holder: fork: ") + std::strerror(err));
  }
  if (pid == 0) hold(sv[1], parent, *key);
  ::close(sv[1]);
  return std::shared_ptr<const sfs::ServerKeyOps>(
      std::make_shared<HeldServerKey>(sv[0], pid, key->public_key(), std::move(log)));
}

}  // namespace sfsd
