// handle_seal.cc: see handle_seal.h.
#include "handle_seal.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>

#include "sfs/lines.h"
#include "sfs/secret_file.h"

namespace sfsd {

namespace {

constexpr std::uint8_t kVersion = 2;  // 1: not bound to the export
constexpr std::string_view kHeader = "sfs-handle-keys v1";
constexpr std::size_t kMaxFileBytes = 64 * 1024;
constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kSealOverhead == 2 + kNonceBytes + kTagBytes);
static_assert(asmp::nfs::FileHandle::kMaxSize + kSealOverhead <= kSealedHandleMax);

std::array<std::uint8_t, 32> derive(const std::array<std::uint8_t, 32>& secret,
                                    std::string_view label) {
  std::array<std::uint8_t, 32> out;
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(label.data()),
                     label.size(), secret.data(), secret.size());
  return out;
}

// BLAKE2b(key = k, prefix || u8 len(bytes) || bytes), out_len bytes.
void keyed_hash(const std::array<std::uint8_t, 32>& k, std::string_view prefix,
                std::span<const std::uint8_t> bytes, std::uint8_t* out, std::size_t out_len) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, k.data(), k.size(), out_len);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(prefix.data()), prefix.size());
  const std::uint8_t len = static_cast<std::uint8_t>(bytes.size());
  crypto_generichash_update(&st, &len, 1);
  crypto_generichash_update(&st, bytes.data(), bytes.size());
  crypto_generichash_final(&st, out, out_len);
  sodium_memzero(&st, sizeof st);
}

// The keys of one export: BLAKE2b-256(key = k, label || u8 len(root) || root).
std::array<std::uint8_t, 32> derive_for_root(const std::array<std::uint8_t, 32>& k, std::string_view label,
                                             std::span<const std::uint8_t> root) {
  std::array<std::uint8_t, 32> out;
  keyed_hash(k, label, root, out.data(), out.size());
  return out;
}

// The synthetic nonce of a handle: BLAKE2b(key = siv_key, u8 len(fh) || fh).
void siv_nonce(const std::array<std::uint8_t, 32>& siv_key, std::span<const std::uint8_t> fh,
               std::uint8_t* nonce) {
  keyed_hash(siv_key, {}, fh, nonce, kNonceBytes);
}

std::string format_keys(const HandleKeys& k) {
  std::string s(kHeader);
  s += "\n# Written by sfsd. The first key seals file handles; the others only\n"
       "# open handles sealed before a rotation, until their grace ends.\n";
  for (const HandleKey& key : k.keys) {
    std::string secret = sfs::base32_encode(key.secret);
    s += "key " + std::to_string(key.id) + " " + std::to_string(key.created) + " " + secret + "\n";
    sfs::wipe_string(secret);
  }
  return s;
}

sfs::Result<HandleKeys> parse_keys(std::string_view text, const std::string& path) {
  HandleKeys out;
  bool header = false;
  sfs::LineCursor lines(text);
  std::string_view line;
  while (lines.next(&line)) {
    if (line.empty() || line.front() == '#') continue;
    const std::string where = path + ":" + std::to_string(lines.number());
    if (!header) {
      if (line != kHeader)
        return sfs::make_error(where + ": not a handle key file (expected \"" +
                               std::string(kHeader) + "\")");
      header = true;
      continue;
    }
    // key ID CREATED SECRET
    std::vector<std::string_view> f;
    for (std::size_t p = 0; p < line.size();) {
      const std::size_t sp = line.find(' ', p);
      f.push_back(line.substr(p, sp - p));
      if (sp == std::string_view::npos) break;
      p = sp + 1;
    }
    HandleKey k;
    unsigned id = 0;
    bool ok = f.size() == 4 && f[0] == "key";
    ok = ok && std::from_chars(f[1].data(), f[1].data() + f[1].size(), id).ec == std::errc{} && id < 256;
    ok = ok && std::from_chars(f[2].data(), f[2].data() + f[2].size(), k.created).ec == std::errc{};
    auto secret = ok ? sfs::base32_decode(f[3]) : std::nullopt;
    if (!secret || secret->size() != k.secret.size()) {
      if (secret) sodium_memzero(secret->data(), secret->size());
      return sfs::make_error(where + ": expected \"key ID CREATED SECRET\"");
    }
    k.id = static_cast<std::uint8_t>(id);
    std::copy(secret->begin(), secret->end(), k.secret.begin());
    sodium_memzero(secret->data(), secret->size());
    for (const HandleKey& other : out.keys)
      if (other.id == k.id) return sfs::make_error(where + ": key id " + std::to_string(id) + " twice");
    out.keys.push_back(k);
  }
  if (out.keys.empty()) return sfs::make_error(path + ": no handle key in the file");
  return out;
}

HandleKey fresh_key(std::uint8_t id) {
  HandleKey k;
  k.id = id;
  k.created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  randombytes_buf(k.secret.data(), k.secret.size());
  return k;
}

}  // namespace

HandleKeys::~HandleKeys() {
  for (HandleKey& k : keys) sodium_memzero(k.secret.data(), k.secret.size());
}

sfs::Result<HandleKeys> load_or_create_handle_keys(const std::string& path, std::vector<uid_t> owners) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
    HandleKeys k;
    k.keys.push_back(fresh_key(1));
    if (sfs::Status s = sfs::write_secret_file(path, format_keys(k), "handle key file"); !s)
      return sfs::make_error(s.error());
    return k;
  }
  sfs::FileRules rules;
  rules.what = "handle key file";
  rules.owners = std::move(owners);
  auto text = sfs::read_checked_file(path, kMaxFileBytes, rules);
  if (!text) return sfs::make_error(text.error());
  auto keys = parse_keys(text.value(), path);
  sfs::wipe_string(text.value());
  return keys;
}

sfs::Result<std::uint8_t> rotate_handle_keys(const std::string& path, std::chrono::seconds grace,
                                             std::vector<uid_t> owners) {
  auto old = load_or_create_handle_keys(path, std::move(owners));
  if (!old) return sfs::make_error(old.error());
  HandleKeys next;
  std::uint8_t id = static_cast<std::uint8_t>(old.value().keys.front().id + 1);
  if (id == 0) id = 1;
  next.keys.push_back(fresh_key(id));
  // The old sealing key and any other still in grace keep opening handles
  // for `grace` from now (the new key's creation).
  const std::int64_t cutoff = next.keys.front().created - grace.count();
  for (std::size_t i = 0; i < old.value().keys.size(); ++i) {
    const HandleKey& k = old.value().keys[i];
    if (k.id == id) continue;
    if (i == 0 || k.created >= cutoff) next.keys.push_back(k);
  }
  if (sfs::Status s = sfs::replace_secret_file(path, format_keys(next), "handle key file"); !s)
    return sfs::make_error(s.error());
  return id;
}

HandleSealer::HandleSealer(const HandleKeys& keys, std::chrono::seconds grace,
                           std::chrono::system_clock::time_point now) {
  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  for (std::size_t i = 0; i < keys.keys.size(); ++i) {
    const HandleKey& k = keys.keys[i];
    // Older keys open handles until `grace` after the sealing key appeared
    // (open() checks the time again: sfsd may run for longer than that).
    const std::int64_t until = i == 0 ? 0 : keys.keys.front().created + grace.count();
    if (i > 0 && now_s > until) continue;
    keys_.push_back({k.id, until, derive(k.secret, "sfs handle seal v1"), derive(k.secret, "sfs handle siv v1")});
  }
}

std::shared_ptr<const HandleSealer> HandleSealer::bound_to(const asmp::nfs::FileHandle& root) const {
  std::shared_ptr<HandleSealer> b(new HandleSealer());
  for (const Derived& d : keys_)
    b->keys_.push_back({d.id, d.open_until, derive_for_root(d.seal_key, "sfs handle root seal v2", root.bytes()),
                        derive_for_root(d.siv_key, "sfs handle root siv v2", root.bytes())});
  return b;
}

HandleSealer::~HandleSealer() {
  for (Derived& d : keys_) {
    sodium_memzero(d.seal_key.data(), d.seal_key.size());
    sodium_memzero(d.siv_key.data(), d.siv_key.size());
  }
}

const HandleSealer::Derived* HandleSealer::find(std::uint8_t id) const {
  for (const Derived& d : keys_)
    if (d.id == id) return &d;
  return nullptr;
}

std::size_t HandleSealer::seal(const asmp::nfs::FileHandle& fh, std::uint8_t* out) const {
  const Derived& k = keys_.front();
  out[0] = kVersion;
  out[1] = k.id;
  std::uint8_t* nonce = out + 2;
  siv_nonce(k.siv_key, fh.bytes(), nonce);
  std::uint8_t* ct = nonce + kNonceBytes;
  unsigned long long maclen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, ct + fh.size(), &maclen, fh.bytes().data(),
                                                      fh.size(), out, 2, nullptr, nonce,
                                                      k.seal_key.data());
  return fh.size() + kSealOverhead;
}

std::vector<std::uint8_t> HandleSealer::seal(const asmp::nfs::FileHandle& fh) const {
  std::vector<std::uint8_t> out(fh.size() + kSealOverhead);
  seal(fh, out.data());
  return out;
}

asmp::nfs::FileHandle HandleSealer::open(std::span<const std::uint8_t> sealed,
                                         std::optional<std::chrono::system_clock::time_point> now) const {
  if (sealed.size() <= kSealOverhead || sealed.size() > kSealedHandleMax || sealed[0] != kVersion)
    return {};
  const Derived* k = find(sealed[1]);
  if (!k) return {};
  // The clock is read only for a key in its grace (rare), not per call.
  if (k->open_until != 0) {
    const auto t = now.value_or(std::chrono::system_clock::now());
    if (std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count() > k->open_until)
      return {};
  }
  const std::size_t n = sealed.size() - kSealOverhead;
  if (n > asmp::nfs::FileHandle::kMaxSize) return {};
  const std::uint8_t* nonce = sealed.data() + 2;
  const std::uint8_t* ct = nonce + kNonceBytes;
  std::array<std::uint8_t, asmp::nfs::FileHandle::kMaxSize> plain;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plain.data(), nullptr, ct, n, ct + n,
                                                          sealed.data(), 2, nonce,
                                                          k->seal_key.data()) != 0)
    return {};
  // The nonce must be the one this handle derives: one sealed form per
  // handle, so clients' identities never alias.
  std::uint8_t want[kNonceBytes];
  siv_nonce(k->siv_key, {plain.data(), n}, want);
  if (sodium_memcmp(want, nonce, kNonceBytes) != 0) return {};
  return asmp::nfs::FileHandle({plain.data(), n});
}

}  // namespace sfsd
