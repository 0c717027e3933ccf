// client.cc: NfsClient's connection: driving libnfs from the event loop,
// mounting, reconnecting, per-call deadlines. See client_impl.h for the
// protocol; procedures.cc has the NFSv3 calls themselves.
#include <poll.h>

#include <algorithm>
#include <cstdio>

#include "client_impl.h"

namespace asmp::nfs {

namespace {

constexpr std::chrono::milliseconds kTick{100};
constexpr int kMountProgram = 100005;
constexpr int kMountVersion = 3;
constexpr int kNfsProgram = 100003;
constexpr int kNfsVersion = 3;

Runtime& pick_runtime(Runtime* r) {
  if (r) return *r;
  if (Runtime* cur = Runtime::current()) return *cur;
  return default_runtime();
}

// rpc_get_error() returns NULL when libnfs has not set a message.
std::string last_error(rpc_context* rpc) {
  const char* e = rpc ? rpc_get_error(rpc) : nullptr;
  return e && *e ? e : "connection closed by peer";
}

std::string ms_string(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

NfsClient::Impl::Impl(NfsOptions o) : opts(std::move(o)), rt(pick_runtime(opts.runtime)) {}

NfsClient::Impl::~Impl() {
  // Only reached once nothing refers to us: no fd callback, timer or hop is
  // registered (they all hold a shared_ptr), so no other thread is inside.
  // close_now() has normally run already. If it has not, the runtime is
  // going away with callbacks unrun, so pending calls are dropped the same
  // way: their callbacks are destroyed without running.
  for (int w : {kMountConn, kNfsConn}) {
    if (conn(w).rpc) {
      rpc_context* rpc = conn(w).rpc;
      conn(w).rpc = nullptr;
      rpc_destroy_context(rpc);  // CANCELs what it holds: into errored_
    }
  }
  for (Call* c : errored_) delete c;
  for (Call* c : waiting_) delete c;
  for (Call* c : delayed_) delete c;
}

// ---------------------------------------------------------------- hops

bool NfsClient::Impl::on_color() const {
  return Runtime::worker_index() >= 0 && Runtime::current() == &rt &&
         Runtime::current_color() == opts.color;
}

void NfsClient::Impl::run_on_color(Closure fn) {
  fn.set_color(opts.color);
  rt.cpucb(std::move(fn));
}

void NfsClient::Impl::submit(std::unique_ptr<Call> call) {
  stats_.calls.fetch_add(1, std::memory_order_relaxed);
  if (on_color()) {
    accept(call.release());
    return;
  }
  run_on_color([self = shared_from_this(), c = std::move(call)]() mutable {
    self->accept(c.release());
  });
}

void NfsClient::Impl::mount(Done<FileHandle> done) {
  run_on_color([self = shared_from_this(), d = std::move(done)]() mutable {
    Result<FileHandle> r;
    if (self->state_ == State::kReady) {
      r.value = self->mounted_root_;
    } else if (self->state_ == State::kClosed) {
      r.error = {Failure::kClosed, Status::kOk, "NFS client closed"};
    } else if (self->mount_done_) {
      r.error = {Failure::kRpc, Status::kOk, "mount() is already in progress"};
    } else {
      self->mount_done_ = std::move(d);
      if (self->state_ == State::kIdle || self->state_ == State::kDown) self->start_cycle();
      return;
    }
    color_t c = d.color();
    self->rt.cpucb(Closure([d = std::move(d), r = std::move(r)]() mutable { d(std::move(r)); }, c));
  });
}

void NfsClient::Impl::close() {
  run_on_color([self = shared_from_this()] { self->close_now(); });
}

void NfsClient::Impl::disconnect_for_test() {
  run_on_color([self = shared_from_this()] {
    if (self->state_ == State::kReady) self->connection_lost("disconnected by test");
  });
}

FileHandle NfsClient::Impl::root() const {
  std::lock_guard lk(root_mu_);
  return root_;
}

NfsStats NfsClient::Impl::stats() const {
  NfsStats s;
  s.calls = stats_.calls.load(std::memory_order_relaxed);
  s.resent = stats_.resent.load(std::memory_order_relaxed);
  s.timeouts = stats_.timeouts.load(std::memory_order_relaxed);
  s.connects = stats_.connects.load(std::memory_order_relaxed);
  s.disconnects = stats_.disconnects.load(std::memory_order_relaxed);
  s.stalls = stats_.stalls.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------- calls

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

void NfsClient::Impl::release(Call* c) {
  if (c->finished && !c->in_libnfs && !c->queued) delete c;
}

void NfsClient::Impl::finish(Call* c, Error e) {
  if (!c->finished) {
    unlink_active(c);
    c->fail(rt, std::move(e));
  }
  release(c);
}

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
  arm_tick();
  if (state_ == State::kReady) {
    issue(c);
    // Write now rather than wait for the poller: the socket is almost
    // always writable, and this saves registering for POLLOUT per call.
    if (nfs_.rpc && (rpc_which_events(nfs_.rpc) & POLLOUT)) {
      int rc = rpc_service(nfs_.rpc, POLLOUT);
      after_service(kNfsConn, rc);
    } else {
      update_events(kNfsConn);
    }
    return;
  }
  c->queued = true;
  waiting_.push_back(c);
  if (state_ == State::kDown || state_ == State::kIdle) start_cycle();
}

void NfsClient::Impl::set_cred(const Cred& cred) {
  if (cred_set_ && cred == cur_cred_) return;
  std::array<std::uint32_t, Cred::kMaxGroups> groups = cred.groups;
  AUTH* auth = libnfs_authunix_create(opts.machine_name.c_str(), cred.uid, cred.gid, cred.ngroups,
                                      groups.data());
  if (!auth) return;  // keep the previous one; the call will say EACCES if it matters
  rpc_set_auth(nfs_.rpc, auth);  // frees the previous AUTH
  cur_cred_ = cred;
  cred_set_ = true;
}

void NfsClient::Impl::issue(Call* c) {
  // The credentials are encoded into the call header when the PDU is built,
  // so switching the context's AUTH just before each call makes it per call.
  set_cred(c->cred);
  if (c->issue(nfs_.rpc, &Impl::on_reply, c) != 0) {
    finish(c, {Failure::kRpc, Status::kOk,
               std::string("could not queue ") + c->name + ": " + last_error(nfs_.rpc)});
    return;
  }
  c->in_libnfs = true;
  if (in_flight_++ == 0) last_progress_ = Clock::now();
}

// Called by libnfs from inside rpc_service() (or rpc_destroy_context()).
// Records only; decisions wait until libnfs has returned.
void NfsClient::Impl::on_reply(rpc_context*, int status, void* data, void* priv) {
  Call* c = static_cast<Call*>(priv);
  Impl* self = c->owner;
  c->in_libnfs = false;
  --self->in_flight_;
  if (status == RPC_STATUS_SUCCESS) self->last_progress_ = Clock::now();
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

// ---------------------------------------------------------------- events

void NfsClient::Impl::on_fd(int which, std::uint64_t gen, int revents) {
  Conn& k = conn(which);
  if (!k.rpc || k.gen != gen) return;  // torn down since this was queued
  int rc = rpc_service(k.rpc, revents);
  after_service(which, rc);
}

void NfsClient::Impl::after_service(int which, int rc) {
  if (which == kMountConn) {
    if (rc < 0 || mount_step_ == Step::kFailed) {
      std::string why = step_error_.empty() ? last_error(mnt_.rpc) : step_error_;
      cycle_failed("MOUNT at " + opts.host + ":" + std::to_string(opts.mount_port) + ": " + why);
    } else if (mount_step_ == Step::kOk) {
      teardown(kMountConn);
      start_nfs_connect();
    } else {
      update_events(kMountConn);
    }
    return;
  }
  if (rc < 0 || nfs_step_ == Step::kFailed) {
    std::string why = step_error_.empty() ? last_error(nfs_.rpc) : step_error_;
    if (state_ == State::kReady) {
      connection_lost(why);
    } else {
      cycle_failed("NFS at " + opts.host + ":" + std::to_string(opts.nfs_port) + ": " + why);
    }
    return;
  }
  // The connection is fine: errors libnfs reported are RPC-level ones.
  if (!errored_.empty()) {
    std::vector<Call*> errs;
    errs.swap(errored_);
    for (Call* c : errs) finish(c, {Failure::kRpc, Status::kOk, c->name + (": " + c->rpc_error)});
  }
  if (state_ == State::kConnecting && nfs_step_ == Step::kOk) {
    became_ready();
    return;
  }
  update_events(kNfsConn);
}

void NfsClient::Impl::update_events(int which) {
  Conn& k = conn(which);
  if (!k.rpc) return;
  int fd = rpc_get_fd(k.rpc);
  if (fd != k.fd && k.fd >= 0) {
    if (k.ops & selread) rt.fdcb(k.fd, selread, nullptr);
    if (k.ops & selwrite) rt.fdcb(k.fd, selwrite, nullptr);
    k.ops = 0;
  }
  k.fd = fd;
  if (fd < 0) return;
  int ev = rpc_which_events(k.rpc);
  unsigned want = ((ev & POLLIN) ? selread : 0u) | ((ev & POLLOUT) ? selwrite : 0u);
  for (Selop op : {selread, selwrite}) {
    if ((want & op) == (k.ops & op)) continue;
    if (want & op) {
      int revents = op == selread ? POLLIN : POLLOUT;
      rt.fdcb(fd, op, wrap(opts.color, &Impl::on_fd, shared_from_this(), which, k.gen, revents));
    } else {
      rt.fdcb(fd, op, nullptr);
    }
  }
  k.ops = want;
}

void NfsClient::Impl::teardown(int which) {
  Conn& k = conn(which);
  if (k.fd >= 0) {
    if (k.ops & selread) rt.fdcb(k.fd, selread, nullptr);
    if (k.ops & selwrite) rt.fdcb(k.fd, selwrite, nullptr);
  }
  k.ops = 0;
  k.fd = -1;
  ++k.gen;
  if (k.rpc) {
    rpc_context* rpc = k.rpc;
    k.rpc = nullptr;
    if (which == kNfsConn) cred_set_ = false;
    rpc_destroy_context(rpc);  // CANCELs what it holds: into errored_
  }
}

rpc_context* NfsClient::Impl::new_context(const Cred& cred) {
  rpc_context* rpc = rpc_init_context();
  if (!rpc) return nullptr;
  std::array<std::uint32_t, Cred::kMaxGroups> groups = cred.groups;
  if (AUTH* auth = libnfs_authunix_create(opts.machine_name.c_str(), cred.uid, cred.gid,
                                          cred.ngroups, groups.data())) {
    rpc_set_auth(rpc, auth);
  }
  return rpc;
}

// ---------------------------------------------------------------- connecting

void NfsClient::Impl::start_cycle() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kIdle || state_ == State::kDown || state_ == State::kReady) {
    outage_start_ = Clock::now();
    backoff_ = opts.backoff_initial;
  }
  start_mount();
}

void NfsClient::Impl::start_mount() {
  state_ = State::kMounting;
  mount_step_ = nfs_step_ = Step::kPending;
  step_error_.clear();
  cycle_deadline_ = Clock::now() + opts.connect_timeout;
  arm_tick();
  mnt_.rpc = new_context(opts.mount_cred);
  if (!mnt_.rpc) {
    cycle_failed("out of memory creating an RPC context");
    return;
  }
  if (rpc_connect_port_async(mnt_.rpc, opts.host.c_str(), opts.mount_port, kMountProgram,
                             kMountVersion, &Impl::on_mount_connected, this) != 0) {
    cycle_failed("MOUNT at " + opts.host + ":" + std::to_string(opts.mount_port) + ": " +
                 last_error(mnt_.rpc));
    return;
  }
  update_events(kMountConn);
}

void NfsClient::Impl::on_mount_connected(rpc_context* rpc, int status, void* data, void* priv) {
  Impl* self = static_cast<Impl*>(priv);
  if (self->mnt_.rpc != rpc) return;  // being destroyed
  if (status != RPC_STATUS_SUCCESS) {
    self->mount_step_ = Step::kFailed;
    self->step_error_ = data ? static_cast<const char*>(data) : "connect failed";
    return;
  }
  // Issuing from a connect callback is how libnfs itself chains steps.
  if (rpc_mount3_mnt_async(rpc, &Impl::on_mnt_reply, const_cast<char*>(self->opts.export_path.c_str()),
                           self) != 0) {
    self->mount_step_ = Step::kFailed;
    self->step_error_ = std::string("MNT not sent: ") + last_error(rpc);
  }
}

void NfsClient::Impl::on_mnt_reply(rpc_context* rpc, int status, void* data, void* priv) {
  Impl* self = static_cast<Impl*>(priv);
  if (self->mnt_.rpc != rpc) return;
  if (status != RPC_STATUS_SUCCESS) {
    self->mount_step_ = Step::kFailed;
    self->step_error_ = data ? static_cast<const char*>(data) : "MNT cancelled";
    return;
  }
  auto* res = static_cast<mountres3*>(data);
  if (res->fhs_status != MNT3_OK) {
    self->mount_step_ = Step::kFailed;
    self->step_error_ = "MNT " + self->opts.export_path + " refused with mountstat3 " +
                        std::to_string(static_cast<int>(res->fhs_status)) +
                        " (is it exported? is the path the server's?)";
    return;
  }
  const fhandle3& fh = res->mountres3_u.mountinfo.fhandle;
  self->mounted_root_ = FileHandle(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(fh.fhandle3_val), fh.fhandle3_len));
  self->mount_step_ = Step::kOk;
}

void NfsClient::Impl::start_nfs_connect() {
  state_ = State::kConnecting;
  nfs_.rpc = new_context(Cred{0, 0});
  cred_set_ = false;
  if (!nfs_.rpc) {
    cycle_failed("out of memory creating an RPC context");
    return;
  }
  if (rpc_connect_port_async(nfs_.rpc, opts.host.c_str(), opts.nfs_port, kNfsProgram, kNfsVersion,
                             &Impl::on_nfs_connected, this) != 0) {
    cycle_failed("NFS at " + opts.host + ":" + std::to_string(opts.nfs_port) + ": " +
                 last_error(nfs_.rpc));
    return;
  }
  update_events(kNfsConn);
}

void NfsClient::Impl::on_nfs_connected(rpc_context* rpc, int status, void* data, void* priv) {
  Impl* self = static_cast<Impl*>(priv);
  if (self->nfs_.rpc != rpc) return;
  if (status != RPC_STATUS_SUCCESS) {
    self->nfs_step_ = Step::kFailed;
    self->step_error_ = data ? static_cast<const char*>(data) : "connect failed";
    return;
  }
  self->nfs_step_ = Step::kOk;
}

void NfsClient::Impl::became_ready() {
  state_ = State::kReady;
  stats_.connects.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lk(root_mu_);
    if (ever_connected_ && !(root_ == mounted_root_)) {
      std::fprintf(stderr,
                   "asmp::nfs: the root handle of %s changed across a reconnect (%s -> %s); "
                   "handles held by callers may now be stale\n",
                   opts.export_path.c_str(), root_.hex().c_str(), mounted_root_.hex().c_str());
    }
    root_ = mounted_root_;
  }
  ever_connected_ = true;
  if (mount_done_) {
    Result<FileHandle> r;
    r.value = mounted_root_;
    color_t c = mount_done_.color();
    rt.cpucb(Closure([d = std::move(mount_done_), r = std::move(r)]() mutable { d(std::move(r)); }, c));
    mount_done_ = nullptr;
  }
  std::deque<Call*> ready;
  ready.swap(waiting_);
  for (Call* c : ready) {
    c->queued = false;
    if (c->finished) {
      release(c);
      continue;
    }
    issue(c);
  }
  update_events(kNfsConn);
}

void NfsClient::Impl::cycle_failed(const std::string& why) {
  teardown(kMountConn);
  teardown(kNfsConn);
  // Anything issued on a half-open connection (nothing, normally).
  std::vector<Call*> errs;
  errs.swap(errored_);
  for (Call* c : errs) {
    c->queued = true;
    waiting_.push_front(c);
  }
  if (state_ == State::kClosed) return;
  if (mount_done_) {  // the first mount reports its first failure
    Result<FileHandle> r;
    r.error = {Failure::kUnavailable, Status::kOk, why};
    color_t c = mount_done_.color();
    rt.cpucb(Closure([d = std::move(mount_done_), r = std::move(r)]() mutable { d(std::move(r)); }, c));
    mount_done_ = nullptr;
    state_ = State::kDown;
    fail_waiting(Failure::kUnavailable, why);
    return;
  }
  if (Clock::now() - outage_start_ >= opts.give_up_after) {
    state_ = State::kDown;
    fail_waiting(Failure::kUnavailable,
                 why + " (gave up reconnecting after " + ms_string(opts.give_up_after) + ")");
    return;
  }
  state_ = State::kBackoff;
  auto delay = backoff_;
  backoff_ = std::min(backoff_ * 2, opts.backoff_max);
  rt.delaycb(delay, wrap(opts.color, [self = shared_from_this()] {
               if (self->state_ == State::kBackoff) self->start_mount();
             }));
}

void NfsClient::Impl::fail_waiting(Failure f, const std::string& why) {
  std::deque<Call*> w;
  w.swap(waiting_);
  for (Call* c : w) {
    c->queued = false;
    finish(c, {f, Status::kOk, why});
  }
}

void NfsClient::Impl::connection_lost(const std::string& why) {
  stats_.disconnects.fetch_add(1, std::memory_order_relaxed);
  teardown(kNfsConn);  // more CANCELs land in errored_
  std::vector<Call*> errs;
  errs.swap(errored_);
  std::sort(errs.begin(), errs.end(), [](Call* a, Call* b) { return a->seq < b->seq; });
  std::vector<Call*> resend;
  for (Call* c : errs) {
    if (c->finished) {
      release(c);
    } else if (c->resend_safe && c->resends < opts.max_resends) {
      ++c->resends;
      stats_.resent.fetch_add(1, std::memory_order_relaxed);
      resend.push_back(c);
    } else {
      std::string reason = c->resend_safe
                               ? "it was already resent " + std::to_string(c->resends) + " times"
                               : "it is not safe to repeat";
      finish(c, {Failure::kConnectionLost, Status::kOk,
                 std::string(c->name) + " was in flight when the connection to " + opts.host +
                     ":" + std::to_string(opts.nfs_port) + " was lost (" + why +
                     "); not resent because " + reason});
    }
  }
  for (auto it = resend.rbegin(); it != resend.rend(); ++it) {
    (*it)->queued = true;
    waiting_.push_front(*it);
  }
  state_ = State::kIdle;
  start_cycle();
}

void NfsClient::Impl::close_now() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  teardown(kMountConn);
  teardown(kNfsConn);
  Error closed{Failure::kClosed, Status::kOk, "NFS client closed"};
  if (mount_done_) {
    Result<FileHandle> r;
    r.error = closed;
    color_t c = mount_done_.color();
    rt.cpucb(Closure([d = std::move(mount_done_), r = std::move(r)]() mutable { d(std::move(r)); }, c));
    mount_done_ = nullptr;
  }
  std::vector<Call*> errs;
  errs.swap(errored_);
  for (Call* c : errs) finish(c, closed);
  fail_waiting(Failure::kClosed, closed.message);
  std::vector<Call*> delayed;
  delayed.swap(delayed_);
  for (Call* c : delayed) {
    c->queued = false;
    finish(c, closed);
  }
  while (active_head_) finish(active_head_, closed);  // none expected
}

// ---------------------------------------------------------------- deadlines

void NfsClient::Impl::arm_tick() {
  if (tick_armed_ || state_ == State::kClosed) return;
  tick_armed_ = true;
  rt.delaycb(kTick, wrap(opts.color, [self = shared_from_this()] { self->on_tick(); }));
}

void NfsClient::Impl::on_tick() {
  tick_armed_ = false;
  if (state_ == State::kClosed) return;
  auto now = Clock::now();
  for (Call* c = active_head_; c;) {
    Call* next = c->next;
    if (c->deadline <= now) {
      stats_.timeouts.fetch_add(1, std::memory_order_relaxed);
      std::string where = state_ == State::kReady ? "" : " (server unreachable, reconnecting)";
      finish(c, {Failure::kTimeout, Status::kOk,
                 std::string(c->name) + ": no reply within " + ms_string(c->timeout) + where});
    }
    c = next;
  }
  if (state_ == State::kReady && in_flight_ > 0 && now - last_progress_ >= opts.stall_timeout) {
    stats_.stalls.fetch_add(1, std::memory_order_relaxed);
    connection_lost("no reply to any of " + std::to_string(in_flight_) + " calls for " +
                    ms_string(opts.stall_timeout));
  }
  bool cycling = state_ == State::kMounting || state_ == State::kConnecting;
  if (cycling && now >= cycle_deadline_) {
    cycle_failed("no answer within connect_timeout " + ms_string(opts.connect_timeout));
  }
  cycling = state_ == State::kMounting || state_ == State::kConnecting;
  if (nactive_ > 0 || in_flight_ > 0 || cycling) arm_tick();
}

// ---------------------------------------------------------------- JUKEBOX

// RFC 1813 2.6: NFS3ERR_JUKEBOX means the server could not do it *yet* and
// did nothing, so resending any procedure is safe. Wait (100 ms doubling to
// 1.6 s) within the call's own deadline, which the tick still enforces.
void NfsClient::Impl::retry_later(Call* c) {
  auto delay = std::chrono::milliseconds(100 << std::min(c->jukebox_retries, 4u));
  ++c->jukebox_retries;
  c->queued = true;
  delayed_.push_back(c);
  rt.delaycb(delay, wrap(opts.color, [self = shared_from_this(), c] { self->on_retry_timer(c); }));
}

void NfsClient::Impl::on_retry_timer(Call* c) {
  auto it = std::find(delayed_.begin(), delayed_.end(), c);
  if (it == delayed_.end()) return;  // freed by close
  delayed_.erase(it);
  c->queued = false;
  if (c->finished || state_ == State::kClosed) {
    finish(c, {Failure::kClosed, Status::kOk, "NFS client closed"});
    return;
  }
  if (state_ == State::kReady) {
    issue(c);
    update_events(kNfsConn);
  } else {
    c->queued = true;
    waiting_.push_back(c);
  }
}

// ---------------------------------------------------------------- NfsClient

NfsClient::NfsClient(NfsOptions opts) : impl_(std::make_shared<Impl>(std::move(opts))) {}
NfsClient::~NfsClient() { impl_->close(); }
void NfsClient::mount(Done<FileHandle> done) { impl_->mount(std::move(done)); }
FileHandle NfsClient::root() const { return impl_->root(); }
NfsStats NfsClient::stats() const { return impl_->stats(); }
const NfsOptions& NfsClient::options() const { return impl_->opts; }
void NfsClient::disconnect_for_test() { impl_->disconnect_for_test(); }

}  // namespace asmp::nfs
