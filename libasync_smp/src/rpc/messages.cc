// messages.cc: credentials, procedure tables, status strings, and the
// small fixed-shape replies (RFC 5531 sections 8, 9 and appendix A).
#include <cstdio>
#include <stdexcept>

#include "wire.h"

namespace asmp::rpc {

// ---- status ------------------------------------------------------------------

const char* to_string(RpcError e) {
  switch (e) {
    case RpcError::kOk: return "OK";
    case RpcError::kTimeout: return "timed out";
    case RpcError::kConnectionLost: return "connection lost";
    case RpcError::kEncodeArgs: return "cannot encode arguments";
    case RpcError::kDecodeResult: return "cannot decode reply";
    case RpcError::kRpcMismatch: return "RPC_MISMATCH";
    case RpcError::kAuthError: return "AUTH_ERROR";
    case RpcError::kProgUnavail: return "PROG_UNAVAIL";
    case RpcError::kProgMismatch: return "PROG_MISMATCH";
    case RpcError::kProcUnavail: return "PROC_UNAVAIL";
    case RpcError::kGarbageArgs: return "GARBAGE_ARGS";
    case RpcError::kSystemErr: return "SYSTEM_ERR";
  }
  return "?";
}

std::string RpcStatus::message() const {
  char buf[96];
  switch (error) {
    case RpcError::kProgMismatch:
      std::snprintf(buf, sizeof buf, "PROG_MISMATCH (server has versions %u..%u)", low, high);
      return buf;
    case RpcError::kRpcMismatch:
      std::snprintf(buf, sizeof buf, "RPC_MISMATCH (server speaks RPC %u..%u)", low, high);
      return buf;
    case RpcError::kAuthError:
      std::snprintf(buf, sizeof buf, "AUTH_ERROR (auth_stat %u)", auth_stat);
      return buf;
    default: return to_string(error);
  }
}

// ---- credentials -------------------------------------------------------------

Auth Auth::none() { return raw(AUTH_NONE, nullptr, 0); }

Auth Auth::raw(std::uint32_t flavor, const void* body, std::size_t len) {
  if (len > wire::kMaxAuthBytes) throw std::invalid_argument("asmp::rpc::Auth: body above 400 bytes");
  Auth a;
  a.flavor_ = flavor;
  a.wire_.assign(8 + wire::pad4(len), 0);
  char* p = reinterpret_cast<char*>(a.wire_.data());
  wire::put32(p, flavor);
  wire::put32(p + 4, static_cast<std::uint32_t>(len));
  if (len) std::memcpy(p + 8, body, len);
  return a;
}

Auth Auth::sys(const AuthSys& s) {
  if (s.machine.size() > 255 || s.gids.size() > 16)
    throw std::invalid_argument("asmp::rpc::Auth::sys: machine name above 255 bytes or more than 16 gids");
  std::vector<char> body(4 + 4 + wire::pad4(s.machine.size()) + 4 + 4 + 4 + 4 * s.gids.size(), 0);
  char* p = body.data();
  wire::put32(p, s.stamp);
  wire::put32(p + 4, static_cast<std::uint32_t>(s.machine.size()));
  std::memcpy(p + 8, s.machine.data(), s.machine.size());
  p += 8 + wire::pad4(s.machine.size());
  wire::put32(p, s.uid);
  wire::put32(p + 4, s.gid);
  wire::put32(p + 8, static_cast<std::uint32_t>(s.gids.size()));
  p += 12;
  for (std::uint32_t g : s.gids) {
    wire::put32(p, g);
    p += 4;
  }
  return raw(AUTH_SYS, body.data(), body.size());
}

bool wire::parse_auth_sys(const char* body, std::size_t len, AuthSys* out) {
  Reader r(body, len);
  out->stamp = r.u32();
  std::uint32_t mlen = 0;
  const char* m = r.opaque(255, &mlen);
  if (!r.ok()) return false;
  out->machine.assign(m, mlen);
  out->uid = r.u32();
  out->gid = r.u32();
  std::uint32_t n = r.u32();
  if (!r.ok() || n > 16) return false;
  out->gids.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) out->gids[i] = r.u32();
  return r.ok();
}

// ---- zero-copy opaque data ----------------------------------------------------

bool_t xdr_opaque_view(XDR* xdrs, BytesView* v, u_int max) {
  switch (xdrs->x_op) {
    case XDR_ENCODE: {
      u_int len = v->len;
      if (len > max || !xdr_u_int(xdrs, &len)) return FALSE;
      if (len == 0) return TRUE;
      // One copy into the record, padding from libtirpc's zero array.
      return xdr_opaque(xdrs, const_cast<char*>(v->data), len);
    }
    case XDR_DECODE: {
      u_int len;
      if (!xdr_u_int(xdrs, &len) || len > max) return FALSE;
      if (len == 0) {
        v->data = "";
        v->len = 0;
        return TRUE;
      }
      std::size_t padded = wire::pad4(len);
      if (padded > 0x7fffffff) return FALSE;  // past any record, and XDR positions are int
      // xdrmem's inline hands out a pointer into its buffer and advances, or
      // returns null if fewer bytes are left (truncated data).
      auto* p = reinterpret_cast<const char*>(xdr_inline(xdrs, static_cast<u_int>(padded)));
      if (!p) return FALSE;
      v->data = p;
      v->len = len;
      return TRUE;
    }
    case XDR_FREE:
      v->data = nullptr;
      v->len = 0;
      return TRUE;
  }
  return FALSE;
}

// ---- tables ------------------------------------------------------------------

void Programs::add(Program p) {
  for (const Program& q : programs_)
    if (q.iface.prog == p.iface.prog && q.iface.vers == p.iface.vers)
      throw std::invalid_argument("asmp::rpc::Programs::add: program version added twice");
  if (!p.dispatch) throw std::invalid_argument("asmp::rpc::Programs::add: no dispatch function");
  programs_.push_back(std::move(p));
}

const Program* Programs::find(std::uint32_t prog, std::uint32_t vers, bool* prog_known,
                              std::uint32_t* low, std::uint32_t* high) const {
  *prog_known = false;
  *low = ~0u;
  *high = 0;
  const Program* hit = nullptr;
  for (const Program& p : programs_) {
    if (p.iface.prog != prog) continue;
    *prog_known = true;
    *low = std::min(*low, p.iface.vers);
    *high = std::max(*high, p.iface.vers);
    if (p.iface.vers == vers) hit = &p;
  }
  return hit;
}

// ---- fixed replies -----------------------------------------------------------

namespace wire {

// The accepted-reply header: xid, REPLY, MSG_ACCEPTED, a null verifier and
// accept_stat (kAcceptedHeader bytes).
static void put_accepted_header(char* p, std::uint32_t xid, std::uint32_t accept_stat) {
  put32(p, xid);
  put32(p + 4, kReply);
  put32(p + 8, kMsgAccepted);
  put32(p + 12, AUTH_NONE);
  put32(p + 16, 0);
  put32(p + 20, accept_stat);
}

RecordBuf accepted_error(std::uint32_t xid, std::uint32_t accept_stat, std::uint32_t low,
                         std::uint32_t high) {
  bool mismatch = accept_stat == kProgMismatch;
  RecordBuf b(kAcceptedHeader + (mismatch ? 8 : 0));
  b.resize(b.capacity());
  char* p = b.data();
  put_accepted_header(p, xid, accept_stat);
  if (mismatch) {
    put32(p + 24, low);
    put32(p + 28, high);
  }
  return b;
}

RecordBuf denied_rpc_mismatch(std::uint32_t xid) {
  RecordBuf b(24);
  b.resize(24);
  char* p = b.data();
  put32(p, xid);
  put32(p + 4, kReply);
  put32(p + 8, kMsgDenied);
  put32(p + 12, kRpcMismatch);
  put32(p + 16, kRpcVersion);  // low
  put32(p + 20, kRpcVersion);  // high
  return b;
}

RecordBuf denied_auth(std::uint32_t xid, std::uint32_t auth_stat) {
  RecordBuf b(20);
  b.resize(20);
  char* p = b.data();
  put32(p, xid);
  put32(p + 4, kReply);
  put32(p + 8, kMsgDenied);
  put32(p + 12, kAuthError);
  put32(p + 16, auth_stat);
  return b;
}

RecordBuf success(std::uint32_t xid, xdrproc_t xres, const void* res) {
  void* r = const_cast<void*>(res);
  std::size_t body = xdr_sizeof(xres, r);
  RecordBuf b(kAcceptedHeader + body);
  b.resize(kAcceptedHeader + body);
  char* p = b.data();
  put_accepted_header(p, xid, kSuccess);
  XDR x;
  xdrmem_create(&x, p + kAcceptedHeader, static_cast<u_int>(body), XDR_ENCODE);
  bool ok = xres(&x, r) && XDR_GETPOS(&x) == body;
  XDR_DESTROY(&x);
  if (!ok) return RecordBuf();
  return b;
}

std::uint32_t accept_stat_of(RpcError e) {
  switch (e) {
    case RpcError::kProgUnavail: return kProgUnavail;
    case RpcError::kProgMismatch: return kProgMismatch;
    case RpcError::kProcUnavail: return kProcUnavail;
    case RpcError::kGarbageArgs: return kGarbageArgs;
    default: return kSystemErr;
  }
}

}  // namespace wire
}  // namespace asmp::rpc
