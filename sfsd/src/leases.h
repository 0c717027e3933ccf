// leases.h: which connection may cache what, until when (the paper's SFS
// leases). Lives on color 0 with the rest of sfsd's shared state; not
// thread-safe.
//
// A lease says: connection C may use the attributes of handle H (and, for a
// directory, its entries, negative lookups and ACCESS answers) until T
// without asking the server again. When H changes through sfsd, every other
// connection holding an unexpired lease on H is sent INVALIDATE before the
// writer gets its reply (file_server.h does that; this table says who).
//
// Bounded: a connection holds at most max_per_conn leases; granting one more
// evicts its oldest, which the caller must invalidate on that connection
// (the client may still be caching it). Expired leases are reclaimed by
// expire(), which sfsd runs from a timer. A closed connection's leases go
// with drop_connection().
//
// The table also remembers, for a while, the modification number of the
// last change of each handle (last_change), so that a reply computed before
// a change but completed after it is sent with no lease.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <unordered_map>
#include <vector>

#include "asmp/nfs.h"
#include "asmp/runtime.h"

namespace sfsd {

struct HandleHash {
  std::size_t operator()(const asmp::nfs::FileHandle& fh) const noexcept;
};

class LeaseTable {
 public:
  using Clock = asmp::Clock;
  using ConnId = std::uint64_t;

  explicit LeaseTable(std::size_t max_per_conn) : max_per_conn_(max_per_conn) {}

  // conn may cache fh until `until` (extends an existing lease). Handles the
  // connection had to give up to stay under the bound are appended to
  // *evicted.
  void grant(ConnId conn, const asmp::nfs::FileHandle& fh, Clock::time_point until,
             std::vector<asmp::nfs::FileHandle>* evicted);
  // The connections other than `writer` holding an unexpired lease on fh;
  // their leases on fh end now (they are about to be invalidated).
  void take_holders(const asmp::nfs::FileHandle& fh, ConnId writer, Clock::time_point now,
                    std::vector<ConnId>* out);
  // True if a connection other than `conn` holds any lease at all.
  bool others_hold_any(ConnId conn) const;
  void drop_connection(ConnId conn);
  // Removes expired leases and forgets changes older than `forget_before`.
  void expire(Clock::time_point now, Clock::time_point forget_before);

  // Modification numbers (see the top).
  void note_change(const asmp::nfs::FileHandle& fh, std::uint64_t change, Clock::time_point now);
  std::uint64_t last_change(const asmp::nfs::FileHandle& fh) const;

  std::size_t size() const { return total_; }
  std::size_t held_by(ConnId conn) const;

 private:
  struct Holder {
    ConnId conn;
    Clock::time_point until;
  };
  struct PerConn {
    std::list<asmp::nfs::FileHandle> order;  // oldest grant first
    std::unordered_map<asmp::nfs::FileHandle, std::list<asmp::nfs::FileHandle>::iterator, HandleHash> pos;
  };
  struct Change {
    std::uint64_t number;
    Clock::time_point when;
  };
  void remove_holder(ConnId conn, const asmp::nfs::FileHandle& fh);

  std::size_t max_per_conn_;
  std::size_t total_ = 0;
  std::unordered_map<asmp::nfs::FileHandle, std::vector<Holder>, HandleHash> by_handle_;
  std::unordered_map<ConnId, PerConn> by_conn_;
  std::unordered_map<asmp::nfs::FileHandle, Change, HandleHash> changes_;
};

}  // namespace sfsd
