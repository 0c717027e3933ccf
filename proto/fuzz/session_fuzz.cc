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
//   0 SYNC                  wait for every answer outstanding
//   1 LOGIN_RAW  n:u8 ...   a login request of n arbitrary bytes
//   2 LOGOUT     k:u8       the k-th auth number this client got (or k)
//   3 CALL       p:u8 a:u8 n:u16 ...   SFS_NFS procedure p, arguments of n
//                           bytes, as auth a (0 anonymous, else the a-th
//                           number this client got, or a itself)
//   4 RAW        n:u16 ...  one RPC message of n bytes, sealed and sent
//   5 LOGIN                 alice logs in with her real key (at most 4
//                           times per client: each costs a signature)
//   6 CLOSE                 the client disconnects (a later op reconnects)
//   7 ROOTCALL   p a n ...  as CALL, with the sealed root handle put before
//                           the arguments (most procedures start with one)
// Logins and connects are waited for; calls are pipelined. (make_seeds
// writes scripts.)
//
// Properties: no crash, leak or hang (every call answered or failed within
// 30 s; every connection closed in the end); every reply the server sends
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
  const std::vector<std::uint8_t> h = sfs_fuzz::root_sealer(sfs_fuzz::FakeBackend::handle(1))->seal(sfs_fuzz::FakeBackend::handle(1));
  std::vector<std::uint8_t> out(4 + sfs::fs::xdr_pad(h.size()), 0);
  const std::uint32_t len = htonl(static_cast<std::uint32_t>(h.size()));
  std::memcpy(out.data(), &len, 4);
  std::memcpy(out.data() + 4, h.data(), h.size());
  return out;
}

class Script {
 public:
  explicit Script(std::vector<std::uint8_t> d) : d_(std::move(d)) {}
  bool done() const { return pos_ >= d_.size(); }
  std::uint8_t u8() { return pos_ < d_.size() ? d_[pos_++] : 0; }
  std::size_t u16() { return std::size_t{u8()} << 8 | u8(); }
  std::pair<const std::uint8_t*, std::size_t> bytes(std::size_t want) {
    const std::size_t at = std::min(pos_, d_.size());
    const std::size_t take = std::min(want, d_.size() - at);
    pos_ = at + take;
    return {d_.data() + at, take};
  }

 private:
  std::vector<std::uint8_t> d_;
  std::size_t pos_ = 0;
};

// One client: a secure session to the server and its auth numbers.
struct Client {
  static constexpr int kMaxConnects = 3;
  static constexpr int kMaxLogins = 4;
  asmp::color_t color = 0;
  std::optional<sfs::SecureSession> session;
  std::vector<std::uint32_t> auths;
  bool raw_sent = false;  // a raw message may have reused a call's xid
  int connects = 0, logins = 0;

  std::uint32_t auth(std::uint8_t k) const {
    if (k == 0) return 0;
    return k <= auths.size() ? auths[k - 1] : k;
  }
};

// The script's interpreter. It runs on the runtime, under one color of its
// own (kDriver): an op that needs an answer (connect, login, sync)
// continues from the answer's callback, so an input costs the fuzzer's
// thread one wait instead of one per op, which on a busy machine is most
// of the time an input takes. Everything here runs under kDriver.
class Driver : public std::enable_shared_from_this<Driver> {
 public:
  static constexpr asmp::color_t kDriver = 100;

  Driver(std::vector<std::uint8_t> script, std::shared_ptr<Signal> finished)
      : script_(std::move(script)), finished_(std::move(finished)) {
    clients_[0].color = 101;
    clients_[1].color = 102;
  }

  // Runs ops until one has to wait for an answer, or the script ends.
  void step() {
    while (!script_.done()) {
      const std::uint8_t op = script_.u8();
      Client& c = clients_[op >> 7];
      if (!c.session) {
        if (c.connects == Client::kMaxConnects) break;
        return connect(c, op);
      }
      if (!run(c, op)) return;  // resumed by a callback
    }
    for (Client& c : clients_) close(c);
    ending_ = true;
    maybe_finish();
  }

 private:
  // Connects c, then runs `op` on it.
  void connect(Client& c, std::uint8_t op) {
    ++c.connects;
    FuzzServer& server = FuzzServer::get();
    sfs::SecureConnectOptions so;
    so.server = server.name();
    so.address = "127.0.0.1";
    so.port = server.port();
    so.color = c.color;
    so.programs.push_back(sfs::fs::callback_program(
        [](const sfs::fs::Handle&, std::uint64_t, sfs::fs::FileClientOptions::Invalidated done) { done(); }));
    so.log = [](const std::string&) {};
    server.count_dialled();
    sfs::secure_connect(std::move(so), asmp::Callback<void(sfs::Result<sfs::SecureSession>)>(
                                           [self = shared_from_this(), &c, op](sfs::Result<sfs::SecureSession> r) {
                                             if (!r.ok()) {
                                               std::fprintf(stderr, "fuzz: the server refused a valid client: %s\n",
                                                            r.error().c_str());
                                               std::abort();
                                             }
                                             c.session = std::move(r.value());
                                             c.raw_sent = false;
                                             c.auths.clear();
                                             if (self->run(c, op)) self->step();
                                           },
                                           kDriver));
  }

  // One op on a connected client; false if it resumes from a callback.
  bool run(Client& c, std::uint8_t op) {
    switch (op & 7) {
      case 0:
        if (pending_ == 0) return true;
        syncing_ = true;
        return false;
      case 1: {
        auto [p, n] = script_.bytes(script_.u8());
        return login(c, sfs::Bytes(p, p + n));
      }
      case 2: c.session->logout(c.auth(script_.u8())); return true;
      case 3:
      case 7: {
        const std::uint32_t proc = script_.u8();
        const std::uint32_t auth = c.auth(script_.u8());
        auto [p, n] = script_.bytes(script_.u16());
        if ((op & 7) == 3) return call(c, proc, auth, p, n);
        static const std::vector<std::uint8_t> root = root_handle_xdr();
        std::vector<std::uint8_t> args = root;
        args.insert(args.end(), p, p + n);
        return call(c, proc, auth, args.data(), args.size());
      }
      case 4: {
        auto [p, n] = script_.bytes(script_.u16());
        c.raw_sent = true;
        asmp::rpc::RecordBuf rec(n);
        rec.append(p, n);
        c.session->connection()->transport()->send(std::move(rec));  // sealed by the channel
        return true;
      }
      case 5:
        if (c.logins == Client::kMaxLogins) return true;
        ++c.logins;
        return login(c, std::nullopt);
      case 6: close(c); return true;
    }
    return true;
  }

  bool login(Client& c, std::optional<sfs::Bytes> request) {
    asmp::Callback<void(sfs::Result<std::uint32_t>)> cb(
        [self = shared_from_this(), &c](sfs::Result<std::uint32_t> r) {
          if (r.ok()) c.auths.push_back(r.value());
          self->step();
        },
        kDriver);
    if (request) c.session->login_signed(std::move(*request), "fuzz", std::move(cb));
    else c.session->login(sfs_fuzz::alice_key(), "alice", std::move(cb));
    return false;
  }

  bool call(Client& c, std::uint32_t proc, std::uint32_t auth_number, const std::uint8_t* args, std::size_t n) {
    const auto iface = sfsd::sfs_nfs_interface();
    const xdrproc_t xres = proc < iface->procs.size() ? iface->procs[proc].xres : rpc::as_xdrproc(xdr_void);
    auto res = std::make_shared<ResultBuf>();
    std::memset(res->bytes, 0, sizeof res->bytes);
    RawArgs raw{args, static_cast<u_int>(n)};
    rpc::Auth cred = auth_number ? sfs::auth_number_cred(auth_number) : rpc::Auth::none();
    rpc::CallOptions co;
    co.auth = &cred;
    co.timeout = std::chrono::seconds(sfs_fuzz::kHangSeconds);
    ++pending_;
    c.session->connection()->call(
        SFS_NFS_PROG, SFS_NFS_V3, proc, xdr_raw, &raw, xres, res.get(),
        rpc::CallDone(
            [self = shared_from_this(), res, xres, strict = !c.raw_sent](rpc::RpcStatus st) {
              if (st.error == rpc::RpcError::kTimeout) {
                std::fprintf(stderr, "fuzz: a call was not answered in 30 s\n");
                std::abort();
              }
              if (strict && st.error == rpc::RpcError::kDecodeResult) {
                std::fprintf(stderr, "fuzz: the server's reply did not decode\n");
                std::abort();
              }
              xdr_free(xres, reinterpret_cast<char*>(res->bytes));
              self->answered();
            },
            kDriver),
        co);
    return true;
  }

  void answered() {
    --pending_;
    if (pending_ > 0) return;
    if (syncing_) {
      syncing_ = false;
      step();
    }
    maybe_finish();
  }

  // The client disconnects; its calls still out fail (connection lost).
  void close(Client& c) {
    if (!c.session) return;
    c.session->close();
    c.session.reset();
  }

  void maybe_finish() {
    if (ending_ && pending_ == 0 && !finished_raised_) {
      finished_raised_ = true;
      finished_->raise();
    }
  }

  Script script_;
  std::shared_ptr<Signal> finished_;
  Client clients_[2];
  std::size_t pending_ = 0;  // calls without an answer yet
  bool syncing_ = false, ending_ = false, finished_raised_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzServer& server = FuzzServer::get();
  server.begin();
  auto finished = std::make_shared<Signal>();
  auto driver = std::make_shared<Driver>(std::vector<std::uint8_t>(data, data + size), finished);
  sfs_fuzz::runtime().cpucb(asmp::Closure([driver] { driver->step(); }, Driver::kDriver));
  finished->wait_for(1, "the script to run to its end");
  server.wait_closed();
  return 0;
}
