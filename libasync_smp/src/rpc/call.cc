// call.cc: the server side of one call. A Call is move-only and answers at
// most once; reply() encodes at once on the calling thread and the record
// hops to the connection's color (Connection::answer), where the call stops
// counting as in progress and the record is sealed and sent
// (Transport::send_response).
#include "wire.h"

namespace asmp::rpc {

Call::Call(std::unique_ptr<State> s) : state_(std::move(s)) {}
Call::Call(Call&&) noexcept = default;

Call& Call::operator=(Call&& o) noexcept {
  if (this != &o) {
    if (state_ && !state_->answered) reply_error(RpcError::kSystemErr);
    state_ = std::move(o.state_);
  }
  return *this;
}

Call::~Call() {
  // Never lose a call: a handler that forgot to answer (or threw) still
  // gets its caller an answer rather than a timeout.
  if (state_ && !state_->answered) reply_error(RpcError::kSystemErr);
}

std::uint32_t Call::prog() const { return state_->program->iface.prog; }
std::uint32_t Call::vers() const { return state_->program->iface.vers; }
std::uint32_t Call::proc() const { return state_->procnum; }
std::uint32_t Call::xid() const { return state_->xid; }
const Cred& Call::cred() const { return state_->cred; }
color_t Call::color() const { return state_->conn->color(); }
const std::shared_ptr<Connection>& Call::connection() const { return state_->conn; }
void* Call::raw_args() const { return state_->args; }
bool Call::answered() const { return state_ && state_->answered; }

void Call::reply(const void* res) { reply(state_->proc->xres, res); }

void Call::reply(xdrproc_t xres, const void* res) {
  if (!state_ || state_->answered) return;
  state_->answered = true;
  RecordBuf rec = wire::success(state_->xid, xres, res);
  if (rec.empty()) rec = wire::accepted_error(state_->xid, wire::kSystemErr);
  state_->conn->answer(std::move(rec));
}

void Call::reply_with_tail(const void* res, std::span<const char> data, std::shared_ptr<const void> keep) {
  if (state_) reply_with_tail(state_->proc->xres, res, data, std::move(keep));
}

void Call::reply_with_tail(xdrproc_t xres, const void* res, std::span<const char> data,
                           std::shared_ptr<const void> keep) {
  if (!state_ || state_->answered) return;
  RecordBuf rec = wire::success(state_->xid, xres, res);
  std::optional<RecordTail> tail = wire::tail_for_last_opaque(rec, data, std::move(keep));
  if (!tail) {
    reply_error(RpcError::kSystemErr);
    return;
  }
  state_->answered = true;
  state_->conn->answer(std::move(rec), std::move(*tail));
}

void Call::reply_error(RpcError e) {
  if (!state_ || state_->answered) return;
  state_->answered = true;
  std::uint32_t low = 0, high = 0;
  if (e == RpcError::kProgMismatch) low = high = state_->program->iface.vers;
  state_->conn->answer(wire::accepted_error(state_->xid, wire::accept_stat_of(e), low, high));
}

void Call::reject_auth(std::uint32_t auth_stat) {
  if (!state_ || state_->answered) return;
  state_->answered = true;
  state_->conn->answer(wire::denied_auth(state_->xid, auth_stat));
}

}  // namespace asmp::rpc
