// secure_client.cc: the client half of sfsconn: secure_connect() (TCP,
// SFS_CONNECT carrying the handshake, the HOSTID check, the filter turned
// on inside the reply's record handler) and SecureSession (login, logout).
// See sfs/secure_rpc.h and docs/protocol.md, "Connection setup".
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "secure_internal.h"
#include "sfs/encoding.h"
#include "sfs/sfs_connect.h"
#include "sfs/sfs_login.h"

namespace sfs {

namespace rpc = asmp::rpc;
using asmp::Callback;
using asmp::Closure;
using asmp::color_t;
using namespace conn_detail;

struct SecureSession::State {
  std::shared_ptr<rpc::Connection> conn;
  SessionId session_id{};
  AeadAlg alg = AeadAlg::kChaCha20Poly1305;
  AeadImpl impl = AeadImpl::kOpenSsl;
  ServerPublicKey server_key;
  SelfCertName name;
  mutable std::atomic<std::uint64_t> next_seqno{1};
};

const std::shared_ptr<rpc::Connection>& SecureSession::connection() const { return s_->conn; }
const SessionId& SecureSession::session_id() const { return s_->session_id; }
AeadAlg SecureSession::aead() const { return s_->alg; }
AeadImpl SecureSession::impl() const { return s_->impl; }
const ServerPublicKey& SecureSession::server_key() const { return s_->server_key; }
std::string SecureSession::server_name() const { return format_name(s_->name); }
void SecureSession::close() const { s_->conn->close(); }

void SecureSession::login(const UserKey& key, std::string user,
                          Callback<void(Result<std::uint32_t>)> cb, std::uint64_t seqno) const {
  if (seqno == 0) seqno = next_seqno();
  Bytes request = encode_login_request(key, user, s_->session_id, seqno);
  login_signed(std::move(request), std::move(user), std::move(cb));
}

std::uint64_t SecureSession::next_seqno() const {
  return s_->next_seqno.fetch_add(1, std::memory_order_relaxed);
}

void SecureSession::login_signed(Bytes request, std::string user,
                                 Callback<void(Result<std::uint32_t>)> cb) const {
  struct Pending {
    Bytes request;
    sfs_login_msg arg{};
    sfs_login_msg res{};
    std::string user;
    std::string server;
    Callback<void(Result<std::uint32_t>)> cb;
  };
  auto p = std::make_shared<Pending>();
  p->request = std::move(request);
  p->arg.sfs_login_msg_len = static_cast<u_int>(p->request.size());
  p->arg.sfs_login_msg_val = reinterpret_cast<char*>(p->request.data());
  p->user = std::move(user);
  p->server = format_name(s_->name);
  const color_t color = cb.color();
  p->cb = std::move(cb);
  rpc::CallOptions co;
  s_->conn->call(
      SFS_LOGIN_PROG, SFS_LOGIN_V1, SFS_LOGIN, rpc::as_xdrproc(xdr_sfs_login_msg), &p->arg,
      rpc::as_xdrproc(xdr_sfs_login_msg), &p->res,
      rpc::CallDone(
          [p](rpc::RpcStatus st) {
            const std::string who = "login of " + p->user + " at " + p->server;
            if (!st.ok()) {
              p->cb(make_error(who + " failed: " + st.message()));
              return;
            }
            auto reply = decode_login_reply(
                {reinterpret_cast<const std::uint8_t*>(p->res.sfs_login_msg_val),
                 p->res.sfs_login_msg_len});
            xdr_free(rpc::as_xdrproc(xdr_sfs_login_msg), &p->res);
            if (!reply.ok()) {
              p->cb(make_error(who + ": malformed answer: " + reply.error()));
            } else if (!reply.value().accepted) {
              p->cb(make_error(who + " refused by the server: " + reply.value().reason));
            } else {
              p->cb(reply.value().auth_number);
            }
          },
          color),
      co);
}

void SecureSession::change_key(const UserKey& new_key, std::string user, std::uint32_t auth,
                               Callback<void(Status)> cb) const {
  change_key_signed(encode_key_change_request(new_key, user, s_->session_id), auth, std::move(cb));
}

void SecureSession::change_key_signed(Bytes request, std::uint32_t auth, Callback<void(Status)> cb) const {
  struct Pending {
    Bytes request;
    sfs_login_msg arg{};
    sfs_login_msg res{};
    rpc::Auth cred = rpc::Auth::none();
    std::string server;
    Callback<void(Status)> cb;
  };
  auto p = std::make_shared<Pending>();
  p->request = std::move(request);
  p->arg.sfs_login_msg_len = static_cast<u_int>(p->request.size());
  p->arg.sfs_login_msg_val = reinterpret_cast<char*>(p->request.data());
  p->cred = auth_number_cred(auth);
  p->server = format_name(s_->name);
  const color_t color = cb.color();
  p->cb = std::move(cb);
  rpc::CallOptions co;
  co.auth = &p->cred;
  s_->conn->call(
      SFS_LOGIN_PROG, SFS_LOGIN_V1, SFS_CHANGEKEY, rpc::as_xdrproc(xdr_sfs_login_msg), &p->arg,
      rpc::as_xdrproc(xdr_sfs_login_msg), &p->res,
      rpc::CallDone(
          [p](rpc::RpcStatus st) {
            const std::string what = "key change at " + p->server;
            if (!st.ok()) return p->cb(make_error(what + " failed: " + st.message()));
            auto reply = decode_key_change_reply(
                {reinterpret_cast<const std::uint8_t*>(p->res.sfs_login_msg_val), p->res.sfs_login_msg_len});
            xdr_free(rpc::as_xdrproc(xdr_sfs_login_msg), &p->res);
            if (!reply.ok()) return p->cb(make_error(what + ": malformed answer: " + reply.error()));
            if (!reply.value().changed) return p->cb(make_error(what + " refused: " + reply.value().reason));
            p->cb(Status{});
          },
          color),
      co);
}

void SecureSession::logout(std::uint32_t auth_number) const {
  auto n = std::make_shared<u_int>(auth_number);
  s_->conn->call(SFS_LOGIN_PROG, SFS_LOGIN_V1, SFS_LOGOUT, rpc::as_xdrproc(xdr_u_int), n.get(),
                 rpc::as_xdrproc(xdr_void), nullptr, rpc::CallDone([n](rpc::RpcStatus) {}));
}

namespace {

// The largest record SFS_CONNECT's reply can be: an RPC reply header with a
// verifier of at most 400 bytes, status, release, and a handshake message
// of at most SFS_MAXHANDSHAKE bytes (or a reason of SFS_MAXREASON).
constexpr std::size_t kMaxConnectReplyRecord = 4 * 6 + 4 + 400 + 4 + 4 + 4 + SFS_MAXHANDSHAKE;

// One connection attempt, from TCP connect to the reply of SFS_CONNECT.
struct Dial {
  SecureConnectOptions opts;
  Callback<void(Result<SecureSession>)> cb;
  std::optional<ClientHandshake> hs;
  Bytes hello;  // message 1 body
  std::string host, hostid;
  sfs_connect_arg arg{};
  sfs_connect_res res{};
  std::shared_ptr<rpc::Connection> conn;
  // Set on the connection's color once the handshake is done; read by the
  // served programs' dispatch (same color).
  std::shared_ptr<bool> open = std::make_shared<bool>(false);
  std::shared_ptr<std::shared_ptr<SecureRecordFilter>> filter =
      std::make_shared<std::shared_ptr<SecureRecordFilter>>();
  bool done = false;

  void finish(Result<SecureSession> r) {
    if (done) return;
    done = true;
    color_t c = cb.color();
    auto shared_cb = std::make_shared<Callback<void(Result<SecureSession>)>>(std::move(cb));
    auto shared_r = std::make_shared<Result<SecureSession>>(std::move(r));
    asmp::default_runtime().cpucb(Closure([shared_cb, shared_r] { (*shared_cb)(std::move(*shared_r)); }, c));
  }
};

void on_connect_reply(const std::shared_ptr<Dial>& d, rpc::RpcStatus st) {
  const std::string server = format_name(d->opts.server);
  if (!st.ok()) {
    d->conn->close();
    d->finish(make_error("connecting to " + server + ": SFS_CONNECT failed: " + st.message()));
    return;
  }
  struct FreeRes {
    sfs_connect_res* r;
    ~FreeRes() { xdr_free(rpc::as_xdrproc(xdr_sfs_connect_res), r); }
  } free_res{&d->res};
  if (d->res.status != SFS_CONNECT_OK) {
    d->conn->close();
    // Unauthenticated: whoever answered wrote it. Printable only.
    const std::string reason = printable_text(d->res.sfs_connect_res_u.reason ? d->res.sfs_connect_res_u.reason : "");
    d->finish(make_error("server at " + location_text(d->opts.server.location) +
                         " refused the connection to " + server + " (status " +
                         std::to_string(d->res.status) + "): " + reason));
    return;
  }
  const auto& ok = d->res.sfs_connect_res_u.ok;
  Bytes frame = frame_of(ok.hello.hello_val, ok.hello.hello_len);
  auto r = d->hs->finish(frame);
  if (!r.ok()) {
    d->conn->close();
    d->finish(make_error(r.error()));
    return;
  }
  ClientResult& cr = r.value();
  // The channel is on from the next record: the records it carries may be
  // as large as the options say.
  d->conn->transport()->set_max_record(d->opts.transport.max_record);
  std::shared_ptr<SecureRecordFilter> plain;
  auto filter = make_filter(cr.keys, Role::kClient, d->opts.channel,
                            "server " + location_text(d->opts.server.location), d->opts.log, &plain);
  // The boundary: we are inside the record handler of the reply, on the
  // connection's color; the next record read is opened by this filter.
  d->conn->transport()->set_filter(filter);
  *d->filter = plain;
  *d->open = true;
  auto s = std::make_shared<SecureSession::State>();
  s->conn = d->conn;
  s->session_id = cr.keys.session_id;
  s->alg = plain->aead();
  s->impl = plain->impl();
  s->server_key = cr.server_key;
  s->name = d->opts.server;
  d->finish(SecureSession(std::move(s)));
}

}  // namespace

void secure_connect(SecureConnectOptions opts, Callback<void(Result<SecureSession>)> cb) {
  auto d = std::make_shared<Dial>();
  d->cb = std::move(cb);
  d->opts = std::move(opts);
  const color_t color = d->opts.color;
  std::string address = d->opts.address.empty() ? d->opts.server.location.host : d->opts.address;

  rpc::ConnectionOptions copts;
  if (!d->opts.programs.empty()) {
    // Served programs are refused until the channel is on: a call injected
    // in the clear before that closes the connection.
    auto progs = std::make_shared<rpc::Programs>();
    for (rpc::Program p : d->opts.programs) {
      p.dispatch = [open = d->open, inner = std::move(p.dispatch)](rpc::Call c) {
        if (!*open) {
          c.connection()->close();
          return;
        }
        inner(std::move(c));
      };
      progs->add(std::move(p));
    }
    copts.programs = std::move(progs);
  }
  copts.on_close = [user = d->opts.on_close, filter = d->filter](rpc::CloseReason why, int err) {
    if (user) user(close_text(why, err, filter->get()));
  };
  // Before the handshake the peer is unauthenticated and its only record is
  // SFS_CONNECT's reply: a larger record mark closes the connection before
  // its body is read or buffered (the server does the same to clients).
  rpc::TransportOptions clear_transport = d->opts.transport;
  clear_transport.max_record = std::min(clear_transport.max_record, kMaxConnectReplyRecord);
  rpc::connect(
      address, d->opts.port ? d->opts.port : d->opts.server.location.port, color, std::move(copts), clear_transport,
      Callback<void(std::shared_ptr<rpc::Connection>, int)>(
          [d](std::shared_ptr<rpc::Connection> conn, int err) {
            const std::string server = format_name(d->opts.server);
            if (!conn) {
              d->finish(make_error("connecting to " + server + ": TCP connect to " +
                                   location_text(d->opts.server.location) + " failed: " +
                                   std::strerror(err)));
              return;
            }
            d->conn = std::move(conn);
            d->host = d->opts.server.location.host;
            d->hostid = format_hostid(d->opts.server.hostid);
            // The prologue holds exactly the clear fields sent below, so a
            // man in the middle who edits one fails the handshake.
            d->hs.emplace(ClientHandshakeConfig{d->opts.server, d->opts.offer});
            auto m1 = d->hs->start(
                ConnectContext{SFS_RELEASE, d->host, d->opts.server.location.port, d->hostid});
            if (!m1.ok()) {
              d->conn->close();
              d->finish(make_error(m1.error()));
              return;
            }
            d->hello.assign(m1.value().begin() + kHandshakeFrameHeader, m1.value().end());
            d->arg.release = SFS_RELEASE;
            d->arg.host = d->host.data();
            d->arg.port = d->opts.server.location.port;
            d->arg.hostid = d->hostid.data();
            d->arg.hello.hello_len = static_cast<u_int>(d->hello.size());
            d->arg.hello.hello_val = reinterpret_cast<char*>(d->hello.data());
            rpc::CallOptions co;
            co.timeout = d->opts.handshake_timeout;
            // The reply callback has the connection's color: it then runs
            // inside the connection's record handler (see the top).
            d->conn->call(SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT,
                          rpc::as_xdrproc(xdr_sfs_connect_arg), &d->arg,
                          rpc::as_xdrproc(xdr_sfs_connect_res), &d->res,
                          rpc::CallDone([d](rpc::RpcStatus st) { on_connect_reply(d, st); },
                                        d->opts.color),
                          co);
          },
          color));
}

}  // namespace sfs
