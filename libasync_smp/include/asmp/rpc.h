// rpc.h: asynchronous Sun RPC (RFC 5531) on the colored-callback runtime.
//
//   Connection  one Transport (rpc_transport.h) carrying calls both ways:
//               it matches replies to this side's calls by xid, and hands
//               calls from the peer to the Programs it serves. Everything it
//               does runs under the transport's color.
//   Client      a cheap, copyable handle: (Connection, program, version,
//               credential, timeout). call() may be used from any color.
//   Call        what a server handler gets: decoded arguments, the caller's
//               credential, and the duty to answer, once, from any color.
//   Programs    the table of (program, version) -> procedures + dispatch.
//   Server      a listening socket (accepted by an Acceptor,
//               rpc_transport.h); each accepted connection gets a color
//               of its own (1, 2, 3, ...: color 0 stays free for the
//               server's shared state) and a Connection serving Programs.
//
// Guarantees
//   - Every call's callback runs exactly once, under the callback's own
//     color: with the decoded reply, or with an error (timeout, connection
//     lost, or the RPC error the server answered). A lost connection fails
//     every call pending on it.
//   - A Call dropped without an answer answers SYSTEM_ERR by itself.
//   - Malformed input from a peer yields the RPC error RFC 5531 prescribes
//     (PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, RPC_MISMATCH,
//     AUTH_ERROR) or closes that one connection; it never takes down others.
//   - A peer cannot make a connection hold unbounded memory: the serving
//     side stops reading from it while max_calls_in_progress calls are
//     dispatched and unanswered, or while its unsent replies exceed the
//     transport's max_queued_output_bytes, and resumes under half of
//     either. Other connections are not slowed by it.
//   - A program accepts AUTH_NONE only, unless its Program::flavors says
//     otherwise: a credential the client merely claims (AUTH_SYS) is not
//     taken unless asked for.
//
// Memory: arguments are encoded before call() returns, so they may live on
// the caller's stack. The result object must stay alive until the callback
// runs; it must start zeroed (or freed with xdr_free), because XDR decoding
// allocates into it, and the caller frees it with xdr_free(xres, res).
// Results decoded as views (BytesView, below) point into the reply record,
// which lives until the callback returns.
#pragma once

#include <rpc/rpc.h>

#include <atomic>
#include <cstdarg>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "asmp/rpc_transport.h"

namespace asmp::rpc {

// ---- outcomes ----------------------------------------------------------------

enum class RpcError : std::uint8_t {
  kOk,
  kTimeout,         // no reply within the call's timeout
  kConnectionLost,  // the connection closed before the reply arrived
  kEncodeArgs,      // the argument encoder failed (nothing was sent)
  kDecodeResult,    // the reply's results did not decode
  kRpcMismatch,     // MSG_DENIED / RPC_MISMATCH (low, high: RPC versions)
  kAuthError,       // MSG_DENIED / AUTH_ERROR (auth_stat says why)
  kProgUnavail,     // PROG_UNAVAIL
  kProgMismatch,    // PROG_MISMATCH (low, high: versions the server has)
  kProcUnavail,     // PROC_UNAVAIL
  kGarbageArgs,     // GARBAGE_ARGS
  kSystemErr,       // SYSTEM_ERR
};
const char* to_string(RpcError e);

struct RpcStatus {
  RpcError error = RpcError::kOk;
  std::uint32_t auth_stat = 0;        // kAuthError: the server's auth_stat
  std::uint32_t low = 0, high = 0;    // kProgMismatch, kRpcMismatch
  bool ok() const noexcept { return error == RpcError::kOk; }
  explicit operator bool() const noexcept { return ok(); }
  std::string message() const;  // e.g. "PROG_MISMATCH (server has versions 1..2)"
};

using CallDone = Callback<void(RpcStatus)>;

// ---- credentials -------------------------------------------------------------

// The AUTH_SYS (AUTH_UNIX) credential body, RFC 5531 appendix A.
struct AuthSys {
  std::uint32_t stamp = 0;
  std::string machine;               // at most 255 bytes
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::uint32_t> gids;   // at most 16
};

// A credential as it goes on the wire (flavor + encoded body), built once.
class Auth {
 public:
  static Auth none();
  static Auth sys(const AuthSys& a);
  // Any other flavor with an opaque body (at most 400 bytes).
  static Auth raw(std::uint32_t flavor, const void* body, std::size_t len);
  std::uint32_t flavor() const noexcept { return flavor_; }
  // flavor, length, body, padding: ready to copy into a call header.
  const std::vector<unsigned char>& wire() const noexcept { return wire_; }

 private:
  std::uint32_t flavor_ = 0;
  std::vector<unsigned char> wire_;
};

// The credential a server saw on a call.
struct Cred {
  std::uint32_t flavor = 0;          // AUTH_NONE, AUTH_SYS, or another
  AuthSys sys;                       // filled for AUTH_SYS
  std::string body;                  // the raw body, for other flavors
};

// ---- procedure tables --------------------------------------------------------

// One procedure: how to decode its arguments (and how big they are in C),
// how to encode its results. xargs == nullptr: no such procedure.
struct Proc {
  xdrproc_t xargs = nullptr;
  std::size_t args_size = 0;
  xdrproc_t xres = nullptr;
};

// An rpcgen xdr routine (or xdr_void) as the xdrproc_t libtirpc wants.
// (Through void(*)(), the generic function pointer type, so that GCC's
// -Wcast-function-type knows the cast is meant.)
template <class F>
xdrproc_t as_xdrproc(F* f) {
  return reinterpret_cast<xdrproc_t>(reinterpret_cast<void (*)()>(f));
}

template <class T>
constexpr std::size_t xdr_c_size(bool_t (*)(XDR*, T*)) {
  return sizeof(T);
}
constexpr std::size_t xdr_c_size(bool_t (*)(void)) { return 0; }

// Typed helper: proc(xdr_foo_args, xdr_foo_res), either may be xdr_void.
template <class XA, class XR>
Proc proc(XA* xa, XR* xr) {
  return {as_xdrproc(xa), xdr_c_size(xa), as_xdrproc(xr)};
}

// An xdr routine written in C++ (bool_t f(XDR*, T*)) as an xdrproc_t that
// may be called through: xdrproc_t is variadic, and calling a C++ function
// of another type through it is undefined behaviour (clang's
// -fsanitize=function stops there; rpcgen's C routines are not checked).
// The thunk has xdrproc_t's own type and hands the object pointer on.
template <auto F>
struct XdrThunk;
template <class T, bool_t (*F)(XDR*, T*)>
struct XdrThunk<F> {
  static bool_t call(XDR* x, ...) {
    va_list ap;
    va_start(ap, x);
    void* obj = va_arg(ap, void*);
    va_end(ap);
    return F(x, static_cast<T*>(obj));
  }
};
template <auto F>
xdrproc_t xdrproc_of() {
  return XdrThunk<F>::call;
}

// ---- zero-copy opaque data ----------------------------------------------------

// Variable-length opaque data (XDR `opaque x<max>`) as a pointer and a
// length instead of a malloc'ed copy. Same bytes on the wire as rpcgen's
// `struct { u_int x_len; char* x_val; }`, so either side may use either.
//
//   XDR_ENCODE  data/len are read (one memcpy into the record); data may be
//               null when len is 0.
//   XDR_DECODE  data is pointed into the stream's buffer (xdr_inline), no
//               allocation, no copy. Refused (FALSE) if the length is above
//               max, if the stream holds fewer bytes than length + padding
//               (truncated), or if the stream cannot inline (not xdrmem).
//               An empty opaque decodes to a non-null data, len 0.
//   XDR_FREE    clears the view; frees nothing.
//
// Lifetime of a decoded view: it points into the record it was decoded
// from. asmp_rpc keeps that record alive
//   - server: as long as the Call whose arguments hold the view (the Call
//     owns its record; a handler may keep the Call and answer later),
//   - client: until the call's callback returns (the reply record travels
//     with the callback when it hops to the callback's color).
// Copy the bytes to keep them longer.
struct BytesView {
  const char* data = nullptr;
  u_int len = 0;
};

bool_t xdr_opaque_view(XDR* xdrs, BytesView* v, u_int max);

// xdr_opaque_view with the bound fixed, as an xdrproc for a Proc table:
// proc(xdr_bytes_view<MAXDATA>, xdr_bytes_view<MAXDATA>).
template <u_int Max>
bool_t xdr_bytes_view(XDR* xdrs, BytesView* v) {
  return xdr_opaque_view(xdrs, v, Max);
}

// A program version's procedures, indexed by procedure number.
struct Interface {
  std::uint32_t prog = 0;
  std::uint32_t vers = 0;
  std::vector<Proc> procs;
};

class Call;
class Connection;

struct Program {
  Interface iface;
  // Called on the connection's color for every call to this program with
  // arguments that decoded. Different connections call it concurrently.
  std::function<void(Call)> dispatch;
  // Credential flavors accepted (others: AUTH_ERROR / AUTH_REJECTEDCRED).
  // AUTH_NONE only by default: AUTH_SYS is what the client claims, with
  // nothing to check it by; list it only for a program that means to trust
  // such a claim (e.g. from a trusted, privileged peer).
  std::vector<std::uint32_t> flavors = {AUTH_NONE};
};

// Build it, then share it frozen (std::shared_ptr<const Programs>).
class Programs {
 public:
  void add(Program p);
  // The program for (prog, vers), or nullptr; *prog_known tells
  // whether prog exists at all, and [*low, *high] its versions.
  const Program* find(std::uint32_t prog, std::uint32_t vers, bool* prog_known, std::uint32_t* low,
                      std::uint32_t* high) const;

 private:
  std::vector<Program> programs_;
};

// ---- the server side of one call ---------------------------------------------

class Call {
 public:
  Call() = default;
  Call(Call&&) noexcept;
  Call& operator=(Call&&) noexcept;
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  ~Call();  // unanswered: answers SYSTEM_ERR

  explicit operator bool() const noexcept { return state_ != nullptr; }
  std::uint32_t prog() const;
  std::uint32_t vers() const;
  std::uint32_t proc() const;
  std::uint32_t xid() const;
  const Cred& cred() const;
  // The connection's color: where its records are handled.
  color_t color() const;
  const std::shared_ptr<Connection>& connection() const;

  // The decoded arguments (owned by this Call, freed with it). The Call also
  // owns the call's record, so arguments decoded as views (BytesView) stay
  // valid while the Call lives.
  void* raw_args() const;
  template <class T>
  T* args() const {
    return static_cast<T*>(raw_args());
  }

  // Answers, at most once, from any thread. res is encoded before reply()
  // returns, with the procedure's result routine (or xres).
  void reply(const void* res);
  void reply(xdrproc_t xres, const void* res);
  // reply() for a result whose encoding ends with a variable-length opaque
  // (a READ's data), encoded empty in `res`: its bytes are `data`, read
  // where they are when the record is sealed or sent (RecordTail), never
  // copied into the record first. `keep` owns `data` until then. If the
  // encoding of res does not end with an empty opaque's zero length, this
  // answers SYSTEM_ERR: a caller's mistake, never wrong bytes.
  void reply_with_tail(xdrproc_t xres, const void* res, std::span<const char> data,
                       std::shared_ptr<const void> keep);
  void reply_with_tail(const void* res, std::span<const char> data, std::shared_ptr<const void> keep);
  // Answers with an accept_stat other than SUCCESS (e.g. SYSTEM_ERR).
  void reply_error(RpcError e);
  // Answers MSG_DENIED / AUTH_ERROR with the given auth_stat.
  void reject_auth(std::uint32_t auth_stat);
  bool answered() const;

 private:
  friend class Connection;
  struct State;
  explicit Call(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

// ---- a connection ------------------------------------------------------------

struct ConnectionOptions {
  // Programs served to the peer (calls arriving on this connection). Null:
  // every call from the peer gets PROG_UNAVAIL.
  std::shared_ptr<const Programs> programs;
  // Runs once, under the connection's color, when it closes.
  std::function<void(CloseReason, int err)> on_close;
  // Calls from the peer dispatched to handlers and not yet answered above
  // which the connection stops reading (until at most half remain); 0: no
  // limit. Bounds what a peer that pipelines calls can make a server hold
  // (each Call owns its record and arguments).
  std::size_t max_calls_in_progress = 64;
};

struct CallOptions {
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);
  const Auth* auth = nullptr;  // null: AUTH_NONE
  // For arguments whose encoding ends with a variable-length opaque (a
  // WRITE's data), encoded empty in args: its bytes, read where they are
  // when the call is sealed or sent (as Call::reply_with_tail), and what
  // keeps them alive until then. If the encoding does not end with an
  // empty opaque, the call fails with kEncodeArgs.
  std::span<const char> tail;
  std::shared_ptr<const void> tail_keep;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Takes the transport (not yet started) and starts it. The connection
  // stays alive while its transport is open; close() ends both.
  static std::shared_ptr<Connection> create(std::shared_ptr<Transport> t, ConnectionOptions opts = {});
  ~Connection();

  // From any thread. Encodes args now; res is filled before cb runs.
  void call(std::uint32_t prog, std::uint32_t vers, std::uint32_t proc, xdrproc_t xargs,
            const void* args, xdrproc_t xres, void* res, CallDone cb, const CallOptions& opts = {});

  void close() { transport_->close(); }
  // Stops taking calls, sends the replies queued so far, then closes
  // (Transport::close_after_flush): a refusal sent just before reaches the
  // peer. Any thread; answers sent after it are dropped.
  void close_after_flush(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    transport_->close_after_flush(timeout);
  }
  color_t color() const noexcept { return transport_->color(); }
  const std::shared_ptr<Transport>& transport() const noexcept { return transport_; }
  // Calls waiting for a reply (read on the connection's color).
  std::size_t pending() const noexcept { return pending_.size(); }
  // Calls from the peer dispatched and not yet answered (any thread: a
  // recent value).
  std::size_t calls_in_progress() const noexcept { return in_progress_hint_.load(std::memory_order_relaxed); }

 private:
  friend class Call;
  struct Pending {
    xdrproc_t xres;
    void* res;
    CallDone cb;
    TimerId timer;
  };

  Connection(std::shared_ptr<Transport> t, ConnectionOptions opts);
  void on_record(RecordBuf rec);
  void on_close(CloseReason why, int err);
  void on_reply(RecordBuf rec);
  void on_call(RecordBuf rec);
  void add_pending(std::uint32_t xid, RecordBuf rec, RecordTail tail, xdrproc_t xres, void* res, CallDone cb,
                   std::chrono::nanoseconds timeout);
  void on_timeout(std::uint32_t xid);
  // A dispatched call's answer (from Call, any thread): hops to the
  // connection's color, counts the call done, queues the reply.
  void answer(RecordBuf rec, RecordTail tail = {});
  void answered(RecordBuf rec, RecordTail tail);
  // Runs p's callback (under its color) with st; rec, the reply record
  // that results may point into, lives until the callback has returned.
  void complete(Pending p, RpcStatus st, RecordBuf rec = RecordBuf());

  std::shared_ptr<Transport> transport_;
  ConnectionOptions opts_;
  Runtime* const rt_;
  std::atomic<std::uint32_t> next_xid_;
  // On the connection's color only.
  std::unordered_map<std::uint32_t, Pending> pending_;
  bool closed_ = false;
  std::size_t in_progress_ = 0;  // dispatched calls not yet answered
  bool holding_ = false;         // holds the transport's reading for them
  std::atomic<std::size_t> in_progress_hint_{0};
};

// Connects to host:port and makes a Connection on it with the given color;
// cb runs under its own color with the connection, or null and an errno.
void connect(const std::string& host, std::uint16_t port, color_t color, ConnectionOptions copts,
             TransportOptions topts, Callback<void(std::shared_ptr<Connection>, int err)> cb);

// ---- client handle -----------------------------------------------------------

class Client {
 public:
  Client() = default;
  Client(std::shared_ptr<Connection> conn, std::shared_ptr<const Interface> iface,
         Auth auth = Auth::none(), std::chrono::nanoseconds timeout = std::chrono::seconds(30));

  // Uses the interface's xdr routines for proc.
  void call(std::uint32_t proc, const void* args, void* res, CallDone cb) const;
  void call(std::uint32_t proc, xdrproc_t xargs, const void* args, xdrproc_t xres, void* res,
            CallDone cb) const;

  void set_auth(Auth a) { auth_ = std::make_shared<const Auth>(std::move(a)); }
  void set_timeout(std::chrono::nanoseconds t) { timeout_ = t; }
  const std::shared_ptr<Connection>& connection() const noexcept { return conn_; }

 private:
  std::shared_ptr<Connection> conn_;
  std::shared_ptr<const Interface> iface_;
  std::shared_ptr<const Auth> auth_;
  std::chrono::nanoseconds timeout_{std::chrono::seconds(30)};
};

// ---- server ------------------------------------------------------------------

struct ServerOptions {
  TransportOptions transport;
  // Color of every accepted connection; unset: 1, 2, 3, ... (never 0).
  std::optional<color_t> conn_color;
  // Color of the accept callback.
  color_t accept_color = 0;
  // Runs on the accept color for each new connection (which may already be
  // receiving on its own color).
  std::function<void(const std::shared_ptr<Connection>&)> on_connect;
  // Each connection's ConnectionOptions::max_calls_in_progress.
  std::size_t max_calls_in_progress = 64;
  // The accept loop's back-off when descriptors run out (Acceptor).
  AcceptorOptions acceptor;
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  static std::shared_ptr<Server> create(std::shared_ptr<const Programs> programs, ServerOptions opts = {});
  ~Server();

  // Listens on host ("127.0.0.1", "::1", ...) and port (0: ephemeral) and
  // starts accepting. Returns 0 or an errno value.
  int listen(const std::string& host, std::uint16_t port = 0);
  std::uint16_t port() const noexcept { return port_; }
  // Serves an already connected socket.
  std::shared_ptr<Connection> serve_fd(int fd);
  // Stops accepting and closes every connection (soon, on the accept
  // color; connections() reaches 0 when they have closed). Any thread.
  void close();
  std::size_t connections() const;
  // The accept loop's counters (all zero before listen()).
  AcceptorStats acceptor_stats() const;

 private:
  Server(std::shared_ptr<const Programs> programs, ServerOptions opts);
  color_t next_color();

  std::shared_ptr<const Programs> programs_;
  ServerOptions opts_;
  Runtime* const rt_;  // the runtime current when the server was made
  bool listening_ = false;
  // Owned by its own fd callback or retry timer; holds this Server (its
  // accept callback) until close().
  std::weak_ptr<Acceptor> acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<color_t> color_counter_{0};
  mutable std::mutex mu_;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> conns_;
};

}  // namespace asmp::rpc
