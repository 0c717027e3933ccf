// aead_openssl.cc: the OpenSSL libcrypto (EVP) implementation of the record
// AEADs. One EVP_CIPHER_CTX per operation (seal, open), keyed once in the
// constructor; each record only sets the nonce, so the per-record cost is
// the cipher itself (no key schedule, no provider fetch, no allocation).
#include <openssl/evp.h>
#include <sodium.h>

#include <climits>
#include <cstring>

#include "aead_impl.h"

namespace sfs::detail {

namespace {

const EVP_CIPHER* evp_cipher(AeadAlg alg) {
  switch (alg) {
    case AeadAlg::kChaCha20Poly1305:
      return EVP_chacha20_poly1305();
    case AeadAlg::kAes256Gcm:
      return EVP_aes_256_gcm();
  }
  return nullptr;
}

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }  // cleanses the key
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

class EvpAead final : public Aead {
 public:
  explicit EvpAead(AeadAlg alg) : alg_(alg) {}

  // Keys both contexts; false if OpenSSL refuses (then the object is unusable).
  bool init(const AeadKey& key) {
    const EVP_CIPHER* cipher = evp_cipher(alg_);
    seal_.reset(EVP_CIPHER_CTX_new());
    open_.reset(EVP_CIPHER_CTX_new());
    if (!cipher || !seal_ || !open_) return false;
    // A 96-bit IV is the default for both ciphers in OpenSSL; set it anyway
    // so the nonce length is stated here, not assumed.
    return EVP_EncryptInit_ex(seal_.get(), cipher, nullptr, nullptr, nullptr) == 1 &&
           EVP_CIPHER_CTX_ctrl(seal_.get(), EVP_CTRL_AEAD_SET_IVLEN,
                               static_cast<int>(kAeadNonceBytes), nullptr) == 1 &&
           EVP_EncryptInit_ex(seal_.get(), nullptr, nullptr, key.data(), nullptr) == 1 &&
           EVP_DecryptInit_ex(open_.get(), cipher, nullptr, nullptr, nullptr) == 1 &&
           EVP_CIPHER_CTX_ctrl(open_.get(), EVP_CTRL_AEAD_SET_IVLEN,
                               static_cast<int>(kAeadNonceBytes), nullptr) == 1 &&
           EVP_DecryptInit_ex(open_.get(), nullptr, nullptr, key.data(), nullptr) == 1;
  }

  AeadAlg alg() const override { return alg_; }
  AeadImpl impl() const override { return AeadImpl::kOpenSsl; }

  bool seal(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
            std::span<const std::uint8_t> pt, std::span<std::uint8_t> out) override {
    const std::size_t n = pt.size();
    if (out.size() < n + kAeadTagBytes || n > kAeadMaxMessageBytes || ad.size() > INT_MAX)
      return false;
    EVP_CIPHER_CTX* c = seal_.get();
    int len = 0;
    int tail = 0;
    if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce.data()) != 1) return false;
    int ad_len = 0;  // EVP reports the AAD length here; not output bytes
    if (!ad.empty() &&
        EVP_EncryptUpdate(c, nullptr, &ad_len, ad.data(), static_cast<int>(ad.size())) != 1)
      return false;
    if (n > 0 && EVP_EncryptUpdate(c, out.data(), &len, pt.data(), static_cast<int>(n)) != 1)
      return false;
    if (EVP_EncryptFinal_ex(c, out.data() + len, &tail) != 1) return false;
    if (static_cast<std::size_t>(len) + static_cast<std::size_t>(tail) != n) return false;
    return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kAeadTagBytes),
                               out.data() + n) == 1;
  }

  bool seal_pieces(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
                   std::span<const std::span<const std::uint8_t>> pieces,
                   std::span<std::uint8_t> out) override {
    const std::size_t n = total_size(pieces);
    if (out.size() < n + kAeadTagBytes || n > kAeadMaxMessageBytes || ad.size() > INT_MAX) return false;
    EVP_CIPHER_CTX* c = seal_.get();
    if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce.data()) != 1) return false;
    int ad_len = 0;
    if (!ad.empty() && EVP_EncryptUpdate(c, nullptr, &ad_len, ad.data(), static_cast<int>(ad.size())) != 1)
      return false;
    // GCM and ChaCha20-Poly1305 are stream modes: EVP takes pieces of any
    // length and writes as many bytes as it was given (counted anyway).
    std::size_t written = 0;
    for (auto p : pieces) {
      if (p.empty()) continue;
      int len = 0;
      if (EVP_EncryptUpdate(c, out.data() + written, &len, p.data(), static_cast<int>(p.size())) != 1)
        return false;
      written += static_cast<std::size_t>(len);
    }
    int tail = 0;
    if (EVP_EncryptFinal_ex(c, out.data() + written, &tail) != 1) return false;
    if (written + static_cast<std::size_t>(tail) != n) return false;
    return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kAeadTagBytes), out.data() + n) == 1;
  }

  bool open(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
            std::span<const std::uint8_t> sealed, std::span<std::uint8_t> out) override {
    if (sealed.size() < kAeadTagBytes || ad.size() > INT_MAX) return false;
    const std::size_t n = sealed.size() - kAeadTagBytes;
    if (out.size() < n || n > kAeadMaxMessageBytes) return false;
    // EVP wants a writable tag buffer; copy it out first (in-place open
    // overwrites nothing past n, but be independent of that).
    std::uint8_t tag[kAeadTagBytes];
    std::memcpy(tag, sealed.data() + n, kAeadTagBytes);
    EVP_CIPHER_CTX* c = open_.get();
    int len = 0;
    int ad_len = 0;
    int tail = 0;
    bool ok = EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
              (ad.empty() || EVP_DecryptUpdate(c, nullptr, &ad_len, ad.data(),
                                               static_cast<int>(ad.size())) == 1) &&
              (n == 0 ||
               EVP_DecryptUpdate(c, out.data(), &len, sealed.data(), static_cast<int>(n)) == 1) &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kAeadTagBytes),
                                  tag) == 1;
    if (ok) {
      ok = EVP_DecryptFinal_ex(c, out.data() + len, &tail) == 1;  // verifies the tag
    }
    if (!ok) {
      // GCM and ChaCha20-Poly1305 in EVP decrypt before the tag is checked:
      // never leave unauthenticated plaintext in the caller's buffer.
      sodium_memzero(out.data(), n);
      return false;
    }
    return true;
  }

 private:
  AeadAlg alg_;
  CtxPtr seal_;
  CtxPtr open_;
};

}  // namespace

std::unique_ptr<Aead> make_openssl_aead(AeadAlg alg, const AeadKey& key) {
  auto a = std::make_unique<EvpAead>(alg);
  if (!a->init(key)) return nullptr;
  return a;
}

}  // namespace sfs::detail
