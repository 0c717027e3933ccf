// secure_server_connect.cc: the server's SFS_CONNECT: limits, HOSTID
// check, the handshake, and the exact switch to the sealed channel (see the
// top of secure_server.cc and docs/protocol.md, "Connection setup").
#include "secure_server_conn.h"
#include "sfs/encoding.h"
#include "sfs/sfs_connect.h"

namespace sfs::conn_detail {

using Conn = SecureServer::Conn;

namespace {

void reply_connect_error(rpc::Call& c, sfs_connect_stat st, const std::string& reason) {
  sfs_connect_res res{};
  res.status = st;
  std::string r = reason.substr(0, SFS_MAXREASON);
  res.sfs_connect_res_u.reason = r.data();
  c.reply(&res);
}

// The refusal reaches the client, then the connection goes: nothing else
// can happen on it.
void fail_connect(Conn& sc, rpc::Call& c, sfs_connect_stat st, const std::string& why) {
  auto& sh = *sc.shared;
  sc.stage = Conn::Stage::kFailed;
  sc.leave_handshake();
  sh.handshake_failures.fetch_add(1, std::memory_order_relaxed);
  sh.log("handshake with " + sc.peer + " failed: " + why);
  std::shared_ptr<rpc::Connection> conn = c.connection();
  reply_connect_error(c, st, why);
  conn->close_after_flush(std::chrono::seconds(2));
}

// The handshake's result, on the connection's color: the reply, and on
// success the switch to the sealed channel.
void finish_connect(const std::shared_ptr<Conn>& sc, rpc::Call c, ServerResult r);

}  // namespace

void serve_connect(const std::shared_ptr<Conn>& sc, rpc::Call c) {
  auto& sh = *sc->shared;
  if (c.proc() == SFS_CONNECT_NULL) {
    c.reply(nullptr);
    return;
  }
  if (sc->stage != Conn::Stage::kHello) {
    sh.log("connection from " + sc->peer + ": second SFS_CONNECT; closing");
    c.connection()->close();
    return;
  }
  // The per-source bucket is checked before anything costs more than a
  // hash: a replayed client hello costs the server a DH and a signature
  // (docs/security.md, "Before the handshake").
  if (!sh.admission->take_token(sc->source, asmp::Clock::now())) {
    sc->stage = Conn::Stage::kFailed;
    sc->leave_handshake();
    sh.handshakes_rate_limited.fetch_add(1, std::memory_order_relaxed);
    sh.log_limited("handshake with " + sc->peer + " refused: over " +
                   std::to_string(sh.opts.handshake_limits.per_source_per_second) +
                   " handshakes a second from " + sc->source);
    std::shared_ptr<rpc::Connection> conn = c.connection();
    reply_connect_error(c, SFS_CONNECT_BUSY, "too many handshakes from your address; try again later");
    conn->close_after_flush(std::chrono::seconds(2));
    return;
  }
  auto fail = [&](sfs_connect_stat st, const std::string& why) { fail_connect(*sc, c, st, why); };
  const auto* a = c.args<sfs_connect_arg>();
  if (a->release != SFS_RELEASE)
    return fail(SFS_CONNECT_BADVERSION, "client release " + std::to_string(a->release) +
                                            " is not supported (this server speaks release " +
                                            std::to_string(SFS_RELEASE) + ")");
  const ServerKeyOps& key = *sh.opts.key;
  if (sh.opts.refuse_other_hostids) {
    Location loc{a->host ? a->host : "", static_cast<std::uint16_t>(a->port)};
    auto want = parse_hostid(a->hostid ? a->hostid : "");
    bool ok = want.ok() && a->port > 0 && a->port < 65536 && check_host(loc.host).ok() &&
              equal_ct(compute_hostid(loc, key.public_key()), want.value());
    if (!ok)
      // The client's strings are unauthenticated: printable only.
      return fail(SFS_CONNECT_NOSUCHHOST,
                  "this server does not serve HOSTID " + printable_text(a->hostid ? a->hostid : "", 64) +
                      " at " + printable_text(loc.host, 255) + ":" + std::to_string(a->port) +
                      " (its key has another HOSTID there)");
  }
  if (a->hello.hello_len > kMaxHandshakeBody)
    return fail(SFS_CONNECT_BADHELLO, "handshake message too long");
  Bytes frame = frame_of(a->hello.hello_val, a->hello.hello_len);
  // What the client hashed into its prologue, as received here.
  ConnectContext clear{a->release, a->host ? a->host : "", a->port, a->hostid ? a->hostid : ""};
  if (!sh.opts.run_handshake) {
    ServerHandshake hs(key, sh.opts.handshake);
    return finish_connect(sc, std::move(c), hs.respond(frame, clear));
  }
  // The DH and the signature may wait for another process (sfsd's key
  // holder): off the workers, then back to this color for the switch.
  // Until then the connection is kHandshaking: any other record closes it.
  sc->stage = Conn::Stage::kHandshaking;
  const asmp::color_t color = c.color();
  auto held = std::make_shared<rpc::Call>(std::move(c));  // touched again only on `color`
  std::weak_ptr<Conn> weak = sc;
  sh.opts.run_handshake([weak, held, color, key = sh.opts.key, config = sh.opts.handshake,
                         frame = std::move(frame), clear = std::move(clear)] {
    auto r = std::make_shared<ServerResult>(ServerHandshake(*key, config).respond(frame, clear));
    asmp::default_runtime().cpucb(asmp::Closure(
        [weak, held, r] {
          auto conn = weak.lock();
          // Closed meanwhile (by its peer, the handshake timeout, a stray record).
          if (!conn || conn->stage != Conn::Stage::kHandshaking || held->connection()->transport()->closed())
            return;
          finish_connect(conn, std::move(*held), std::move(*r));
        },
        color));
  });
}

namespace {

void finish_connect(const std::shared_ptr<Conn>& sc, rpc::Call c, ServerResult r) {
  auto& sh = *sc->shared;
  if (!r.keys) {
    if (r.reply.size() > kHandshakeFrameHeader) {
      // A refusal message (3.4) the client will report.
      sc->stage = Conn::Stage::kFailed;
      sc->leave_handshake();
      sh.handshake_failures.fetch_add(1, std::memory_order_relaxed);
      sh.log("handshake with " + sc->peer + " refused: " + r.error);
      sfs_connect_res res{};
      res.status = SFS_CONNECT_OK;
      res.sfs_connect_res_u.ok.release = SFS_RELEASE;
      res.sfs_connect_res_u.ok.hello.hello_len =
          static_cast<u_int>(r.reply.size() - kHandshakeFrameHeader);
      res.sfs_connect_res_u.ok.hello.hello_val =
          reinterpret_cast<char*>(r.reply.data() + kHandshakeFrameHeader);
      std::shared_ptr<rpc::Connection> conn = c.connection();
      c.reply(&res);
      conn->close_after_flush(std::chrono::seconds(2));
      return;
    }
    return fail_connect(*sc, c, SFS_CONNECT_BADHELLO, r.error);
  }
  std::shared_ptr<SecureRecordFilter> plain;
  auto filter = make_filter(*r.keys, Role::kServer, sh.opts.channel, "client " + sc->peer,
                            sh.opts.log, &plain);
  sc->session_id = r.keys->session_id;
  sfs_connect_res res{};
  res.status = SFS_CONNECT_OK;
  res.sfs_connect_res_u.ok.release = SFS_RELEASE;
  res.sfs_connect_res_u.ok.hello.hello_len = static_cast<u_int>(r.reply.size() - kHandshakeFrameHeader);
  res.sfs_connect_res_u.ok.hello.hello_val = reinterpret_cast<char*>(r.reply.data() + kHandshakeFrameHeader);
  std::shared_ptr<rpc::Connection> conn = c.connection();
  // The boundary: on the connection's color, reply() queues the reply now,
  // in the clear; everything after set_filter is sealed.
  c.reply(&res);
  conn->transport()->set_filter(filter);
  conn->transport()->set_max_record(sh.opts.transport.max_record);
  sc->filter = plain;
  sc->stage = Conn::Stage::kOpen;
  sc->leave_handshake();
  sc->last_call = asmp::Clock::now();
  sh.established.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

}  // namespace sfs::conn_detail
