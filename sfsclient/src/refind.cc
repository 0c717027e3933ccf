// refind.cc: finding files again by path after a server came back with
// another root handle for the same export (its handle key was rotated, then
// sfsd restarted: docs/sfsclient.md).
//
// The root inode is re-keyed when the server comes back (on_new_root), and
// a new root epoch starts. Other inodes keep their handles: they still open
// during the old key's grace. When one is refused (STALE, BADHANDLE) and was
// learnt in an earlier epoch, it is looked up again from the root, down the
// (parent, name) links each inode keeps of where it was last reached, and
// the handle found is kept only if its file has the fileid cached for the
// inode: another file now at that path is not this one (ESTALE). The call
// wrapper (sfs_fs_call.h) and READ (ops_file.cc) then send once more with
// the handles found.
//
// A handle refused for an inode learnt in the current epoch is just that (a
// file removed by someone else): the error stands, nothing is looked up.
#include "sfs_fs_call.h"

namespace sfsclient {

namespace {

using Handle = sfs::fs::Handle;
using sfs::fs::FileClient;

// Deeper than any path the kernel resolves (PATH_MAX / 2); also stops a
// loop of links a rename could leave.
constexpr unsigned kMaxDepth = 2048;

}  // namespace

void SfsFs::on_new_root(ServerId server, const Handle& old_root) {
  inodes_.new_root_epoch(server);
  ServerMount* s = this->server(server);
  Inode* root = inodes_.find(server, old_root);
  if (s && root) rekey(*root, s->root().fh);
}

void SfsFs::rekey(Inode& in, const Handle& fh) {
  inodes_.rekey(in, fh);
  if (in.open_count == 0) return;
  for (auto& [id, f] : files_)
    if (f->ino == in.ino) f->fh = in.fh;
}

struct SfsFs::Recovery {
  ServerId server;
  uid_t uid;
  std::vector<std::pair<Handle, fuse_ino_t>> todo;  // to find again, one by one
  std::size_t next = 0;
  Remap remap;
  std::function<void(Remap)> done;
};

void SfsFs::recover_handles(ServerId server, uid_t uid, std::vector<Handle> handles,
                            std::function<void(Remap)> done) {
  auto job = std::make_shared<Recovery>();
  job->server = server;
  job->uid = uid;
  job->done = std::move(done);
  const std::uint64_t epoch = inodes_.root_epoch(server);
  for (auto& h : handles) {
    Inode* in = inodes_.find_any(server, h);
    if (!in) continue;
    if (in->fh != h) job->remap.emplace_back(h, in->fh);  // found again meanwhile
    else if (in->epoch < epoch) job->todo.emplace_back(h, in->ino);
  }
  recover_next(job);
}

void SfsFs::recover_next(const std::shared_ptr<Recovery>& job) {
  if (job->next == job->todo.size()) return job->done(std::move(job->remap));
  const auto [old, ino] = job->todo[job->next++];
  refind(job->server, job->uid, ino, 0, [this, job, old, ino](bool found) {
    if (found)
      if (Inode* in = inodes_.find(ino); in && in->fh != old) job->remap.emplace_back(old, in->fh);
    recover_next(job);
  });
}

void SfsFs::refind(ServerId server, uid_t uid, fuse_ino_t ino, unsigned depth, std::function<void(bool)> done) {
  Inode* in = inodes_.find(ino);
  if (!in) return done(false);
  if (in->epoch >= inodes_.root_epoch(server)) return done(true);  // current (found again already)
  if (in->is_server_root || in->parent == 0 || depth > kMaxDepth || !in->attr) return done(false);
  const fuse_ino_t parent = in->parent;
  const std::string name = in->name;
  refind(server, uid, parent, depth + 1, [this, server, uid, ino, parent, name, done](bool found) {
    Inode* dir = found ? inodes_.find(parent) : nullptr;
    if (!dir) return done(false);
    const Handle dfh = dir->fh;
    call_as<SFS_NFSPROC3_LOOKUP>(
        uid, server,
        [dfh, name](sfs_LOOKUP3args& a) {
          a.what.dir = FileClient::wire(dfh);
          a.what.name = const_cast<char*>(name.c_str());
        },
        [this, server, ino, name, done](sfs::fs::Reply<sfs_LOOKUP3res> r, Clock::time_point sent) {
          Inode* i = inodes_.find(ino);
          if (!i || r->status != SFS_NFS3_OK) return done(false);
          const auto& ok = r->sfs_LOOKUP3res_u.resok;
          const auto la = sfs::fs::from_post_op(ok.obj_attributes);
          if (!la || !i->attr || la->attr.fileid != i->attr->fileid || la->attr.fsid != i->attr->fsid) {
            ServerMount* s = this->server(server);
            opts_.log("sfsclient: " + (s ? s->name() : std::string("a server")) + ": another file is now at \"" +
                      name + "\" (inode " + std::to_string(ino) + "): not found again");
            return done(false);
          }
          rekey(*i, FileClient::handle_of(ok.object));
          note_attr(*i, ok.obj_attributes, sent);
          done(true);
        },
        [done](int) { done(false); });
  });
}

}  // namespace sfsclient
