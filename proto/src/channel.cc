// channel.cc: sealing and opening records (see sfs/channel.h).
#include "sfs/channel.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "sfs/encoding.h"

namespace sfs {

namespace {

// docs/protocol.md, "Record format": nonce = 0x00000000 || u64be(seq).
AeadNonce record_nonce(std::uint64_t seq) {
  AeadNonce n{};
  store_be64(n.data() + 4, seq);
  return n;
}

constexpr std::string_view kRekeyTag = "sfs rekey v1";

}  // namespace

std::string_view describe(ChannelError e) {
  switch (e) {
    case ChannelError::kOk:
      return "ok";
    case ChannelError::kDead:
      return "channel already failed; no further records";
    case ChannelError::kExhausted:
      return "record sequence limit reached; the connection must be re-established";
    case ChannelError::kBufferTooSmall:
      return "output buffer too small for the record";
    case ChannelError::kTruncated:
      return "record truncated: fewer bytes than its length field announces";
    case ChannelError::kMalformed:
      return "malformed record: length too small for a tag, or trailing bytes";
    case ChannelError::kOversized:
      return "record larger than the configured maximum";
    case ChannelError::kTampered:
      return "record failed authentication (altered, replayed, reordered, or wrong key)";
    case ChannelError::kCryptoFailure:
      return "crypto library failure";
  }
  return "unknown channel error";
}

DirectionState::DirectionState(AeadAlg a, AeadImpl i, const AeadKey& k, const ChannelConfig& c)
    : alg(a), impl(i), key(k), aead(make_aead(a, i, k)), config(c) {
  config.max_plaintext = std::min(config.max_plaintext, kHardMaxRecordPlaintext);
  config.rekey_interval_log2 = std::clamp(config.rekey_interval_log2, 1u, 63u);
  if (!aead) kill(ChannelError::kCryptoFailure);
}

DirectionState::~DirectionState() { sodium_memzero(key.data(), key.size()); }

ChannelError DirectionState::kill(ChannelError why) {
  dead = true;
  sodium_memzero(key.data(), key.size());
  aead.reset();
  return why;
}

bool DirectionState::advance_epoch() {
  const std::uint64_t want = seq >> config.rekey_interval_log2;
  if (want == epoch) return true;
  while (epoch < want) {
    // key' = BLAKE2b-256(key = key, msg = "sfs rekey v1" || u64be(first seq
    // of the new epoch)). One-way: a later key does not reveal earlier ones.
    ++epoch;
    std::uint8_t msg[kRekeyTag.size() + 8];
    std::memcpy(msg, kRekeyTag.data(), kRekeyTag.size());
    store_be64(msg + kRekeyTag.size(), epoch << config.rekey_interval_log2);
    AeadKey next;
    crypto_generichash(next.data(), next.size(), msg, sizeof msg, key.data(), key.size());
    key = next;
    sodium_memzero(next.data(), next.size());
  }
  aead = make_aead(alg, impl, key);
  return aead != nullptr;
}

bool DirectionState::replace_key(const AeadKey& k) {
  if (dead) return false;
  key = k;
  aead = make_aead(alg, impl, key);
  if (!aead) kill(ChannelError::kCryptoFailure);
  return !dead;
}

SealState::SealState(AeadAlg alg, AeadImpl impl, const AeadKey& key, const ChannelConfig& config)
    : s_(alg, impl, key, config) {}

RecordResult SealState::seal(std::span<const std::uint8_t> plaintext,
                             std::span<std::uint8_t> out) {
  return seal_pieces({&plaintext, 1}, out);
}

RecordResult SealState::seal_pieces(std::span<const std::span<const std::uint8_t>> pieces,
                                    std::span<std::uint8_t> out) {
  if (s_.dead) return {ChannelError::kDead};
  const std::size_t n = total_size(pieces);
  if (out.size() < sealed_size(n)) return {s_.kill(ChannelError::kBufferTooSmall)};
  const RecordResult r = seal_body(pieces, n, out.first<kRecordHeaderBytes>(), out.subspan(kRecordHeaderBytes));
  return r.ok() ? RecordResult{ChannelError::kOk, kRecordHeaderBytes + r.bytes} : r;
}

RecordResult SealState::seal_in_place(std::span<std::uint8_t> buf, std::size_t n,
                                      std::span<std::uint8_t, kRecordHeaderBytes> header) {
  if (s_.dead) return {ChannelError::kDead};
  if (n > buf.size()) return {s_.kill(ChannelError::kBufferTooSmall)};
  const std::span<const std::uint8_t> plaintext = buf.first(n);
  return seal_body({&plaintext, 1}, n, header, buf);
}

// Writes the length field to `header` and ciphertext || tag to `body`
// (one piece may start at body.data(): in place). n: the pieces' total size.
RecordResult SealState::seal_body(std::span<const std::span<const std::uint8_t>> pieces, std::size_t n,
                                  std::span<std::uint8_t, kRecordHeaderBytes> header,
                                  std::span<std::uint8_t> body) {
  if (s_.dead) return {ChannelError::kDead};
  if (n > s_.config.max_plaintext) return {s_.kill(ChannelError::kOversized)};
  if (body.size() < n + kAeadTagBytes) return {s_.kill(ChannelError::kBufferTooSmall)};
  // "Counters refuse to wrap": the last sequence number is never used.
  if (s_.seq >= s_.config.max_records || s_.seq == ~std::uint64_t{0})
    return {s_.kill(ChannelError::kExhausted)};
  if (!s_.advance_epoch()) return {s_.kill(ChannelError::kCryptoFailure)};

  store_be32(header.data(), static_cast<std::uint32_t>(n + kAeadTagBytes));
  const AeadNonce nonce = record_nonce(s_.seq);
  const bool ok = pieces.size() == 1 ? s_.aead->seal(nonce, header, pieces[0], body)
                                     : s_.aead->seal_pieces(nonce, header, pieces, body);
  if (!ok) return {s_.kill(ChannelError::kCryptoFailure)};
  ++s_.seq;
  return {ChannelError::kOk, n + kAeadTagBytes};
}

OpenState::OpenState(AeadAlg alg, AeadImpl impl, const AeadKey& key, const ChannelConfig& config)
    : s_(alg, impl, key, config) {}

ChannelError OpenState::check_length(std::uint32_t length) {
  if (length < kAeadTagBytes) return s_.kill(ChannelError::kMalformed);
  if (length - kAeadTagBytes > s_.config.max_plaintext) return s_.kill(ChannelError::kOversized);
  return ChannelError::kOk;
}

RecordResult OpenState::record_size(std::span<const std::uint8_t> header) {
  if (s_.dead) return {ChannelError::kDead};
  if (header.size() < kRecordHeaderBytes) return {s_.kill(ChannelError::kTruncated)};
  const std::uint32_t length = load_be32(header.data());
  if (ChannelError e = check_length(length); e != ChannelError::kOk) return {e};
  return {ChannelError::kOk, kRecordHeaderBytes + std::size_t{length}};
}

RecordResult OpenState::open(std::span<const std::uint8_t> record, std::span<std::uint8_t> out) {
  if (s_.dead) return {ChannelError::kDead};
  if (record.size() < kRecordHeaderBytes) return {s_.kill(ChannelError::kTruncated)};
  return open_body(record.first<kRecordHeaderBytes>(), record.subspan(kRecordHeaderBytes), out);
}

RecordResult OpenState::open_in_place(std::span<const std::uint8_t, kRecordHeaderBytes> header,
                                      std::span<std::uint8_t> body) {
  return open_body(header, body, body);
}

// `body` is what followed the 4 header bytes; `out` may equal body.data().
RecordResult OpenState::open_body(std::span<const std::uint8_t, kRecordHeaderBytes> header,
                                  std::span<const std::uint8_t> body,
                                  std::span<std::uint8_t> out) {
  if (s_.dead) return {ChannelError::kDead};
  const std::uint32_t length = load_be32(header.data());
  if (ChannelError e = check_length(length); e != ChannelError::kOk) return {e};
  if (body.size() < length) return {s_.kill(ChannelError::kTruncated)};
  if (body.size() > length) return {s_.kill(ChannelError::kMalformed)};
  const std::size_t n = length - kAeadTagBytes;
  if (out.size() < n) return {s_.kill(ChannelError::kBufferTooSmall)};
  if (s_.seq >= s_.config.max_records || s_.seq == ~std::uint64_t{0})
    return {s_.kill(ChannelError::kExhausted)};
  if (!s_.advance_epoch()) return {s_.kill(ChannelError::kCryptoFailure)};

  const AeadNonce nonce = record_nonce(s_.seq);
  if (!s_.aead->open(nonce, header, body, out)) return {s_.kill(ChannelError::kTampered)};
  ++s_.seq;
  return {ChannelError::kOk, n};
}

}  // namespace sfs
