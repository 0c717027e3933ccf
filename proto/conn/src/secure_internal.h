// secure_internal.h: pieces shared by the filter, client and server halves
// of sfsconn (secure_filter.cc, secure_client.cc, secure_server.cc).
// Private to proto/conn/src.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "sfs/secure_rpc.h"

namespace sfs::conn_detail {

namespace rpc = asmp::rpc;

// The channel filter for one side of a session; *plain receives the filter
// itself (before any ChannelOptions::wrap_filter), for its failure text.
std::shared_ptr<rpc::RecordFilter> make_filter(const SessionKeys& keys, Role role,
                                               const ChannelOptions& o, std::string peer,
                                               const LogSink& log,
                                               std::shared_ptr<SecureRecordFilter>* plain);
std::string location_text(const Location& l);
// A handshake frame (u32 length || body) from SFS_CONNECT's opaque hello.
Bytes frame_of(const char* body, std::size_t n);
// Why a connection closed, for a person: the filter's failure if it has one.
std::string close_text(rpc::CloseReason why, int err, const SecureRecordFilter* f);
std::shared_ptr<const rpc::Interface> connect_iface();
std::shared_ptr<const rpc::Interface> login_iface();

// At most `per_second` log lines a second for one kind of event (a flood of
// bad logins must not become a flood of log lines); the first allowed line
// after a quiet spell says how many were dropped. Any thread.
class LogLimiter {
 public:
  explicit LogLimiter(unsigned per_second) : per_second_(per_second) {}
  bool allow(std::uint64_t* dropped);

 private:
  const unsigned per_second_;
  std::atomic<std::int64_t> second_{-1};
  std::atomic<unsigned> count_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace sfs::conn_detail
