// calls.cc: NfsClient's calls, from accept to callback. The wait queues and
// the caps on what is at the server at once, issuing with each call's own
// AUTH_UNIX credentials, replies, deadlines, JUKEBOX retries, and what a
// lost connection means for each call that was in flight (resend, or fail
// with kConnectionLost). The connection itself is connection.cc's; see
// client_impl.h for the protocol.
#include <algorithm>
#include <iterator>

#include "client_impl.h"

namespace asmp::nfs {

namespace {

// RFC 5531 appendix A: machinename<255>.
constexpr std::size_t kMaxMachineName = 255;

std::string endpoint(const NfsOptions& o) { return o.host + ":" + std::to_string(o.nfs_port); }

}  // namespace

// ---------------------------------------------------------------- bookkeeping

void NfsClient::Impl::link_active(Call* c) {
  c->prev = nullptr;
  c->next = active_head_;
  if (active_head_) active_head_->prev = c;
  active_head_ = c;
  ++nactive_;
}

void NfsClient::Impl::unlink_active(Call* c) {
  if (c->prev) c->prev->next = c->next;
  else if (active_head_ == c) active_head_ = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = nullptr;
  --nactive_;
}

// Queues drop finished calls lazily (when they reach the front), so a Call
// is freed only once it is finished, out of libnfs and out of every queue.
void NfsClient::Impl::release(Call* c) {
  if (c->finished && !c->in_libnfs && c->queue == Call::Queue::kNone) delete c;
}

void NfsClient::Impl::finish(Call* c, Error e) {
  if (!c->finished) {
    unlink_active(c);
    if (c->queue == Call::Queue::kWaiting || c->queue == Call::Queue::kSuspect) --queued_live_;
    if (c == suspect_in_flight_) suspect_in_flight_ = nullptr;  // let the next suspect go
    if (c->epoch == 0) c->epoch = epoch_.load(std::memory_order_relaxed);
    c->fail(rt, std::move(e));
  }
  release(c);
}

void NfsClient::Impl::enqueue(Call* c, Call::Queue q, bool front) {
  c->queue = q;
  if (q == Call::Queue::kDelayed) {
    delayed_.push_back(c);
    return;
  }
  ++queued_live_;
  auto& dq = q == Call::Queue::kSuspect ? suspects_ : waiting_;
  if (front) dq.push_front(c);
  else dq.push_back(c);
}

// ---------------------------------------------------------------- sending

void NfsClient::Impl::accept(Call* c) {
  c->owner = this;
  c->seq = next_seq_++;
  auto t = c->timeout.count() > 0 ? c->timeout : opts.call_timeout;
  c->deadline = Clock::now() + t;
  c->timeout = t;
  link_active(c);
  if (state_ == State::kClosed) {
    finish(c, {Failure::kClosed, Status::kOk, "NFS client closed"});
    return;
  }
  const bool ready = state_ == State::kReady;
  if (!ready && queued_live_ >= opts.max_waiting) {
    // A server that stays away must not make callers pile up without bound.
    stats_.rejected.fetch_add(1, std::memory_order_relaxed);
    finish(c, {Failure::kUnavailable, Status::kOk,
               std::string(c->name) + ": not connected to the NFS server at " + endpoint(opts) +
                   " and " + std::to_string(queued_live_) +
                   " calls already wait for the reconnect (max_waiting); not queued"});
    return;
  }
  arm_tick();
  enqueue(c, Call::Queue::kWaiting, false);
  if (ready) send_now();
  else if (state_ == State::kDown || state_ == State::kIdle) start_cycle();
}

bool NfsClient::Impl::fits(const Call* c) const {
  if (in_flight_ == 0) return true;  // a call larger than the byte cap still goes, alone
  return in_flight_ < opts.max_in_flight &&
         bytes_in_flight_ + c->cost_bytes <= opts.max_bytes_in_flight;
}

// Sends what may go now: first the next suspect (one at a time), then the
// waiting calls in order, while the caps allow. A call that does not fit
// holds back those behind it, so that order is kept.
void NfsClient::Impl::pump() {
  if (state_ != State::kReady || in_reconnect_cb_ || !nfs_.rpc) return;
  while (!suspect_in_flight_ && !suspects_.empty()) {
    Call* c = suspects_.front();
    if (!c->finished && !fits(c)) return;
    suspects_.pop_front();
    c->queue = Call::Queue::kNone;
    if (c->finished) {
      release(c);
      continue;
    }
    --queued_live_;
    suspect_in_flight_ = c;
    issue(c);  // on failure finish() clears suspect_in_flight_
  }
  while (!waiting_.empty() && state_ == State::kReady) {
    Call* c = waiting_.front();
    if (!c->finished && !fits(c)) return;
    waiting_.pop_front();
    c->queue = Call::Queue::kNone;
    if (c->finished) {
      release(c);
      continue;
    }
    --queued_live_;
    issue(c);
  }
}

// libnfs_authunix_create() with the checks libnfs does not make.
static AUTH* make_auth(const NfsOptions& o, const Cred& cred, std::string* why) {
  if (o.machine_name.size() > kMaxMachineName) {
    *why = "AUTH_UNIX machine name longer than 255 bytes";
    return nullptr;
  }
  if (cred.ngroups > Cred::kMaxGroups) {
    *why = "AUTH_UNIX carries at most 16 groups; this Cred says " + std::to_string(cred.ngroups);
    return nullptr;
  }
  std::array<std::uint32_t, Cred::kMaxGroups> groups = cred.groups;
  AUTH* auth = libnfs_authunix_create(o.machine_name.c_str(), cred.uid, cred.gid, cred.ngroups,
                                      groups.data());
  if (!auth) *why = "could not build AUTH_UNIX credentials for uid " + std::to_string(cred.uid);
  return auth;
}

rpc_context* NfsClient::Impl::new_context(const Cred& cred, std::string* why) {
  // Never leave libnfs's default AUTH (this process's own uid) in place.
  AUTH* auth = make_auth(opts, cred, why);
  if (!auth) return nullptr;
  rpc_context* rpc = rpc_init_context();
  if (!rpc) {
    libnfs_auth_destroy(auth);
    *why = "out of memory creating an RPC context";
    return nullptr;
  }
  rpc_set_auth(rpc, auth);
  return rpc;
}

// The credentials go into the call header when libnfs builds the PDU, so
// the context's AUTH is switched just before a call whose Cred differs from
// the previous one. If that fails the call must fail too: sending it would
// carry the previous caller's identity.
bool NfsClient::Impl::set_cred(const Cred& cred, std::string* why) {
  if (cred_set_ && cred == cur_cred_) return true;
  AUTH* auth = make_auth(opts, cred, why);
  if (!auth) return false;
  rpc_set_auth(nfs_.rpc, auth);  // frees the previous AUTH
  cur_cred_ = cred;
  cred_set_ = true;
  return true;
}

void NfsClient::Impl::issue(Call* c) {
  std::string why;
  if (!set_cred(c->cred, &why)) {
    finish(c, {Failure::kRpc, Status::kOk, std::string(c->name) + " not sent: " + why});
    return;
  }
  if (c->issue(nfs_.rpc, &Impl::on_reply, c) != 0) {
    finish(c, {Failure::kRpc, Status::kOk,
               std::string("could not queue ") + c->name + ": " + last_error(nfs_.rpc)});
    return;
  }
  c->in_libnfs = true;
  c->epoch = epoch_.load(std::memory_order_relaxed);
  bytes_in_flight_ += c->cost_bytes;
  if (in_flight_++ == 0) last_progress_ = Clock::now();
}

// ---------------------------------------------------------------- replies

// Called by libnfs from inside rpc_service() (or rpc_destroy_context()).
void NfsClient::Impl::on_reply(rpc_context*, int status, void* data, void* priv) {
  Call* c = static_cast<Call*>(priv);
  Impl* self = c->owner;
  c->in_libnfs = false;
  --self->in_flight_;
  self->bytes_in_flight_ -= c->cost_bytes;
  if (c == self->suspect_in_flight_) self->suspect_in_flight_ = nullptr;
  if (status == RPC_STATUS_SUCCESS) {
    self->last_progress_ = Clock::now();
    self->probe_out_ = false;  // any reply shows the server alive
    c->losses = 0;             // answered: it did not break the connection
  }
  if (c->finished) {  // timed out earlier
    self->release(c);
    return;
  }
  if (status == RPC_STATUS_SUCCESS) {
    // Every NFSv3 result begins with its nfsstat3 (RFC 1813 3.3).
    if (*static_cast<const nfsstat3*>(data) == NFS3ERR_JUKEBOX) {
      self->retry_later(c);
      return;
    }
    self->unlink_active(c);
    c->complete(self->rt, data);
    self->release(c);
    return;
  }
  if (status == RPC_STATUS_CANCEL) c->rpc_error = "cancelled";
  else if (data) c->rpc_error = static_cast<const char*>(data);
  else c->rpc_error = status == RPC_STATUS_TIMEOUT ? "timed out" : "RPC error";
  self->errored_.push_back(c);
}

// ---------------------------------------------------------------- losses

// The connection is gone and errored_ holds every call it carried. Each is
// resent at most once more (as a suspect) if that is safe; see
// client_impl.h, "Lost connections", and docs/nfs-backend.md.
void NfsClient::Impl::calls_lost(const std::string& why) {
  suspect_in_flight_ = nullptr;
  std::vector<Call*> errs;
  errs.swap(errored_);
  std::sort(errs.begin(), errs.end(), [](Call* a, Call* b) { return a->seq < b->seq; });
  std::vector<Call*> resend;
  for (Call* c : errs) {
    if (c->finished) {
      release(c);
      continue;
    }
    ++c->losses;
    std::string reason;
    if (c->losses >= 2) {
      reason = "it was in flight when the connection was lost before too, so it may be what "
               "breaks it";
    } else if (!c->resend_safe) {
      reason = "it is not idempotent; outcome unknown (the server may or may not have done it)";
    } else if (c->resends >= opts.max_resends) {
      reason = "it was already resent " + std::to_string(c->resends) + " times";
    }
    if (!reason.empty()) {
      finish(c, {Failure::kConnectionLost, Status::kOk,
                 std::string(c->name) + " was in flight when the connection to " +
                     endpoint(opts) + " was lost (" + why + "); not resent: " + reason});
      continue;
    }
    ++c->resends;
    stats_.resent.fetch_add(1, std::memory_order_relaxed);
    c->queue = Call::Queue::kSuspect;
    ++queued_live_;
    resend.push_back(c);
  }
  std::deque<Call*> merged;
  std::merge(suspects_.begin(), suspects_.end(), resend.begin(), resend.end(),
             std::back_inserter(merged), [](Call* a, Call* b) { return a->seq < b->seq; });
  suspects_.swap(merged);
}

void NfsClient::Impl::fail_waiting(Failure f, const std::string& why) {
  for (auto* dq : {&suspects_, &waiting_}) {
    std::deque<Call*> w;
    w.swap(*dq);
    for (Call* c : w) {
      finish(c, {f, Status::kOk, why});  // counts it out of queued_live_
      c->queue = Call::Queue::kNone;
      release(c);
    }
  }
}

void NfsClient::Impl::fail_everything(const Error& e) {
  std::vector<Call*> errs;
  errs.swap(errored_);
  for (Call* c : errs) finish(c, e);
  fail_waiting(e.failure, e.message);
  std::vector<Call*> delayed;
  delayed.swap(delayed_);
  for (Call* c : delayed) {
    c->queue = Call::Queue::kNone;
    finish(c, e);
  }
  while (active_head_) finish(active_head_, e);  // none expected
}

// ---------------------------------------------------------------- deadlines

void NfsClient::Impl::check_deadlines(Clock::time_point now) {
  for (Call* c = active_head_; c;) {
    Call* next = c->next;
    if (c->deadline <= now) {
      stats_.timeouts.fetch_add(1, std::memory_order_relaxed);
      std::string where;
      if (state_ != State::kReady) where = " (server unreachable, reconnecting)";
      else if (c->queue == Call::Queue::kWaiting)
        where = " (never sent: max_in_flight / max_bytes_in_flight calls were at the server)";
      finish(c, {Failure::kTimeout, Status::kOk,
                 std::string(c->name) + ": no reply within " + ms_string(c->timeout) + where});
    }
    c = next;
  }
}

// ---------------------------------------------------------------- JUKEBOX

// RFC 1813 2.6: NFS3ERR_JUKEBOX means the server could not do it *yet* and
// did nothing, so resending any procedure is safe. Wait (100 ms doubling to
// 1.6 s) within the call's own deadline, which the tick still enforces.
void NfsClient::Impl::retry_later(Call* c) {
  auto delay = std::chrono::milliseconds(100 << std::min(c->jukebox_retries, 4u));
  ++c->jukebox_retries;
  enqueue(c, Call::Queue::kDelayed, false);
  rt.delaycb(delay, wrap(opts.color, [self = shared_from_this(), c] { self->on_retry_timer(c); }));
}

void NfsClient::Impl::on_retry_timer(Call* c) {
  auto it = std::find(delayed_.begin(), delayed_.end(), c);
  if (it == delayed_.end()) return;  // freed by close
  delayed_.erase(it);
  c->queue = Call::Queue::kNone;
  if (c->finished || state_ == State::kClosed) {
    finish(c, {Failure::kClosed, Status::kOk, "NFS client closed"});
    return;
  }
  enqueue(c, Call::Queue::kWaiting, true);  // it is older than what waits
  if (state_ == State::kReady) send_now();
  else if (state_ == State::kDown || state_ == State::kIdle) start_cycle();
}

}  // namespace asmp::nfs
