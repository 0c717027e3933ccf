// sfs_fs_call.h: SfsFs::call<P>, the one path every operation's RPC takes:
// wait for the server and the user's login (ServerMount::run), build the
// arguments, send, and on the metadata color either retry (connection lost
// before an answer, for calls safe to repeat; JUKEBOX: the server asks to
// try again later) or hand the result to the operation. Private to
// sfsclient/src.
#pragma once

#include <cerrno>

#include "sfs_fs.h"

namespace sfsclient {

// The errno a local file system would give for an NFS status.
inline int errno_of(sfs_nfsstat3 st) {
  if (st == SFS_NFS3ERR_SERVERFAULT) return EIO;  // includes "outcome unknown"
  return asmp::nfs::to_errno(sfs::fs::from_wire(st));
}

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

    void go() {
      ServerMount* s = fs->server(sid);
      if (!s) return fail(ESTALE);
      auto self = this->shared_from_this();
      s->run(
          uid,
          [self](const std::shared_ptr<sfs::fs::FileClient>& c, std::uint32_t auth) {
            typename sfs::fs::ProcTraits<P>::Args args{};
            self->build(args);
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
      done(std::move(r), sent);
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

}  // namespace sfsclient
