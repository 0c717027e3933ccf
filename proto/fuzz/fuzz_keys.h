// fuzz_keys.h: the fixed keys of the fuzz targets and of make_seeds, which
// writes seeds that only stay valid if both sides use the same ones: the
// server key (so the HOSTID and the handshake), alice's login key, and the
// handle keys (so sealed handles; SIV sealing makes them deterministic).
// Test keys: never use them anywhere else.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "handle_seal.h"
#include "sfs/keys.h"

namespace sfs_fuzz {

inline sfs::Key32 counting(int start) {
  sfs::Key32 k;
  for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(start + i);
  return k;
}

inline const sfs::UserKey& alice_key() {
  static const sfs::UserKey k = sfs::UserKey::from_seed(counting(0x80));
  return k;
}

inline std::shared_ptr<const sfs::ServerKey> fuzz_server_key() {
  static const auto k =
      std::make_shared<const sfs::ServerKey>(sfs::ServerKey::from_secrets(counting(0), counting(0x20)));
  return k;
}

// A fixed clock for handle keys: what opens must not depend on the date.
inline constexpr std::int64_t kKeyEpoch = 1'800'000'000;
inline std::chrono::system_clock::time_point at(std::int64_t unix_seconds) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds));
}

// Handle keys with the given ids, the first the sealing one. Key N: secret
// N repeated, created N hours before kKeyEpoch (so the first is the newest
// when ids increase).
inline sfsd::HandleKeys handle_keys(std::initializer_list<std::uint8_t> ids) {
  sfsd::HandleKeys k;
  for (std::uint8_t id : ids) {
    sfsd::HandleKey h;
    h.id = id;
    h.created = kKeyEpoch - 3600 * std::int64_t{id};
    h.secret.fill(id);
    k.keys.push_back(h);
  }
  return k;
}

// What sfsd in fuzz_server.h is given: key 1 alone. It binds it to its
// export's root (HandleSealer::bound_to), so handles meant for it are sealed
// with root_sealer() below.
inline std::shared_ptr<const sfsd::HandleSealer> fuzz_sealer() {
  static const auto s =
      std::make_shared<const sfsd::HandleSealer>(handle_keys({1}), std::chrono::hours(24), at(kKeyEpoch));
  return s;
}

// fuzz_sealer() bound to the export whose root handle is `root` (the fake
// backend's handle 1).
inline std::shared_ptr<const sfsd::HandleSealer> root_sealer(const asmp::nfs::FileHandle& root) {
  static const auto s = fuzz_sealer()->bound_to(root);
  return s;
}

}  // namespace sfs_fuzz
