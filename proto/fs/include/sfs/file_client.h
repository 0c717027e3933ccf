// file_client.h: the client side of the SFS file protocol, written once and
// shared by sfsclient, the tests and the benchmarks: connect to a
// self-certifying name (the handshake checks the server's key against the
// HOSTID), log users in (with their key, or with a request their agent
// signed), call every SFS_NFS procedure asynchronously, and receive the
// server's INVALIDATE callbacks.
//
// Contract
//   - FileClient::connect runs secure_connect and then GETROOT; its
//     callback (under its own color) gets a client that knows the export's
//     root handle, its attributes, FSINFO and the server's lease time.
//   - call<PROC>(auth, args, cb): any thread. The arguments are encoded
//     before call() returns (they may live on the caller's stack). cb runs
//     exactly once, under its own color, with the RPC status and the
//     decoded result, which frees itself (Reply<Res>).
//   - read(): READ with its data decoded in place (no copy): the bytes the
//     view points to live until the callback returns.
//   - INVALIDATE from the server runs options.on_invalidate on the
//     connection's color, in channel order relative to the replies; the
//     server gets its answer when on_invalidate says it is done. A lost connection runs options.on_close
//     once; every pending call fails with kConnectionLost, and every lease
//     this connection carried is void.
//   - File handles are byte strings (at most 128 bytes, opaque: sealed by
//     the server). Auth number 0 is the anonymous user.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "asmp/rpc.h"
#include "sfs/fs_wire.h"
#include "sfs/secure_rpc.h"
#include "sfs/sfs_nfs.h"

namespace sfs::fs {

namespace rpc = asmp::rpc;
using Handle = std::string;  // sealed file handle bytes

// The XDR argument and result types and routines of each procedure.
template <std::uint32_t Proc>
struct ProcTraits;
#define SFS_FS_PROC(P, A, R)                                             \
  template <>                                                            \
  struct ProcTraits<P> {                                                 \
    using Args = A;                                                      \
    using Res = R;                                                       \
    static xdrproc_t xargs() { return rpc::as_xdrproc(xdr_##A); }        \
    static xdrproc_t xres() { return rpc::as_xdrproc(xdr_##R); }         \
  };
SFS_FS_PROC(SFS_NFSPROC3_GETATTR, sfs_GETATTR3args, sfs_GETATTR3res)
SFS_FS_PROC(SFS_NFSPROC3_SETATTR, sfs_SETATTR3args, sfs_SETATTR3res)
SFS_FS_PROC(SFS_NFSPROC3_LOOKUP, sfs_LOOKUP3args, sfs_LOOKUP3res)
SFS_FS_PROC(SFS_NFSPROC3_ACCESS, sfs_ACCESS3args, sfs_ACCESS3res)
SFS_FS_PROC(SFS_NFSPROC3_READLINK, sfs_READLINK3args, sfs_READLINK3res)
SFS_FS_PROC(SFS_NFSPROC3_READ, sfs_READ3args, sfs_READ3res)
SFS_FS_PROC(SFS_NFSPROC3_WRITE, sfs_WRITE3args, sfs_WRITE3res)
SFS_FS_PROC(SFS_NFSPROC3_CREATE, sfs_CREATE3args, sfs_CREATE3res)
SFS_FS_PROC(SFS_NFSPROC3_MKDIR, sfs_MKDIR3args, sfs_MKDIR3res)
SFS_FS_PROC(SFS_NFSPROC3_SYMLINK, sfs_SYMLINK3args, sfs_SYMLINK3res)
SFS_FS_PROC(SFS_NFSPROC3_MKNOD, sfs_MKNOD3args, sfs_MKNOD3res)
SFS_FS_PROC(SFS_NFSPROC3_REMOVE, sfs_REMOVE3args, sfs_REMOVE3res)
SFS_FS_PROC(SFS_NFSPROC3_RMDIR, sfs_RMDIR3args, sfs_RMDIR3res)
SFS_FS_PROC(SFS_NFSPROC3_RENAME, sfs_RENAME3args, sfs_RENAME3res)
SFS_FS_PROC(SFS_NFSPROC3_LINK, sfs_LINK3args, sfs_LINK3res)
SFS_FS_PROC(SFS_NFSPROC3_READDIR, sfs_READDIR3args, sfs_READDIR3res)
SFS_FS_PROC(SFS_NFSPROC3_READDIRPLUS, sfs_READDIRPLUS3args, sfs_READDIRPLUS3res)
SFS_FS_PROC(SFS_NFSPROC3_FSSTAT, sfs_FSSTAT3args, sfs_FSSTAT3res)
SFS_FS_PROC(SFS_NFSPROC3_FSINFO, sfs_FSINFO3args, sfs_FSINFO3res)
SFS_FS_PROC(SFS_NFSPROC3_PATHCONF, sfs_PATHCONF3args, sfs_PATHCONF3res)
SFS_FS_PROC(SFS_NFSPROC3_COMMIT, sfs_COMMIT3args, sfs_COMMIT3res)
#undef SFS_FS_PROC

// A decoded result that frees what XDR allocated for it.
template <class Res>
class Reply {
 public:
  Reply() = default;
  Reply(std::unique_ptr<Res> r, xdrproc_t x) : res_(std::move(r)), x_(x) {}
  Reply(Reply&&) noexcept = default;
  Reply& operator=(Reply&& o) noexcept {
    reset();
    res_ = std::move(o.res_);
    x_ = o.x_;
    return *this;
  }
  ~Reply() { reset(); }
  explicit operator bool() const { return res_ != nullptr; }
  Res& operator*() const { return *res_; }
  Res* operator->() const { return res_.get(); }

 private:
  void reset() {
    if (res_) xdr_free(x_, res_.get());
    res_.reset();
  }
  std::unique_ptr<Res> res_;
  xdrproc_t x_ = nullptr;
};

// READ's result with the data as a view into the reply record.
struct ReadView {
  sfs_nfsstat3 status = SFS_NFS3_OK;
  sfs_post_op_attr file_attributes{};
  std::uint32_t count = 0;
  bool eof = false;
  rpc::BytesView data;
};

// What GETROOT told us.
struct Root {
  Handle fh;
  std::optional<LeasedAttr> attr;
  sfs_FSINFO3resok fsinfo{};
  std::uint32_t lease_ms = 0;
};

struct FileClientOptions {
  SelfCertName server;
  std::string address;     // numeric address to dial; empty: server.location.host
  std::uint16_t port = 0;  // 0: server.location.port
  asmp::color_t color = 1; // the connection's color: its records, crypto, INVALIDATE
  // Empty: measured_cipher_offer() (the faster cipher on this CPU first).
  std::vector<AeadAlg> offer;
  ChannelOptions channel;
  rpc::TransportOptions transport;
  std::chrono::milliseconds call_timeout{60000};
  std::chrono::milliseconds connect_timeout{10000};
  // Server -> client: forget what you cached about `fh`; attributes of it
  // with a change number below `change` were obtained before the change.
  // The server hears back (and the writer's call returns) when `done` runs,
  // from any thread: a client whose caches take time to clear (the kernel's)
  // answers once they are clear. Runs on the connection's color.
  using Invalidated = std::function<void()>;
  using OnInvalidate = std::function<void(const Handle& fh, std::uint64_t change, Invalidated done)>;
  OnInvalidate on_invalidate;
  std::function<void(const std::string& why)> on_close;
  LogSink log = log_to_stderr;
};

// The program a client serves to its server (SFS_NFSCB: NULL and
// INVALIDATE, which runs on_inval). FileClient::connect installs it; it is
// public so that a harness can serve it on a connection of its own.
rpc::Program callback_program(FileClientOptions::OnInvalidate on_inval);

class FileClient : public std::enable_shared_from_this<FileClient> {
 public:
  using ConnectDone = asmp::Callback<void(Result<std::shared_ptr<FileClient>>)>;
  // done runs under its own color.
  static void connect(FileClientOptions opts, ConnectDone done);
  ~FileClient();

  const Root& root() const { return root_; }
  const SecureSession& session() const { return session_; }
  std::string server_name() const { return session_.server_name(); }

  // Login with the user's key, or with a request the user's agent signed
  // for session().session_id() and a seqno from session().next_seqno().
  void login(const UserKey& key, std::string user, asmp::Callback<void(Result<std::uint32_t>)> cb) const;
  void login_signed(Bytes request, std::string user, asmp::Callback<void(Result<std::uint32_t>)> cb) const;
  void logout(std::uint32_t auth) const { session_.logout(auth); }

  template <std::uint32_t Proc>
  using Done = asmp::Callback<void(rpc::RpcStatus, Reply<typename ProcTraits<Proc>::Res>)>;

  template <std::uint32_t Proc>
  void call(std::uint32_t auth, const typename ProcTraits<Proc>::Args& args, Done<Proc> done) const {
    using T = ProcTraits<Proc>;
    auto res = std::make_unique<typename T::Res>();
    auto* raw = res.get();
    const asmp::color_t color = done.color();
    raw_call(
        Proc, auth, T::xargs(), &args, T::xres(), raw,
        rpc::CallDone(
            [res = std::move(res), done = std::move(done)](rpc::RpcStatus st) mutable {
              done(st, Reply<typename T::Res>(std::move(res), T::xres()));
            },
            color));
  }

  using ReadDone = asmp::Callback<void(rpc::RpcStatus, const ReadView&)>;
  void read(std::uint32_t auth, const Handle& fh, std::uint64_t offset, std::uint32_t count,
            ReadDone done) const;

  void close() const { session_.close(); }
  bool closed() const { return closed_->load(); }

  // The arguments' handle field pointing at fh's bytes (which must outlive
  // the call() that encodes it).
  static sfs_nfs_fh3 wire(const Handle& fh) {
    sfs_nfs_fh3 h{};
    h.data.data_len = static_cast<u_int>(fh.size());
    h.data.data_val = const_cast<char*>(fh.data());
    return h;
  }
  static Handle handle_of(const sfs_nfs_fh3& h) { return Handle(h.data.data_val, h.data.data_len); }

  void raw_call(std::uint32_t proc, std::uint32_t auth, xdrproc_t xargs, const void* args, xdrproc_t xres,
                void* res, rpc::CallDone done) const;

 private:
  FileClient(SecureSession s, FileClientOptions o);
  SecureSession session_;
  FileClientOptions opts_;
  Root root_;
  std::shared_ptr<std::atomic<bool>> closed_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace sfs::fs
