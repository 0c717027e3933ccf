// channel.h: the secure channel record layer.
//
// Contract
//   - Record on the wire (docs/protocol.md, "Record format"):
//         u32 length L (big-endian) | ciphertext (L - 16 bytes) | tag (16)
//     sealed with the session's AEAD (aead.h). The 4 length bytes are the
//     associated data, so a changed length fails authentication. The nonce
//     is implicit: 4 zero bytes then the 64-bit big-endian count of records
//     already sent in this direction. It is never sent, so a replayed,
//     reordered or dropped record is opened under the wrong nonce and fails.
//   - Keys ratchet every 2^32 records: key' = BLAKE2b-256(key = key,
//     "sfs rekey v1" || u64 sequence). The sequence keeps counting across
//     ratchets (nonces never repeat under any key); at 2^64 - 1 records the
//     direction stops for good (kExhausted), it never wraps.
//   - Any failure is final: the state wipes its key and every later call
//     returns kDead. The caller closes the connection and logs describe().
//   - SealState / OpenState own one direction each. They are not thread-safe:
//     a connection uses them under its own color only. They share nothing
//     with other objects, so different connections run in parallel.
//   - No allocation per record: seal() and open() write into caller buffers
//     and may work in place (see each function).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "sfs/aead.h"

namespace sfs {

inline constexpr std::size_t kRecordHeaderBytes = 4;
inline constexpr std::size_t kRecordOverhead = kRecordHeaderBytes + kAeadTagBytes;
// 1 MiB of file data plus room for RPC headers.
inline constexpr std::size_t kDefaultMaxRecordPlaintext = (1u << 20) + 4096;
inline constexpr std::size_t kHardMaxRecordPlaintext = 16u << 20;
inline constexpr unsigned kRekeyIntervalLog2 = 32;

struct ChannelConfig {
  // Largest plaintext accepted by open() and produced by seal(); clamped to
  // kHardMaxRecordPlaintext. The peer's value must not be smaller.
  std::size_t max_plaintext = kDefaultMaxRecordPlaintext;
  // Protocol constant; both ends must agree. Tests lower it to reach a
  // ratchet quickly.
  unsigned rekey_interval_log2 = kRekeyIntervalLog2;
  // Records with sequence >= max_records are refused (kExhausted). Tests
  // lower it; the protocol limit is 2^64 - 1.
  std::uint64_t max_records = ~std::uint64_t{0};
};

enum class ChannelError : std::uint8_t {
  kOk = 0,
  kDead,            // an earlier call failed; the state is unusable
  kExhausted,       // sequence limit reached; the connection must end
  kBufferTooSmall,  // caller's output buffer cannot hold the result
  kTruncated,       // fewer bytes than the length field announces
  kMalformed,       // length cannot hold a tag, or bytes past the record
  kOversized,       // plaintext larger than max_plaintext
  kTampered,        // authentication failed: altered, replayed, reordered or wrong key
  kCryptoFailure,   // the crypto library reported an internal error
};

// One line for a log: what went wrong with the record.
std::string_view describe(ChannelError e);

struct [[nodiscard]] RecordResult {
  ChannelError error = ChannelError::kOk;
  std::size_t bytes = 0;  // seal: record bytes written; open: plaintext bytes;
                          // record_size: whole record bytes (header included)
  bool ok() const { return error == ChannelError::kOk; }
};

// The per-direction state both SealState and OpenState keep.
struct DirectionState {
  AeadAlg alg;
  AeadImpl impl;
  AeadKey key{};            // current epoch's key; wiped on ratchet and death
  std::uint64_t seq = 0;    // next record's sequence number
  std::uint64_t epoch = 0;  // seq >> rekey_interval_log2 of the current key
  std::unique_ptr<Aead> aead;
  ChannelConfig config;
  bool dead = false;

  DirectionState(AeadAlg a, AeadImpl i, const AeadKey& k, const ChannelConfig& c);
  DirectionState(DirectionState&&) noexcept = default;
  DirectionState& operator=(DirectionState&&) noexcept = default;
  ~DirectionState();
  // Ratchets until the key matches seq's epoch. False on library failure.
  bool advance_epoch();
  // Installs a key from an in-band rekey (rekey.h) for the records from seq
  // on; the old key is wiped. The sequence and epoch go on counting. False
  // on library failure (then dead).
  bool replace_key(const AeadKey& k);
  ChannelError kill(ChannelError why);
};

class SealState {
 public:
  SealState(AeadAlg alg, AeadImpl impl, const AeadKey& key, const ChannelConfig& config = {});

  static constexpr std::size_t sealed_size(std::size_t plaintext) {
    return plaintext + kRecordOverhead;
  }

  // Writes one record for `plaintext` to out[0, sealed_size(n)).
  // In place: plaintext.data() == out.data() + kRecordHeaderBytes is
  // allowed (leave 4 bytes of headroom and 16 of tailroom).
  RecordResult seal(std::span<const std::uint8_t> plaintext, std::span<std::uint8_t> out);

  // The same record with the length field kept apart, for a transport that
  // sends the header from its own small buffer (writev) and so never moves
  // the body: buf[0, n) holds the plaintext and buf.size() >= n + 16.
  // Afterwards `header` is the length field and buf[0, n + 16) the body
  // (ciphertext || tag); the wire record is header || body.
  RecordResult seal_in_place(std::span<std::uint8_t> buf, std::size_t n,
                             std::span<std::uint8_t, kRecordHeaderBytes> header);

  // seal() of the concatenation of `pieces`, read where they are (a
  // reply's header and its READ data; Aead::seal_pieces). None may overlap
  // out.
  RecordResult seal_pieces(std::span<const std::span<const std::uint8_t>> pieces, std::span<std::uint8_t> out);

  std::uint64_t sequence() const { return s_.seq; }
  bool dead() const { return s_.dead; }
  AeadImpl impl() const { return s_.impl; }
  bool replace_key(const AeadKey& k) { return s_.replace_key(k); }

 private:
  RecordResult seal_body(std::span<const std::span<const std::uint8_t>> pieces, std::size_t n,
                         std::span<std::uint8_t, kRecordHeaderBytes> header, std::span<std::uint8_t> body);
  DirectionState s_;
};

class OpenState {
 public:
  OpenState(AeadAlg alg, AeadImpl impl, const AeadKey& key, const ChannelConfig& config = {});

  // Reads the length field (header.size() >= 4) and returns in .bytes the
  // size of the whole record, header included, so a transport knows how
  // much to read. Refuses (and dies on) an oversized or malformed length
  // before any body is read.
  RecordResult record_size(std::span<const std::uint8_t> header);

  // Verifies and decrypts one whole record (header included, nothing
  // after it) into out[0, n), n returned in .bytes. In place:
  // out.data() == record.data() + kRecordHeaderBytes is allowed.
  RecordResult open(std::span<const std::uint8_t> record, std::span<std::uint8_t> out);

  // The same with the length field read apart (after record_size()):
  // `body` is exactly the L bytes after the header; the plaintext ends up
  // in body[0, L - 16), so nothing is moved.
  RecordResult open_in_place(std::span<const std::uint8_t, kRecordHeaderBytes> header,
                             std::span<std::uint8_t> body);

  std::uint64_t sequence() const { return s_.seq; }
  bool dead() const { return s_.dead; }
  AeadImpl impl() const { return s_.impl; }
  bool replace_key(const AeadKey& k) { return s_.replace_key(k); }

 private:
  ChannelError check_length(std::uint32_t length);
  RecordResult open_body(std::span<const std::uint8_t, kRecordHeaderBytes> header,
                         std::span<const std::uint8_t> body, std::span<std::uint8_t> out);
  DirectionState s_;
};

// Both directions of one connection.
struct SecureChannel {
  SealState send;
  OpenState receive;
};

}  // namespace sfs
