// sfs_fs.cc: SfsFs's core: the FUSE operation table, /sfs and the servers
// mounted under it, entries and attributes under leases, and what
// INVALIDATE and a lost connection do to the kernel's caches.
#include "sfs_fs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "sfs_fs_call.h"

namespace sfsclient {

namespace {

SfsFs* fs_of(fuse_req_t req) { return static_cast<SfsFs*>(fuse_req_userdata(req)); }

// The trampolines libfuse calls; each forwards to one SfsFs member.
fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o{};
  o.init = [](void* userdata, fuse_conn_info* conn) { static_cast<SfsFs*>(userdata)->init(conn); };
  o.lookup = [](fuse_req_t r, fuse_ino_t p, const char* n) { fs_of(r)->lookup(r, p, n); };
  o.forget = [](fuse_req_t r, fuse_ino_t i, std::uint64_t n) {
    fs_of(r)->forget(i, n);
    fuse_reply_none(r);
  };
  o.forget_multi = [](fuse_req_t r, size_t count, fuse_forget_data* f) {
    for (size_t i = 0; i < count; ++i) fs_of(r)->forget(f[i].ino, f[i].nlookup);
    fuse_reply_none(r);
  };
  o.getattr = [](fuse_req_t r, fuse_ino_t i, fuse_file_info*) { fs_of(r)->getattr(r, i); };
  o.setattr = [](fuse_req_t r, fuse_ino_t i, struct stat* a, int s, fuse_file_info* fi) {
    fs_of(r)->setattr(r, i, *a, s, fi);
  };
  o.readlink = [](fuse_req_t r, fuse_ino_t i) { fs_of(r)->readlink(r, i); };
  o.mknod = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) { fs_of(r)->mknod(r, p, n, m, d); };
  o.mkdir = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) { fs_of(r)->mkdir(r, p, n, m); };
  o.unlink = [](fuse_req_t r, fuse_ino_t p, const char* n) { fs_of(r)->unlink(r, p, n, false); };
  o.rmdir = [](fuse_req_t r, fuse_ino_t p, const char* n) { fs_of(r)->unlink(r, p, n, true); };
  o.symlink = [](fuse_req_t r, const char* t, fuse_ino_t p, const char* n) { fs_of(r)->symlink(r, t, p, n); };
  o.rename = [](fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn, unsigned f) {
    fs_of(r)->rename(r, p, n, np, nn, f);
  };
  o.link = [](fuse_req_t r, fuse_ino_t i, fuse_ino_t np, const char* nn) { fs_of(r)->link(r, i, np, nn); };
  o.open = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs_of(r)->open(r, i, fi); };
  o.create = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* fi) {
    fs_of(r)->create(r, p, n, m, fi);
  };
  o.read = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* fi) { fs_of(r)->read(r, i, s, off, fi); };
  o.write = [](fuse_req_t r, fuse_ino_t i, const char* b, size_t s, off_t off, fuse_file_info* fi) {
    fs_of(r)->write(r, i, b, s, off, fi);
  };
  o.flush = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs_of(r)->flush(r, i, fi); };
  o.fsync = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) { fs_of(r)->fsync(r, i, d, fi); };
  o.release = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs_of(r)->release(r, i, fi); };
  o.opendir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs_of(r)->opendir(r, i, fi); };
  o.readdir = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* fi) {
    fs_of(r)->readdir(r, i, s, off, fi, false);
  };
  o.readdirplus = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* fi) {
    fs_of(r)->readdir(r, i, s, off, fi, true);
  };
  o.releasedir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs_of(r)->releasedir(r, i, fi); };
  o.fsyncdir = [](fuse_req_t r, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(r, 0); };
  o.statfs = [](fuse_req_t r, fuse_ino_t i) { fs_of(r)->statfs(r, i); };
  // No xattr operations: the kernel answers EOPNOTSUPP (NFSv3 has none).
  // No lock operations: the kernel keeps locks local to this client.
  return o;
}

}  // namespace

const fuse_lowlevel_ops* SfsFs::ops() {
  static const fuse_lowlevel_ops o = make_ops();
  return &o;
}

SfsFs::SfsFs(FsOptions opts, LoginSigner* signer) : opts_(std::move(opts)), signer_(signer) {}

SfsFs::~SfsFs() = default;

void SfsFs::shutdown() {
  for (auto& s : servers_)
    if (s) s->close();  // a slot whose first connection failed is empty
}

FsStats SfsFs::stats() const { return stats_; }

ServerMount* SfsFs::server(ServerId id) {
  if (id == 0 || id > servers_.size()) return nullptr;
  return servers_[id - 1].get();
}

void SfsFs::init(fuse_conn_info* conn) {
  // 1 MiB requests both ways (the protocol's READ/WRITE size), many reads
  // in flight, READDIRPLUS (one round trip for names and attributes).
  conn->max_write = 1 << 20;
  conn->max_read = 1 << 20;
  // The kernel lowers the mount's read-ahead to this at INIT (whatever
  // main.cc wrote to read_ahead_kb before): it must be the configured one.
  conn->max_readahead = opts_.read_ahead;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->want |= FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS | FUSE_CAP_AUTO_INVAL_DATA;
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
                  FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS_AUTO);
  conn->time_gran = 1;  // nanosecond timestamps
}

double SfsFs::note_attr(Inode& in, const sfs_post_op_attr& a, Clock::time_point sent) {
  auto la = sfs::fs::from_post_op(a);
  if (!la) return 0.0;
  const auto until = inodes_.store_attr(in, la->attr, la->change, la->lease_ms, sent);
  return seconds_left(until, Clock::now());
}

double SfsFs::note_wcc(Inode& in, const sfs_wcc_data& w, Clock::time_point sent) {
  if (!w.after.attributes_follow) {
    in.attr_until = Clock::time_point{};  // changed, and we do not know how
    return 0.0;
  }
  return note_attr(in, w.after, sent);
}

struct stat SfsFs::stat_of(const Inode& in) const {
  struct stat st = to_stat(*in.attr, in.ino);
  if (in.writes_in_flight && static_cast<std::uint64_t>(st.st_size) < in.pending_end)
    st.st_size = static_cast<off_t>(in.pending_end);
  return st;
}

void SfsFs::after_writes(fuse_ino_t ino, std::function<void()> fn) {
  Inode* in = inodes_.find(ino);
  if (!in || in->writes_in_flight == 0) return fn();
  in->write_waiters.push_back(std::move(fn));
}

void SfsFs::reply_attr(fuse_req_t req, Inode& in, double timeout) {
  if (!in.attr) return (void)fuse_reply_err(req, EIO);
  struct stat st = stat_of(in);
  fuse_reply_attr(req, &st, timeout);
}

Inode* SfsFs::learn_child(Inode& parent, const std::string& name, const sfs::fs::Handle& fh,
                          const sfs_post_op_attr& attr, Clock::time_point sent, bool lookup, double* attr_timeout) {
  // Counted only when the kernel gets the entry: an error reply leaves it
  // no reference to forget.
  Inode& child = inodes_.get(parent.server, fh, false);
  // The server just gave this handle: it is current. And where the file
  // was reached, to find it again by path (refind.cc).
  child.epoch = inodes_.root_epoch(parent.server);
  if (!dot_or_dotdot(name)) {
    child.parent = parent.ino;
    child.name = name;
  }
  const double t = note_attr(child, attr, sent);
  if (attr_timeout) *attr_timeout = t;
  if (!child.attr) {
    parent.forget_complete();  // the name exists, but is not listed
    return nullptr;
  }
  if (lookup) ++child.nlookup;
  parent.children[name] = child.ino;
  parent.negatives.erase(name);
  return &child;
}

bool SfsFs::make_entry(fuse_entry_param& e, Inode& parent, const std::string& name, const sfs::fs::Handle& fh,
                       const sfs_post_op_attr& attr, Clock::time_point sent) {
  double t = 0.0;
  Inode* child = learn_child(parent, name, fh, attr, sent, true, &t);
  if (!child) return false;
  e = fuse_entry_param{};
  e.ino = child->ino;
  e.generation = 0;
  e.attr = stat_of(*child);
  e.attr_timeout = t;
  // The name stays valid as long as the directory's lease.
  e.entry_timeout = seconds_left(parent.entries_until, Clock::now());
  return true;
}

void SfsFs::note_negative(Inode& parent, const std::string& name) {
  parent.children.erase(name);
  if (parent.entries_until > Clock::now()) parent.negatives.insert(name);
}

void SfsFs::change_failed(fuse_ino_t dir) {
  if (Inode* d = inodes_.find(dir)) d->forget_complete();
}

void SfsFs::forget_name(Inode& parent, const std::string& name) {
  parent.children.erase(name);
  parent.negatives.erase(name);
}

void SfsFs::on_invalidate(ServerId server, const sfs::fs::Handle& fh, std::uint64_t change,
                          std::function<void()> done) {
  ++stats_.invalidations;
  Inode* in = inodes_.invalidate(server, fh, change);
  if (!in || !driver_) return done();
  driver_->inval_inode(in->ino, 0, 0);  // attributes and cached data
  for (const auto& [name, ino] : in->children) driver_->inval_entry(in->ino, name);
  for (const auto& name : in->negatives) driver_->inval_entry(in->ino, name);
  in->children.clear();
  in->negatives.clear();
  driver_->after_notifications(std::move(done));
}

void SfsFs::on_lost(ServerId server) {
  ++stats_.reconnects;
  // Every lease the connection carried is void, in the kernel too.
  inodes_.drop_leases(server);
  if (!driver_) return;
  for (fuse_ino_t ino : inodes_.inodes_of(server)) {
    Inode* in = inodes_.find(ino);
    if (!in) continue;
    driver_->inval_inode(ino, -1, 0);  // attributes only; data is checked at the next open
    for (const auto& [name, child] : in->children) driver_->inval_entry(ino, name);
    for (const auto& name : in->negatives) driver_->inval_entry(ino, name);
    in->children.clear();
    in->negatives.clear();
  }
}

void SfsFs::agent_registered(uid_t uid) {
  for (auto& s : servers_)
    if (s) s->agent_registered(uid);
}

void SfsFs::on_login_changed(ServerId server, uid_t uid) {
  for (fuse_ino_t ino : inodes_.inodes_of(server))
    if (Inode* in = inodes_.find(ino)) in->access.erase(uid);
}

// ---- /sfs: the servers ----

void SfsFs::reply_root_entry(fuse_req_t req, ServerMount& s) {
  Inode& in = inodes_.get(s.id(), s.root().fh, true);
  in.is_server_root = true;
  fuse_entry_param e{};
  e.ino = in.ino;
  if (!in.attr && s.root().attr) in.attr = s.root().attr->attr;
  if (!in.attr) return (void)fuse_reply_err(req, EIO);
  e.attr = stat_of(in);
  e.attr_timeout = seconds_left(in.attr_until, Clock::now());
  e.entry_timeout = 24 * 3600.0;  // a name in /sfs always means the same server
  fuse_reply_entry(req, &e);
}

void SfsFs::mount_server(fuse_req_t req, const std::string& text) {
  auto name = sfs::parse_name(text);
  if (!name.ok()) return (void)fuse_reply_err(req, ENOENT);
  // The canonical form only: one directory per server.
  if (sfs::format_name(name.value()) != text) return (void)fuse_reply_err(req, ENOENT);
  auto it = by_name_.find(text);
  if (it != by_name_.end()) return reply_root_entry(req, *server(it->second));
  Pending& p = mounting_[text];
  p.reqs.push_back(req);
  if (p.reqs.size() > 1) return;  // already connecting
  const ServerId id = static_cast<ServerId>(servers_.size() + 1);
  ServerMountOptions so;
  so.color = opts_.color;
  // Each server's connections get colors of their own: the main one, then its read lanes.
  so.connections = std::max(opts_.connections, 1u);
  so.conn_color = opts_.first_conn_color + (id - 1) * so.connections;
  so.timeout = opts_.timeout;
  so.hard = opts_.hard;
  so.log = opts_.log;
  so.revoked_dir = opts_.revoked_dir;
  auto s = std::make_shared<ServerMount>(
      id, name.value(), so, signer_,
      [this](ServerId sid, const sfs::fs::Handle& fh, std::uint64_t change, std::function<void()> done) {
        on_invalidate(sid, fh, change, std::move(done));
      },
      [this](ServerId sid) { on_lost(sid); },
      [this](ServerId sid, const sfs::fs::Handle& old_root) { on_new_root(sid, old_root); });
  s->set_on_login_changed([this](ServerId sid, uid_t uid) { on_login_changed(sid, uid); });
  servers_.push_back(s);  // reserves the id (and the connection's color)
  s->start([this, s, text](int err, const std::string& why) {
    auto waiting = std::move(mounting_[text].reqs);
    mounting_.erase(text);
    if (err) {
      opts_.log("sfsclient: cannot mount " + text + ": " + why);
      servers_[s->id() - 1].reset();
      for (fuse_req_t r : waiting) fuse_reply_err(r, err);
      return;
    }
    by_name_[text] = s->id();
    opts_.log("sfsclient: mounted " + text);
    for (fuse_req_t r : waiting) reply_root_entry(r, *s);
  });
}

}  // namespace sfsclient
