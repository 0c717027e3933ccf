// sfs_fs_call.h: SfsFs::call<P>, the one path every operation's RPC takes:
// wait for the server and the user's login (ServerMount::run), build the
// arguments, send, and on the metadata color either retry (connection lost
// before an answer, for calls safe to repeat; JUKEBOX: the server asks to
// try again later; STALE or BADHANDLE on a handle learnt before the server
// came back with another root: once, with the handles found again by path,
// refind.cc) or hand the result to the operation. Private to sfsclient/src.
#pragma once

#include <cerrno>
#include <type_traits>

#include "sfs_fs.h"

namespace sfsclient {

// The errno a local file system would give for an NFS status.
inline int errno_of(sfs_nfsstat3 st) {
  if (st == SFS_NFS3ERR_SERVERFAULT) return EIO;  // includes "outcome unknown"
  return asmp::nfs::to_errno(sfs::fs::from_wire(st));
}

// Calls f on every file handle among a call's arguments (the fields the
// NFSv3 argument structs name them by).
template <class T, class F>
void fh_field(T& field, F& f) {
  if constexpr (std::is_same_v<std::remove_cvref_t<T>, sfs_nfs_fh3>) f(field);
}
template <class A, class F>
void each_handle(A& a, F&& f) {
  if constexpr (requires { a.object; }) fh_field(a.object, f);
  if constexpr (requires { a.object.dir; }) fh_field(a.object.dir, f);
  if constexpr (requires { a.what.dir; }) fh_field(a.what.dir, f);
  if constexpr (requires { a.where.dir; }) fh_field(a.where.dir, f);
  if constexpr (requires { a.from.dir; }) fh_field(a.from.dir, f);
  if constexpr (requires { a.to.dir; }) fh_field(a.to.dir, f);
  if constexpr (requires { a.link.dir; }) fh_field(a.link.dir, f);
  if constexpr (requires { a.file; }) fh_field(a.file, f);
  if constexpr (requires { a.dir; }) fh_field(a.dir, f);
  if constexpr (requires { a.symlink; }) fh_field(a.symlink, f);
  if constexpr (requires { a.fsroot; }) fh_field(a.fsroot, f);
}

inline bool handle_refused(sfs_nfsstat3 st) { return st == SFS_NFS3ERR_STALE || st == SFS_NFS3ERR_BADHANDLE; }

template <std::uint32_t P>
void SfsFs::call_as(uid_t uid, ServerId sid, Build<P> build, Done<P> done, std::function<void(int)> fail,
                    bool retry_if_lost) {
  using Res = typename sfs::fs::ProcTraits<P>::Res;
  struct Attempt : std::enable_shared_from_this<Attempt> {
    SfsFs* fs;
    ServerId sid;
    uid_t uid;
    Build<P> build;
    Done<P> done;
    std::function<void(int)> fail;
    bool retry;
    unsigned jukebox = 0;
    Clock::time_point deadline;
    SfsFs::Remap remap;    // handles found again by path, sent instead
    bool refound = false;  // tried that once already

    // The arguments, with the handles found again in place of the old.
    void fill(typename sfs::fs::ProcTraits<P>::Args& args) {
      build(args);
      if (remap.empty()) return;
      each_handle(args, [this](sfs_nfs_fh3& h) {
        const auto sent = sfs::fs::FileClient::handle_of(h);
        for (const auto& [from, to] : remap)
          if (sent == from) h = sfs::fs::FileClient::wire(to);  // `to` lives as long as this attempt
      });
    }

    void go() {
      ServerMount* s = fs->server(sid);
      if (!s) return fail(ESTALE);
      auto self = this->shared_from_this();
      s->run(
          uid,
          [self](const std::shared_ptr<sfs::fs::FileClient>& c, std::uint32_t auth) {
            typename sfs::fs::ProcTraits<P>::Args args{};
            self->fill(args);
            const auto sent = Clock::now();
            c->template call<P>(auth, args,
                                typename sfs::fs::FileClient::template Done<P>(
                                    [self, sent](asmp::rpc::RpcStatus st, sfs::fs::Reply<Res> r) {
                                      self->finish(st, std::move(r), sent);
                                    },
                                    self->fs->opts_.color));
          },
          [self](int err) { self->fail(err); });
    }

    void finish(asmp::rpc::RpcStatus st, sfs::fs::Reply<Res> r, Clock::time_point sent) {
      const auto now = Clock::now();
      if (!st.ok()) {
        // Lost before an answer: ServerMount::run waits for the reconnect.
        if (st.error == asmp::rpc::RpcError::kConnectionLost && retry && (fs->opts_.hard || now < deadline))
          return go();
        if (st.error == asmp::rpc::RpcError::kAuthError) return fail(EACCES);
        return fail(EIO);
      }
      if (r->status == SFS_NFS3ERR_JUKEBOX && (fs->opts_.hard || now < deadline)) {
        auto delay = std::chrono::milliseconds(100) * (1u << std::min(jukebox++, 5u));
        auto self = this->shared_from_this();
        asmp::default_runtime().delaycb(delay, asmp::Closure([self] { self->go(); }, fs->opts_.color));
        return;
      }
      if (handle_refused(r->status) && !refound) return recover(std::move(r), sent);
      done(std::move(r), sent);
    }

    // A handle refused: if some were learnt before the server's new root,
    // find them again by path and send once more; else the error stands.
    void recover(sfs::fs::Reply<Res> r, Clock::time_point sent) {
      refound = true;
      std::vector<sfs::fs::Handle> handles;
      typename sfs::fs::ProcTraits<P>::Args args{};
      fill(args);
      each_handle(args, [&](sfs_nfs_fh3& h) { handles.push_back(sfs::fs::FileClient::handle_of(h)); });
      auto self = this->shared_from_this();
      auto failed = std::make_shared<sfs::fs::Reply<Res>>(std::move(r));
      fs->recover_handles(sid, uid, std::move(handles), [self, failed, sent](SfsFs::Remap found) {
        if (found.empty()) return self->done(std::move(*failed), sent);
        for (auto& m : found) self->remap.push_back(std::move(m));
        self->go();
      });
    }
  };
  auto a = std::make_shared<Attempt>();
  a->fs = this;
  a->sid = sid;
  a->uid = uid;
  a->build = std::move(build);
  a->done = std::move(done);
  a->fail = std::move(fail);
  a->retry = retry_if_lost;
  a->deadline = Clock::now() + opts_.timeout;
  a->go();
}

template <std::uint32_t P>
void SfsFs::call(fuse_req_t req, ServerId sid, Build<P> build, Done<P> done, bool retry_if_lost) {
  call_as<P>(fuse_req_ctx(req)->uid, sid, std::move(build), std::move(done),
             [req](int err) { fuse_reply_err(req, err); }, retry_if_lost);
}

template <std::uint32_t P>
void SfsFs::call_changing(fuse_req_t req, ServerId sid, fuse_ino_t dir, fuse_ino_t dir2, Build<P> build,
                          Done<P> done) {
  call_as<P>(
      fuse_req_ctx(req)->uid, sid, std::move(build), std::move(done),
      [this, req, dir, dir2](int err) {
        change_failed(dir);
        if (dir2) change_failed(dir2);
        fuse_reply_err(req, err);
      },
      false);
}

}  // namespace sfsclient
