// noise.h: the Noise Protocol Framework pieces the SFS handshake is built
// from, for Noise_NX_25519_ChaChaPoly_BLAKE2b.
//
// Contract
//   - Implements [Noise] = "The Noise Protocol Framework", revision 34
//     (2018-07-11), sections 4 (crypto functions), 5.1 (CipherState) and 5.2
//     (SymmetricState), with DH = 25519 (12.1), cipher = ChaChaPoly (12.3),
//     hash = BLAKE2b (12.5). The message patterns themselves live in
//     handshake.cc. Checked against an interop vector in noise_test.cc.
//   - State is in plain structs in the style of WireGuard's noise.c; every
//     key-bearing struct has a wipe() and is wiped by its owner when done.
//   - Handshake-time only (never per record); not thread-safe per object.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "sfs/aead.h"
#include "sfs/encoding.h"
#include "sfs/keys.h"

namespace sfs::noise {

// [Noise] 12.5: "HASHLEN = 64", "BLOCKLEN = 128" for BLAKE2b.
inline constexpr std::size_t kHashLen = 64;
inline constexpr std::size_t kBlockLen = 128;
// [Noise] 4.1: "DHLEN = 32" for 25519.
inline constexpr std::size_t kDhLen = 32;
inline constexpr std::size_t kTagLen = 16;

using Hash = std::array<std::uint8_t, kHashLen>;

// [Noise] 5.1: "k: A cipher key of 32 bytes (which may be empty)",
// "n: An 8-byte (64-bit) unsigned integer nonce".
struct CipherState {
  AeadKey k{};
  bool has_key = false;
  std::uint64_t n = 0;
  void wipe();
};

// [Noise] 5.2: "ck: A chaining key of HASHLEN bytes", "h: A hash output of
// HASHLEN bytes".
struct SymmetricState {
  CipherState cs;
  Hash ck{};
  Hash h{};
  void wipe();
};

// HMAC-BLAKE2b ([RFC 2104] with B = 128, L = 64), over the concatenation
// of up to three inputs.
Hash hmac(ByteSpan key, ByteSpan a, ByteSpan b = {}, ByteSpan c = {});
// [Noise] 4.3 HKDF with two outputs.
void hkdf2(const Hash& chaining_key, ByteSpan ikm, Hash& out1, Hash& out2);

// [Noise] 4.1 DH(): X25519. Returns false if the result is all zeros
// (peer sent a low-order point); the handshake must then abort.
bool dh(std::span<std::uint8_t, kDhLen> out, const Key32& secret, ByteSpan peer_public);
// A DH output that wipes itself on every path out of its scope (a failed
// check after dh() must not leave it on the stack).
struct SharedSecret : std::array<std::uint8_t, kDhLen> {
  SharedSecret() : std::array<std::uint8_t, kDhLen>{} {}
  ~SharedSecret();
  SharedSecret(const SharedSecret&) = delete;
  SharedSecret& operator=(const SharedSecret&) = delete;
};

// [Noise] 5.1 EncryptWithAd / DecryptWithAd (ChaChaPoly, nonce = 32 zero
// bits || little-endian n, [Noise] 12.3). Append to `out`. False on
// authentication failure or nonce exhaustion.
bool encrypt_with_ad(CipherState& cs, ByteSpan ad, ByteSpan plaintext, Bytes& out);
bool decrypt_with_ad(CipherState& cs, ByteSpan ad, ByteSpan ciphertext, Bytes& out);

// [Noise] 5.2.
void initialize_symmetric(SymmetricState& ss, std::string_view protocol_name);
void mix_hash(SymmetricState& ss, ByteSpan data);
void mix_key(SymmetricState& ss, ByteSpan ikm);
bool encrypt_and_hash(SymmetricState& ss, ByteSpan plaintext, Bytes& out);
bool decrypt_and_hash(SymmetricState& ss, ByteSpan ciphertext, Bytes& out);
// Returns the two truncated keys: first for initiator -> responder.
void split(const SymmetricState& ss, AeadKey& k1, AeadKey& k2);

}  // namespace sfs::noise
