// handle_seal.h: the file handles sfsd gives clients are the backend's NFS
// handles, sealed, so that a client can neither forge a handle (reach a file
// outside what it was given) nor learn the backend's handles.
//
// Sealed handle (docs/protocol.md, "Sealed file handles"), at most 128 bytes:
//
//     u8  version = 2
//     u8  key id                 which handle key sealed it
//     24  nonce = BLAKE2b-192(key = siv key, u8 len || backend handle)
//     n   XChaCha20-Poly1305(key = seal key, nonce, backend handle,
//                            AD = version || key id)
//     16  tag
//
// The nonce is derived from the handle (SIV), so one backend handle always
// seals to the same bytes under one key: clients may use sealed handles as
// identities (inode numbers, cache keys). Seal and siv keys are derived from
// one 32-byte secret per key id and from the export's root handle
// (bound_to), so a handle sealed for one export opens for no other: not
// even for a directory put in place of the old one, whose files the backend
// would still open by their old handles.
//
// Keys (HandleKeys) live in a 0600 file made on first start; the first key
// seals, the others still open until `grace` after the first was created,
// so that a rotated key does not break the handles clients hold.
//
// Thread safety: a HandleSealer is immutable after construction; seal() and
// open() may run on any thread at once (sfsd runs them on connection colors,
// never on color 0).
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "asmp/nfs.h"
#include "sfs/encoding.h"
#include "sfs/result.h"

namespace sfsd {

inline constexpr std::size_t kSealedHandleMax = 128;
inline constexpr std::size_t kSealOverhead = 2 + 24 + 16;

struct HandleKey {
  std::uint8_t id = 0;
  std::int64_t created = 0;  // unix seconds
  std::array<std::uint8_t, 32> secret{};
};

// The contents of the handle key file, first key first.
struct HandleKeys {
  std::vector<HandleKey> keys;
  ~HandleKeys();
};

// Reads the key file; creates it with one fresh key if it does not exist.
// owners: who may own the file (sfs/secret_file.h; default root or us);
// sfsd passes its `user` too, who owns the file once sfsd drops to it.
sfs::Result<HandleKeys> load_or_create_handle_keys(const std::string& path, std::vector<uid_t> owners = {});
// Puts a new key first (its id one past the newest), drops keys whose grace
// has passed, and replaces the file atomically. Returns the new key's id.
sfs::Result<std::uint8_t> rotate_handle_keys(const std::string& path, std::chrono::seconds grace,
                                             std::vector<uid_t> owners = {});

class HandleSealer {
 public:
  // A sealer bound to no export (bound_to binds it).
  HandleSealer(const HandleKeys& keys, std::chrono::seconds grace,
               std::chrono::system_clock::time_point now = std::chrono::system_clock::now());
  // The same keys bound to the export whose root handle is `root`.
  std::shared_ptr<const HandleSealer> bound_to(const asmp::nfs::FileHandle& root) const;
  ~HandleSealer();
  HandleSealer(const HandleSealer&) = delete;
  HandleSealer& operator=(const HandleSealer&) = delete;

  // Seals a backend handle into out (at least size + kSealOverhead bytes);
  // returns the sealed length.
  std::size_t seal(const asmp::nfs::FileHandle& fh, std::uint8_t* out) const;
  std::vector<std::uint8_t> seal(const asmp::nfs::FileHandle& fh) const;
  // The backend handle inside a sealed one, or an empty handle if it is not
  // one of ours (forged, altered, truncated, sealed for another export, by
  // an unknown key, or by a rotated key whose grace has ended by `now`,
  // default the time of the call).
  asmp::nfs::FileHandle open(std::span<const std::uint8_t> sealed,
                             std::optional<std::chrono::system_clock::time_point> now = std::nullopt) const;

  std::uint8_t sealing_key_id() const { return keys_.front().id; }

 private:
  HandleSealer() = default;
  struct Derived {
    std::uint8_t id;
    std::int64_t open_until;  // unix seconds; 0: the sealing key, no end
    std::array<std::uint8_t, 32> seal_key;
    std::array<std::uint8_t, 32> siv_key;
  };
  const Derived* find(std::uint8_t id) const;
  std::vector<Derived> keys_;  // sealing key first; then those still in grace
};

}  // namespace sfsd
