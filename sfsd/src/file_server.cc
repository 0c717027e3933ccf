// file_server.cc: the machinery around the procedures (procedures.cc):
// opening handles on the connection's color, dispatch on color 0, leases,
// INVALIDATE, and the hop back to the connection's color for the reply.
// See file_server.h for who runs where.
#include "file_server.h"

#include <sodium.h>

#include <cstring>
#include <map>

#include "file_server_internal.h"

namespace sfsd {

namespace rpc = asmp::rpc;
using asmp::Closure;

namespace {

constexpr auto kForgetChangesAfter = std::chrono::minutes(2);  // > any backend call's lifetime

// The NFS file handles in a call's arguments, to be opened in place.
std::vector<sfs_nfs_fh3*> handles_in(std::uint32_t proc, void* args) {
  switch (proc) {
    case SFS_NFSPROC3_GETATTR: return {&static_cast<sfs_GETATTR3args*>(args)->object};
    case SFS_NFSPROC3_SETATTR: return {&static_cast<sfs_SETATTR3args*>(args)->object};
    case SFS_NFSPROC3_LOOKUP: return {&static_cast<sfs_LOOKUP3args*>(args)->what.dir};
    case SFS_NFSPROC3_ACCESS: return {&static_cast<sfs_ACCESS3args*>(args)->object};
    case SFS_NFSPROC3_READLINK: return {&static_cast<sfs_READLINK3args*>(args)->symlink};
    case SFS_NFSPROC3_READ: return {&static_cast<sfs_READ3args*>(args)->file};
    case SFS_NFSPROC3_WRITE: return {&static_cast<WriteArgs*>(args)->file};
    case SFS_NFSPROC3_CREATE: return {&static_cast<sfs_CREATE3args*>(args)->where.dir};
    case SFS_NFSPROC3_MKDIR: return {&static_cast<sfs_MKDIR3args*>(args)->where.dir};
    case SFS_NFSPROC3_SYMLINK: return {&static_cast<sfs_SYMLINK3args*>(args)->where.dir};
    case SFS_NFSPROC3_MKNOD: return {&static_cast<sfs_MKNOD3args*>(args)->where.dir};
    case SFS_NFSPROC3_REMOVE: return {&static_cast<sfs_REMOVE3args*>(args)->object.dir};
    case SFS_NFSPROC3_RMDIR: return {&static_cast<sfs_RMDIR3args*>(args)->object.dir};
    case SFS_NFSPROC3_RENAME: {
      auto* a = static_cast<sfs_RENAME3args*>(args);
      return {&a->from.dir, &a->to.dir};
    }
    case SFS_NFSPROC3_LINK: {
      auto* a = static_cast<sfs_LINK3args*>(args);
      return {&a->file, &a->link.dir};
    }
    case SFS_NFSPROC3_READDIR: return {&static_cast<sfs_READDIR3args*>(args)->dir};
    case SFS_NFSPROC3_READDIRPLUS: return {&static_cast<sfs_READDIRPLUS3args*>(args)->dir};
    case SFS_NFSPROC3_FSSTAT: return {&static_cast<sfs_FSSTAT3args*>(args)->fsroot};
    case SFS_NFSPROC3_FSINFO: return {&static_cast<sfs_FSINFO3args*>(args)->fsroot};
    case SFS_NFSPROC3_PATHCONF: return {&static_cast<sfs_PATHCONF3args*>(args)->object};
    case SFS_NFSPROC3_COMMIT: return {&static_cast<sfs_COMMIT3args*>(args)->file};
    default: return {};
  }
}

// The names in a call's arguments that become directory entries.
std::vector<const char*> names_in(std::uint32_t proc, void* args) {
  switch (proc) {
    case SFS_NFSPROC3_LOOKUP: return {static_cast<sfs_LOOKUP3args*>(args)->what.name};
    case SFS_NFSPROC3_CREATE: return {static_cast<sfs_CREATE3args*>(args)->where.name};
    case SFS_NFSPROC3_MKDIR: return {static_cast<sfs_MKDIR3args*>(args)->where.name};
    case SFS_NFSPROC3_SYMLINK: return {static_cast<sfs_SYMLINK3args*>(args)->where.name};
    case SFS_NFSPROC3_MKNOD: return {static_cast<sfs_MKNOD3args*>(args)->where.name};
    case SFS_NFSPROC3_REMOVE: return {static_cast<sfs_REMOVE3args*>(args)->object.name};
    case SFS_NFSPROC3_RMDIR: return {static_cast<sfs_RMDIR3args*>(args)->object.name};
    case SFS_NFSPROC3_RENAME: {
      auto* a = static_cast<sfs_RENAME3args*>(args);
      return {a->from.name, a->to.name};
    }
    case SFS_NFSPROC3_LINK: return {static_cast<sfs_LINK3args*>(args)->link.name};
    default: return {};
  }
}

template <class Res>
void reply_with_status(rpc::Call& c, sfs_nfsstat3 st) {
  Res res{};
  res.status = st;  // every failure arm is attributes-absent when zeroed
  c.reply(&res);
}

}  // namespace

bool_t xdr_write_args(XDR* x, WriteArgs* a) {
  return xdr_sfs_nfs_fh3(x, &a->file) && xdr_sfs_offset3(x, &a->offset) && xdr_sfs_count3(x, &a->count) &&
         xdr_sfs_stable_how(x, &a->stable) && rpc::xdr_opaque_view(x, &a->data, SFS_NFS3_MAXDATA);
}

// Answers any SFS_NFS procedure with only a status (and empty failure data).
void reply_status(rpc::Call& c, sfs_nfsstat3 st) {
  switch (c.proc()) {
    case SFS_NFSPROC3_GETATTR: return reply_with_status<sfs_GETATTR3res>(c, st);
    case SFS_NFSPROC3_SETATTR: return reply_with_status<sfs_SETATTR3res>(c, st);
    case SFS_NFSPROC3_LOOKUP: return reply_with_status<sfs_LOOKUP3res>(c, st);
    case SFS_NFSPROC3_ACCESS: return reply_with_status<sfs_ACCESS3res>(c, st);
    case SFS_NFSPROC3_READLINK: return reply_with_status<sfs_READLINK3res>(c, st);
    case SFS_NFSPROC3_READ: return reply_with_status<sfs_READ3res>(c, st);
    case SFS_NFSPROC3_WRITE: return reply_with_status<sfs_WRITE3res>(c, st);
    case SFS_NFSPROC3_CREATE: return reply_with_status<sfs_CREATE3res>(c, st);
    case SFS_NFSPROC3_MKDIR: return reply_with_status<sfs_MKDIR3res>(c, st);
    case SFS_NFSPROC3_SYMLINK: return reply_with_status<sfs_SYMLINK3res>(c, st);
    case SFS_NFSPROC3_MKNOD: return reply_with_status<sfs_MKNOD3res>(c, st);
    case SFS_NFSPROC3_REMOVE: return reply_with_status<sfs_REMOVE3res>(c, st);
    case SFS_NFSPROC3_RMDIR: return reply_with_status<sfs_RMDIR3res>(c, st);
    case SFS_NFSPROC3_RENAME: return reply_with_status<sfs_RENAME3res>(c, st);
    case SFS_NFSPROC3_LINK: return reply_with_status<sfs_LINK3res>(c, st);
    case SFS_NFSPROC3_READDIR: return reply_with_status<sfs_READDIR3res>(c, st);
    case SFS_NFSPROC3_READDIRPLUS: return reply_with_status<sfs_READDIRPLUS3res>(c, st);
    case SFS_NFSPROC3_FSSTAT: return reply_with_status<sfs_FSSTAT3res>(c, st);
    case SFS_NFSPROC3_FSINFO: return reply_with_status<sfs_FSINFO3res>(c, st);
    case SFS_NFSPROC3_PATHCONF: return reply_with_status<sfs_PATHCONF3res>(c, st);
    case SFS_NFSPROC3_COMMIT: return reply_with_status<sfs_COMMIT3res>(c, st);
    case SFS_NFSPROC3_GETROOT: return reply_with_status<sfs_GETROOT3res>(c, st);
    default: c.reply_error(rpc::RpcError::kProcUnavail);
  }
}

std::shared_ptr<const rpc::Interface> sfs_nfs_interface() {
  using rpc::proc;
  static const auto i = std::make_shared<const rpc::Interface>(rpc::Interface{
      SFS_NFS_PROG,
      SFS_NFS_V3,
      {proc(xdr_void, xdr_void),
       proc(xdr_sfs_GETATTR3args, xdr_sfs_GETATTR3res),
       proc(xdr_sfs_SETATTR3args, xdr_sfs_SETATTR3res),
       proc(xdr_sfs_LOOKUP3args, xdr_sfs_LOOKUP3res),
       proc(xdr_sfs_ACCESS3args, xdr_sfs_ACCESS3res),
       proc(xdr_sfs_READLINK3args, xdr_sfs_READLINK3res),
       proc(xdr_sfs_READ3args, xdr_sfs_READ3res),
       rpc::Proc{rpc::xdrproc_of<xdr_write_args>(), sizeof(WriteArgs), rpc::as_xdrproc(xdr_sfs_WRITE3res)},
       proc(xdr_sfs_CREATE3args, xdr_sfs_CREATE3res),
       proc(xdr_sfs_MKDIR3args, xdr_sfs_MKDIR3res),
       proc(xdr_sfs_SYMLINK3args, xdr_sfs_SYMLINK3res),
       proc(xdr_sfs_MKNOD3args, xdr_sfs_MKNOD3res),
       proc(xdr_sfs_REMOVE3args, xdr_sfs_REMOVE3res),
       proc(xdr_sfs_RMDIR3args, xdr_sfs_RMDIR3res),
       proc(xdr_sfs_RENAME3args, xdr_sfs_RENAME3res),
       proc(xdr_sfs_LINK3args, xdr_sfs_LINK3res),
       proc(xdr_sfs_READDIR3args, xdr_sfs_READDIR3res),
       proc(xdr_sfs_READDIRPLUS3args, xdr_sfs_READDIRPLUS3res),
       proc(xdr_sfs_FSSTAT3args, xdr_sfs_FSSTAT3res),
       proc(xdr_sfs_FSINFO3args, xdr_sfs_FSINFO3res),
       proc(xdr_sfs_PATHCONF3args, xdr_sfs_PATHCONF3res),
       proc(xdr_sfs_COMMIT3args, xdr_sfs_COMMIT3res),
       proc(xdr_void, xdr_sfs_GETROOT3res)}});
  return i;
}

FileServer::Req::~Req() {
  if (counters) counters->in_flight.fetch_sub(1, std::memory_order_relaxed);
}

std::shared_ptr<FileServer> FileServer::create(FileServerOptions opts,
                                               std::shared_ptr<Backend> backend,
                                               std::shared_ptr<const HandleSealer> sealer,
                                               nfs::FileHandle root) {
  return std::shared_ptr<FileServer>(
      new FileServer(std::move(opts), std::move(backend), std::move(sealer), std::move(root)));
}

FileServer::FileServer(FileServerOptions opts, std::shared_ptr<Backend> backend,
                       std::shared_ptr<const HandleSealer> sealer, nfs::FileHandle root)
    : opts_(std::move(opts)),
      backend_(std::move(backend)),
      root_(std::move(root)),
      rt_(asmp::default_runtime()),
      sealer_(sealer->bound_to(root_)),
      cache_(std::make_shared<DataCache>(opts_.data_cache_bytes, opts_.data_cache_revalidate)),
      leases_(opts_.max_leases_per_connection) {
  randombytes_buf(verf_key_.data(), verf_key_.size());
  // Modification numbers start at the wall clock in ns, so they grow across
  // restarts too (clients' INVALIDATE bookkeeping never sees them go back).
  mod_seq_ = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
}

FileServer::~FileServer() { sodium_memzero(verf_key_.data(), verf_key_.size()); }

sfs::SecureProgram FileServer::program() {
  sfs::SecureProgram p;
  p.iface = *sfs_nfs_interface();
  // What a client needs before any of its users has logged in. (GETROOT
  // then answers as the anonymous user: a sealed handle and the root's
  // attributes.)
  p.open_procs = {SFS_NFSPROC3_NULL, SFS_NFSPROC3_GETROOT};
  std::weak_ptr<FileServer> weak = weak_from_this();
  p.prepare = [weak](rpc::Call& c) {
    auto self = weak.lock();
    if (!self) {
      c.reply_error(rpc::RpcError::kSystemErr);
      return false;
    }
    return self->prepare(c);
  };
  p.dispatch_as_user = [weak](rpc::Call c, const sfs::Caller& who) {
    if (auto self = weak.lock()) self->dispatch(std::move(c), who);
  };
  return p;
}

std::shared_ptr<const HandleSealer> FileServer::sealer() const {
  std::lock_guard lk(sealer_mu_);
  return sealer_;
}

void FileServer::set_sealer(std::shared_ptr<const HandleSealer> s) {
  auto bound = s->bound_to(root_);
  std::lock_guard lk(sealer_mu_);
  sealer_ = std::move(bound);
}

void FileServer::fail_closed(std::string why) {
  if (!failed_.exchange(true))
    opts_.log("sfsd: refusing every file call from now on: " + why);
}

std::vector<std::uint8_t> FileServer::sealed_root() const { return sealer()->seal(root_); }

bool FileServer::prepare(rpc::Call& c) {
  if (c.proc() == SFS_NFSPROC3_NULL || c.proc() == SFS_NFSPROC3_GETROOT) return true;
  void* args = c.raw_args();
  auto sealer = this->sealer();
  for (sfs_nfs_fh3* h : handles_in(c.proc(), args)) {
    nfs::FileHandle fh = sealer->open(
        {reinterpret_cast<const std::uint8_t*>(h->data.data_val), h->data.data_len});
    if (fh.empty()) {
      counters_.bad_handles.fetch_add(1, std::memory_order_relaxed);
      reply_status(c, SFS_NFS3ERR_BADHANDLE);
      return false;
    }
    // In place: the backend handle is shorter than the sealed one.
    std::memcpy(h->data.data_val, fh.bytes().data(), fh.size());
    h->data.data_len = static_cast<u_int>(fh.size());
  }
  for (const char* name : names_in(c.proc(), args)) {
    // A component, never a path: no '/', not empty. ("." and ".." are the
    // backend's to answer, except ".." at the root: see do_lookup.)
    if (!name || !*name || std::strchr(name, '/')) {
      reply_status(c, c.proc() == SFS_NFSPROC3_LOOKUP ? SFS_NFS3ERR_NOENT : SFS_NFS3ERR_INVAL);
      return false;
    }
  }
  return true;
}

void FileServer::dispatch(rpc::Call call, const sfs::Caller& who) {
  counters_.calls.fetch_add(1, std::memory_order_relaxed);
  if (failed_.load(std::memory_order_relaxed)) {
    if (call.proc() == SFS_NFSPROC3_NULL) call.reply(nullptr);
    else reply_status(call, SFS_NFS3ERR_SERVERFAULT);
    return;
  }
  auto r = std::make_shared<Req>(std::move(call));
  r->conn = who.conn_id;
  r->sample = mod_seq_;
  r->counters = &counters_;
  counters_.in_flight.fetch_add(1, std::memory_order_relaxed);
  if (!conns_.count(r->conn)) conns_.emplace(r->conn, r->call.connection());
  const sfs::AuthResult& u = *who.user;
  if (u.auth_number == sfs::kAnonymousAuth) {
    r->cred = nfs::Cred(opts_.anonymous_uid, opts_.anonymous_gid);
  } else {
    r->cred = nfs::Cred(u.uid, u.gid, u.groups);  // the user database allows at most 16
  }
  switch (r->call.proc()) {
    case SFS_NFSPROC3_NULL: return do_null(r);
    case SFS_NFSPROC3_GETATTR: return do_getattr(r);
    case SFS_NFSPROC3_SETATTR: return do_setattr(r);
    case SFS_NFSPROC3_LOOKUP: return do_lookup(r);
    case SFS_NFSPROC3_ACCESS: return do_access(r);
    case SFS_NFSPROC3_READLINK: return do_readlink(r);
    case SFS_NFSPROC3_READ: return do_read(r);
    case SFS_NFSPROC3_WRITE: return do_write(r);
    case SFS_NFSPROC3_CREATE: return do_create(r);
    case SFS_NFSPROC3_MKDIR: return do_mkdir(r);
    case SFS_NFSPROC3_SYMLINK: return do_symlink(r);
    case SFS_NFSPROC3_MKNOD: return do_mknod(r);
    case SFS_NFSPROC3_REMOVE: return do_remove(r, false);
    case SFS_NFSPROC3_RMDIR: return do_remove(r, true);
    case SFS_NFSPROC3_RENAME: return do_rename(r);
    case SFS_NFSPROC3_LINK: return do_link(r);
    case SFS_NFSPROC3_READDIR: return do_readdir(r);
    case SFS_NFSPROC3_READDIRPLUS: return do_readdirplus(r);
    case SFS_NFSPROC3_FSSTAT: return do_fsstat(r);
    case SFS_NFSPROC3_FSINFO: return do_fsinfo(r);
    case SFS_NFSPROC3_PATHCONF: return do_pathconf(r);
    case SFS_NFSPROC3_COMMIT: return do_commit(r);
    case SFS_NFSPROC3_GETROOT: return do_getroot(r);
    default: r->call.reply_error(rpc::RpcError::kProcUnavail);
  }
}

std::uint32_t FileServer::lease_for(const Req& r, const nfs::FileHandle& fh) {
  if (leases_.last_change(fh) > r.sample) return 0;  // computed before a change completed
  std::vector<nfs::FileHandle> evicted;
  leases_.grant(r.conn, fh, asmp::Clock::now() + opts_.lease, &evicted);
  for (const auto& old : evicted) invalidate(r.conn, old, mod_seq_, [](bool) {});
  return static_cast<std::uint32_t>(opts_.lease.count());
}

void FileServer::post_op(sfs_post_op_attr& out, const Req& r, const nfs::FileHandle& fh,
                         const std::optional<nfs::Attr>& a) {
  if (a) cache_->observe(fh, *a);
  sfs::fs::fill_post_op(out, a, r.sample, a ? lease_for(r, fh) : 0);
}

void FileServer::wcc(sfs_wcc_data& out, const Req& r, const nfs::FileHandle& fh, const nfs::Wcc& w) {
  if (w.after) cache_->observe(fh, *w.after);
  sfs::fs::fill_wcc(out, w, r.sample, w.after ? lease_for(r, fh) : 0);
}

void FileServer::changed(const std::shared_ptr<Req>& r, const std::vector<nfs::FileHandle>& affected,
                         std::function<void()> then) {
  const std::uint64_t seq = ++mod_seq_;
  const auto now = asmp::Clock::now();
  std::vector<std::pair<std::uint64_t, nfs::FileHandle>> targets;
  for (const nfs::FileHandle& fh : affected) {
    if (fh.empty()) continue;
    cache_->changed(fh);
    leases_.note_change(fh, seq, now);
    std::vector<std::uint64_t> holders;
    leases_.take_holders(fh, r->conn, now, &holders);
    for (std::uint64_t c : holders) targets.emplace_back(c, fh);
  }
  if (targets.empty()) {
    then();
    return;
  }
  struct Wait {
    std::size_t left;
    std::function<void()> then;
  };
  auto w = std::make_shared<Wait>(Wait{targets.size(), std::move(then)});
  for (const auto& [conn, fh] : targets) {
    invalidate(conn, fh, seq, [w](bool) {
      if (--w->left == 0) w->then();
    });
  }
}

void FileServer::invalidate(std::uint64_t conn, const nfs::FileHandle& fh, std::uint64_t change,
                            std::function<void(bool)> done) {
  auto it = conns_.find(conn);
  std::shared_ptr<rpc::Connection> c = it == conns_.end() ? nullptr : it->second.lock();
  if (!c) {
    done(true);  // gone, and its leases with it
    return;
  }
  counters_.invalidations.fetch_add(1, std::memory_order_relaxed);
  struct Inval {
    std::array<std::uint8_t, kSealedHandleMax> buf;
    sfs_INVALIDATE3args args{};
  };
  auto inv = std::make_shared<Inval>();
  inv->args.change = change;
  auto self = shared_from_this();
  auto sealer = this->sealer();
  // Sealing on the holder's color; the answer comes back to color 0.
  rt_.cpucb(Closure(
      [self, c, fh, inv, sealer, conn, done = std::move(done)]() mutable {
        inv->args.object.data.data_len = static_cast<u_int>(sealer->seal(fh, inv->buf.data()));
        inv->args.object.data.data_val = reinterpret_cast<char*>(inv->buf.data());
        rpc::CallOptions co;
        co.timeout = self->opts_.invalidate_timeout;
        c->call(SFS_NFSCB_PROG, SFS_NFSCB_V1, SFS_NFSCBPROC_INVALIDATE,
                rpc::as_xdrproc(xdr_sfs_INVALIDATE3args), &inv->args, rpc::as_xdrproc(xdr_void), nullptr,
                rpc::CallDone(
                    [self, c, conn, done = std::move(done)](rpc::RpcStatus st) mutable {
                      if (!st.ok()) {
                        // A holder that does not confirm may still be
                        // caching: disconnect it (a lost connection drops
                        // every lease it had).
                        self->counters_.invalidate_timeouts.fetch_add(1, std::memory_order_relaxed);
                        self->opts_.log("sfsd: client connection " + std::to_string(conn) +
                                        " did not confirm INVALIDATE (" + st.message() +
                                        "); closing it");
                        self->leases_.drop_connection(conn);
                        c->close();
                      }
                      done(st.ok());
                    },
                    self->opts_.color),
                co);
      },
      c->color()));
}

void FileServer::send(const std::shared_ptr<Req>& r, std::shared_ptr<Reply> out) {
  auto sealer = this->sealer();
  rt_.cpucb(Closure(
      [r, out = std::move(out), sealer] {
        std::vector<std::array<std::uint8_t, kSealedHandleMax>> sealed(out->handles.size());
        for (std::size_t i = 0; i < out->handles.size(); ++i) {
          auto& [field, fh] = out->handles[i];
          field->data.data_len = static_cast<u_int>(sealer->seal(fh, sealed[i].data()));
          field->data.data_val = reinterpret_cast<char*>(sealed[i].data());
        }
        out->encode(r->call);
      },
      r->call.color()));
}

void FileServer::send_status(const std::shared_ptr<Req>& r, sfs_nfsstat3 st) {
  rt_.cpucb(Closure([r, st] { reply_status(r->call, st); }, r->call.color()));
}

nfs::Verifier FileServer::client_verifier(const nfs::Verifier& backend_verf) const {
  // Changes when sfsd restarts (new key) and when the backend's connection
  // was re-established (epoch), as well as when the backend's own changes:
  // a client that wrote UNSTABLE then resends what it has not committed.
  std::uint8_t in[16];
  std::memcpy(in, backend_verf.data(), 8);
  const std::uint64_t e = backend_->epoch();
  std::memcpy(in + 8, &e, 8);
  nfs::Verifier out;
  crypto_generichash(out.data(), out.size(), in, sizeof in, verf_key_.data(), verf_key_.size());
  return out;
}

void FileServer::connection_closed(std::uint64_t conn_id) {
  leases_.drop_connection(conn_id);
  conns_.erase(conn_id);
  counters_.leases.store(leases_.size(), std::memory_order_relaxed);
}

void FileServer::start() {
  rt_.cpucb(Closure([self = shared_from_this()] { self->sweep(); }, opts_.color));
}

void FileServer::stop() {
  rt_.cpucb(Closure(
      [self = shared_from_this()] {
        self->stopped_ = true;
        if (self->sweep_timer_) self->rt_.timecb_remove(self->sweep_timer_);
        self->sweep_timer_ = 0;
      },
      opts_.color));
}

void FileServer::sweep() {
  if (stopped_) return;
  const auto now = asmp::Clock::now();
  leases_.expire(now, now - kForgetChangesAfter);
  counters_.leases.store(leases_.size(), std::memory_order_relaxed);
  const auto every = std::max<std::chrono::milliseconds>(opts_.lease / 2, std::chrono::seconds(1));
  sweep_timer_ = rt_.delaycb(every, Closure([self = shared_from_this()] { self->sweep(); }, opts_.color));
}

FileServerStats FileServer::stats() const {
  FileServerStats s;
  const auto r = std::memory_order_relaxed;
  s.calls = counters_.calls.load(r);
  s.bad_handles = counters_.bad_handles.load(r);
  s.invalidations = counters_.invalidations.load(r);
  s.invalidate_timeouts = counters_.invalidate_timeouts.load(r);
  s.leases = counters_.leases.load(r);
  s.in_flight = counters_.in_flight.load(r);
  const DataCache::Stats c = cache_->stats();
  s.cache_hits = c.hits;
  s.cache_misses = c.misses;
  s.cache_fills = c.fills;
  s.cache_refused = c.refused;
  s.cache_bytes = c.bytes;
  return s;
}

}  // namespace sfsd
