// secure_filter.cc: SecureRecordFilter (the channel as the transport's
// record filter), the auth-number credential, and the helpers the client
// and server halves share (secure_internal.h). See sfs/secure_rpc.h.
#include <chrono>
#include <cstdio>
#include <cstring>

#include <sodium.h>

#include "secure_internal.h"
#include "sfs/encoding.h"
#include "sfs/sfs_connect.h"
#include "sfs/sfs_login.h"

namespace sfs {

namespace rpc = asmp::rpc;

void log_to_stderr(const std::string& line) { std::fprintf(stderr, "sfs: %s\n", line.c_str()); }

// ---- SecureRecordFilter --------------------------------------------------------

SecureRecordFilter::SecureRecordFilter(SecureChannel channel, AeadAlg alg, std::string peer,
                                       LogSink log, RekeyOptions rekey)
    : rekey_(rekey), since_(std::chrono::steady_clock::now()), channel_(std::move(channel)),
      alg_(alg), peer_(std::move(peer)), log_(log ? std::move(log) : LogSink(log_to_stderr)) {}

SecureRecordFilter::~SecureRecordFilter() {
  mine_.wipe();
  if (next_) next_->wipe();
  sodium_memzero(rekey_.chain.data(), rekey_.chain.size());
}

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

// A control record that authenticated but breaks the state machine: the
// peer holds the keys, so this is a bug or a hostile peer; either way the
// connection ends.
bool SecureRecordFilter::fail_rekey(const std::string& why, std::uint64_t seq) {
  if (failure_ == ChannelError::kOk) {
    failure_ = ChannelError::kMalformed;
    failure_message_ = "secure channel with " + peer_ + ": incoming record " + std::to_string(seq) +
                       " failed: " + why + "; closing the connection";
    log_(failure_message_);
  }
  return false;
}

std::optional<ControlMessage> SecureRecordFilter::next_control() {
  switch (stage_) {
    case RekeyStage::kIdle: {
      if (rekey_.role != Role::kClient) return std::nullopt;
      const bool by_count = rekey_.after_records && records_since_ >= rekey_.after_records;
      const bool by_time = rekey_.after_time.count() > 0 &&
                           std::chrono::steady_clock::now() - since_ >= rekey_.after_time;
      if (!by_count && !by_time) return std::nullopt;
      mine_ = make_ephemeral();
      stage_ = RekeyStage::kAwaitAck;
      return ControlMessage{ControlKind::kRekey, mine_.public_key};
    }
    case RekeyStage::kAckPending:
      return ControlMessage{ControlKind::kRekeyAck, mine_.public_key};
    case RekeyStage::kDonePending:
      return ControlMessage{ControlKind::kRekeyDone, {}};
    case RekeyStage::kAwaitAck:
    case RekeyStage::kAwaitDone:
      return std::nullopt;
  }
  return std::nullopt;
}

bool SecureRecordFilter::sent_control(const ControlMessage& m) {
  if (m.kind == ControlKind::kRekey) return true;
  // ACK (server) or DONE (client): the control record was the last one
  // under the old send key.
  const bool client = rekey_.role == Role::kClient;
  if (!channel_.send.replace_key(client ? next_->client_to_server : next_->server_to_client))
    return false;
  if (client) {
    rekey_.chain = next_->chain;
    next_->wipe();
    next_.reset();
    stage_ = RekeyStage::kIdle;
    records_since_ = 0;
    since_ = std::chrono::steady_clock::now();
    rekeys_.fetch_add(1, std::memory_order_relaxed);
  } else {
    stage_ = RekeyStage::kAwaitDone;
  }
  return true;
}

bool SecureRecordFilter::received_control(const ControlMessage& m, std::uint64_t seq) {
  const bool client = rekey_.role == Role::kClient;
  if (!client && m.kind == ControlKind::kRekey && stage_ == RekeyStage::kIdle) {
    mine_ = make_ephemeral();
    next_ = derive_rekey(rekey_.chain, mine_.secret, m.key, m.key, mine_.public_key);
    mine_.wipe();  // the public half stays for the ACK
    if (!next_) return fail_rekey("rekey with an invalid ephemeral key", seq);
    stage_ = RekeyStage::kAckPending;
    return true;
  }
  if (client && m.kind == ControlKind::kRekeyAck && stage_ == RekeyStage::kAwaitAck) {
    next_ = derive_rekey(rekey_.chain, mine_.secret, m.key, mine_.public_key, m.key);
    mine_.wipe();
    if (!next_) return fail_rekey("rekey answer with an invalid ephemeral key", seq);
    // The server switched right after its ACK: so does our receive key.
    if (!channel_.receive.replace_key(next_->server_to_client))
      return fail(ChannelError::kCryptoFailure, "incoming", seq);
    stage_ = RekeyStage::kDonePending;
    return true;
  }
  if (!client && m.kind == ControlKind::kRekeyDone && stage_ == RekeyStage::kAwaitDone) {
    if (!channel_.receive.replace_key(next_->client_to_server))
      return fail(ChannelError::kCryptoFailure, "incoming", seq);
    rekey_.chain = next_->chain;
    next_->wipe();
    next_.reset();
    stage_ = RekeyStage::kIdle;
    rekeys_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return fail_rekey("unexpected rekey message (kind " + std::to_string(static_cast<int>(m.kind)) + ")",
                    seq);
}

bool SecureRecordFilter::seal(rpc::RecordBuf& record) {
  const std::span<const std::uint8_t> whole{reinterpret_cast<const std::uint8_t*>(record.data()), record.size()};
  return seal_pieces(record, {&whole, 1});
}

bool SecureRecordFilter::seal_tail(rpc::RecordBuf& record, const rpc::RecordTail& tail) {
  const auto bytes = [](std::span<const char> s) {
    return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  const std::span<const std::uint8_t> pieces[3] = {
      bytes({record.data(), record.size()}), bytes(tail.bytes), bytes(tail.padding())};
  return seal_pieces(record, pieces);
}

bool SecureRecordFilter::seal_pieces(rpc::RecordBuf& record,
                                     std::span<const std::span<const std::uint8_t>> pieces) {
  if (failure_ != ChannelError::kOk) return false;  // failure is final, in both directions
  const std::size_t n = total_size(pieces);
  ++records_since_;
  std::optional<ControlMessage> ctl = next_control();
  std::uint8_t ctl_plain[kControlMaxPlaintext];
  const std::size_t ctl_n = ctl ? encode_control(*ctl, ctl_plain) : 0;
  const std::size_t ctl_sealed = ctl ? SealState::sealed_size(ctl_n) : 0;
  // Sealed into a fresh buffer (recycled per thread by RecordBuf) rather
  // than in place: the record must grow by 4 bytes at the front, and moving
  // the body costs as much as encrypting out of place. A tail (a READ's
  // data) is read from its own buffer: never copied next to the header.
  rpc::RecordBuf out(ctl_sealed + SealState::sealed_size(n));
  out.resize(ctl_sealed + SealState::sealed_size(n));
  if (ctl) {
    const std::uint64_t seq = channel_.send.sequence();
    RecordResult r = channel_.send.seal({ctl_plain, ctl_n}, bytes_of(out).first(ctl_sealed));
    if (!r.ok()) return fail(r.error, "outgoing", seq);
    if (!sent_control(*ctl)) return fail(ChannelError::kCryptoFailure, "outgoing", seq);
  }
  const std::uint64_t seq = channel_.send.sequence();
  RecordResult r = channel_.send.seal_pieces(pieces, bytes_of(out).subspan(ctl_sealed));
  if (!r.ok()) return fail(r.error, "outgoing", seq);
  out.resize(ctl_sealed + r.bytes);
  record = std::move(out);
  return true;
}

bool SecureRecordFilter::open(rpc::RecordBuf& record) {
  if (failure_ != ChannelError::kOk) return false;
  ++records_since_;
  std::span<const std::uint8_t> in{reinterpret_cast<const std::uint8_t*>(record.data()), record.size()};
  std::uint64_t seq = channel_.receive.sequence();
  if (in.size() < kRecordOverhead) return fail(ChannelError::kMalformed, "incoming", seq);
  RecordResult first = channel_.receive.record_size(in);
  if (!first.ok()) return fail(first.error, "incoming", seq);
  std::size_t skip = 0;
  if (first.bytes < in.size()) {
    // A control record before the data record (docs/protocol.md 4.1).
    if (first.bytes > SealState::sealed_size(kControlMaxPlaintext))
      return fail_rekey("a record followed by another that is not a control message", seq);
    std::uint8_t plain[kControlMaxPlaintext];
    RecordResult r = channel_.receive.open(in.first(first.bytes), plain);
    if (!r.ok()) return fail(r.error, "incoming", seq);
    auto m = decode_control({plain, r.bytes});
    if (!m) return fail_rekey("malformed control message", seq);
    if (!received_control(*m, seq)) return false;
    skip = first.bytes;
    seq = channel_.receive.sequence();
    RecordResult second = channel_.receive.record_size(in.subspan(skip));
    if (!second.ok()) return fail(second.error, "incoming", seq);
    if (second.bytes != in.size() - skip)
      return fail_rekey("a control message must be followed by exactly one record", seq);
  }
  rpc::RecordBuf out(in.size() - skip - kRecordOverhead);
  out.resize(in.size() - skip - kRecordOverhead);
  RecordResult r = channel_.receive.open(in.subspan(skip), bytes_of(out));
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
  RekeyOptions rk;
  rk.role = role;
  rk.chain = keys.rekey_chain;
  rk.after_records = o.rekey_after_records;
  rk.after_time = o.rekey_after_time;
  auto f = std::make_shared<SecureRecordFilter>(make_channel(keys, role, o.impl, o.config),
                                                keys.alg, std::move(peer), log, rk);
  sodium_memzero(rk.chain.data(), rk.chain.size());
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
       rpc::proc(xdr_u_int, xdr_void), rpc::proc(xdr_sfs_login_msg, xdr_sfs_login_msg)}});
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
