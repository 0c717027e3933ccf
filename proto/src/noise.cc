// noise.cc: Noise_*_25519_ChaChaPoly_BLAKE2b building blocks (sfs/noise.h).
#include "sfs/noise.h"

#include <sodium.h>

#include <cstring>

namespace sfs::noise {

namespace {

static_assert(crypto_generichash_BYTES_MAX == kHashLen);

void hash_parts(Hash& out, ByteSpan a, ByteSpan b = {}, ByteSpan c = {}) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kHashLen);
  crypto_generichash_update(&st, a.data(), a.size());
  crypto_generichash_update(&st, b.data(), b.size());
  crypto_generichash_update(&st, c.data(), c.size());
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(&st, sizeof st);
}

// [Noise] 12.3: "the 96-bit nonce is formed by encoding 32 bits of zeros
// followed by little-endian encoding of n".
AeadNonce chachapoly_nonce(std::uint64_t n) {
  AeadNonce out{};
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<std::uint8_t>(n >> (8 * i));
  return out;
}

// [Noise] 5.1: "The maximum n value (2^64-1) is reserved for other use."
constexpr std::uint64_t kMaxNonce = ~std::uint64_t{0};

}  // namespace

void CipherState::wipe() {
  sodium_memzero(k.data(), k.size());
  has_key = false;
  n = 0;
}

void SymmetricState::wipe() {
  cs.wipe();
  sodium_memzero(ck.data(), ck.size());
  sodium_memzero(h.data(), h.size());
}

Hash hmac(ByteSpan key, ByteSpan a, ByteSpan b, ByteSpan c) {
  // [RFC 2104] 2: keys longer than B are hashed first; ours never are
  // (chaining keys are HASHLEN = 64 < 128 bytes).
  std::uint8_t k[kBlockLen] = {};
  Hash kh;
  if (key.size() > kBlockLen) {
    hash_parts(kh, key);
    std::memcpy(k, kh.data(), kh.size());
  } else if (!key.empty()) {
    std::memcpy(k, key.data(), key.size());
  }
  std::uint8_t pad[kBlockLen];
  for (std::size_t i = 0; i < kBlockLen; ++i) pad[i] = k[i] ^ 0x36;  // ipad
  Hash inner;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kHashLen);
  crypto_generichash_update(&st, pad, sizeof pad);
  crypto_generichash_update(&st, a.data(), a.size());
  crypto_generichash_update(&st, b.data(), b.size());
  crypto_generichash_update(&st, c.data(), c.size());
  crypto_generichash_final(&st, inner.data(), inner.size());
  for (std::size_t i = 0; i < kBlockLen; ++i) pad[i] = k[i] ^ 0x5c;  // opad
  Hash out;
  hash_parts(out, ByteSpan(pad, sizeof pad), inner);
  sodium_memzero(k, sizeof k);
  sodium_memzero(pad, sizeof pad);
  sodium_memzero(kh.data(), kh.size());
  sodium_memzero(inner.data(), inner.size());
  sodium_memzero(&st, sizeof st);
  return out;
}

void hkdf2(const Hash& chaining_key, ByteSpan ikm, Hash& out1, Hash& out2) {
  // [Noise] 4.3: temp_key = HMAC-HASH(chaining_key, input_key_material);
  // output1 = HMAC-HASH(temp_key, byte(0x01));
  // output2 = HMAC-HASH(temp_key, output1 || byte(0x02)).
  static constexpr std::uint8_t kOne[1] = {0x01};
  static constexpr std::uint8_t kTwo[1] = {0x02};
  Hash temp_key = hmac(chaining_key, ikm);
  out1 = hmac(temp_key, kOne);
  out2 = hmac(temp_key, out1, kTwo);
  sodium_memzero(temp_key.data(), temp_key.size());
}

bool dh(std::span<std::uint8_t, kDhLen> out, const Key32& secret, ByteSpan peer_public) {
  if (peer_public.size() != kDhLen) return false;
  // crypto_scalarmult fails if the output is all zeros: a low-order peer
  // key, which would make the shared secret known to everyone.
  return crypto_scalarmult(out.data(), secret.data(), peer_public.data()) == 0;
}

SharedSecret::~SharedSecret() { sodium_memzero(data(), size()); }

bool encrypt_with_ad(CipherState& cs, ByteSpan ad, ByteSpan plaintext, Bytes& out) {
  if (!cs.has_key) {
    // [Noise] 5.2 EncryptAndHash: "If k is empty, ... returns plaintext".
    out.insert(out.end(), plaintext.begin(), plaintext.end());
    return true;
  }
  if (cs.n == kMaxNonce) return false;
  const AeadNonce nonce = chachapoly_nonce(cs.n);
  const std::size_t at = out.size();
  out.resize(at + plaintext.size() + kTagLen);
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
      out.data() + at, out.data() + at + plaintext.size(), nullptr, plaintext.data(),
      plaintext.size(), ad.data(), ad.size(), nullptr, nonce.data(), cs.k.data());
  ++cs.n;
  return true;
}

bool decrypt_with_ad(CipherState& cs, ByteSpan ad, ByteSpan ciphertext, Bytes& out) {
  if (!cs.has_key) {
    out.insert(out.end(), ciphertext.begin(), ciphertext.end());
    return true;
  }
  if (cs.n == kMaxNonce || ciphertext.size() < kTagLen) return false;
  const std::size_t n = ciphertext.size() - kTagLen;
  const AeadNonce nonce = chachapoly_nonce(cs.n);
  const std::size_t at = out.size();
  out.resize(at + n);
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
          out.data() + at, nullptr, ciphertext.data(), n, ciphertext.data() + n, ad.data(),
          ad.size(), nonce.data(), cs.k.data()) != 0) {
    out.resize(at);
    return false;
  }
  // [Noise] 5.1: "If an authentication failure occurs ... n is not incremented".
  ++cs.n;
  return true;
}

void initialize_symmetric(SymmetricState& ss, std::string_view protocol_name) {
  // [Noise] 5.2: "If protocol_name is less than or equal to HASHLEN bytes in
  // length, sets h equal to protocol_name with zero bytes appended to make
  // HASHLEN bytes. Otherwise sets h = HASH(protocol_name)." "Sets ck = h."
  ensure_sodium();
  ss.wipe();
  if (protocol_name.size() <= kHashLen) {
    std::memcpy(ss.h.data(), protocol_name.data(), protocol_name.size());
  } else {
    hash_parts(ss.h, as_bytes(protocol_name));
  }
  ss.ck = ss.h;
}

void mix_hash(SymmetricState& ss, ByteSpan data) {
  // [Noise] 5.2: "Sets h = HASH(h || data)."
  Hash next;
  hash_parts(next, ss.h, data);
  ss.h = next;
}

void mix_key(SymmetricState& ss, ByteSpan ikm) {
  // [Noise] 5.2: "Sets ck, temp_k = HKDF(ck, input_key_material, 2). If
  // HASHLEN is 64, then truncates temp_k to 32 bytes. Calls
  // InitializeKey(temp_k)."
  Hash ck, temp_k;
  hkdf2(ss.ck, ikm, ck, temp_k);
  ss.ck = ck;
  std::memcpy(ss.cs.k.data(), temp_k.data(), ss.cs.k.size());
  ss.cs.has_key = true;
  ss.cs.n = 0;
  sodium_memzero(ck.data(), ck.size());
  sodium_memzero(temp_k.data(), temp_k.size());
}

bool encrypt_and_hash(SymmetricState& ss, ByteSpan plaintext, Bytes& out) {
  // [Noise] 5.2: "Sets ciphertext = EncryptWithAd(h, plaintext), calls
  // MixHash(ciphertext), and returns ciphertext."
  const std::size_t at = out.size();
  if (!encrypt_with_ad(ss.cs, ss.h, plaintext, out)) return false;
  mix_hash(ss, ByteSpan(out).subspan(at));
  return true;
}

bool decrypt_and_hash(SymmetricState& ss, ByteSpan ciphertext, Bytes& out) {
  // [Noise] 5.2: "Sets plaintext = DecryptWithAd(h, ciphertext), calls
  // MixHash(ciphertext), and returns plaintext."
  if (!decrypt_with_ad(ss.cs, ss.h, ciphertext, out)) return false;
  mix_hash(ss, ciphertext);
  return true;
}

void split(const SymmetricState& ss, AeadKey& k1, AeadKey& k2) {
  // [Noise] 5.2: "Sets temp_k1, temp_k2 = HKDF(ck, zerolen, 2). If HASHLEN
  // is 64, then truncates temp_k1 and temp_k2 to 32 bytes."
  Hash t1, t2;
  hkdf2(ss.ck, {}, t1, t2);
  std::memcpy(k1.data(), t1.data(), k1.size());
  std::memcpy(k2.data(), t2.data(), k2.size());
  sodium_memzero(t1.data(), t1.size());
  sodium_memzero(t2.data(), t2.size());
}

}  // namespace sfs::noise
