// session_fuzz: the stateful target. An input is a script for up to two
// clients of one in-process sfsd (fuzz_server.h: SecureServer, FileServer,
// the in-memory backend): logins and logouts, file calls with arbitrary
// arguments and credentials, raw RPC messages sent through the sealed
// channel, waits, disconnects. So the server's per-connection state
// (stage, auth table, failed-login count, calls in progress, leases,
// INVALIDATE to the other client, close) is driven through sequences a
// single-message target never reaches.
//
// Script: one op byte (low 3 bits the kind, bit 7 the client), then the
// kind's operands:
//   0 LOGIN                 alice logs in with her real key
//   1 LOGIN_RAW  n:u8 ...   a login request of n arbitrary bytes
//   2 LOGOUT     k:u8       the k-th auth number this client got (or k)
//   3 CALL       p:u8 a:u8 n:u16 ...   SFS_NFS procedure p, arguments of n
//                           bytes, as auth a (0 anonymous, else the a-th
//                           number this client got, or a itself)
//   4 RAW        n:u16 ...  one RPC message of n bytes, sealed and sent
//   5 SYNC                  wait for every answer outstanding
//   6 CLOSE                 the client disconnects (a later op reconnects)
//   7 ROOTCALL   p a n ...  as CALL, with the sealed root handle put before
//                           the arguments (most procedures start with one)
// Logins are waited for; calls are pipelined. (make_seeds writes scripts.)
//
// Properties: no crash, leak or hang (every call answered or failed within
// 10 s; every connection closed in the end); every reply the server sends
// decodes with sfs_nfs.x's result routine for its procedure (unless a raw
// message may have taken the call's xid).
#include <arpa/inet.h>

#include <cstdarg>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "file_server_internal.h"
#include "fuzz_server.h"
#include "sfs/file_client.h"

namespace {

namespace rpc = asmp::rpc;
using sfs_fuzz::FuzzServer;
using sfs_fuzz::Signal;

// Room for any SFS_NFS result structure.
struct alignas(16) ResultBuf {
  unsigned char bytes[1024];
};
static_assert(sizeof(sfs_GETROOT3res) <= sizeof(ResultBuf) && sizeof(sfs_FSINFO3res) <= sizeof(ResultBuf) &&
              sizeof(sfs_RENAME3res) <= sizeof(ResultBuf) && sizeof(sfs_READDIRPLUS3res) <= sizeof(ResultBuf));

struct RawArgs {
  const std::uint8_t* p;
  u_int n;
};
// Puts arbitrary bytes where a procedure's arguments go. Declared with
// xdrproc_t's own (variadic) type: called through a pointer of another
// function type, a C++ function is undefined behaviour (clang's
// -fsanitize=function says so).
bool_t xdr_raw(XDR* x, ...) {
  va_list ap;
  va_start(ap, x);
  const auto* a = va_arg(ap, const RawArgs*);
  va_end(ap);
  return a->n == 0 || xdr_opaque(x, reinterpret_cast<char*>(const_cast<std::uint8_t*>(a->p)), a->n);
}

std::vector<std::uint8_t> root_handle_xdr() {
  const std::vector<std::uint8_t> h = sfs_fuzz::fuzz_sealer()->seal(sfs_fuzz::FakeBackend::handle(1));
  std::vector<std::uint8_t> out(4 + sfs::fs::xdr_pad(h.size()), 0);
  const std::uint32_t len = htonl(static_cast<std::uint32_t>(h.size()));
  std::memcpy(out.data(), &len, 4);
  std::memcpy(out.data() + 4, h.data(), h.size());
  return out;
}

class Script {
 public:
  Script(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
  bool done() const { return pos_ >= n_; }
  std::uint8_t u8() { return pos_ < n_ ? d_[pos_++] : 0; }
  std::size_t u16() { return std::size_t{u8()} << 8 | u8(); }
  std::pair<const std::uint8_t*, std::size_t> bytes(std::size_t want) {
    const std::size_t take = std::min(want, n_ - std::min(pos_, n_));
    const std::uint8_t* p = d_ + std::min(pos_, n_);
    pos_ += take;
    return {p, take};
  }

 private:
  const std::uint8_t* d_;
  std::size_t n_, pos_ = 0;
};

// One client: a secure session to the server, its auth numbers, its calls
// in flight. Everything here is used from the fuzzer's thread; callbacks
// from the runtime only raise the Signals.
class Client {
 public:
  explicit Client(asmp::color_t color) : color_(color) {}

  bool connected() const { return session_.has_value(); }

  void connect() {
    if (connects_ == kMaxConnects) return;
    ++connects_;
    FuzzServer& server = FuzzServer::get();
    sfs::SecureConnectOptions so;
    so.server = server.name();
    so.address = "127.0.0.1";
    so.port = server.port();
    so.color = color_;
    so.programs.push_back(sfs::fs::callback_program(
        [](const sfs::fs::Handle&, std::uint64_t, sfs::fs::FileClientOptions::Invalidated done) { done(); }));
    so.log = [](const std::string&) {};
    auto result = std::make_shared<std::optional<sfs::Result<sfs::SecureSession>>>();
    auto ready = std::make_shared<Signal>();
    server.count_dialled();
    sfs::secure_connect(std::move(so), asmp::Callback<void(sfs::Result<sfs::SecureSession>)>(
                                           [result, ready](sfs::Result<sfs::SecureSession> r) {
                                             *result = std::move(r);
                                             ready->raise();
                                           },
                                           color_));
    ready->wait_for(1, "secure_connect");
    if (!result->value().ok()) {
      std::fprintf(stderr, "fuzz: the server refused a valid client: %s\n", result->value().error().c_str());
      std::abort();
    }
    session_ = std::move(result->value().value());
    raw_sent_ = false;
    auths_.clear();
  }

  void login(std::optional<sfs::Bytes> request) {
    auto out = std::make_shared<std::optional<sfs::Result<std::uint32_t>>>();
    auto ready = std::make_shared<Signal>();
    asmp::Callback<void(sfs::Result<std::uint32_t>)> cb(
        [out, ready](sfs::Result<std::uint32_t> r) {
          *out = std::move(r);
          ready->raise();
        },
        color_);
    if (request) session_->login_signed(std::move(*request), "fuzz", std::move(cb));
    else session_->login(sfs_fuzz::alice_key(), "alice", std::move(cb));
    ready->wait_for(1, "a login's answer");
    if (out->value().ok()) auths_.push_back(out->value().value());
  }

  std::uint32_t auth(std::uint8_t k) const {
    if (k == 0) return 0;
    return k <= auths_.size() ? auths_[k - 1] : k;
  }

  void logout(std::uint8_t k) { session_->logout(auth(k)); }

  void call(std::uint32_t proc, std::uint32_t auth_number, const std::uint8_t* args, std::size_t n) {
    const auto iface = sfsd::sfs_nfs_interface();
    const xdrproc_t xres = proc < iface->procs.size() ? iface->procs[proc].xres : rpc::as_xdrproc(xdr_void);
    auto res = std::make_shared<ResultBuf>();
    std::memset(res->bytes, 0, sizeof res->bytes);
    RawArgs raw{args, static_cast<u_int>(n)};
    rpc::Auth cred = auth_number ? sfs::auth_number_cred(auth_number) : rpc::Auth::none();
    rpc::CallOptions co;
    co.auth = &cred;
    co.timeout = std::chrono::seconds(10);
    const bool strict = !raw_sent_;
    ++calls_;
    session_->connection()->call(
        SFS_NFS_PROG, SFS_NFS_V3, proc, xdr_raw, &raw, xres, res.get(),
        rpc::CallDone(
            [res, xres, strict, answered = answered_](rpc::RpcStatus st) {
              if (st.error == rpc::RpcError::kTimeout) {
                std::fprintf(stderr, "fuzz: a call was not answered in 10 s\n");
                std::abort();
              }
              if (strict && st.error == rpc::RpcError::kDecodeResult) {
                std::fprintf(stderr, "fuzz: the server's reply did not decode\n");
                std::abort();
              }
              xdr_free(xres, reinterpret_cast<char*>(res->bytes));
              answered->raise();
            },
            color_),
        co);
  }

  void raw(const std::uint8_t* p, std::size_t n) {
    raw_sent_ = true;
    rpc::RecordBuf rec(n);
    rec.append(p, n);
    session_->connection()->transport()->send(std::move(rec));
  }

  void sync() { answered_->wait_for(calls_, "the answers to every call"); }

  // Disconnects once every call has its answer. Not waited for: the
  // server's end (FuzzServer::wait_closed) is what the next input needs.
  void close() {
    if (!session_) return;
    sync();
    session_->close();
    session_.reset();
  }

 private:
  static constexpr int kMaxConnects = 3;
  const asmp::color_t color_;
  std::optional<sfs::SecureSession> session_;
  std::vector<std::uint32_t> auths_;
  bool raw_sent_ = false;
  int connects_ = 0;
  std::size_t calls_ = 0;
  std::shared_ptr<Signal> answered_ = std::make_shared<Signal>();
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<std::uint8_t> root = root_handle_xdr();
  FuzzServer& server = FuzzServer::get();
  server.begin();
  Client clients[2] = {Client(101), Client(102)};
  Script s(data, size);
  while (!s.done()) {
    const std::uint8_t op = s.u8();
    Client& c = clients[op >> 7];
    if (!c.connected()) c.connect();
    if (!c.connected()) break;  // out of reconnects
    switch (op & 7) {
      case 0: c.login(std::nullopt); break;
      case 1: {
        auto [p, n] = s.bytes(s.u8());
        c.login(sfs::Bytes(p, p + n));
        break;
      }
      case 2: c.logout(s.u8()); break;
      case 3:
      case 7: {
        const std::uint32_t proc = s.u8();
        const std::uint32_t auth = c.auth(s.u8());
        auto [p, n] = s.bytes(s.u16());
        if ((op & 7) == 3) {
          c.call(proc, auth, p, n);
        } else {
          std::vector<std::uint8_t> args = root;
          args.insert(args.end(), p, p + n);
          c.call(proc, auth, args.data(), args.size());
        }
        break;
      }
      case 4: {
        auto [p, n] = s.bytes(s.u16());
        c.raw(p, n);
        break;
      }
      case 5: c.sync(); break;
      case 6: c.close(); break;
    }
  }
  for (Client& c : clients) c.close();
  server.wait_closed();
  return 0;
}
