// secure_filter.cc: SecureRecordFilter (the channel as the transport's
// record filter), the auth-number credential, and the helpers the client
// and server halves share (secure_internal.h). See sfs/secure_rpc.h.
#include <chrono>
#include <cstdio>
#include <cstring>

#include "secure_internal.h"
#include "sfs/encoding.h"
#include "sfs/sfs_connect.h"
#include "sfs/sfs_login.h"

namespace sfs {

namespace rpc = asmp::rpc;

void log_to_stderr(const std::string& line) { std::fprintf(stderr, "sfs: %s\n", line.c_str()); }

// ---- SecureRecordFilter --------------------------------------------------------

SecureRecordFilter::SecureRecordFilter(SecureChannel channel, AeadAlg alg, std::string peer,
                                       LogSink log)
    : channel_(std::move(channel)), alg_(alg), peer_(std::move(peer)),
      log_(log ? std::move(log) : LogSink(log_to_stderr)) {}

namespace {

std::span<std::uint8_t> bytes_of(rpc::RecordBuf& b) {
  return {reinterpret_cast<std::uint8_t*>(b.data()), b.size()};
}

}  // namespace

bool SecureRecordFilter::fail(ChannelError e, const char* direction, std::uint64_t seq) {
  if (failure_ == ChannelError::kOk) {
    failure_ = e;
    failure_message_ = std::string("secure channel with ") + peer_ + ": " + direction + " record " +
                       std::to_string(seq) + " failed: " + std::string(describe(e)) +
                       "; closing the connection";
    log_(failure_message_);
  }
  return false;
}

bool SecureRecordFilter::seal(rpc::RecordBuf& record) {
  const std::size_t n = record.size();
  const std::uint64_t seq = channel_.send.sequence();
  // Sealed into a fresh buffer (recycled per thread by RecordBuf) rather
  // than in place: the record must grow by 4 bytes at the front, and moving
  // the body costs as much as encrypting out of place.
  rpc::RecordBuf out(SealState::sealed_size(n));
  out.resize(SealState::sealed_size(n));
  RecordResult r = channel_.send.seal({reinterpret_cast<const std::uint8_t*>(record.data()), n},
                                      bytes_of(out));
  if (!r.ok()) return fail(r.error, "outgoing", seq);
  out.resize(r.bytes);
  record = std::move(out);
  return true;
}

bool SecureRecordFilter::open(rpc::RecordBuf& record) {
  const std::uint64_t seq = channel_.receive.sequence();
  if (record.size() < kRecordOverhead) return fail(ChannelError::kMalformed, "incoming", seq);
  rpc::RecordBuf out(record.size() - kRecordOverhead);
  out.resize(record.size() - kRecordOverhead);
  RecordResult r = channel_.receive.open(
      {reinterpret_cast<const std::uint8_t*>(record.data()), record.size()}, bytes_of(out));
  if (!r.ok()) return fail(r.error, "incoming", seq);
  out.resize(r.bytes);
  record = std::move(out);
  return true;
}

rpc::Auth auth_number_cred(std::uint32_t auth_number) {
  std::uint8_t body[4];
  store_be32(body, auth_number);
  return rpc::Auth::raw(SFS_AUTH_NUMBER, body, sizeof body);
}

namespace conn_detail {

std::shared_ptr<rpc::RecordFilter> make_filter(const SessionKeys& keys, Role role,
                                               const ChannelOptions& o, std::string peer,
                                               const LogSink& log,
                                               std::shared_ptr<SecureRecordFilter>* plain) {
  auto f = std::make_shared<SecureRecordFilter>(make_channel(keys, role, o.impl, o.config),
                                                keys.alg, std::move(peer), log);
  *plain = f;
  if (o.wrap_filter) return o.wrap_filter(f);
  return f;
}

std::string location_text(const Location& l) { return l.host + ":" + std::to_string(l.port); }

Bytes frame_of(const char* body, std::size_t n) {
  Bytes f(kHandshakeFrameHeader + n);
  store_be32(f.data(), static_cast<std::uint32_t>(n));
  if (n) std::memcpy(f.data() + kHandshakeFrameHeader, body, n);
  return f;
}

std::string close_text(rpc::CloseReason why, int err, const SecureRecordFilter* f) {
  if (why == rpc::CloseReason::kFilterRejected && f && !f->failure_message().empty())
    return f->failure_message();
  std::string s = rpc::to_string(why);
  if (err) s += std::string(": ") + std::strerror(err);
  return s;
}

std::shared_ptr<const rpc::Interface> connect_iface() {
  static const auto i = std::make_shared<const rpc::Interface>(rpc::Interface{
      SFS_CONNECT_PROG, SFS_CONNECT_V1,
      {rpc::proc(xdr_void, xdr_void), rpc::proc(xdr_sfs_connect_arg, xdr_sfs_connect_res)}});
  return i;
}

std::shared_ptr<const rpc::Interface> login_iface() {
  static const auto i = std::make_shared<const rpc::Interface>(rpc::Interface{
      SFS_LOGIN_PROG, SFS_LOGIN_V1,
      {rpc::proc(xdr_void, xdr_void), rpc::proc(xdr_sfs_login_msg, xdr_sfs_login_msg),
       rpc::proc(xdr_u_int, xdr_void)}});
  return i;
}

bool LogLimiter::allow(std::uint64_t* dropped) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  if (second_.exchange(now, std::memory_order_relaxed) != now) count_.store(0, std::memory_order_relaxed);
  if (count_.fetch_add(1, std::memory_order_relaxed) >= per_second_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  *dropped = dropped_.exchange(0, std::memory_order_relaxed);
  return true;
}

}  // namespace conn_detail

}  // namespace sfs
