// connection.cc: one RPC connection, both directions.
//
// Who touches what: pending_ (calls of this side waiting for replies),
// closed_, and in_progress_/holding_ (calls of the peer dispatched and not
// yet answered, and whether that holds the transport's reading) live on
// the connection's color. call() may run anywhere: it
// encodes the call there (in parallel with other colors), then hops to the
// connection's color to register the xid, arm the timeout and queue the
// record. A pending call leaves pending_ exactly once, by reply, timeout or
// close, whichever comes first on the color, and that is when its callback
// is scheduled; the loser finds nothing and does nothing.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "wire.h"

namespace asmp::rpc {

namespace {

const Auth& auth_none() {
  static const Auth a = Auth::none();
  return a;
}

std::uint32_t initial_xid() {
  std::random_device rd;
  return rd();
}

}  // namespace

std::shared_ptr<Connection> Connection::create(std::shared_ptr<Transport> t, ConnectionOptions opts) {
  std::shared_ptr<Connection> c(new Connection(std::move(t), std::move(opts)));
  // The transport's handlers keep the connection alive until it closes.
  c->transport_->start(
      [c](RecordBuf rec) { c->on_record(std::move(rec)); },
      [c](CloseReason why, int err) { c->on_close(why, err); });
  return c;
}

Connection::Connection(std::shared_ptr<Transport> t, ConnectionOptions opts)
    : transport_(std::move(t)), opts_(std::move(opts)), rt_(&default_runtime()),
      next_xid_(initial_xid()) {}

Connection::~Connection() = default;

// ---- calls from this side ----------------------------------------------------

void Connection::call(std::uint32_t prog, std::uint32_t vers, std::uint32_t proc, xdrproc_t xargs,
                      const void* args, xdrproc_t xres, void* res, CallDone cb,
                      const CallOptions& opts) {
  const Auth& auth = opts.auth ? *opts.auth : auth_none();
  const std::vector<unsigned char>& cred = auth.wire();
  const std::size_t hdr = 24 + cred.size() + 8;
  void* a = const_cast<void*>(args);
  const std::size_t body = xdr_sizeof(xargs, a);
  RecordBuf rec(hdr + body);
  rec.resize(hdr + body);
  char* p = rec.data();
  std::uint32_t xid = next_xid_.fetch_add(1, std::memory_order_relaxed);
  // RFC 5531 9: xid, CALL, rpcvers, prog, vers, proc, cred, verf.
  wire::put32(p, xid);
  wire::put32(p + 4, wire::kCall);
  wire::put32(p + 8, wire::kRpcVersion);
  wire::put32(p + 12, prog);
  wire::put32(p + 16, vers);
  wire::put32(p + 20, proc);
  std::memcpy(p + 24, cred.data(), cred.size());
  wire::put32(p + 24 + cred.size(), AUTH_NONE);
  wire::put32(p + 28 + cred.size(), 0);
  XDR x;
  xdrmem_create(&x, p + hdr, static_cast<u_int>(body), XDR_ENCODE);
  bool ok = xargs(&x, a) && XDR_GETPOS(&x) == body;
  XDR_DESTROY(&x);
  RecordTail tail;
  if (ok && !opts.tail.empty()) {
    std::optional<RecordTail> t = wire::tail_for_last_opaque(rec, opts.tail, opts.tail_keep);
    if (t) tail = std::move(*t);
    else ok = false;
  }
  if (!ok) {
    complete(Pending{xres, res, std::move(cb), 0}, RpcStatus{RpcError::kEncodeArgs});
    return;
  }
  if (transport_->on_own_color()) {
    add_pending(xid, std::move(rec), std::move(tail), xres, res, std::move(cb), opts.timeout);
    return;
  }
  rt_->cpucb(Closure(
      [self = shared_from_this(), xid, rec = std::move(rec), tail = std::move(tail), xres, res, cb = std::move(cb),
       timeout = opts.timeout]() mutable {
        self->add_pending(xid, std::move(rec), std::move(tail), xres, res, std::move(cb), timeout);
      },
      color()));
}

void Connection::add_pending(std::uint32_t xid, RecordBuf rec, RecordTail tail, xdrproc_t xres, void* res,
                             CallDone cb, std::chrono::nanoseconds timeout) {
  if (closed_ || transport_->closed()) {
    complete(Pending{xres, res, std::move(cb), 0}, RpcStatus{RpcError::kConnectionLost});
    return;
  }
  // After 2^32 calls an xid could still be pending: take the next free one.
  if (pending_.count(xid)) {
    do xid = next_xid_.fetch_add(1, std::memory_order_relaxed);
    while (pending_.count(xid));
    wire::put32(rec.data(), xid);
  }
  TimerId timer = 0;
  if (timeout.count() > 0)
    timer = rt_->delaycb(timeout, Closure(wrap(color(), &Connection::on_timeout, shared_from_this(), xid)));
  pending_.emplace(xid, Pending{xres, res, std::move(cb), timer});
  transport_->send(std::move(rec), std::move(tail));
}

void Connection::on_timeout(std::uint32_t xid) {
  auto it = pending_.find(xid);
  if (it == pending_.end()) return;  // answered (or failed) first
  Pending p = std::move(it->second);
  pending_.erase(it);
  p.timer = 0;
  complete(std::move(p), RpcStatus{RpcError::kTimeout});
}

void Connection::complete(Pending p, RpcStatus st, RecordBuf rec) {
  if (p.timer) rt_->timecb_remove(p.timer);
  color_t c = p.cb.color();
  if (c == color() && transport_->on_own_color()) {
    p.cb(st);
    return;  // rec (results decoded as views point into it) goes now
  }
  // The reply record travels with the callback: views in the results stay
  // valid until it returns.
  rt_->cpucb(Closure([cb = std::move(p.cb), st, rec = std::move(rec)]() mutable { cb(st); }, c));
}

// ---- records from the peer ---------------------------------------------------

void Connection::on_record(RecordBuf rec) {
  if (rec.size() < 8) {
    transport_->close();  // not an RPC message: the stream is out of step
    return;
  }
  std::uint32_t type = wire::get32(rec.data() + 4);
  if (type == wire::kReply) {
    on_reply(std::move(rec));
  } else if (type == wire::kCall) {
    on_call(std::move(rec));
  } else {
    transport_->close();
  }
}

void Connection::on_reply(RecordBuf rec) {
  wire::Reader r(rec.data(), rec.size());
  std::uint32_t xid = r.u32();
  r.u32();  // REPLY
  auto it = pending_.find(xid);
  if (it == pending_.end()) return;  // late reply to a call that timed out
  Pending p = std::move(it->second);
  pending_.erase(it);

  RpcStatus st;
  std::uint32_t reply_stat = r.u32();
  if (reply_stat == wire::kMsgAccepted) {
    std::uint32_t len;
    r.u32();  // verifier flavor
    r.opaque(wire::kMaxAuthBytes, &len);
    std::uint32_t astat = r.u32();
    if (!r.ok()) {
      st.error = RpcError::kDecodeResult;
    } else if (astat == wire::kSuccess) {
      XDR x;
      xdrmem_create(&x, rec.data() + r.pos(), static_cast<u_int>(r.left()), XDR_DECODE);
      if (!p.xres(&x, p.res)) {
        xdr_free(p.xres, p.res);
        st.error = RpcError::kDecodeResult;
      }
      XDR_DESTROY(&x);
    } else if (astat == wire::kProgMismatch) {
      st.error = RpcError::kProgMismatch;
      st.low = r.u32();
      st.high = r.u32();
      if (!r.ok()) st.error = RpcError::kDecodeResult;
    } else {
      switch (astat) {
        case wire::kProgUnavail: st.error = RpcError::kProgUnavail; break;
        case wire::kProcUnavail: st.error = RpcError::kProcUnavail; break;
        case wire::kGarbageArgs: st.error = RpcError::kGarbageArgs; break;
        case wire::kSystemErr: st.error = RpcError::kSystemErr; break;
        default: st.error = RpcError::kDecodeResult; break;
      }
    }
  } else if (reply_stat == wire::kMsgDenied) {
    std::uint32_t why = r.u32();
    if (why == wire::kRpcMismatch) {
      st.error = RpcError::kRpcMismatch;
      st.low = r.u32();
      st.high = r.u32();
    } else if (why == wire::kAuthError) {
      st.error = RpcError::kAuthError;
      st.auth_stat = r.u32();
    } else {
      st.error = RpcError::kDecodeResult;
    }
    if (!r.ok()) st.error = RpcError::kDecodeResult;
  } else {
    st.error = RpcError::kDecodeResult;
  }
  if (st.ok()) {
    complete(std::move(p), st, std::move(rec));
  } else {
    complete(std::move(p), st);
  }
}

void Connection::on_call(RecordBuf rec) {
  wire::Reader r(rec.data(), rec.size());
  std::uint32_t xid = r.u32();
  r.u32();  // CALL
  std::uint32_t rpcvers = r.u32();
  std::uint32_t prog = r.u32();
  std::uint32_t vers = r.u32();
  std::uint32_t procnum = r.u32();
  std::uint32_t cred_flavor = r.u32();
  std::uint32_t cred_len;
  const char* cred_body = r.opaque(wire::kMaxAuthBytes, &cred_len);
  r.u32();  // verifier flavor
  std::uint32_t verf_len;
  r.opaque(wire::kMaxAuthBytes, &verf_len);
  if (!r.ok()) {
    // A call header that does not parse: the peer is broken or hostile,
    // and there is no telling what else it sent. End the connection.
    transport_->close();
    return;
  }
  if (rpcvers != wire::kRpcVersion) {
    transport_->send_response(wire::denied_rpc_mismatch(xid));
    return;
  }
  auto st = std::make_unique<Call::State>();
  st->cred.flavor = cred_flavor;
  if (cred_flavor == AUTH_SYS) {
    if (!wire::parse_auth_sys(cred_body, cred_len, &st->cred.sys)) {
      transport_->send_response(wire::denied_auth(xid, AUTH_BADCRED));
      return;
    }
  } else if (cred_flavor != AUTH_NONE) {
    st->cred.body.assign(cred_body, cred_len);
  }

  bool prog_known = false;
  std::uint32_t low = 0, high = 0;
  const Program* program =
      opts_.programs ? opts_.programs->find(prog, vers, &prog_known, &low, &high) : nullptr;
  if (!program) {
    transport_->send_response(prog_known ? wire::accepted_error(xid, wire::kProgMismatch, low, high)
                                : wire::accepted_error(xid, wire::kProgUnavail));
    return;
  }
  if (std::find(program->flavors.begin(), program->flavors.end(), cred_flavor) ==
      program->flavors.end()) {
    transport_->send_response(wire::denied_auth(xid, cred_flavor == AUTH_NONE ? AUTH_TOOWEAK : AUTH_REJECTEDCRED));
    return;
  }
  if (procnum >= program->iface.procs.size() || !program->iface.procs[procnum].xargs) {
    transport_->send_response(wire::accepted_error(xid, wire::kProcUnavail));
    return;
  }
  const Proc& pr = program->iface.procs[procnum];
  st->program = program;
  st->proc = &pr;
  st->xid = xid;
  st->procnum = procnum;
  if (pr.args_size) {
    if (!st->alloc_args(pr.args_size)) {
      transport_->send_response(wire::accepted_error(xid, wire::kSystemErr));
      return;
    }
  }
  // The Call owns the record: arguments decoded as views point into it.
  st->record = std::move(rec);
  XDR x;
  xdrmem_create(&x, st->record.data() + r.pos(), static_cast<u_int>(r.left()), XDR_DECODE);
  bool ok = pr.xargs(&x, st->args);
  XDR_DESTROY(&x);
  if (!ok) {
    transport_->send_response(wire::accepted_error(xid, wire::kGarbageArgs));
    return;  // st's destructor frees what was decoded
  }
  st->conn = shared_from_this();
  // Counted until answered (answered()); at the limit, stop reading calls.
  ++in_progress_;
  in_progress_hint_.store(in_progress_, std::memory_order_relaxed);
  if (opts_.max_calls_in_progress && in_progress_ >= opts_.max_calls_in_progress && !holding_) {
    holding_ = true;
    transport_->hold_reading();
  }
  program->dispatch(Call(std::move(st)));
}

void Connection::answer(RecordBuf rec, RecordTail tail) {
  if (transport_->on_own_color()) {
    answered(std::move(rec), std::move(tail));
    return;
  }
  rt_->cpucb(Closure(
      [self = shared_from_this(), r = std::move(rec), t = std::move(tail)]() mutable {
        self->answered(std::move(r), std::move(t));
      },
      color()));
}

void Connection::answered(RecordBuf rec, RecordTail tail) {
  if (in_progress_ > 0) --in_progress_;
  in_progress_hint_.store(in_progress_, std::memory_order_relaxed);
  transport_->send_response(std::move(rec), std::move(tail));
  if (holding_ && in_progress_ <= opts_.max_calls_in_progress / 2) {
    holding_ = false;
    transport_->release_reading();
  }
}


void Connection::on_close(CloseReason why, int err) {
  closed_ = true;
  std::unordered_map<std::uint32_t, Pending> dead;
  dead.swap(pending_);
  for (auto& [xid, p] : dead) complete(std::move(p), RpcStatus{RpcError::kConnectionLost});
  if (opts_.on_close) opts_.on_close(why, err);
}

// ---- connecting --------------------------------------------------------------

void connect(const std::string& host, std::uint16_t port, color_t color, ConnectionOptions copts,
             TransportOptions topts, Callback<void(std::shared_ptr<Connection>, int err)> cb) {
  color_t cb_color = cb.color();
  auto done = std::make_shared<Callback<void(std::shared_ptr<Connection>, int)>>(std::move(cb));
  auto co = std::make_shared<ConnectionOptions>(std::move(copts));
  tcp_connect(host, port,
              Callback<void(int, int)>(
                  [done, co, color, topts](int fd, int err) {
                    if (fd < 0) {
                      (*done)(nullptr, err);
                      return;
                    }
                    (*done)(Connection::create(Transport::create(fd, color, topts), std::move(*co)), 0);
                  },
                  cb_color));
}

// ---- Client ------------------------------------------------------------------

Client::Client(std::shared_ptr<Connection> conn, std::shared_ptr<const Interface> iface, Auth auth,
               std::chrono::nanoseconds timeout)
    : conn_(std::move(conn)), iface_(std::move(iface)),
      auth_(std::make_shared<const Auth>(std::move(auth))), timeout_(timeout) {}

void Client::call(std::uint32_t proc, const void* args, void* res, CallDone cb) const {
  if (proc >= iface_->procs.size() || !iface_->procs[proc].xargs)
    throw std::invalid_argument("asmp::rpc::Client::call: procedure not in the interface");
  const Proc& p = iface_->procs[proc];
  call(proc, p.xargs, args, p.xres, res, std::move(cb));
}

void Client::call(std::uint32_t proc, xdrproc_t xargs, const void* args, xdrproc_t xres, void* res,
                  CallDone cb) const {
  CallOptions o;
  o.timeout = timeout_;
  o.auth = auth_.get();
  conn_->call(iface_->prog, iface_->vers, proc, xargs, args, xres, res, std::move(cb), o);
}

}  // namespace asmp::rpc
