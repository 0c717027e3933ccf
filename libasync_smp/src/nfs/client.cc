// client.cc: NfsClient's public face. The thin methods behind nfs.h, the hop
// from the caller's thread to the client's color, and what may be read from
// any thread (root handle, epoch, statistics). The connection lives in
// connection.cc, the calls in calls.cc, the procedures in procedures_read.cc
// and procedures_write.cc; client_impl.h says who touches what.
#include "client_impl.h"

namespace asmp::nfs {

namespace {

Runtime& pick_runtime(Runtime* r) {
  if (r) return *r;
  if (Runtime* cur = Runtime::current()) return *cur;
  return default_runtime();
}

}  // namespace

std::string ms_string(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// rpc_get_error() returns NULL when libnfs has not set a message.
std::string last_error(rpc_context* rpc) {
  const char* e = rpc ? rpc_get_error(rpc) : nullptr;
  return e && *e ? e : "connection closed by peer";
}

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
  for (Call* c : suspects_) delete c;
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
    r.epoch = self->epoch();
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
  s.probes = stats_.probes.load(std::memory_order_relaxed);
  s.rejected = stats_.rejected.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------- NfsClient

NfsClient::NfsClient(NfsOptions opts) : impl_(std::make_shared<Impl>(std::move(opts))) {}
NfsClient::~NfsClient() { impl_->close(); }
void NfsClient::mount(Done<FileHandle> done) { impl_->mount(std::move(done)); }
FileHandle NfsClient::root() const { return impl_->root(); }
std::uint64_t NfsClient::epoch() const { return impl_->epoch(); }
NfsStats NfsClient::stats() const { return impl_->stats(); }
const NfsOptions& NfsClient::options() const { return impl_->opts; }
void NfsClient::disconnect_for_test() { impl_->disconnect_for_test(); }

}  // namespace asmp::nfs
