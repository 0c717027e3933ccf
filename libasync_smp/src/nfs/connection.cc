// connection.cc: NfsClient's connection to the server. The state machine
// that connects to the MOUNT port, mounts, connects to the NFS port,
// reconnects with backoff and gives up; the NULL probes that tell a dead
// server from a slow one; the check that the source port is reserved; and
// driving libnfs's sockets from the event loop (fdcb under the client's
// color). What each call becomes when the connection changes is calls.cc's
// business; see client_impl.h for the protocol.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "client_impl.h"

namespace asmp::nfs {

namespace {

constexpr std::chrono::milliseconds kTick{100};
constexpr int kMountProgram = 100005;
constexpr int kMountVersion = 3;
constexpr int kNfsProgram = 100003;
constexpr int kNfsVersion = 3;
constexpr int kFirstUnreservedPort = 1024;  // IPPORT_RESERVED

}  // namespace

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
  if (state_ == State::kReady) send_now();  // replies may have made room
  else update_events(kNfsConn);
}

void NfsClient::Impl::send_now() {
  pump();
  // Write now rather than wait for the poller: the socket is almost always
  // writable, and this saves registering for POLLOUT per call. One try
  // only; what the socket does not take waits for POLLOUT.
  if (state_ == State::kReady && nfs_.rpc && (rpc_which_events(nfs_.rpc) & POLLOUT)) {
    if (rpc_service(nfs_.rpc, POLLOUT) < 0) {
      connection_lost(last_error(nfs_.rpc));
      return;
    }
    if (!errored_.empty()) {
      std::vector<Call*> errs;
      errs.swap(errored_);
      for (Call* c : errs) finish(c, {Failure::kRpc, Status::kOk, c->name + (": " + c->rpc_error)});
    }
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
    if (which == kNfsConn) {
      cred_set_ = false;
      probe_out_ = false;
    }
    if (k.connecting) {
      // libnfs 4.0 frees what rpc_connect_port_async allocated only in its
      // connect callback, which rpc_destroy_context never runs: a context
      // torn down before its TCP connect completed leaked 42 bytes (LSan).
      // A hang-up runs that callback (auto-reconnect is off); ours then
      // sees k.rpc no longer set and does nothing.
      k.connecting = false;
      rpc_service(rpc, POLLHUP);
    }
    rpc_destroy_context(rpc);  // CANCELs what it holds: into errored_
  }
}

// The export trusts AUTH_UNIX only from reserved ports. libnfs 4.0 tries to
// bind one (512..1023) before connecting and silently falls back to an
// ephemeral port when it may not (not root) or finds none free; the server
// would then refuse every call with AUTH_TOOWEAK, so say so here instead.
std::string NfsClient::Impl::source_port_problem(rpc_context* rpc) const {
  if (!opts.require_reserved_port) return "";
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(rpc_get_fd(rpc), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return std::string("cannot read the connection's source port: ") + std::strerror(errno);
  int port = -1;
  if (ss.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  else if (ss.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  if (port >= 0 && port < kFirstUnreservedPort) return "";
  return "connected from source port " + std::to_string(port) +
         ", which is not reserved (< 1024); the server accepts AUTH_UNIX only from reserved "
         "ports. libnfs binds one only when the process may (root or CAP_NET_BIND_SERVICE) "
         "and one of 512..1023 is free";
}

// Reserved ports are few (512..1023 less /etc/services: about 480), and a
// socket this side closes sits in TIME_WAIT for a minute holding its port:
// a few restarts of a process with several backend connections, or a MOUNT
// connection per reconnect, would use them all and the next connect would
// fall back to an ephemeral port the server refuses. So backend sockets
// close with a reset (SO_LINGER 0), which leaves no TIME_WAIT. Nothing is
// lost by it: a socket is closed only once its calls are answered or given
// up (cancelled to their callers), and the peer is on this host.
static void close_without_time_wait(rpc_context* rpc) {
  linger l{};
  l.l_onoff = 1;
  l.l_linger = 0;
  (void)setsockopt(rpc_get_fd(rpc), SOL_SOCKET, SO_LINGER, &l, sizeof l);
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
  std::string why;
  mnt_.rpc = new_context(opts.mount_cred, &why);
  if (!mnt_.rpc) {
    cycle_failed("MOUNT: " + why);
    return;
  }
  if (rpc_connect_port_async(mnt_.rpc, opts.host.c_str(), opts.mount_port, kMountProgram,
                             kMountVersion, &Impl::on_mount_connected, this) != 0) {
    cycle_failed("MOUNT at " + opts.host + ":" + std::to_string(opts.mount_port) + ": " +
                 last_error(mnt_.rpc));
    return;
  }
  mnt_.connecting = true;
  update_events(kMountConn);
}

void NfsClient::Impl::on_mount_connected(rpc_context* rpc, int status, void* data, void* priv) {
  Impl* self = static_cast<Impl*>(priv);
  if (self->mnt_.rpc != rpc) return;  // being destroyed
  self->mnt_.connecting = false;
  if (status != RPC_STATUS_SUCCESS) {
    self->mount_step_ = Step::kFailed;
    self->step_error_ = data ? static_cast<const char*>(data) : "connect failed";
    return;
  }
  close_without_time_wait(rpc);
  if (std::string bad = self->source_port_problem(rpc); !bad.empty()) {
    self->mount_step_ = Step::kFailed;
    self->step_error_ = bad;
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
  std::string why;
  nfs_.rpc = new_context(Cred{0, 0}, &why);
  cred_set_ = false;
  if (!nfs_.rpc) {
    cycle_failed("NFS: " + why);
    return;
  }
  if (rpc_connect_port_async(nfs_.rpc, opts.host.c_str(), opts.nfs_port, kNfsProgram, kNfsVersion,
                             &Impl::on_nfs_connected, this) != 0) {
    cycle_failed("NFS at " + opts.host + ":" + std::to_string(opts.nfs_port) + ": " +
                 last_error(nfs_.rpc));
    return;
  }
  nfs_.connecting = true;
  update_events(kNfsConn);
}

void NfsClient::Impl::on_nfs_connected(rpc_context* rpc, int status, void* data, void* priv) {
  Impl* self = static_cast<Impl*>(priv);
  if (self->nfs_.rpc != rpc) return;
  self->nfs_.connecting = false;
  if (status != RPC_STATUS_SUCCESS) {
    self->nfs_step_ = Step::kFailed;
    self->step_error_ = data ? static_cast<const char*>(data) : "connect failed";
    return;
  }
  close_without_time_wait(rpc);
  if (std::string bad = self->source_port_problem(rpc); !bad.empty()) {
    self->nfs_step_ = Step::kFailed;
    self->step_error_ = bad;
    return;
  }
  self->nfs_step_ = Step::kOk;
}

void NfsClient::Impl::became_ready() {
  state_ = State::kReady;
  stats_.connects.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t epoch = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  std::string root_changed;
  {
    std::lock_guard lk(root_mu_);
    if (ever_connected_ && !(root_ == mounted_root_)) {
      root_changed = "the root handle of " + opts.export_path + " changed across a reconnect (" + root_.hex() +
                     " -> " + mounted_root_.hex() + ")";
      std::fprintf(stderr, "asmp::nfs: %s; failing the calls that waited for it\n", root_changed.c_str());
    }
    root_ = mounted_root_;
  }
  // Every call still queued was made with handles from before: on the new
  // export they may name other files (a directory moved aside and another
  // made in its place still has working handles on the same file system).
  // None of them is sent. Calls made from now on, on_reconnect's first,
  // are the caller's to judge.
  if (!root_changed.empty()) fail_everything({Failure::kRootChanged, Status::kOk, root_changed});
  ever_connected_ = true;
  last_progress_ = Clock::now();
  probe_out_ = false;
  if (opts.on_reconnect) {
    // Calls it makes queue behind the waiting ones (pump() holds off).
    in_reconnect_cb_ = true;
    opts.on_reconnect(epoch, mounted_root_);
    in_reconnect_cb_ = false;
  }
  if (mount_done_) {
    Result<FileHandle> r;
    r.value = mounted_root_;
    r.epoch = epoch;
    color_t c = mount_done_.color();
    rt.cpucb(Closure([d = std::move(mount_done_), r = std::move(r)]() mutable { d(std::move(r)); }, c));
    mount_done_ = nullptr;
  }
  if (state_ == State::kReady) send_now();
}

void NfsClient::Impl::cycle_failed(const std::string& why) {
  teardown(kMountConn);
  teardown(kNfsConn);
  // Nothing is sent before kReady, so errored_ is empty here; should a call
  // be in it, it never reached the server: send it first next time.
  std::vector<Call*> errs;
  errs.swap(errored_);
  for (auto it = errs.rbegin(); it != errs.rend(); ++it) {
    if ((*it)->finished) release(*it);
    else enqueue(*it, Call::Queue::kWaiting, true);
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

void NfsClient::Impl::connection_lost(const std::string& why) {
  stats_.disconnects.fetch_add(1, std::memory_order_relaxed);
  teardown(kNfsConn);  // more CANCELs land in errored_
  calls_lost(why);
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
    r.epoch = epoch();
    color_t c = mount_done_.color();
    rt.cpucb(Closure([d = std::move(mount_done_), r = std::move(r)]() mutable { d(std::move(r)); }, c));
    mount_done_ = nullptr;
  }
  fail_everything(closed);
}

// ---------------------------------------------------------------- the tick

void NfsClient::Impl::arm_tick() {
  if (tick_armed_ || state_ == State::kClosed) return;
  tick_armed_ = true;
  rt.delaycb(kTick, wrap(opts.color, [self = shared_from_this()] { self->on_tick(); }));
}

void NfsClient::Impl::on_tick() {
  tick_armed_ = false;
  if (state_ == State::kClosed) return;
  auto now = Clock::now();
  check_deadlines(now);
  check_stall(now);
  bool cycling = state_ == State::kMounting || state_ == State::kConnecting;
  if (cycling && now >= cycle_deadline_) {
    cycle_failed("no answer within connect_timeout " + ms_string(opts.connect_timeout));
  }
  cycling = state_ == State::kMounting || state_ == State::kConnecting;
  if (nactive_ > 0 || in_flight_ > 0 || cycling) arm_tick();
}

// ---------------------------------------------------------------- probes

// A stopped or wedged server keeps TCP open, so silence is the only sign.
// But a slow call (a COMMIT of much data) is silence too. So silence only
// prompts an NFS NULL, which a live server answers at once from another
// thread; the connection is given up only if the NULL goes unanswered.
void NfsClient::Impl::check_stall(Clock::time_point now) {
  if (state_ != State::kReady || in_flight_ == 0) {
    probe_out_ = false;
    return;
  }
  if (probe_out_) {
    if (now - probe_sent_ < opts.probe_timeout) return;
    stats_.stalls.fetch_add(1, std::memory_order_relaxed);
    auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_progress_);
    connection_lost("no reply to any of " + std::to_string(in_flight_) + " calls for " +
                    ms_string(silent) + ", nor to an NFS NULL probe within " +
                    ms_string(opts.probe_timeout));
    return;
  }
  if (now - last_progress_ < opts.probe_after) return;
  if (rpc_nfs3_null_async(nfs_.rpc, &Impl::on_probe_reply, this) != 0) {
    connection_lost("could not send an NFS NULL probe: " + last_error(nfs_.rpc));
    return;
  }
  stats_.probes.fetch_add(1, std::memory_order_relaxed);
  probe_out_ = true;
  probe_sent_ = now;
  send_now();
}

// Called by libnfs from inside rpc_service() (or rpc_destroy_context()).
void NfsClient::Impl::on_probe_reply(rpc_context* rpc, int status, void*, void* priv) {
  Impl* self = static_cast<Impl*>(priv);
  if (self->nfs_.rpc != rpc || status != RPC_STATUS_SUCCESS) return;
  self->last_progress_ = Clock::now();
  self->probe_out_ = false;
}

}  // namespace asmp::nfs
