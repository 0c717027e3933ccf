// aead_sodium.cc: the libsodium implementation of the record AEADs.
#include <sodium.h>

#include <cstring>
#include <new>

#include "aead_impl.h"
#include "sfs/encoding.h"

namespace sfs::detail {

namespace {

static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == kAeadKeyBytes);
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == kAeadNonceBytes);
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == kAeadTagBytes);
static_assert(crypto_aead_aes256gcm_KEYBYTES == kAeadKeyBytes);
static_assert(crypto_aead_aes256gcm_NPUBBYTES == kAeadNonceBytes);
static_assert(crypto_aead_aes256gcm_ABYTES == kAeadTagBytes);

class SodiumChaCha final : public Aead {
 public:
  explicit SodiumChaCha(const AeadKey& key) : key_(key) {}
  ~SodiumChaCha() override { sodium_memzero(key_.data(), key_.size()); }
  AeadAlg alg() const override { return AeadAlg::kChaCha20Poly1305; }
  AeadImpl impl() const override { return AeadImpl::kSodium; }

  bool seal(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
            std::span<const std::uint8_t> pt, std::span<std::uint8_t> out) override {
    const std::size_t n = pt.size();
    if (out.size() < n + kAeadTagBytes || n > kAeadMaxMessageBytes) return false;
    return crypto_aead_chacha20poly1305_ietf_encrypt_detached(
               out.data(), out.data() + n, nullptr, pt.data(), n, ad.data(), ad.size(),
               nullptr, nonce.data(), key_.data()) == 0;
  }

  bool open(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
            std::span<const std::uint8_t> sealed, std::span<std::uint8_t> out) override {
    if (sealed.size() < kAeadTagBytes) return false;
    const std::size_t n = sealed.size() - kAeadTagBytes;
    if (out.size() < n) return false;
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            out.data(), nullptr, sealed.data(), n, sealed.data() + n, ad.data(), ad.size(),
            nonce.data(), key_.data()) != 0) {
      sodium_memzero(out.data(), n);
      return false;
    }
    return true;
  }

 private:
  AeadKey key_;
};

class SodiumAesGcm final : public Aead {
 public:
  explicit SodiumAesGcm(const AeadKey& key) {
    // Expands the AES key schedule and the GHASH key once ("beforenm").
    crypto_aead_aes256gcm_beforenm(&state_, key.data());
  }
  ~SodiumAesGcm() override { sodium_memzero(&state_, sizeof state_); }
  AeadAlg alg() const override { return AeadAlg::kAes256Gcm; }
  AeadImpl impl() const override { return AeadImpl::kSodium; }

  bool seal(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
            std::span<const std::uint8_t> pt, std::span<std::uint8_t> out) override {
    const std::size_t n = pt.size();
    if (out.size() < n + kAeadTagBytes || n > kAeadMaxMessageBytes) return false;
    return crypto_aead_aes256gcm_encrypt_detached_afternm(
               out.data(), out.data() + n, nullptr, pt.data(), n, ad.data(), ad.size(), nullptr,
               nonce.data(), &state_) == 0;
  }

  bool open(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
            std::span<const std::uint8_t> sealed, std::span<std::uint8_t> out) override {
    if (sealed.size() < kAeadTagBytes) return false;
    const std::size_t n = sealed.size() - kAeadTagBytes;
    if (out.size() < n) return false;
    if (crypto_aead_aes256gcm_decrypt_detached_afternm(out.data(), nullptr, sealed.data(), n,
                                                       sealed.data() + n, ad.data(), ad.size(),
                                                       nonce.data(), &state_) != 0) {
      sodium_memzero(out.data(), n);
      return false;
    }
    return true;
  }

 private:
  crypto_aead_aes256gcm_state state_;  // 16-byte aligned; operator new honours it
};

}  // namespace

bool sodium_aes_gcm_available() {
  ensure_sodium();
  return crypto_aead_aes256gcm_is_available() != 0;
}

std::unique_ptr<Aead> make_sodium_aead(AeadAlg alg, const AeadKey& key) {
  ensure_sodium();
  switch (alg) {
    case AeadAlg::kChaCha20Poly1305:
      return std::make_unique<SodiumChaCha>(key);
    case AeadAlg::kAes256Gcm:
      if (!sodium_aes_gcm_available()) return nullptr;
      return std::make_unique<SodiumAesGcm>(key);
  }
  return nullptr;
}

}  // namespace sfs::detail
