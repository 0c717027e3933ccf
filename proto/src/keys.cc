// keys.cc: server and user key pairs, their text forms and files.
#include "sfs/keys.h"

#include "sfs/secret_file.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace sfs {

namespace {

constexpr std::string_view kServerHeader = "sfs-server-key v1";
constexpr std::string_view kUserHeader = "sfs-user-key v1";
constexpr std::size_t kMaxKeyFileBytes = 4096;
constexpr std::size_t kKeyFileReserve = 1024;  // a key file is under 400 characters

static_assert(crypto_scalarmult_BYTES == kKeyBytes);
static_assert(crypto_scalarmult_SCALARBYTES == kKeyBytes);
static_assert(crypto_sign_PUBLICKEYBYTES == kKeyBytes);
static_assert(crypto_sign_SEEDBYTES == kKeyBytes);
static_assert(crypto_sign_SECRETKEYBYTES == 64);
static_assert(crypto_sign_BYTES == kSignatureBytes);

std::optional<Key32> decode_key32(std::string_view b32) {
  if (b32.size() != base32_length(kKeyBytes)) return std::nullopt;
  auto raw = base32_decode(b32);  // wipes its own buffer when it fails
  if (!raw) return std::nullopt;
  if (raw->size() != kKeyBytes) {
    sodium_memzero(raw->data(), raw->size());
    return std::nullopt;
  }
  Key32 k;
  std::memcpy(k.data(), raw->data(), kKeyBytes);
  sodium_memzero(raw->data(), raw->size());
  return k;
}

Signature ed25519_sign(const std::array<std::uint8_t, 64>& sk, ByteSpan message) {
  Signature sig;
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), sk.data());
  return sig;
}

}  // namespace

// ---- ServerKey ----

ServerKey ServerKey::generate() {
  ensure_sodium();
  Key32 x, seed;
  randombytes_buf(x.data(), x.size());
  randombytes_buf(seed.data(), seed.size());
  ServerKey k = from_secrets(x, seed);
  sodium_memzero(x.data(), x.size());
  sodium_memzero(seed.data(), seed.size());
  return k;
}

ServerKey ServerKey::from_secrets(const Key32& x25519_secret, const Key32& ed25519_seed) {
  ensure_sodium();
  ServerKey k;
  k.x25519_secret_ = x25519_secret;
  k.ed25519_seed_ = ed25519_seed;
  crypto_scalarmult_base(k.pub_.x25519.data(), k.x25519_secret_.data());
  crypto_sign_seed_keypair(k.pub_.ed25519.data(), k.ed25519_secret_.data(),
                           k.ed25519_seed_.data());
  return k;
}

ServerKey::ServerKey(ServerKey&& other) noexcept
    : x25519_secret_(other.x25519_secret_),
      ed25519_seed_(other.ed25519_seed_),
      ed25519_secret_(other.ed25519_secret_),
      pub_(other.pub_) {
  other.wipe();
}

ServerKey& ServerKey::operator=(ServerKey&& other) noexcept {
  if (this != &other) {
    x25519_secret_ = other.x25519_secret_;
    ed25519_seed_ = other.ed25519_seed_;
    ed25519_secret_ = other.ed25519_secret_;
    pub_ = other.pub_;
    other.wipe();
  }
  return *this;
}

ServerKey::~ServerKey() { wipe(); }

void ServerKey::wipe() {
  sodium_memzero(x25519_secret_.data(), x25519_secret_.size());
  sodium_memzero(ed25519_seed_.data(), ed25519_seed_.size());
  sodium_memzero(ed25519_secret_.data(), ed25519_secret_.size());
}

bool ServerKey::dh(std::span<std::uint8_t, kKeyBytes> out, ByteSpan peer_public) const {
  if (peer_public.size() != kKeyBytes) return false;
  // crypto_scalarmult fails if the result is all zeros (low-order point).
  return crypto_scalarmult(out.data(), x25519_secret_.data(), peer_public.data()) == 0;
}

Signature ServerKey::sign(ByteSpan message) const {
  return ed25519_sign(ed25519_secret_, message);
}

// ---- UserKey ----

UserKey UserKey::generate() {
  ensure_sodium();
  Key32 seed;
  randombytes_buf(seed.data(), seed.size());
  UserKey k = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return k;
}

UserKey UserKey::from_seed(const Key32& ed25519_seed) {
  ensure_sodium();
  UserKey k;
  k.ed25519_seed_ = ed25519_seed;
  crypto_sign_seed_keypair(k.pub_.ed25519.data(), k.ed25519_secret_.data(),
                           k.ed25519_seed_.data());
  return k;
}

UserKey::UserKey(UserKey&& other) noexcept
    : ed25519_seed_(other.ed25519_seed_), ed25519_secret_(other.ed25519_secret_),
      pub_(other.pub_) {
  other.wipe();
}

UserKey& UserKey::operator=(UserKey&& other) noexcept {
  if (this != &other) {
    ed25519_seed_ = other.ed25519_seed_;
    ed25519_secret_ = other.ed25519_secret_;
    pub_ = other.pub_;
    other.wipe();
  }
  return *this;
}

UserKey::~UserKey() { wipe(); }

void UserKey::wipe() {
  sodium_memzero(ed25519_seed_.data(), ed25519_seed_.size());
  sodium_memzero(ed25519_secret_.data(), ed25519_secret_.size());
}

Signature UserKey::sign(ByteSpan message) const {
  return ed25519_sign(ed25519_secret_, message);
}

bool verify_signature(const Key32& ed25519_public, ByteSpan message, const Signature& sig) {
  ensure_sodium();
  return crypto_sign_verify_detached(sig.data(), message.data(), message.size(),
                                     ed25519_public.data()) == 0;
}

// ---- text forms ----

std::string format_user_public_key(const UserPublicKey& key) {
  return "ed25519:" + base32_encode(key.ed25519);
}

Result<UserPublicKey> parse_user_public_key(std::string_view text) {
  constexpr std::string_view kPrefix = "ed25519:";
  if (text.substr(0, kPrefix.size()) != kPrefix)
    return make_error("user public key must start with \"ed25519:\"");
  auto k = decode_key32(text.substr(kPrefix.size()));
  if (!k)
    return make_error("user public key is not 52 lowercase base32 characters after \"ed25519:\"");
  return UserPublicKey{*k};
}

std::string format_server_public_key(const ServerPublicKey& key) {
  return "x25519:" + base32_encode(key.x25519) + " ed25519:" + base32_encode(key.ed25519);
}

// Appends "name base32(secret)" without leaving an unwiped temporary copy.
// The caller reserves room first (kKeyFileReserve) so appending never moves
// the text and leaves a copy behind.
static void append_secret(std::string& s, std::string_view name, const Key32& secret) {
  std::string b32 = base32_encode(secret);
  s += name;
  s += b32;
  wipe_string(b32);
}

std::string format_key_file(const ServerKey& key) {
  std::string s;
  s.reserve(kKeyFileReserve);
  s += kServerHeader;
  s += "\n# SFS server private key. Keep secret (mode 0600).\n# public ";
  s += format_server_public_key(key.public_key());
  append_secret(s, "\nx25519-secret ", key.x25519_secret());
  append_secret(s, "\ned25519-seed ", key.ed25519_seed());
  s += "\n";
  return s;
}

std::string format_key_file(const UserKey& key) {
  std::string s;
  s.reserve(kKeyFileReserve);
  s += kUserHeader;
  s += "\n# SFS user private key. Keep secret (mode 0600).\n# public ";
  s += format_user_public_key(key.public_key());
  append_secret(s, "\ned25519-seed ", key.ed25519_seed());
  s += "\n";
  return s;
}

Result<KeyFile> parse_key_file(std::string_view text, std::string_view what) {
  const std::string where(what);
  if (text.size() > kMaxKeyFileBytes)
    return make_error(where + ": too large to be an SFS key file");
  // Split into lines; the first non-comment line is the header.
  std::optional<KeyKind> kind;
  std::optional<Key32> x25519, ed_seed;
  // Every return below, error or not, leaves no copy of the secrets here.
  struct WipeSecrets {
    std::optional<Key32>& a;
    std::optional<Key32>& b;
    ~WipeSecrets() {
      if (a) sodium_memzero(a->data(), a->size());
      if (b) sodium_memzero(b->data(), b->size());
    }
  } wipe_secrets{x25519, ed_seed};
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const std::string at = where + ":" + std::to_string(line_no) + ": ";
    if (line.empty() || line[0] == '#') continue;
    if (!kind) {
      if (line == kServerHeader) {
        kind = KeyKind::kServer;
      } else if (line == kUserHeader) {
        kind = KeyKind::kUser;
      } else {
        return make_error(at + "not an SFS key file (expected \"" + std::string(kServerHeader) +
                          "\" or \"" + std::string(kUserHeader) + "\")");
      }
      continue;
    }
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return make_error(at + "expected \"name value\"");
    const std::string_view name = line.substr(0, sp);
    const std::string_view value = line.substr(sp + 1);
    std::optional<Key32>* slot = nullptr;
    if (name == "x25519-secret" && kind == KeyKind::kServer) {
      slot = &x25519;
    } else if (name == "ed25519-seed") {
      slot = &ed_seed;
    } else {
      return make_error(at + "unexpected field \"" + std::string(name) + "\"");
    }
    if (slot->has_value()) return make_error(at + "field \"" + std::string(name) + "\" repeated");
    *slot = decode_key32(value);
    if (!slot->has_value())
      return make_error(at + "value of \"" + std::string(name) +
                        "\" is not 52 lowercase base32 characters");
  }
  if (!kind) return make_error(where + ": empty, not an SFS key file");
  KeyFile out{*kind, std::nullopt, std::nullopt};
  if (*kind == KeyKind::kServer) {
    if (!x25519 || !ed_seed)
      return make_error(where + ": server key file lacks x25519-secret or ed25519-seed");
    out.server.emplace(ServerKey::from_secrets(*x25519, *ed_seed));
  } else {
    if (!ed_seed) return make_error(where + ": user key file lacks ed25519-seed");
    out.user.emplace(UserKey::from_seed(*ed_seed));
  }
  return out;
}

Status write_key_file(const std::string& path, const ServerKey& key) {
  return write_secret_file(path, format_key_file(key));
}

Status write_key_file(const std::string& path, const UserKey& key) {
  return write_secret_file(path, format_key_file(key));
}

Result<KeyFile> read_key_file(const std::string& path, std::vector<uid_t> owners) {
  FileRules rules;
  rules.owners = std::move(owners);
  auto text = read_checked_file(path, kMaxKeyFileBytes, rules);
  if (!text) return make_error(text.error());
  WipeOnExit wipe{text.value()};
  return parse_key_file(text.value(), path);
}

}  // namespace sfs
