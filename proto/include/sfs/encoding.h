// encoding.h: text encodings of binary values (base32, hex) and the
// length-checked big-endian reader/writer every wire format here uses.
//
// Contract
//   - base32 is RFC 4648 section 6 with the lowercase alphabet
//     "abcdefghijklmnopqrstuvwxyz234567" and no '=' padding. Decoding is
//     strict: only that alphabet, no padding, no whitespace, and the unused
//     low bits of the last character must be zero, so that every byte string
//     has exactly one text form (names and keys compare as strings).
//   - WireReader never reads past its span; a short read sets a sticky
//     failure flag and yields zeros, so a parser checks ok() once at the end
//     (and wherever it branches on a value).
//   - Pure functions and per-object state only; safe on any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sfs {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

std::string base32_encode(ByteSpan data);
// Decodes exactly; nullopt on any character outside the alphabet or
// non-canonical trailing bits.
std::optional<Bytes> base32_decode(std::string_view text);
// Length of the base32 text for n bytes (no padding).
constexpr std::size_t base32_length(std::size_t n) { return (n * 8 + 4) / 5; }

std::string hex_encode(ByteSpan data);
std::optional<Bytes> hex_decode(std::string_view text);  // lowercase or uppercase

inline ByteSpan as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Printable form of bytes from a peer, for log lines and messages a person
// reads (no terminal or log injection): control characters, DEL and bytes
// above 0x7e become '?', at most `max` characters (then "...").
std::string printable_text(std::string_view s, std::size_t max = 200);

// Constant-time comparison of two equal-length byte strings (sodium_memcmp).
bool equal_ct(ByteSpan a, ByteSpan b);

// Big-endian append-only writer over a growable buffer (cold paths only).
class WireWriter {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void bytes(ByteSpan b) { out_.insert(out_.end(), b.begin(), b.end()); }
  // u8 length + bytes; the caller guarantees b.size() <= 255.
  void bytes8(ByteSpan b);
  Bytes& buffer() { return out_; }
  Bytes take() { return std::move(out_); }

 private:
  Bytes out_;
};

// Big-endian reader over a fixed span. Never reads out of bounds.
class WireReader {
 public:
  explicit WireReader(ByteSpan in) : in_(in) {}
  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  std::uint64_t u64();
  // Next n bytes, or an empty span (and failure) if fewer remain.
  ByteSpan bytes(std::size_t n);
  // u8 length, then that many bytes.
  ByteSpan bytes8();
  // Copies exactly out.size() bytes.
  void copy(std::span<std::uint8_t> out);
  std::size_t remaining() const { return failed_ ? 0 : in_.size() - pos_; }
  bool ok() const { return !failed_; }
  // True if everything was read and nothing is left over.
  bool done() const { return !failed_ && pos_ == in_.size(); }
  void fail() { failed_ = true; }

 private:
  ByteSpan in_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

void store_be32(std::uint8_t* p, std::uint32_t v);
std::uint32_t load_be32(const std::uint8_t* p);
void store_be64(std::uint8_t* p, std::uint64_t v);

// Makes sure sodium_init() ran (thread-safe, idempotent). Every entry point
// that uses libsodium's random generator or CPU dispatch calls it.
void ensure_sodium();

}  // namespace sfs
