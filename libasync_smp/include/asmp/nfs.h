// nfs.h: an asynchronous NFSv3 client on libasync_smp (libnfs underneath).
//
// What it is for
//   sfsd reaches its exported files only through NFSv3 RPCs to an NFS server
//   on loopback. NfsClient mounts one export through MOUNT3 on an explicit
//   port (never rpcbind), keeps one TCP connection to the NFS port, and
//   offers every NFSv3 procedure as an asynchronous call with its own
//   AUTH_UNIX credentials.
//
// Colors and threads
//   - The libnfs context is not thread-safe, so everything that touches it
//     runs under one color of the client's own (NfsOptions::color). The fd
//     callbacks, timers and reconnection all run under that color.
//   - Every public method may be called from any thread or color. The call
//     hops to the client's color (cpucb); issued from the client's own color
//     it goes out directly.
//   - Each completion callback runs under its own color (the color of the
//     Callback you pass, e.g. wrap(conn_color, ...)), never inside libnfs.
//
// Guarantees
//   - Every callback runs exactly once: with the result, with an NFS status
//     error (Failure::kNfs), or with a transport error (timeout, connection
//     lost, server unavailable, client closed).
//   - Calls from one color are sent in the order they were made. At most
//     NfsOptions::max_in_flight calls and max_bytes_in_flight bytes (WRITE
//     data, READ counts) are at the server at once; later calls wait, in
//     order. While disconnected at most max_waiting calls wait; more fail at
//     once with kUnavailable.
//   - If the connection drops, the client reconnects with exponential
//     backoff and mounts again. Calls in flight are re-sent after the
//     reconnect (one at a time) when re-sending is safe (see Procedure and
//     docs/nfs-backend.md); the others fail with kConnectionLost ("outcome
//     unknown"), and so does a call that was in flight when the connection
//     was lost twice: it may be what breaks it. Calls made while
//     disconnected wait for the reconnect, up to their timeout.
//   - A server that stops answering is found by NFS NULL probes (sent once
//     calls have waited probe_after without any reply); a server that
//     answers the probes is never disconnected, however slow its calls.
//   - Each (re)connect and mount starts a new connection epoch (epoch(),
//     Result::epoch, NfsOptions::on_reconnect), so that callers can tell
//     that the server may have restarted (e.g. to change a write verifier)
//     or that the export's root handle changed.
//   - NFS3ERR_JUKEBOX is never returned: the call is resent after a delay
//     (the server did nothing), within its timeout.
//   - The connections come from a reserved source port (libnfs binds one
//     when run as root); unless require_reserved_port is false, a
//     connection from any other port is given up at once (the server, which
//     trusts AUTH_UNIX only from reserved ports, would refuse every call).
//   - Destroying the NfsClient fails calls still pending with kClosed (their
//     callbacks still run, exactly once) and closes the connection under the
//     client's color; it never blocks.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "asmp/callback.h"
#include "asmp/runtime.h"

namespace asmp::nfs {

// ---------------------------------------------------------------- errors

// nfsstat3 (RFC 1813 2.6).
enum class Status : std::uint32_t {
  kOk = 0,
  kPerm = 1,
  kNoent = 2,
  kIo = 5,
  kNxio = 6,
  kAcces = 13,
  kExist = 17,
  kXdev = 18,
  kNodev = 19,
  kNotdir = 20,
  kIsdir = 21,
  kInval = 22,
  kFbig = 27,
  kNospc = 28,
  kRofs = 30,
  kMlink = 31,
  kNametoolong = 63,
  kNotempty = 66,
  kDquot = 69,
  kStale = 70,
  kRemote = 71,
  kBadhandle = 10001,
  kNotSync = 10002,
  kBadCookie = 10003,
  kNotsupp = 10004,
  kToosmall = 10005,
  kServerfault = 10006,
  kBadtype = 10007,
  kJukebox = 10008,
};
std::string_view to_string(Status s);
// The errno a local file system would return (e.g. kStale -> ESTALE).
int to_errno(Status s);

enum class Failure : std::uint8_t {
  kNone,            // success
  kNfs,             // the server answered with an NFS error: see status
  kTimeout,         // no answer within the call's timeout
  kConnectionLost,  // the connection dropped and the call was not safe to resend
  kUnavailable,     // could not (re)connect and mount within the give-up time
  kRpc,             // RPC-level failure (auth rejected, garbage, encode error)
  kClosed,          // the client was destroyed before the call finished
  kRootChanged,     // queued when the export's root handle changed across a
                    // reconnect: its handles may now name other files
};
std::string_view to_string(Failure f);

struct Error {
  Failure failure = Failure::kNone;
  Status status = Status::kOk;  // meaningful when failure == kNfs
  std::string message;          // transport detail; empty for kNone/kNfs

  bool ok() const { return failure == Failure::kNone; }
  bool is(Status s) const { return failure == Failure::kNfs && status == s; }
  int to_errno() const;       // 0 when ok
  std::string describe() const;  // for logs: "NFS3ERR_ACCES", "timeout after 5000 ms", ...
};

// ---------------------------------------------------------------- data types

// An opaque NFSv3 file handle (at most 64 bytes), held by value.
class FileHandle {
 public:
  static constexpr std::size_t kMaxSize = 64;
  FileHandle() = default;
  // Fewer than kMaxSize bytes are required; longer input yields an empty handle.
  explicit FileHandle(std::span<const std::uint8_t> bytes);
  std::span<const std::uint8_t> bytes() const { return {data_.data(), size_}; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string hex() const;
  friend bool operator==(const FileHandle& a, const FileHandle& b) {
    return a.bytes().size() == b.bytes().size() &&
           std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin());
  }

 private:
  std::array<std::uint8_t, kMaxSize> data_{};
  std::uint8_t size_ = 0;
};

enum class FileType : std::uint32_t { kReg = 1, kDir, kBlk, kChr, kLnk, kSock, kFifo };

struct Time {
  std::uint32_t seconds = 0;
  std::uint32_t nseconds = 0;
  friend bool operator==(const Time&, const Time&) = default;
};

// fattr3
struct Attr {
  FileType type = FileType::kReg;
  std::uint32_t mode = 0;
  std::uint32_t nlink = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::uint64_t used = 0;
  std::uint32_t rdev_major = 0;
  std::uint32_t rdev_minor = 0;
  std::uint64_t fsid = 0;
  std::uint64_t fileid = 0;
  Time atime, mtime, ctime;
};

// wcc_data: attributes before (size and times only) and after an operation.
struct WccAttr {
  std::uint64_t size = 0;
  Time mtime, ctime;
};
struct Wcc {
  std::optional<WccAttr> before;
  std::optional<Attr> after;
};

enum class TimeHow : std::uint32_t { kDontChange = 0, kServerTime = 1, kClientTime = 2 };

// sattr3: what SETATTR, CREATE, MKDIR, SYMLINK and MKNOD set.
struct SetAttr {
  std::optional<std::uint32_t> mode, uid, gid;
  std::optional<std::uint64_t> size;
  TimeHow atime_how = TimeHow::kDontChange;
  Time atime;  // used with kClientTime
  TimeHow mtime_how = TimeHow::kDontChange;
  Time mtime;
};

enum class StableHow : std::uint32_t { kUnstable = 0, kDataSync = 1, kFileSync = 2 };
enum class CreateMode : std::uint32_t { kUnchecked = 0, kGuarded = 1, kExclusive = 2 };

// ACCESS3 bits.
enum AccessBits : std::uint32_t {
  kAccessRead = 0x01,
  kAccessLookup = 0x02,
  kAccessModify = 0x04,
  kAccessExtend = 0x08,
  kAccessDelete = 0x10,
  kAccessExecute = 0x20,
};

using Verifier = std::array<std::uint8_t, 8>;

// A byte buffer that is not zero-filled on allocation. READ fills one (you
// may hand one in to be reused); WRITE takes one (as WriteData, below).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t size) { resize(size); }
  static Buffer copy_of(std::span<const std::byte> bytes);
  static Buffer copy_of(std::string_view s) {
    return copy_of(std::as_bytes(std::span<const char>(s.data(), s.size())));
  }
  // Keeps the contents up to min(size, new size) only when capacity suffices.
  void resize(std::size_t size);
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  std::span<const std::byte> span() const { return {data_.get(), size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_.get()), size_}; }

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// The data of a WRITE: bytes, and what keeps them alive until the call is
// done (its callback has run), across the hop to the client's color and a
// resend after reconnect. Either a Buffer moved in, or a view into memory
// that an owner keeps, e.g. the record a request arrived in, so that data
// received from elsewhere reaches libnfs's encoder without a copy first.
class WriteData {
 public:
  WriteData() = default;
  WriteData(Buffer b)  // NOLINT(google-explicit-constructor): owning is the common case
      : owner_(std::make_shared<const Buffer>(std::move(b))) {
    bytes_ = static_cast<const Buffer*>(owner_.get())->span();
  }
  // The bytes must not change while `owner` lives.
  WriteData(std::span<const std::byte> bytes, std::shared_ptr<const void> owner)
      : bytes_(bytes), owner_(std::move(owner)) {}
  const std::byte* data() const { return bytes_.data(); }
  std::size_t size() const { return bytes_.size(); }
  std::span<const std::byte> span() const { return bytes_; }

 private:
  std::span<const std::byte> bytes_;
  std::shared_ptr<const void> owner_;
};

// AUTH_UNIX credentials of one call (RFC 5531 appendix A: at most 16 groups).
struct Cred {
  static constexpr std::size_t kMaxGroups = 16;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint8_t ngroups = 0;
  std::array<std::uint32_t, kMaxGroups> groups{};

  Cred() = default;
  Cred(std::uint32_t u, std::uint32_t g, std::span<const std::uint32_t> gs = {});
  friend bool operator==(const Cred&, const Cred&) = default;
};

// Per-call options: the credentials and, optionally, a timeout other than
// NfsOptions::call_timeout. A Cred converts implicitly.
struct CallOptions {
  Cred cred;
  std::chrono::milliseconds timeout{0};  // 0: the client's default
  CallOptions() = default;
  CallOptions(const Cred& c, std::chrono::milliseconds t = std::chrono::milliseconds{0})  // NOLINT
      : cred(c), timeout(t) {}
};

// ---------------------------------------------------------------- results

// The result of one call. On failure == kNfs, the fields that NFSv3 also
// returns on failure (post-op attributes, wcc data) are filled in.
template <class T>
struct Result {
  Error error;
  T value{};
  // The connection epoch (NfsClient::epoch()) of the connection that
  // carried the reply. On a transport failure: that of the connection the
  // call was last sent on, or, if it was never sent, the client's epoch at
  // the time (0 if it never connected).
  std::uint64_t epoch = 0;
  bool ok() const { return error.ok(); }
};

struct LookupOk {
  FileHandle fh;
  std::optional<Attr> attr;
  std::optional<Attr> dir_attr;
};
struct AccessOk {
  std::optional<Attr> attr;
  std::uint32_t access = 0;  // AccessBits granted
};
struct ReadlinkOk {
  std::optional<Attr> attr;
  std::string target;
};
struct ReadOk {
  std::optional<Attr> attr;
  std::uint32_t count = 0;
  bool eof = false;
  Buffer data;  // data.size() == count
};
struct WriteOk {
  Wcc wcc;
  std::uint32_t count = 0;
  StableHow committed = StableHow::kUnstable;
  Verifier verf{};
};
// CREATE, MKDIR, SYMLINK, MKNOD.
struct CreateOk {
  std::optional<FileHandle> fh;
  std::optional<Attr> attr;
  Wcc dir_wcc;
};
struct RenameOk {
  Wcc from_dir_wcc, to_dir_wcc;
};
struct LinkOk {
  std::optional<Attr> attr;
  Wcc dir_wcc;
};
struct DirEntry {
  std::uint64_t fileid = 0;
  std::string name;
  std::uint64_t cookie = 0;
  std::optional<Attr> attr;     // READDIRPLUS only
  std::optional<FileHandle> fh;  // READDIRPLUS only
};
// READDIR and READDIRPLUS.
struct ReaddirOk {
  std::optional<Attr> dir_attr;
  Verifier cookieverf{};
  std::vector<DirEntry> entries;
  bool eof = false;
};
struct FsstatOk {
  std::optional<Attr> attr;
  std::uint64_t tbytes = 0, fbytes = 0, abytes = 0;
  std::uint64_t tfiles = 0, ffiles = 0, afiles = 0;
  std::uint32_t invarsec = 0;
};
struct FsinfoOk {
  std::optional<Attr> attr;
  std::uint32_t rtmax = 0, rtpref = 0, rtmult = 0;
  std::uint32_t wtmax = 0, wtpref = 0, wtmult = 0;
  std::uint32_t dtpref = 0;
  std::uint64_t maxfilesize = 0;
  Time time_delta;
  std::uint32_t properties = 0;
};
struct PathconfOk {
  std::optional<Attr> attr;
  std::uint32_t linkmax = 0, name_max = 0;
  bool no_trunc = false, chown_restricted = false;
  bool case_insensitive = false, case_preserving = false;
};
struct CommitOk {
  Wcc wcc;
  Verifier verf{};
};

template <class T>
using Done = Callback<void(Result<T>)>;

// ---------------------------------------------------------------- the client

struct NfsOptions {
  std::string host = "127.0.0.1";
  std::uint16_t nfs_port = 2049;
  std::uint16_t mount_port = 0;  // required: MOUNT3 is reached directly, never via rpcbind
  std::string export_path;       // as the server names it, e.g. "/srv/export"

  color_t color = 0;             // the color everything libnfs runs under
  Runtime* runtime = nullptr;    // nullptr: Runtime::current(), else default_runtime()

  std::chrono::milliseconds call_timeout{30000};     // default per-call timeout
  std::chrono::milliseconds connect_timeout{5000};   // one connect + MNT attempt
  std::chrono::milliseconds backoff_initial{50};     // first reconnect delay, doubled
  std::chrono::milliseconds backoff_max{2000};       // ...up to this
  std::chrono::milliseconds give_up_after{60000};    // then waiting calls get kUnavailable
  unsigned max_resends = 3;  // how often one call may be resent after reconnects

  // A stopped or hung server keeps TCP open. When calls are in flight and
  // no reply has come for probe_after, the client sends an NFS NULL; if no
  // probe is answered within probe_timeout, the connection is taken for
  // dead and reconnected. A server that answers NULL is alive: its slow
  // calls (a long WRITE or COMMIT) are left to their own timeouts.
  std::chrono::milliseconds probe_after{5000};
  std::chrono::milliseconds probe_timeout{10000};

  // Flow control towards the server. Calls beyond these wait, in order.
  // A single call larger than max_bytes_in_flight still goes out alone.
  unsigned max_in_flight = 256;                          // calls at the server at once
  std::uint64_t max_bytes_in_flight = 64ull << 20;       // WRITE data + READ counts
  // While not connected, at most this many calls wait; more fail at once
  // with kUnavailable.
  std::size_t max_waiting = 4096;

  // Called under `color` after each successful mount, the first included,
  // with the new connection epoch and the root handle that MNT returned.
  // Calls made from inside it go out after the calls that were waiting.
  std::function<void(std::uint64_t epoch, const FileHandle& root)> on_reconnect;

  // Give up a connection whose source port is not reserved (< 1024). The
  // server trusts AUTH_UNIX only from reserved ports (docs/nfs-backend.md).
  bool require_reserved_port = true;

  Cred mount_cred{0, 0};       // credentials of the MNT call
  std::string machine_name = "sfs";  // AUTH_UNIX machinename (at most 255 bytes)
};

struct NfsStats {
  std::uint64_t calls = 0;        // calls submitted
  std::uint64_t resent = 0;       // calls resent after a reconnect
  std::uint64_t timeouts = 0;
  std::uint64_t connects = 0;     // successful connect + mount cycles
  std::uint64_t disconnects = 0;  // connections lost (including stalls)
  std::uint64_t stalls = 0;       // connections given up because a NULL probe got no answer
  std::uint64_t probes = 0;       // NFS NULL probes sent
  std::uint64_t rejected = 0;     // calls failed at once: max_waiting calls already waited
};

class NfsClient {
 public:
  explicit NfsClient(NfsOptions opts);
  ~NfsClient();  // see "Guarantees"; never blocks
  NfsClient(const NfsClient&) = delete;
  NfsClient& operator=(const NfsClient&) = delete;

  // Connects to the MOUNT port, mounts the export, connects to the NFS port.
  // done gets the root file handle, or the first failure (no retry here;
  // later calls reconnect by themselves). Call once, before other calls.
  void mount(Done<FileHandle> done);

  // The root handle of the last successful mount (empty before). Any color.
  FileHandle root() const;
  // The connection epoch: 0 before the first mount, then incremented by
  // each successful connect + mount (so it changes whenever the server may
  // have restarted). Any thread.
  std::uint64_t epoch() const;
  NfsStats stats() const;  // any color; approximate while calls run
  const NfsOptions& options() const;

  void getattr(const CallOptions& o, const FileHandle& fh, Done<Attr> done);
  // guard: only if the object's ctime still equals *guard (NFS3ERR_NOT_SYNC otherwise).
  void setattr(const CallOptions& o, const FileHandle& fh, const SetAttr& attr,
               std::optional<Time> guard, Done<Wcc> done);
  void lookup(const CallOptions& o, const FileHandle& dir, std::string_view name,
              Done<LookupOk> done);
  void access(const CallOptions& o, const FileHandle& fh, std::uint32_t bits, Done<AccessOk> done);
  void readlink(const CallOptions& o, const FileHandle& fh, Done<ReadlinkOk> done);
  // reuse: a buffer to read into (avoids an allocation per read). count is
  // capped at 1 MiB (libnfs's limit; also ganesha's rtmax): expect short reads.
  void read(const CallOptions& o, const FileHandle& fh, std::uint64_t offset, std::uint32_t count,
            Done<ReadOk> done, Buffer reuse = {});
  void write(const CallOptions& o, const FileHandle& fh, std::uint64_t offset, WriteData data,
             StableHow stable, Done<WriteOk> done);
  // verf is used with CreateMode::kExclusive, attr otherwise.
  void create(const CallOptions& o, const FileHandle& dir, std::string_view name, CreateMode mode,
              const SetAttr& attr, Verifier verf, Done<CreateOk> done);
  void mkdir(const CallOptions& o, const FileHandle& dir, std::string_view name,
             const SetAttr& attr, Done<CreateOk> done);
  void symlink(const CallOptions& o, const FileHandle& dir, std::string_view name,
               std::string_view target, const SetAttr& attr, Done<CreateOk> done);
  // type: kChr/kBlk (with rdev), kSock or kFifo.
  void mknod(const CallOptions& o, const FileHandle& dir, std::string_view name, FileType type,
             const SetAttr& attr, std::uint32_t rdev_major, std::uint32_t rdev_minor,
             Done<CreateOk> done);
  void remove(const CallOptions& o, const FileHandle& dir, std::string_view name, Done<Wcc> done);
  void rmdir(const CallOptions& o, const FileHandle& dir, std::string_view name, Done<Wcc> done);
  void rename(const CallOptions& o, const FileHandle& from_dir, std::string_view from_name,
              const FileHandle& to_dir, std::string_view to_name, Done<RenameOk> done);
  void link(const CallOptions& o, const FileHandle& fh, const FileHandle& dir,
            std::string_view name, Done<LinkOk> done);
  // count (READDIR) and maxcount (READDIRPLUS) are capped at kMaxReaddirCount
  // and dircount at maxcount: a larger reply would exceed what libnfs 4.0
  // accepts (1 MiB + 4 KiB) and break the connection under every call in
  // flight. The server pages the rest by cookie as usual.
  static constexpr std::uint32_t kMaxReaddirCount = 1u << 20;
  void readdir(const CallOptions& o, const FileHandle& dir, std::uint64_t cookie,
               const Verifier& cookieverf, std::uint32_t count, Done<ReaddirOk> done);
  void readdirplus(const CallOptions& o, const FileHandle& dir, std::uint64_t cookie,
                   const Verifier& cookieverf, std::uint32_t dircount, std::uint32_t maxcount,
                   Done<ReaddirOk> done);
  void fsstat(const CallOptions& o, const FileHandle& root, Done<FsstatOk> done);
  void fsinfo(const CallOptions& o, const FileHandle& root, Done<FsinfoOk> done);
  void pathconf(const CallOptions& o, const FileHandle& fh, Done<PathconfOk> done);
  void commit(const CallOptions& o, const FileHandle& fh, std::uint64_t offset,
              std::uint32_t count, Done<CommitOk> done);

  // Drops the connection as if the server had gone away (tests; also a way
  // to force a fresh mount). Under the client's color, some time later.
  void disconnect_for_test();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace asmp::nfs
