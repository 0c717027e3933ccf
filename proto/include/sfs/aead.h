// aead.h: the two record AEADs, each in two implementations.
//
// Contract
//   - Algorithms: ChaCha20-Poly1305 as in [RFC 8439] 2.8 (IETF variant,
//     96-bit nonce) and AES-256-GCM as in [NIST SP 800-38D] with a 96-bit
//     IV. Both take a 32-byte key and produce a 16-byte tag. Wire ids are
//     fixed by docs/protocol.md ("Cipher ids").
//   - Implementations: libsodium and OpenSSL libcrypto (EVP). For a given
//     key, nonce, associated data and plaintext they produce the same bytes;
//     tests/proto/aead_test.cc cross-checks that and the published KATs.
//   - An Aead object holds one key. It is not thread-safe: use one per
//     direction per connection, under that connection's color. Different
//     objects share nothing, so any number may run in parallel.
//   - seal()/open() work on caller buffers and never allocate. The OpenSSL
//     implementation keeps one EVP_CIPHER_CTX, keyed once; each call only
//     sets the nonce. In-place use (out.data() == in.data()) is allowed;
//     other overlap is not.
//   - The key is wiped (sodium_memzero / EVP_CIPHER_CTX_free, which
//     cleanses) when the object is destroyed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace sfs {

enum class AeadAlg : std::uint8_t {
  kChaCha20Poly1305 = 1,  // wire id 1
  kAes256Gcm = 2,         // wire id 2
};

enum class AeadImpl : std::uint8_t { kSodium, kOpenSsl };

// Which implementation to use; kAuto picks the faster one on this CPU.
enum class AeadImplChoice : std::uint8_t { kAuto, kSodium, kOpenSsl };

inline constexpr std::size_t kAeadKeyBytes = 32;
inline constexpr std::size_t kAeadNonceBytes = 12;
inline constexpr std::size_t kAeadTagBytes = 16;
// Both EVP and our record format bound one message to < 2^31 bytes.
inline constexpr std::size_t kAeadMaxMessageBytes = (std::size_t{1} << 31) - 1;

using AeadKey = std::array<std::uint8_t, kAeadKeyBytes>;
using AeadNonce = std::array<std::uint8_t, kAeadNonceBytes>;

// A message given as pieces (Aead::seal_pieces, SealState::seal_pieces):
// its length.
inline std::size_t total_size(std::span<const std::span<const std::uint8_t>> pieces) {
  std::size_t n = 0;
  for (auto p : pieces) n += p.size();
  return n;
}

class Aead {
 public:
  virtual ~Aead() = default;
  virtual AeadAlg alg() const = 0;
  virtual AeadImpl impl() const = 0;

  // Encrypts `plaintext` into out[0, n) and writes the tag to
  // out[n, n + 16), where n = plaintext.size(). Requires
  // out.size() >= n + 16. Returns false only if the library fails.
  virtual bool seal(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
                    std::span<const std::uint8_t> plaintext, std::span<std::uint8_t> out) = 0;

  // seal() of the concatenation of `pieces` (n = the sum of their sizes),
  // read where they are: a record's header and a READ's data need not be
  // copied together first. None of the pieces may overlap out. OpenSSL
  // feeds EVP one piece at a time; libsodium has no incremental AEAD, so
  // its implementation copies the pieces into out and seals in place.
  virtual bool seal_pieces(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
                           std::span<const std::span<const std::uint8_t>> pieces,
                           std::span<std::uint8_t> out);

  // Verifies and decrypts ciphertext||tag into out[0, n), n =
  // sealed.size() - 16. Requires sealed.size() >= 16 and out.size() >= n.
  // Returns false if the tag does not verify; out is then zeroed.
  virtual bool open(const AeadNonce& nonce, std::span<const std::uint8_t> ad,
                    std::span<const std::uint8_t> sealed, std::span<std::uint8_t> out) = 0;
};

// False for libsodium AES-256-GCM on a CPU without AES-NI and PCLMUL
// (libsodium has no portable AES-GCM). Everything else is always there.
bool aead_available(AeadAlg alg, AeadImpl impl);

// Returns nullptr if !aead_available(alg, impl).
std::unique_ptr<Aead> make_aead(AeadAlg alg, AeadImpl impl, const AeadKey& key);

// kSodium/kOpenSsl: that one (if available, else the other). kAuto: the
// faster one for `alg` on this CPU, measured once per process on first use
// (a few 64 KiB seals with each, about 1-2 ms), then cached.
AeadImpl choose_aead_impl(AeadAlg alg, AeadImplChoice choice = AeadImplChoice::kAuto);
// The faster of the two algorithms on this CPU (each with its faster
// implementation), measured once per process (a few milliseconds).
AeadAlg faster_aead();

// Seal throughput in bytes per CPU-second (this thread's CPU time) of one
// implementation, over `rounds` seals of `record_bytes` (what kAuto uses).
double measure_aead(AeadAlg alg, AeadImpl impl, std::size_t record_bytes, int rounds);

std::string_view aead_name(AeadAlg alg);    // "chacha20-poly1305", "aes-256-gcm"
std::string_view aead_impl_name(AeadImpl impl);  // "sodium", "openssl"
std::optional<AeadAlg> aead_from_wire_id(std::uint8_t id);
std::optional<AeadAlg> aead_from_name(std::string_view name);
std::optional<AeadImplChoice> aead_impl_choice_from_name(std::string_view name);  // auto|sodium|openssl

}  // namespace sfs
