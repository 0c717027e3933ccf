// sfs_fs.h: the file system sfsclient mounts at /sfs. Its root lists the
// servers mounted so far; looking up "@HOST%PORT,HOSTID" there connects to
// that server, checks its key against HOSTID, and from then on the name is
// a directory: the server's export. Every FUSE operation is one function
// (ops_*.cc) that maps the request to SFS_NFS calls and back.
//
// Colors:
//   metadata color (0)  FUSE requests arrive here (fuse_driver.h); the inode
//                       table, servers, open files, and every reply that
//                       updates them
//   connection colors   each server's records and crypto; READ replies go
//                       to the kernel from there (zero copy, no hop)
//   notifier thread     kernel invalidations
//
// Errors a caller sees (docs/sfsclient.md): a name in /sfs that is not a
// self-certifying name: ENOENT; a server whose key does not match the
// HOSTID: EACCES (and a line in the log); a server that does not answer:
// EHOSTUNREACH; a server lost for longer than `timeout`: EIO.
#pragma once

#include <fuse3/fuse_lowlevel.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fuse_driver.h"
#include "inodes.h"
#include "server_mount.h"

namespace sfsclient {

struct FsOptions {
  asmp::color_t color = 0;
  asmp::color_t first_conn_color = 1;
  std::chrono::milliseconds timeout{60000};
  bool hard = false;
  std::size_t max_uncommitted = 64 << 20;  // per open file, then COMMIT
  std::size_t max_write_behind = 16 << 20; // per open file: writes answered before the server has them
  sfs::LogSink log = sfs::log_to_stderr;
  std::string revoked_dir;  // ServerMountOptions::revoked_dir
  unsigned connections = 1;  // per server: ServerMountOptions::connections
  // The mount's read-ahead, bytes: FUSE's max_readahead at INIT, which the
  // kernel takes as a ceiling for the mount's read_ahead_kb.
  std::uint32_t read_ahead = 1 << 20;
};

struct FsStats {
  std::uint64_t invalidations = 0;  // INVALIDATE received
  std::uint64_t reconnects = 0;
  std::uint64_t attr_hits = 0;      // getattr answered from a lease
  std::uint64_t negative_hits = 0;  // lookups answered ENOENT from a directory known whole
};

// The bytes of one write, kept until a COMMIT makes them stable: a view
// into the FUSE request buffer they arrived in (taken over from the
// driver) or into a copy, and what keeps that alive.
struct WrittenBytes {
  std::shared_ptr<const void> owner;
  std::string_view bytes;
  const char* data() const { return bytes.data(); }
  std::size_t size() const { return bytes.size(); }
};

class SfsFs {
 public:
  SfsFs(FsOptions opts, LoginSigner* signer);
  ~SfsFs();

  static const fuse_lowlevel_ops* ops();
  void set_driver(FuseDriver* d) { driver_ = d; }
  void shutdown();  // on the metadata color
  FsStats stats() const;

  // ---- the operations (ops_*.cc), all on the metadata color ----
  void init(fuse_conn_info* conn);
  void lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void forget(fuse_ino_t ino, std::uint64_t n);
  void getattr(fuse_req_t req, fuse_ino_t ino);
  void setattr(fuse_req_t req, fuse_ino_t ino, const struct stat& attr, int to_set, fuse_file_info* fi);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  void unlink(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir);
  void symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name);
  void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned flags);
  void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus);
  void releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void statfs(fuse_req_t req, fuse_ino_t ino);

  // ---- shared by the operations ----
  struct OpenFile;
  struct DirHandle;
  const FsOptions& options() const { return opts_; }
  InodeTable& inodes() { return inodes_; }
  ServerMount* server(ServerId id);

  // Calls procedure P on the inode's server as the request's user. `build`
  // fills the arguments (it may be called again on a retry: the connection
  // was lost before an answer, the server said JUKEBOX, or it refused a
  // handle learnt before its new root, found again by path: refind.cc; the
  // handles found replace the old ones in what build fills). `done` runs on
  // the metadata color with the result and the time the call was sent;
  // transport failures are answered to the kernel here (EIO, EACCES) and
  // never reach `done` unless `raw` is set.
  template <std::uint32_t P>
  using Build = std::function<void(typename sfs::fs::ProcTraits<P>::Args&)>;
  template <std::uint32_t P>
  using Done = std::function<void(sfs::fs::Reply<typename sfs::fs::ProcTraits<P>::Res>, Clock::time_point sent)>;
  template <std::uint32_t P>
  void call(fuse_req_t req, ServerId server, Build<P> build, Done<P> done, bool retry_if_lost = true);
  // The same for a call no request waits on (writes behind, commits at
  // release): as uid, failures to `fail`.
  template <std::uint32_t P>
  void call_as(uid_t uid, ServerId server, Build<P> build, Done<P> done, std::function<void(int err)> fail,
               bool retry_if_lost = true);
  // call() for a change of the directory `dir` (and `dir2`, a rename's
  // other one), never repeated if the connection is lost: a failure
  // without an answer is change_failed for them, then the error.
  template <std::uint32_t P>
  void call_changing(fuse_req_t req, ServerId server, fuse_ino_t dir, fuse_ino_t dir2, Build<P> build, Done<P> done);
  // A change of the directory that did not succeed (an error, or no
  // answer: it may have been made or not): its names are no longer known
  // whole (Inode::complete).
  void change_failed(fuse_ino_t dir);

  // The entry for a child from a reply: the inode (one more kernel
  // reference), attributes cached under their lease, the kernel's timeouts.
  bool make_entry(fuse_entry_param& e, Inode& parent, const std::string& name, const sfs::fs::Handle& fh,
                  const sfs_post_op_attr& attr, Clock::time_point sent);
  // What make_entry learns, without the kernel's entry: the child's inode
  // (one kernel reference more if `lookup`; none: a directory read ahead),
  // where it was reached, its attributes under their lease (*attr_timeout:
  // the kernel's timeout), its name in the parent. nullptr (and no
  // reference counted) if the reply had no attributes.
  Inode* learn_child(Inode& parent, const std::string& name, const sfs::fs::Handle& fh, const sfs_post_op_attr& attr,
                     Clock::time_point sent, bool lookup, double* attr_timeout = nullptr);
  void note_negative(Inode& parent, const std::string& name);
  void forget_name(Inode& parent, const std::string& name);
  // Attributes from a reply: cache them; returns the kernel's timeout.
  double note_attr(Inode& in, const sfs_post_op_attr& a, Clock::time_point sent);
  double note_wcc(Inode& in, const sfs_wcc_data& w, Clock::time_point sent);
  void reply_attr(fuse_req_t req, Inode& in, double timeout);

  // Server -> us.
  // Answers the server (done) once the kernel has dropped what it cached:
  // then another client's write is seen here by the next call, at once.
  void on_invalidate(ServerId server, const sfs::fs::Handle& fh, std::uint64_t change, std::function<void()> done);
  void on_lost(ServerId server);
  // An agent of uid registered (main.cc): each server logs uid in if it was
  // anonymous for want of one; then uid's ACCESS answers, the anonymous
  // user's, are dropped (on_login_changed).
  void agent_registered(uid_t uid);
  void on_login_changed(ServerId server, uid_t uid);
  // The server came back with another root handle for the same export
  // (ServerMount::NewRoot): a new root epoch, the root inode re-keyed.
  void on_new_root(ServerId server, const sfs::fs::Handle& old_root);

  // Finding files again by path (refind.cc). A call failed with STALE or
  // BADHANDLE on `handles`: the inodes among them learnt before the
  // server's last new root are looked up again from the root down the names
  // they were last reached by, and kept only if the file found has the
  // fileid cached for them. done(remap) on the metadata color: each handle
  // to send instead of one sent; empty: nothing to retry, the error stands.
  using Remap = std::vector<std::pair<sfs::fs::Handle, sfs::fs::Handle>>;
  void recover_handles(ServerId server, uid_t uid, std::vector<sfs::fs::Handle> handles,
                       std::function<void(Remap)> done);
  // The inode's handle is now fh (open files follow).
  void rekey(Inode& in, const sfs::fs::Handle& fh);

  // Directories read in large pieces (dir_read.cc). read_dir_chunk: one
  // READDIRPLUS of up to kDirChunkBytes from `cookie`, the directory's
  // attributes noted; done(0, chunk) or done(errno, nullptr) on the
  // metadata color. An open directory keeps its last chunk to answer the
  // kernel's next readdir calls from (ops_dir.cc).
  struct DirChunk;
  void reply_dir_plus(fuse_req_t req, Inode& dir, const DirChunk& c, std::size_t at, size_t size);
  void read_dir_chunk(uid_t uid, fuse_ino_t dir, std::uint64_t cookie, const char* cookieverf,
                      std::function<void(int err, std::shared_ptr<DirChunk> chunk)> done);
  // Before a LOOKUP in `dir` goes to the server: at the second miss in a
  // directory's generation (a stat walk, `ls -l`, `git status`), its whole
  // listing (up to kScanMaxEntries) is read into the inode table instead, as
  // unreferenced inodes under their leases, and `again` (the lookup) runs
  // when it is in. Returns false when the lookup should go to the server.
  bool scan_instead(Inode& dir, uid_t uid, std::function<void()> again);

  void mount_server(fuse_req_t req, const std::string& name);
  void reply_root_entry(fuse_req_t req, ServerMount& s);
  // Makes f's writes stable: all of them (`all`: after its writes in
  // flight), or those answered so far (the background COMMIT). One round
  // at a time per open file: a commit asked for while one runs gets a round
  // of its own after it (shared with the others that waited; `all`).
  void commit(const std::shared_ptr<OpenFile>& f, std::function<void(int err)> done, bool all = true);
  void commit_round(const std::shared_ptr<OpenFile>& f, bool all, std::function<void(int err)> done);
  // A COMMIT in the background once f holds max_uncommitted bytes.
  void commit_behind(const std::shared_ptr<OpenFile>& f);
  // Whether a write() may be answered now: at most max_write_behind bytes
  // in flight and twice max_uncommitted held for a resend.
  bool room_for_writes(const OpenFile& f) const;
  // Answers the writes held back (all, or while there is room).
  void release_writers(OpenFile& f, bool all);
  void send_write(const std::shared_ptr<OpenFile>& f, std::uint64_t off, std::shared_ptr<const WrittenBytes> data,
                  bool stable, std::function<void(int err)> done);
  // Runs fn once the inode has no write in flight (at once if it has none).
  void after_writes(fuse_ino_t ino, std::function<void()> fn);
  // struct stat of an inode as the kernel should see it: a size that
  // includes the writes still in flight.
  struct stat stat_of(const Inode& in) const;

 private:
  FsOptions opts_;
  LoginSigner* signer_;
  FuseDriver* driver_ = nullptr;
  InodeTable inodes_;
  std::vector<std::shared_ptr<ServerMount>> servers_;  // ServerId i+1 at index i
  std::map<std::string, ServerId> by_name_;
  struct Pending {
    std::vector<fuse_req_t> reqs;
  };
  std::map<std::string, Pending> mounting_;  // names being connected to
  std::unordered_map<std::uint64_t, std::shared_ptr<OpenFile>> files_;
  std::unordered_set<std::shared_ptr<OpenFile>> closing_;  // released, their last COMMIT under way
  std::unordered_map<std::uint64_t, std::shared_ptr<DirHandle>> dirs_;
  std::uint64_t next_fh_ = 1;
  FsStats stats_;
  struct Recovery;
  void recover_next(const std::shared_ptr<Recovery>& job);
  void refind(ServerId server, uid_t uid, fuse_ino_t ino, unsigned depth, std::function<void(bool found)> done);
  friend struct OpsAccess;
};

// One open file: where its uncommitted writes are kept until COMMIT.
struct SfsFs::OpenFile {
  fuse_ino_t ino = 0;
  ServerId server = 0;
  sfs::fs::Handle fh;
  uid_t uid = 0;
  struct Extent {
    std::uint64_t off;
    std::shared_ptr<const WrittenBytes> data;
  };
  std::vector<Extent> uncommitted;
  std::size_t uncommitted_bytes = 0;
  std::string verf;  // the write verifier the uncommitted data was written under
  // A write the server refused after write() had answered: reported by
  // the next write() (error) and, separately, by the next flush or fsync
  // (sync_error), as Linux reports a writeback error to fsync even when a
  // write saw it first. note_error() sets both.
  int error = 0;
  int sync_error = 0;
  void note_error(int err) {
    if (!err) return;
    if (!error) error = err;
    if (!sync_error) sync_error = err;
  }
  std::size_t bytes_in_flight = 0;
  std::vector<std::function<void()>> blocked;  // writes held back (SfsFs::room_for_writes)
  bool committing = false;  // a commit round is under way (SfsFs::commit)
  std::vector<std::function<void(int)>> commit_next;  // asked for meanwhile: the next round
};

struct SfsFs::DirChunk {
  struct Entry {
    std::string name;
    std::uint64_t cookie = 0;
    std::uint64_t fileid = 0;
    bool has_handle = false;
    sfs::fs::Handle fh;
    sfs_post_op_attr attr{};
  };
  std::uint64_t from = 0;  // the cookie it was read from
  std::vector<Entry> entries;
  bool eof = false;
  char cookieverf[8] = {};
  Clock::time_point sent{};
  std::uint64_t dir_gen = 0;  // the directory's when the reply came
  // Index of the entry that follows the kernel's offset `cookie`, if this
  // chunk holds it (entries.size() at its end).
  std::optional<std::size_t> after(std::uint64_t cookie) const;
};

struct SfsFs::DirHandle {
  fuse_ino_t ino = 0;
  char cookieverf[8] = {};
  std::shared_ptr<DirChunk> ahead;  // the last chunk read
};

}  // namespace sfsclient
