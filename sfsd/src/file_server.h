// file_server.h: SFS_NFS_PROG served over secure connections: each NFSv3
// procedure forwarded to the backend with the caller's credentials, its
// answer sent back with sealed handles, leases and change numbers, and
// INVALIDATE sent to the other holders of a lease before a writer hears
// that its change is done.
//
// Colors (docs/architecture.md, "sfsd"):
//   connection color c   prepare(): open the sealed handles in the call's
//                        arguments (refusing forged ones with BADHANDLE),
//                        check names; later: seal the handles of the reply,
//                        encode it (the record is sealed there too).
//   color 0 (shared)     dispatch(): caller -> AUTH_UNIX credentials, the
//                        call to the backend, its completion: lease table,
//                        modification numbers, INVALIDATE bookkeeping.
//   backend color(s)     the libnfs contexts (nfs_backend.h).
// So no crypto runs on color 0, and everything color 0 owns (leases_,
// conns_, mod_seq_, pending invalidations) is touched only there.
//
// Leases (docs/protocol.md, "Leases"): attributes returned to connection C
// for handle H carry lease_ms > 0 only if no change of H completed since
// the call was dispatched; then C holds a lease on H. A change of H through
// sfsd sends INVALIDATE(H) to every other holder and waits for their
// answers (or invalidate_timeout, after which a silent holder's connection
// is closed, dropping all its leases) before answering the writer.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "asmp/rpc.h"
#include "backend.h"
#include "data_cache.h"
#include "handle_seal.h"
#include "leases.h"
#include "sfs/secure_rpc.h"
#include "sfs/sfs_nfs.h"

namespace sfsd {

struct FileServerOptions {
  std::chrono::milliseconds lease{60000};
  std::chrono::milliseconds invalidate_timeout{5000};
  std::size_t max_leases_per_connection = 65536;
  std::uint32_t anonymous_uid = 65534;
  std::uint32_t anonymous_gid = 65534;
  asmp::color_t color = 0;  // the shared color
  std::size_t data_cache_bytes = 0;  // data_cache.h; 0: off
  std::chrono::milliseconds data_cache_revalidate{1000};
  sfs::LogSink log = sfs::log_to_stderr;
};

struct FileServerStats {
  std::uint64_t calls = 0;
  std::uint64_t bad_handles = 0;       // refused before reaching the backend
  std::uint64_t invalidations = 0;     // INVALIDATE calls sent
  std::uint64_t invalidate_timeouts = 0;  // holders disconnected for not answering
  std::uint64_t leases = 0;            // held now
  std::uint64_t in_flight = 0;         // calls dispatched and not yet answered
  std::uint64_t cache_hits = 0;        // READs answered from the data cache
  std::uint64_t cache_misses = 0;
  std::uint64_t cache_fills = 0;    // blocks copied into it
  std::uint64_t cache_refused = 0;  // blocks not kept: full, and not read again soon
  std::uint64_t cache_bytes = 0;       // held now
};

class FileServer : public std::enable_shared_from_this<FileServer> {
 public:
  static std::shared_ptr<FileServer> create(FileServerOptions opts, std::shared_ptr<Backend> backend,
                                            std::shared_ptr<const HandleSealer> sealer,
                                            nfs::FileHandle root);
  ~FileServer();

  // The program to put in SecureServerOptions::programs.
  sfs::SecureProgram program();
  // SecureServerOptions::on_close (on the shared color).
  void connection_closed(std::uint64_t conn_id);
  // Replaces the handle keys (any thread; later calls use the new ones).
  // Like the sealer given to create(), it is bound to the export's root
  // here (HandleSealer::bound_to).
  void set_sealer(std::shared_ptr<const HandleSealer> sealer);
  // From now on every call gets NFS3ERR_SERVERFAULT (any thread): the
  // backend is not the one sfsd started with.
  void fail_closed(std::string why);
  // Starts the timer that reclaims expired leases (call once, any thread).
  void start();
  // Stops the timer (any thread).
  void stop();
  FileServerStats stats() const;
  // The sealed root handle (what GETROOT returns).
  std::vector<std::uint8_t> sealed_root() const;

  struct Req;
  struct Reply;
  struct Counters {
    std::atomic<std::uint64_t> calls{0}, bad_handles{0}, invalidations{0}, invalidate_timeouts{0},
        leases{0}, in_flight{0};
  };

 private:
  FileServer(FileServerOptions opts, std::shared_ptr<Backend> backend,
             std::shared_ptr<const HandleSealer> sealer, nfs::FileHandle root);

  // Connection color.
  bool prepare(asmp::rpc::Call& call);
  // Color 0.
  void dispatch(asmp::rpc::Call call, const sfs::Caller& who);
  std::shared_ptr<const HandleSealer> sealer() const;

  // ---- helpers for the procedures (procedures.cc), color 0 ----
  template <class T, class F>
  nfs::Done<T> on_shared(F&& fn) {
    return nfs::Done<T>(std::forward<F>(fn), opts_.color);
  }
  // Lease for attributes of fh returned on r's connection; 0 if fh changed
  // since r was dispatched. Grants the lease. A writer calls it for its own
  // reply's attributes before changed().
  std::uint32_t lease_for(const Req& r, const nfs::FileHandle& fh);
  // Fills a post_op_attr for fh, granting the lease if attributes follow.
  void post_op(sfs_post_op_attr& out, const Req& r, const nfs::FileHandle& fh,
               const std::optional<nfs::Attr>& a);
  void wcc(sfs_wcc_data& out, const Req& r, const nfs::FileHandle& fh, const nfs::Wcc& w);
  // After a change by r: bumps the modification number, invalidates the
  // affected handles on every other holder, then runs `then` (on color 0)
  // once they all answered (or were disconnected).
  void changed(const std::shared_ptr<Req>& r, const std::vector<nfs::FileHandle>& affected,
               std::function<void()> then);
  // Hops to r's connection color, seals the reply's handles, answers.
  void send(const std::shared_ptr<Req>& r, std::shared_ptr<Reply> out);
  void send_status(const std::shared_ptr<Req>& r, sfs_nfsstat3 st);
  void invalidate(std::uint64_t conn, const nfs::FileHandle& fh, std::uint64_t change,
                  std::function<void(bool answered)> done);
  void sweep();
  nfs::Verifier client_verifier(const nfs::Verifier& backend_verf) const;

  // One function per procedure (procedures.cc).
  void do_null(const std::shared_ptr<Req>& r);
  void do_getattr(const std::shared_ptr<Req>& r);
  void do_setattr(const std::shared_ptr<Req>& r);
  void do_lookup(const std::shared_ptr<Req>& r);
  void do_access(const std::shared_ptr<Req>& r);
  void do_readlink(const std::shared_ptr<Req>& r);
  void do_read(const std::shared_ptr<Req>& r, bool revalidated = false);  // read.cc
  void do_write(const std::shared_ptr<Req>& r);
  void do_create(const std::shared_ptr<Req>& r);
  void do_mkdir(const std::shared_ptr<Req>& r);
  void do_symlink(const std::shared_ptr<Req>& r);
  void do_mknod(const std::shared_ptr<Req>& r);
  void do_remove(const std::shared_ptr<Req>& r, bool dir);
  void do_rename(const std::shared_ptr<Req>& r);
  void do_link(const std::shared_ptr<Req>& r);
  void do_readdir(const std::shared_ptr<Req>& r);
  void do_readdirplus(const std::shared_ptr<Req>& r);
  void do_fsstat(const std::shared_ptr<Req>& r);
  void do_fsinfo(const std::shared_ptr<Req>& r);
  void do_pathconf(const std::shared_ptr<Req>& r);
  void do_commit(const std::shared_ptr<Req>& r);
  void do_getroot(const std::shared_ptr<Req>& r);
  // The common shape of CREATE, MKDIR, SYMLINK and MKNOD replies.
  void finish_create(const std::shared_ptr<Req>& r, const nfs::FileHandle& dir,
                     nfs::Result<nfs::CreateOk> res);

  const FileServerOptions opts_;
  const std::shared_ptr<Backend> backend_;
  const nfs::FileHandle root_;
  asmp::Runtime& rt_;
  std::array<std::uint8_t, 32> verf_key_{};  // random per start: verifiers change on restart

  mutable std::mutex sealer_mu_;  // only to swap / copy the pointer
  std::shared_ptr<const HandleSealer> sealer_;
  std::atomic<bool> failed_{false};

  const std::shared_ptr<DataCache> cache_;  // own lock; see data_cache.h

  // Color 0.
  LeaseTable leases_;
  std::uint64_t mod_seq_;
  std::unordered_map<std::uint64_t, std::weak_ptr<asmp::rpc::Connection>> conns_;
  asmp::TimerId sweep_timer_ = 0;
  bool stopped_ = false;

  Counters counters_;
};

}  // namespace sfsd
