// encoding.cc: base32 (RFC 4648 section 6, lowercase, unpadded), hex, and
// the big-endian wire reader/writer.
#include "sfs/encoding.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

namespace sfs {

namespace {

// [RFC 4648] 6: "The Base 32 Alphabet", lowercased.
constexpr char kBase32Alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int base32_value(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string base32_encode(ByteSpan data) {
  std::string out;
  out.reserve(base32_length(data.size()));
  std::uint32_t acc = 0;  // holds at most 12 pending bits
  int bits = 0;
  for (std::uint8_t b : data) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kBase32Alphabet[(acc >> bits) & 31]);
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0) out.push_back(kBase32Alphabet[(acc << (5 - bits)) & 31]);
  return out;
}

std::optional<Bytes> base32_decode(std::string_view text) {
  // A length of 1, 3 or 6 (mod 8) characters cannot come from whole bytes.
  const std::size_t rem = text.size() % 8;
  if (rem == 1 || rem == 3 || rem == 6) return std::nullopt;
  Bytes out;
  out.reserve(text.size() * 5 / 8);
  std::uint32_t acc = 0;
  int bits = 0;
  // The text may be a secret key: a refusal must not leave the bytes
  // decoded so far in freed memory.
  const auto refuse = [&]() -> std::optional<Bytes> {
    sodium_memzero(out.data(), out.size());
    sodium_memzero(&acc, sizeof acc);
    return std::nullopt;
  };
  for (char c : text) {
    const int v = base32_value(c);
    if (v < 0) return refuse();
    acc = (acc << 5) | static_cast<std::uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  // Leftover bits must be zero: one text form per byte string.
  if (acc != 0) return refuse();
  return out;
}

std::string hex_encode(ByteSpan data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (std::uint8_t b : data) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::optional<Bytes> hex_decode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  Bytes out(text.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(text[2 * i]);
    const int lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

bool equal_ct(ByteSpan a, ByteSpan b) {
  if (a.size() != b.size()) return false;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void store_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t load_be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 |
         std::uint32_t{p[2]} << 8 | std::uint32_t{p[3]};
}

void store_be64(std::uint8_t* p, std::uint64_t v) {
  store_be32(p, static_cast<std::uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<std::uint32_t>(v));
}

void WireWriter::u16(std::uint16_t v) {
  out_.push_back(static_cast<std::uint8_t>(v >> 8));
  out_.push_back(static_cast<std::uint8_t>(v));
}

void WireWriter::u32(std::uint32_t v) {
  std::uint8_t b[4];
  store_be32(b, v);
  out_.insert(out_.end(), b, b + 4);
}

void WireWriter::u64(std::uint64_t v) {
  std::uint8_t b[8];
  store_be64(b, v);
  out_.insert(out_.end(), b, b + 8);
}

void WireWriter::bytes8(ByteSpan b) {
  u8(static_cast<std::uint8_t>(b.size()));
  bytes(b);
}

ByteSpan WireReader::bytes(std::size_t n) {
  if (failed_ || in_.size() - pos_ < n) {
    failed_ = true;
    return {};
  }
  ByteSpan s = in_.subspan(pos_, n);
  pos_ += n;
  return s;
}

std::uint8_t WireReader::u8() {
  ByteSpan s = bytes(1);
  return s.empty() ? 0 : s[0];
}

std::uint16_t WireReader::u16() {
  ByteSpan s = bytes(2);
  return s.empty() ? 0 : static_cast<std::uint16_t>(s[0] << 8 | s[1]);
}

std::uint32_t WireReader::u32() {
  ByteSpan s = bytes(4);
  return s.empty() ? 0 : load_be32(s.data());
}

std::uint64_t WireReader::u64() {
  ByteSpan s = bytes(8);
  return s.empty() ? 0
                   : std::uint64_t{load_be32(s.data())} << 32 | load_be32(s.data() + 4);
}

ByteSpan WireReader::bytes8() { return bytes(u8()); }

void WireReader::copy(std::span<std::uint8_t> out) {
  if (out.empty()) return;
  ByteSpan s = bytes(out.size());
  if (s.empty() && !out.empty()) {
    std::memset(out.data(), 0, out.size());
    return;
  }
  std::memcpy(out.data(), s.data(), s.size());
}

void ensure_sodium() {
  // sodium_init() is thread-safe and idempotent; the static makes the common
  // case a single load. It fails only if the OS has no random source.
  static const bool ready = [] {
    if (sodium_init() < 0) std::abort();
    return true;
  }();
  (void)ready;
}

std::string printable_text(std::string_view s, std::size_t max) {
  std::string out;
  for (char ch : s.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(c < 0x20 || c >= 0x7f ? '?' : ch);
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace sfs
