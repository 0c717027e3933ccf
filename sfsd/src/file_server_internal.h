// file_server_internal.h: what file_server.cc and procedures.cc share: one
// call's state (Req) and one reply under construction (Reply). Private to
// sfsd/src.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "file_server.h"
#include "sfs/fs_wire.h"
#include "sfs/sfs_nfs.h"

namespace sfsd {

// One call, from dispatch (color 0) to its reply (connection color).
struct FileServer::Req {
  explicit Req(asmp::rpc::Call c) : call(std::move(c)) {}
  asmp::rpc::Call call;
  std::uint64_t conn = 0;   // Caller::conn_id
  nfs::CallOptions cred;    // AUTH_UNIX for the backend
  std::uint64_t sample = 0; // the modification number when dispatched
  FileServer::Counters* counters = nullptr;
  ~Req();
};

// A reply being built on color 0 and sent from the connection's color,
// where the backend handles listed in `handles` are sealed into the fields
// they belong to. `keep` holds what the result's pointers point into.
struct FileServer::Reply {
  virtual ~Reply() = default;
  virtual void encode(asmp::rpc::Call& c) = 0;
  std::vector<std::pair<sfs_nfs_fh3*, nfs::FileHandle>> handles;
  std::vector<std::shared_ptr<void>> keep;
};

template <class Res>
struct ReplyOf final : FileServer::Reply {
  Res res{};
  void encode(asmp::rpc::Call& c) override { c.reply(&res); }
};

constexpr std::uint32_t kMaxData = SFS_NFS3_MAXDATA;

inline nfs::FileHandle fh_of(const sfs_nfs_fh3& h) {
  return nfs::FileHandle({reinterpret_cast<const std::uint8_t*>(h.data.data_val), h.data.data_len});
}

// What a client should see for a failure. An NFS error is the backend's
// answer. Otherwise: was the call possibly carried out? Read-only calls and
// calls that never left are safe to retry (JUKEBOX: try again later); a
// change whose outcome is unknown gets SERVERFAULT, the agreed "outcome
// unknown" (docs/protocol.md), never a silent resend.
inline sfs_nfsstat3 status_of(const nfs::Error& e, bool mutating) {
  switch (e.failure) {
    case nfs::Failure::kNone: return SFS_NFS3_OK;
    case nfs::Failure::kNfs: return sfs::fs::to_wire(e.status);
    case nfs::Failure::kUnavailable: return SFS_NFS3ERR_JUKEBOX;
    case nfs::Failure::kTimeout:
    case nfs::Failure::kConnectionLost: return mutating ? SFS_NFS3ERR_SERVERFAULT : SFS_NFS3ERR_JUKEBOX;
    case nfs::Failure::kRpc:
    case nfs::Failure::kClosed:
    case nfs::Failure::kRootChanged: return SFS_NFS3ERR_SERVERFAULT;
  }
  return SFS_NFS3ERR_SERVERFAULT;
}

// Answers any SFS_NFS procedure with a status and empty failure data.
void reply_status(asmp::rpc::Call& c, sfs_nfsstat3 st);
// The procedures sfsd serves. WRITE's arguments decode as WriteArgs.
std::shared_ptr<const asmp::rpc::Interface> sfs_nfs_interface();

// sfs_WRITE3args (same wire form) with the data as a view into the call's
// record, which the Call owns: the data goes from the opened record to the
// backend's WRITE without a copy (xdr_sfs_WRITE3args would allocate, zero
// and copy 1 MiB).
struct WriteArgs {
  sfs_nfs_fh3 file{};
  sfs_offset3 offset = 0;
  sfs_count3 count = 0;
  sfs_stable_how stable = SFS_UNSTABLE;
  asmp::rpc::BytesView data;
};
bool_t xdr_write_args(XDR* x, WriteArgs* a);  // called through rpc::xdrproc_of

}  // namespace sfsd
