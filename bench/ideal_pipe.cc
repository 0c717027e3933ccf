// ideal_pipe: the ideal encrypted pipeline of issue 10, the floor under any
// encrypted remote read of a cached file on this machine. The server
// preads the file from the page cache into a buffer, seals it there with
// the channel's record format and AEAD (sfs::SealState, in place) and
// writes header and body to a loopback TCP socket; the client reads each
// record, opens it in place (sfs::OpenState) and drops the plaintext. No
// NFS hop, no FUSE, no RPC, no event loop, no copy but the kernel's socket
// copies: what is left of a file system's read path when everything that
// can be cut is cut. bench/run measures it beside the file systems, in the
// same run, as the file system "ideal".
//
//   ideal_pipe serve --dir DIR --port-file FILE [--aead aes-256-gcm|chacha20-poly1305]
//       Listens on 127.0.0.1 (a port the kernel picks, written to FILE);
//       a thread per connection; runs until killed. Serves only the
//       regular files directly in DIR (a name with '/', "." or "..", or a
//       symlink, is refused): whoever can reach the port reads them.
//   ideal_pipe read --port PORT [--block BYTES] FILE...
//       One connection and one thread per FILE, all at once: the server
//       sends its DIR/basename(FILE), FILE is what the size is checked
//       against. Prints "BYTES SECONDS" and exits 0 when every file arrived
//       whole and authentic; non-zero with a message otherwise.
//
// Each connection starts with the key (32 bytes), the block size and the
// name, in clear: this program measures cost, not secrecy. The AEAD
// implementation is the one the channel picks on this CPU (kAuto).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "sfs/aead.h"
#include "sfs/channel.h"

namespace {

constexpr std::size_t kMaxBlock = 4u << 20;

bool read_full(int fd, void* p, std::size_t n) {
  auto* b = static_cast<std::uint8_t*>(p);
  while (n) {
    const ssize_t r = ::read(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_full(int fd, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  while (n) {
    const ssize_t r = ::write(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// header || body with one writev, finishing with write() if it falls short.
bool send_record(int fd, const std::uint8_t* header, const std::uint8_t* body, std::size_t body_len) {
  iovec iov[2] = {{const_cast<std::uint8_t*>(header), sfs::kRecordHeaderBytes},
                  {const_cast<std::uint8_t*>(body), body_len}};
  const std::size_t total = sfs::kRecordHeaderBytes + body_len;
  ssize_t r;
  do r = ::writev(fd, iov, 2);
  while (r < 0 && errno == EINTR);
  if (r < 0) return false;
  auto done = static_cast<std::size_t>(r);
  if (done == total) return true;
  if (done < sfs::kRecordHeaderBytes) {
    if (!write_full(fd, header + done, sfs::kRecordHeaderBytes - done)) return false;
    done = sfs::kRecordHeaderBytes;
  }
  return write_full(fd, body + (done - sfs::kRecordHeaderBytes), total - done);
}

struct Hello {
  sfs::AeadKey key;
  std::uint32_t block;
  std::uint32_t path_len;
};

sfs::AeadAlg parse_alg(const std::string& s, bool* ok) {
  *ok = true;
  if (s == "aes-256-gcm") return sfs::AeadAlg::kAes256Gcm;
  if (s == "chacha20-poly1305") return sfs::AeadAlg::kChaCha20Poly1305;
  *ok = false;
  return sfs::AeadAlg::kAes256Gcm;
}

bool plain_name(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos;
}

void serve_one(int s, int dir, sfs::AeadAlg alg, sfs::AeadImpl impl) {
  Hello h{};
  std::string name;
  if (read_full(s, &h, sizeof h) && h.block > 0 && h.block <= kMaxBlock && h.path_len < 256) {
    name.resize(h.path_len);
    if (!read_full(s, name.data(), name.size())) name.clear();
  }
  const int fd = plain_name(name) ? ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fprintf(stderr, "ideal_pipe serve: refused '%s': %s\n", name.c_str(),
                 fd < 0 ? std::strerror(errno) : "not a regular file");
    if (fd >= 0) ::close(fd);
    ::close(s);
    return;
  }
  sfs::SealState seal(alg, impl, h.key);
  std::vector<std::uint8_t> buf(h.block + sfs::kAeadTagBytes);
  std::uint8_t header[sfs::kRecordHeaderBytes];
  for (off_t off = 0;;) {
    const ssize_t n = ::pread(fd, buf.data(), h.block, off);
    if (n <= 0) break;
    off += n;
    const auto r = seal.seal_in_place(buf, static_cast<std::size_t>(n), std::span(header));
    if (!r.ok() || !send_record(s, header, buf.data(), static_cast<std::size_t>(n) + sfs::kAeadTagBytes)) break;
  }
  ::close(fd);
  ::close(s);
}

int serve(const std::string& dir_path, const std::string& port_file, sfs::AeadAlg alg) {
  ::prctl(PR_SET_NAME, "ideal-server");  // apart from the reader in profiles
  const int dir = ::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    std::fprintf(stderr, "ideal_pipe serve: cannot open directory %s: %s\n", dir_path.c_str(), std::strerror(errno));
    return 1;
  }
  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 64) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::fprintf(stderr, "ideal_pipe serve: cannot listen on 127.0.0.1: %s\n", std::strerror(errno));
    return 1;
  }
  {
    std::ofstream pf(port_file + ".tmp");
    pf << ntohs(a.sin_port) << "\n";
    if (!pf) {
      std::fprintf(stderr, "ideal_pipe serve: cannot write %s\n", port_file.c_str());
      return 1;
    }
  }
  if (std::rename((port_file + ".tmp").c_str(), port_file.c_str()) != 0) return 1;
  const sfs::AeadImpl impl = sfs::choose_aead_impl(alg);
  for (;;) {
    const int s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (s < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::fprintf(stderr, "ideal_pipe serve: accept: %s\n", std::strerror(errno));
      return 1;
    }
    std::thread(serve_one, s, dir, alg, impl).detach();
  }
}

// One file over one connection; the plaintext bytes it opened, or -1.
long long read_one(int port, const std::string& path, std::uint32_t block, sfs::AeadAlg alg, sfs::AeadImpl impl,
                   std::string* err) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    *err = "connect: " + std::string(std::strerror(errno));
    if (s >= 0) ::close(s);
    return -1;
  }
  Hello h{};
  std::ifstream("/dev/urandom", std::ios::binary).read(reinterpret_cast<char*>(h.key.data()), h.key.size());
  h.block = block;
  const std::string name = path.substr(path.rfind('/') + 1);
  h.path_len = static_cast<std::uint32_t>(name.size());
  if (!write_full(s, &h, sizeof h) || !write_full(s, name.data(), name.size())) {
    *err = "sending the request failed";
    ::close(s);
    return -1;
  }
  sfs::OpenState open(alg, impl, h.key);
  std::vector<std::uint8_t> body(block + sfs::kAeadTagBytes);
  std::uint8_t header[sfs::kRecordHeaderBytes];
  long long total = 0;
  while (read_full(s, header, sizeof header)) {
    const auto size = open.record_size(std::span<const std::uint8_t>(header, sizeof header));
    if (!size.ok() || size.bytes < sfs::kRecordOverhead || size.bytes - sfs::kRecordHeaderBytes > body.size()) {
      *err = "a record of a size out of bounds";
      total = -1;
      break;
    }
    const std::size_t n = size.bytes - sfs::kRecordHeaderBytes;
    if (!read_full(s, body.data(), n)) {
      *err = "the stream ended inside a record";
      total = -1;
      break;
    }
    const auto r = open.open_in_place(std::span<const std::uint8_t, sfs::kRecordHeaderBytes>(header),
                                      std::span(body.data(), n));
    if (!r.ok()) {
      *err = "a record did not open: " + std::string(sfs::describe(r.error));
      total = -1;
      break;
    }
    total += static_cast<long long>(r.bytes);
  }
  ::close(s);
  return total;
}

int read_files(int port, std::uint32_t block, sfs::AeadAlg alg, const std::vector<std::string>& files) {
  const sfs::AeadImpl impl = sfs::choose_aead_impl(alg);
  std::vector<long long> got(files.size(), 0);
  std::vector<std::string> errs(files.size());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < files.size(); ++i)
    threads.emplace_back([&, i] { got[i] = read_one(port, files[i], block, alg, impl, &errs[i]); });
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long long total = 0;
  int rc = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    struct stat st {};
    if (got[i] < 0 || ::stat(files[i].c_str(), &st) != 0 || got[i] != st.st_size) {
      std::fprintf(stderr, "ideal_pipe read: %s: %s (%lld bytes arrived)\n", files[i].c_str(),
                   errs[i].empty() ? "not whole" : errs[i].c_str(), got[i]);
      rc = 1;
    }
    total += std::max(got[i], 0LL);
  }
  std::printf("%lld %.4f\n", total, secs);
  return rc;
}

int usage() {
  std::fprintf(stderr,
               "usage: ideal_pipe serve --dir DIR --port-file FILE [--aead aes-256-gcm|chacha20-poly1305]\n"
               "       ideal_pipe read --port PORT [--block BYTES] [--aead ...] FILE...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string mode = argv[1];
  std::string port_file, dir, aead = "aes-256-gcm";
  int port = 0;
  unsigned long block = 1u << 20;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--port-file" && has) port_file = argv[++i];
    else if (a == "--dir" && has) dir = argv[++i];
    else if (a == "--aead" && has) aead = argv[++i];
    else if (a == "--port" && has) port = std::atoi(argv[++i]);
    else if (a == "--block" && has) block = std::strtoul(argv[++i], nullptr, 10);
    else if (a.starts_with("--")) return usage();
    else files.push_back(a);
  }
  bool ok = false;
  const sfs::AeadAlg alg = parse_alg(aead, &ok);
  if (!ok) return usage();
  if (mode == "serve" && !port_file.empty() && !dir.empty() && files.empty()) return serve(dir, port_file, alg);
  if (mode == "read" && port > 0 && port < 65536 && !files.empty() && block > 0 && block <= kMaxBlock)
    return read_files(port, static_cast<std::uint32_t>(block), alg, files);
  return usage();
}
