// keys.h: long-term keys of servers and users, and their files.
//
// Contract
//   - A server has two independent long-term key pairs: X25519 for key
//     agreement (the Noise static key `s`, see handshake.h) and Ed25519 for
//     signing (it signs each handshake transcript). Both public keys go into
//     the HOSTID (names.h). Two keys rather than one Ed25519 key converted to
//     X25519: no key is used by two algorithms, at the cost of 32 more bytes.
//   - A user has one Ed25519 key pair; it signs logins (login.h).
//   - ServerKey and UserKey hold secrets: they are move-only and wipe their
//     secret bytes (sodium_memzero) when destroyed or moved from.
//   - Key files are text, one header line naming kind and version, then
//     `name value` lines; values are base32 (encoding.h). Private key files
//     are created with mode 0600 and O_EXCL (never overwrite) and are refused
//     on read if group or others may read them. The format is in
//     docs/protocol.md, section "Keys".
//   - Everything here is safe to call from any thread; objects are not
//     shared between threads by this library.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sfs/encoding.h"
#include "sfs/result.h"

namespace sfs {

inline constexpr std::size_t kKeyBytes = 32;        // X25519 and Ed25519 keys
inline constexpr std::size_t kSignatureBytes = 64;  // Ed25519 signature
using Key32 = std::array<std::uint8_t, kKeyBytes>;
using Signature = std::array<std::uint8_t, kSignatureBytes>;

struct ServerPublicKey {
  Key32 x25519{};
  Key32 ed25519{};
  bool operator==(const ServerPublicKey&) const = default;
};

struct UserPublicKey {
  Key32 ed25519{};
  bool operator==(const UserPublicKey&) const = default;
};

// What a handshake needs of a server's key: the public half, X25519 with
// the secret half, and Ed25519 signatures. ServerKey holds the secrets in
// this process; sfsd's key holder (sfsd/src/key_holder.h) asks another
// process that holds them, so the process that parses the network's input
// never has them in memory. Safe to call from any thread.
class ServerKeyOps {
 public:
  virtual ~ServerKeyOps() = default;
  virtual const ServerPublicKey& public_key() const = 0;
  // out = X25519(x25519 secret, peer_public). False if peer_public is not
  // 32 bytes, the result is all zeros (a low-order point), or the key
  // cannot be reached.
  virtual bool dh(std::span<std::uint8_t, kKeyBytes> out, ByteSpan peer_public) const = 0;
  // An Ed25519 signature of `message` (all zeros if the key cannot be
  // reached: no verifier accepts it).
  virtual Signature sign(ByteSpan message) const = 0;
};

class ServerKey : public ServerKeyOps {
 public:
  static ServerKey generate();
  // Deterministic construction from the two 32-byte secrets (test vectors,
  // key files). The X25519 secret is used as is (X25519 clamps it).
  static ServerKey from_secrets(const Key32& x25519_secret, const Key32& ed25519_seed);

  ServerKey(ServerKey&& other) noexcept;
  ServerKey& operator=(ServerKey&& other) noexcept;
  ServerKey(const ServerKey&) = delete;
  ServerKey& operator=(const ServerKey&) = delete;
  ~ServerKey() override;

  const ServerPublicKey& public_key() const override { return pub_; }
  const Key32& x25519_secret() const { return x25519_secret_; }
  const Key32& ed25519_seed() const { return ed25519_seed_; }
  bool dh(std::span<std::uint8_t, kKeyBytes> out, ByteSpan peer_public) const override;
  Signature sign(ByteSpan message) const override;

 private:
  ServerKey() = default;
  void wipe();

  Key32 x25519_secret_{};
  Key32 ed25519_seed_{};
  std::array<std::uint8_t, 64> ed25519_secret_{};  // libsodium's seed||pk form
  ServerPublicKey pub_{};
};

class UserKey {
 public:
  static UserKey generate();
  static UserKey from_seed(const Key32& ed25519_seed);

  UserKey(UserKey&& other) noexcept;
  UserKey& operator=(UserKey&& other) noexcept;
  UserKey(const UserKey&) = delete;
  UserKey& operator=(const UserKey&) = delete;
  ~UserKey();

  const UserPublicKey& public_key() const { return pub_; }
  const Key32& ed25519_seed() const { return ed25519_seed_; }
  Signature sign(ByteSpan message) const;

 private:
  UserKey() = default;
  void wipe();

  Key32 ed25519_seed_{};
  std::array<std::uint8_t, 64> ed25519_secret_{};
  UserPublicKey pub_{};
};

// Ed25519 verification (libsodium's crypto_sign_verify_detached, which
// rejects non-canonical encodings and small-order public keys).
bool verify_signature(const Key32& ed25519_public, ByteSpan message, const Signature& sig);

// Text forms of public keys:
//   user:   "ed25519:<52 base32 chars>"
//   server: "x25519:<52 base32 chars> ed25519:<52 base32 chars>"
std::string format_user_public_key(const UserPublicKey& key);
Result<UserPublicKey> parse_user_public_key(std::string_view text);
std::string format_server_public_key(const ServerPublicKey& key);

enum class KeyKind { kServer, kUser };

// The parsed contents of a private key file: exactly one of the two.
struct KeyFile {
  KeyKind kind;
  std::optional<ServerKey> server;
  std::optional<UserKey> user;
};

// Text of a private key file (what write_key_file stores).
std::string format_key_file(const ServerKey& key);
std::string format_key_file(const UserKey& key);
// Parses the text of a key file; `what` names it in error messages.
Result<KeyFile> parse_key_file(std::string_view text, std::string_view what);

// Creates `path` with mode 0600, failing if it exists (O_EXCL, O_NOFOLLOW).
Status write_key_file(const std::string& path, const ServerKey& key);
Status write_key_file(const std::string& path, const UserKey& key);
// Reads a private key file under the rules of secret_file.h: a regular
// file (no symlink, no FIFO), owned by `owners` (default root or the
// effective uid), that group and others can neither read nor write, in
// directories only its owners can write.
Result<KeyFile> read_key_file(const std::string& path, std::vector<uid_t> owners = {});

}  // namespace sfs
