// wire.h: the fixed parts of RPC messages (RFC 5531 section 9), encoded and
// decoded by hand: they are a handful of 32-bit words, and doing them here
// keeps XDR (libtirpc) for the bodies, where it earns its keep. Private to
// src/rpc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

#include "asmp/rpc.h"

namespace asmp::rpc::wire {

// RFC 5531 11, record marking: each fragment is preceded by a 32-bit word
// holding its length and, in the top bit, whether it ends the record.
constexpr std::uint32_t kLastFragment = 0x80000000u;

// For a record whose encoding ends with an empty opaque (its length word,
// 0): writes data's length there and returns the tail that carries data
// and its padding (RecordTail); nullopt if the record does not end so.
inline std::optional<RecordTail> tail_for_last_opaque(RecordBuf& rec, std::span<const char> data,
                                                      std::shared_ptr<const void> keep) {
  char* end = rec.data() + rec.size();
  if (rec.size() < 4 || std::memcmp(end - 4, "\0\0\0\0", 4) != 0 || data.size() > UINT32_MAX)
    return std::nullopt;
  const auto n = static_cast<std::uint32_t>(data.size());
  end[-4] = static_cast<char>(n >> 24);
  end[-3] = static_cast<char>(n >> 16);
  end[-2] = static_cast<char>(n >> 8);
  end[-1] = static_cast<char>(n);
  return RecordTail{data, (4 - n % 4) % 4, std::move(keep)};
}

// Wire bytes of a record: its body plus a header per fragment.
inline std::size_t wire_size(std::size_t size, std::size_t frag) {
  std::size_t frags = size == 0 ? 1 : (size + frag - 1) / frag;
  return size + 4 * frags;
}

// RFC 5531 9: msg_type, reply_stat, accept_stat, reject_stat.
constexpr std::uint32_t kCall = 0;
constexpr std::uint32_t kReply = 1;
constexpr std::uint32_t kRpcVersion = 2;
constexpr std::uint32_t kMsgAccepted = 0;
constexpr std::uint32_t kMsgDenied = 1;
constexpr std::uint32_t kSuccess = 0;
constexpr std::uint32_t kProgUnavail = 1;
constexpr std::uint32_t kProgMismatch = 2;
constexpr std::uint32_t kProcUnavail = 3;
constexpr std::uint32_t kGarbageArgs = 4;
constexpr std::uint32_t kSystemErr = 5;
constexpr std::uint32_t kRpcMismatch = 0;
constexpr std::uint32_t kAuthError = 1;
// RFC 5531 8.2: "the opaque body ... is at most 400 bytes".
constexpr std::size_t kMaxAuthBytes = 400;

// Bytes of an accepted reply up to and including accept_stat, with an
// AUTH_NONE verifier: xid, REPLY, MSG_ACCEPTED, verf(0, 0), accept_stat.
constexpr std::size_t kAcceptedHeader = 24;

inline void put32(char* p, std::uint32_t v) {
  unsigned char* q = reinterpret_cast<unsigned char*>(p);
  q[0] = static_cast<unsigned char>(v >> 24);
  q[1] = static_cast<unsigned char>(v >> 16);
  q[2] = static_cast<unsigned char>(v >> 8);
  q[3] = static_cast<unsigned char>(v);
}

inline std::uint32_t get32(const char* p) {
  const unsigned char* q = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{q[0]} << 24) | (std::uint32_t{q[1]} << 16) | (std::uint32_t{q[2]} << 8) |
         std::uint32_t{q[3]};
}

constexpr std::size_t pad4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

// Reads big-endian words from a record; a read past the end sets !ok and
// returns zeros, so a parser can check once at the end of a block.
class Reader {
 public:
  Reader(const char* p, std::size_t n) : p_(p), n_(n) {}
  std::uint32_t u32() {
    if (pos_ + 4 > n_) {
      ok_ = false;
      pos_ = n_;
      return 0;
    }
    std::uint32_t v = get32(p_ + pos_);
    pos_ += 4;
    return v;
  }
  // An opaque<max>: length, bytes, padding. Returns the bytes (nullptr and
  // !ok if it is longer than max or runs past the end).
  const char* opaque(std::size_t max, std::uint32_t* len) {
    *len = u32();
    if (!ok_ || *len > max || pos_ + pad4(*len) > n_) {
      ok_ = false;
      *len = 0;
      return nullptr;
    }
    const char* b = p_ + pos_;
    pos_ += pad4(*len);
    return b;
  }
  bool ok() const { return ok_; }
  std::size_t pos() const { return pos_; }
  std::size_t left() const { return n_ - pos_; }

 private:
  const char* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Records for the answers that carry no results.
RecordBuf accepted_error(std::uint32_t xid, std::uint32_t accept_stat, std::uint32_t low = 0,
                         std::uint32_t high = 0);
RecordBuf denied_rpc_mismatch(std::uint32_t xid);
RecordBuf denied_auth(std::uint32_t xid, std::uint32_t auth_stat);
// A SUCCESS reply with res encoded by xres; an empty RecordBuf if xres failed.
RecordBuf success(std::uint32_t xid, xdrproc_t xres, const void* res);

// Parses an AUTH_SYS body (RFC 5531 appendix A). False if malformed.
bool parse_auth_sys(const char* body, std::size_t len, AuthSys* out);

std::uint32_t accept_stat_of(RpcError e);

}  // namespace asmp::rpc::wire

namespace asmp::rpc {

// What a Call owns. Built on the connection's color, then handed to the
// program's dispatch; from there it may travel to any thread (one at a time).
struct Call::State {
  std::shared_ptr<Connection> conn;
  const Program* program = nullptr;  // alive as long as conn's Programs
  const Proc* proc = nullptr;
  std::uint32_t xid = 0;
  std::uint32_t procnum = 0;
  Cred cred;
  // The call's record. Arguments decoded as views (BytesView) point into
  // it, so it lives as long as the Call; destroyed after args (below).
  RecordBuf record;
  void* args = nullptr;  // decoded by proc->xargs: in small_args, or calloc'ed
  bool answered = false;
  // Most argument structs are a few words: no malloc for them.
  alignas(std::max_align_t) unsigned char small_args[64];

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (args) {
      xdr_free(proc->xargs, args);
      if (args != small_args) std::free(args);
    }
  }
  // Zeroed room for n bytes of arguments; false if out of memory.
  bool alloc_args(std::size_t n) {
    if (n <= sizeof small_args) {
      std::memset(small_args, 0, n);
      args = small_args;
    } else {
      args = std::calloc(1, n);
    }
    return args != nullptr;
  }
};

}  // namespace asmp::rpc
